"""Pause / resume / step a run (issue 15: a teacher stops a run mid-way, explains, steps it on):
flags in the store that the run's process polls between steps, like a cancel."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from test_jobs import _wait_for  # the suite's one wait-on-a-condition helper

from mtl_core import jobs, worker
from mtl_core.errors import StoreError
from mtl_core.store import RunStore

CONFIG = {"dataset": {"name": "mmoe_synthetic", "options": {"n_samples": 300, "input_dim": 8}},
          "steps": 40, "batch_size": 32, "eval_every": 20, "log_every": 1, "baselines": False,
          "interference": False, "seed": 0}
TIMEOUT = 60.0


def _until(predicate, what: str):
    return _wait_for(predicate, TIMEOUT, what)


def test_pause_resume_and_step_are_recorded_only_for_runs_that_have_not_ended(tmp_path):
    with RunStore(tmp_path / "lab.db") as store:
        run_id = store.create_run(CONFIG)
        assert store.run_controls(run_id) == (False, False, 0)
        assert store.grant_steps(run_id) is False  # running freely: no permission needed
        assert store.set_paused(run_id, True) and store.get_run(run_id)["paused"] is True
        assert store.grant_steps(run_id, 2) and store.run_controls(run_id) == (False, True, 2)
        assert store.take_step_grant(run_id) and store.run_controls(run_id)[2] == 1
        assert store.set_paused(run_id, False) and store.run_controls(run_id) == (False, False, 0)
        with pytest.raises(StoreError, match="at least 1"):
            store.grant_steps(run_id, 0)
        store.set_status(run_id, "cancelled")
        assert store.set_paused(run_id, True) is False and store.grant_steps(run_id) is False
        with pytest.raises(StoreError, match="no run"):
            store.set_paused("20200101-000000-abcdef", True)


def test_a_paused_run_waits_steps_one_at_a_time_and_resumes_from_the_same_step(tmp_path):
    db = tmp_path / "lab.db"
    with RunStore(db) as store:
        run_id = store.create_run(CONFIG)
    assert jobs.pause(run_id, store_path=db)  # paused before its first step
    ended: list[str] = []
    thread = threading.Thread(target=lambda: ended.append(worker.execute(RunStore(db), run_id)), daemon=True)
    thread.start()
    with RunStore(db) as store:
        def train_steps() -> int:
            loss = store.metrics(run_id, split="train", metric="loss")
            return 0 if loss.empty else int(loss["step"].max())

        _until(lambda: store.get_run(run_id)["status"] == "running", "the run to start")
        time.sleep(0.5)
        assert train_steps() == 0, "a paused run takes no step"
        assert jobs.step(run_id, store_path=db)
        _until(lambda: train_steps() == 1, "the one granted step")
        assert jobs.step(run_id, 3, store_path=db)
        _until(lambda: train_steps() == 4, "three more steps")
        time.sleep(0.5)
        assert train_steps() == 4 and store.get_run(run_id)["status"] == "running", "it waits again"
        assert jobs.resume(run_id, store_path=db)
        thread.join(TIMEOUT)
        assert ended == ["finished"]
        steps = store.metrics(run_id, split="train", metric="loss")["step"]
        assert sorted(set(steps)) == list(range(1, CONFIG["steps"] + 1)), "no step lost or repeated"
        assert jobs.pause(run_id, store_path=db) is False  # it has ended


def test_a_paused_run_can_be_cancelled_and_keeps_its_curves(tmp_path):
    db = tmp_path / "lab.db"
    with RunStore(db) as store:
        run_id = store.create_run({**CONFIG, "steps": 10_000})
    ended: list[str] = []
    thread = threading.Thread(target=lambda: ended.append(worker.execute(RunStore(db), run_id)), daemon=True)
    thread.start()
    with RunStore(db) as store:
        _until(lambda: not store.metrics(run_id, split="train", metric="loss").empty, "a first step")
        assert jobs.pause(run_id, store_path=db)
        at = _until(lambda: store.get_run(run_id)["step"], "the step the run paused at")
        store.request_cancel(run_id)  # what jobs.cancel does besides signalling the process
        thread.join(TIMEOUT)
        assert ended == ["cancelled"]
        assert store.get_run(run_id)["step"] >= at
        assert not store.metrics(run_id, split="train", metric="loss").empty


def test_the_train_page_pauses_steps_and_resumes_the_watched_run(tmp_path, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from mtl_core.config import ExperimentConfig

    monkeypatch.setenv("MTL_LAB_HOME", str(tmp_path))
    st.cache_resource.clear()
    st.cache_data.clear()
    config = ExperimentConfig.parse({**CONFIG, "log_every": 5}).to_dict()
    with RunStore(tmp_path / "mtl_lab.db") as store:
        run_id = store.create_run(config)
        store.set_status(run_id, "running", pid=os.getpid())  # "trained" by this living process
        store.log_metrics(run_id, [("mtl", 5, t, "train", "loss", 0.5, 0.0) for t in ("y1", "y2", "total")])
    try:
        at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py"), default_timeout=60)
        at.query_params["run"] = run_id
        at.run()
        assert not at.exception, at.exception
        assert not [b for b in at.button if b.key in ("resume", "step")]
        at.button(key="pause").click().run()
        with RunStore(tmp_path / "mtl_lab.db") as store:
            assert store.run_controls(run_id) == (False, True, 0)
        assert any("**paused**" in p.proto.text for p in at.get("progress"))
        at.button(key="step").click().run()
        assert at.button(key="step").label == "Step ×5"
        with RunStore(tmp_path / "mtl_lab.db") as store:
            assert store.run_controls(run_id) == (False, True, 5)  # one logged point: log_every steps
        at.button(key="resume").click().run()
        with RunStore(tmp_path / "mtl_lab.db") as store:
            assert store.run_controls(run_id) == (False, False, 0)
        assert at.button(key="pause")
    finally:
        st.cache_resource.clear()
        st.cache_data.clear()
