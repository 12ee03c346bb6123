"""Checkpoint selection on validation data (`selection: best_val`, the default).

What a learner relies on: the test metrics come from the weights of the best validation
evaluation (not from an overfitted end of training), the step is reported, `last` gives
exactly the old numbers, single-task baselines and the multi-task model follow the same
protocol, and the ensemble that trains the baselines selects as the engine does.
"""

from __future__ import annotations

import math

import pytest
import torch

from mtl_core.config import ExperimentConfig
from mtl_core.engine import evaluate, train
from mtl_core.ensemble import baseline_members, train_ensemble
from mtl_core.experiment import MemoryBaselineCache, baseline_key, run_experiment
from mtl_core.selection import BestCheckpoint, DeltaMScore, single_task_score
from mtl_core.tasks import load_dataset
from mtl_core.tasks.base import TaskSpec

# Little data, many steps and a wide network: the validation loss turns up well before the end.
OVERFIT = {
    "dataset": {"name": "mmoe_synthetic", "options": {"n_samples": 300, "input_dim": 16, "noise": 1.0}},
    "model": {"hidden": [128, 128]}, "optimizer": {"lr": 0.01},
    "steps": 400, "batch_size": 32, "eval_every": 20, "interference": False, "device": "cpu",
}


def _config(**overrides) -> ExperimentConfig:
    return ExperimentConfig.parse({**OVERFIT, **overrides})


def _dataset(config: ExperimentConfig):
    return load_dataset(config.dataset.name, config.dataset.options, seed=config.seed)


def test_best_checkpoint_keeps_the_best_weights_and_writes_them_back():
    spec = TaskSpec(name="y", kind="regression")  # mse, lower is better
    keep = BestCheckpoint(single_task_score(spec))
    model = torch.nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.fill_(1.0)
    assert keep.offer(10, {"y": {"mse": 2.0}}, model)
    with torch.no_grad():
        model.weight.fill_(2.0)
    assert keep.offer(20, {"y": {"mse": 1.0}}, model)  # better: kept
    with torch.no_grad():
        model.weight.fill_(3.0)
    assert not keep.offer(30, {"y": {"mse": 1.0}}, model)  # a tie keeps the earlier step
    assert not keep.offer(40, {"y": {"mse": float("nan")}}, model)  # NaN is never best
    assert keep.restore(model) == 20
    assert torch.all(model.weight == 2.0)
    assert keep.val == {"y": {"mse": 1.0}}


def test_delta_m_score_is_validation_delta_m_against_the_reference():
    specs = {"a": TaskSpec(name="a", kind="regression"),
             "b": TaskSpec(name="b", kind="classification", num_classes=2)}
    score = DeltaMScore(specs, {"a": 2.0, "b": 0.5})  # mse 2.0, accuracy 0.5 on validation
    # a: mse 1.0 = +50 %; b: accuracy 0.6 = +20 % -> Δm = +35 %
    assert score({"a": {"mse": 1.0}, "b": {"accuracy": 0.6}}) == pytest.approx(35.0)
    own = DeltaMScore(specs)  # no baselines: the first evaluation is the reference
    assert own({"a": {"mse": 4.0}, "b": {"accuracy": 0.5}}) == 0.0
    assert own({"a": {"mse": 2.0}, "b": {"accuracy": 0.5}}) == pytest.approx(25.0)


