"""Verdicts that know their noise: is a multi-task gain larger than chance?

Three sources of noise, three tools:
- the test examples (one trained pair of models, a finite test set): a paired bootstrap
  over test examples (Efron & Tibshirani, 1993, *An Introduction to the Bootstrap*, §13
  percentile interval), the same resampled rows for the single- and the multi-task model;
  for accuracy also McNemar's exact test (McNemar, 1947) on the discordant examples;
- the training seeds: Student's t interval of the mean paired difference over seeds
  (`transfer_verdict`, `combine`);
- the interference snapshots: a t interval of the mean gradient cosine, its sample size
  deflated for the snapshots' serial correlation (`pair_sign`).

Verdict words everywhere: "helped" / "hurt" only when the interval excludes 0, else
"no clear difference" (for gradient pairs: "agree" / "conflict" / "no clear sign").

Every metric `metrics.task_metrics` reports is a function of sums over test rows of
per-row statistics (accuracy: correct and 1; macro-F1: per-class true positives, predicted
and true counts; R²: squared error, y and y²; entity F1: per-sentence matched, true and
predicted spans; multilabel F1: per-label true positives, predicted and true counts). A bootstrap resample is a row of counts c (how often each row was drawn),
so all resamples are one matrix product C·S, exact for every metric, not an approximation:
2,000 resamples of 2,000 rows take milliseconds instead of 2,000 scikit-learn calls.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch

from mtl_core.spans import bio_spans
from mtl_core.tasks.base import IGNORE_INDEX, TaskSpec

VERDICTS = ("helped", "hurt", "no clear difference")
PAIR_SIGNS = ("agree", "conflict", "no clear sign")

# Metrics with a sufficient-statistics form, per task kind (what task_metrics reports).
SUPPORTED = {
    "classification": ("accuracy", "macro_f1"),
    "regression": ("mse", "mae", "r2"),
    "tagging": ("token_accuracy", "entity_f1"),
    "multilabel": ("macro_f1", "micro_f1"),
}

_CELLS_PER_CHUNK = 2_000_000  # bootstrap counts held at once (16 MB of float64)


# ---- per-row statistics and the metric from their sums --------------------------------------
def _array(x: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name}: expected a torch tensor or numpy array, got {type(x).__name__}")
    return x.detach().cpu()


def _check_metric(spec: TaskSpec) -> None:
    allowed = SUPPORTED[spec.kind]
    if spec.metric not in allowed:
        raise ValueError(f"task {spec.name!r}: metric {spec.metric!r} has no bootstrap for a "
                         f"{spec.kind} task; use one of {', '.join(allowed)}")
    if spec.metric == "entity_f1" and not any(c.startswith("B-") for c in spec.class_names or ()):
        raise ValueError(f"task {spec.name!r}: entity_f1 needs BIO class names (B-X, I-X, O)")


def row_stats(spec: TaskSpec, target: torch.Tensor | np.ndarray,
              output: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row statistics S (N, k) of the task's primary metric and the labelled-row mask (N,).

    `output` is the model's raw output as `metrics.task_metrics` takes it (logits (N, C),
    values (N,), tagging logits (N, L, C), multilabel logits (N, K), decided at logit ≥ 0, i.e.
    sigmoid ≥ 0.5: pass `metrics.decision_logits` for tuned thresholds); `target` the stored
    targets. Unlabelled rows get zeros, so they drop out of every sum. Regression is scored
    in original units (`spec.to_original_units`), like task_metrics."""
    _check_metric(spec)
    y, out = _array(target, "target"), _array(output, "output")
    n = int(y.shape[0])
    if out.shape[0] != n:
        raise ValueError(f"task {spec.name!r}: output has {out.shape[0]} rows, target {n}; "
                         "pass the outputs on the same test rows, in the same order")
    if spec.kind == "regression":
        if out.dim() == 2 and out.shape[1] == 1:
            out = out[:, 0]
        if out.dim() != 1 or y.dim() != 1:
            raise ValueError(f"task {spec.name!r}: regression output and target must be (N,), "
                             f"got {tuple(out.shape)} and {tuple(y.shape)}")
        keep = ~torch.isnan(y)
        yt = spec.to_original_units(torch.where(keep, y, 0.0)).numpy()
        yp = spec.to_original_units(out).numpy()
        k = keep.numpy()
        err = np.where(k, yp - yt, 0.0)
        one = k.astype(float)
        if spec.metric == "mse":
            return np.stack([err**2, one], 1), k
        if spec.metric == "mae":
            return np.stack([np.abs(err), one], 1), k
        # R² from Σe², Σy, Σy², n; y centred on the labelled mean first (SST is shift-invariant,
        # and Σy² − (Σy)²/n of raw prices in the 100,000s would lose digits)
        yc = np.where(k, yt - (yt[k].mean() if k.any() else 0.0), 0.0)
        return np.stack([err**2, yc, yc**2, one], 1), k
    C = int(spec.num_classes)
    if spec.kind == "multilabel":
        if out.shape != y.shape or y.dim() != 2 or y.shape[1] != C:
            raise ValueError(f"task {spec.name!r}: expected multilabel logits and targets of shape (N, {C}), "
                             f"got {tuple(out.shape)} and {tuple(y.shape)}")
        k = ~torch.isnan(y).any(dim=1).numpy()
        yy = np.nan_to_num(y.numpy()).astype(float) * k[:, None]
        pp = (out.float().numpy() >= 0).astype(float) * k[:, None]
        # tp, predicted, true per label, and the row itself (macro-F1 is undefined without rows)
        return np.concatenate([yy * pp, pp, yy, k[:, None].astype(float)], 1), k
    if out.dim() != y.dim() + 1 or out.shape[-1] != C or out.shape[:-1] != y.shape:
        raise ValueError(f"task {spec.name!r}: expected logits of shape {(*y.shape, C)} for targets "
                         f"{tuple(y.shape)}, got {tuple(out.shape)}; pass raw outputs, not labels")
    pred = out.argmax(-1).numpy()
    yy = y.numpy()
    lab = yy != IGNORE_INDEX
    if spec.kind == "classification":
        k = lab
        right = (pred == yy) & k
        if spec.metric == "accuracy":
            return np.stack([right, k], 1).astype(float), k
        eye = np.eye(C)
        y_hot = eye[np.where(k, yy, 0)] * k[:, None]
        p_hot = eye[pred] * k[:, None]
        return np.concatenate([y_hot * p_hot, p_hot, y_hot], 1), k  # tp, predicted, true per class
    k = lab.any(1)  # tagging: a sentence counts when any token is labelled
    if spec.metric == "token_accuracy":
        return np.stack([((pred == yy) & lab).sum(1), lab.sum(1)], 1).astype(float), k
    names = spec.class_names
    stats = np.zeros((n, 4))
    for r in np.flatnonzero(k):
        ts = bio_spans(names[i] for i in yy[r][lab[r]])
        ps = bio_spans(names[i] for i in pred[r][lab[r]])
        stats[r] = (len(ts & ps), len(ts), len(ps), 1.0)  # matched, true, predicted spans; a sentence
    return stats, k


