"""`experiment.parameter_budget` counts what a run trains, from the engine's own recipe: the
counts equal those of the models a real run trains, and the baselines come from one
`baseline_config`, whether trained alone or as an ensemble."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from mtl_core.config import ExperimentConfig
from mtl_core.engine import train
from mtl_core.experiment import baseline_config, parameter_budget, run_experiment
from mtl_core.tasks import load_dataset

# Two regression tasks (the baselines train as one ensemble) and penguins' classification
# tasks of different class counts (the baselines train one by one).
TINY = {
    "dataset": {"name": "mmoe_synthetic", "options": {"n_samples": 300, "input_dim": 8, "n_tasks": 2}},
    "model": {"hidden": [16, 12]}, "steps": 6, "batch_size": 32, "eval_every": 3,
    "optimizer": {"name": "adam", "lr": 0.003},
}
PENGUINS = {**TINY, "dataset": {"name": "penguins", "options": {}}}


def make_config(base: dict[str, Any] = TINY, **fields: Any) -> ExperimentConfig:
    return ExperimentConfig.parse({**base, **fields})


@pytest.mark.parametrize("base, sharing", [
    (TINY, {"name": "hard"}),
    (TINY, {"name": "mmoe", "options": {"n_experts": 3}}),
    (TINY, {"name": "cross_stitch"}),
    (PENGUINS, {"name": "hard"}),
])
def test_budget_equals_the_parameter_counts_of_the_models_a_run_trains(base, sharing):
    config = make_config(base, sharing=sharing)
    budget = parameter_budget(config)
    result = run_experiment(config)
    trained = result["parameters"]
    assert budget["mtl_total"] == trained["mtl"]["total"]
    assert budget["mtl_shared"] == trained["mtl"]["shared"]
    assert budget["mtl_task"] == {t: trained["mtl"][f"task:{t}"] for t in budget["tasks"]}
    assert budget["stl"] == {t: b["parameter_count"] for t, b in result["baselines"].items()}
    assert budget["stl_total"] == trained["stl_total"]
    assert budget["mtl_shared"] > 0


def test_budget_of_a_stand_in_with_few_rows_equals_that_of_the_full_dataset():
    config = make_config(sharing={"name": "mmoe"})
    small = load_dataset("mmoe_synthetic", {**TINY["dataset"]["options"], "n_samples": 30}, seed=0)
    assert parameter_budget(config, small) == parameter_budget(config)


def test_budget_lists_the_multi_task_models_blocks_and_leaves_the_random_stream_alone():
    config = make_config(sharing={"name": "mmoe", "options": {"n_experts": 5}})
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    budget = parameter_budget(config)
    assert torch.equal(torch.rand(3), expected)
    experts = [b for b in budget["blocks"] if b["role"] == "expert"]
    assert len(experts) == 5 and all(b["shared"] for b in experts)
    assert sum(b["params"] for b in budget["blocks"]) == budget["mtl_total"]
    assert parameter_budget(make_config())["blocks"] is None  # hard sharing lists no blocks


def test_baseline_config_is_the_task_alone_with_hard_sharing_and_weight_one():
    config = make_config(sharing={"name": "mmoe", "options": {"n_experts": 3}}, weights={"y1": 2.5, "y2": 0.5},
                         seed=3)
    b = baseline_config(config, "y2")
    assert b.task_list() == ["y2"] and b.task_weights() == {"y2": 1.0}
    assert (b.sharing.name, b.sharing.options, b.weighting.name) == ("hard", {}, "manual")
    assert baseline_config(make_config(weighting={"name": "uncertainty"}), "y1").weighting.name == "manual"
    # Everything else is the run's own: data, sizes, optimiser, budget, seed.
    for field in ("dataset", "model", "optimizer", "steps", "batch_size", "eval_every", "seed", "selection"):
        assert getattr(b, field) == getattr(config, field), field


def test_a_baseline_trained_from_its_config_is_the_one_the_overrides_trained():
    config = make_config(sharing={"name": "mmoe"}, weighting={"name": "uncertainty"})
    ds = load_dataset("mmoe_synthetic", TINY["dataset"]["options"], seed=0)
    from_config = train(baseline_config(config, "y1"), ds)
    overridden = train(config, ds, tasks=["y1"], sharing="hard", weights={"y1": 1.0})
    assert from_config.test == overridden.test
    assert from_config.parameter_counts == overridden.parameter_counts
