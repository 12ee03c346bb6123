"""The targets of a CSV dataset: cells -> label arrays the engine trains on, one per task.

Classification: the distinct labels, sorted (numerically when every label is a number),
one class each. Regression: float32 numbers, standardised with the labelled training
rows' mean and std (`standardise_regression`, so that a price in the 100,000s trains
with a loss of order 1 beside a cross-entropy; the spec keeps `target_scale` and metrics
are reported in the column's units). Tagging: one tag per word of the text column.
Multilabel: float32 (N, K) of 0/1, from one column listing each row's labels joined by a
delimiter (`a;b`; the labels are those of the training rows) or from a group of 0/1
columns, one per label. A missing cell is "no label for this task on this row":
`IGNORE_INDEX`, or NaN for regression (a NaN row for multilabel). A multilabel cell that is
empty means "none of the labels" (a labelled row); one written NA (or another
`MISSING_MARKERS` word) means "not labelled".
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


def multilabel_present(cells: pd.Series, blank: pd.Series | None) -> np.ndarray:
    """Which rows of a delimited multilabel column are labelled: a label list, or an empty
    cell (no label); a cell written NA (etc.) is not labelled."""
    present = cells.notna().to_numpy()
    return present | blank.to_numpy(dtype=bool) if blank is not None else present


def _encode_multilabel_column(
    name: str, cells: pd.Series, blank: pd.Series | None, lines: np.ndarray, train: np.ndarray,
    delimiter: str, file: Path, warnings: list[str],
) -> tuple[np.ndarray, list[str]]:
    """(N, K) 0/1 targets of a column listing each row's labels joined by `delimiter`;
    the labels are those seen on the training rows (sorted), others are dropped with a warning."""
    present = multilabel_present(cells, blank)
    sets = [
        {part.strip() for part in str(c).split(delimiter) if part.strip()} if c is not None else set()
        for c in cells.tolist()
    ]
    labels = sorted(set().union(*(sets[i] for i in train if present[i])))
    if len(labels) < 2:
        seen = f"only the label {labels[0]!r}" if labels else "no label"
        raise DataError(
            f"CSV file '{file}': multilabel target column '{name}' has {seen} on its training rows "
            f"(labels joined by {delimiter!r}); a multilabel task needs at least two labels: check "
            "label_delimiter, or make it a classification target"
        )
    unseen = sorted(set().union(*(sets[i] for i in range(len(sets)) if present[i])) - set(labels))
    if unseen:
        shown = ", ".join(repr(u) for u in unseen[:SHOW]) + (f" and {len(unseen) - SHOW} more" if len(unseen) > SHOW else "")
        warnings.append(
            f"multilabel target '{name}': label(s) {shown} appear only on validation or test rows, "
            "so no model can learn them; they are left out of the task"
        )
    index = {lab: k for k, lab in enumerate(labels)}
    y = np.full((len(cells), len(labels)), np.nan, dtype=np.float32)
    y[present] = 0.0
    for r in np.flatnonzero(present):
        for lab in sets[r]:
            if lab in index:
                y[r, index[lab]] = 1.0
    return y, labels


def _encode_multilabel_group(
    task: str, members: dict[str, str], frame: pd.DataFrame, lines: np.ndarray, file: Path,
) -> tuple[np.ndarray, list[str]]:
    """(N, K) 0/1 targets from one 0/1 column per label; a row with every cell of the group
    missing is unlabelled, one with only some missing is refused (which labels would it hold?)."""
    labels = list(members)
    cells = frame[[members[lab] for lab in labels]]
    missing = cells.isna().to_numpy()
    values = cells.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    for k, lab in enumerate(labels):
        column = members[lab]
        bad = ~missing[:, k] & ~np.isin(values[:, k], (0.0, 1.0))
        if bad.any():
            raise DataError(
                f"CSV file '{file}': column '{column}' of label group '{task}' holds values other than "
                f"0 and 1 on {offending_lines(lines[bad], cells[column][bad].tolist())}; write 1 where the "
                f"row has label '{lab}' and 0 where it does not (or clear the whole group on an unlabelled row)"
            )
    partial = missing.any(1) & ~missing.all(1)
    if partial.any():
        rows = np.flatnonzero(partial)
        empty = [members[labels[k]] for k in np.flatnonzero(missing[rows[0]])]
        raise DataError(
            f"CSV file '{file}': label group '{task}' is filled only in part on {offending_lines(lines[partial])} "
            f"(line {lines[rows[0]]} misses {', '.join(repr(c) for c in empty[:SHOW])}); give every column of "
            "the group a 0 or 1 on a labelled row, or clear them all to mark the row unlabelled"
        )
    y = values.astype(np.float32)
    y[missing.all(1)] = np.nan
    return y, labels


def encode_targets(
    kinds: dict[str, str], declared: dict[str, str | None], frame: pd.DataFrame, lines: np.ndarray,
    text_counts: np.ndarray | None, file: Path, *, max_tokens: int = MAX_TOKENS,
    train: np.ndarray | None = None, blank: pd.DataFrame | None = None, delimiter: str = ";",
    groups: dict[str, dict[str, str]] | None = None, tune_thresholds: bool = False,
    warnings: list[str] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, TaskSpec]]:
    """Targets as the engine wants them (classes from the whole file; a delimited multilabel
    column's labels from the `train` rows) and their specs; tagging targets hold `max_tokens`
    positions (the importer cuts them to the padded length). `groups`: multilabel tasks of
    0/1 columns (task -> {label: column}); `blank`: the table's empty-cell mask."""
    y: dict[str, np.ndarray] = {}
    specs: dict[str, TaskSpec] = {}
    groups = groups or {}
    warnings = warnings if warnings is not None else []
    for name, kind in kinds.items():
        if name in groups:
            y[name], labels = _encode_multilabel_group(name, groups[name], frame, lines, file)
            columns = list(groups[name].values())
            specs[name] = TaskSpec(
                name, "multilabel", num_classes=len(labels), class_names=tuple(labels), tune_thresholds=tune_thresholds,
                description=f"columns {columns[0]} … {columns[-1]} of {file.name}: {len(labels)} labels (0/1 columns)",
            )
            continue
        how = "given" if declared[name] else "inferred"
        if kind == "multilabel":
            assert train is not None, "the importer splits before encoding a multilabel column"
            y[name], labels = _encode_multilabel_column(
                name, frame[name], None if blank is None else blank[name], lines, train, delimiter, file, warnings)
            specs[name] = TaskSpec(
                name, "multilabel", num_classes=len(labels), class_names=tuple(labels), tune_thresholds=tune_thresholds,
                description=f"column '{name}' of {file.name}: {len(labels)} labels joined by {delimiter!r} ({how})",
            )
        elif kind == "classification":
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
        z = (y[name].astype(np.float64) - mean) / std
        if not constant and np.nanmax(np.abs(z)) > FLOAT32_MAX:
            # Training rows that hardly vary (a spread of 4e-39 beside a 2.0 on a test row) would
            # be divided into overflow: centre only, as a constant target.
            warnings.append(
                f"regression target '{name}' hardly varies on the labelled training rows (std {std:.3g}) "
                "beside its values on other rows, so standardising it would overflow: it is centred only "
                "(std 1); check the column, or drop it from targets"
            )
            std, z = 1.0, y[name].astype(np.float64) - mean
        y[name] = z.astype(np.float32)
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
        if target.ndim > 1 and target.dtype.kind == "f":  # multilabel: a row of NaN is unlabelled
            has = ~np.isnan(target).all(axis=1)
        elif target.ndim > 1:  # tagging: a row counts when any word is tagged
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
