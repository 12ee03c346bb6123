"""What a browser tab holds on to: the run store's handle, the watched run, the runs it
started, and the machine it trains on. These need a Streamlit session (`st.query_params`,
`st.cache_resource`), except the pure helpers `config_fingerprint` and `run_label`.

`?run=<id>` in the URL re-attaches a tab to a run after a refresh.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

import streamlit as st

from dashboard.state.run_progress import _isnan
from mtl_core.config import ExperimentConfig
from mtl_core.errors import StoreError
from mtl_core.store import RunStore, default_store_path

RUN_PARAM = "run"
SS_RUN = "_watched_run"


def store_path() -> Path:
    return default_store_path()


@st.cache_resource(show_spinner=False)
def _open_store(path: str) -> RunStore:
    return RunStore(path)


def get_store() -> RunStore:
    """The run store of $MTL_LAB_HOME: one shared handle per store file (cache_resource).

    Keyed by path, so a test that points MTL_LAB_HOME elsewhere gets its own store.
    RunStore serialises its calls with a lock, so sessions may share it.
    """
    return _open_store(str(store_path()))


def current_run_id() -> str | None:
    """The watched run: `?run=` in the URL, else the one this tab last watched."""
    rid = st.query_params.get(RUN_PARAM)
    if rid:
        return str(rid)
    return st.session_state.get(SS_RUN)


def set_run_id(run_id: str | None) -> None:
    if run_id:
        st.session_state[SS_RUN] = run_id
        if st.query_params.get(RUN_PARAM) != run_id:
            st.query_params[RUN_PARAM] = run_id
    else:
        st.session_state.pop(SS_RUN, None)
        if RUN_PARAM in st.query_params:
            del st.query_params[RUN_PARAM]


def get_run_safe(run_id: str) -> tuple[dict[str, Any] | None, str | None]:
    """(run row, None) or (None, a readable message) for a run id from a link."""
    try:
        return get_store().get_run(run_id), None
    except StoreError as exc:
        return None, f"{exc}. It may have been deleted; pick another run."


def run_label(row: Mapping[str, Any]) -> str:
    """`20261124-235959-ab12cd · name · mmoe_synthetic/hard · Δm +3.2 %` for pickers."""
    parts = [str(row.get("id"))]
    if isinstance(row.get("name"), str) and row["name"]:
        parts.append(row["name"])
    dataset = row.get("dataset")
    if dataset is None or _isnan(dataset):  # a transfer run nests its dataset under `base`
        parts.append("transfer")
    else:
        parts.append(f"{dataset}/{row.get('sharing')}")
    dm = row.get("delta_m")
    if dm is not None and not _isnan(dm):
        parts.append(f"Δm {float(dm):+.2f} %")
    if row.get("status") != "finished":
        parts.append(str(row.get("status")))
    return " · ".join(parts)


@st.cache_resource(show_spinner=False)
def device_name() -> str:
    """The accelerator the engine would use: the CUDA device's name, or "CPU"."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return "CPU"


def cuda_available() -> bool:
    return device_name() != "CPU"


# ---- starting a run once per submission --------------------------------------------------------
SS_STARTED = "_started_submissions"  # config fingerprint -> run id (or "" while starting)


def config_fingerprint(config: ExperimentConfig) -> str:
    """One submission's identity: the same experiment, pressed Train twice, is one run."""
    text = json.dumps(config.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def started_run(ss: Mapping[str, Any], config: ExperimentConfig | None, store: RunStore | None = None) -> str | None:
    """The run this tab already started for this very config and that is still queued or
    running ("" while it is being started), else None: Train is then disabled."""
    if config is None:
        return None
    run_id = (ss.get(SS_STARTED) or {}).get(config_fingerprint(config))
    if run_id is None or run_id == "":
        return run_id
    from mtl_core.store import ACTIVE_STATUSES

    try:
        status = (store or get_store()).get_run(run_id)["status"]
    except StoreError:
        return None
    return run_id if status in ACTIVE_STATUSES else None
