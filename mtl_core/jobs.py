"""Background runs: start a training process, cancel it, ask how it is doing.

Each run trains in its own process, `python -m mtl_core.worker RUN_ID`, started with
`subprocess.Popen` in a new session. Not `multiprocessing`: its spawn start method
re-imports the parent's main script in the child, which under Streamlit means
re-running the dashboard page; and a fork of a process holding torch threads or an
open SQLite connection is unsafe. The worker and its watchers talk only through the
run store, so a browser refresh or a dashboard restart re-attaches by reading it.

A fresh process spends seconds of CPU importing torch before its first step. A long-lived
caller (the dashboard, a sweep's driver) calls `keep_warm()` to keep one **fork server**
ready: `python -m mtl_core.worker --fork-server`, which imports everything once at idle CPU
priority and then forks one child per run handed to it. It is the fork that is safe: the
server is started with `Popen` (not from the dashboard's process), has never run a torch op
(no thread pool, no CUDA context) and never opens the store. Each run still has a process of
its own, in a session of its own (nothing carries over between runs), so cancel, kill and
interrupt work as for any worker; `start` and `start_queued` simply skip the imports (a run
started while the server still imports starts cold). The server ends when its caller does
(its stdin closes); its children live on.
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
    pid_alive,
    process_start_time,
    run_process_alive,
)
from mtl_core.worker import set_policy

if TYPE_CHECKING:  # mtl_core.transfer imports torch, which `jobs` itself never needs
    from mtl_core.transfer import TransferConfig

AnyConfig = Union[ExperimentConfig, "TransferConfig", dict[str, Any]]

# Popen objects of the workers this process started, by run id. Each has a daemon thread
# waiting on it (`_watch`), so that a worker that ends is reaped at once and does not linger
# as a <defunct> child of a long-lived dashboard until someone calls into `jobs`.
_CHILDREN: dict[str, "subprocess.Popen | ForkedWorker"] = {}


def _watch(run_id: str, proc: "subprocess.Popen | ForkedWorker") -> None:
    """Reap `proc` as soon as it exits (in a daemon thread of its own)."""

    def wait() -> None:
        proc.wait()
        if _CHILDREN.get(run_id) is proc:
            _CHILDREN.pop(run_id, None)

    threading.Thread(target=wait, name=f"reap-{run_id}", daemon=True).start()


def track(key: str, proc: "subprocess.Popen | ForkedWorker") -> None:
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
    trains in the background, in a child of the fork server when `keep_warm()` keeps one.
    Raises ConfigError for an invalid
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
            proc, pid_start = _start_process(store, run_id, log_file, log_file_path)
        track(run_id, proc)
        store.set_pid(run_id, proc.pid, pid_start=pid_start)
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


def _start_process(store: RunStore, run_id: str, log_file: IO[bytes],
                   log_file_path: Path) -> "tuple[subprocess.Popen | ForkedWorker, int | None]":
    """The run's process: a child of the fork server when one is kept, else a cold worker."""
    try:
        handed = _hand_to_server(run_id, store.path, log_file_path)
    except StoreError as exc:
        _fail_start(store, run_id, str(exc))
        raise
    if handed is not None:
        return handed, handed.pid_start
    return _start_worker(store, run_id, log_file)


def start_queued(store: RunStore, run_id: str) -> int:
    """Start the process of `run_id`, a run already in the store (a sweep's queued point,
    `mtl_core.executors`), as `start` does for a new run; its pid."""
    path = log_path(run_id, store_path=store.path)
    with _open_log(path) as log_file:
        proc, pid_start = _start_process(store, run_id, log_file, path)
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


# ---- the fork server ---------------------------------------------------------------------------
WARM_ENV = "MTL_LAB_WARM_WORKER"  # "0": never keep a fork server (keep_warm does nothing)
ANSWER_TIMEOUT_S = 60.0  # a fork takes milliseconds; a server silent this long is killed


