"""The training process of one run: `python -m mtl_core.worker RUN_ID`.

Started by `mtl_core.jobs.start` in its own session, so that it outlives a dashboard
restart and a Ctrl-C in the dashboard's terminal. It reads the run's config from the
store (path in `$MTL_LAB_DB`, else the default store), trains, and writes everything
back through a `StoreSink`. Its stdout/stderr go to the run's log file.

Exit code 0 when the run finished or was cancelled, 1 when it failed.

`python -m mtl_core.worker --fork-server` (see `mtl_core.jobs.keep_warm`) imports torch and
the engine once, at idle CPU priority, says `ready` on stdout, then serves runs for as long as
its stdin is open: for each line `{"run_id": ..., "db": ..., "log": ..., "env": {...}}` it
forks a child that leaves its session, takes that environment and log and trains the run
exactly as above, and answers `{"pid": ...}`; when a child ends it says `{"exit": pid,
"code": n}`. The server itself never trains, so every child starts from the same freshly
imported, never-trained state (no torch thread pool, no CUDA context, no open store): what a
cold worker has after its imports, in milliseconds instead of seconds of CPU.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, Callable

from mtl_core import store as store_module
from mtl_core.errors import DiskFullError, MTLLabError, RunCancelled, StoreError
from mtl_core.sink import MultiSink, Sink

log = logging.getLogger("mtl_core.worker")  # not __main__ under `python -m`


def _on_sigterm(signum: int, frame: Any) -> None:
    # Only set a flag: the engine checks `sink.should_stop()` before every step and raises
    # RunCancelled there, between two optimiser steps, where stopping is clean.
    store_module.request_stop()


def describe_exception(exc: BaseException) -> str:
    """`Type: message (at file.py:line in function)`: one line for the run's error field."""
    where = ""
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        where = f" (at {Path(last.filename).name}:{last.lineno} in {last.name})"
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        # Not a bug to trace but a state of the machine: say it in the user's words first.
        place = f" writing {exc.filename}" if exc.filename else ""
        return f"disk full{place}: free some space and run it again ({type(exc).__name__}: {exc}{where})"
    return f"{type(exc).__name__}: {exc}{where}"


def _configured_device(config: dict[str, Any]) -> str:
    """The device the config asks for; `auto` is resolved by the engine (see StoreSink.on_start)."""
    return str(config.get("device") or "auto")


def execute(store: store_module.RunStore, run_id: str, *, extra_sink: Sink | None = None) -> str:
    """Train run `run_id` in this process, writing it to `store`; return how it ended.

    The one lifecycle of a run, whatever it trains (an experiment, a transfer run): used by
    the worker process and by `mtl-lab run` / `mtl-lab transfer` in the foreground
    (`extra_sink` is their progress bar). The run's status ends as finished, cancelled or
    failed (`RunStore.finish_run` / `cancel_run` / `fail_run`); the curves logged so far
    are kept in every case.
    """
    run_row = store.get_run(run_id)
    try:
        store.set_status(run_id, "running", pid=os.getpid(), device=_configured_device(run_row["config"]))
    except DiskFullError as exc:
        log.error("run %s cannot start: %s", run_id, exc)
        error = str(exc)
        return _record_end(run_id, "failed", lambda: store.fail_run(run_id, error))
    store_sink = store_module.StoreSink(store, run_id)
    sink: Sink = store_sink if extra_sink is None else MultiSink(store_sink, extra_sink)
    try:
        if store_module.stop_requested() or store.cancel_requested(run_id):
            raise RunCancelled("run cancelled before it started")
        result = _train(store, run_id, run_row["config"], sink)
    except (RunCancelled, KeyboardInterrupt) as exc:
        _ignore_sigterm()
        _flush(store_sink)
        partial = getattr(exc, "result", None)
        log.info("run %s cancelled: %s", run_id, str(exc) or "interrupted")
        kept = partial if isinstance(partial, dict) else None
        return _record_end(run_id, "cancelled", lambda: store.cancel_run(run_id, result=kept))
    except MTLLabError as exc:
        _ignore_sigterm()
        log.error("run %s failed: %s", run_id, exc)
        _flush(store_sink)
        error = str(exc)
        return _record_end(run_id, "failed", lambda: store.fail_run(run_id, error))
    except Exception as exc:
        _ignore_sigterm()
        # The full traceback goes to the log (the worker's log file); the store keeps one line.
        log.exception("run %s failed", run_id)
        _flush(store_sink)
        error = describe_exception(exc)
        return _record_end(run_id, "failed", lambda: store.fail_run(run_id, error))
    _ignore_sigterm()
    _flush(store_sink)
    # One transaction: a reader never sees `finished` without its result.
    status = _record_end(run_id, "finished", lambda: store.finish_run(run_id, result))
    if status == "finished":
        log.info("run %s finished", run_id)
    return status


