"""Background runs: start a training process, cancel it, ask how it is doing.

Each run trains in its own process, `python -m mtl_core.worker RUN_ID`, started with
`subprocess.Popen` in a new session. Not `multiprocessing`: its spawn start method
re-imports the parent's main script in the child, which under Streamlit means
re-running the dashboard page; and a fork of a process holding torch threads or an
open SQLite connection is unsafe. The worker and its watchers talk only through the
run store, so a browser refresh or a dashboard restart re-attaches by reading it.

A fresh process spends seconds importing torch before its first step. A long-lived
caller (the dashboard) calls `keep_warm()` to keep one **standby** worker ready: the
same `python -m mtl_core.worker`, started ahead with `--standby`, which imports
everything at idle CPU priority and then waits for one run id on its stdin. `start`
hands the next run to it and starts a fresh standby for the run after, so each run
still has a process of its own (nothing carries over between runs) and cancel, kill
and interrupt work as for any worker. A standby ends when its caller does (its stdin
closes).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Union

import pandas as pd

import mtl_core
from mtl_core.config import ExperimentConfig
from mtl_core.errors import DiskFullError, StoreError
from mtl_core.store import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    RunStore,
    default_store_path,
    process_start_time,
    run_process_alive,
)

if TYPE_CHECKING:  # mtl_core.transfer imports torch, which `jobs` itself never needs
    from mtl_core.transfer import TransferConfig

AnyConfig = Union[ExperimentConfig, "TransferConfig", dict[str, Any]]

# Popen objects of the workers this process started, by run id. Each has a daemon thread
# waiting on it (`_watch`), so that a worker that ends is reaped at once and does not linger
# as a <defunct> child of a long-lived dashboard until someone calls into `jobs`.
_CHILDREN: dict[str, subprocess.Popen] = {}


def _watch(run_id: str, proc: subprocess.Popen) -> None:
    """Reap `proc` as soon as it exits (in a daemon thread of its own)."""

    def wait() -> None:
        proc.wait()
        if _CHILDREN.get(run_id) is proc:
            _CHILDREN.pop(run_id, None)

    threading.Thread(target=wait, name=f"reap-{run_id}", daemon=True).start()


def track(key: str, proc: subprocess.Popen) -> None:
    """Keep `proc` (a run's worker, a sweep's driver) as a child of this process, reaped as soon
    as it exits; `key` is its run or sweep id."""
    _CHILDREN[key] = proc
    _watch(key, proc)


def _reap() -> None:
    for run_id, proc in list(_CHILDREN.items()):
        if proc.poll() is not None:
            _CHILDREN.pop(run_id, None)


def log_path(run_id: str, *, store_path: str | Path | None = None) -> Path:
    """The worker's log file: `<store folder>/logs/<run_id>.log` (stdout, stderr, tracebacks)."""
    db = Path(store_path).expanduser().resolve() if store_path is not None else default_store_path()
    return db.parent / "logs" / f"{run_id}.log"


def _validated(config: AnyConfig) -> "ExperimentConfig | TransferConfig":
    """An ExperimentConfig, or a TransferConfig for a transfer experiment (`kind: transfer`)."""
    if isinstance(config, ExperimentConfig):
        return config
    if getattr(config, "kind", None) == "transfer":
        return config  # a TransferConfig, already validated
    if isinstance(config, dict) and config.get("kind") == "transfer":
        from mtl_core.transfer import TransferConfig

        return TransferConfig.parse(dict(config))
    return ExperimentConfig.parse(dict(config))


