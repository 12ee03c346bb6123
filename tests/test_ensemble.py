"""Ensemble training: K small models trained as one stack, each member the run the
engine would have trained on its own (same seed → same initial parameters and the same
mini-batches; same weights → the same update), per-member failure, cancellation of the
whole ensemble, and the configurations it refuses.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import pytest
import torch

from mtl_core.config import ExperimentConfig, OptimizerSpec
from mtl_core.engine import TrainResult, train
from mtl_core.ensemble import (
    ELEMENTWISE_OPTIMIZER_FIELDS,
    Member,
    baseline_members,
    train_ensemble,
)
from mtl_core.errors import ConfigError, RunCancelled, TrainingError
from mtl_core.sink import RecordingSink
from mtl_core.tasks import MTLDataset, load_dataset

SMALL = {"name": "mmoe_synthetic", "options": {"n_samples": 400, "input_dim": 8}}
# 280 training rows, batch 32: 8 batches per epoch, so 40 steps re-shuffle 5 times.
STEPS = 40


def make_config(**fields: Any) -> ExperimentConfig:
    base = {"dataset": SMALL, "model": {"hidden": [16]}, "steps": STEPS, "batch_size": 32,
            "eval_every": 20, "optimizer": {"lr": 0.01}}
    return ExperimentConfig.parse({**base, **fields})


@lru_cache(maxsize=None)
def dataset(name: str = "mmoe_synthetic") -> MTLDataset:
    options = SMALL["options"] if name == "mmoe_synthetic" else {}
    return load_dataset(name, options, seed=0)


def max_param_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    pa, pb = list(a.parameters()), list(b.parameters())
    assert [p.shape for p in pa] == [p.shape for p in pb]
    return max(float((p - q).detach().abs().max()) for p, q in zip(pa, pb))


def assert_same_run(member: TrainResult, solo: TrainResult, *, tol: float = 1e-5) -> None:
    """Final parameters and every test metric agree within float tolerance."""
    diff = max_param_diff(member.model, solo.model)
    assert diff < tol, f"{member.phase}: parameters differ from the separate run by {diff}"
    assert member.steps == solo.steps
    assert member.test.keys() == solo.test.keys()
    for task, metrics in solo.test.items():
        assert metrics.keys() == member.test[task].keys()
        for name, value in metrics.items():
            assert member.test[task][name] == pytest.approx(value, rel=1e-4, abs=1e-5), (task, name)


def solo_run(config: ExperimentConfig, ds: MTLDataset, member: Member, **kwargs: Any) -> TrainResult:
    cfg = config.model_copy(update={"seed": member.seed})
    weights = dict(zip(member.tasks, member.weights)) if member.weights else None
    return train(cfg, ds, phase=member.phase, tasks=list(member.tasks), weights=weights, keep_model=True, **kwargs)


# ---- equivalence with separately trained runs ------------------------------------------------

@pytest.mark.parametrize("impl", ["batched", "vmap"])
def test_one_member_reproduces_the_engine_run(impl):
    config = make_config()
    member = Member(phase="mtl", seed=0, tasks=("y1", "y2"), weights=(1.0, 1.0))
    ens_sink, solo_sink = RecordingSink(), RecordingSink()
    result = train_ensemble(config, dataset(), [member], ens_sink, keep_models=True, impl=impl)
    solo = solo_run(config, dataset(), member, sink=solo_sink)

    assert_same_run(result.result("mtl"), solo)
    # The same curve reaches the sink: logging steps, losses, weights.
    assert [r["step"] for r in ens_sink.train] == [r["step"] for r in solo_sink.train] == list(range(10, 41, 10))
    for mine, theirs in zip(ens_sink.train, solo_sink.train):
        assert mine["losses"] == pytest.approx(theirs["losses"], rel=1e-5)
        assert mine["weights"] == theirs["weights"]
    assert [(e["step"], e["split"]) for e in ens_sink.evals] == [(e["step"], e["split"]) for e in solo_sink.evals]
    assert ens_sink.ends == [("mtl", "finished", None)]


@pytest.mark.parametrize("impl", ["batched", "vmap"])
def test_three_members_with_other_seeds_and_weights_each_reproduce_their_own_run(impl):
    config = make_config()
    members = [
        Member(phase="a", seed=0, tasks=("y1", "y2"), weights=(1.0, 1.0)),
        Member(phase="b", seed=1, tasks=("y1", "y2"), weights=(2.0, 0.5)),
        Member(phase="c", seed=2, tasks=("y1", "y2"), weights=(0.3, 1.0)),
    ]
    result = train_ensemble(config, dataset(), members, keep_models=True, impl=impl)
    solos = [solo_run(config, dataset(), m) for m in members]
    for member, solo in zip(members, solos):
        mine = result.result(member.phase)
        assert_same_run(mine, solo)
        # The interference snapshot (gradient cosine between the tasks) is the engine's too.
        cosine = torch.tensor(mine.interference["grad_cosine"])
        assert torch.allclose(cosine, torch.tensor(solo.interference["grad_cosine"]), atol=1e-4)
    # ... and the members did become different models.
    assert max_param_diff(result.result("a").model, result.result("b").model) > 1e-2


@pytest.mark.parametrize("impl", ["batched", "vmap"])
def test_members_of_other_seeds_learn_their_own_draw_of_the_data_as_the_engine_would(impl):
    """The engine draws a run's data from its seed: members of seeds 0, 1, 1 and 3 get the
    datasets `load_dataset(seed=s)` gives, and each reproduces `engine.train` on its own draw."""
    config = make_config()
    draws = {s: load_dataset("mmoe_synthetic", SMALL["options"], seed=s) for s in (0, 1, 3)}
    assert not torch.equal(draws[0].train.x, draws[1].train.x)  # really different data
    members = [
        Member(phase="a", seed=0, tasks=("y1", "y2"), weights=(1.0, 1.0)),
        Member(phase="b", seed=1, tasks=("y1", "y2"), weights=(1.0, 1.0)),
        Member(phase="c", seed=1, tasks=("y1", "y2"), weights=(2.0, 0.5)),
        Member(phase="d", seed=3, tasks=("y1", "y2"), weights=(0.3, 1.0)),
    ]
    result = train_ensemble(config, [draws[m.seed] for m in members], members, keep_models=True, impl=impl)
    for member in members:
        solo = solo_run(config, draws[member.seed], member)
        mine = result.result(member.phase)
        assert_same_run(mine, solo)
        assert mine.val.keys() == solo.val.keys()
        for task, metrics in solo.val.items():
            assert mine.val[task] == pytest.approx(metrics, rel=1e-4, abs=1e-5)
        cosine = torch.tensor(mine.interference["grad_cosine"])
        assert torch.allclose(cosine, torch.tensor(solo.interference["grad_cosine"]), atol=1e-4)
    # The same seed on the other draw would have been another run: the data did matter.
    on_draw_0 = solo_run(config, draws[0], members[1])
    assert max_param_diff(result.result("b").model, on_draw_0.model) > 1e-3


def test_draws_of_another_shape_are_refused_by_name():
    config = make_config()
    members = [Member("a", 0, ("y1", "y2")), Member("b", 1, ("y1", "y2"))]
    other = load_dataset("mmoe_synthetic", {**SMALL["options"], "n_samples": 500}, seed=1)
    with pytest.raises(ConfigError, match="member 'b' learns data of another shape than member 'a'") as info:
        train_ensemble(config, [dataset(), other], members)
    assert "training rows" in str(info.value)
    with pytest.raises(ConfigError, match="2 datasets for 1 members"):
        train_ensemble(config, [dataset(), other], members[:1])


def test_baseline_members_reproduce_the_single_task_baselines():
    """What run_experiment trains per task: hard sharing, one task, weight 1, the config's seed."""
    config = make_config()
    sink = RecordingSink()
    result = train_ensemble(config, dataset(), baseline_members(config, ["y1", "y2"]), sink,
                            sharing="hard", keep_models=True)
    assert [m.phase for m in result.members] == ["stl:y1", "stl:y2"]
    for task in ("y1", "y2"):
        solo = train(config, dataset(), tasks=[task], sharing="hard", weights={task: 1.0}, keep_model=True)
        mine = result.result(f"stl:{task}")
        assert mine.tasks == [task]
        assert_same_run(mine, solo)
        assert mine.parameter_counts == solo.parameter_counts
    assert {phase for phase, _, _ in sink.ends} == {"stl:y1", "stl:y2"}
    assert all(e["metrics"].keys() == {e["phase"][4:]} for e in sink.evals)  # each member reports its own task


