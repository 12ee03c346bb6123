"""Background runs: start, finish, cancel, survive a kill -9, and record how they ended.

Four real worker processes are started together once per module (each pays for
importing torch, so starting them side by side keeps this file fast); each test then
watches its own run. The three endless runs (one a transfer run started as
`mtl-lab transfer --background` does) are stopped first, so that they do not
slow the short one down. The worker's error handling is also tested in-process.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

import yaml

from mtl_core import cli, jobs, worker
from mtl_core.errors import ConfigError, RunCancelled, StoreError
from mtl_core.store import RunStore, StoreSink

DATA = {"name": "mmoe_synthetic", "options": {"n_samples": 300, "input_dim": 8}}
SHORT = {"dataset": DATA, "steps": 30, "batch_size": 32, "eval_every": 10}
# Long enough never to finish inside the test; it is cancelled or killed.
LONG = {"dataset": DATA, "steps": 100_000, "batch_size": 32, "eval_every": 50, "baselines": False,
        "interference": False}
# A transfer run whose pre-training never ends inside the test (`mtl-lab transfer --background`).
TRANSFER = {
    "base": {"dataset": {"name": "mmoe_synthetic", "options": {"n_samples": 300, "input_dim": 8, "n_tasks": 3}},
             "steps": 100_000, "batch_size": 32, "eval_every": 50, "interference": False},
    "sources": ["y1", "y2"], "target": "y3", "arms": ["scratch"], "fractions": [1.0], "target_steps": 10,
}
TIMEOUT = 60.0


def _wait_for(predicate, timeout: float = TIMEOUT, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _train_rows(store: RunStore, run_id: str) -> int:
    return store._read("SELECT count(*) FROM metrics WHERE run_id=?", (run_id,))[0][0]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A fresh MTL_LAB_HOME with four runs started side by side: short, to-cancel, to-kill and a
    transfer run started by the CLI (in-process: `mtl-lab transfer --background`)."""
    home = tmp_path_factory.mktemp("lab")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MTL_LAB_HOME", str(home))
        mp.setenv("OMP_NUM_THREADS", "1")  # three workers on a small machine
        runs = {
            "short": jobs.start(SHORT, name="short"),
            "cancel": jobs.start(LONG, name="to cancel"),
            "kill": jobs.start(LONG, name="to kill"),
        }
        config = home / "transfer.yaml"
        config.write_text(yaml.safe_dump(TRANSFER))
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert cli.main(["transfer", "--config", str(config), "--name", "transfer", "--background"]) == 0
        runs["transfer"] = out.getvalue().strip().splitlines()[-1]
        procs = {key: jobs._CHILDREN[run_id] for key, run_id in runs.items()}
        try:
            yield {"home": home, "db": home / "mtl_lab.db", "runs": runs, "procs": procs}
        finally:
            # Never leave a worker behind, whatever a test did.
            for proc in procs.values():
                if proc.poll() is None:
                    proc.kill()
                proc.wait(timeout=30)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MTL_LAB_HOME", str(tmp_path))
    return tmp_path


# ---- real worker processes ------------------------------------------------------------------
@pytest.mark.slow
def test_killed_worker_leaves_a_sound_store_and_an_interrupted_run(lab):
    run_id = lab["runs"]["kill"]
    proc = lab["procs"]["kill"]
    with RunStore(lab["db"]) as store:
        _wait_for(lambda: _train_rows(store, run_id) >= 30, what="a few logged steps")
        pid = store.get_run(run_id)["pid"]
        assert pid == proc.pid
        before = _train_rows(store, run_id)
    os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=30)

    assert run_id not in set(jobs.active()["id"])
    with RunStore(lab["db"]) as store:  # reopened: reads the crash's aftermath
        assert store._read("PRAGMA integrity_check") == [("ok",)]
        assert _train_rows(store, run_id) >= before  # every committed step is still there
        steps = store.metrics(run_id, split="train", metric="loss")
        assert steps.groupby("step").size().eq(3).all()  # 2 tasks + total: no half steps
        run = store.get_run(run_id)
        assert run["status"] == "interrupted"
        assert f"pid {pid}" in run["error"] and "curves up to step" in run["error"]
    assert jobs.cancel(run_id) is False


@pytest.mark.slow
def test_cancel_ends_the_run_as_cancelled_and_keeps_its_curves(lab):
    run_id = lab["runs"]["cancel"]
    with RunStore(lab["db"]) as store:
        _wait_for(lambda: _train_rows(store, run_id) > 0, what="the first logged step")
        before = _train_rows(store, run_id)
        assert jobs.cancel(run_id) is True
        assert jobs.wait(run_id, TIMEOUT) == "cancelled"
        assert lab["procs"]["cancel"].wait(timeout=30) == 0
        assert _train_rows(store, run_id) >= before
        run = store.get_run(run_id)
        assert run["cancel_requested"] and run["finished_at"]
        assert run["step"] < 100_000
    assert jobs.cancel(run_id) is False  # cancelling again is harmless
    assert jobs.status(run_id) == "cancelled"


