"""The thread budget (mtl_core.threads): the engine, not torch's default, decides how
many intra-op threads a training process uses; an explicit `threads: N` wins.

Nothing here measures time: the choice is a pure function of the model's size, the other
active runs and the machine's cores, and the worker's part is checked by what the run
records and by the thread count torch has when the dataset is built.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from mtl_core import jobs, threads, worker
from mtl_core.config import ExperimentConfig
from mtl_core.errors import StoreError
from mtl_core.experiment import run_experiment
from mtl_core.store import RunStore
from mtl_core.threads import (
    LARGE_MAX_THREADS,
    LARGE_MODEL_PARAMS,
    HUGE_MAX_THREADS,
    HUGE_MODEL_PARAMS,
    choose_threads,
    decide_threads,
    estimate_params,
)
from mtl_core.transfer import TransferConfig

QUICKSTART_PARAMS = 32 * 64 + 64 + 64 * 64 + 64  # the quickstart's MLP encoder: 32 -> 64 -> 64
SMALL_DATA = {"name": "mmoe_synthetic", "options": {"n_samples": 200, "input_dim": 8}}
TINY = {"dataset": SMALL_DATA, "steps": 4, "batch_size": 16, "eval_every": 2, "baselines": False,
        "interference": False}
BIG = LARGE_MODEL_PARAMS * 2


@pytest.fixture(autouse=True)
def _nothing_applied_yet(monkeypatch):
    """Each test starts as a fresh process would: no budget applied."""
    monkeypatch.setattr(threads, "_applied", None)


# ---- choose_threads: the rule ---------------------------------------------------------------
def test_explicit_count_wins_over_everything():
    for kwargs in ({"n_params": 10, "active_runs": 5, "cpu_count": 1},
                   {"n_params": 10**9, "active_runs": 0, "cpu_count": 64}):
        assert choose_threads(3, **kwargs) == 3
    choice = decide_threads(8, n_params=10, active_runs=0, cpu_count=2)
    assert choice.count == 8 and choice.setting == "explicit"
    assert choice.reason == "explicit: set in the config; more than the 2 usable cores"


def test_small_model_gets_one_thread_even_alone_on_many_cores():
    choice = decide_threads("auto", n_params=QUICKSTART_PARAMS, active_runs=0, cpu_count=64)
    assert choice.count == 1
    assert choice.label() == "1 (auto: small model, ~6.3k dense parameters)"


def test_large_model_alone_uses_more_threads_but_leaves_a_core_free():
    assert choose_threads("auto", n_params=BIG, active_runs=0, cpu_count=16) == LARGE_MAX_THREADS
    assert choose_threads("auto", n_params=BIG, active_runs=0, cpu_count=4) == 3  # cores − 1
    assert choose_threads("auto", n_params=HUGE_MODEL_PARAMS, active_runs=0, cpu_count=64) == HUGE_MAX_THREADS
    choice = decide_threads("auto", n_params=BIG, active_runs=0, cpu_count=16)
    assert choice.reason == "auto: large model, ~2.0M dense parameters, alone on 16 usable cores"


def test_any_other_active_run_means_one_thread():
    choice = decide_threads("auto", n_params=BIG, active_runs=1, cpu_count=64)
    assert choice.count == 1 and choice.reason == "auto: 1 other run active"
    small = decide_threads("auto", n_params=QUICKSTART_PARAMS, active_runs=2, cpu_count=64)
    assert small.label() == "1 (auto: small model, ~6.3k dense parameters, 2 other runs active)"


@pytest.mark.parametrize("cores", [1, 2])
def test_one_or_two_cores_mean_one_thread_for_any_model(cores):
    choice = decide_threads("auto", n_params=HUGE_MODEL_PARAMS, active_runs=0, cpu_count=cores)
    assert choice.count == 1
    assert choice.reason.endswith(f"{cores} usable core{'s' if cores == 2 else ''}")


def test_a_busy_machine_means_one_thread():
    # 8 cores, 6.5 of them busy with other work: one to spare at most.
    choice = decide_threads("auto", n_params=BIG, active_runs=0, cpu_count=8, load=6.5)
    assert choice.count == 1 and "machine busy (load 6.5 on 8 cores)" in choice.reason
    assert choose_threads("auto", n_params=BIG, active_runs=0, cpu_count=8, load=2.0) == 4


def test_torch_setting_leaves_torch_alone():
    assert choose_threads("torch", n_params=BIG, active_runs=0, cpu_count=16) is None


def test_choose_threads_reads_an_experiment_or_a_transfer_config():
    assert choose_threads(ExperimentConfig.parse({"threads": 2}), n_params=1, active_runs=0, cpu_count=8) == 2
    transfer = TransferConfig.parse({"base": {**TINY, "threads": 5}, "sources": ["y1"], "target": "y2"})
    assert choose_threads(transfer, n_params=1, active_runs=0, cpu_count=8) == 5


def test_estimate_counts_the_encoder_weights_from_the_config_alone():
    quickstart = ExperimentConfig.parse({
        "dataset": {"name": "mmoe_synthetic", "options": {"input_dim": 32}}, "model": {"hidden": [64, 64]},
    })
    assert estimate_params(quickstart) == QUICKSTART_PARAMS
    wide = ExperimentConfig.parse({
        "dataset": {"name": "mmoe_synthetic", "options": {"input_dim": 512}}, "model": {"hidden": [1024, 1024]},
    })
    assert estimate_params(wide) > LARGE_MODEL_PARAMS
    gru = ExperimentConfig.parse({"dataset": {"name": "toy_language"}, "model": {"hidden": [64]}})
    # Embedding lookups are not counted: a bidirectional GRU of 2 × 32 units on 32-d embeddings.
    assert estimate_params(gru) == 2 * 3 * (32 * 32 + 32 * 32 + 2 * 32)


def test_other_active_runs_counts_queued_and_running_but_not_itself(tmp_path):
    with RunStore(tmp_path / "runs.db") as store:
        me = store.create_run({"steps": 1})
        queued = store.create_run({"steps": 1})
        running = store.create_run({"steps": 1})
        done = store.create_run({"steps": 1})
        for run_id in (me, running):
            store.set_status(run_id, "running")
        store.set_status(done, "finished")
        assert queued  # stays queued
        assert threads.other_active_runs(store, me) == 2
        assert threads.other_active_runs(store) == 3
        assert store.count_runs(status="finished") == 1 and store.count_runs(status="finished", exclude=done) == 0
        with pytest.raises(StoreError, match="unknown run status 'done'"):
            store.count_runs(status="done")


# ---- applying it ------------------------------------------------------------------------------
def test_apply_threads_sets_torch_and_can_be_called_again():
    torch.set_num_threads(3)
    first = threads.apply_threads(decide_threads("auto", n_params=10, active_runs=0, cpu_count=2))
    assert torch.get_num_threads() == 1 and first.count == 1
    # Parallel work has run in this process by now: the inter-op pool is not resized, no error.
    threads.apply_threads(2)
    assert torch.get_num_threads() == 2


def test_python_api_keeps_the_callers_threads_for_auto():
    torch.set_num_threads(3)
    result = run_experiment(ExperimentConfig.parse(TINY))
    assert torch.get_num_threads() == 3  # not overwritten behind the notebook user's back
    assert result["threads"]["count"] == 3 and result["threads"]["setting"] == "caller"
    assert "apply_budget(config)" in result["threads"]["reason"]


def test_python_api_applies_an_explicit_count():
    torch.set_num_threads(3)
    result = run_experiment(ExperimentConfig.parse({**TINY, "threads": 2}))
    assert torch.get_num_threads() == 2
    assert result["threads"] == {"count": 2, "setting": "explicit", "reason": result["threads"]["reason"],
                                 "label": f"2 ({result['threads']['reason']})"}
    assert result["threads"]["reason"].startswith("explicit: set in the config")


def test_worker_applies_the_budget_before_the_dataset_is_built(tmp_path, monkeypatch):
    import mtl_core.experiment as experiment

    seen: list[int] = []
    real_load = experiment.load_dataset

    def load_dataset(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real_load(*args, **kwargs)

    monkeypatch.setattr(experiment, "load_dataset", load_dataset)
    torch.set_num_threads(3)  # as torch's default would be on a 3-core machine
    with RunStore(tmp_path / "runs.db") as store:
        other = store.create_run(TINY)
        store.set_status(other, "running")  # a second run on the machine
        run_id = store.create_run(ExperimentConfig.parse(TINY).to_dict())
        assert worker.execute(store, run_id) == "finished"
        result = store.result(run_id)
    assert seen == [1]
    assert result["threads"]["count"] == 1 and result["threads"]["setting"] == "auto"
    assert result["threads"]["reason"].startswith("auto: small model, ~")
    assert "1 other run active" in result["threads"]["reason"]


@pytest.mark.slow
def test_worker_process_records_one_thread_for_the_quickstart_model(monkeypatch):
    # torch's default in the worker would be 4 threads (OMP_NUM_THREADS); auto gives 1. A cold
    # worker, as `mtl-lab run --background` starts one (the fork server's own start-up
    # environment is tested in test_warm_worker).
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    monkeypatch.setenv("MTL_LAB_WARM_WORKER", "0")
    config = {"dataset": {"name": "mmoe_synthetic", "options": {"input_dim": 32, "n_samples": 300}},
              "model": {"hidden": [64, 64]}, "steps": 5, "batch_size": 32, "eval_every": 5,
              "baselines": False, "interference": False}
    run_id = jobs.start(config)
    deadline = time.monotonic() + 120
    with RunStore() as store:
        while store.get_run(run_id)["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, "the worker did not finish in 120 s"
            time.sleep(0.2)
        assert store.get_run(run_id)["status"] == "finished", store.get_run(run_id)["error"]
        result = store.result(run_id)
    assert result["threads"]["count"] == 1
    assert result["threads"]["reason"].startswith("auto: small model, ~6.3k dense parameters")
    log_text = jobs.log_path(run_id).read_text(encoding="utf-8")
    assert "threads: 1 (auto: small model, ~6.3k dense parameters" in log_text


# ---- the dashboard's threads widget (Train, "4 · Training") --------------------------------------
def test_a_link_asking_more_threads_than_the_server_has_is_bounded_with_a_note():
    from dashboard import state

    cores = state.DASHBOARD_LIMITS["threads"]
    assert state.thread_choices() == ["auto", *range(1, cores + 1), "torch"]
    reviewed, notes = state.review_config({"threads": 1000})
    assert reviewed["threads"] == cores
    assert notes == [f"threads: 1000 is above {cores:,} (this server's cores), the dashboard's bound; "
                     f"larger only through the CLI/config file; using {cores}"]
    for given, why in (("many", "not auto, torch or a number"), (0, "below the minimum 1"), (1.5, "not a whole number")):
        reviewed, notes = state.review_config({"threads": given})
        assert reviewed["threads"] == "auto" and notes == [f"threads: {state._shown(given)} is {why}; using 'auto'"]
    assert state.review_config({"threads": "torch"}) == ({"threads": "torch"}, [])


def test_threads_widget_reads_and_writes_the_link(tmp_path, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from dashboard import state

    monkeypatch.setenv("MTL_LAB_HOME", str(tmp_path))
    st.cache_resource.clear()
    st.cache_data.clear()
    try:
        at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py"), default_timeout=60)
        at.query_params.update({"threads": "1"})
        at.run()
        assert not at.exception, at.exception
        box = at.selectbox(key=state.K_THREADS)
        assert box.value == 1 and box.label == "CPU threads"
        assert box.options[0] == "auto (engine decides)" and box.options[-1] == "torch's default"
        box.set_value("auto").run()
        assert "threads" not in at.query_params  # auto is the default: the link leaves it out
        at.selectbox(key=state.K_THREADS).set_value("torch").run()
        assert at.query_params["threads"] == "torch"
        assert ExperimentConfig.parse(state.params_to_raw(at.query_params)).threads == "torch"
    finally:
        st.cache_resource.clear()
        st.cache_data.clear()
