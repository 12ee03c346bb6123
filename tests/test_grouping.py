"""Which tasks to train together: the best split per number of models and the one to recommend
(TAG's selection step, Fifty et al., 2021; issue 12, item 5)."""

from __future__ import annotations

import pytest

from mtl_core.grouping import all_groupings, recommend_grouping


def test_negative_cross_affinity_recommends_two_models():
    # y1's steps raise y2's loss and vice versa (negative off-diagonal): train them apart.
    Z = [[0.50, -0.20], [-0.30, 0.40]]
    groupings = all_groupings(Z, ["y1", "y2"])
    assert [(g["n_groups"], pytest.approx(g["score"])) for g in groupings] == [(1, -0.5), (2, 0.0)]
    best = recommend_grouping(groupings)
    assert best["n_groups"] == 2 and best["groups"] == [["y1"], ["y2"]]
    assert best["text"] == "train y1 alone and y2 alone"


def test_positive_cross_affinity_recommends_one_model():
    Z = [[0.5, 0.1], [0.2, 0.4]]
    best = recommend_grouping(all_groupings(Z, ["y1", "y2"]))
    assert best["n_groups"] == 1 and best["score"] == pytest.approx(0.3)


def test_a_tie_goes_to_the_fewer_models():
    # Cross-affinities that cancel: one model scores 0, as does training apart.
    Z = [[0.5, 0.2], [-0.2, 0.4]]
    groupings = all_groupings(Z, ["a", "b"])
    assert groupings[0]["score"] == pytest.approx(groupings[1]["score"]) == pytest.approx(0.0)
    assert recommend_grouping(groupings)["n_groups"] == 1
    # Exactly tied scores in another order of the list: the same answer.
    assert recommend_grouping(list(reversed(groupings)))["n_groups"] == 1


def test_two_clusters_of_tasks_recommend_their_two_groups():
    # a,b help each other, c,d help each other, the clusters hurt each other.
    tasks = ["a", "b", "c", "d"]
    Z = [[1.0, 0.3, -0.2, -0.1],
         [0.4, 1.0, -0.3, -0.2],
         [-0.1, -0.2, 1.0, 0.5],
         [-0.2, -0.1, 0.2, 1.0]]
    groupings = all_groupings(Z, tasks)
    best = recommend_grouping(groupings)
    assert best["n_groups"] == 2 and best["groups"] == [["a", "b"], ["c", "d"]]
    assert best["score"] == pytest.approx(0.3 + 0.4 + 0.5 + 0.2)
    assert best["score"] == max(g["score"] for g in groupings)
    assert best["text"] == "train {a, b} together and {c, d} together"


def test_nothing_to_recommend_without_groupings():
    assert recommend_grouping([]) is None
    assert all_groupings([[0.0] * 9] * 9, [f"t{i}" for i in range(9)]) == []  # over MAX_TASKS
    assert recommend_grouping(all_groupings([[0.2]], ["only"]))["n_groups"] == 1
