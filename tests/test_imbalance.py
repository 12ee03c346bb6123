"""Imbalanced classification (issue 16 item 4): macro-F1 as the primary metric when the
majority class dominates the training split, `class_weights: balanced` (King & Zeng, 2001, as
scikit-learn's compute_class_weight), the trivial baseline beside every result, and no
"helped" verdict for a model that collapsed to the majority answer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss
from sklearn.utils.class_weight import compute_class_weight

from mtl_core.cli import format_result
from mtl_core.config import ExperimentConfig
from mtl_core.engine import class_weight_table, weighted_task_loss
from mtl_core.errors import ConfigError
from mtl_core.experiment import MemoryBaselineCache, baseline_key, run_experiment
from mtl_core.metrics import transfer_verdict, trivial_baseline
from mtl_core.significance import paired_interval
from mtl_core.sink import RecordingSink
from mtl_core.tasks import load_dataset
from mtl_core.tasks.base import IGNORE_INDEX, MTLDataset, Split, TaskSpec, balanced_class_weights, is_imbalanced


def _labels(n: int, n_minority: int) -> torch.Tensor:
    y = torch.zeros(n, dtype=torch.long)
    y[:n_minority] = 1
    return y


def _dataset(train_y: torch.Tensor, test_y: torch.Tensor, **spec) -> MTLDataset:
    def split(y: torch.Tensor) -> Split:
        return Split(torch.zeros(len(y), 2), {"rare": y})

    return MTLDataset(name="imb", input_kind="vector", tasks={"rare": TaskSpec("rare", "classification", 2, **spec)},
                      train=split(train_y), val=split(train_y[:10]), test=split(test_y), input_dim=2)


# --- 1. the primary metric -------------------------------------------------------------

def test_imbalanced_binary_task_is_scored_by_macro_f1_with_its_reason():
    ds = _dataset(_labels(100, 13), _labels(40, 20))
    spec = ds.tasks["rare"]
    assert (spec.metric, spec.higher_is_better) == ("macro_f1", True)
    assert spec.metric_reason == "macro-F1 (majority class 87 %)"
    assert spec.as_dict()["metric_reason"] == spec.metric_reason
    # the same spec after choosing tasks (every later reader: selection, Δm, significance, sweeps)
    assert ds.select_tasks(["rare"]).tasks["rare"] == spec


def test_primary_metric_is_decided_from_the_training_split_only():
    balanced_train, skewed_test = _labels(100, 50), _labels(100, 3)
    assert _dataset(balanced_train, skewed_test).tasks["rare"].metric == "accuracy"
    skewed_train_with_ignored = torch.cat([_labels(20, 2), torch.full((80,), IGNORE_INDEX)])
    assert _dataset(skewed_train_with_ignored, balanced_train).tasks["rare"].metric_reason == (
        "macro-F1 (majority class 90 %)")  # unlabelled rows do not count


def test_a_metric_the_dataset_names_is_kept():
    spec = _dataset(_labels(100, 5), _labels(10, 5), metric="accuracy").tasks["rare"]
    assert (spec.metric, spec.metric_reason) == ("accuracy", "")


@pytest.mark.parametrize("share, k, expected", [
    (0.75, 2, False), (0.76, 2, True),   # binary: above 1.5 / 2
    (0.60, 3, False), (0.61, 3, True),   # three classes: the 60 % floor
    (0.50, 10, False), (0.61, 10, True),  # many classes: 1.5 / 10 alone would be 15 %
])
def test_imbalance_threshold(share, k, expected):
    assert is_imbalanced(share, k) is expected


# --- 2. class weights -------------------------------------------------------------------

def test_balanced_class_weights_equal_sklearn():
    y = torch.tensor([0] * 70 + [1] * 20 + [2] * 10 + [IGNORE_INDEX] * 5)
    labelled = y[y != IGNORE_INDEX].numpy()
    expected = compute_class_weight("balanced", classes=np.array([0, 1, 2]), y=labelled)
    assert balanced_class_weights(y, 3).numpy() == pytest.approx(expected.astype(np.float32))
    assert expected[2] == pytest.approx(100 / (3 * 10))
    # a class absent from training keeps weight 1 (it is never a target)
    w = balanced_class_weights(torch.tensor([0, 0, 0, 1]), 3)
    assert w.tolist() == pytest.approx([4 / 6, 4 / 2, 1.0])


def test_weighted_cross_entropy_is_sklearns_sample_weighted_log_loss():
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(50, 3, generator=g), torch.randint(0, 3, (50,), generator=g)
    w = balanced_class_weights(y, 3)
    loss = weighted_task_loss("classification", logits, y, masked=True, class_weight=w)
    p = torch.softmax(logits, -1).numpy()
    assert float(loss) == pytest.approx(log_loss(y.numpy(), p, sample_weight=w[y].numpy(), labels=[0, 1, 2]),
                                        rel=1e-5)
    none_labelled = weighted_task_loss("classification", logits[:4], torch.full((4,), IGNORE_INDEX),
                                       masked=True, class_weight=w)
    assert float(none_labelled) == 0.0


def test_class_weights_option_is_validated():
    assert ExperimentConfig.parse({}).class_weights == "none"
    assert ExperimentConfig.parse({"class_weights": "Balanced"}).class_weights == "balanced"
    assert ExperimentConfig.parse({"class_weights": None}).class_weights == "none"
    with pytest.raises(ConfigError, match=r"class_weights.*give none or balanced"):
        ExperimentConfig.parse({"class_weights": "auto"})


def _imbalanced_csv(tmp_path, n: int = 400):
    """Six features; `rare` is "yes" for ~10 % of rows (x0 > 1.28), `common` ~50/50."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 6))
    rare, common = np.where(x[:, 0] > 1.28, "yes", "no"), np.where(x[:, 1] > 0, "up", "down")
    lines = ["f0,f1,f2,f3,f4,f5,rare,common"] + [
        ",".join(f"{v:.3f}" for v in x[i]) + f",{rare[i]},{common[i]}" for i in range(n)]
    path = tmp_path / "imbalanced.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _config(path, **fields) -> ExperimentConfig:
    return ExperimentConfig.parse({
        "dataset": {"name": "csv", "options": {"path": str(path), "targets": ["rare", "common"]}},
        "model": {"hidden": [16]}, "steps": 20, "batch_size": 32, "eval_every": 10,
        "optimizer": {"lr": 0.01}, "interference": False, "device": "cpu", **fields})


