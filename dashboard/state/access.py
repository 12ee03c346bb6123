"""Which files the dashboard may read, where uploads go, and who may reach the server.

Anyone who can open a link chooses the paths it names, so the dashboard reads only files
it was given: uploads (`$MTL_LAB_HOME/uploads`) and the operator's `--data-dir` folders
(`check_data_path`; every read of a user's file passes `check_dataset_access`). It starts
training processes, so it listens beyond loopback only when the operator said so
(`exposure_message`). The CLI and the Python API read any path: there the user is the
operator.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any, Mapping

from mtl_core.errors import DataError
from mtl_core.launcher import ALLOW_REMOTE_ENV, DATA_DIRS_ENV, is_loopback  # set by `mtl-lab dashboard`
from mtl_core.store import default_store_path


# ---- uploads ----------------------------------------------------------------------------
def uploads_dir() -> Path:
    """`$MTL_LAB_HOME/uploads` (next to the run store): uploaded CSV files are kept here."""
    folder = default_store_path().parent / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


UPLOAD_STEM_CHARS = 80  # of the original name; with the hash prefix well under a file system's 255 bytes


def save_upload(filename: str, data: bytes) -> Path:
    """Save an uploaded file under a name made of its content hash and a cleaned-up,
    shortened original name (the same file uploaded twice is stored once).

    Only ASCII letters, digits, `.`, `_` and `-` are kept, so any name a browser sends
    (250 characters, emoji, `../`) makes a valid file name in the uploads folder.
    """
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(str(filename).replace("\\", "/")).name).strip("._-")
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem or len(suffix) > 10:
        stem, suffix = name, ""
    stem = stem[:UPLOAD_STEM_CHARS].rstrip("._-") or "upload"
    suffix = suffix or "csv"
    digest = hashlib.sha256(data).hexdigest()[:12]
    path = uploads_dir() / f"{digest}-{stem}.{suffix}"
    if not path.exists():
        path.write_bytes(data)
    return path


# ---- which files the dashboard may read -----------------------------------------------------


def allowed_data_dirs() -> list[Path]:
    """The folders whose files the dashboard may read: `$MTL_LAB_HOME/uploads` (what the
    uploader writes) and every folder in MTL_LAB_DATA_DIRS, real paths (symlinks resolved)."""
    dirs = [default_store_path().parent / "uploads"]
    dirs += [Path(d) for d in os.environ.get(DATA_DIRS_ENV, "").split(os.pathsep) if d.strip()]
    return [Path(os.path.realpath(os.path.expanduser(d))) for d in dirs]


# Dataset options that name a file the dataset reads: `path` (csv, conllu) and a treebank's
# own split files (conllu). A dataset that adds another must add its name here.
FILE_OPTIONS = ("path", "train", "dev", "test")


def check_data_path(path: Any, *, label: str = "CSV path") -> Path:
    """The real path of a data file a link, a config file or the form names, if the
    dashboard may read it; DataError otherwise.

    Anyone who can open a link chooses the path, so the dashboard reads only files it was
    given: uploads and the operator's --data-dir folders. The real path is compared (so
    `..`, `~` and symlinks lead nowhere else), nothing is opened or stat'ed before the
    check, and the message is the same whether a refused file exists or not. The CLI and
    the Python API read any path: there the user is the operator.
    """
    text = str(path or "")
    try:
        real = Path(os.path.realpath(os.path.expanduser(text)))
    except (ValueError, OSError):  # e.g. a NUL byte in the path
        real = None
    if text.strip() and real is not None:
        for folder in allowed_data_dirs():
            if real != folder and real.is_relative_to(folder):
                return real
    raise DataError(
        f"{label} '{text}' is refused: this dashboard reads only files uploaded here "
        "($MTL_LAB_HOME/uploads) or inside a folder its operator allowed. Upload the file "
        "with the CSV uploader, or start the dashboard with `mtl-lab dashboard --data-dir "
        "FOLDER` to allow the files in FOLDER."
    )


def check_dataset_access(name: Any, options: Mapping[str, Any] | None) -> None:
    """DataError when a dataset's options name a file the dashboard may not read
    (`check_data_path`); every read of a user's file in the dashboard passes here."""
    options = options if isinstance(options, Mapping) else {}
    if name == "csv":
        check_data_path(options.get("path"))  # required: an empty path is refused too
    for key in FILE_OPTIONS:
        if name != "csv" and options.get(key) not in (None, ""):
            check_data_path(options[key], label=f"dataset.options.{key}")


def read_csv_header(path: str) -> list[str]:
    """The column names of a CSV file the dashboard may read (`check_data_path`)."""
    from mtl_core.tasks.csv_import import read_header

    check_data_path(path)
    return read_header(path)


# ---- the server's exposure ----------------------------------------------------------------------
def exposure_message(address: Any, environ: Mapping[str, str] | None = None) -> str | None:
    """Why the dashboard refuses to run bound to `address`, or None when it may.

    It starts training processes and reads uploads: anyone who reaches it can use this
    machine. Beyond loopback only when the operator said so (`--host`, or the env var).
    """
    environ = os.environ if environ is None else environ
    if is_loopback(address) or environ.get(ALLOW_REMOTE_ENV, "").strip() not in ("", "0"):
        return None
    where = f"address {address}" if address else "every network interface"
    return (
        f"This dashboard is listening on {where}, so anyone on the network can start "
        "training runs and upload files on this machine. Start it with `mtl-lab dashboard` "
        "(which binds to 127.0.0.1 from any folder). To share it on a network knowingly, "
        f"start it with `mtl-lab dashboard --host ADDRESS`, or set {ALLOW_REMOTE_ENV}=1."
    )
