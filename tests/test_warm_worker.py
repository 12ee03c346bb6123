"""The standby worker (`jobs.keep_warm`): a run handed to a process started ahead trains
exactly like a cold one, in a process of its own, and can be cancelled; a standby that is
not needed goes away; nothing falls through when the standby is gone or stale."""

from __future__ import annotations

import os
import signal

import pytest

from mtl_core import jobs
from mtl_core.store import RunStore
from test_jobs import LONG, SHORT, _wait_for  # the same runs and wait as the cold workers' tests

TIMEOUT = 90.0  # a standby may still be importing torch at idle priority


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie until its reaper thread collects it: ended all the same.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.fixture
def warm(monkeypatch):
    monkeypatch.setenv("MTL_LAB_WARM_WORKER", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert jobs.keep_warm()
    try:
        yield
    finally:
        jobs.keep_warm(False)


def test_keep_warm_is_off_when_the_environment_says_so(monkeypatch):
    monkeypatch.setenv("MTL_LAB_WARM_WORKER", "0")
    assert jobs.keep_warm() is False
    assert jobs.standby_pid() is None


@pytest.mark.slow
def test_a_run_trains_in_the_standby_which_is_replaced_and_cancel_still_works(warm):
    first = _wait_for(jobs.standby_pid, TIMEOUT, "a standby worker")
    run_id = jobs.start(SHORT, name="warm")
    with RunStore() as store:
        assert store.get_run(run_id)["pid"] == first  # handed to the standby, not a fresh process
        # A new standby waits for the next run: one process per run, nothing shared.
        second = _wait_for(jobs.standby_pid, TIMEOUT, "the next standby")
        assert second != first
        assert jobs.wait(run_id, TIMEOUT) == "finished"
        result = store.result(run_id)
        assert set(result["tasks"][0]) >= {"name", "stl", "mtl"}
        assert len(result["tasks"]) == 2
        assert not store.metrics(run_id, metric="loss").empty
    _wait_for(lambda: _gone(first), TIMEOUT, "the used standby to exit")  # it ends with its run
    log = jobs.log_path(run_id).read_text()
    assert f"starts in pid {first}" in log and "finished" in log  # its output went to the run's log

    # The second standby takes an endless run, which a cancel stops at its next step.
    long_id = jobs.start(LONG, name="warm long")
    with RunStore() as store:
        assert store.get_run(long_id)["pid"] == second
        _wait_for(lambda: not store.metrics(long_id, metric="loss").empty, TIMEOUT,
                  "the first logged step")
        assert jobs.cancel(long_id)
        assert jobs.wait(long_id, TIMEOUT) == "cancelled"
        assert not store.metrics(long_id, metric="loss").empty  # curves kept
    _wait_for(lambda: _gone(second), TIMEOUT, "the cancelled run's process to exit")


@pytest.mark.slow
def test_a_dead_or_stale_standby_is_never_used(warm, monkeypatch):
    dead = _wait_for(jobs.standby_pid, TIMEOUT, "a standby worker")
    os.kill(dead, signal.SIGKILL)
    _wait_for(lambda: _gone(dead), TIMEOUT, "the killed standby to exit")
    run_id = jobs.start(SHORT, name="after a dead standby")  # falls back to a cold worker
    with RunStore() as store:
        assert store.get_run(run_id)["pid"] != dead
        assert jobs.wait(run_id, TIMEOUT) == "finished"

    # A standby started under other start-up settings (a variable read when Python or torch
    # starts, changed by the caller since) is not handed the run.
    # (That a cold worker trains the run to its end was shown just above: this one is cancelled.)
    stale = _wait_for(jobs.standby_pid, TIMEOUT, "a new standby")
    monkeypatch.setenv("PYTHONWARNINGS", "ignore")
    run_id = jobs.start(LONG, name="after a change of environment")
    with RunStore() as store:
        assert store.get_run(run_id)["pid"] not in (None, stale)
        assert jobs.cancel(run_id)
        assert jobs.wait(run_id, TIMEOUT) in ("cancelled", "interrupted")
    _wait_for(lambda: _gone(stale), TIMEOUT, "the stale standby to exit")  # told to go, not left waiting


@pytest.mark.slow
def test_an_idle_standby_goes_on_sigterm_and_when_told_to(warm):
    pid = _wait_for(jobs.standby_pid, TIMEOUT, "a standby worker")
    os.kill(pid, signal.SIGTERM)
    _wait_for(lambda: _gone(pid), TIMEOUT, "the standby to end on SIGTERM")
    assert jobs.keep_warm()  # a new one
    pid = _wait_for(jobs.standby_pid, TIMEOUT, "a new standby worker")
    jobs.keep_warm(False)
    _wait_for(lambda: _gone(pid), TIMEOUT, "the standby to end when no longer wanted")
    assert jobs.standby_pid() is None


@pytest.mark.slow
def test_importing_torch_in_the_caller_does_not_make_the_standby_stale(warm, monkeypatch):
    # torch's OpenMP runtime sets KMP_* variables when a dashboard page first imports it;
    # the standby started before that must still be used (it sets them itself).
    first = _wait_for(jobs.standby_pid, TIMEOUT, "a standby worker")
    monkeypatch.setenv("KMP_INIT_AT_FORK", "FALSE")
    monkeypatch.setenv("KMP_DUPLICATE_LIB_OK", "True")
    assert jobs.keep_warm() and jobs.standby_pid() == first