@pytest.mark.parametrize("tasks", [["y1"], ["y1", "y2"]])
def test_best_val_tests_the_selected_weights_and_last_reproduces_the_old_numbers(tasks):
    best_cfg, last_cfg = _config(), _config(selection="last")
    ds = _dataset(best_cfg)
    best = train(best_cfg, ds, tasks=tasks, keep_model=True)
    last = train(last_cfg, ds, tasks=tasks)
    assert last.selected_step == last.steps == 400 and last.test == last.test_last
    # The same seed trains the same weights: best_val's end-of-training numbers are last's.
    assert best.test_last == last.test
    # This setup overfits: the selected evaluation is before the end, on the 20-step grid.
    assert best.selected_step < best.steps and best.selected_step % 20 == 0
    # The reported test metrics are those of the kept weights (the model holds them now).
    again = evaluate(best.model, ds.test, ds)
    for t in tasks:
        assert again[t]["mse"] == pytest.approx(best.test[t]["mse"], rel=1e-6)
    # And selection helped where it should: validation is better at the selected step.
    mean_val = lambda v: sum(v[t]["mse"] for t in tasks)  # noqa: E731
    assert mean_val(best.val) < mean_val(best.val_last)


def test_the_baseline_ensemble_selects_exactly_as_the_engine_does():
    cfg = _config()
    ds = _dataset(cfg)
    er = train_ensemble(cfg, ds, baseline_members(cfg, ["y1", "y2"]), sharing="hard")
    for t in ("y1", "y2"):
        alone = train(cfg, ds, tasks=[t], sharing="hard", weights={t: 1.0})
        member = er.result(f"stl:{t}")
        assert member.selected_step == alone.selected_step
        assert member.test[t]["mse"] == pytest.approx(alone.test[t]["mse"], rel=1e-3)
        # The batched kernels round differently; 400 steps at lr 0.01 grow that to ~1e-3.
        assert member.test_last[t]["mse"] == pytest.approx(alone.test_last[t]["mse"], rel=5e-3)


def test_the_experiment_reports_selected_and_end_numbers_and_caches_by_rule():
    cache = MemoryBaselineCache()
    best = run_experiment(_config(), baseline_cache=cache)
    sel = best["selection"]
    assert sel["rule"] == "best_val" and sel["steps"] == 400
    assert 0 < sel["mtl_step"] <= 400 and set(sel["baseline_steps"]) == {"y1", "y2"}
    for row in best["tasks"]:
        assert set(row["at_end"]) == {"stl", "mtl", "delta_pct"}
    assert math.isfinite(sel["delta_m_at_end"])

    last = run_experiment(_config(selection="last"), baseline_cache=cache)
    # A different rule is a different baseline: none of best_val's cached ones is reused.
    assert not any(b["cached"] for b in last["baselines"].values())
    assert baseline_key(_config(), "y1") != baseline_key(_config(selection="last"), "y1")
    # `last` reports the end of training, which best_val also reports as "at the end".
    for b_row, l_row in zip(best["tasks"], last["tasks"]):
        assert l_row["mtl"] == pytest.approx(l_row["at_end"]["mtl"])
        assert l_row["stl"] == pytest.approx(b_row["at_end"]["stl"], rel=1e-6)
        assert l_row["mtl"] == pytest.approx(b_row["at_end"]["mtl"], rel=1e-6)
    assert last["delta_m"] == pytest.approx(last["selection"]["delta_m_at_end"])


@pytest.mark.slow
def test_raising_a_tasks_weight_no_longer_makes_it_worse_on_the_quickstart():
    # The case: with the final weights, w_y2 = 3 made y2 *worse* than equal weights
    # (both models overfit after ~300 of 600 steps: test MSE 1.98 vs 1.83 over seeds 0-2).
    # At the selected checkpoint the task whose weight grows gets better (1.47 vs 1.50).
    cache = MemoryBaselineCache()

    def mean_mse(task: str, w2: float) -> float:
        values = []
        for seed in range(3):
            cfg = ExperimentConfig.from_file(
                "examples/quickstart.yaml", [f"weights.y2={w2}", f"seed={seed}", "interference=false"]
            )
            row = next(r for r in run_experiment(cfg, baseline_cache=cache)["tasks"] if r["name"] == task)
            values.append(row["mtl"])
        return sum(values) / len(values)

    assert mean_mse("y2", 3.0) < mean_mse("y2", 1.0)
