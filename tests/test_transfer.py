"""The transfer experiment: pre-train on source tasks, then frozen / fine-tuned / scratch
target models at several data sizes (issue 7, part 4)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from mtl_core import worker
from mtl_core.errors import ConfigError
from mtl_core.sink import RecordingSink, Sink
from mtl_core.store import RunStore
from mtl_core.tasks import load_dataset
from mtl_core.transfer import (
    TransferConfig,
    build_target_model,
    describe_merged,
    format_transfer,
    fraction_plan,
    pretrain,
    run_transfer,
    target_subset,
    train_arm,
    transfer_table,
)

ROOT = Path(__file__).resolve().parents[1]

TINY = {
    "name": "tiny transfer",
    "base": {
        "dataset": {"name": "toy_language", "options": {"n_samples": 200}},
        "model": {"text_encoder": "gru", "embed_dim": 8, "hidden": [16]},
        "optimizer": {"lr": 0.01},
        "batch_size": 16,
        "steps": 15,
        "eval_every": 15,
        "interference": False,
        "seed": 0,
        "device": "cpu",
    },
    "sources": ["pos", "ner"],
    "target": "topic",
    "arms": ["frozen", "finetune", "scratch"],
    "fractions": [0.05, 0.5, 1.0],
    "target_steps": 8,
}


def tiny(**changes) -> TransferConfig:
    data = yaml.safe_load(yaml.safe_dump(TINY))  # a deep copy
    data.update(changes)
    return TransferConfig.parse(data)


def state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def pretrained():
    torch.set_num_threads(1)
    config = tiny()
    dataset = load_dataset("toy_language", {"n_samples": 200}, seed=0)
    result, encoder = pretrain(config, dataset)
    target = dataset.select_tasks([config.target])
    return config, target, encoder, state(encoder), result


# ---- the three arms --------------------------------------------------------------------------------
def test_pretraining_trains_one_hard_shared_encoder_on_the_sources(pretrained):
    config, _, encoder, _, result = pretrained
    assert result.tasks == ["pos", "ner"]
    assert set(result.test) == {"pos", "ner"}
    shared = {id(p) for p in result.model.shared_parameters()}
    assert shared == {id(p) for p in encoder.parameters()}


def test_frozen_arm_does_not_change_the_encoder_weights(pretrained):
    config, target, encoder, before, _ = pretrained
    result = train_arm("frozen", config.target_config(), target, config.target, encoder)
    trained = result.model.encoder
    assert same_weights(state(trained), before)
    assert same_weights(state(encoder), before)  # the pre-trained encoder itself is untouched
    assert not any(p.requires_grad for p in trained.parameters())
    assert not trained.training  # a fixed feature extractor: eval mode even while training
    head_before = build_target_model("frozen", target, config.target, config.target_config(), encoder).heads
    assert not same_weights(state(result.model.heads), state(head_before))  # the head did learn


def test_finetune_arm_starts_from_the_pretrained_encoder_and_changes_it(pretrained):
    config, target, encoder, before, _ = pretrained
    cfg = config.target_config()
    start = build_target_model("finetune", target, config.target, cfg, encoder)
    assert same_weights(state(start.encoder), before)
    assert start.encoder is not encoder
    result = train_arm("finetune", cfg, target, config.target, encoder)
    assert not same_weights(state(result.model.encoder), before)
    assert same_weights(state(encoder), before)  # a copy was trained, not the original


def test_scratch_arm_does_not_load_the_pretrained_weights(pretrained):
    config, target, encoder, before, _ = pretrained
    cfg = config.target_config()
    scratch = build_target_model("scratch", target, config.target, cfg, encoder)
    assert not same_weights(state(scratch.encoder), before)
    assert all(p.requires_grad for p in scratch.encoder.parameters())
    again = build_target_model("scratch", target, config.target, cfg, encoder)
    assert same_weights(state(scratch.encoder), state(again.encoder))  # seeded: a fair control


def test_every_arm_starts_from_the_same_seeded_head(pretrained):
    config, target, encoder, _, _ = pretrained
    cfg = config.target_config()
    heads = [state(build_target_model(arm, target, config.target, cfg, encoder).heads)
             for arm in ("frozen", "finetune", "scratch")]
    assert same_weights(heads[0], heads[1]) and same_weights(heads[1], heads[2])


# ---- target subsets ----------------------------------------------------------------------------
def test_fractions_give_monotone_subsets_of_at_least_one_batch():
    ds = load_dataset("toy_language", {"n_samples": 400}, seed=0)
    spec = ds.tasks["topic"]
    n_train = len(ds.train)
    sizes = [len(target_subset(ds.train, spec, f, min_rows=16, seed=0)) for f in (0.001, 0.1, 0.2, 0.5, 1.0)]
    assert sizes[0] == 16  # 0.1 % of 280 rows is 0: one batch instead
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    assert sizes[1] == round(0.1 * n_train) and sizes[-1] == n_train


def test_fractions_that_clamp_to_one_count_are_merged_on_100_examples():
    # 1 % and 5 % of 100 rows are 1 and 5, both below a batch of 16: the same 16 rows.
    plan = fraction_plan([0.01, 0.05, 0.2, 1.0], 100, min_rows=16)
    assert plan == [
        {"n_labelled": 16, "fraction": 0.05, "fractions": [0.01, 0.05]},
        {"n_labelled": 20, "fraction": 0.2, "fractions": [0.2]},
        {"n_labelled": 100, "fraction": 1.0, "fractions": [1.0]},
    ]
    assert describe_merged(plan, min_rows=16, n_pool=100) == (
        "1 % and 5 % both give 16 labelled examples (at least one batch of 16): trained once, shown as 5 %.")
    # A batch of 32: 20 % (20 rows) joins them; every size is a distinct count.
    plan = fraction_plan([0.01, 0.05, 0.2, 1.0], 100, min_rows=32)
    assert [(p["n_labelled"], p["fractions"]) for p in plan] == [(32, [0.01, 0.05, 0.2]), (100, [1.0])]
    assert describe_merged(plan, min_rows=32, n_pool=100).startswith("1 %, 5 % and 20 % all give 32")
    # Fewer labelled rows than a batch: every fraction is all of them, shown as 100 %.
    plan = fraction_plan([0.05, 0.5, 1.0], 10, min_rows=16)
    assert plan == [{"n_labelled": 10, "fraction": 1.0, "fractions": [0.05, 0.5, 1.0]}]
    assert "(all the labelled rows)" in describe_merged(plan, min_rows=16, n_pool=10)
    assert describe_merged(fraction_plan([0.5, 1.0], 100, min_rows=16), min_rows=16, n_pool=100) == ""
    # The sizes are those target_subset draws.
    ds = load_dataset("toy_language", {"n_samples": 200}, seed=0)
    pool = len(ds.train)
    for entry in fraction_plan([0.01, 0.05, 0.2, 1.0], pool, min_rows=16):
        for f in entry["fractions"]:
            assert len(target_subset(ds.train, ds.tasks["topic"], f, min_rows=16, seed=0)) == entry["n_labelled"]


def test_the_reading_text_follows_the_metric_direction():
    from dashboard.transfer_chart import reading_text

    mse = reading_text("mse", False)
    assert mse.startswith("Lower test mse is better")
    assert "lies below the dashed scratch line, the sources helped" in mse and "above it, they hurt" in mse
    acc = reading_text("accuracy", True)
    assert "lies above the dashed scratch line, the sources helped" in acc and "below it, they hurt" in acc
    assert "above" not in reading_text("score", None) and "below" not in reading_text("score", None)


def test_a_subset_keeps_the_class_proportions_and_is_seeded():
    ds = load_dataset("toy_language", {"n_samples": 1000}, seed=0)
    spec = ds.tasks["topic"]
    idx = target_subset(ds.train, spec, 0.2, min_rows=8, seed=3)
    y_all = ds.train.y["topic"].numpy()
    full = np.bincount(y_all, minlength=4) / len(y_all)
    part = np.bincount(y_all[idx], minlength=4) / len(idx)
    assert np.abs(full - part).max() < 0.02  # stratified
    assert np.array_equal(idx, target_subset(ds.train, spec, 0.2, min_rows=8, seed=3))
    assert not np.array_equal(idx, target_subset(ds.train, spec, 0.2, min_rows=8, seed=4))


def test_a_subset_draws_only_rows_labelled_for_the_target():
    ds = load_dataset("toy_language", {"n_samples": 200}, seed=0)
    y = ds.train.y["topic"].clone()
    y[::2] = -100  # half the rows lack a topic label
    split = dataclasses.replace(ds.train, y={**ds.train.y, "topic": y})
    idx = target_subset(split, ds.tasks["topic"], 1.0, min_rows=8, seed=0)
    assert len(idx) == int((y != -100).sum())
    assert bool((y[idx] != -100).all())


# ---- validation -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "changes, message",
    [
        ({"target": "pos"}, "target: 'pos' is also a source"),
        ({"target": "colour"}, "target: unknown task 'colour'"),
        ({"sources": ["pos", "shape"]}, "sources: unknown task 'shape'"),
        ({"sources": []}, "sources: name at least one source task"),
        ({"sources": ["pos", "pos"]}, "listed twice"),
        ({"fractions": [0.0, 0.5]}, "fraction 0.0 is outside (0, 1]"),
        ({"fractions": [0.5, 1.5]}, "fraction 1.5 is outside (0, 1]"),
        ({"fractions": []}, "fractions: give at least one fraction"),
        ({"arms": []}, "arms: choose at least one arm"),
        ({"arms": ["frozen", "linear"]}, "arms.1"),
        ({"target_steps": 0}, "target_steps"),
        ({"sharing": "no_such_mode"}, "unknown sharing mode 'no_such_mode'"),
        ({"colour": "red"}, "colour: unknown field"),
    ],
)
def test_an_invalid_transfer_config_is_refused_naming_the_field(changes, message):
    with pytest.raises(ConfigError) as err:
        tiny(**changes)
    assert message in str(err.value)


def test_base_may_not_name_tasks_or_its_own_sharing_mode():
    with pytest.raises(ConfigError, match="base.tasks: leave it out"):
        tiny(base={**TINY["base"], "tasks": ["pos"]})
    with pytest.raises(ConfigError, match="top-level `sharing`"):
        tiny(base={**TINY["base"], "sharing": {"name": "soft"}})
    with pytest.raises(ConfigError, match="base.optimizer.lr"):
        tiny(base={**TINY["base"], "optimizer": {"lr": -1}})


def test_a_sharing_mode_without_one_shared_encoder_is_refused_before_training():
    config = tiny(sharing="soft")
    sink = RecordingSink()
    with pytest.raises(ConfigError, match="no single shared encoder.*'hard'"):
        run_transfer(config, sink=sink)
    assert sink.train == []  # nothing was trained


def test_the_config_round_trips_through_its_dict():
    config = tiny()
    again = TransferConfig.parse(json.loads(json.dumps(config.to_dict())))
    assert again == config
    assert again.fractions == [0.05, 0.5, 1.0] and again.kind == "transfer"
    assert config.target_config().task_list() == ["topic"]
    assert config.target_config().steps == 8
    assert config.pretrain_config().task_list() == ["pos", "ner"]


# ---- the experiment -------------------------------------------------------------------------------
def test_run_transfer_has_one_row_per_arm_and_fraction_and_is_stored():
    config = tiny()
    with RunStore() as store:  # stored as every run is: created, then trained by the one lifecycle
        run_id = store.create_run(config.to_dict(), name=config.name)
        assert worker.execute(store, run_id) == "finished"
        run = store.get_run(run_id)
        result = store.result(run_id)
        curves = store.metrics(run_id)
    assert run["status"] == "finished" and run["name"] == "tiny transfer"
    assert run["config"]["kind"] == "transfer"
    assert result["run_id"] == run_id and result["status"] == "finished"
    cells = [(r["arm"], r["fraction"]) for r in result["rows"]]
    assert sorted(cells) == sorted((a, f) for a in config.arms for f in config.fractions)
    n = {f: r["n_labelled"] for r in result["rows"] for f in [r["fraction"]]}
    assert n[0.05] == 16 and n[1.0] == result["n_target_train"] and n[0.05] < n[0.5] < n[1.0]
    assert result["metric"] == "accuracy" and result["higher_is_better"] is True
    assert all(0.0 <= r["metric_value"] <= 1.0 for r in result["rows"])
    assert set(result["pretrain"]) == {"pos", "ner"}
    assert {"pretrain", "frozen@0.05", "finetune@0.5", "scratch@1"} <= set(curves["phase"])
    table = transfer_table(result)
    assert list(table.columns) == ["frozen", "finetune", "scratch"] and len(table) == 3


def test_fractions_below_one_batch_train_once_and_say_so():
    config = tiny(arms=["scratch"], fractions=[0.01, 0.02, 1.0])
    result = run_transfer(config)
    n_pool = result["n_target_train"]
    assert n_pool * 0.02 < 16  # both fractions clamp to one batch of 16
    assert [(r["fraction"], r["n_labelled"]) for r in result["rows"]] == [(0.02, 16), (1.0, n_pool)]
    assert result["fractions"] == [0.02, 1.0] and result["requested_fractions"] == [0.01, 0.02, 1.0]
    assert result["merged_fractions"] == [{"n_labelled": 16, "fraction": 0.02, "fractions": [0.01, 0.02]}]
    assert result["merged_text"] == (
        "1 % and 2 % both give 16 labelled examples (at least one batch of 16): trained once, shown as 2 %.")
    assert result["merged_text"] in format_transfer(result)


def test_a_cancelled_transfer_run_keeps_the_finished_cells():
    class StopAfterTwoModels(Sink):
        def __init__(self):
            self.finished = []

        def on_end(self, phase, status, error=None):
            self.finished.append(phase)

        def should_stop(self):
            return len(self.finished) >= 2  # pretrain and the first target model

    with RunStore() as store:
        run_id = store.create_run(tiny().to_dict())
        assert worker.execute(store, run_id, extra_sink=StopAfterTwoModels()) == "cancelled"
        assert store.get_run(run_id)["status"] == "cancelled"
        partial = store.result(run_id)
    assert partial["status"] == "cancelled"
    assert [(r["arm"], r["fraction"]) for r in partial["rows"]] == [("frozen", 0.05)]


def test_cli_transfer_prints_the_table_and_writes_the_json(tmp_path, monkeypatch, capsys):
    """`mtl-lab transfer` run in this process (`cli.main`, as tests/test_cli.py does; the
    real `python -m mtl_core` end to end is tested there once)."""
    from mtl_core import cli

    monkeypatch.setenv("MTL_LAB_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "transfer.yaml"
    config.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "out.json"
    code = cli.main(["transfer", "--config", str(config), "--set", "arms=[frozen, scratch]",
                     "--set", "fractions=[0.1, 1.0]", "--json", str(out), "-q"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "frozen" in printed.out and "scratch" in printed.out and "finetune" not in printed.out
    assert "pos, ner → topic" in printed.out
    result = json.loads(out.read_text())
    assert len(result["rows"]) == 4
    assert cli.main(["runs"]) == 0
    assert result["run_id"] in capsys.readouterr().out

    assert cli.main(["transfer", "--config", str(config), "--set", "target=pos"]) == 2
    assert "target: 'pos' is also a source" in capsys.readouterr().err


def test_each_pretrained_arm_is_compared_with_scratch_on_the_same_test_rows_with_its_interval():
    from mtl_core.transfer import vs_scratch_frame

    result = run_transfer(tiny(fractions=[1.0]))
    by_arm = {r["arm"]: r for r in result["rows"]}
    assert "vs_scratch" not in by_arm["scratch"]
    for arm in ("frozen", "finetune"):
        v = by_arm[arm]["vs_scratch"]
        assert v["low"] <= v["diff"] <= v["high"] and v["verdict"] in ("helped", "hurt", "no clear difference")
        # The gain is the arm's metric minus scratch's, on the same test rows (accuracy: higher is better).
        assert v["diff"] == pytest.approx(by_arm[arm]["metric_value"] - by_arm["scratch"]["metric_value"], abs=1e-9)
        assert (v["verdict"] == "no clear difference") == (v["low"] <= 0 <= v["high"])
    frame = vs_scratch_frame(result)
    assert list(frame["arm"]) == ["frozen", "finetune"] and "vs scratch" in format_transfer(result)
    assert vs_scratch_frame(run_transfer(tiny(arms=["frozen"], fractions=[1.0]))).empty  # nothing to compare with