class ForkedWorker:
    """A worker forked by the fork server: the parts of `subprocess.Popen` that `jobs` and its
    callers use (pid, poll, wait, terminate, kill). It is the server's child, not ours: the
    server reports its exit code; if the server is gone first, its pid is watched instead."""

    def __init__(self, pid: int, run_id: str, pid_start: int | None) -> None:
        self.pid = pid
        self.args = ["mtl_core.worker --fork-server", run_id]
        self.returncode: int | None = None
        self.pid_start = pid_start  # read by the server before it could reap the child
        self._ended = threading.Event()
        self._server_alive = True

    def _exited(self, code: int | None) -> None:
        self.returncode = code
        self._ended.set()

    def _orphaned(self) -> None:
        self._server_alive = False
        self._ended.set()  # wakes `wait`, which then watches the pid itself

    def poll(self) -> int | None:
        if self.returncode is None and not self._server_alive:
            if not run_process_alive({"pid": self.pid, "pid_start": self.pid_start}):
                self.returncode = -1  # ended after its server: how is only in the run store
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
            if self._server_alive:
                self._ended.wait(left)
            else:
                time.sleep(0.1 if left is None else min(0.1, left))
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            _signal(self.pid, self.pid_start, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class _ForkServer:
    """The running `python -m mtl_core.worker --fork-server` and a thread reading what it says."""

    def __init__(self, proc: subprocess.Popen, key: str) -> None:
        self.proc = proc
        self.pid_start = process_start_time(proc.pid)
        self.key = key  # its start-up environment (`_env_key`): a changed one needs a new server
        self.closing = False
        self.ready = threading.Event()
        self.gone = threading.Event()
        self.answers: list[dict[str, Any]] = []
        self.answered = threading.Condition()
        self.children: dict[int, ForkedWorker] = {}
        self.exits: dict[int, int] = {}  # exit codes of children not known yet (reported early)
        threading.Thread(target=self._read, name=f"fork-server-{proc.pid}", daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").strip()
            if line == "ready":
                self.ready.set()
                continue
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if "exit" in message:
                with self.answered:
                    child = self.children.pop(int(message["exit"]), None)
                    if child is None:
                        self.exits[int(message["exit"])] = int(message.get("code", -1))
                if child is not None:
                    child._exited(int(message.get("code", -1)))
            else:
                with self.answered:
                    if "pid" in message:
                        pid = int(message["pid"])
                        start = message.get("start")
                        child = ForkedWorker(pid, str(message.get("run_id")), None if start is None else int(start))
                        if pid in self.exits:
                            child._exited(self.exits.pop(pid))
                        else:
                            self.children[pid] = child
                        message["child"] = child
                    self.answers.append(message)
                    self.answered.notify_all()
        # Its stdout closed: the server has ended. Its children, if any, are watched by pid.
        if not self.ready.is_set() and not self.closing:
            _BROKEN_KEYS.add(self.key)  # it could not start here: never started again for this setup
        self.gone.set()
        self.ready.set()
        with self.answered:
            orphans, self.children = list(self.children.values()), {}
            self.answered.notify_all()
        for child in orphans:
            child._orphaned()

    def alive(self) -> bool:
        # Not `proc.poll()` alone: it answers None while the reaper thread is waiting on it.
        return (not self.gone.is_set() and self.proc.returncode is None
                and pid_alive(self.proc.pid, self.pid_start))

    def hurry(self) -> None:
        """Normal CPU priority for a server still importing at idle priority: a run wants it."""
        set_policy(self.proc.pid, getattr(os, "SCHED_OTHER", 0))

    def hand(self, message: dict[str, Any]) -> tuple[ForkedWorker | None, bool]:
        """Send one run: its forked worker (None when the server did not take it), and whether
        it is unknown if the server forked it (then the run must not be started again)."""
        if not self.ready.is_set():
            # Still importing at idle priority: this run starts cold, without waiting; the
            # server finishes at full speed for the next one.
            self.hurry()
            return None, False
        if not self.alive() or self.proc.stdin is None:
            return None, False
        with self.answered:  # one run at a time: its answer is the next line
            self.answers.clear()
            try:
                self.proc.stdin.write((json.dumps(message) + "\n").encode())
                self.proc.stdin.flush()
            except OSError:  # it died since the check
                return None, False
            deadline = time.monotonic() + ANSWER_TIMEOUT_S
            while not self.answers and not self.gone.is_set() and time.monotonic() < deadline:
                self.answered.wait(1.0)
            if not self.answers:
                # It ended, or hangs, before it answered: whether it forked is unknown. One
                # that hangs is killed, so that it cannot start the run late.
                _signal(self.proc.pid, self.pid_start, signal.SIGKILL)
                return None, True
            answer = self.answers.pop(0)
        return answer.get("child"), False  # a child, or its error answer: it did not fork

    def close(self) -> None:
        """End a server that will not be used: closing its stdin is its signal to exit (once
        its imports are done); one still importing is stopped at once (SIGTERM: it has no
        children yet, and its imports would be seconds of CPU for nothing)."""
        self.closing = True
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        if not self.ready.is_set() and self.proc.poll() is None:
            _signal(self.proc.pid, self.pid_start, signal.SIGTERM)


class _WarmState:
    def __init__(self) -> None:
        self.enabled = False
        self.server: _ForkServer | None = None
        self.lock = threading.Lock()  # Streamlit serves each browser session in a thread


_WARM = _WarmState()


def keep_warm(enabled: bool = True, *, start_now: bool = True) -> bool:
    """Keep one fork server ready from now on (False: stop, and end the one waiting).

    For long-lived callers that start runs, like the dashboard or a sweep's driver: each
    later `start` / `start_queued` forks the run's worker from it instead of starting a
    fresh process, skipping the seconds of CPU a fresh process spends importing torch. The
    server imports at idle CPU priority, so it never slows a run that is training; a run
    started before it is ready starts cold (as without it) and raises the server to normal
    priority for the next. `start_now=False` starts it only with the first run.
    `MTL_LAB_WARM_WORKER=0` turns this off. Returns whether a server is kept.
    """
    _WARM.enabled = bool(enabled) and os.environ.get(WARM_ENV, "1") != "0"
    if not _WARM.enabled:
        _discard_server()
    elif start_now:
        _ensure_server()
    return _WARM.enabled


def keeping_warm() -> bool:
    """Whether `keep_warm` is on in this process (and not turned off by MTL_LAB_WARM_WORKER=0)."""
    return _WARM.enabled and os.environ.get(WARM_ENV, "1") != "0"


def fork_server_pid() -> int | None:
    """The pid of the fork server kept now, if any (for tests and benchmarks)."""
    server = _WARM.server
    return server.proc.pid if server is not None and server.alive() else None


def fork_server_ready(timeout: float = 0.0) -> bool:
    """Whether the fork server kept now has finished its imports; with `timeout`, wait that
    long for it (at normal priority: a caller about to start runs, like a sweep's driver)."""
    server = _WARM.server
    if server is None or not server.alive():
        return False
    if timeout > 0 and not server.ready.is_set():
        server.hurry()
        server.ready.wait(timeout)
    return server.ready.is_set() and server.alive()


# Variables read when Python, torch or its math libraries start: a server started under
# other values of these cannot serve the run. Every other variable is passed with the run
# and set in its child before it trains (as a cold worker would inherit it).
_STARTUP_ENV_PREFIXES = ("PYTHON", "OMP_", "MKL_", "KMP_", "OPENBLAS_", "TORCH", "CUDA", "NVIDIA", "LD_", "PATH")


# Set by torch's OpenMP runtime in every process that imports torch: the dashboard has them
# or not depending on whether a page imported torch yet; a server sets them itself.
_SET_BY_IMPORT = frozenset({"KMP_INIT_AT_FORK", "KMP_DUPLICATE_LIB_OK"})


def _env_key() -> str:
    env = {k: v for k, v in _worker_env().items()
           if k.startswith(_STARTUP_ENV_PREFIXES) and k not in _SET_BY_IMPORT}
    blob = json.dumps([sys.executable, sorted(env.items())])
    return hashlib.sha256(blob.encode()).hexdigest()


# Start-up environments (`_env_key`) whose server ended on its own before it was ready (it
# cannot import here, or found CUDA initialised): their runs start cold, no server is retried.
_BROKEN_KEYS: set[str] = set()


def _ensure_server() -> _ForkServer | None:
    """The fork server for this environment: the live one kept, else a new one."""
    with _WARM.lock:
        key = _env_key()
        current = _WARM.server
        if current is not None and current.alive() and current.key == key:
            return current
        if current is not None:
            current.close()
        _WARM.server = None
        if key in _BROKEN_KEYS:
            return None
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "mtl_core.worker", "--fork-server"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,  # "ready", its children's pids and exit codes
                stderr=subprocess.DEVNULL,  # each child's output goes to its run's log
                env=_worker_env(),
                start_new_session=True,
            )
        except OSError:
            return None  # no server: runs start cold, as without keep_warm
        _WARM.server = _ForkServer(proc, key)
        _watch(f"fork-server-{proc.pid}", proc)
        return _WARM.server


def _hand_to_server(run_id: str, db: Path, log_file_path: Path) -> ForkedWorker | None:
    """Fork run `run_id`'s worker from the fork server; None when none is kept or it cannot
    take the run (then a cold worker starts it). Raises StoreError when the server ended
    after it was sent the run but before it answered (whether it forked is unknown)."""
    if not keeping_warm():
        return None
    server = _ensure_server()  # a dead one, or one of another environment, is replaced
    if server is None:
        return None
    message = {"run_id": run_id, "db": str(db), "log": str(log_file_path), "env": _worker_env(db)}
    child, unknown = server.hand(message)
    if child is not None:
        return child
    if server.alive() and not unknown:
        return None  # still importing, or it could not fork: this run starts cold
    with _WARM.lock:
        if _WARM.server is server:
            server.close()
            _WARM.server = None
    if unknown:  # it may have forked the run before it ended: never start it twice
        raise StoreError(f"the fork server ended (or did not answer within {ANSWER_TIMEOUT_S:.0f} s) while "
                         f"starting run {run_id}; start the run again")
    return None  # it died: this run starts cold, the next `start` starts a new server


def _discard_server() -> None:
    with _WARM.lock:
        if _WARM.server is not None:
            _WARM.server.close()
        _WARM.server = None


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
    """SIGTERM process `pid` only if it is still the one that started at `pid_start`."""
    return _signal(pid, pid_start, signal.SIGTERM)


def _signal(pid: int, pid_start: int | None, signum: int) -> bool:
    """Send `signum` to process `pid` only if it is still the one that started at `pid_start`.

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
            signal.pidfd_send_signal(pidfd, signum)
        else:
            os.kill(pid, signum)
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