def metric_from_sums(spec: TaskSpec, sums: np.ndarray) -> np.ndarray:
    """The primary metric from summed row statistics (..., k), vectorised over resamples.

    Matches scikit-learn's conventions: macro-F1 over all `num_classes` labels with
    zero_division=0 (F1_c = 2TP/(2TP+FP+FN) = 2TP/(predicted + true)); R² = 1 − SSE/SST, NaN
    below 2 rows, 1 or 0 for a constant target (sklearn's force_finite); entity F1 = 1 when a
    sample has neither true nor predicted entities (as `metrics.entity_f1`)."""
    m = spec.metric
    with np.errstate(divide="ignore", invalid="ignore"):
        if m in ("accuracy", "mse", "mae", "token_accuracy"):
            return sums[..., 0] / sums[..., 1]
        if m in ("macro_f1", "micro_f1"):
            C = int(spec.num_classes)
            tp, pred, true = sums[..., :C], sums[..., C:2 * C], sums[..., 2 * C:3 * C]
            # a multilabel row may hold no label at all: its own column says it was drawn
            rows = sums[..., 3 * C] if spec.kind == "multilabel" else true.sum(-1)
            if m == "micro_f1":
                denom = (pred + true).sum(-1)
                f1 = np.where(denom > 0, 2 * tp.sum(-1) / np.where(denom > 0, denom, 1), 0.0)
                return np.where(rows > 0, f1, np.nan)
            denom = pred + true
            f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)
            return np.where(rows > 0, f1.mean(-1), np.nan)
        if m == "r2":
            sse, sy, syy, n = (sums[..., i] for i in range(4))
            sst = syy - sy**2 / n
            tiny = 1e-12 * np.maximum(syy, 1e-300)
            r2 = np.where(sst > tiny, 1 - sse / np.where(sst > tiny, sst, 1), np.where(sse <= tiny, 1.0, 0.0))
            return np.where(n >= 2, r2, np.nan)
        if m == "entity_f1":
            tp, nt, npred, rows = (sums[..., i] for i in range(4))
            f1 = np.where(nt + npred > 0, 2 * tp / np.where(nt + npred > 0, nt + npred, 1), 1.0)
            return np.where(rows > 0, f1, np.nan)  # no labelled sentence: no score, as task_metrics
    raise AssertionError(m)


