"""`mtl-lab dashboard`: start the dashboard with our settings, whatever the working folder.

Streamlit reads `.streamlit/config.toml` from the working directory only, so
`cd /tmp && streamlit run /path/dashboard/app.py` listens on every interface, shows
tracebacks in the browser and accepts 200 MB uploads. The launcher gives every setting on
the command line instead (command-line flags win over any config file Streamlit finds),
binds to 127.0.0.1 unless the operator names another address with `--host`, and tells
the app which folders besides its uploads it may read (`--data-dir`, as
MTL_LAB_DATA_DIRS).

    mtl-lab dashboard [--port 8501] [--host 127.0.0.1] [--data-dir DIR ...]
    python -m mtl_core.launcher ...          (the same, without the rest of the CLI)

The working folder still decides where runs are stored (`./runs/` unless MTL_LAB_HOME
is set), as for every other `mtl-lab` command.
"""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import os
import sys
from pathlib import Path
from typing import Mapping, Sequence

from mtl_core.errors import ConfigError

DEFAULT_PORT = 8501
LOOPBACK = "127.0.0.1"
ALLOW_REMOTE_ENV = "MTL_LAB_ALLOW_REMOTE"  # read by dashboard/app.py (state.exposure_message)
DATA_DIRS_ENV = "MTL_LAB_DATA_DIRS"  # read by dashboard/state/access.py (allowed_data_dirs)
MAX_UPLOAD_MB = 50  # the CSV importer refuses larger files by default as well

# Every setting of .streamlit/config.toml, given explicitly (server.address and port are
# added from the arguments).
SETTINGS: dict[str, str] = {
    "server.headless": "true",
    "server.maxUploadSize": str(MAX_UPLOAD_MB),
    "server.runOnSave": "false",
    "server.fileWatcherType": "none",  # a served app does not reload when its files change
    # No full garbage collection after every script run: with torch, pandas and plotly loaded
    # each costs ~0.1 s, and a watched run's fragments rerun every 2-3 s (bench/dashboard.py --watch).
    "runner.postScriptGC": "false",
    "client.showErrorDetails": "none",
    "client.toolbarMode": "minimal",
    "browser.gatherUsageStats": "false",
    "theme.base": "light",
    "theme.primaryColor": "#0072B2",
}


def app_path() -> Path:
    """`dashboard/app.py` of the installed `dashboard` package (`pip install -e .` or a wheel)."""
    # Found, not imported: the engine never runs the dashboard package (tests/test_imports.py).
    spec = importlib.util.find_spec("dashboard")
    if spec is None or spec.origin is None:
        raise ConfigError(
            "the dashboard package is not installed next to mtl_core; install MTL Lab with "
            "`pip install -e .` from its repository"
        )
    path = Path(spec.origin).resolve().parent / "app.py"
    if not path.is_file():
        raise ConfigError(f"the dashboard's entry file {path} is missing; reinstall MTL Lab")
    return path


def is_loopback(host: object) -> bool:
    """True when a server bound to `host` is reachable from this machine only (an empty
    address, Streamlit's default, binds every interface)."""
    text = str(host or "").strip().strip("[]")
    if text == "localhost":
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


def dashboard_command(
    *, port: int = DEFAULT_PORT, host: str = LOOPBACK, app: Path | str | None = None,
    python: str = sys.executable,
) -> list[str]:
    """The command that serves the dashboard: `python -m streamlit run app.py --flag=value ...`."""
    if not 1 <= int(port) <= 65535:
        raise ConfigError(f"--port {port}: give a TCP port between 1 and 65535, e.g. --port {DEFAULT_PORT}")
    if not host.strip():
        raise ConfigError(f"--host: give an address to listen on, e.g. --host {LOOPBACK}")
    settings = {"server.address": host.strip(), "server.port": str(int(port)), **SETTINGS}
    return [python, "-m", "streamlit", "run", str(app or app_path()),
            *(f"--{key}={value}" for key, value in settings.items())]


def dashboard_env(
    *, host: str = LOOPBACK, data_dirs: Sequence[str] = (), environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The server's environment: the folders it may read, and whether it may listen beyond
    this machine (only when `host` says so)."""
    env = dict(os.environ if environ is None else environ)
    folders = [d for d in env.get(DATA_DIRS_ENV, "").split(os.pathsep) if d.strip()]
    for d in data_dirs:
        folder = Path(d).expanduser()
        if not folder.is_dir():
            raise ConfigError(f"--data-dir {d}: not a folder; give a folder whose CSV files the dashboard may read")
        folders.append(os.path.realpath(folder))
    if folders:
        env[DATA_DIRS_ENV] = os.pathsep.join(dict.fromkeys(folders))
    if is_loopback(host):
        env.pop(ALLOW_REMOTE_ENV, None)
    else:
        env[ALLOW_REMOTE_ENV] = "1"  # the operator asked for it by name
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `dashboard` on the CLI's subcommands."""
    s = subparsers.add_parser(
        "dashboard", help="start the dashboard in the browser (on this machine only unless --host)",
        description="Serve the MTL Lab dashboard with its safe settings from any folder.",
    )
    s.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    s.add_argument("--host", default=LOOPBACK,
                   help=f"address to listen on (default {LOOPBACK}: this machine only). Another address lets "
                        "anyone who reaches it start runs and upload files: give it knowingly")
    s.add_argument("--data-dir", action="append", default=[], metavar="DIR",
                   help="a folder whose CSV files the dashboard may read by path (repeatable); uploads are "
                        "always readable")
    s.set_defaults(func=cmd_dashboard)
    return s


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Replace this process by the Streamlit server (Ctrl+C and signals reach it directly)."""
    cmd = dashboard_command(port=args.port, host=args.host)
    env = dashboard_env(host=args.host, data_dirs=args.data_dir)
    if not is_loopback(args.host):
        print(f"warning: the dashboard listens on {args.host}: anyone who can reach this address can "
              "start training runs and upload files on this machine", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(cmd[0], cmd, env)
    return 0  # not reached


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mtl_core.launcher")
    sub = parser.add_subparsers(dest="command")
    add_parser(sub)
    args = parser.parse_args(["dashboard", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
