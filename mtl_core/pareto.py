"""Pareto dominance over per-task metrics, each with its own direction.

A point a *dominates* b when a is at least as good as b on every task and strictly better
on one (Pareto, 1896; in multi-task learning: Sener & Koltun, 2018, "Multi-Task Learning as
Multi-Objective Optimization"). "Good" is per task: higher accuracy / R², lower MSE / MAE
(`mtl_core.metrics.METRIC_DIRECTION`). The front is the set of points no other point
dominates. A point with a missing (NaN) metric is neither on the front nor dominates.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from mtl_core.errors import ConfigError
from mtl_core.metrics import METRIC_DIRECTION

__all__ = ["directions_of", "dominates", "pareto_front", "pareto_mask"]


def _oriented(values: np.ndarray, higher_is_better: Sequence[bool]) -> np.ndarray:
    """Values with every column turned so that higher is better."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 2:
        raise ConfigError(f"pareto: give one row per point and one column per task, not shape {values.shape}")
    if values.shape[1] != len(higher_is_better):
        raise ConfigError(
            f"pareto: {values.shape[1]} metric columns but {len(higher_is_better)} directions; give one per task"
        )
    sign = np.where(np.asarray(higher_is_better, dtype=bool), 1.0, -1.0)
    return values * sign


def dominates(a: Sequence[float], b: Sequence[float], higher_is_better: Sequence[bool]) -> bool:
    """Whether point `a` Pareto-dominates point `b` (≥ on every task, > on one, per direction)."""
    x, y = _oriented(np.array([a, b]), higher_is_better)
    if np.isnan(x).any() or np.isnan(y).any():
        return False
    return bool(np.all(x >= y) and np.any(x > y))


def pareto_mask(values: np.ndarray | Sequence[Sequence[float]], higher_is_better: Sequence[bool]) -> np.ndarray:
    """Boolean mask of the non-dominated rows of `values` (n points × T tasks).

    Equal points do not dominate each other, so duplicates on the front all stay on it.
    Rows with a NaN are never on the front and dominate nothing.
    """
    v = _oriented(values, higher_is_better)
    n = v.shape[0]
    if n == 0:
        return np.zeros(0, dtype=bool)
    valid = ~np.isnan(v).any(axis=1)
    w = v[valid]
    # dominated[j]: some i has w_i ≥ w_j everywhere and > somewhere (O(n² T), fine for sweeps of ≤ thousands).
    ge = (w[:, None, :] >= w[None, :, :]).all(axis=2)
    gt = (w[:, None, :] > w[None, :, :]).any(axis=2)
    dominated = (ge & gt).any(axis=0)
    mask = np.zeros(n, dtype=bool)
    mask[np.flatnonzero(valid)[~dominated]] = True
    return mask


def pareto_front(
    values: np.ndarray | Sequence[Sequence[float]], higher_is_better: Sequence[bool]
) -> np.ndarray:
    """Indices of the front's points, ordered along the first task (worst to best) for drawing a line."""
    mask = pareto_mask(values, higher_is_better)
    idx = np.flatnonzero(mask)
    first = _oriented(values, higher_is_better)[idx, 0]
    return idx[np.argsort(first, kind="stable")]


def directions_of(metrics: Sequence[str]) -> list[bool]:
    """Higher-is-better of each named metric (`mtl_core.metrics.METRIC_DIRECTION`)."""
    out = []
    for m in metrics:
        if m not in METRIC_DIRECTION:
            raise ConfigError(f"pareto: unknown metric {m!r}; known: {', '.join(METRIC_DIRECTION)}")
        out.append(METRIC_DIRECTION[m])
    return out
