"""The training loop and the experiment around it, as a user of the engine relies on them.

Determinism, the NaN guard, cancellation, task sampling, the step budget, the evaluation
schedule, interference snapshots (and that they see task relatedness: Ma et al., 2018's
synthetic tasks), and the results JSON of `run_experiment` with its cached baselines.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from functools import lru_cache
from typing import Any

import numpy as np
import pytest
import torch

from mtl_core.config import ExperimentConfig
from mtl_core.engine import resolve_device, total_steps, train
from mtl_core.errors import ConfigError, RunCancelled, TrainingError
from mtl_core.experiment import MemoryBaselineCache, baseline_key, run_experiment
from mtl_core.metrics import delta_m
from mtl_core.sink import MultiSink, RecordingSink
from mtl_core.tasks import MTLDataset, Split, load_dataset

SMALL = {"name": "mmoe_synthetic", "options": {"n_samples": 400, "input_dim": 8}}
N_TRAIN = 280  # 70 % of 400 rows


def make_config(**fields: Any) -> ExperimentConfig:
    base = {"dataset": SMALL, "model": {"hidden": [16]}, "steps": 20, "batch_size": 32,
            "eval_every": 10, "optimizer": {"lr": 0.01}}
    return ExperimentConfig.parse({**base, **fields})


@lru_cache(maxsize=None)
def small_dataset(seed: int = 0, n_tasks: int = 2) -> MTLDataset:
    return load_dataset("mmoe_synthetic", {**SMALL["options"], "n_tasks": n_tasks}, seed=seed)


class StartRecorder(RecordingSink):
    """A RecordingSink that also keeps on_start and on_progress."""

    def __init__(self) -> None:
        super().__init__()
        self.starts: list[tuple[str, dict[str, Any]]] = []
        self.progress: list[tuple[str, int, int, float]] = []

    def on_start(self, phase, info):
        self.starts.append((phase, dict(info)))

    def on_progress(self, phase, step, total_steps, samples_per_s):
        self.progress.append((phase, step, total_steps, samples_per_s))


class StopAfter(RecordingSink):
    """Asks the engine to stop once `should_stop` has been asked `calls` times."""

    def __init__(self, calls: int) -> None:
        super().__init__()
        self.calls, self.asked = calls, 0

    def should_stop(self) -> bool:
        self.asked += 1
        return self.asked > self.calls


def _losses(sink: RecordingSink) -> list[tuple[int, dict[str, float], float]]:
    return [(row["step"], row["losses"], row["total"]) for row in sink.train]


# ---- determinism ----------------------------------------------------------------------------
def test_same_config_and_seed_give_identical_metrics_and_loss_history():
    config = make_config(seed=3, log_every=2)
    a, b = RecordingSink(), RecordingSink()
    ra, rb = train(config, small_dataset(), a), train(config, small_dataset(), b)
    assert ra.test == rb.test
    assert _losses(a) == _losses(b)
    assert a.interference == b.interference


def test_different_seed_gives_a_different_run():
    a, b = RecordingSink(), RecordingSink()
    ra = train(make_config(seed=0), small_dataset(), a)
    rb = train(make_config(seed=1), small_dataset(), b)
    assert ra.test["y1"]["mse"] != rb.test["y1"]["mse"]
    assert _losses(a) != _losses(b)


def test_random_sampling_is_deterministic_too():
    config = make_config(sampling={"mode": "random"}, log_every=1, seed=5)
    a, b = RecordingSink(), RecordingSink()
    train(config, small_dataset(), a)
    train(config, small_dataset(), b)
    assert [list(r["losses"]) for r in a.train] == [list(r["losses"]) for r in b.train]
    assert _losses(a) == _losses(b)


# ---- the NaN / inf guard --------------------------------------------------------------------
def test_poisoned_learning_rate_raises_training_error_naming_task_and_step():
    config = make_config(optimizer={"name": "sgd", "lr": 1e30}, steps=30)
    sink = RecordingSink()
    with pytest.raises(TrainingError) as info:
        train(config, small_dataset(), sink)
    message = str(info.value)
    assert re.search(r"task '(y1|y2)'", message), message
    assert re.search(r"at step \d+", message), message
    assert "optimizer.lr" in message  # the fix
    step = int(re.search(r"at step (\d+)", message).group(1))
    assert 1 <= step <= 30
    assert not any(e["split"] == "test" for e in sink.evals)  # it stopped, it did not finish


def test_huge_targets_raise_training_error_at_the_first_step_naming_that_task():
    ds = small_dataset()
    poisoned = dataclasses.replace(
        ds, train=Split(ds.train.x, {"y1": ds.train.y["y1"], "y2": ds.train.y["y2"] * 1e30})
    )
    with pytest.raises(TrainingError, match=r"task 'y2' became inf at step 1\b"):
        train(make_config(), poisoned)


def test_a_finite_run_never_trips_the_guard():
    result = train(make_config(steps=30), small_dataset())
    assert all(math.isfinite(v) for m in result.test.values() for v in m.values())


# ---- cancellation ---------------------------------------------------------------------------
def test_sink_asking_to_stop_cancels_the_run_before_the_next_step():
    sink = StopAfter(7)
    with pytest.raises(RunCancelled, match=r"at step 7 of 20"):
        train(make_config(log_every=1), small_dataset(), sink)
    assert sink.asked == 8  # asked before each step; the 8th step never ran
    assert [row["step"] for row in sink.train] == list(range(1, 8))
    assert not any(e["split"] == "test" for e in sink.evals)


def test_any_sink_of_a_multisink_can_cancel():
    with pytest.raises(RunCancelled):
        train(make_config(), small_dataset(), MultiSink(RecordingSink(), StopAfter(0)))


def test_sink_hears_how_a_stopped_model_ended():
    cancelled = StopAfter(3)
    with pytest.raises(RunCancelled):
        train(make_config(), small_dataset(), cancelled)
    failed = RecordingSink()
    with pytest.raises(TrainingError):
        train(make_config(optimizer={"name": "sgd", "lr": 1e30}), small_dataset(), failed)
    assert [end[:2] for end in cancelled.ends] == [("mtl", "cancelled")]
    assert [end[:2] for end in failed.ends] == [("mtl", "failed")]
    assert "step" in (failed.ends[0][2] or "")


# ---- task sampling --------------------------------------------------------------------------
def test_random_sampling_trains_one_task_per_step_and_logs_only_that_task():
    sink = RecordingSink()
    train(make_config(sampling={"mode": "random"}, log_every=1, steps=40), small_dataset(), sink)
    assert len(sink.train) == 40
    assert all(len(row["losses"]) == 1 for row in sink.train)
    seen = [next(iter(row["losses"])) for row in sink.train]
    assert set(seen) == {"y1", "y2"}
    # The logged total is the weighted loss of the one sampled task.
    for row in sink.train:
        (task, loss), = row["losses"].items()
        assert row["total"] == pytest.approx(row["weights"][task] * loss)


def test_random_sampling_logs_the_tasks_sampled_since_the_last_log():
    sink = RecordingSink()
    train(make_config(sampling={"mode": "random"}, log_every=10, steps=40), small_dataset(), sink)
    assert all(1 <= len(row["losses"]) <= 2 for row in sink.train)
    assert all(set(row["weights"]) == {"y1", "y2"} for row in sink.train)


def _with_few_y2_labels(ds: MTLDataset, keep_every: int) -> MTLDataset:
    """y2 labelled on one train row in `keep_every`, NaN (unlabelled) elsewhere."""
    y2 = ds.train.y["y2"].clone()
    unlabelled = torch.arange(len(y2)) % keep_every != 0
    y2[unlabelled] = float("nan")
    return dataclasses.replace(ds, train=Split(ds.train.x, {"y1": ds.train.y["y1"], "y2": y2}))


@pytest.mark.parametrize("proportional", [True, False], ids=["proportional", "uniform"])
def test_proportional_sampling_follows_the_labelled_counts(proportional):
    ds = _with_few_y2_labels(small_dataset(), keep_every=4)
    n1, n2 = ds.train.labelled_count("y1"), ds.train.labelled_count("y2")
    assert (n1, n2) == (N_TRAIN, N_TRAIN // 4)
    config = make_config(sampling={"mode": "random", "proportional": proportional}, log_every=1,
                         steps=400, eval_every=400, interference=False)
    sink = RecordingSink()
    train(config, ds, sink)
    share_y1 = np.mean(["y1" in row["losses"] for row in sink.train])
    expected = n1 / (n1 + n2) if proportional else 0.5
    # 400 draws: standard error ≈ 0.02-0.025; 0.07 is about three of them.
    assert share_y1 == pytest.approx(expected, abs=0.07)
    for row in sink.train:
        assert all(math.isfinite(v) for v in row["losses"].values())


# ---- budget and evaluation schedule ---------------------------------------------------------
@pytest.mark.parametrize(("epochs", "batch_size"), [(2, 64), (1, 32), (3, 280), (1, 1000)])
def test_epochs_budget_is_batches_per_epoch_times_epochs(epochs, batch_size):
    config = make_config(steps=None, epochs=epochs, batch_size=batch_size, eval_every=1000)
    expected = math.ceil(N_TRAIN / batch_size) * epochs
    assert total_steps(config, N_TRAIN) == expected
    sink = StartRecorder()
    result = train(config, small_dataset(), sink)
    assert result.steps == expected
    assert sink.starts[0][1]["total_steps"] == expected
    assert sink.progress[-1][1:3] == (expected, expected)


def test_steps_budget_is_taken_as_given():
    assert total_steps(make_config(steps=123), N_TRAIN) == 123


def test_validation_every_eval_every_steps_and_test_once_at_the_end():
    sink = RecordingSink()
    result = train(make_config(steps=20, eval_every=7), small_dataset(), sink)
    val = [e for e in sink.evals if e["split"] == "val"]
    test = [e for e in sink.evals if e["split"] == "test"]
    assert [e["step"] for e in val] == [7, 14, 20]  # and always at the last step
    assert [e["step"] for e in test] == [20]
    assert sink.evals[-1]["split"] == "test"
    for e in val + test:
        assert set(e["metrics"]) == {"y1", "y2"}
        assert {"mse", "mae", "r2", "loss"} <= set(e["metrics"]["y1"])
    assert result.test == test[0]["metrics"]
    assert result.val == val[-1]["metrics"]
    assert sink.ends == [("mtl", "finished", None)]


def test_test_metrics_are_computed_on_the_test_split():
    ds = small_dataset()
    result = train(make_config(), ds, keep_model=True)
    model = result.model.eval()
    with torch.no_grad():
        pred = model(ds.test.x)["y1"]
    mse = float(((pred - ds.test.y["y1"]) ** 2).mean())
    assert result.test["y1"]["mse"] == pytest.approx(mse, rel=1e-5)


def test_training_losses_are_logged_every_log_every_steps():
    sink = StartRecorder()
    result = train(make_config(steps=25, log_every=10, eval_every=100), small_dataset(), sink)
    assert [row["step"] for row in sink.train] == [10, 20, 25]
    assert sink.starts[0][0] == "mtl" and sink.starts[0][1]["tasks"] == ["y1", "y2"]
    assert result.samples_per_s > 0 and all(p[3] > 0 for p in sink.progress)


# ---- interference ---------------------------------------------------------------------------
def test_interference_snapshot_is_a_symmetric_cosine_matrix_with_unit_diagonal():
    sink = RecordingSink()
    result = train(make_config(dataset={"name": "mmoe_synthetic",
                                        "options": {**SMALL["options"], "n_tasks": 3}}),
                   small_dataset(n_tasks=3), sink)
    val_steps = [e["step"] for e in sink.evals if e["split"] == "val"]
    assert [s["step"] for s in sink.interference] == val_steps  # one snapshot per evaluation
    for snap in sink.interference:
        assert snap["tasks"] == ["y1", "y2", "y3"]
        cos = np.array(snap["grad_cosine"])
        assert cos.shape == (3, 3)
        np.testing.assert_allclose(cos, cos.T, atol=1e-6)
        np.testing.assert_allclose(np.diag(cos), 1.0, atol=1e-5)
        assert (np.abs(cos) <= 1 + 1e-5).all()
        assert len(snap["grad_norm"]) == 3 and all(n >= 0 for n in snap["grad_norm"])
    assert result.interference["grad_cosine"] == sink.interference[-1]["grad_cosine"]


def test_no_snapshot_without_shared_parameters_or_when_switched_off():
    for config in (make_config(sharing={"name": "single_task"}), make_config(interference=False)):
        sink = RecordingSink()
        result = train(config, small_dataset(), sink)
        assert sink.interference == [] and result.interference is None


def _mean_grad_cosine(correlation: float, seed: int) -> float:
    # Quickstart-sized experiment with clean labels (noise 0.1), where the task relation shows.
    options = {"correlation": correlation, "n_samples": 2000, "input_dim": 32, "noise": 0.1}
    config = ExperimentConfig.parse({
        "dataset": {"name": "mmoe_synthetic", "options": options}, "model": {"hidden": [64, 64]},
        "optimizer": {"lr": 0.003}, "steps": 600, "batch_size": 64, "eval_every": 50, "seed": seed,
        "baselines": False,
    })
    sink = RecordingSink()
    train(config, load_dataset("mmoe_synthetic", options, seed=seed), sink)
    assert len(sink.interference) == 12
    return float(np.mean([s["grad_cosine"][0][1] for s in sink.interference]))


def test_gradients_of_related_tasks_agree_more_than_those_of_anti_related_tasks():
    # Ma et al. (2018): cos(w_1, w_2) = p sets how related the tasks are. The task
    # gradients on the shared encoder should point together more at p = 0.9 than at -0.9.
    related = np.mean([_mean_grad_cosine(0.9, seed) for seed in (0, 1)])
    anti = np.mean([_mean_grad_cosine(-0.9, seed) for seed in (0, 1)])
    assert related - anti > 0.1, (related, anti)


# ---- device ---------------------------------------------------------------------------------
def test_device_auto_and_cpu_resolve():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_asking_for_cuda_without_a_gpu_is_a_config_error():
    with pytest.raises(ConfigError, match=r"device: .*use 'auto' or 'cpu'"):
        resolve_device("cuda")


# ---- the experiment and its results JSON ----------------------------------------------------
TASK_ROW_KEYS = {"name", "kind", "metric", "higher_is_better", "stl", "mtl", "delta_pct"}


def test_run_experiment_returns_the_results_contract():
    config = make_config(eval_every=10)
    sink = StartRecorder()
    result = run_experiment(config, sink=sink, run_id="r-1")
    text = json.dumps(result, allow_nan=False)  # standard JSON: no NaN / Infinity
    assert json.loads(text) == result

    assert {"run_id", "status", "config", "device", "tasks", "delta_m", "interference",
            "throughput", "history"} <= set(result)
    assert result["run_id"] == "r-1" and result["status"] == "finished"
    assert result["device"] == "cpu" or result["device"].startswith("cuda")
    assert ExperimentConfig.parse(result["config"]) == config

    assert [row["name"] for row in result["tasks"]] == ["y1", "y2"]
    for row in result["tasks"]:
        assert TASK_ROW_KEYS <= set(row)
        assert row["kind"] == "regression" and row["metric"] == "mse" and row["higher_is_better"] is False
        expected = -(row["mtl"] - row["stl"]) / abs(row["stl"]) * 100
        assert row["delta_pct"] == pytest.approx(expected)
    assert result["delta_m"] == pytest.approx(delta_m(result["tasks"]))

    inter = result["interference"]
    assert inter["tasks"] == ["y1", "y2"]
    assert np.array(inter["grad_cosine"]).shape == (2, 2) and len(inter["grad_norm"]) == 2
    assert result["throughput"]["samples_per_s"] > 0
    assert result["history"]["train"] and [v["step"] for v in result["history"]["val"]] == [10, 20]
    # The sink heard both baselines and then the multi-task model.
    assert [phase for phase, _ in sink.starts] == ["stl:y1", "stl:y2", "mtl"]


def test_baselines_get_the_same_step_budget_as_the_multi_task_model():
    for config in (make_config(steps=17), make_config(steps=None, epochs=2, batch_size=64)):
        result = run_experiment(config)
        steps = result["throughput"]["steps"]
        assert steps == total_steps(config, N_TRAIN)
        assert all(b["steps"] == steps for b in result["baselines"].values())
        assert set(result["baselines"]) == {"y1", "y2"}


def test_baselines_are_cached_across_weights_and_sharing_but_not_seed():
    cache = MemoryBaselineCache()
    first = run_experiment(make_config(), baseline_cache=cache)
    assert all(not b["cached"] for b in first["baselines"].values())
    assert len(cache.data) == 2

    sink = RecordingSink()
    reweighted = run_experiment(
        make_config(weights={"y1": 2.0, "y2": 0.5}, sharing={"name": "soft"}), baseline_cache=cache,
        sink=sink,
    )
    assert all(b["cached"] for b in reweighted["baselines"].values())
    assert [r["stl"] for r in reweighted["tasks"]] == [r["stl"] for r in first["tasks"]]
    assert [r["mtl"] for r in reweighted["tasks"]] != [r["mtl"] for r in first["tasks"]]
    # A cached baseline is replayed to the sink: its curve and test metrics are stored again.
    assert {e["phase"] for e in sink.evals if e["split"] == "test"} == {"stl:y1", "stl:y2", "mtl"}

    reseeded = run_experiment(make_config(seed=1), baseline_cache=cache)
    assert all(not b["cached"] for b in reseeded["baselines"].values())
    assert len(cache.data) == 4


def test_cached_baseline_equals_a_fresh_one():
    config = make_config()
    fresh = run_experiment(config)
    cache = MemoryBaselineCache()
    run_experiment(config, baseline_cache=cache)
    again = run_experiment(config, baseline_cache=cache)
    assert [r["stl"] for r in again["tasks"]] == [r["stl"] for r in fresh["tasks"]]
    assert again["delta_m"] == fresh["delta_m"]


def test_baseline_key_ignores_weights_sharing_and_weighting_only():
    base = make_config()
    same = [make_config(weights={"y1": 3.0}), make_config(sharing={"name": "soft"}),
            make_config(weighting={"name": "equal"}), make_config(log_every=5)]
    different = [make_config(seed=2), make_config(steps=21), make_config(batch_size=16),
                 make_config(model={"hidden": [32]}), make_config(optimizer={"lr": 0.02}),
                 make_config(dataset={"name": "mmoe_synthetic",
                                      "options": {**SMALL["options"], "correlation": 0.1}})]
    assert all(baseline_key(c, "y1") == baseline_key(base, "y1") for c in same)
    assert all(baseline_key(c, "y1") != baseline_key(base, "y1") for c in different)
    assert baseline_key(base, "y1") != baseline_key(base, "y2")


def test_a_single_task_baseline_does_not_depend_on_the_sampling_mode():
    ds = small_dataset()
    kwargs = dict(tasks=["y1"], sharing="hard", weights={"y1": 1.0})
    plain = train(make_config(), ds, **kwargs)
    sampled = train(make_config(sampling={"mode": "random", "proportional": True}), ds, **kwargs)
    assert plain.test == sampled.test


def test_experiment_without_baselines_has_no_delta_m():
    result = run_experiment(make_config(baselines=False))
    json.dumps(result, allow_nan=False)
    assert result["baselines"] == {}
    assert result["delta_m"] is None
    assert all(row["stl"] is None and row["delta_pct"] is None for row in result["tasks"])
    assert all(row["mtl"] is not None for row in result["tasks"])


def test_experiment_on_a_task_subset_trains_only_those_tasks():
    config = make_config(dataset={"name": "mmoe_synthetic", "options": {**SMALL["options"], "n_tasks": 3}},
                         tasks=["y3", "y1"])
    result = run_experiment(config)
    assert [row["name"] for row in result["tasks"]] == ["y3", "y1"]
    assert set(result["baselines"]) == {"y3", "y1"}
    assert result["interference"]["tasks"] == ["y3", "y1"]


# ---- logging: one transfer per logging step (issue 11) -------------------------------------
def test_a_logged_window_is_the_mean_of_its_steps():
    every, fine = RecordingSink(), RecordingSink()
    train(make_config(log_every=5, steps=20, eval_every=100, weights={"y1": 2.0}), small_dataset(), every)
    train(make_config(log_every=1, steps=20, eval_every=100, weights={"y1": 2.0}), small_dataset(), fine)
    assert [row["step"] for row in every.train] == [5, 10, 15, 20]
    for i, row in enumerate(every.train):
        steps = fine.train[5 * i : 5 * i + 5]
        for task in ("y1", "y2"):
            assert row["losses"][task] == pytest.approx(np.mean([s["losses"][task] for s in steps]), rel=1e-6)
        assert row["total"] == pytest.approx(np.mean([s["total"] for s in steps]), rel=1e-6)
        assert row["weights"] == {"y1": 2.0, "y2": 1.0}


def test_soft_sharing_logs_its_regulariser_every_logging_step():
    sink = RecordingSink()
    train(make_config(sharing={"name": "soft"}, log_every=4, steps=12, eval_every=100), small_dataset(), sink)
    assert [row["step"] for row in sink.train] == [4, 8, 12]
    assert all(row["reg"] > 0 and math.isfinite(row["reg"]) for row in sink.train)


def test_the_start_event_says_which_precision_and_compilation_the_run_uses():
    sink = StartRecorder()
    train(make_config(), small_dataset(), sink)
    assert sink.starts[0][1]["amp"] == "off" and sink.starts[0][1]["compile"] == "off"