def test_classification_heads_missing_labels_and_head_layers_reproduce_the_engine():
    """Penguins: three classification tasks (sex has missing labels) and a regression, heads with a hidden layer."""
    config = ExperimentConfig.parse({"dataset": {"name": "penguins"}, "model": {"hidden": [16], "head_hidden": 8},
                                     "steps": 30, "batch_size": 32, "eval_every": 15})
    ds = dataset("penguins")
    tasks = tuple(ds.task_names)
    members = [Member("a", 0, tasks), Member("b", 3, tasks, tuple(float(i + 1) for i in range(len(tasks))))]
    result = train_ensemble(config, ds, members, keep_models=True)
    for member in members:
        assert_same_run(result.result(member.phase), solo_run(config, ds, member))


def test_members_can_learn_different_tasks_of_the_same_kind():
    """species and island are both 3-class tasks: one stack holds both baselines."""
    config = ExperimentConfig.parse({"dataset": {"name": "penguins"}, "model": {"hidden": [16]},
                                     "steps": 20, "batch_size": 32, "eval_every": 10})
    ds = dataset("penguins")
    result = train_ensemble(config, ds, baseline_members(config, ["species", "island"]), sharing="hard",
                            keep_models=True)
    for task in ("species", "island"):
        solo = train(config, ds, tasks=[task], sharing="hard", weights={task: 1.0}, keep_model=True)
        assert_same_run(result.result(f"stl:{task}"), solo)