def test_a_balanced_run_trains_with_finite_losses_and_reports_both_metrics_and_the_trivial_baseline(tmp_path):
    path = _imbalanced_csv(tmp_path)
    config = _config(path, class_weights="balanced")
    assert baseline_key(config, "rare") != baseline_key(_config(path), "rare")  # its own baselines
    ds = load_dataset("csv", config.dataset.options, seed=0)
    assert ds.tasks["rare"].metric == "macro_f1" and ds.tasks["common"].metric == "accuracy"
    weights = class_weight_table(config, ds, ["rare", "common"])  # what engine.train weighs the losses with
    assert weights[0].tolist() == pytest.approx(balanced_class_weights(ds.train.y["rare"], 2).tolist())
    assert class_weight_table(_config(path), ds, ["rare", "common"]) == [None, None]
    sink = RecordingSink()
    result = run_experiment(config, dataset=ds, sink=sink, baseline_cache=MemoryBaselineCache())
    losses = [v for row in sink.train for v in row["losses"].values()]
    assert losses and all(math.isfinite(v) for v in losses)
    rows = {r["name"]: r for r in result["tasks"]}
    rare = rows["rare"]
    train_share = float((ds.train.y["rare"] == int(torch.bincount(ds.train.y["rare"]).argmax())).float().mean())
    assert rare["metric"] == "macro_f1"
    assert rare["metric_reason"] == f"macro-F1 (majority class {train_share * 100:.0f} %)"
    assert {"accuracy", "macro_f1"} <= set(rare["mtl_all"]) and {"accuracy", "macro_f1"} <= set(rare["stl_all"])
    majority = int(torch.bincount(ds.train.y["rare"]).argmax())
    majority_share = float((ds.test.y["rare"] == majority).float().mean())
    assert rare["trivial"]["name"] == "predict the majority class"
    assert rare["trivial"]["metrics"]["accuracy"] == pytest.approx(majority_share)
    # macro-F1 of always "0": F1 of class 0 = 2p / (1 + p), of class 1 = 0
    assert rare["trivial"]["value"] == pytest.approx(majority_share / (1 + majority_share))
    text = format_result(result)
    assert "trivial baseline" in text and "primary metric of rare: macro-F1 (majority class" in text
    assert "predict the majority class" in text


