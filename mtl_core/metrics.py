"""Per-task metrics (scikit-learn), the single- vs multi-task table and Δm.

All metrics are computed on held-out data by the engine; this module only scores
predictions. Unlabelled items (IGNORE_INDEX / NaN) are left out of every metric.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from sklearn import metrics as skm

from mtl_core.significance import combine
from mtl_core.spans import bio_spans
from mtl_core.tasks.base import IGNORE_INDEX, TaskSpec

# name -> higher is better, for every metric we report
METRIC_DIRECTION: dict[str, bool] = {
    "accuracy": True,
    "macro_f1": True,
    "mse": False,
    "mae": False,
    "r2": True,
    "token_accuracy": True,
    "entity_f1": True,
    "micro_f1": True,
    "loss": False,
}

# Multilabel decisions: label k is predicted when sigmoid(logit_k) ≥ its threshold; 0.5 by
# default, or tuned per label on the validation split over this grid (`tune_thresholds`).
DEFAULT_THRESHOLD = 0.5
THRESHOLD_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05, 0.10, ..., 0.95


def entity_f1(true_seqs: list[list[str]], pred_seqs: list[list[str]]) -> float:
    """Entity-level (exact span and type) micro F1 over all sequences."""
    tp = n_true = n_pred = 0
    for k, (t, p) in enumerate(zip(true_seqs, pred_seqs)):
        ts = {(k, *s) for s in bio_spans(t)}
        ps = {(k, *s) for s in bio_spans(p)}
        tp += len(ts & ps)
        n_true += len(ts)
        n_pred += len(ps)
    if n_true == 0 and n_pred == 0:
        return 1.0
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true if n_true else 0.0
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def multilabel_decisions(output: torch.Tensor, thresholds: Sequence[float] | np.ndarray | None = None) -> np.ndarray:
    """0/1 predictions (N, K) from multilabel logits: sigmoid(logit_k) ≥ threshold_k
    (`DEFAULT_THRESHOLD` for every label when `thresholds` is None)."""
    probs = torch.sigmoid(output.detach().float().cpu()).numpy()
    tau = np.full(probs.shape[-1], DEFAULT_THRESHOLD) if thresholds is None else np.asarray(thresholds, float)
    return (probs >= tau).astype(np.int64)


def decision_logits(output: torch.Tensor, thresholds: Sequence[float] | np.ndarray | None) -> torch.Tensor:
    """Multilabel logits shifted by logit(τ_k), so that "shifted logit ≥ 0" is the decision
    "sigmoid(logit) ≥ τ_k": what a consumer that thresholds at 0.5 (`significance.row_stats`,
    a paired comparison of two models each with its own thresholds) must be given."""
    if thresholds is None:
        return output
    tau = torch.as_tensor(np.asarray(thresholds, dtype=np.float64), device=output.device)
    return (output.double() - torch.logit(tau)).to(output.dtype)


def tune_thresholds(output: torch.Tensor, target: torch.Tensor,
                    grid: Sequence[float] = THRESHOLD_GRID) -> list[float]:
    """One decision threshold per label, chosen on validation outputs: the grid value that
    maximises that label's F1 (scikit-learn `f1_score(average=None, zero_division=0)`) on the
    labelled rows; ties go to the value nearest 0.5, so a label whose F1 does not depend on
    the threshold (e.g. no positive validation row) keeps 0.5. Threshold tuning per label on
    held-out data is the "SCut" strategy of Yang (2001, "A study of thresholding strategies
    for text categorization", SIGIR)."""
    y = target.detach().cpu()
    keep = ~torch.isnan(y).any(dim=1)
    k = int(y.shape[1])
    if not bool(keep.any()):
        return [DEFAULT_THRESHOLD] * k
    yt = y[keep].numpy().astype(np.int64)
    probs = torch.sigmoid(output.detach().float().cpu()[keep]).numpy()
    order = sorted(grid, key=lambda t: (abs(t - DEFAULT_THRESHOLD), t))  # preferred first
    best_f1 = np.full(k, -1.0)
    best = np.full(k, DEFAULT_THRESHOLD)
    for t in order:
        f1 = skm.f1_score(yt, (probs >= t).astype(np.int64), average=None, zero_division=0)
        better = f1 > best_f1 + 1e-12  # strictly better: an equal F1 keeps the value nearer 0.5
        best[better], best_f1[better] = t, f1[better]
    return [float(t) for t in best]


def task_metrics(spec: TaskSpec, output: torch.Tensor, target: torch.Tensor, *,
                 thresholds: Sequence[float] | np.ndarray | None = None) -> dict[str, float]:
    """All metrics of one task from model outputs (logits or values) and targets.

    A regression task trained on standardised targets (`spec.target_scale`) is scored in
    its original units: outputs and targets are mapped back, y·std + mean, first (MSE
    scales by std², MAE by std; R² is unchanged). A multilabel task is scored on its
    labelled rows by micro- and macro-F1 (scikit-learn, zero_division=0: a label neither
    true nor predicted anywhere scores 0) of the decisions sigmoid(logit) ≥ `thresholds`
    (0.5 each by default)."""
    out = output.detach().float().cpu()
    y = target.detach().cpu()
    if spec.kind == "multilabel":
        keep = ~torch.isnan(y).any(dim=1)
        if not bool(keep.any()):
            return {}
        yt = y[keep].numpy().astype(np.int64)
        yp = multilabel_decisions(out[keep], thresholds)
        return {
            "micro_f1": float(skm.f1_score(yt, yp, average="micro", zero_division=0)),
            "macro_f1": float(skm.f1_score(yt, yp, average="macro", zero_division=0)),
        }
    if spec.kind == "regression":
        keep = ~torch.isnan(y)
        if spec.target_scale is None:
            yt, yp = y[keep].numpy(), out[keep].numpy()
        else:  # float64: a float32 y·std + mean would lose digits of a large target
            yt = spec.to_original_units(y[keep]).numpy()
            yp = spec.to_original_units(output.detach().cpu()[keep]).numpy()
        if len(yt) == 0:
            return {}
        r2 = float(skm.r2_score(yt, yp)) if len(yt) > 1 else float("nan")
        return {
            "mse": float(skm.mean_squared_error(yt, yp)),
            "mae": float(skm.mean_absolute_error(yt, yp)),
            "r2": r2,
        }
    pred = out.argmax(-1)
    if spec.kind == "classification":
        keep = y != IGNORE_INDEX
        yt, yp = y[keep].numpy(), pred[keep].numpy()
        if len(yt) == 0:
            return {}
        labels = np.arange(int(spec.num_classes))
        return {
            "accuracy": float(skm.accuracy_score(yt, yp)),
            "macro_f1": float(skm.f1_score(yt, yp, labels=labels, average="macro", zero_division=0)),
        }
    # tagging: (N, L) targets, IGNORE on padding
    keep = y != IGNORE_INDEX
    if not bool(keep.any()):
        return {}
    result = {"token_accuracy": float(skm.accuracy_score(y[keep].numpy(), pred[keep].numpy()))}
    names = spec.class_names or ()
    if any(n.startswith("B-") for n in names):
        true_seqs, pred_seqs = [], []
        for row_y, row_p, row_k in zip(y.numpy(), pred.numpy(), keep.numpy()):
            true_seqs.append([names[i] for i in row_y[row_k]])
            pred_seqs.append([names[i] for i in row_p[row_k]])
        result["entity_f1"] = entity_f1(true_seqs, pred_seqs)
    return result


TRIVIAL_NAME = {
    "classification": "predict the majority class",
    "tagging": "predict the most frequent tag",
    "regression": "predict the training mean",
    "multilabel": "predict each label's training majority",
}


def trivial_baseline(spec: TaskSpec, train_y: torch.Tensor, test_y: torch.Tensor) -> dict[str, Any]:
    """The test metrics of a model that ignores its input: always the training split's
    majority class (classification), its most frequent tag (tagging), its mean
    (regression) or, for multilabel, every label that is present on more than half of the
    labelled training rows (each label's majority answer; usually the empty set, which
    scores macro-F1 0). Every trained model should beat it; a model that does not has collapsed
    to the prior, whatever its accuracy looks like. Scored by `task_metrics` on the test
    split, so its numbers read like the models' beside them."""
    y = train_y.detach().cpu()
    if spec.kind == "regression":
        labelled = y[~torch.isnan(y)]
        value = float(labelled.double().mean()) if labelled.numel() else 0.0
        output = torch.full(test_y.shape, value, dtype=torch.float64)
    elif spec.kind == "multilabel":
        labelled = y[~torch.isnan(y).any(dim=1)].double()
        share = labelled.mean(0) if labelled.shape[0] else torch.zeros(y.shape[1], dtype=torch.float64)
        # logit +1 / -1: decided the same at every threshold between sigmoid(-1) and sigmoid(1)
        output = torch.where(share > 0.5, 1.0, -1.0).expand(test_y.shape[0], -1).float()
    else:
        labelled = y[y != IGNORE_INDEX].long()
        k = int(spec.num_classes)
        majority = int(torch.bincount(labelled, minlength=k).argmax()) if labelled.numel() else 0
        output = torch.zeros(*test_y.shape, k)
        output[..., majority] = 1.0
    metrics = task_metrics(spec, output, test_y.detach().cpu())
    return {"name": TRIVIAL_NAME[spec.kind], "metrics": metrics, "value": metrics.get(spec.metric)}


def relative_change(stl: float, mtl: float, *, higher_is_better: bool) -> float:
    """Signed relative change of MTL vs STL in %, positive = MTL better.

    (−1)^{l}·(M_mtl − M_stl)/|M_stl|·100 with l = 1 when lower is better
    (the per-task term of Δm, Maninis et al., 2019).
    """
    if stl == 0 or math.isnan(stl) or math.isnan(mtl):
        return float("nan")
    sign = 1.0 if higher_is_better else -1.0
    return sign * (mtl - stl) / abs(stl) * 100.0


def delta_m(rows: list[dict[str, Any]]) -> float:
    """Δm % (Maninis et al., CVPR 2019): mean over tasks of the signed relative change
    vs the single-task baseline, Δm = (1/T) Σ_t (−1)^{l_t} (M_mtl,t − M_stl,t)/M_stl,t · 100.
    Positive Δm: the multi-task model is better on average. Tasks without a value
    (None or NaN) are left out."""
    values = [r["delta_pct"] for r in rows if r["delta_pct"] is not None and not math.isnan(r["delta_pct"])]
    return float(np.mean(values)) if values else float("nan")


def comparison_table(
    specs: dict[str, TaskSpec],
    stl: dict[str, dict[str, float]],
    mtl: dict[str, dict[str, float]],
) -> list[dict[str, Any]]:
    """One row per task: primary metric, direction, STL and MTL values, Δ %, all metrics."""
    rows = []
    for name, spec in specs.items():
        s = stl.get(name, {}).get(spec.metric, float("nan"))
        m = mtl.get(name, {}).get(spec.metric, float("nan"))
        rows.append(
            {
                "name": name,
                "kind": spec.kind,
                "metric": spec.metric,
                "metric_reason": spec.metric_reason,
                "higher_is_better": bool(spec.higher_is_better),
                "stl": s,
                "mtl": m,
                "delta_pct": relative_change(s, m, higher_is_better=bool(spec.higher_is_better)),
                "stl_all": stl.get(name, {}),
                "mtl_all": mtl.get(name, {}),
            }
        )
    return rows


def transfer_verdict(
    stl: list[float],
    mtl: list[float],
    *,
    higher_is_better: bool,
    examples: Sequence[Mapping[str, Any]] | None = None,
    level: float = 0.95,
    trivial: float | None = None,
) -> dict[str, Any]:
    """MTL vs STL over seeds: means, standard deviations, an interval and a verdict in words.

    Seed k trains both models on the same data split, so the comparison is paired: d_k is
    the improvement of MTL over STL at seed k (sign-adjusted so that > 0 is better). With
    n ≥ 2 seeds, [low, high] is Student's t interval of mean(d): mean ± t_{0.975, n−1}·sd/√n
    (t = 4.30 at 3 seeds; the old 2·sd/√n covered only ~82 % there). `examples` are the
    seeds' `significance.paired_interval` dicts (paired bootstrap over test examples), in
    seed order; with them the verdict follows `significance.combine` ("helped" only when the
    seed interval and the pooled example interval both exclude 0), and one seed gets the
    example-level interval. One seed without them has no noise estimate: "no clear difference".
    Verdicts: "helped" / "hurt" / "no clear difference"; `noise` is the t half-width.
    `trivial`: the metric of the input-blind baseline (`trivial_baseline`); a multi-task
    model that does not beat it is never "helped", whatever the interval says: a gain over a
    single-task model by collapsing to the majority answer is no transfer (issue 16).
    """
    assert len(stl) == len(mtl) and stl, "one STL and one MTL value per seed"
    n = len(stl)
    s, m = np.asarray(stl, dtype=float), np.asarray(mtl, dtype=float)
    d = (m - s) if higher_is_better else (s - m)  # > 0: MTL better
    out: dict[str, Any] = {
        "stl_mean": float(s.mean()), "stl_std": float(s.std(ddof=1)) if n > 1 else float("nan"),
        "mtl_mean": float(m.mean()), "mtl_std": float(m.std(ddof=1)) if n > 1 else float("nan"),
        "n_seeds": n,
        "delta_pct": relative_change(float(s.mean()), float(m.mean()), higher_is_better=higher_is_better),
    }
    c = combine(examples, d, level=level)
    out.update({k: c[k] for k in ("diff", "low", "high", "verdict", "method")})
    out.update({k: c[k] for k in ("example_low", "example_high") if k in c})
    gain = f"mean gain {out['diff']:+.3g}"
    if math.isfinite(out["low"]):
        gain += f", {level * 100:g} % interval {out['low']:+.3g} to {out['high']:+.3g}"
    if n < 2:
        summary = f"MTL {out['mtl_mean']:.4g} vs STL {out['stl_mean']:.4g}"
        if not examples:
            out["verdict_text"] = (f"no clear difference on one seed ({summary}); no noise estimate — "
                                   "run more seeds")
        elif out["verdict"] == "no clear difference":
            out["verdict_text"] = (f"no clear difference on one seed ({summary}; {gain} over test examples): "
                                   "the gap is within the test-sample noise")
        else:
            how = "helps" if out["verdict"] == "helped" else "hurts"
            out["verdict_text"] = (f"{out['verdict']} on one seed: multi-task training {how} ({summary}; {gain} "
                                   "over test examples); another seed may differ")
        return _no_gain_below_trivial(out, trivial, higher_is_better)
    out["noise"] = (out["high"] - out["low"]) / 2
    summary = (f"MTL {out['mtl_mean']:.4g} ± {out['mtl_std']:.2g} vs STL {out['stl_mean']:.4g} ± "
               f"{out['stl_std']:.2g} over {n} seeds; {gain}")
    if out["verdict"] == "no clear difference":
        out["verdict_text"] = f"no clear difference: {summary}; the gap is within the noise"
    else:
        how = "helps" if out["verdict"] == "helped" else "hurts"
        out["verdict_text"] = f"{out['verdict']}: multi-task training {how} ({summary})"
    return _no_gain_below_trivial(out, trivial, higher_is_better)


def _no_gain_below_trivial(out: dict[str, Any], trivial: float | None, higher_is_better: bool) -> dict[str, Any]:
    """Downgrade "helped" to "no clear difference" when the multi-task mean does not beat
    the input-blind baseline's `trivial` value (see `transfer_verdict`)."""
    if out["verdict"] != "helped" or trivial is None or not math.isfinite(trivial):
        return out
    beats = out["mtl_mean"] > trivial if higher_is_better else out["mtl_mean"] < trivial
    if beats:
        return out
    out["verdict"] = "no clear difference"
    out["verdict_text"] = (f"no clear difference: the multi-task model ({out['mtl_mean']:.4g}) does not beat "
                           f"the trivial baseline ({trivial:.4g}, a model that ignores its input), so its gain over "
                           "the single-task model is no transfer")
    return out


def best_arm(values: Mapping[str, float], *, higher_is_better: bool) -> str | None:
    """The arm (e.g. of a transfer experiment: frozen / finetune / scratch) with the best
    metric value in one row; None when no value is finite. The best value, not a verdict:
    one seed says nothing about whether the gap is beyond the noise."""
    finite = {k: float(v) for k, v in values.items()
              if isinstance(v, (int, float)) and math.isfinite(float(v))}
    if not finite:
        return None
    return (max if higher_is_better else min)(finite, key=finite.__getitem__)