@pytest.mark.parametrize("optimizer", [
    {"name": "adam", "lr": 0.01, "weight_decay": 0.05},
    {"name": "adamw", "lr": 0.01, "weight_decay": 0.1},
    # lr 0.01: at 0.05 this run is barely stable and amplifies rounding (a one-member
    # ensemble already differs from the engine by 1e-4 there), which is not coupling.
    {"name": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 0.01},
])
def test_weight_decay_and_momentum_keep_members_independent(optimizer):
    """Weight decay and momentum act element by element: no member sees another's parameters."""
    config = make_config(optimizer=optimizer)
    members = [Member("a", 0, ("y1", "y2"), (1.0, 1.0)), Member("b", 5, ("y1", "y2"), (0.5, 2.0))]
    result = train_ensemble(config, dataset(), members, keep_models=True)
    for member in members:
        assert_same_run(result.result(member.phase), solo_run(config, dataset(), member))


def test_every_optimizer_setting_is_known_to_be_elementwise():
    """A new optimiser setting (e.g. clipping by the global gradient norm) would couple the
    members; adding one must come with a decision in mtl_core.ensemble."""
    assert set(OptimizerSpec.model_fields) <= ELEMENTWISE_OPTIMIZER_FIELDS


# ---- failure and cancellation ------------------------------------------------------------

def test_a_diverging_member_fails_alone_and_the_others_are_unaffected():
    config = make_config()
    healthy = Member("ok", 0, ("y1", "y2"), (1.0, 1.0))
    diverging = Member("huge", 0, ("y1", "y2"), (3e38, 1.0))  # w·L overflows float32
    sink = RecordingSink()
    result = train_ensemble(config, dataset(), [healthy, diverging], sink, keep_models=True)

    assert result.results[1] is None
    assert "the loss of task 'y1' became nan at step" in result.errors[1]
    assert "training diverged" in result.errors[1]
    with pytest.raises(TrainingError, match="training diverged"):
        result.result("huge")
    assert ("huge", "failed", result.errors[1]) in sink.ends
    assert ("ok", "finished", None) in sink.ends
    assert not any(e["phase"] == "huge" and e["split"] == "test" for e in sink.evals)
    assert_same_run(result.result("ok"), solo_run(config, dataset(), healthy))