@pytest.mark.slow
def test_transfer_in_the_background_trains_in_a_worker_and_can_be_cancelled(lab, capsys):
    run_id = lab["runs"]["transfer"]
    with RunStore(lab["db"]) as store:
        run = store.get_run(run_id)
        assert run["config"]["kind"] == "transfer" and run["name"] == "transfer"
        _wait_for(lambda: _train_rows(store, run_id) > 0, what="the first logged pre-training step")
        assert store.get_run(run_id)["phase"] == "pretrain"
    assert cli.main(["cancel", run_id]) == 0
    assert f"cancel requested for {run_id}" in capsys.readouterr().out
    assert jobs.wait(run_id, TIMEOUT) == "cancelled"
    assert lab["procs"]["transfer"].wait(timeout=30) == 0
    with RunStore(lab["db"]) as store:
        run = store.get_run(run_id)
        assert run["cancel_requested"] and run["finished_at"] and run["step"] < 100_000
        assert set(store.metrics(run_id)["phase"]) == {"pretrain"}  # its curves are kept


@pytest.mark.slow
def test_started_run_finishes_with_results_and_curves_stored(lab):
    run_id = lab["runs"]["short"]
    assert jobs.wait(run_id, TIMEOUT) == "finished"
    assert lab["procs"]["short"].wait(timeout=30) == 0
    with RunStore(lab["db"]) as store:
        run = store.get_run(run_id)
        assert run["name"] == "short" and run["error"] is None
        assert run["started_at"] and run["finished_at"] and run["device"] == "cpu"
        result = store.result(run_id)
        assert result is not None and result["run_id"] == run_id
        assert {row["name"] for row in result["tasks"]} == {"y1", "y2"}
        curves = store.metrics(run_id)
        assert {"mtl", "stl:y1", "stl:y2"} <= set(curves["phase"])
        assert {"train", "val", "test"} <= set(curves["split"])
        assert store.runs().set_index("id").loc[run_id, "delta_m"] == pytest.approx(result["delta_m"])
    log_file = jobs.log_path(run_id)
    assert log_file == lab["home"] / "logs" / f"{run_id}.log"
    assert f"run {run_id} finished" in log_file.read_text()


@pytest.mark.slow
def test_store_the_workers_wrote_is_plain_sqlite(lab):
    with sqlite3.connect(lab["db"]) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM runs")}
    assert {"short", "to cancel", "to kill"} <= names


# ---- cheap behaviours ---------------------------------------------------------------------------
def test_invalid_config_is_refused_before_anything_is_stored(home):
    with pytest.raises(ConfigError, match="steps"):
        jobs.start({**SHORT, "steps": 0})
    with RunStore() as store:
        assert store.runs().empty


def test_cancelling_a_run_that_never_got_a_process_cancels_it_at_once(home):
    with RunStore() as store:
        run_id = store.create_run(SHORT)
    assert jobs.cancel(run_id) is True
    assert jobs.status(run_id) == "cancelled"
    assert jobs.cancel(run_id) is False


def test_cancelling_an_unknown_run_says_so(home):
    with pytest.raises(StoreError, match="no run 'nope'"):
        jobs.cancel("nope")


def test_active_lists_only_queued_and_running_runs(home):
    with RunStore() as store:
        queued = store.create_run(SHORT)
        running = store.create_run(SHORT)
        store.set_status(running, "running", pid=os.getpid())
        done = store.create_run(SHORT)
        store.set_status(done, "finished")
    assert set(jobs.active()["id"]) == {queued, running}


# ---- the worker's handling of how a run ends (in-process) ------------------------------------------
def _fake_experiment(outcome):
    def run_experiment(config, *, sink, baseline_cache, run_id):
        sink.on_start("mtl", {"total_steps": 20, "device": "cpu"})
        sink.on_train("mtl", 10, {"y1": 0.5, "y2": 0.4}, 0.9, {"y1": 1.0, "y2": 1.0}, {})
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return run_experiment


@pytest.mark.parametrize(
    ("outcome", "status", "error"),
    [
        ({"delta_m": 1.5, "tasks": []}, "finished", None),
        (RunCancelled("run cancelled at step 10 of 20"), "cancelled", None),
        (ConfigError("weights: give a finite number"), "failed", "weights: give a finite number"),
        (ZeroDivisionError("division by zero"), "failed",
         "ZeroDivisionError: division by zero (at test_jobs.py:"),
    ],
)
def test_worker_records_how_the_run_ended(home, monkeypatch, outcome, status, error):
    import mtl_core.experiment as experiment  # here, not at the top: torch loads after the workers

    monkeypatch.setattr(experiment, "run_experiment", _fake_experiment(outcome))
    with RunStore() as store:
        run_id = store.create_run(SHORT)
        assert worker.execute(store, run_id) == status
        run = store.get_run(run_id)
        assert run["status"] == status and run["pid"] == os.getpid() and run["finished_at"]
        if error is None:
            assert run["error"] is None
        else:
            assert run["error"].startswith(error)
        assert _train_rows(store, run_id) == 5  # the curve logged before the end is kept
        if status == "finished":
            assert store.result(run_id) == outcome
    assert worker.exit_code(status) == (1 if status == "failed" else 0)


def test_worker_does_not_train_a_run_cancelled_before_it_started(home, monkeypatch):
    import mtl_core.experiment as experiment

    monkeypatch.setattr(experiment, "run_experiment", _fake_experiment({"delta_m": 0.0}))
    with RunStore() as store:
        run_id = store.create_run(SHORT)
        store.request_cancel(run_id)
        assert worker.execute(store, run_id) == "cancelled"
        assert _train_rows(store, run_id) == 0


def test_sigterm_in_the_worker_asks_the_sink_to_stop(home):
    with RunStore() as store:
        sink = StoreSink(store, store.create_run(SHORT))
        try:
            worker._on_sigterm(signal.SIGTERM, None)
            assert sink.should_stop() is True
        finally:
            from mtl_core.store import reset_stop

            reset_stop()