def _record_end(run_id: str, status: str, write: Callable[[], str]) -> str:
    """Write how the run ended (`write`: the store's `finish_run` / `cancel_run` / `fail_run`,
    which use its reserve on a full disk); return the status that now describes the run.

    If nothing at all can be written, the reason goes to the log, and whoever opens the
    store next marks the run `interrupted` ("ended without recording why").
    """
    try:
        return write()
    except StoreError as exc:
        return _unrecorded(run_id, status, exc)


def _unrecorded(run_id: str, status: str, exc: BaseException) -> str:
    log.error(
        "run %s ended as %s, but that could not be written to the run store: %s. The store will "
        "show the run as interrupted, its process having ended without recording why.",
        run_id, status, exc,
    )
    return "failed"


def _train(store: store_module.RunStore, run_id: str, config: dict[str, Any], sink: Sink) -> dict[str, Any]:
    """Run the stored config: a transfer experiment (`kind: transfer`) or a multi-task one."""
    from mtl_core.threads import apply_budget

    # The thread budget is applied right after the config is read, before the dataset or a
    # model is built (mtl_core.threads: torch's default threads stall under contention).
    if config.get("kind") == "transfer":
        from mtl_core.transfer import TransferConfig, run_transfer

        transfer_config = TransferConfig.parse(config)
        apply_budget(transfer_config, store=store, run_id=run_id)
        return run_transfer(transfer_config, sink=sink, run_id=run_id)
    from mtl_core.config import ExperimentConfig
    from mtl_core.experiment import run_experiment

    experiment_config = ExperimentConfig.parse(config)
    apply_budget(experiment_config, store=store, run_id=run_id)
    return run_experiment(experiment_config, sink=sink, baseline_cache=store, run_id=run_id)


def run(run_id: str, *, store_path: str | Path | None = None) -> int:
    """The worker process's body: train run `run_id`; return the exit code (0 finished or
    cancelled, 1 failed)."""
    # Installed before anything slow (importing torch), so that a cancel arriving while
    # we start up is a cancel, not a kill.
    signal.signal(signal.SIGTERM, _on_sigterm)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    path = store_path if store_path is not None else os.environ.get("MTL_LAB_DB") or None
    with store_module.RunStore(path) as store:
        store.get_run(run_id)  # an unknown id is one line on stderr (see main), not a log of a start
        log.info("run %s starts in pid %d, store %s", run_id, os.getpid(), store.path)
        status = execute(store, run_id)
    return exit_code(status)


def exit_code(status: str) -> int:
    """The worker's exit code for a run that ended as `status`: 1 if it failed, else 0."""
    return 1 if status == "failed" else 0


def _ignore_sigterm() -> None:
    # The run has ended; a late cancel must not interrupt writing how it ended. Only the
    # worker installs our handler; in the foreground CLI the default action is kept.
    if signal.getsignal(signal.SIGTERM) is _on_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _flush(sink: store_module.StoreSink) -> None:
    try:
        sink.flush()
    except StoreError as exc:  # the run's end is still worth recording
        log.error("could not write the run's last logged rows: %s", exc)
    except Exception:
        log.exception("could not write the run's last logged rows")


# ---- warm processes ----------------------------------------------------------------------------
def set_policy(tid: int, policy: int) -> None:
    """Scheduling policy of one thread, or of a process's main thread (its pid) (Linux);
    where not allowed, priority stays as it is."""
    try:
        os.sched_setscheduler(tid, policy, os.sched_param(0))
    except (AttributeError, OSError):
        pass


def _warm_up() -> None:
    """Import what every run needs, so that a run handed over starts training at once."""
    import torch

    import mtl_core.experiment  # noqa: F401  (engine, models, weighting, datasets, metrics)
    import mtl_core.threads  # noqa: F401
    import mtl_core.transfer  # noqa: F401

    # An optimiser's first construction imports torch._dynamo (~3 s on a small CPU).
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])


