"""The few-label subsets a transfer experiment trains its target models on: the labelled
rows of the target, the data sizes its fractions give (merged where they clamp to the same
count), and a seeded, class-stratified draw of each size."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mtl_core.errors import DataError
from mtl_core.tasks.base import IGNORE_INDEX, Split, TaskSpec


def labelled_rows(split: Split, task: str) -> np.ndarray:
    """Indices of the rows of `split` that carry a label for `task`."""
    y = split.y[task]
    if y.is_floating_point():
        mask = ~torch.isnan(y)
    elif y.dim() > 1:  # tagging: a sentence counts when any token is labelled
        mask = (y != IGNORE_INDEX).any(dim=1)
    else:
        mask = y != IGNORE_INDEX
    return np.flatnonzero(mask.cpu().numpy())


def subset_size(fraction: float, n_pool: int, *, min_rows: int) -> int:
    """Labelled target rows a `fraction` trains on: round(fraction·n_pool), at least
    `min_rows` (one batch), at most all of them (`n_pool`)."""
    return min(n_pool, max(min_rows, int(round(fraction * n_pool))))


def fraction_plan(fractions: list[float], n_pool: int, *, min_rows: int) -> list[dict[str, Any]]:
    """The data sizes a transfer run trains on: fractions that clamp to the same number of
    examples (several below one batch, or several above all the rows) would train the very
    same models on the very same subset, so they are merged into one size.

    One entry per distinct size, smallest first: `n_labelled`, `fraction` (the largest of
    the merged fractions: its nominal count lies closest to the actual one at either
    clamp) and `fractions` (every requested fraction that gives this size).
    """
    plan: dict[int, list[float]] = {}
    for f in sorted(fractions):
        plan.setdefault(subset_size(f, n_pool, min_rows=min_rows), []).append(f)
    return [{"n_labelled": n, "fraction": fs[-1], "fractions": fs} for n, fs in sorted(plan.items())]


def describe_merged(plan: list[dict[str, Any]], *, min_rows: int, n_pool: int) -> str:
    """'1 % and 5 % both give 32 labelled examples (at least one batch of 32): trained once, shown as 5 %.'
    for every merged size of `fraction_plan`; '' when nothing was merged."""
    notes = []
    for entry in plan:
        if len(entry["fractions"]) < 2:
            continue
        shares = [f"{f * 100:g} %" for f in entry["fractions"]]
        listed = ", ".join(shares[:-1]) + " and " + shares[-1]
        n = entry["n_labelled"]
        why = ("all the labelled rows" if n == n_pool else
               f"at least one batch of {min_rows}" if n == min_rows else "the same count after rounding")
        both = "both" if len(shares) == 2 else "all"
        notes.append(f"{listed} {both} give {n:,} labelled examples ({why}): trained once, "
                     f"shown as {entry['fraction'] * 100:g} %.")
    return " ".join(notes)


def target_subset(split: Split, spec: TaskSpec, fraction: float, *, min_rows: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded `fraction` of the labelled rows of `split` for `spec`.

    At least `min_rows` (one batch) rows, or all of them when fewer are labelled; the
    class proportions are kept (stratified) for classification when every class has
    enough rows, else the draw is plain random.
    """
    from sklearn.model_selection import train_test_split

    pool = labelled_rows(split, spec.name)
    if len(pool) == 0:
        raise DataError(
            f"target task {spec.name!r} has no labelled rows in its training split; choose a target "
            "with labels or fill in its column"
        )
    n = subset_size(fraction, len(pool), min_rows=min_rows)
    if n == len(pool):
        return pool
    stratify = split.y[spec.name][pool].cpu().numpy() if spec.kind == "classification" else None
    try:
        chosen, _ = train_test_split(pool, train_size=n, random_state=seed, stratify=stratify)
    except ValueError:  # a class with one row, or fewer rows than classes: stratifying is impossible
        chosen, _ = train_test_split(pool, train_size=n, random_state=seed)
    return np.sort(chosen)
