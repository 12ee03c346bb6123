"""The targets of a CSV dataset: cells -> label arrays the engine trains on, one per task.

Classification: the distinct labels, sorted (numerically when every label is a number),
one class each. Regression: float32 numbers, standardised with the labelled training
rows' mean and std (`standardise_regression`, so that a price in the 100,000s trains
with a loss of order 1 beside a cross-entropy; the spec keeps `target_scale` and metrics
are reported in the column's units). Tagging: one tag per word of the text column. A
missing cell is "no label for this task on this row": `IGNORE_INDEX`, or NaN for
regression.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from mtl_core.errors import DataError
from mtl_core.tasks.base import IGNORE_INDEX, TaskSpec, fit_target_scale
from mtl_core.tasks.csv_import.reader import FLOAT32_MAX, SHOW, offending_lines
from mtl_core.tasks.text import MAX_TOKENS


def _number_name(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _encode_classification(name: str, cells: pd.Series, file: Path) -> tuple[np.ndarray, list[str]]:
    present = cells.notna().to_numpy()
    values = cells[present]
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    if np.isfinite(numbers).all():  # numeric labels: one class per number, in numeric order
        classes, codes = np.unique(numbers, return_inverse=True)
        class_names = [_number_name(float(c)) for c in classes]
    else:
        classes, codes = np.unique(values.astype(str).to_numpy(), return_inverse=True)
        class_names = [str(c) for c in classes]
    if len(class_names) < 2:
        raise DataError(
            f"CSV file '{file}': classification target column '{name}' has a single class "
            f"({class_names[0]!r}); a classifier needs at least two: add rows of another class "
            "or drop this target"
        )
    y = np.full(len(cells), IGNORE_INDEX, dtype=np.int64)
    y[present] = codes
    return y, class_names


def _encode_regression(name: str, cells: pd.Series, lines: np.ndarray, file: Path) -> np.ndarray:
    present = cells.notna().to_numpy()
    numbers = pd.to_numeric(cells, errors="coerce").to_numpy(dtype=float)
    bad = present & np.isnan(numbers)
    if bad.any():
        comma = any("," in str(v) for v in cells[bad])
        raise DataError(
            f"CSV file '{file}': regression target column '{name}' has non-numeric values on "
            f"{offending_lines(lines[bad], cells[bad].tolist())}; a regression target needs numbers"
            f"{' with . as the decimal mark' if comma else ''}: fix those cells, clear them to "
            f"mark 'no label', or type the column with targets={{'{name}': 'classification'}}"
        )
    huge = present & ~(np.abs(numbers) <= FLOAT32_MAX)
    if huge.any():
        raise DataError(
            f"CSV file '{file}': regression target column '{name}' has infinite or too large "
            f"values (beyond ±3.4e38) on {offending_lines(lines[huge], cells[huge].tolist())}; fix them, "
            "rescale the column or clear those cells"
        )
    return numbers.astype(np.float32)


def _encode_tagging(
    name: str, cells: pd.Series, lines: np.ndarray, text_counts: np.ndarray, max_len: int, file: Path
) -> tuple[np.ndarray, list[str]]:
    present = cells.notna().to_numpy()
    tags = [str(c).split() if ok else [] for c, ok in zip(cells.tolist(), present)]
    tag_counts = np.array([len(t) for t in tags])
    bad = present & (tag_counts != text_counts)
    if bad.any():
        rows = np.flatnonzero(bad)[:SHOW]
        shown = ", ".join(f"{lines[i]} ({tag_counts[i]} tags for {text_counts[i]} words)" for i in rows)
        more = f" and {bad.sum() - SHOW} more" if bad.sum() > SHOW else ""
        raise DataError(
            f"CSV file '{file}': tagging target column '{name}' needs one tag per word of the "
            f"text, but line{'s' if bad.sum() > 1 else ''} {shown}{more} "
            f"{'do' if bad.sum() > 1 else 'does'} not match; separate tags and words by "
            "single spaces with one tag per word, or clear the tag cell to mark 'no label'"
        )
    class_names = sorted({t for row in tags for t in row})
    if len(class_names) < 2:
        raise DataError(
            f"CSV file '{file}': tagging target column '{name}' uses a single tag "
            f"({class_names[0]!r}); a tagger needs at least two: add rows with other tags or "
            "drop this target"
        )
    index = {t: i for i, t in enumerate(class_names)}
    y = np.full((len(cells), max_len), IGNORE_INDEX, dtype=np.int64)
    for r, row in enumerate(tags):
        cut = row[:max_len]
        y[r, : len(cut)] = [index[t] for t in cut]
    return y, class_names


def encode_targets(
    kinds: dict[str, str], declared: dict[str, str | None], frame: pd.DataFrame, lines: np.ndarray,
    text_counts: np.ndarray | None, file: Path, *, max_tokens: int = MAX_TOKENS,
) -> tuple[dict[str, np.ndarray], dict[str, TaskSpec]]:
    """Targets as the engine wants them (classes from the whole file) and their specs;
    tagging targets hold `max_tokens` positions (the importer cuts them to the padded length)."""
    y: dict[str, np.ndarray] = {}
    specs: dict[str, TaskSpec] = {}
    for name, kind in kinds.items():
        how = "given" if declared[name] else "inferred"
        if kind == "classification":
            y[name], classes = _encode_classification(name, frame[name], file)
            specs[name] = TaskSpec(
                name, "classification", num_classes=len(classes), class_names=tuple(classes),
                description=f"column '{name}' of {file.name}: {len(classes)} classes ({how})",
            )
        elif kind == "regression":
            y[name] = _encode_regression(name, frame[name], lines, file)
            specs[name] = TaskSpec(name, "regression", description=f"column '{name}' of {file.name} ({how})")
        else:
            assert text_counts is not None  # plan_columns requires a text column for tagging
            y[name], tags = _encode_tagging(name, frame[name], lines, text_counts, max_tokens, file)
            specs[name] = TaskSpec(
                name, "tagging", num_classes=len(tags), class_names=tuple(tags),
                description=f"column '{name}' of {file.name}: {len(tags)} tags, one per word ({how})",
            )
    return y, specs


def standardise_regression(
    y: dict[str, np.ndarray], specs: dict[str, TaskSpec], train: np.ndarray, *, warnings: list[str],
) -> dict[str, dict[str, float]]:
    """Standardise each regression target in place with its training rows' statistics;
    the specs get `target_scale`. Returns {task: {mean, std}} for `info`."""
    scales: dict[str, dict[str, float]] = {}
    for name, spec in specs.items():
        if spec.kind != "regression":
            continue
        mean, std, constant = fit_target_scale(y[name][train])
        if constant:
            warnings.append(
                f"regression target '{name}' has the same value ({mean:.6g}) on every labelled training "
                "row, so it has no spread to standardise by: it is centred only (std 1); check the "
                "column, or drop it from targets"
            )
        y[name] = ((y[name].astype(np.float64) - mean) / std).astype(np.float32)
        specs[name] = dataclasses.replace(
            spec, target_scale=(mean, std),
            description=f"{spec.description}; trained standardised (training mean {mean:.4g}, std {std:.4g}), "
            "metrics in the column's units",
        )
        scales[name] = {"mean": mean, "std": std}
    return scales


def labelled_counts(
    y: dict[str, np.ndarray], splits: dict[str, np.ndarray], lines: np.ndarray, *, seed: int,
    file: Path, warnings: list[str],
) -> dict[str, dict[str, int]]:
    """Labelled rows per task and split; a task with none to train on is refused."""
    counts: dict[str, dict[str, int]] = {}
    for name, target in y.items():
        if target.ndim > 1:  # tagging: a row counts when any word is tagged
            has = (target != IGNORE_INDEX).any(axis=1)
        elif target.dtype.kind == "f":
            has = ~np.isnan(target)
        else:
            has = target != IGNORE_INDEX
        counts[name] = {s: int(has[idx].sum()) for s, idx in splits.items()}
        if counts[name]["train"] == 0:
            raise DataError(
                f"CSV file '{file}': target column '{name}' has {int(has.sum())} labelled row(s) "
                f"({offending_lines(lines[has])}), none of them in the training split (seed {seed}); "
                "label more rows of this column or drop it from targets"
            )
        for s in ("val", "test"):
            if counts[name][s] == 0:
                warnings.append(
                    f"task '{name}' has no labelled row in the {s} split; its {s} metrics are empty"
                )
    return counts
