"""Metrics: Δm's sign conventions (Maninis et al., 2019), BIO entity F1, per-task scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from mtl_core.metrics import (
    bio_spans,
    comparison_table,
    delta_m,
    entity_f1,
    relative_change,
    task_metrics,
    transfer_verdict,
)
from mtl_core.tasks.base import IGNORE_INDEX, TaskSpec


# ---- relative change and Δm -----------------------------------------------------------------
def test_lower_mse_under_mtl_is_a_positive_change():
    # MSE is lower-is-better: 1.0 -> 0.8 is a 20 % improvement.
    assert relative_change(1.0, 0.8, higher_is_better=False) == pytest.approx(20.0)
    assert relative_change(1.0, 1.25, higher_is_better=False) == pytest.approx(-25.0)


def test_higher_accuracy_under_mtl_is_a_positive_change():
    assert relative_change(0.8, 0.9, higher_is_better=True) == pytest.approx(12.5)
    assert relative_change(0.8, 0.6, higher_is_better=True) == pytest.approx(-25.0)


def test_equal_scores_are_no_change():
    assert relative_change(0.42, 0.42, higher_is_better=True) == 0.0
    assert relative_change(0.42, 0.42, higher_is_better=False) == 0.0


def test_relative_change_divides_by_the_magnitude_of_a_negative_baseline():
    # R² can be negative: -0.5 -> -0.25 is an improvement, so the term must be positive.
    assert relative_change(-0.5, -0.25, higher_is_better=True) == pytest.approx(50.0)


@pytest.mark.parametrize(("stl", "mtl"), [(float("nan"), 1.0), (1.0, float("nan")), (0.0, 0.5)])
def test_relative_change_is_nan_when_undefined(stl, mtl):
    assert math.isnan(relative_change(stl, mtl, higher_is_better=True))


def test_delta_m_is_the_mean_of_the_per_task_terms():
    specs = {
        "price": TaskSpec("price", "regression"),  # mse, lower is better
        "kind": TaskSpec("kind", "classification", num_classes=3),  # accuracy
        "tags": TaskSpec("tags", "tagging", num_classes=5),  # token_accuracy
    }
    stl = {"price": {"mse": 2.0}, "kind": {"accuracy": 0.5}, "tags": {"token_accuracy": 0.9}}
    mtl = {"price": {"mse": 1.5}, "kind": {"accuracy": 0.4}, "tags": {"token_accuracy": 0.99}}
    rows = comparison_table(specs, stl, mtl)
    # By hand: price -(1.5-2)/2 = +25 %, kind (0.4-0.5)/0.5 = -20 %, tags (0.99-0.9)/0.9 = +10 %.
    assert [r["delta_pct"] for r in rows] == pytest.approx([25.0, -20.0, 10.0])
    assert delta_m(rows) == pytest.approx((25.0 - 20.0 + 10.0) / 3)
    assert [r["name"] for r in rows] == ["price", "kind", "tags"]
    assert [r["higher_is_better"] for r in rows] == [False, True, True]
    assert rows[0]["metric"] == "mse" and rows[0]["stl"] == 2.0 and rows[0]["mtl"] == 1.5


def test_delta_m_leaves_out_tasks_without_a_defined_term():
    rows = [{"delta_pct": 10.0}, {"delta_pct": float("nan")}, {"delta_pct": -4.0}]
    assert delta_m(rows) == pytest.approx(3.0)
    assert math.isnan(delta_m([{"delta_pct": float("nan")}]))
    assert math.isnan(delta_m([]))


def test_comparison_table_without_baseline_gives_nan_terms():
    specs = {"y": TaskSpec("y", "regression")}
    rows = comparison_table(specs, {}, {"y": {"mse": 1.0}})
    assert math.isnan(rows[0]["stl"]) and math.isnan(rows[0]["delta_pct"])
    assert math.isnan(delta_m(rows))


# ---- BIO spans and entity F1 (CoNLL convention) ---------------------------------------------
def test_bio_spans_reads_begin_inside_outside():
    tags = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "O"]
    assert bio_spans(tags) == {(0, 2, "PER"), (3, 4, "LOC"), (4, 6, "LOC")}


def test_inside_tag_after_outside_starts_a_span():
    assert bio_spans(["O", "I-PER", "I-PER", "O"]) == {(1, 3, "PER")}


def test_inside_tag_of_another_type_starts_a_new_span():
    assert bio_spans(["B-PER", "I-LOC", "I-LOC"]) == {(0, 1, "PER"), (1, 3, "LOC")}


def test_span_running_to_the_end_is_closed():
    assert bio_spans(["O", "B-ORG", "I-ORG"]) == {(1, 3, "ORG")}
    assert bio_spans([]) == set()
    assert bio_spans(["O", "O"]) == set()


def test_entity_f1_needs_exact_span_and_type():
    truth = [["B-PER", "I-PER", "O", "B-LOC"]]
    assert entity_f1(truth, truth) == 1.0
    # Right type, span one token short: a miss (precision 0, recall 0).
    assert entity_f1([["B-PER", "I-PER"]], [["B-PER", "O"]]) == 0.0
    # Right span, wrong type: a miss.
    assert entity_f1([["B-PER", "I-PER"]], [["B-LOC", "I-LOC"]]) == 0.0


def test_entity_f1_is_micro_averaged_over_sentences():
    truth = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "B-LOC"]]
    # Spans: true {PER, LOC, ORG}, predicted {PER, ORG, LOC@(1,1)}: tp=2, P=2/3, R=2/3.
    assert entity_f1(truth, pred) == pytest.approx(2 / 3)
    # One found out of two, no false alarm: P=1, R=1/2, F1=2/3 as well; R=1/3: F1=0.5.
    assert entity_f1([["B-PER", "O", "B-LOC"]], [["B-PER", "O", "O"]]) == pytest.approx(2 / 3)
    assert entity_f1([["B-A", "B-B", "B-C"]], [["B-A", "O", "O"]]) == pytest.approx(0.5)


def test_entity_f1_without_any_entity_is_perfect():
    assert entity_f1([["O", "O"]], [["O", "O"]]) == 1.0
    assert entity_f1([["O"]], [["B-PER"]]) == 0.0


# ---- task metrics against scikit-learn ------------------------------------------------------
def test_regression_metrics_ignore_nan_labels_and_match_sklearn():
    spec = TaskSpec("y", "regression")
    target = torch.tensor([1.0, float("nan"), 3.0, -2.0, float("nan"), 0.5])
    output = torch.tensor([1.5, 100.0, 2.0, -2.5, -100.0, 0.0])
    keep = ~torch.isnan(target)
    yt, yp = target[keep].numpy(), output[keep].numpy()
    m = task_metrics(spec, output, target)
    assert m["mse"] == pytest.approx(skm.mean_squared_error(yt, yp))
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(yt, yp))
    assert m["r2"] == pytest.approx(skm.r2_score(yt, yp))
    assert m["mse"] == pytest.approx((0.25 + 1.0 + 0.25 + 0.25) / 4)  # by hand, too


def test_classification_metrics_ignore_unlabelled_rows_and_match_sklearn():
    spec = TaskSpec("kind", "classification", num_classes=3)
    target = torch.tensor([0, 1, IGNORE_INDEX, 2, 1, IGNORE_INDEX, 0])
    logits = torch.tensor([
        [3.0, 0.0, 0.0],  # 0, right
        [0.0, 0.0, 3.0],  # 2, wrong
        [0.0, 3.0, 0.0],  # unlabelled
        [0.0, 0.0, 3.0],  # 2, right
        [0.0, 3.0, 0.0],  # 1, right
        [3.0, 0.0, 0.0],  # unlabelled
        [0.0, 3.0, 0.0],  # 1, wrong
    ])
    keep = target != IGNORE_INDEX
    yt, yp = target[keep].numpy(), logits.argmax(-1)[keep].numpy()
    m = task_metrics(spec, logits, target)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(yt, yp)) == pytest.approx(3 / 5)
    assert m["macro_f1"] == pytest.approx(skm.f1_score(yt, yp, average="macro"))


def test_macro_f1_counts_a_class_absent_from_the_batch_as_zero():
    # Class 2 never occurs and is never predicted: with labels=0..2 it contributes F1 0.
    spec = TaskSpec("kind", "classification", num_classes=3)
    target = torch.tensor([0, 1, 1])
    logits = torch.eye(3)[[0, 1, 1]]
    m = task_metrics(spec, logits, target)
    assert m["accuracy"] == 1.0
    assert m["macro_f1"] == pytest.approx(
        skm.f1_score([0, 1, 1], [0, 1, 1], labels=[0, 1, 2], average="macro", zero_division=0)
    )
    assert m["macro_f1"] == pytest.approx(2 / 3)


def test_tagging_metrics_ignore_padding_and_score_entities():
    names = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")
    spec = TaskSpec("ner", "tagging", num_classes=len(names), class_names=names)
    P = IGNORE_INDEX
    target = torch.tensor([
        [1, 2, 0, 3, P, P],   # B-PER I-PER O B-LOC
        [0, 3, 4, P, P, P],   # O B-LOC I-LOC
    ])
    pred = torch.tensor([
        [1, 2, 0, 0, 3, 3],   # PER right, LOC missed; padding predictions must not count
        [0, 3, 0, 1, 1, 1],   # LOC cut short: a miss
    ])
    logits = torch.nn.functional.one_hot(pred, len(names)).float()
    keep = target != P
    m = task_metrics(spec, logits, target)
    assert m["token_accuracy"] == pytest.approx(
        skm.accuracy_score(target[keep].numpy(), pred[keep].numpy())
    ) == pytest.approx(5 / 7)
    # Spans: true {PER(0,2), LOC(3,4)} + {LOC(1,3)}; predicted {PER(0,2)} + {LOC(1,2)}: tp=1.
    assert m["entity_f1"] == pytest.approx(2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3))


def test_tagging_without_bio_names_has_no_entity_f1():
    spec = TaskSpec("pos", "tagging", num_classes=3, class_names=("NOUN", "VERB", "DET"))
    target = torch.tensor([[2, 0, 1, IGNORE_INDEX]])
    logits = torch.nn.functional.one_hot(torch.tensor([[2, 0, 0, 1]]), 3).float()
    m = task_metrics(spec, logits, target)
    assert m == {"token_accuracy": pytest.approx(2 / 3)}


@pytest.mark.parametrize(
    ("spec", "output", "target"),
    [
        (TaskSpec("y", "regression"), torch.zeros(3), torch.full((3,), float("nan"))),
        (TaskSpec("c", "classification", num_classes=2), torch.zeros(2, 2),
         torch.full((2,), IGNORE_INDEX)),
        (TaskSpec("t", "tagging", num_classes=2), torch.zeros(1, 3, 2), torch.full((1, 3), IGNORE_INDEX)),
    ],
    ids=["regression", "classification", "tagging"],
)
def test_task_without_any_label_has_no_metrics(spec, output, target):
    assert task_metrics(spec, output, target) == {}


def test_metrics_are_plain_floats():
    spec = TaskSpec("y", "regression")
    m = task_metrics(spec, torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0.5, 1.0, 1.0]))
    assert all(type(v) is float for v in m.values())
    assert np.isfinite(list(m.values())).all()


# ---- verdicts over seeds: Student's t, not 2·sd/√n --------------------------------------------
def test_seed_interval_uses_the_t_quantile():
    # d = [1, 2, 3]: mean 2, sd 1, n 3 -> 2 ± t_{0.975, 2}/√3 with t_{0.975, 2} = 4.3027.
    v = transfer_verdict([0.0, 0.0, 0.0], [1.0, 2.0, 3.0], higher_is_better=True)
    half = 4.302653 / math.sqrt(3)
    assert v["diff"] == pytest.approx(2.0)
    assert (v["low"], v["high"]) == pytest.approx((2 - half, 2 + half), rel=1e-5)
    assert v["noise"] == pytest.approx(half, rel=1e-5)
    # The old rule, |mean| > 2·sd/√n = 1.15, called this transfer; the 95 % t interval
    # (−0.48, 4.48) includes 0, so it is noise.
    assert abs(2.0) > 2 * 1.0 / math.sqrt(3)
    assert v["verdict"] == "no clear difference" and "noise" in v["verdict_text"]


def test_seed_verdict_words_and_direction():
    clear = transfer_verdict([2.0, 2.2, 1.8], [1.5, 1.75, 1.3], higher_is_better=False)  # MSE down
    assert clear["verdict"] == "helped" and "helps" in clear["verdict_text"] and clear["low"] > 0
    worse = transfer_verdict([0.9, 0.92, 0.88], [0.8, 0.83, 0.78], higher_is_better=True)
    assert worse["verdict"] == "hurt" and worse["high"] < 0
    assert worse["mtl_std"] == pytest.approx(0.025166, rel=1e-3)
    assert worse["delta_pct"] == pytest.approx((0.80333 - 0.9) / 0.9 * 100, rel=1e-3)
    assert "Student t" in worse["method"]


def test_one_seed_takes_its_verdict_from_the_example_interval():
    bare = transfer_verdict([0.9], [0.95], higher_is_better=True)
    assert bare["verdict"] == "no clear difference" and "one seed" in bare["verdict_text"]
    assert math.isnan(bare["low"]) and math.isnan(bare["stl_std"])
    sure = transfer_verdict([0.6], [0.9], higher_is_better=True, examples=[{"low": 0.2, "high": 0.4}])
    assert sure["verdict"] == "helped" and (sure["low"], sure["high"]) == (0.2, 0.4)
    assert "one seed" in sure["verdict_text"]
    unsure = transfer_verdict([0.6], [0.62], higher_is_better=True, examples=[{"low": -0.05, "high": 0.09}])
    assert unsure["verdict"] == "no clear difference" and "noise" in unsure["verdict_text"]


def test_seeds_agreeing_on_a_gain_the_test_examples_cannot_confirm_is_no_clear_difference():
    # Three seeds all +0.02 ± 0.001 (a tight t interval), but each test set is too small
    # to tell 0.02 from 0 -> both intervals must exclude 0 for "helped".
    ex = [{"low": -0.03, "high": 0.07}] * 3
    v = transfer_verdict([0.80, 0.81, 0.79], [0.82, 0.83, 0.81], higher_is_better=True, examples=ex)
    assert v["low"] > 0 and v["example_low"] == pytest.approx(-0.03)
    assert v["verdict"] == "no clear difference"
    sure = transfer_verdict([0.80, 0.81, 0.79], [0.82, 0.83, 0.81], higher_is_better=True,
                            examples=[{"low": 0.01, "high": 0.03}] * 3)
    assert sure["verdict"] == "helped"
