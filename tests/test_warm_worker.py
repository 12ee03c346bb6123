"""The fork server (`jobs.keep_warm`): each run is a child forked from one process that
imported torch once, trains exactly like a cold worker in a process and a session of its
own, and can be cancelled; a server that is not needed goes away, its children live on; and
nothing falls through when the server is gone or stale.

The tests that keep the server come first and those that end it after: each fresh server
imports torch again (~8 CPU-s here)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from mtl_core import jobs
from mtl_core.store import RunStore
from test_jobs import LONG, SHORT, _wait_for  # the same runs and wait as the cold workers' tests

TIMEOUT = 120.0  # a server may still be importing torch at idle priority


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie until its reaper collects it: ended all the same.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _started_cold(run_id: str, *, not_pid: int) -> None:
    """Run `run_id` was started as a cold worker (`python -m mtl_core.worker`, a process of
    its own, not `not_pid`), which a cancel still ends. That a cold worker trains to the end
    is test_jobs' part: here it is cancelled at once, not left to import torch for nothing."""
    proc = jobs._CHILDREN.get(run_id)
    assert isinstance(proc, subprocess.Popen) and "mtl_core.worker" in proc.args  # a cold worker
    with RunStore() as store:
        assert store.get_run(run_id)["pid"] == proc.pid != not_pid
    assert jobs.cancel(run_id)
    assert jobs.wait(run_id, TIMEOUT) == "cancelled"
    proc.wait(TIMEOUT)


@pytest.fixture
def warm(monkeypatch):
    """The test process's fork server (conftest keeps one, as the dashboard does), ready."""
    monkeypatch.setenv("MTL_LAB_WARM_WORKER", "1")
    assert jobs.keep_warm()
    _wait_for(jobs.fork_server_ready, TIMEOUT, "the fork server's imports")
    yield jobs.fork_server_pid()


@pytest.mark.slow
def test_runs_are_forked_workers_of_their_own_and_cancel_still_works(warm):
    server = warm
    first = jobs.start(SHORT, name="warm")
    second = jobs.start(SHORT, name="warm too")
    procs = {run_id: jobs._CHILDREN[run_id] for run_id in (first, second)}
    with RunStore() as store:
        pids = [store.get_run(run_id)["pid"] for run_id in (first, second)]
        assert pids == [procs[first].pid, procs[second].pid]
        assert len(set(pids)) == 2 and server not in pids  # one process per run, not the server
        for pid in pids:
            if not _gone(pid):
                assert _parent(pid) == server
                assert os.sched_getscheduler(pid) == os.SCHED_OTHER  # not the server's idle priority
                # A session of its own (its first act once forked): outlives its starters.
                _wait_for(lambda: _gone(pid) or os.getsid(pid) == pid, TIMEOUT, "the worker's own session")
        for run_id in (first, second):
            assert jobs.wait(run_id, TIMEOUT) == "finished"
            result = store.result(run_id)
            assert len(result["tasks"]) == 2 and set(result["tasks"][0]) >= {"name", "stl", "mtl"}
            assert not store.metrics(run_id, metric="loss").empty
    for run_id, proc in procs.items():
        assert proc.wait(TIMEOUT) == 0  # the exit code the server reported
        log = jobs.log_path(run_id).read_text()
        assert f"starts in pid {proc.pid}" in log and "finished" in log  # its output went to its log
    assert jobs.fork_server_pid() == server  # the same server: torch was imported once

    # An endless run, which a cancel stops at its next step.
    long_id = jobs.start(LONG, name="warm long")
    with RunStore() as store:
        pid = store.get_run(long_id)["pid"]
        assert pid not in (None, server)
        _wait_for(lambda: not store.metrics(long_id, metric="loss").empty, TIMEOUT, "the first logged step")
        assert jobs.cancel(long_id)
        assert jobs.wait(long_id, TIMEOUT) == "cancelled"
        assert not store.metrics(long_id, metric="loss").empty  # curves kept
    _wait_for(lambda: _gone(pid), TIMEOUT, "the cancelled run's process to exit")


@pytest.mark.slow
def test_a_run_that_fails_in_a_forked_worker_is_failed_with_exit_code_1(warm):
    run_id = jobs.start({**SHORT, "optimizer": {"name": "sgd", "lr": 1e30}, "baselines": False}, name="diverges")
    proc = jobs._CHILDREN[run_id]
    assert jobs.wait(run_id, TIMEOUT) == "failed"
    assert proc.wait(TIMEOUT) == 1
    with RunStore() as store:
        assert "diverged" in store.get_run(run_id)["error"]


@pytest.mark.slow
def test_importing_torch_in_the_caller_does_not_make_the_server_stale(warm, monkeypatch):
    # torch's OpenMP runtime sets KMP_* variables when a dashboard page first imports it;
    # the server started before that must still be used (it sets them itself).
    monkeypatch.setenv("KMP_INIT_AT_FORK", "FALSE")
    monkeypatch.setenv("KMP_DUPLICATE_LIB_OK", "True")
    assert jobs.keep_warm() and jobs.fork_server_pid() == warm


