"""Multi-label targets (issue 16 item 3): a task whose rows hold any set of labels, from a
delimited CSV column ("a;b") or a group of 0/1 columns; binary cross-entropy with masked
unlabelled rows; micro- and macro-F1 (scikit-learn), thresholds at 0.5 or tuned per label on
validation (Yang, 2001); and, with it, the class weights of `class_weights: balanced` in the
losses the interference snapshot measures (the same losses the engine trains with)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from sklearn.metrics import f1_score

from mtl_core.config import ExperimentConfig
from mtl_core.engine import (
    class_weight_table,
    interference_snapshot,
    train,
    weighted_task_loss,
)
from mtl_core.errors import ConfigError, DataError
from mtl_core.experiment import MemoryBaselineCache, run_experiment
from mtl_core.interference import task_gradients
from mtl_core.metrics import (
    decision_logits,
    task_metrics,
    trivial_baseline,
    tune_thresholds,
)
from mtl_core.models import build_model
from mtl_core.models.heads import task_loss
from mtl_core.projection import projection_snapshot
from mtl_core.significance import metric_from_sums, paired_interval, row_stats
from mtl_core.sink import RecordingSink
from mtl_core.tasks import load_dataset
from mtl_core.tasks.base import MTLDataset, Split, TaskSpec
from mtl_core.tasks.csv_import import CSVOptions, from_csv

N = 240


def _features(n: int = N) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, 4))


def _write(tmp_path, header: list[str], rows: list[list[str]], name: str = "ml.csv"):
    path = tmp_path / name
    path.write_text("\n".join([",".join(header), *(",".join(r) for r in rows)]) + "\n", encoding="utf-8")
    return path


def _delimited_csv(tmp_path, n: int = N):
    """f0..f3; `tags` lists a (f0 > 0), b (f1 > 0), c (f2 > 0.5) joined by ';' (empty cell:
    none of them); every 20th row is NA (unlabelled); `kind` = yes / no from f3."""
    x = _features(n)
    rows = []
    for i in range(n):
        labels = [lab for lab, on in zip("abc", (x[i, 0] > 0, x[i, 1] > 0, x[i, 2] > 0.5)) if on]
        tags = "NA" if i % 20 == 7 else ";".join(labels)
        rows.append([f"{v:.3f}" for v in x[i]] + [tags, "yes" if x[i, 3] > 0 else "no"])
    return _write(tmp_path, ["f0", "f1", "f2", "f3", "tags", "kind"], rows)


def _group_csv(tmp_path, n: int = N):
    """f0..f3 and 0/1 columns emo_joy (f0 > 0), emo_anger (f1 > 0), emo_fear (f2 > 0.5);
    every 25th row has the whole group empty (unlabelled)."""
    x = _features(n)
    rows = []
    for i in range(n):
        bits = ["", "", ""] if i % 25 == 3 else [str(int(v)) for v in (x[i, 0] > 0, x[i, 1] > 0, x[i, 2] > 0.5)]
        rows.append([f"{v:.3f}" for v in x[i]] + bits)
    return _write(tmp_path, ["f0", "f1", "f2", "f3", "emo_joy", "emo_anger", "emo_fear"], rows, "emo.csv")


def _config(options: dict, **fields) -> ExperimentConfig:
    return ExperimentConfig.parse({
        "dataset": {"name": "csv", "options": options},
        "model": {"hidden": [16]}, "steps": 30, "batch_size": 32, "eval_every": 15,
        "optimizer": {"lr": 0.02}, "device": "cpu", **fields})


# --- metrics ------------------------------------------------------------------------------

SPEC = TaskSpec("t", "multilabel", num_classes=3, class_names=("a", "b", "c"))


def test_micro_and_macro_f1_match_a_hand_computation():
    y = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]], dtype=torch.float32)
    # decisions at 0.5: [[1,0,0],[0,1,1],[1,0,0],[0,0,1]] as logits ±2
    pred = torch.tensor([[1, 0, 0], [0, 1, 1], [1, 0, 0], [0, 0, 1]], dtype=torch.float32)
    logits = pred * 4 - 2
    # per label: a tp 2 fp 0 fn 0 -> F1 1; b tp 1 fp 0 fn 1 -> 2/3; c tp 0 fp 2 fn 1 -> 0
    # micro: tp 3, fp 2, fn 2 -> 2·3 / (2·3 + 2 + 2) = 0.6
    m = task_metrics(SPEC, logits, y)
    assert m["macro_f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert m["micro_f1"] == pytest.approx(0.6)
    # an unlabelled row (NaN) is left out, whatever its prediction
    m2 = task_metrics(SPEC, torch.cat([logits, torch.full((1, 3), 5.0)]),
                      torch.cat([y, torch.full((1, 3), float("nan"))]))
    assert m2 == pytest.approx(m)
    assert SPEC.metric == "macro_f1" and SPEC.higher_is_better


def test_bootstrap_statistics_reproduce_task_metrics_exactly():
    rng = np.random.default_rng(1)
    y = torch.tensor(rng.integers(0, 2, size=(50, 3)), dtype=torch.float32)
    y[::9] = float("nan")
    logits = torch.tensor(rng.normal(size=(50, 3)), dtype=torch.float32)
    expected = task_metrics(SPEC, logits, y)
    for metric in ("macro_f1", "micro_f1"):
        spec = TaskSpec("t", "multilabel", num_classes=3, class_names=("a", "b", "c"), metric=metric)
        stats, keep = row_stats(spec, y, logits)
        assert keep.sum() == 44
        assert float(metric_from_sums(spec, stats.sum(0))) == pytest.approx(expected[metric])
    out = paired_interval(SPEC, y, logits, logits + 0.3, n_boot=200)
    assert out["n"] == 44 and out["stl"] == pytest.approx(expected["macro_f1"])


def test_threshold_tuning_picks_the_f1_maximising_threshold_per_label():
    p = torch.tensor([[0.30, 0.4, 0.90], [0.35, 0.1, 0.60], [0.10, 0.2, 0.70], [0.20, 0.3, 0.90]])
    y = torch.tensor([[1, 0, 1], [1, 0, 0], [0, 0, 0], [0, 0, 1]], dtype=torch.float32)
    logits = torch.logit(p)
    # label a: any τ in (0.20, 0.30] separates it; of the grid 0.25, 0.30 the one nearer 0.5.
    # label b: never positive, every τ scores F1 0: kept at 0.5.
    # label c: positives 0.9, negatives 0.6 and 0.7: τ in (0.70, 0.90]; nearest 0.5 is 0.75.
    tau = tune_thresholds(logits, y)
    assert tau == pytest.approx([0.30, 0.5, 0.75])
    assert task_metrics(SPEC, logits, y, thresholds=tau)["macro_f1"] == pytest.approx(2 / 3)  # a, c perfect; b 0
    assert task_metrics(SPEC, logits, y)["macro_f1"] < 2 / 3  # at 0.5 label a is missed
    # shifted logits decided at 0 are the tuned decisions (what a paired comparison is given)
    assert task_metrics(SPEC, decision_logits(logits, tau), y) == pytest.approx(
        task_metrics(SPEC, logits, y, thresholds=tau))


def test_trivial_baseline_predicts_each_labels_training_majority():
    train_y = torch.tensor([[1, 0, 1], [1, 0, 0], [1, 1, 0], [0, 0, 0], [float("nan")] * 3])
    test_y = torch.tensor([[1, 0, 0], [0, 1, 0]], dtype=torch.float32)
    out = trivial_baseline(SPEC, train_y, test_y)
    assert out["name"] == "predict each label's training majority"
    # always {a}: a tp 1 fp 1 -> 2/3; b fn 1 -> 0; c none -> 0 (zero_division 0)
    assert out["value"] == pytest.approx((2 / 3) / 3)


# --- the loss -----------------------------------------------------------------------------

def test_unlabelled_rows_change_nothing_in_the_loss_or_its_gradient():
    torch.manual_seed(0)
    logits = torch.randn(6, 3, requires_grad=True)
    y = (torch.rand(6, 3) > 0.5).float()
    y_masked = y.clone()
    y_masked[[1, 4]] = float("nan")
    full = task_loss("multilabel", logits[[0, 2, 3, 5]], y[[0, 2, 3, 5]], masked=False)
    masked = task_loss("multilabel", logits, y_masked)
    assert masked.item() == pytest.approx(full.item())  # mean over the labelled rows only
    masked.backward()
    assert logits.grad[[1, 4]].abs().sum() == 0
    none = task_loss("multilabel", logits, torch.full((6, 3), float("nan")))
    assert none.item() == 0.0 and none.requires_grad
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[[0, 2, 3, 5]], y[[0, 2, 3, 5]])
    assert full.item() == pytest.approx(expected.item())


# --- the CSV importer ---------------------------------------------------------------------

def test_delimited_column_reads_labels_empty_cells_and_unlabelled_rows(tmp_path):
    path = _delimited_csv(tmp_path)
    ds = from_csv(path, targets=["tags", "kind"], kinds={"tags": "multilabel"}, seed=0)
    spec = ds.tasks["tags"]
    assert spec.kind == "multilabel" and spec.class_names == ("a", "b", "c") and spec.num_classes == 3
    assert ds.tasks["kind"].kind == "classification"
    assert ds.input_dim == 4  # the target columns are not inputs
    y_all = torch.cat([ds.train.y["tags"], ds.val.y["tags"], ds.test.y["tags"]])
    assert y_all.shape == (N, 3) and y_all.dtype == torch.float32
    assert int(torch.isnan(y_all).all(1).sum()) == N // 20  # the NA rows
    assert not torch.isnan(y_all).any(1).logical_xor(torch.isnan(y_all).all(1)).any()  # whole rows only
    assert int((y_all.nan_to_num(1) == 0).all(1).sum()) > 0  # empty cells: labelled, no label
    assert ds.train.labelled_count("tags") == int((~torch.isnan(ds.train.y["tags"])).all(1).sum())
    assert ds.info["labelled"]["tags"]["train"] == ds.train.labelled_count("tags")
    # the same as a targets dict, and a delimiter of one's own
    piped = _write(tmp_path, ["f0", "tags"], [[str(i), ("a|b" if i % 2 else "b")] for i in range(30)], "p.csv")
    ds2 = from_csv(piped, targets={"tags": "multilabel"}, label_delimiter="|")
    assert ds2.tasks["tags"].class_names == ("a", "b")


def test_label_group_makes_one_task_with_the_suffixes_as_labels(tmp_path):
    path = _group_csv(tmp_path)
    ds = from_csv(path, label_groups={"emo": "emo_"}, seed=0)
    assert list(ds.tasks) == ["emo"]
    assert ds.tasks["emo"].class_names == ("joy", "anger", "fear")
    assert ds.feature_names is not None and not any(f.startswith("emo_") for f in ds.feature_names)
    y = torch.cat([ds.train.y["emo"], ds.val.y["emo"], ds.test.y["emo"]])
    assert int(torch.isnan(y).all(1).sum()) == len(range(3, N, 25))
    assert ds.info["label_groups"] == {"emo": {"joy": "emo_joy", "anger": "emo_anger", "fear": "emo_fear"}}
    # the header-only task listing (config check) knows the group
    opts = {"path": str(path), "targets": ["f3"], "kinds": {"f3": "regression"}, "label_groups": {"emo": "emo_"}}
    assert _config(opts).task_list(load_dataset("csv", opts).task_names) == ["f3", "emo"]


def _rows(first: list[str], good: list[str], n: int = 20) -> list[list[str]]:
    """`first` on line 2, then `n` - 1 rows of `good` (enough rows for three splits)."""
    return [first] + [[str(i), *good] for i in range(1, n)]


@pytest.mark.parametrize("make, options, error, match", [
    (lambda p: _write(p, ["x", "g_a", "g_b"], _rows(["0", "0", "2"], ["1", "0"])),
     {"label_groups": {"g": "g_"}}, DataError,
     r"column 'g_b' of label group 'g' holds values other than 0 and 1 on line 2 \('2'\).*write 1 where"),
    (lambda p: _group_csv(p), {"label_groups": {"emo": "emotion_"}}, DataError,
     r"prefix 'emotion_' of task 'emo' matches no column.*its columns are: f0, f1"),
    (lambda p: _write(p, ["x", "g_a", "h"], [["1", "0", "1"], ["2", "1", "0"], ["3", "1", "0"]]),
     {"label_groups": {"g": "g_"}}, DataError, r"matches a single column \('g_a'\).*at least two labels"),
    (lambda p: _write(p, ["x", "t"], _rows(["0", ""], ["a"])),
     {"targets": ["t"], "kinds": {"t": "multilabel"}}, DataError,
     r"multilabel target column 't' has only the label 'a' on its training rows"),
    (lambda p: _write(p, ["x", "g_a", "g_b"], _rows(["0", "0", ""], ["1", "0"])),
     {"label_groups": {"g": "g_"}}, DataError, r"label group 'g' is filled only in part on line 2"),
    (lambda p: _delimited_csv(p), {"targets": ["kind"], "kinds": {"tags": "multilabel"}}, ConfigError,
     r"kinds: column 'tags' is not a target"),
    (lambda p: _group_csv(p), {"label_groups": {"emo": "emo_"}, "inputs": ["f0", "emo_joy"]}, DataError,
     r"column 'emo_joy' is both an input and a label of group 'emo'"),
])
def test_bad_multilabel_inputs_are_refused_naming_column_and_fix(tmp_path, make, options, error, match):
    path = make(tmp_path)
    with pytest.raises(error, match=match):
        from_csv(path, **options)


def test_options_are_validated_by_pydantic():
    with pytest.raises(ValidationError, match="cannot separate labels"):
        CSVOptions(path="x.csv", targets=["t"], label_delimiter=" ")
    with pytest.raises(ValidationError):
        CSVOptions(path="x.csv", targets=["t"], kinds={"t": "multi"})
    assert CSVOptions(path="x.csv", targets=["t"], kinds={"t": "multilabel"}).label_delimiter == ";"


def test_many_delimited_values_suggest_the_multilabel_kind(tmp_path):
    labels = ["a", "b", "c", "d", "e", "f", "g"]
    rows = [[str(i), ";".join(labels[i % 7:i % 7 + 1 + i % 3])] for i in range(60)]
    path = _write(tmp_path, ["x", "t"], rows)
    with pytest.raises(DataError, match=r"kinds=\{'t': 'multilabel'\}"):
        from_csv(path, targets=["t"], max_classes=5)


# --- training -----------------------------------------------------------------------------

def test_csv_to_train_to_metrics_with_baselines_delta_m_and_interference(tmp_path):
    path = _delimited_csv(tmp_path)
    config = _config({"path": str(path), "targets": ["tags", "kind"], "kinds": {"tags": "multilabel"}},
                     interference=True)
    sink = RecordingSink()
    result = run_experiment(config, sink=sink, baseline_cache=MemoryBaselineCache())
    rows = {r["name"]: r for r in result["tasks"]}
    tags = rows["tags"]
    assert tags["kind"] == "multilabel" and tags["metric"] == "macro_f1" and tags["higher_is_better"]
    assert {"micro_f1", "macro_f1", "loss"} <= set(tags["mtl_all"]) and {"micro_f1", "macro_f1"} <= set(tags["stl_all"])
    assert 0 <= tags["mtl"] <= 1 and math.isfinite(tags["delta_pct"])
    assert tags["trivial"]["name"] == "predict each label's training majority"
    assert math.isfinite(result["delta_m"])
    snaps = sink.interference
    assert snaps and len(snaps[-1]["grad_cosine"]) == 2
    projection = snaps[-1]["projection"]["tags"]
    assert projection["classes"][:3] == ["0 labels", "1 label", "2 labels"]
    assert set(projection["label"]) <= {0, 1, 2, 3}


@pytest.mark.parametrize("sharing, weighting", [("hard", "pcgrad"), ("mmoe", "uncertainty")])
def test_multilabel_trains_under_gradient_and_loss_based_weighting(tmp_path, sharing, weighting):
    path = _group_csv(tmp_path)
    config = _config({"path": str(path), "targets": ["f3"], "kinds": {"f3": "regression"},
                      "label_groups": {"emo": "emo_"}},
                     sharing={"name": sharing}, weighting={"name": weighting}, interference=False)
    ds = load_dataset("csv", config.dataset.options, seed=0)
    sink = RecordingSink()
    result = train(config, ds, sink)
    losses = [row["losses"]["emo"] for row in sink.train]
    assert losses and all(math.isfinite(v) for v in losses)
    assert set(result.test["emo"]) == {"micro_f1", "macro_f1", "loss"}
    assert result.test_outputs["emo"].shape == (len(ds.test), 3)
    assert result.thresholds is None


def test_tuned_thresholds_are_reported_and_used_by_the_test_metrics(tmp_path):
    path = _group_csv(tmp_path)
    config = _config({"path": str(path), "label_groups": {"emo": "emo_"}, "tune_thresholds": True},
                     interference=False)
    ds = load_dataset("csv", config.dataset.options, seed=0)
    assert ds.tasks["emo"].tune_thresholds
    sink = RecordingSink()
    result = train(config, ds, sink, keep_model=True)
    tau = result.thresholds["emo"]
    assert len(tau) == 3 and all(0.05 <= t <= 0.95 for t in tau)
    reported = [e for e in sink.evals if e["split"] == "thresholds"]
    assert reported and reported[-1]["metrics"]["emo"] == dict(zip(("joy", "anger", "fear"), tau))
    # the thresholds are the best on the model's validation outputs ...
    model = result.model.eval()
    with torch.no_grad():
        val_out = model(ds.val.x)["emo"]
        test_out = model(ds.test.x)["emo"]
    assert tau == tune_thresholds(val_out, ds.val.y["emo"])
    # ... and the test metrics use them; the stored test outputs are the decision logits
    expected = task_metrics(ds.tasks["emo"], test_out, ds.test.y["emo"], thresholds=tau)
    assert result.test["emo"]["macro_f1"] == pytest.approx(expected["macro_f1"])
    assert task_metrics(ds.tasks["emo"], result.test_outputs["emo"], ds.test.y["emo"]) == pytest.approx(expected)


# --- class weights in the interference losses ---------------------------------------------

def _imbalanced() -> MTLDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 3, generator=g)
    rare = (x[:, 0] > 1.2).long()  # ~12 % positives
    other = x[:, 1] + 0.1 * torch.randn(200, generator=g)
    split = Split(x, {"rare": rare, "other": other})
    return MTLDataset(name="imb", input_kind="vector",
                      tasks={"rare": TaskSpec("rare", "classification", 2), "other": TaskSpec("other", "regression")},
                      train=split, val=split, test=split, input_dim=3)


def test_interference_measures_the_class_weighted_losses_the_engine_trains_with():
    ds = _imbalanced()
    config = ExperimentConfig.parse({"class_weights": "balanced",
                                     "model": {"hidden": [8]}, "device": "cpu"})
    weights = class_weight_table(config, ds, ["rare", "other"])
    assert weights[0] is not None and weights[1] is None
    torch.manual_seed(0)
    model = build_model("hard", ds, ["rare", "other"], config.model, {})
    x, y = ds.train.x[:128], {t: ds.train.y[t][:128] for t in ds.task_names}
    snap = interference_snapshot(model, ds, x, y, class_weights=weights)
    model.eval()
    shared = [p for p in model.shared_parameters() if p.requires_grad]
    out = model(x)
    trained = [weighted_task_loss("classification", out["rare"], y["rare"], masked=True, class_weight=weights[0]),
               task_loss("regression", out["other"], y["other"])]
    G = task_gradients(trained, shared)
    assert snap["grad_norm"] == pytest.approx(G.norm(dim=1).tolist(), rel=1e-5)
    unweighted = interference_snapshot(model, ds, x, y)
    assert abs(unweighted["grad_norm"][0] - snap["grad_norm"][0]) > 1e-3 * snap["grad_norm"][0]


def test_the_engine_passes_its_class_weights_to_the_interference_snapshot(monkeypatch):
    from mtl_core import engine

    seen = []
    real = engine.interference_snapshot

    def spy(*args, **kwargs):
        seen.append(kwargs.get("class_weights"))
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "interference_snapshot", spy)
    ds = _imbalanced()
    config = ExperimentConfig.parse({"class_weights": "balanced",
                                     "model": {"hidden": [8]}, "device": "cpu", "steps": 4, "eval_every": 2,
                                     "batch_size": 32, "interference": True})
    train(config, ds, tasks=["rare", "other"])
    expected = class_weight_table(config, ds, ["rare", "other"])
    assert len(seen) == 2 and all(w[0] is not None and torch.equal(w[0], expected[0]) and w[1] is None for w in seen)


# --- the dashboard's glance at the data ----------------------------------------------------

def test_thumbnails_show_multilabel_sets_and_do_not_crash(tmp_path):
    from dashboard.charts.thumbnails import data_preview

    ds = from_csv(_group_csv(tmp_path), label_groups={"emo": "emo_"})
    assert data_preview(ds) is None  # nothing to draw for a vector dataset with only a label set
    rows = [[" ".join(["w"] * (1 + i % 3)) + f" v{i % 4}", ("x;y" if i % 3 == 0 else "y" if i % 3 == 1 else "")]
            for i in range(40)]
    text = from_csv(_write(tmp_path, ["text", "tags"], rows, "t.csv"), targets={"tags": "multilabel"},
                    text_column="text", min_freq=1)
    kind, table = data_preview(text)
    assert kind == "table" and set(table["tags"]) <= {"x;y", "y", "∅"}


def test_projection_colours_rows_by_their_number_of_labels():
    ds = _imbalanced()
    y = torch.tensor([[1, 1], [0, 0], [1, 0], [float("nan")] * 2] * 10)
    spec = TaskSpec("ml", "multilabel", num_classes=2, class_names=("p", "q"))
    split = Split(ds.train.x[:40], {"ml": y})
    data = MTLDataset(name="m", input_kind="vector", tasks={"ml": spec}, train=split, val=split, test=split, input_dim=3)
    model = build_model("hard", data, ["ml"], ExperimentConfig.parse({"model": {"hidden": [8]}}).model, {})
    snap = projection_snapshot(model, data, split.x, split.y)["ml"]
    assert snap["classes"] == ["0 labels", "1 label", "2 labels"]
    assert snap["label"][:3] == [2, 0, 1] and len(snap["label"]) == 30


def test_the_batched_ensemble_refuses_a_multilabel_task_with_a_message(tmp_path):
    # A batched sweep falls back to one-by-one training on this ConfigError (mtl_core.executors).
    from mtl_core.ensemble import Member, check_supported

    config = _config({"path": str(_delimited_csv(tmp_path)), "targets": ["tags", "kind"], "kinds": {"tags": "multilabel"}})
    dataset = load_dataset("csv", config.dataset.options, seed=0)
    members = [Member("mtl#0", 0, ("tags", "kind"), (1.0, 1.0))]
    with pytest.raises(ConfigError, match="task 'tags' is multilabel; only classification and regression"):
        check_supported(config, dataset, members, sharing="hard", baseline=False)
    check_supported(config, dataset, [Member("stl:kind", 0, ("kind",), (1.0,))], sharing="hard", baseline=True)


# --- balanced class weights for multilabel tasks --------------------------------------------

def test_balanced_label_weights_are_each_labels_balanced_binary_class_weights():
    from sklearn.utils.class_weight import compute_class_weight

    from mtl_core.tasks.base import balanced_label_weights

    nan = float("nan")
    y = torch.tensor([[1, 0, 1], [0, 0, 1], [0, 0, 1], [0, 0, 1], [nan, nan, nan], [0, nan, 1]])
    w = balanced_label_weights(y)
    assert w.shape == (2, 3) and w.dtype == torch.float32
    # label 0: 1 present of 5 labelled -> absent 5/(2·4), present 5/(2·1), as scikit-learn says
    expected = compute_class_weight("balanced", classes=np.array([0, 1]), y=np.array([1, 0, 0, 0, 0]))
    assert w[:, 0].tolist() == pytest.approx(expected.tolist())
    assert w[:, 0].tolist() == pytest.approx([0.625, 2.5])
    assert w[:, 1].tolist() == [1.0, 1.0]  # never present: nothing to balance
    assert w[:, 2].tolist() == [1.0, 1.0]  # always present


def test_the_balanced_multilabel_loss_is_the_weighted_mean_over_labelled_cells():
    nan = float("nan")
    target = torch.tensor([[1.0, 0.0], [0.0, nan], [0.0, 1.0]])
    logits = torch.tensor([[0.3, -1.0], [2.0, 5.0], [-0.5, 0.7]], requires_grad=True)
    weights = torch.tensor([[0.5, 2.0], [3.0, 0.25]])  # rows: absent, present
    loss = weighted_task_loss("multilabel", logits, target, masked=True, class_weight=weights)

    def bce(z, y):
        return -(y * math.log(1 / (1 + math.exp(-z))) + (1 - y) * math.log(1 - 1 / (1 + math.exp(-z))))

    cells = [(0, 0, 3.0), (0, 1, 2.0), (1, 0, 0.5), (2, 0, 0.5), (2, 1, 0.25)]  # (row, label, weight)
    z = logits.detach()
    hand = sum(w * bce(float(z[r, c]), float(target[r, c])) for r, c, w in cells) / sum(w for *_, w in cells)
    assert loss.item() == pytest.approx(hand, rel=1e-6)
    loss.backward()
    assert logits.grad[1, 1] == 0  # the unlabelled cell gets no gradient
    # equal weights give back the plain masked binary cross-entropy
    plain = weighted_task_loss("multilabel", z, target, masked=True, class_weight=torch.ones(2, 2))
    assert float(plain) == pytest.approx(float(task_loss("multilabel", z, target)), rel=1e-6)


def test_balanced_class_weights_reach_a_multilabel_task_and_find_its_rare_label():
    # label "rare" is present in ~6 % of rows: the unweighted model learns to say "absent"
    # (F1 0 at threshold 0.5) within this budget; balanced weights make it say "present" where
    # f0 is large.
    g = torch.Generator().manual_seed(2)
    x = torch.randn(600, 3, generator=g)
    y = torch.stack([(x[:, 0] > 1.55).float(), (x[:, 1] > 0).float()], dim=1)
    spec = TaskSpec("tags", "multilabel", num_classes=2, class_names=("rare", "common"))
    split = Split(x, {"tags": y})
    ds = MTLDataset(name="ml", input_kind="vector", tasks={"tags": spec}, train=split, val=split, test=split,
                    input_dim=3)
    weights = class_weight_table(ExperimentConfig.parse({"class_weights": "balanced"}), ds, ["tags"])[0]
    assert weights.shape == (2, 2) and weights[1, 0] > 5 * weights[0, 0]
    f1 = {}
    for mode in ("none", "balanced"):
        config = ExperimentConfig.parse({"class_weights": mode, "model": {"hidden": [16]}, "device": "cpu",
                                         "steps": 60, "eval_every": 60, "batch_size": 64, "seed": 0,
                                         "optimizer": {"lr": 0.01}})
        result = train(config, ds, tasks=["tags"])
        rare = (result.test_outputs["tags"][:, 0] > 0).float()
        f1[mode] = f1_score(y[:, 0].numpy(), rare.numpy(), zero_division=0)
    assert f1["none"] < 0.2 and f1["balanced"] > 0.35, f1  # measured: 0.0 and 0.50 (seeds 0-2: ≤ 0.23 vs ≥ 0.50)