def start(
    config: AnyConfig,
    *,
    name: str | None = None,
    store_path: str | Path | None = None,
) -> str:
    """Validate `config`, queue it and start its process.

    `config` is an ExperimentConfig, a `mtl_core.transfer.TransferConfig` (a transfer
    experiment: the worker runs `run_transfer`), or a plain dict of either (a dict with
    `kind: transfer` is a transfer experiment). Returns the run id at once; the run
    trains in the background, in the standby worker when `keep_warm()` keeps one ready
    (then a new standby is started for the next run). Raises ConfigError for an invalid
    config (nothing is stored then) and StoreError if the process cannot start.
    """
    config = _validated(config)
    _reap()
    with RunStore(store_path) as store:
        run_id = store.create_run(config.model_dump(mode="json"), name=name)
        log_file_path = log_path(run_id, store_path=store.path)
        try:
            log_file = _open_log(log_file_path)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                message = (
                    f"disk full: cannot write the run's log file in {log_file_path.parent} ({exc}); free "
                    "some space there, or set MTL_LAB_HOME to a folder on another disk"
                )
            else:
                message = (
                    f"cannot write the run's log file {log_file_path} ({exc.strerror or exc}); make "
                    f"{log_file_path.parent} writable, or set MTL_LAB_HOME to a folder you can write to"
                )
            _fail_start(store, run_id, message)
            raise (DiskFullError if exc.errno == errno.ENOSPC else StoreError)(message) from None
        with log_file:
            handed = _hand_to_standby(run_id, store.path, log_file_path)
            if handed is not None:
                proc, pid_start = handed
            else:
                proc, pid_start = _start_worker(store, run_id, log_file)
        track(run_id, proc)
        store.set_pid(run_id, proc.pid, pid_start=pid_start)
    if _WARM.enabled and os.environ.get(WARM_ENV, "1") != "0":
        _ensure_standby()  # for the next click; it waits at idle priority meanwhile
    return run_id


def _worker_env(store_path: Path | None = None) -> dict[str, str]:
    """The environment of a worker process: ours, plus where the store is and this mtl_core."""
    env = os.environ.copy()
    if store_path is not None:
        env["MTL_LAB_DB"] = str(store_path)
    env["PYTHONUNBUFFERED"] = "1"  # log lines appear as they are written
    # The worker must import this very mtl_core, installed or not.
    package_root = str(Path(mtl_core.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    return env


def _start_worker(store: RunStore, run_id: str, log_file: IO[bytes]) -> tuple[subprocess.Popen, int | None]:
    """A fresh `python -m mtl_core.worker RUN_ID` (the cold path); returns it and its start time."""
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mtl_core.worker", run_id],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=_worker_env(store.path),
            start_new_session=True,  # survives Ctrl-C and the end of the dashboard
        )
    except OSError as exc:
        _fail_start(store, run_id, f"could not start the training process: {exc}")
        raise StoreError(
            f"could not start the training process for run {run_id}: {exc}; "
            f"check that {sys.executable} can run `python -m mtl_core.worker`"
        ) from None
    # The start time is read before the reaper may collect the child: a pid is only
    # an identity together with it.
    return proc, process_start_time(proc.pid)


def start_queued(store: RunStore, run_id: str) -> int:
    """Start a fresh worker for `run_id`, a run already in the store (a sweep's queued point,
    `mtl_core.executors`), as `start` does for a new run without a standby; its pid."""
    with _open_log(log_path(run_id, store_path=store.path)) as log_file:
        proc, pid_start = _start_worker(store, run_id, log_file)
    track(run_id, proc)
    store.set_pid(run_id, proc.pid, pid_start=pid_start)
    return proc.pid


def spawn(key: str, argv: list[str], *, store_path: Path) -> subprocess.Popen:
    """Start `argv` detached (its own session, like a worker), with a worker's environment and
    its output in the log file of `key` (a sweep's driver: `key` is the sweep id); tracked
    like a worker. Raises OSError when the process cannot start."""
    with _open_log(log_path(key, store_path=store_path)) as log_file:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                                env=_worker_env(store_path), start_new_session=True)
    track(key, proc)
    return proc


# ---- the standby worker ------------------------------------------------------------------------
WARM_ENV = "MTL_LAB_WARM_WORKER"  # "0": never keep a standby worker (keep_warm does nothing)


@dataclass
class _Standby:
    proc: subprocess.Popen
    pid_start: int | None
    key: str  # its start-up environment (`_env_key`): a changed one needs a new standby


class _WarmState:
    def __init__(self) -> None:
        self.enabled = False
        self.standby: _Standby | None = None
        self.lock = threading.Lock()  # Streamlit serves each browser session in a thread