# --- 3. the trivial baseline -------------------------------------------------------------

def test_trivial_baseline_of_tagging_and_regression():
    tag = TaskSpec("pos", "tagging", 3)
    train_y = torch.tensor([[2, 2, 1, IGNORE_INDEX], [2, 0, IGNORE_INDEX, IGNORE_INDEX]])
    test_y = torch.tensor([[2, 1, 2, IGNORE_INDEX]])
    out = trivial_baseline(tag, train_y, test_y)
    assert out["name"] == "predict the most frequent tag" and out["value"] == pytest.approx(2 / 3)
    reg = TaskSpec("y", "regression", target_scale=(10.0, 2.0))  # stored standardised
    out = trivial_baseline(reg, torch.tensor([-1.0, 1.0, float("nan"), 3.0]), torch.tensor([0.0, 2.0]))
    # train mean 1 (stored) = 12 in the original units; test 10 and 14: MSE = (4 + 4) / 2
    assert out["name"] == "predict the training mean" and out["value"] == pytest.approx(4.0)


def test_dashboard_table_shows_the_trivial_baseline_column():
    from dashboard.charts.results import TRIVIAL_COL, comparison_frame, style_comparison

    rows = [{"name": "rare", "metric": "macro_f1", "higher_is_better": True, "stl": 0.61, "mtl": 0.47,
             "delta_pct": -23.0, "trivial": {"name": "predict the majority class", "value": 0.4737}}]
    frame = comparison_frame(rows)
    assert frame[TRIVIAL_COL].tolist() == [pytest.approx(0.4737)]
    assert "0.4737" in style_comparison(frame).to_html()
    assert TRIVIAL_COL not in comparison_frame([{k: v for k, v in rows[0].items() if k != "trivial"}])


# --- 4. a majority collapse is never a gain ------------------------------------------------

def _collapse_case():
    """900 / 100 test rows. The single-task model finds 60 of the 100 positives at the cost
    of 120 false alarms (accuracy .84); the multi-task model always answers 0 (accuracy .90)."""
    y = _labels(1000, 100)
    stl_pred = torch.zeros(1000, dtype=torch.long)
    stl_pred[:60] = 1
    stl_pred[100:220] = 1
    mtl_pred = torch.zeros(1000, dtype=torch.long)
    return y, torch.nn.functional.one_hot(stl_pred, 2).float(), torch.nn.functional.one_hot(mtl_pred, 2).float()


def test_majority_collapse_gets_no_positive_verdict():
    y, stl_out, mtl_out = _collapse_case()
    train_y = _labels(1000, 100)  # the train split is 90 / 10 too
    spec = _dataset(train_y, y).tasks["rare"]
    assert spec.metric == "macro_f1"
    trivial = trivial_baseline(spec, train_y, y)["value"]
    ex = paired_interval(spec, y, stl_out, mtl_out)
    from mtl_core.metrics import task_metrics
    stl, mtl = task_metrics(spec, stl_out, y), task_metrics(spec, mtl_out, y)
    assert mtl["accuracy"] > stl["accuracy"]  # accuracy alone would call it a gain
    v = transfer_verdict([stl["macro_f1"]], [mtl["macro_f1"]], higher_is_better=True, examples=[ex],
                         trivial=trivial)
    assert v["verdict"] == "hurt" and v["delta_pct"] < 0


def test_collapse_scored_by_accuracy_is_not_called_helped_either():
    """A task whose dataset names accuracy: the interval alone would say "helped"; the
    trivial baseline keeps the verdict at "no clear difference"."""
    y, stl_out, mtl_out = _collapse_case()
    spec = _dataset(_labels(1000, 100), y, metric="accuracy").tasks["rare"]
    ex = paired_interval(spec, y, stl_out, mtl_out)
    trivial = trivial_baseline(spec, _labels(1000, 100), y)["value"]
    assert trivial == pytest.approx(0.9)
    unguarded = transfer_verdict([0.84], [0.90], higher_is_better=True, examples=[ex])
    assert unguarded["verdict"] == "helped"
    v = transfer_verdict([0.84], [0.90], higher_is_better=True, examples=[ex], trivial=trivial)
    assert v["verdict"] == "no clear difference"
    assert "does not beat the trivial baseline (0.9" in v["verdict_text"]