@pytest.mark.slow
def test_a_stale_server_is_told_to_go_and_a_dead_one_is_never_used(warm, monkeypatch):
    # A server started under other start-up settings (a variable read when Python or torch
    # starts, changed by the caller since) is not handed the run: it is told to go, the run
    # starts cold (a new server imports meanwhile, for the next run).
    stale = warm
    monkeypatch.setenv("PYTHONWARNINGS", "ignore")
    run_id = jobs.start(SHORT, name="after a change of environment")
    _started_cold(run_id, not_pid=stale)
    _wait_for(lambda: _gone(stale), TIMEOUT, "the stale server to exit")
    assert jobs.fork_server_pid() not in (None, stale)
    monkeypatch.delenv("PYTHONWARNINGS")
    assert jobs.keep_warm()  # the settings are back: the new server is stale in turn, and replaced
    _wait_for(jobs.fork_server_ready, TIMEOUT, "the server's imports")

    # A server that died is never handed a run: the run starts cold, a new server is started.
    dead = jobs.fork_server_pid()
    os.kill(dead, signal.SIGKILL)
    _wait_for(lambda: _gone(dead), TIMEOUT, "the killed server to exit")
    run_id = jobs.start(SHORT, name="after a dead server")
    _started_cold(run_id, not_pid=dead)
    assert jobs.fork_server_pid() not in (None, dead)


@pytest.mark.slow
def test_a_server_goes_on_sigterm_and_when_told_to_and_its_runs_live_on(warm):
    run_id = jobs.start(LONG, name="outlives its server")
    proc = jobs._CHILDREN[run_id]
    assert _parent(proc.pid) == warm
    os.kill(warm, signal.SIGTERM)
    _wait_for(lambda: _gone(warm), TIMEOUT, "the server to end on SIGTERM")
    with RunStore() as store:
        _wait_for(lambda: not store.metrics(run_id, metric="loss").empty, TIMEOUT, "a logged step")
        steps = int(store.metrics(run_id, metric="loss")["step"].max())
        _wait_for(lambda: int(store.metrics(run_id, metric="loss")["step"].max()) > steps, TIMEOUT,
                  "a step after the server ended")
        assert proc.poll() is None and jobs.status(run_id) == "running"
        assert jobs.cancel(run_id)  # still a process of its own to signal
        assert jobs.wait(run_id, TIMEOUT) == "cancelled"
    proc.wait(TIMEOUT)  # watched by its pid once its server has gone

    assert jobs.keep_warm()  # a new server; told to go, it goes
    server = jobs.fork_server_pid()
    assert server not in (None, warm)
    jobs.keep_warm(False)
    _wait_for(lambda: _gone(server), TIMEOUT, "the server to end when no longer wanted")
    assert jobs.fork_server_pid() is None


@pytest.mark.slow
def test_a_server_that_hangs_before_it_answers_fails_the_run_and_never_starts_it_late(warm, monkeypatch):
    # A stopped server cannot answer: the run is failed with a message saying what to do,
    # the server is killed (it must not fork the run later), and the next run starts cold.
    monkeypatch.setattr(jobs, "ANSWER_TIMEOUT_S", 1.0)
    os.kill(warm, signal.SIGSTOP)
    try:
        with pytest.raises(jobs.StoreError, match="start the run again"):
            jobs.start(SHORT, name="server hangs")
        _wait_for(lambda: _gone(warm), TIMEOUT, "the hung server to be killed")
    finally:
        if not _gone(warm):
            os.kill(warm, signal.SIGCONT)
    with RunStore() as store:
        runs = store.runs()
        failed = runs[runs["name"] == "server hangs"].iloc[0]
        assert failed["status"] == "failed" and "start the run again" in store.get_run(failed["id"])["error"]
    run_id = jobs.start(SHORT, name="after a hung server")
    _started_cold(run_id, not_pid=warm)


def test_a_server_that_cannot_start_is_not_started_again_and_runs_start_cold(monkeypatch):
    # A server that ends before it is ready (here: its interpreter is `false`) is not restarted
    # at every page run for the same setup: runs start cold instead.
    monkeypatch.setenv("MTL_LAB_WARM_WORKER", "1")
    monkeypatch.setattr(sys, "executable", "/bin/false")
    assert jobs.keep_warm()
    broken = jobs._WARM.server
    assert broken is not None
    _wait_for(broken.gone.is_set, TIMEOUT, "the server that cannot start to end")
    assert jobs.keep_warm() and jobs.fork_server_pid() is None  # not started again
    assert jobs._WARM.server is None
    monkeypatch.undo()  # another interpreter, another setup: a server may start again
    jobs.keep_warm(start_now=False)


def test_keep_warm_is_off_when_the_environment_says_so(monkeypatch):
    monkeypatch.setenv("MTL_LAB_WARM_WORKER", "0")
    assert jobs.keep_warm() is False
    assert jobs.fork_server_pid() is None
    assert not jobs.keeping_warm()
