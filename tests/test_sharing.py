"""Sharing modes: each trains, and each shares exactly what it says it shares."""

from __future__ import annotations

import dataclasses
import math
from functools import lru_cache

import pytest
import torch

from mtl_core.config import ExperimentConfig
from mtl_core.engine import make_optimizer, train
from mtl_core.models import SHARING, MultiTaskModel, build_model
from mtl_core.models.heads import task_loss
from mtl_core.sink import RecordingSink
from mtl_core.tasks import MTLDataset, Split, load_dataset

VECTOR = {"name": "mmoe_synthetic", "options": {"n_samples": 400, "input_dim": 8}}
TEXT = {"name": "toy_language", "options": {"n_samples": 200}}
TINY_MODEL = {"hidden": [16], "embed_dim": 8}


def make_config(dataset: dict = VECTOR, **fields) -> ExperimentConfig:
    base = {"dataset": dataset, "model": TINY_MODEL, "steps": 20, "batch_size": 32, "eval_every": 10,
            "baselines": False}
    return ExperimentConfig.parse({**base, **fields})


@lru_cache(maxsize=None)
def _dataset(name: str, seed: int = 0) -> MTLDataset:
    spec = VECTOR if name == "mmoe_synthetic" else TEXT
    return load_dataset(spec["name"], spec["options"], seed=seed)


def snapshot_params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def changed(module: torch.nn.Module, before: list[torch.Tensor]) -> bool:
    return any(not torch.equal(p, b) for p, b in zip(module.parameters(), before))


def one_step_on(model: MultiTaskModel, dataset: MTLDataset, task: str, config: ExperimentConfig) -> None:
    """One optimiser step on `task`'s loss alone (as a random-sampling step does)."""
    x = dataset.train.x[:32]
    out = model(x, [task])
    loss = task_loss(dataset.tasks[task].kind, out[task], dataset.train.y[task][:32])
    optimizer = make_optimizer(config, list(model.parameters()))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


# ---- every mode trains ----------------------------------------------------------------------
@pytest.mark.parametrize("sharing", SHARING.names())
def test_every_sharing_mode_trains_on_vector_data_with_finite_loss(sharing):
    sink = RecordingSink()
    config = make_config(sharing={"name": sharing}, steps=40, optimizer={"lr": 0.01})
    result = train(config, _dataset("mmoe_synthetic"), sink)
    assert result.steps == 40
    assert sink.train, "no training losses were logged"
    for row in sink.train:
        assert set(row["losses"]) == {"y1", "y2"}
        assert all(math.isfinite(v) for v in row["losses"].values())
        assert math.isfinite(row["total"])
    # Training moves the loss down from where it started.
    first, last = sink.train[0]["total"], sink.train[-1]["total"]
    assert last < first
    for task in ("y1", "y2"):
        assert math.isfinite(result.test[task]["mse"])


@pytest.mark.parametrize("sharing", ["hard", "single_task", "soft"])
def test_sharing_mode_trains_on_token_data_with_every_task_kind(sharing):
    dataset = _dataset("toy_language")
    kinds = {spec.kind for spec in dataset.tasks.values()}
    assert kinds == {"tagging", "classification"}
    sink = RecordingSink()
    result = train(make_config(TEXT, sharing={"name": sharing}, steps=10, eval_every=5), dataset, sink)
    assert all(math.isfinite(v) for row in sink.train for v in row["losses"].values())
    for task, spec in dataset.tasks.items():
        assert math.isfinite(result.test[task]["loss"])
        assert spec.metric in result.test[task]


def test_soft_sharing_logs_its_regulariser():
    sink = RecordingSink()
    train(make_config(sharing={"name": "soft", "options": {"lam": 0.1}}), _dataset("mmoe_synthetic"), sink)
    assert all("reg" in row and row["reg"] > 0 for row in sink.train)


# ---- what is shared -------------------------------------------------------------------------
def test_hard_sharing_step_on_one_task_moves_encoder_and_its_head_only():
    config = make_config(sharing={"name": "hard"})
    dataset = _dataset("mmoe_synthetic")
    torch.manual_seed(0)
    model = build_model("hard", dataset, ["y1", "y2"], config.model)
    encoder = snapshot_params(model.encoder)
    head_a, head_b = snapshot_params(model.heads["y1"]), snapshot_params(model.heads["y2"])
    one_step_on(model, dataset, "y1", config)
    assert changed(model.encoder, encoder)
    assert changed(model.heads["y1"], head_a)
    assert not changed(model.heads["y2"], head_b)


def test_single_task_step_on_one_task_leaves_the_other_tasks_network_alone():
    config = make_config(sharing={"name": "single_task"})
    dataset = _dataset("mmoe_synthetic")
    torch.manual_seed(0)
    model = build_model("single_task", dataset, ["y1", "y2"], config.model)
    before = {t: (snapshot_params(model.encoders[t]), snapshot_params(model.heads[t])) for t in ("y1", "y2")}
    one_step_on(model, dataset, "y1", config)
    assert changed(model.encoders["y1"], before["y1"][0]) and changed(model.heads["y1"], before["y1"][1])
    assert not changed(model.encoders["y2"], before["y2"][0])
    assert not changed(model.heads["y2"], before["y2"][1])


