"""The train / validation / test split of a CSV dataset's rows.

`split_indices` (scikit-learn's `train_test_split`, twice) with the seed, stratified by the
first classification target; when a class is too rare to stratify (e.g. one example) the
split falls back to an unstratified one and says so in `info["warnings"]`. A file too
small for three non-empty splits is refused before anything is encoded: scikit-learn
decides (its rounding is the split's own) and its refusal is translated into a
`DataError` that says which split would be empty and how many rows are needed.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np

from mtl_core.errors import DataError
from mtl_core.tasks.base import IGNORE_INDEX, TaskSpec, split_indices

_MOST_ROWS_TRIED = 1_000_000  # beyond this the fewest rows that split are not searched for


def _empty_split(n: int, val_fraction: float, test_fraction: float) -> str | None:
    """The split scikit-learn refuses to leave empty for `n` rows, or None when all three have rows."""
    try:
        split_indices(n, seed=0, val_fraction=val_fraction, test_fraction=test_fraction)
    except ValueError as exc:
        # "With n_samples=N, test_size=... the resulting train set will be empty": the first
        # cut (N = n) keeps the training rows, the second cuts the held-out rows into
        # validation ("train" of that cut) and test.
        message = str(exc)
        cut = re.search(r"n_samples=(\d+)", message)
        if cut is None:
            return "one"
        if int(cut.group(1)) == n:
            return "training" if "train set" in message else "held-out"
        return "validation" if "train set" in message else "test"
    return None


def _fewest_rows(n: int, val_fraction: float, test_fraction: float) -> int | None:
    """Fewest rows above `n` that scikit-learn splits into three non-empty parts (None:
    not below `_MOST_ROWS_TRIED`). Each part grows with the rows, so a bisection finds it."""
    failing, ok = n, max(2 * n, 3)
    while _empty_split(ok, val_fraction, test_fraction) is not None:
        if ok >= _MOST_ROWS_TRIED:
            return None
        failing, ok = ok, min(2 * ok, _MOST_ROWS_TRIED)
    while ok - failing > 1:
        mid = (failing + ok) // 2
        if _empty_split(mid, val_fraction, test_fraction) is None:
            ok = mid
        else:
            failing = mid
    return ok


def check_split_sizes(n: int, *, val_fraction: float, test_fraction: float, file: Path) -> None:
    """Refuse `n` rows that cannot give training, validation and test a row each."""
    empty = _empty_split(n, val_fraction, test_fraction)
    if empty is None:
        return
    fewest = _fewest_rows(n, val_fraction, test_fraction)
    need = f"it needs at least {fewest}" if fewest else "the fractions are too small"
    raise DataError(
        f"CSV file '{file}' has {n} data rows, too few to split into train/val/test with "
        f"val_fraction={val_fraction:g} and test_fraction={test_fraction:g} (the {empty} split "
        f"would be empty); {need}: add rows or change the fractions"
    )


def split_rows(
    n: int, y: dict[str, np.ndarray], specs: dict[str, TaskSpec], *, seed: int,
    val_fraction: float, test_fraction: float, warnings: list[str],
) -> tuple[dict[str, np.ndarray], str | None]:
    """Train/val/test rows, stratified by the first classification target when its classes allow."""
    stratify_by = next((t for t, s in specs.items() if s.kind == "classification"), None)
    fractions = {"val_fraction": val_fraction, "test_fraction": test_fraction}
    try:
        stratum = y[stratify_by] if stratify_by else None
        train, val, test = split_indices(n, seed=seed, stratify=stratum, **fractions)
    except ValueError as exc:  # a class too rare to appear in every split (sizes are checked)
        label, count = Counter(y[stratify_by].tolist()).most_common()[-1]
        rare = "'no label'" if label == IGNORE_INDEX else repr(specs[stratify_by].class_names[label])
        warnings.append(
            f"split not stratified by '{stratify_by}': its rarest class {rare} has {count} "
            f"row(s), too few to put some in every split ({exc})"
        )
        stratify_by = None
        train, val, test = split_indices(n, seed=seed, **fractions)
    return {"train": train, "val": val, "test": test}, stratify_by