_WARM = _WarmState()


def keep_warm(enabled: bool = True) -> bool:
    """Keep one standby worker ready from now on (False: stop, and end the one waiting).

    For long-lived callers that start runs, like the dashboard: the next `start` then
    skips the seconds a fresh process spends importing torch. The standby imports at idle
    CPU priority, so it never slows a run that is training. `MTL_LAB_WARM_WORKER=0` turns
    this off. Returns whether a standby is kept.
    """
    _WARM.enabled = bool(enabled) and os.environ.get(WARM_ENV, "1") != "0"
    if _WARM.enabled:
        _ensure_standby()
    else:
        _discard_standby()
    return _WARM.enabled


def standby_pid() -> int | None:
    """The pid of the standby worker waiting now, if any (for tests and benchmarks)."""
    standby = _WARM.standby
    return standby.proc.pid if standby is not None and standby.proc.poll() is None else None


# Variables read when Python, torch or its math libraries start: a standby started under
# other values of these cannot serve the run. Every other variable is passed with the run
# and set in the standby before it trains (as a cold worker would inherit it).
_STARTUP_ENV_PREFIXES = ("PYTHON", "OMP_", "MKL_", "KMP_", "OPENBLAS_", "TORCH", "CUDA", "NVIDIA", "LD_", "PATH")


# Set by torch's OpenMP runtime in every process that imports torch: the dashboard has them
# or not depending on whether a page imported torch yet; a standby sets them itself.
_SET_BY_IMPORT = frozenset({"KMP_INIT_AT_FORK", "KMP_DUPLICATE_LIB_OK"})


def _env_key() -> str:
    env = {k: v for k, v in _worker_env().items()
           if k.startswith(_STARTUP_ENV_PREFIXES) and k not in _SET_BY_IMPORT}
    blob = json.dumps([sys.executable, sorted(env.items())])
    return hashlib.sha256(blob.encode()).hexdigest()


def _ensure_standby() -> None:
    """Start a standby unless a live one with this environment is waiting."""
    with _WARM.lock:
        key = _env_key()
        current = _WARM.standby
        if current is not None and current.proc.poll() is None and current.key == key:
            return
        _close_standby(current)
        _WARM.standby = None
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "mtl_core.worker", "--standby"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,  # until it has a run: then the run's log
                stderr=subprocess.DEVNULL,
                env=_worker_env(),
                start_new_session=True,
            )
        except OSError:
            return  # no standby: runs start cold, as without keep_warm
        _WARM.standby = _Standby(proc, process_start_time(proc.pid), key)
        _watch(f"standby-{proc.pid}", proc)


def _hand_to_standby(run_id: str, db: Path, log_file_path: Path) -> tuple[subprocess.Popen, int | None] | None:
    """Give run `run_id` to the waiting standby; None when there is none (or it is gone)."""
    with _WARM.lock:
        standby, _WARM.standby = _WARM.standby, None
        if standby is None:
            return None
        if standby.proc.poll() is not None or standby.key != _env_key() or standby.proc.stdin is None:
            _close_standby(standby)
            return None
        message = {"run_id": run_id, "db": str(db), "log": str(log_file_path), "env": _worker_env(db)}
        try:
            standby.proc.stdin.write((json.dumps(message) + "\n").encode())
            standby.proc.stdin.close()  # one run per process
        except OSError:  # it died since the poll
            _close_standby(standby)
            return None
        return standby.proc, standby.pid_start


def _discard_standby() -> None:
    with _WARM.lock:
        _close_standby(_WARM.standby)
        _WARM.standby = None


def _close_standby(standby: _Standby | None) -> None:
    """End a standby that will not be used: closing its stdin is its signal to exit."""
    if standby is None:
        return
    try:
        if standby.proc.stdin is not None:
            standby.proc.stdin.close()
    except OSError:
        pass


