"""Pareto dominance and front extraction with per-task directions (mtl_core.pareto)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mtl_core.errors import ConfigError
from mtl_core.pareto import directions_of, dominates, pareto_front, pareto_mask


def test_dominance_follows_each_tasks_direction():
    # task 1: accuracy (higher is better), task 2: MSE (lower is better)
    dirs = [True, False]
    assert dominates([0.9, 1.0], [0.8, 2.0], dirs)          # better on both
    assert dominates([0.9, 1.0], [0.9, 2.0], dirs)          # equal on one, better on the other
    assert not dominates([0.9, 1.0], [0.9, 1.0], dirs)      # equal points do not dominate
    assert not dominates([0.9, 3.0], [0.8, 2.0], dirs)      # a trade-off
    assert not dominates([0.8, 2.0], [0.9, 1.0], dirs)
    # the same numbers read as lower-is-better for both: the trade-off flips
    assert dominates([0.8, 1.0], [0.9, 2.0], [False, False])


def test_front_of_known_points_with_mixed_directions():
    dirs = directions_of(["accuracy", "mse"])
    assert dirs == [True, False]
    points = np.array([
        [0.90, 2.0],   # 0 front: best accuracy
        [0.85, 1.0],   # 1 front: trade-off
        [0.80, 0.5],   # 2 front: best MSE
        [0.80, 1.5],   # 3 dominated by 1 (0.85 > 0.80 and 1.0 < 1.5)
        [0.70, 3.0],   # 4 dominated by every front point
        [0.85, 1.0],   # 5 a duplicate of 1: stays on the front beside it
        [math.nan, 0.1],  # 6 missing accuracy: never on the front, dominates nothing
    ])
    mask = pareto_mask(points, dirs)
    assert mask.tolist() == [True, True, True, False, False, True, False]
    # drawn along the first task from worst to best accuracy
    assert pareto_front(points, dirs).tolist() == [2, 1, 5, 0]


def test_three_tasks_and_a_single_point():
    dirs = [False, False, True]  # mse, mae, r2
    points = [[1.0, 1.0, 0.5], [1.0, 1.0, 0.6], [0.5, 2.0, 0.1], [2.0, 2.0, 0.0]]
    assert pareto_mask(points, dirs).tolist() == [False, True, True, False]
    assert pareto_mask([[1.0, 2.0, 3.0]], dirs).tolist() == [True]
    assert pareto_mask(np.zeros((0, 3)), dirs).tolist() == []


def test_shape_and_metric_errors_name_the_fix():
    with pytest.raises(ConfigError, match="2 metric columns but 3 directions"):
        pareto_mask([[1.0, 2.0]], [True, False, True])
    with pytest.raises(ConfigError, match="unknown metric 'f2'"):
        directions_of(["accuracy", "f2"])
