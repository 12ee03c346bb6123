"""Which tasks to train together, from the inter-task affinity matrix.

The selection step of TAG (Fifty et al., NeurIPS 2021, §3.2): given Z (Z[i][j] = how much
task i's updates help task j) and a number of models k, pick the split of the tasks into
k groups that maximises the total affinity each task receives from its group-mates,

    score(group) = Σ_{j ∈ group} mean_{i ∈ group, i ≠ j} Z[i][j]   (0 for a task alone),

searched exhaustively over all set partitions (up to 8 tasks: at most 4,140 of them).
TAG also allows overlapping groups; we keep to partitions, which is the question a user
asks here ("how many models, and which tasks in each").
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

from mtl_core.errors import ConfigError

MAX_TASKS = 8


def _partitions(items: list[int], k: int) -> Iterator[list[list[int]]]:
    """All partitions of `items` into exactly k non-empty groups."""
    if k == 1:
        yield [list(items)]
        return
    if len(items) == k:
        yield [[i] for i in items]
        return
    first, rest = items[0], items[1:]
    for part in _partitions(rest, k - 1):  # `first` alone
        yield [[first], *part]
    for part in _partitions(rest, k):  # `first` joins one of the groups
        for g in range(len(part)):
            yield [grp if n != g else [first, *grp] for n, grp in enumerate(part)]


def group_score(group: Sequence[int], Z: Sequence[Sequence[float]]) -> float:
    if len(group) < 2:
        return 0.0
    return sum(sum(Z[i][j] for i in group if i != j) / (len(group) - 1) for j in group)


def best_grouping(Z: Sequence[Sequence[float]], tasks: Sequence[str], n_groups: int) -> dict[str, Any]:
    """The best split of `tasks` into `n_groups` groups under affinity matrix `Z`."""
    T = len(tasks)
    if not 1 <= n_groups <= T:
        raise ConfigError(f"n_groups: {n_groups} must lie between 1 and the number of tasks ({T})")
    if T > MAX_TASKS:
        raise ConfigError(f"grouping searches all splits of up to {MAX_TASKS} tasks; this run has {T}")
    best, best_score = None, float("-inf")
    for part in _partitions(list(range(T)), n_groups):
        score = sum(group_score(g, Z) for g in part)
        if score > best_score + 1e-15:
            best, best_score = part, score
    groups = sorted(([tasks[i] for i in sorted(g)] for g in best), key=lambda g: tasks.index(g[0]))
    return {"n_groups": n_groups, "groups": groups, "score": best_score, "text": describe(groups)}


def describe(groups: list[list[str]]) -> str:
    """'train {A, B} together and C alone'."""
    parts = []
    for g in groups:
        parts.append(f"{{{', '.join(g)}}} together" if len(g) > 1 else f"{g[0]} alone")
    return "train " + (", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0])


def all_groupings(Z: Sequence[Sequence[float]], tasks: Sequence[str]) -> list[dict[str, Any]]:
    """The best grouping for every number of models from 1 to T."""
    if len(tasks) > MAX_TASKS:
        return []
    return [best_grouping(Z, tasks, k) for k in range(1, len(tasks) + 1)]


def recommend_grouping(groupings: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The grouping to suggest among the best one per number of models (`all_groupings`):
    the highest score, and on a tie the fewer models (one model fewer to train and serve).

    Scores of different group counts are comparable: each is the total affinity the tasks
    receive from their group-mates, and a task alone receives 0 — so all tasks apart
    scores 0, and training tasks together is suggested only when they help each other
    on balance (TAG, Fifty et al., 2021). None when there is nothing to choose from.
    """
    if not groupings:
        return None
    top = max(g["score"] for g in groupings)
    # A tie up to rounding: sums of the same affinities in another order differ in the last bits.
    tol = 1e-9 * max(abs(g["score"]) for g in groupings) + 1e-300
    return min((g for g in groupings if g["score"] >= top - tol), key=lambda g: g["n_groups"])