# ---- bootstrap resamples as count matrices --------------------------------------------------
def _count_chunks(n: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Bootstrap resamples of n rows as counts (b, n), in chunks that bound the memory."""
    rng = np.random.default_rng(seed)
    step = max(1, _CELLS_PER_CHUNK // max(n, 1))
    for start in range(0, n_boot, step):
        b = min(step, n_boot - start)
        idx = rng.integers(0, n, size=(b, n))
        flat = (idx + np.arange(b)[:, None] * n).ravel()
        yield np.bincount(flat, minlength=b * n).reshape(b, n).astype(float)


def bootstrap_counts(n: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """All resamples as counts (n_boot, n): row b says how often each of the n rows was drawn
    (n draws with replacement). The same (n, n_boot, seed) gives the same resamples."""
    return np.concatenate(list(_count_chunks(n, n_boot, seed)))


def _resampled_sums(stats: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    return np.concatenate([c @ stats for c in _count_chunks(stats.shape[0], n_boot, seed)])


def resampled_metric(spec: TaskSpec, target: torch.Tensor | np.ndarray, output: torch.Tensor | np.ndarray,
                     *, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """The primary metric on each bootstrap resample of all N rows (n_boot,); resample b is
    row b of `bootstrap_counts(N, n_boot, seed)`, scored exactly as task_metrics would score
    `output[idx]`, `target[idx]` (unlabelled rows drawn are left out, as there)."""
    stats, _ = row_stats(spec, target, output)
    return metric_from_sums(spec, _resampled_sums(stats, n_boot, seed))


# ---- verdicts ------------------------------------------------------------------------------
def _check(n_boot: int, level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must lie between 0 and 1 (e.g. 0.95), got {level}")
    if n_boot < 100:
        raise ValueError(f"n_boot must be at least 100 for a percentile interval (2000 is usual), got {n_boot}")


def _verdict(low: float, high: float) -> str:
    if low > 0:
        return "helped"
    if high < 0:
        return "hurt"
    return "no clear difference"  # includes NaN bounds: no interval, no claim


def _percentile(values: np.ndarray, level: float) -> tuple[float, float]:
    """Efron & Tibshirani (1993) §13.3 percentile interval; undefined resamples left out."""
    v = values[np.isfinite(values)]
    if len(v) < 0.5 * len(values) or len(v) == 0:  # most resamples undefined: no interval
        return float("nan"), float("nan")
    a = (1 - level) / 2
    lo, hi = np.quantile(v, [a, 1 - a])
    return float(lo), float(hi)


def mcnemar_exact(correct_stl: np.ndarray, correct_mtl: np.ndarray) -> dict[str, Any]:
    """McNemar's test (McNemar, 1947) in its exact form: of the discordant examples (one
    model right, the other wrong), under H0 each is MTL's win with probability ½, so the
    p-value is the two-sided binomial test of c = #MTL-only-right out of b + c."""
    from scipy.stats import binomtest

    s, m = np.asarray(correct_stl, bool), np.asarray(correct_mtl, bool)
    b, c = int((s & ~m).sum()), int((~s & m).sum())
    p = 1.0 if b + c == 0 else float(binomtest(c, b + c, 0.5).pvalue)
    return {"mcnemar_p": p, "mtl_only_right": c, "stl_only_right": b}