def test_hard_sharing_task_with_zero_weight_reaches_no_parameter_in_training():
    # Through the engine: with w_y2 = 0, y2's targets cannot matter. Replacing them with
    # wild values leaves every trained parameter (encoder and both heads) bit-identical.
    config = make_config(sharing={"name": "hard"}, weights={"y1": 1.0, "y2": 0.0}, steps=10)
    dataset = _dataset("mmoe_synthetic")
    noise = torch.randn(len(dataset.train), generator=torch.Generator().manual_seed(1)) * 100
    scrambled = dataclasses.replace(
        dataset, train=Split(dataset.train.x, {"y1": dataset.train.y["y1"], "y2": noise})
    )
    a = train(config, dataset, keep_model=True).model.state_dict()
    b = train(config, scrambled, keep_model=True).model.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    # ... while with w_y2 = 1 they do matter, for the shared encoder as for y2's head.
    config = make_config(sharing={"name": "hard"}, steps=10)
    c = train(config, dataset, keep_model=True).model
    d = train(config, scrambled, keep_model=True).model
    assert not torch.equal(c.encoder.net[0].weight, d.encoder.net[0].weight)
    assert not torch.equal(c.heads["y2"].net.weight, d.heads["y2"].net.weight)


def _encoder_distance(model: MultiTaskModel) -> float:
    a, b = (torch.cat([p.detach().flatten() for p in model.encoders[t].parameters()]) for t in ("y1", "y2"))
    return float((a - b).norm())


def test_soft_sharing_with_large_lambda_pulls_the_encoders_together():
    dataset = _dataset("mmoe_synthetic")
    common = dict(steps=60, optimizer={"lr": 0.01}, interference=False)
    free = train(make_config(sharing={"name": "soft", "options": {"lam": 0.0}}, **common), dataset,
                 keep_model=True).model
    tied = train(make_config(sharing={"name": "soft", "options": {"lam": 10.0}}, **common), dataset,
                 keep_model=True).model
    d_free, d_tied = _encoder_distance(free), _encoder_distance(tied)
    assert d_tied < 0.1 * d_free, (d_tied, d_free)


def test_parameter_counts_by_hand_for_a_tiny_case():
    # input_dim 8, hidden [16], two regression heads of 16 -> 1.
    dataset = _dataset("mmoe_synthetic")
    spec = make_config().model
    encoder, head = 8 * 16 + 16, 16 + 1

    hard = build_model("hard", dataset, ["y1", "y2"], spec)
    assert hard.parameter_counts() == {"total": encoder + 2 * head, "shared": encoder,
                                       "task:y1": head, "task:y2": head}
    assert sum(p.numel() for p in hard.shared_parameters()) == encoder

    for name in ("single_task", "soft"):
        model = build_model(name, dataset, ["y1", "y2"], spec)
        assert model.shared_parameters() == []
        assert model.parameter_counts() == {"total": 2 * (encoder + head), "shared": 0,
                                            "task:y1": encoder + head, "task:y2": encoder + head}


def test_hard_sharing_with_one_task_shares_nothing():
    # A single-task baseline built with hard sharing: its encoder belongs to its one task.
    model = build_model("hard", _dataset("mmoe_synthetic"), ["y1"], make_config().model)
    assert model.shared_parameters() == []
    assert model.parameter_counts()["task:y1"] == model.parameter_counts()["total"] == 8 * 16 + 16 + 17


@pytest.mark.parametrize("sharing", SHARING.names())
def test_shared_and_task_parameters_partition_the_model(sharing):
    model = build_model(sharing, _dataset("mmoe_synthetic"), ["y1", "y2"], make_config().model)
    groups = [model.shared_parameters(), model.task_parameters("y1"), model.task_parameters("y2")]
    ids = [id(p) for group in groups for p in group]
    assert len(ids) == len(set(ids)), "a parameter is listed in two groups"
    assert set(ids) == {id(p) for p in model.parameters()}, "a parameter belongs to no group"


@pytest.mark.parametrize("sharing", SHARING.names())
def test_forward_can_compute_a_subset_of_tasks(sharing):
    dataset = _dataset("mmoe_synthetic")
    model = build_model(sharing, dataset, ["y1", "y2"], make_config().model)
    out = model(dataset.train.x[:5], ["y2"])
    assert set(out) == {"y2"} and out["y2"].shape == (5,)
    assert set(model(dataset.train.x[:5])) == {"y1", "y2"}


def test_every_sharing_mode_carries_its_registry_name_for_messages():
    from mtl_core.weighting.base import sharing_name

    for entry in SHARING.entries():
        assert entry.obj.registry_name == entry.name
    data = load_dataset(VECTOR["name"], VECTOR["options"], seed=0)
    soft = build_model("soft", data, data.task_names, make_config().model)
    assert sharing_name(soft) == "soft"  # not "single_task", the class it derives from

    class Unregistered(type(soft)):
        pass

    assert sharing_name(Unregistered(data, data.task_names, make_config().model, soft.options)) == "Unregistered"
