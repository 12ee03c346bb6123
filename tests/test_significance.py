"""Noise-aware verdicts: paired bootstrap over test examples (Efron & Tibshirani, 1993),
McNemar's exact test (McNemar, 1947), Δm's interval, seed combination, gradient-pair signs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mtl_core.metrics import comparison_table, delta_m, task_metrics
from mtl_core.significance import (
    bootstrap_counts,
    combine,
    delta_m_interval,
    mcnemar_exact,
    paired_interval,
    pair_sign,
    resampled_metric,
)
from mtl_core.tasks.base import IGNORE_INDEX, TaskSpec

NER = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")
SPECS = {
    "accuracy": TaskSpec("c", "classification", num_classes=3),
    "macro_f1": TaskSpec("c", "classification", num_classes=4, metric="macro_f1"),
    "mse": TaskSpec("y", "regression"),
    "mae": TaskSpec("y", "regression", metric="mae"),
    "r2": TaskSpec("y", "regression", metric="r2", higher_is_better=True),
    "token_accuracy": TaskSpec("t", "tagging", num_classes=4),
    "entity_f1": TaskSpec("t", "tagging", num_classes=len(NER), class_names=NER),
}


def outputs(spec: TaskSpec, n: int, *, skill: float, seed: int, missing: float = 0.0, target=None):
    """Targets and a model's raw outputs that are right with probability `skill`
    (regression: error sd 1 − skill); a share `missing` of the labels is unlabelled."""
    g = torch.Generator().manual_seed(seed)
    if spec.kind == "regression":
        y = torch.randn(n, generator=torch.Generator().manual_seed(999)) * 2 + 5 if target is None else target
        out = y + torch.randn(n, generator=g) * (1.0 - skill)
        y = y.clone()
        y[torch.rand(n, generator=torch.Generator().manual_seed(7)) < missing] = float("nan")
        return y, out
    C = int(spec.num_classes)
    shape = (n,) if spec.kind == "classification" else (n, 6)
    y = torch.randint(0, C, shape, generator=torch.Generator().manual_seed(999)) if target is None else target
    right = torch.rand(shape, generator=g) < skill
    pred = torch.where(right, y.clamp_min(0), torch.randint(0, C, shape, generator=g))
    y = y.clone()
    y[torch.rand(shape, generator=torch.Generator().manual_seed(7)) < missing] = IGNORE_INDEX
    if spec.kind == "tagging":
        y[: n // 4, 4:] = IGNORE_INDEX  # padding
    return y, torch.nn.functional.one_hot(pred, C).float() + 0.01 * torch.randn(*shape, C, generator=g)


def r_stl(spec, out, y):
    return task_metrics(spec, out, y)[spec.metric]


# ---- the bootstrap scores exactly as task_metrics ---------------------------------------------
@pytest.mark.parametrize("metric", list(SPECS))
def test_point_values_are_task_metrics(metric):
    spec = SPECS[metric]
    y, out_s = outputs(spec, 80, skill=0.6, seed=1, missing=0.1)
    _, out_m = outputs(spec, 80, skill=0.8, seed=2, missing=0.1)
    r = paired_interval(spec, y, out_s, out_m, n_boot=200)
    assert r["stl"] == pytest.approx(task_metrics(spec, out_s, y)[metric], rel=1e-6)
    assert r["mtl"] == pytest.approx(task_metrics(spec, out_m, y)[metric], rel=1e-6)
    sign = 1 if spec.higher_is_better else -1
    assert r["diff"] == pytest.approx(sign * (r["mtl"] - r["stl"]))
    assert r["low"] <= r["diff"] <= r["high"] and r["metric"] == metric


@pytest.mark.parametrize("metric", list(SPECS))
def test_every_resample_is_scored_as_task_metrics_scores_the_drawn_rows(metric):
    spec = SPECS[metric]
    y, out = outputs(spec, 40, skill=0.6, seed=3, missing=0.15)
    values = resampled_metric(spec, y, out, n_boot=100, seed=5)
    counts = bootstrap_counts(40, 100, seed=5)
    assert counts.shape == (100, 40) and (counts.sum(1) == 40).all()
    for b in range(0, 100, 7):
        idx = torch.from_numpy(np.repeat(np.arange(40), counts[b].astype(int)))
        expected = task_metrics(spec, out[idx], y[idx]).get(metric, float("nan"))
        assert values[b] == pytest.approx(expected, rel=1e-6, abs=1e-9, nan_ok=True)


# ---- verdicts from one seed -----------------------------------------------------------------
def test_two_noisy_copies_of_one_predictor_show_no_clear_difference():
    # Same skill (75 % right), independent noise: any gap is chance. A 95 % interval must call
    # "no clear difference" on at least 90 % of 50 draws of the noise.
    spec = SPECS["accuracy"]
    calls = []
    for k in range(50):
        y = torch.randint(0, 3, (60,), generator=torch.Generator().manual_seed(1000 + k))
        _, a = outputs(spec, 60, skill=0.75, seed=2 * k, target=y)
        _, b = outputs(spec, 60, skill=0.75, seed=2 * k + 1, target=y)
        calls.append(paired_interval(spec, y, a, b, n_boot=1000)["verdict"])
    assert calls.count("no clear difference") >= 45, calls


def test_a_much_better_multi_task_model_helped_and_mcnemar_agrees():
    spec = SPECS["accuracy"]
    y, stl = outputs(spec, 200, skill=0.5, seed=10)  # ~0.67 accuracy with 3 classes
    _, mtl = outputs(spec, 200, skill=0.85, seed=11)  # ~0.9
    r = paired_interval(spec, y, stl, mtl)
    assert r["mtl"] - r["stl"] > 0.15
    assert r["verdict"] == "helped" and r["low"] > 0 and r["n"] == 200
    assert r["mcnemar_p"] < 1e-3 and r["mtl_only_right"] > r["stl_only_right"]
    assert "Efron" in r["method"] and "McNemar" in r["method"] and r["text"].startswith("helped")
    swapped = paired_interval(spec, y, mtl, stl)
    assert swapped["verdict"] == "hurt" and swapped["high"] < 0
    assert swapped["diff"] == pytest.approx(-r["diff"])


def test_lower_mse_under_mtl_is_helped():
    spec = SPECS["mse"]
    y, stl = outputs(spec, 200, skill=0.0, seed=1)  # error sd 1
    _, mtl = outputs(spec, 200, skill=0.5, seed=2)  # error sd 0.5
    r = paired_interval(spec, y, stl, mtl)
    assert r["mtl"] < r["stl"] and r["diff"] == pytest.approx(r["stl"] - r["mtl"]) and r["verdict"] == "helped"
    assert "mcnemar_p" not in r


def test_identical_predictions_are_no_clear_difference_with_a_zero_interval():
    spec = SPECS["accuracy"]
    y, out = outputs(spec, 50, skill=0.7, seed=0)
    r = paired_interval(spec, y, out, out, n_boot=200)
    assert (r["diff"], r["low"], r["high"]) == (0.0, 0.0, 0.0)
    assert r["verdict"] == "no clear difference" and r["mcnemar_p"] == 1.0


def test_bootstrap_interval_of_a_mean_matches_the_normal_approximation():
    # Accuracy difference = mean of per-example d_i ∈ {−1, 0, 1}; at N = 2000 the percentile
    # interval's half-width must be within 10 % of 1.96·sd(d)/√N (central limit theorem).
    spec = SPECS["accuracy"]
    y, stl = outputs(spec, 2000, skill=0.6, seed=21)
    _, mtl = outputs(spec, 2000, skill=0.65, seed=22)
    r = paired_interval(spec, y, stl, mtl)
    d = (mtl.argmax(-1) == y).double() - (stl.argmax(-1) == y).double()
    half = 1.96 * float(d.std()) / math.sqrt(2000)
    assert (r["high"] - r["low"]) / 2 == pytest.approx(half, rel=0.10)
    assert (r["high"] + r["low"]) / 2 == pytest.approx(float(d.mean()), abs=0.1 * half)


def test_mcnemar_exact_p_on_a_hand_computed_table():
    # 2 examples only STL gets right, 8 only MTL: p = 2·P(Bin(10, ½) ≤ 2) = 2·(1 + 10 + 45)/1024.
    stl = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0])
    mtl = np.array([0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0])
    r = mcnemar_exact(stl, mtl)
    assert r == {"mcnemar_p": pytest.approx(112 / 1024), "mtl_only_right": 8, "stl_only_right": 2}


@pytest.mark.parametrize("metric", ["accuracy", "mse", "token_accuracy"])
def test_unlabelled_rows_are_left_out(metric):
    # The unlabelled rows' predictions differ wildly between the models; they must not count:
    # the result equals the one on the labelled rows alone (same n, same resamples).
    spec = SPECS[metric]
    y, stl = outputs(spec, 120, skill=0.6, seed=1, missing=0.3 if metric != "token_accuracy" else 0.0)
    _, mtl = outputs(spec, 120, skill=0.7, seed=2)
    if metric == "token_accuracy":
        y[::3] = IGNORE_INDEX  # whole sentences unlabelled
    keep = (~torch.isnan(y)) if spec.kind == "regression" else (y != IGNORE_INDEX).reshape(120, -1).any(1)
    mtl_bad = mtl.clone()
    mtl_bad[~keep] = -mtl_bad[~keep] * 50  # garbage where there is no label
    full = paired_interval(spec, y, stl, mtl_bad, n_boot=500)
    only = paired_interval(spec, y[keep], stl[keep], mtl[keep], n_boot=500)
    assert full["n"] == only["n"] == int(keep.sum()) < 120
    for k in ("stl", "mtl", "diff", "low", "high", "verdict"):
        assert full[k] == pytest.approx(only[k]) if k != "verdict" else full[k] == only[k]


def test_standardised_regression_targets_give_the_same_interval_as_raw_ones():
    mean, std = 250_000.0, 80_000.0
    raw = torch.randn(150, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * std + mean
    stl = raw + torch.randn(150, dtype=torch.float64, generator=torch.Generator().manual_seed(4)) * 30_000
    mtl = raw + torch.randn(150, dtype=torch.float64, generator=torch.Generator().manual_seed(5)) * 20_000
    for metric in ("mse", "mae"):
        plain = TaskSpec("price", "regression", metric=metric)
        scaled = TaskSpec("price", "regression", metric=metric, target_scale=(mean, std))
        a = paired_interval(plain, raw, stl, mtl)
        b = paired_interval(scaled, (raw - mean) / std, (stl - mean) / std, (mtl - mean) / std)
        assert a["verdict"] == b["verdict"] == "helped"
        for k in ("stl", "mtl", "diff", "low", "high"):
            assert b[k] == pytest.approx(a[k], rel=1e-9)


# ---- Δm ---------------------------------------------------------------------------------------
def test_delta_m_interval_contains_the_point_delta_m_of_the_results_table():
    specs = {"c": SPECS["accuracy"], "y": SPECS["mse"], "t": SPECS["token_accuracy"]}
    targets, stl, mtl = {}, {}, {}
    for i, (t, spec) in enumerate(specs.items()):
        targets[t], stl[t] = outputs(spec, 300, skill=0.6, seed=10 + i, missing=0.2)
        _, mtl[t] = outputs(spec, 300, skill=0.7 if t != "c" else 0.5, seed=20 + i)
    r = delta_m_interval(specs, targets, stl, mtl)
    rows = comparison_table(specs, {t: task_metrics(specs[t], stl[t], targets[t]) for t in specs},
                            {t: task_metrics(specs[t], mtl[t], targets[t]) for t in specs})
    assert r["diff"] == pytest.approx(delta_m(rows), rel=1e-6)
    assert r["low"] < r["diff"] < r["high"] and r["n"] == 300 and r["tasks"] == ["c", "y", "t"]
    assert r["verdict"] in ("helped", "hurt", "no clear difference") and "Maninis" in r["method"]


def test_delta_m_interval_leaves_out_a_task_without_a_baseline_and_checks_rows():
    specs = {"c": SPECS["accuracy"], "y": SPECS["mse"]}
    yc, sc = outputs(specs["c"], 100, skill=0.5, seed=1)
    _, mc = outputs(specs["c"], 100, skill=0.9, seed=2)
    yy, my = outputs(specs["y"], 100, skill=0.5, seed=3)
    r = delta_m_interval(specs, {"c": yc, "y": yy}, {"c": sc}, {"c": mc, "y": my})
    assert r["tasks"] == ["c"] and r["verdict"] == "helped"
    assert r["diff"] == pytest.approx(paired_interval(specs["c"], yc, sc, mc)["diff"] / r_stl(specs["c"], sc, yc) * 100)
    with pytest.raises(ValueError, match="same test rows"):
        delta_m_interval(specs, {"c": yc, "y": yy[:50]}, {"c": sc, "y": my[:50]}, {"c": mc, "y": my[:50]})
    with pytest.raises(ValueError, match="no task"):
        delta_m_interval(specs, {}, {}, {})


# ---- bad input --------------------------------------------------------------------------------
def test_bad_input_is_rejected_with_the_argument_named():
    spec = SPECS["accuracy"]
    y, out = outputs(spec, 20, skill=0.5, seed=0)
    with pytest.raises(ValueError, match="20 rows, target 19"):
        paired_interval(spec, y[:19], out, out)
    with pytest.raises(ValueError, match="raw outputs, not labels"):
        paired_interval(spec, y, out.argmax(-1), out)
    with pytest.raises(ValueError, match="level"):
        paired_interval(spec, y, out, out, level=95)
    with pytest.raises(ValueError, match="n_boot"):
        paired_interval(spec, y, out, out, n_boot=10)
    with pytest.raises(ValueError, match="'loss' has no bootstrap"):
        paired_interval(TaskSpec("c", "classification", num_classes=3, metric="loss"), y, out, out)


# ---- several seeds ----------------------------------------------------------------------------
def test_combine_calls_a_gain_only_when_seeds_and_examples_both_exclude_zero():
    d = [0.10, 0.12, 0.11]  # seed-level t interval well above 0
    wide = [{"low": -0.05, "high": 0.25}] * 3  # each seed's test set too small to tell
    narrow = [{"low": 0.02, "high": 0.2}, {"low": 0.04, "high": 0.2}, {"low": 0.03, "high": 0.19}]
    assert combine(None, d)["verdict"] == "helped"
    both = combine(narrow, d)
    assert both["verdict"] == "helped"
    assert (both["example_low"], both["example_high"]) == pytest.approx((0.03, 0.19667), rel=1e-4)
    assert combine(wide, d)["verdict"] == "no clear difference"
    assert combine([{"low": -0.3, "high": -0.1}] * 3, [-0.2, -0.21, -0.19])["verdict"] == "hurt"
    one = combine([{"low": 0.01, "high": 0.2}], [0.1])
    assert (one["low"], one["high"], one["verdict"]) == (0.01, 0.2, "helped")
    with pytest.raises(ValueError, match="one per seed"):
        combine(wide[:2], d)


# ---- gradient-pair signs ----------------------------------------------------------------------
def test_a_small_negative_cosine_is_not_called_conflict():
    # The case: mean −0.046 over three snapshots. Its t interval (−0.058, −0.033) lies
    # below 0, so only the practical margin |mean| < 0.05 keeps it from "conflict".
    r = pair_sign([-0.047, -0.05, -0.04])
    assert r["verdict"] == "no clear sign" and r["n"] == 3
    assert r["mean"] == pytest.approx(-0.045667, abs=1e-6)
    assert (r["low"], r["high"]) == pytest.approx((-0.05841, -0.03292), abs=2e-4)  # t = 4.303, n_eff = 3
    assert pair_sign([-0.047, -0.05, -0.04], threshold=0.0)["verdict"] == "conflict"


def test_clearly_negative_cosines_conflict_and_clearly_positive_ones_agree():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.05, 12)
    neg = pair_sign(-0.3 + noise)
    assert neg["verdict"] == "conflict" and neg["high"] < -0.2 and "Zwiers" in neg["method"]
    assert pair_sign(0.4 + noise)["verdict"] == "agree"
    assert pair_sign(0.0 + noise)["verdict"] == "no clear sign"


def test_a_cosine_that_changes_sign_during_training_has_no_clear_sign():
    # Positive early, negative late: each half is clear, the mean is not, and the strong
    # serial correlation shrinks the effective number of snapshots.
    r = pair_sign(np.linspace(0.3, -0.5, 16))
    assert r["verdict"] == "no clear sign" and r["n_eff"] < 16 * 0.1 + 1e-9


def test_serial_correlation_widens_the_interval():
    rng = np.random.default_rng(1)
    drift = -0.2 + np.cumsum(rng.normal(0, 0.02, 30))  # a random walk: strongly autocorrelated
    r = pair_sign(drift)
    from mtl_core.significance import t_interval
    _, lo, hi = t_interval(drift)
    assert r["n_eff"] < 30 / 3 and (r["high"] - r["low"]) > 2 * (hi - lo)


def test_too_few_snapshots_give_no_interval():
    for cos in ([], [-0.9], [float("nan"), -0.9]):
        r = pair_sign(cos)
        assert r["verdict"] == "no clear sign" and math.isnan(r["low"]) and math.isnan(r["high"])