def _open_log(path: Path):
    """The run's log file, opened for appending (its folder created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "ab")


def _fail_start(store: RunStore, run_id: str, message: str) -> None:
    try:
        store.fail_run(run_id, message)
    except StoreError:
        pass  # still `queued` without a process: marked interrupted after QUEUED_GRACE_S


def cancel(run_id: str, *, store_path: str | Path | None = None) -> bool:
    """Ask run `run_id` to stop: it ends as `cancelled` at its next step, curves kept.

    Returns True if the run was still queued or running, False if it had already
    ended (cancelling twice, or a finished run, is harmless).
    """
    _reap()
    with RunStore(store_path) as store:
        # First: a run whose process already died (or whose pid now names another
        # process) ends as interrupted, and there is nothing left to cancel.
        store.mark_interrupted()
        run = store.get_run(run_id)
        if run["status"] in TERMINAL_STATUSES:
            return False
        store.request_cancel(run_id)
        pid = run["pid"]
        if pid is not None:
            # To the worker only, not its process group: data-loader children should
            # be ended by the worker, not killed under it.
            _terminate(int(pid), run.get("pid_start"))
        elif run["status"] == "queued":
            # No process was ever started for it: nothing will end it but us.
            store.cancel_run(run_id)
        store.mark_interrupted()  # a process that died meanwhile ends as cancelled
    return True


def _terminate(pid: int, pid_start: int | None) -> bool:
    """SIGTERM process `pid` only if it is still the one that started at `pid_start`.

    Where the system has pidfds, the process is pinned first and checked after, so that
    it cannot end and hand its pid to a stranger between the check and the signal. A pid
    of another user's process is only ours when its start time matches; if the kernel then
    refuses the signal (PermissionError), the cancel flag in the store still stops the
    worker at its next step. Returns whether a signal was sent.
    """
    pidfd = None
    if hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal"):
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return False
        except OSError:
            pidfd = None  # an old kernel, or not permitted: fall back to kill()
    try:
        if not run_process_alive({"pid": pid, "pid_start": pid_start}):
            return False
        if pidfd is not None:
            signal.pidfd_send_signal(pidfd, signal.SIGTERM)
        else:
            os.kill(pid, signal.SIGTERM)
        return True
    except (ProcessLookupError, PermissionError):
        return False
    finally:
        if pidfd is not None:
            os.close(pidfd)


def pause(run_id: str, *, store_path: str | Path | None = None) -> bool:
    """Hold run `run_id` before its next step (its process waits, its curves so far are
    committed); False when it has already ended. `resume` lets it go on, `step` one step."""
    with RunStore(store_path) as store:
        store.mark_interrupted()
        return store.set_paused(run_id, True)


def resume(run_id: str, *, store_path: str | Path | None = None) -> bool:
    """Let a paused run go on from the step where it waits; False when it has already ended."""
    with RunStore(store_path) as store:
        store.mark_interrupted()
        return store.set_paused(run_id, False)


def step(run_id: str, n: int = 1, *, store_path: str | Path | None = None) -> bool:
    """Let a paused run take `n` more steps, then wait again; False when it is not paused."""
    with RunStore(store_path) as store:
        store.mark_interrupted()
        return store.grant_steps(run_id, n)


def status(run_id: str, *, store_path: str | Path | None = None) -> str:
    """The run's status: queued, running, finished, failed, cancelled or interrupted."""
    _reap()
    with RunStore(store_path) as store:  # opening marks dead processes' runs interrupted
        return store.get_run(run_id)["status"]


def active(*, store_path: str | Path | None = None) -> pd.DataFrame:
    """Runs that are queued or running (as `RunStore.runs`), after marking dead ones interrupted."""
    _reap()
    with RunStore(store_path) as store:
        store.mark_interrupted()
        return store.runs(status=ACTIVE_STATUSES)


def wait(
    run_id: str,
    timeout: float = 60.0,
    *,
    store_path: str | Path | None = None,
    poll_s: float = 0.2,
) -> str:
    """Poll until the run has ended or `timeout` seconds passed; return its status then."""
    deadline = time.monotonic() + timeout
    with RunStore(store_path) as store:
        while True:
            _reap()
            store.mark_interrupted()
            current = store.get_run(run_id)["status"]
            if current in TERMINAL_STATUSES or time.monotonic() >= deadline:
                return current
            time.sleep(poll_s)