def paired_interval(
    spec: TaskSpec,
    target: torch.Tensor | np.ndarray,
    pred_stl: torch.Tensor | np.ndarray,
    pred_mtl: torch.Tensor | np.ndarray,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Paired bootstrap interval of MTL − STL on one task's primary metric, one seed.

    Both models are scored on the same resampled test examples (Efron & Tibshirani, 1993,
    paired bootstrap, percentile interval), so what the two share (easy and hard examples)
    cancels out of the difference. `pred_*` are raw model outputs as `task_metrics` takes
    them (logits / values), not decoded labels. diff = (−1)^l (M_mtl − M_stl) in the metric's
    units, > 0 = MTL better; verdict "helped" / "hurt" only when [low, high] excludes 0.
    Rows without a label for this task are left out before resampling (n counts the rest).
    For accuracy, McNemar's exact p-value is added as a cross-check a teacher can name; the
    verdict is the bootstrap's (the two can disagree at the 5 % boundary)."""
    _check(n_boot, level)
    s_stl, keep = row_stats(spec, target, pred_stl)
    s_mtl, _ = row_stats(spec, target, pred_mtl)
    s_stl, s_mtl = s_stl[keep], s_mtl[keep]
    n = int(keep.sum())
    sign = 1.0 if spec.higher_is_better else -1.0
    out: dict[str, Any] = {"metric": spec.metric, "n": n}
    if n == 0:
        return {**out, "stl": float("nan"), "mtl": float("nan"), "diff": float("nan"), "low": float("nan"),
                "high": float("nan"), "verdict": "no clear difference", "method": "no labelled test example",
                "text": "no labelled test example: no comparison"}
    k = s_stl.shape[1]
    point = metric_from_sums(spec, np.concatenate([s_stl, s_mtl], 1).sum(0).reshape(2, k))
    sums = _resampled_sums(np.concatenate([s_stl, s_mtl], 1), n_boot, seed)
    diffs = sign * (metric_from_sums(spec, sums[:, k:]) - metric_from_sums(spec, sums[:, :k]))
    low, high = _percentile(diffs, level)
    out.update(stl=float(point[0]), mtl=float(point[1]), diff=float(sign * (point[1] - point[0])),
               low=low, high=high, verdict=_verdict(low, high),
               method=(f"paired bootstrap over {n} test examples ({n_boot} resamples, "
                       f"{level * 100:g} % percentile interval; Efron & Tibshirani, 1993)"))
    if spec.metric == "accuracy":
        out.update(mcnemar_exact(s_stl[:, 0], s_mtl[:, 0]))
        out["method"] += "; McNemar's exact test (McNemar, 1947) as a cross-check"
    out["text"] = (f"{out['verdict']}: {spec.metric} MTL {out['mtl']:.4g} vs STL {out['stl']:.4g}, gain "
                   f"{out['diff']:+.3g} ({level * 100:g} % interval {low:+.3g} to {high:+.3g}) on {n} test examples")
    return out


def delta_m_interval(
    specs: Mapping[str, TaskSpec],
    targets: Mapping[str, torch.Tensor | np.ndarray],
    preds_stl: Mapping[str, torch.Tensor | np.ndarray],
    preds_mtl: Mapping[str, torch.Tensor | np.ndarray],
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Bootstrap interval of Δm % (Maninis et al., 2019: the mean over tasks of the signed
    relative change (−1)^l (M_mtl − M_stl)/|M_stl|·100), one seed.

    The tasks share the test rows, so one resample of rows serves every task (their
    errors' correlation is kept); each task scores the labelled rows among those drawn.
    Tasks in `specs` without a target or either model's output are left out, as are tasks
    whose term is undefined in a resample (M_stl = 0), as `metrics.delta_m` does.
    diff is the point Δm (%), [low, high] the percentile interval (Efron & Tibshirani, 1993)."""
    _check(n_boot, level)
    names = [t for t in specs if t in targets and t in preds_stl and t in preds_mtl]
    if not names:
        raise ValueError("delta_m_interval: no task has a target and both models' outputs; "
                         "pass dicts keyed by task name")
    sizes = {t: int(_array(targets[t], f"targets[{t!r}]").shape[0]) for t in names}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"delta_m_interval: the tasks' targets must cover the same test rows, got {sizes}")
    blocks, widths = [], []
    for t in names:
        s_stl, _ = row_stats(specs[t], targets[t], preds_stl[t])
        s_mtl, _ = row_stats(specs[t], targets[t], preds_mtl[t])
        blocks += [s_stl, s_mtl]
        widths.append(s_stl.shape[1])
    stats = np.concatenate(blocks, 1)
    n = stats.shape[0]

    def dm(sums: np.ndarray) -> np.ndarray:
        terms, at = [], 0
        for t, k in zip(names, widths):
            stl = metric_from_sums(specs[t], sums[..., at:at + k])
            mtl = metric_from_sums(specs[t], sums[..., at + k:at + 2 * k])
            at += 2 * k
            sign = 1.0 if specs[t].higher_is_better else -1.0
            with np.errstate(divide="ignore", invalid="ignore"):
                terms.append(np.where(stl != 0, sign * (mtl - stl) / np.abs(stl) * 100, np.nan))
        with warnings.catch_warnings():  # a resample where every term is undefined: NaN, no warning
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(np.stack(terms, -1), -1)

    point = float(dm(stats.sum(0)))
    low, high = _percentile(dm(_resampled_sums(stats, n_boot, seed)), level)
    return {
        "metric": "delta_m_pct", "n": n, "tasks": names, "diff": point, "low": low, "high": high,
        "verdict": _verdict(low, high),
        "method": (f"bootstrap over {n} shared test rows ({n_boot} resamples, {level * 100:g} % percentile "
                   "interval; Efron & Tibshirani, 1993) of Δm (Maninis et al., 2019)"),
        "text": (f"{_verdict(low, high)}: Δm {point:+.2f} % ({level * 100:g} % interval {low:+.2f} to "
                 f"{high:+.2f} %) on {n} test rows"),
    }


def t_interval(values: Sequence[float], *, level: float = 0.95) -> tuple[float, float, float]:
    """Student's t interval of a mean (Student, 1908): mean ± t_{1−α/2, n−1} · sd/√n.

    Returns (mean, low, high); NaN bounds below 2 values. At 3 values t = 4.30, not the
    normal 1.96 (and not 2, whose interval covers only ~82 % at n = 3)."""
    from scipy.stats import t as student_t

    v = np.asarray(values, dtype=float)
    mean = float(v.mean()) if len(v) else float("nan")
    if len(v) < 2:
        return mean, float("nan"), float("nan")
    half = float(student_t.ppf(1 - (1 - level) / 2, len(v) - 1)) * float(v.std(ddof=1)) / math.sqrt(len(v))
    return mean, mean - half, mean + half


def combine(per_seed_intervals: Sequence[Mapping[str, Any]] | None, seed_diffs: Sequence[float], *,
            level: float = 0.95) -> dict[str, Any]:
    """One verdict from several seeds, each with (optionally) its example-level interval.

    `seed_diffs` are the paired differences d_k = (−1)^l (M_mtl,k − M_stl,k) per seed;
    `per_seed_intervals` the `paired_interval` dicts of the same seeds (or None).
    - low, high: the seed-level Student t interval of mean(d) (n ≥ 2); with one seed, that
      seed's example-level interval.
    - example_low, example_high: the pooled example-level interval of mean(d), the mean of
      the seeds' bounds. That is exact when the seeds' bootstrap errors move together (one
      shared test set, the same resampled rows) and wider than the truth otherwise (for
      near-normal errors sd(mean) ≤ mean(sd)): conservative, and needs no stored resamples.
    Verdict "helped" only when both intervals lie above 0 ("hurt": both below). The two
    answer different questions: would another training seed change the sign (t over seeds),
    would another test sample (bootstrap over examples)? When each seed draws its own data
    split the t interval already holds the test-sample noise and the second condition
    rarely binds; when all seeds share one test set the t interval misses it, and only the
    second catches a gain that one lucky test set shows for every seed. Requiring both is an
    intersection-union test (Berger, 1982): its level is that of each part, no correction."""
    d = np.asarray(seed_diffs, dtype=float)
    n = len(d)
    if n == 0:
        raise ValueError("combine: seed_diffs is empty; pass one paired difference per seed")
    if per_seed_intervals is not None and len(per_seed_intervals) != n:
        raise ValueError(f"combine: {len(per_seed_intervals)} example intervals for {n} seeds; pass one per seed")
    out: dict[str, Any] = {"diff": float(d.mean()), "n_seeds": n}
    if per_seed_intervals:
        out["example_low"] = float(np.mean([float(i["low"]) for i in per_seed_intervals]))
        out["example_high"] = float(np.mean([float(i["high"]) for i in per_seed_intervals]))
    if n == 1:
        out["low"], out["high"] = out.get("example_low", float("nan")), out.get("example_high", float("nan"))
        out["verdict"] = _verdict(out["low"], out["high"])
        out["method"] = ("paired bootstrap over test examples, one seed" if per_seed_intervals
                         else "one seed, no interval")
        return out
    _, out["low"], out["high"] = t_interval(d, level=level)
    seed_verdict = _verdict(out["low"], out["high"])
    if per_seed_intervals:
        example_verdict = _verdict(out["example_low"], out["example_high"])
        out["verdict"] = seed_verdict if seed_verdict == example_verdict else "no clear difference"
        out["method"] = (f"Student t interval over {n} seeds and the pooled paired bootstrap over test "
                         "examples; a difference only when both exclude 0")
    else:
        out["verdict"] = seed_verdict
        out["method"] = f"Student t interval over {n} seeds"
    return out


def pair_sign(cosines: Sequence[float], *, level: float = 0.95, threshold: float = 0.05) -> dict[str, Any]:
    """Do two tasks' gradients conflict? A verdict on the mean cosine over evaluation snapshots.

    "conflict" only when the interval of the mean cosine lies below 0 and the mean is at
    most −threshold; "agree" mirror-wise; else "no clear sign". The interval is Student's t,
    with the sample size deflated for serial correlation: successive snapshots of one run
    are not independent, and a plain t interval would be too narrow. With r the lag-1
    autocorrelation (clipped to [0, 0.9]), n_eff = n(1 − r)/(1 + r) (the AR(1) variance
    inflation of Zwiers & von Storch, 1995, J. Climate 8); an interval needs n_eff ≥ 2.
    The threshold is a margin of practical relevance: a step along task j's gradient changes
    task i's loss, to first order, by −η‖g_i‖‖g_j‖·cos, so with |cos| < 0.05 it moves it by
    under 5 % of what task i's own step of the same norm does — not a conflict worth a
    lesson, however certain its sign (the issue's −0.047 case)."""
    from scipy.stats import t as student_t

    c = np.asarray(cosines, dtype=float)
    c = c[np.isfinite(c)]
    n = len(c)
    out: dict[str, Any] = {"mean": float(c.mean()) if n else float("nan"), "n": n}
    r = 0.0
    if n >= 3 and c.std() > 0:
        r = float(np.corrcoef(c[:-1], c[1:])[0, 1])
        r = min(max(r if math.isfinite(r) else 0.0, 0.0), 0.9)
    n_eff = n * (1 - r) / (1 + r)
    out["n_eff"] = n_eff
    if n_eff < 2:
        out.update(low=float("nan"), high=float("nan"), verdict="no clear sign",
                   method=f"{n} snapshot(s): too few for an interval")
        return out
    half = float(student_t.ppf(1 - (1 - level) / 2, n_eff - 1)) * float(c.std(ddof=1)) / math.sqrt(n_eff)
    out["low"], out["high"] = out["mean"] - half, out["mean"] + half
    if out["high"] < 0 and out["mean"] <= -threshold:
        out["verdict"] = "conflict"
    elif out["low"] > 0 and out["mean"] >= threshold:
        out["verdict"] = "agree"
    else:
        out["verdict"] = "no clear sign"
    out["method"] = (f"Student t interval ({level * 100:g} %) of the mean cosine over {n} snapshots, effective "
                     f"size {n_eff:.1f} after lag-1 autocorrelation {r:.2f} (Zwiers & von Storch, 1995); "
                     f"|mean| < {threshold:g} counts as no clear sign")
    return out