def _redirect_output(path: str) -> None:
    """Point stdout and stderr (the file descriptors) at the run's log file."""
    if not path:
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError:
        return  # the run still trains and records its end in the store
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


# ---- the fork server -------------------------------------------------------------------------
def _say(message: dict[str, Any] | str) -> None:
    """One line to the server's caller. `os.write` of a short line to a pipe is atomic, and
    unbuffered, so a line written by the SIGCHLD handler never lands inside another one."""
    line = message if isinstance(message, str) else json.dumps(message)
    try:
        os.write(1, (line + "\n").encode())
    except OSError:
        pass  # its caller has gone: the next read of stdin ends the server


def _reap_children(signum: int, frame: Any) -> None:
    """SIGCHLD in the fork server: collect every child that ended and report its exit code."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _say({"exit": pid, "code": os.waitstatus_to_exitcode(status)})


def fork_server() -> int:
    """The body of `python -m mtl_core.worker --fork-server` (see the module's docstring)."""
    signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(0))  # its children live on
    main_tid = threading.get_native_id() if hasattr(threading, "get_native_id") else None
    if hasattr(os, "SCHED_IDLE") and main_tid is not None:
        set_policy(main_tid, os.SCHED_IDLE)  # only CPU no one else wants (jobs raises it when a run comes)
    try:
        _warm_up()
    except Exception:  # a broken install shows itself in each run instead (a cold start's error)
        pass
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        # A forked child could not use the GPU ("Cannot re-initialize CUDA in forked
        # subprocess"): serve nothing, its caller starts runs cold.
        print("fork server: CUDA was initialised while importing; not serving", file=sys.stderr)
        return 3
    if hasattr(os, "SCHED_OTHER") and main_tid is not None:
        set_policy(main_tid, os.SCHED_OTHER)  # what its children inherit
    signal.signal(signal.SIGCHLD, _reap_children)
    _say("ready")
    stdin = sys.stdin.buffer
    while True:
        line = stdin.readline()
        if not line:
            return 0  # its caller ended or let it go
        try:
            message = json.loads(line)
            run_id = str(message["run_id"])
        except (ValueError, KeyError, TypeError):
            _say({"error": "not a run: " + line[:200].decode(errors="replace")})
            continue
        # Until the answer is written, a child that ends at once is not reported before its pid.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        try:
            pid = os.fork()
            if pid == 0:
                _forked_child(run_id, message)  # never returns
            # Its start time makes (pid, start) an identity; read before it can be reaped.
            _say({"pid": pid, "run_id": run_id, "start": store_module.process_start_time(pid)})
        except OSError as exc:
            _say({"error": f"could not fork: {exc}", "run_id": run_id})
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})


def _forked_child(run_id: str, message: dict[str, Any]) -> None:
    """In a child of the fork server: become a worker of its own and train `run_id`; exit."""
    code = 1
    try:
        os.setsid()  # its own session, as `jobs` starts a cold worker: survives its starters
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # `run` installs the worker's own handler
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)  # not the server's requests
        for fd in (1, 2):
            os.dup2(devnull, fd)  # not the server's answers; the run's log just below
        os.close(devnull)
        sys.stdin = open(os.devnull)
        _redirect_output(str(message.get("log") or ""))
        env = message.get("env")
        if isinstance(env, dict):
            os.environ.clear()
            os.environ.update({str(k): str(v) for k, v in env.items()})
        db = str(message.get("db") or "") or None
        if db is not None:
            os.environ["MTL_LAB_DB"] = db
        code = _run_reporting(run_id, db)
    except BaseException:  # noqa: BLE001 - whatever happens, this process must not return to the loop
        try:
            traceback.print_exc()
        except Exception:
            pass
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        logging.shutdown()
        os._exit(code)


def _run_reporting(run_id: str, store_path: str | None = None) -> int:
    """`run`, with an MTL Lab error (an unknown run id, an unusable store) as one line on
    stderr and exit code 2 instead of a traceback."""
    try:
        return run(run_id, store_path=store_path)
    except MTLLabError as exc:
        try:
            print(f"error: {exc}", file=sys.stderr)
        except OSError:
            pass  # stderr is the run's log on a full disk: the exit code still says it
        return 2


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m mtl_core.worker RUN_ID | --fork-server", file=sys.stderr)
        return 2
    return fork_server() if args[0] == "--fork-server" else _run_reporting(args[0])


if __name__ == "__main__":
    sys.exit(main())