def test_should_stop_cancels_the_whole_ensemble_between_steps():
    config = make_config()
    asked = []

    def stop_after_three() -> bool:
        asked.append(1)
        return len(asked) > 3

    sink = RecordingSink()
    members = [Member("a", 0, ("y1", "y2")), Member("b", 1, ("y1", "y2"))]
    with pytest.raises(RunCancelled, match="run cancelled at step 3 of 40"):
        train_ensemble(config, dataset(), members, sink, should_stop=stop_after_three)
    assert sink.ends == [("a", "cancelled", "run cancelled at step 3 of 40"),
                         ("b", "cancelled", "run cancelled at step 3 of 40")]


def test_the_sink_decides_when_no_should_stop_is_given():
    class StopNow(RecordingSink):
        def should_stop(self) -> bool:
            return True

    with pytest.raises(RunCancelled, match="at step 0 of 40"):
        train_ensemble(make_config(), dataset(), [Member("a", 0, ("y1", "y2"))], StopNow())


# ---- what an ensemble refuses ------------------------------------------------------------

TWO = ("y1", "y2")


@pytest.mark.parametrize(
    ("fields", "members", "kwargs", "message"),
    [
        ({"sharing": {"name": "mmoe"}}, [Member("a", 0, TWO)], {}, "sharing mode 'mmoe' is not supported"),
        ({"weighting": {"name": "pcgrad"}}, [Member("a", 0, TWO)], {}, "weighting 'pcgrad' is not supported"),
        ({"model": {"hidden": [16], "dropout": 0.1}}, [Member("a", 0, TWO)], {},
         "model.dropout = 0.1 is not supported"),
        ({"sampling": {"mode": "random"}}, [Member("a", 0, TWO)], {}, "sampling.mode 'random' with several tasks"),
        ({}, [], {}, "give at least one member"),
        ({}, [Member("a", 0, TWO), Member("a", 1, TWO)], {}, "phase 'a' is given to two members"),
        ({}, [Member("a", 0, TWO), Member("b", 0, ("y1",))], {}, "every member must learn the same number of tasks"),
        ({}, [Member("a", 0, ("y1", "nope"))], {}, "unknown task 'nope'"),
        ({}, [Member("a", 0, TWO, (1.0,))], {}, "has 1 weights for 2 tasks"),
        ({}, [Member("a", 0, TWO, (1.0, float("nan")))], {}, "not a finite number ≥ 0"),
        ({}, [Member("a", 0, TWO)], {"sharing": "single_task"}, "'single_task' with 2 tasks"),
        ({}, [Member("a", 0, TWO)], {"impl": "jit"}, "impl 'jit' is unknown"),
    ],
)
def test_unsupported_configurations_are_refused_with_a_message(fields, members, kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        train_ensemble(make_config(**fields), dataset(), members, **kwargs)
    assert str(info.value).startswith("ensemble: ")


def test_tasks_of_different_kinds_cannot_share_a_position():
    config = ExperimentConfig.parse({"dataset": {"name": "penguins"}, "steps": 5})
    members = [Member("a", 0, ("species",)), Member("b", 0, ("body_mass",))]
    with pytest.raises(ConfigError, match="tasks body_mass, species sit at the same position") as info:
        train_ensemble(config, dataset("penguins"), members, sharing="hard")
    assert "classification/3" in str(info.value) and "regression/1" in str(info.value)


def test_token_inputs_are_refused():
    config = ExperimentConfig.parse({"dataset": {"name": "toy_language", "options": {"n_samples": 100}}, "steps": 5})
    ds = load_dataset("toy_language", config.dataset.options, seed=0)
    with pytest.raises(ConfigError, match="has token inputs; only MLP models on vector data"):
        train_ensemble(config, ds, [Member("a", 0, ("topic",))], sharing="hard")
