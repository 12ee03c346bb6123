"""The train / validation / test split of a CSV dataset's rows.

Either the file's own assignment (`split_column`: a column whose cells say train /
validation / test, see `SPLIT_NAMES`), or a random one: `split_indices` (scikit-learn's
`train_test_split`, twice) with the seed, *not stratified*. The random split depends on
the number of rows, the seed and the fractions alone, so the same file and seed give the
same test rows whichever targets are chosen: comparing two target sets, or a model
trained on one with one trained on another, compares them on the same rows. Stratifying
by a target made the split follow the target list. What that costs: class shares vary
between splits by sampling noise (e.g. a 10 % class of 200 rows puts 3 ± 1.5 rows in a
15 % test split, not exactly 3), and a rare class may be absent from validation or test;
with few rows, use `split_column` to fix the split by hand.

A file too small for three non-empty random splits is refused before anything is
encoded: scikit-learn decides (its rounding is the split's own) and its refusal is
translated into a `DataError` that says which split would be empty and how many rows
are needed.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from mtl_core.errors import DataError
from mtl_core.tasks.base import split_indices
from mtl_core.tasks.csv_import.reader import offending_lines

# Cell values of a split column (compared lower-cased, surrounding spaces ignored).
SPLIT_NAMES: dict[str, str] = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val", "development": "val",
    "test": "test", "testing": "test",
}

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


def random_split(n: int, *, seed: int, val_fraction: float, test_fraction: float) -> dict[str, np.ndarray]:
    """Train/val/test rows from the row count, seed and fractions alone (see the module
    docstring for why it is not stratified)."""
    train, val, test = split_indices(n, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
    return {"train": train, "val": val, "test": test}


def column_split(cells: pd.Series, lines: np.ndarray, *, column: str, file: Path) -> dict[str, np.ndarray]:
    """Train/val/test rows as the file's `column` assigns them (values in `SPLIT_NAMES`,
    any case). An empty or unknown cell, or a split left without rows, is refused."""
    present = cells.notna().to_numpy()
    if not present.all():
        raise DataError(
            f"CSV file '{file}': split column '{column}' is empty on "
            f"{offending_lines(lines[~present])}; give every row train, validation or test"
        )
    values = cells.astype(str).str.strip().str.lower().to_numpy()
    known = np.array([v in SPLIT_NAMES for v in values])
    if not known.all():
        bad = sorted(set(cells.astype(str).to_numpy()[~known].tolist()))
        raise DataError(
            f"CSV file '{file}': split column '{column}' has unknown value(s) "
            f"{', '.join(repr(b) for b in bad[:5])}{' ...' if len(bad) > 5 else ''} on "
            f"{offending_lines(lines[~known], cells[~known].tolist())}; use train, validation "
            "(or val, dev) or test, in any case"
        )
    assigned = np.array([SPLIT_NAMES[v] for v in values])
    splits = {s: np.flatnonzero(assigned == s) for s in ("train", "val", "test")}
    empty = [s for s, rows in splits.items() if len(rows) == 0]
    if empty:
        names = {"train": "train", "val": "validation", "test": "test"}
        raise DataError(
            f"CSV file '{file}': split column '{column}' puts no row in the "
            f"{' and '.join(names[s] for s in empty)} split; mark some rows "
            f"{' / '.join(names[s] for s in empty)} (or leave split_column out for a random split)"
        )
    return splits
