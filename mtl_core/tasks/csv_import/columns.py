"""Which column plays which part: the column plan (targets, inputs, text column), the
checks of the importer's settings, and the inference of each target's kind.

The plan reads the header alone, so that a config can be checked (and its task names
listed) without reading the whole file; the kind needs the cells.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

import numpy as np
import pandas as pd

from mtl_core.errors import ConfigError, DataError
from mtl_core.tasks.base import TaskKind
from mtl_core.tasks.csv_import.reader import offending_lines

TASK_KINDS: tuple[str, ...] = get_args(TaskKind)


@dataclass
class ColumnPlan:
    """The part each named column plays (columns not named here are ignored)."""

    targets: dict[str, str | None]  # column -> declared kind (None: infer)
    inputs: list[str]
    text_column: str | None
    split_column: str | None = None  # the file's own train / validation / test assignment
    # Multilabel tasks from groups of 0/1 columns: task -> {label: column} (`label_groups`).
    groups: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def task_names(self) -> list[str]:
        """Every task: the target columns, then the label groups."""
        return [*self.targets, *self.groups]


def check_settings(
    val_fraction: float, test_fraction: float, max_bytes: int, min_rows: int, max_classes: int
) -> None:
    """Refuse settings that are wrong whatever the file (ConfigError), before reading it."""
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 < value < 1:
            raise ConfigError(f"{name}: {value!r} must lie strictly between 0 and 1")
    if val_fraction + test_fraction >= 1:
        raise ConfigError(
            f"val_fraction + test_fraction is {val_fraction + test_fraction:g}; "
            "it must be below 1 to leave rows for training"
        )
    if max_bytes < 1:
        raise ConfigError(f"max_bytes: {max_bytes!r} must be a positive number of bytes")
    if min_rows < 1:
        raise ConfigError(f"min_rows: {min_rows!r} must be at least 1")
    if max_classes < 2:
        raise ConfigError(f"max_classes: {max_classes!r} must be at least 2")


def _unknown_column(file: Path, header: list[str], role: str, name: str) -> DataError:
    close = difflib.get_close_matches(name, header, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    seps = [s for s in (";", "\t", "|") if len(header) == 1 and s in header[0]]
    if seps:
        hint += (
            f"the header is one column containing {seps[0]!r}: the file seems to use "
            f"{seps[0]!r} as separator; re-save it comma-separated. "
        )
    return DataError(
        f"CSV file '{file}': {role} column '{name}' is not in the file; {hint}"
        f"its columns are: {', '.join(header)}"
    )


def plan_columns(
    header: list[str],
    file: Path,
    targets: Sequence[str] | Mapping[str, str] | None,
    inputs: Sequence[str] | None,
    text_column: str | None,
    split_column: str | None = None,
    *,
    kinds: Mapping[str, str] | None = None,
    label_groups: Mapping[str, str] | None = None,
) -> ColumnPlan:
    """Which column plays which part; the same rules for the header-only task listing.

    `kinds` overrides the inferred kind of target columns given as a list (column -> kind);
    `label_groups` makes one multilabel task of each group of 0/1 columns (task -> column
    prefix; the labels are the columns' names after the prefix)."""
    groups = _plan_groups(header, file, label_groups or {})
    if not targets and groups:
        targets = []
    elif not targets:
        raise DataError(
            f"CSV file '{file}': no target column given; name the columns to predict with "
            f"targets=[...] (dataset option `targets`), one task each; its columns are: "
            f"{', '.join(header)}"
        )
    if isinstance(targets, Mapping):
        declared: dict[str, str | None] = {}
        for name, kind in targets.items():
            if kind not in TASK_KINDS:
                raise ConfigError(
                    f"targets: kind {kind!r} of column '{name}' is not one of {', '.join(TASK_KINDS)}"
                )
            declared[name] = kind
    else:
        if isinstance(targets, str):
            raise ConfigError(f"targets: give a list of column names, e.g. [{targets!r}], not a string")
        repeated = [t for t, k in Counter(targets).items() if k > 1]
        if repeated:
            raise ConfigError(f"targets: column '{repeated[0]}' is listed twice; list each target once")
        declared = {t: None for t in targets}
    for name, kind in (kinds or {}).items():
        if kind not in TASK_KINDS:
            raise ConfigError(f"kinds: kind {kind!r} of column '{name}' is not one of {', '.join(TASK_KINDS)}")
        if name not in declared:
            raise ConfigError(
                f"kinds: column '{name}' is not a target; add it to targets, or remove it from kinds"
            )
        if declared[name] not in (None, kind):
            raise ConfigError(
                f"kinds: column '{name}' is {kind!r} in kinds but {declared[name]!r} in targets; "
                "give its kind once"
            )
        declared[name] = kind
    for task, members in groups.items():
        if task in declared:
            raise ConfigError(
                f"label_groups: task '{task}' has the name of a target column; name the group "
                "differently (e.g. after its prefix without the '_')"
            )
        taken = next((c for c in members.values() if c in declared or c in (text_column, split_column)), None)
        if taken:
            role = "a target" if taken in declared else "the text column" if taken == text_column else "the split column"
            raise DataError(
                f"CSV file '{file}': column '{taken}' is in label group '{task}' (prefix "
                f"'{label_groups[task]}') and is also {role}; a column plays one part: rename it or "
                "choose a longer prefix"
            )
    for name in declared:
        if name not in header:
            raise _unknown_column(file, header, "target", name)
        problem = task_name_problem(name)
        if problem:
            raise DataError(f"CSV file '{file}': target column '{name}' {problem}")

    if text_column is not None:
        if text_column not in header:
            raise _unknown_column(file, header, "text", text_column)
        if text_column in declared:
            raise DataError(
                f"CSV file '{file}': column '{text_column}' is both a target and the text "
                "column; a task cannot predict its own input: drop it from targets or choose "
                "another text_column"
            )
        if inputs is not None:
            raise ConfigError(
                "inputs and text_column: give one of them; a text dataset's only input is its "
                "text column"
            )
    if split_column is not None:
        if split_column not in header:
            raise _unknown_column(file, header, "split", split_column)
        role = (
            "a target" if split_column in declared else "the text column" if split_column == text_column
            else "an input" if inputs is not None and split_column in inputs else None
        )
        if role:
            raise DataError(
                f"CSV file '{file}': column '{split_column}' is both the split column and {role}; "
                "the split column only says which rows train, validate and test: choose another "
                "split_column or remove it from the other role"
            )
    for name, kind in declared.items():
        if kind == "tagging" and text_column is None:
            raise DataError(
                f"CSV file '{file}': target column '{name}' is a tagging task, which tags each "
                "word of a text: name the text column with text_column=..."
            )

    if inputs is not None:
        if len(inputs) == 0:
            raise ConfigError(
                "inputs: the list is empty; name at least one input column or leave inputs out "
                "to use every column that is not a target"
            )
        repeated = [c for c, k in Counter(inputs).items() if k > 1]
        if repeated:
            raise ConfigError(f"inputs: column '{repeated[0]}' is listed twice; list each input once")
        grouped = {c: t for t, members in groups.items() for c in members.values()}
        for name in inputs:
            if name not in header:
                raise _unknown_column(file, header, "input", name)
            if name in grouped:
                raise DataError(
                    f"CSV file '{file}': column '{name}' is both an input and a label of group "
                    f"'{grouped[name]}'; a task cannot see its own labels: remove it from inputs"
                )
            if name in declared:
                raise DataError(
                    f"CSV file '{file}': column '{name}' is both a target and an input; a task "
                    "cannot see its own label: remove it from inputs (or from targets)"
                )
        chosen = list(inputs)
    elif text_column is None:
        grouped = {c for members in groups.values() for c in members.values()}
        chosen = [c for c in header if c not in declared and c != split_column and c not in grouped]
        if not chosen:
            raise DataError(
                f"CSV file '{file}' has no input column: every column ({', '.join(header)}) is "
                "a target; add feature columns, or name a text column with text_column=..."
            )
    else:
        chosen = []
    return ColumnPlan(declared, chosen, text_column, split_column, groups)


def _plan_groups(header: list[str], file: Path, label_groups: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """task -> {label: column} of each label group: the columns whose names start with the
    prefix, the label being the rest of the name. At least two labels each (one 0/1 column
    is a binary classification target), no column in two groups."""
    groups: dict[str, dict[str, str]] = {}
    owner: dict[str, str] = {}
    for task, prefix in label_groups.items():
        problem = task_name_problem(task)
        if problem:
            raise ConfigError(f"label_groups: task name '{task}' {problem}".replace(
                "rename the column in the file", "rename the group"))
        if not prefix:
            raise ConfigError(f"label_groups: task '{task}' has an empty prefix; give the start its "
                              "columns' names share, e.g. {'" + task + "': '" + task + "_'}")
        members = {c[len(prefix):]: c for c in header if c.startswith(prefix) and len(c) > len(prefix)}
        if not members:
            close = [c for c in header if prefix.lower() in c.lower()][:3] or difflib.get_close_matches(prefix, header, n=3)
            hint = f" (columns with a similar name: {', '.join(close)})" if close else ""
            raise DataError(
                f"CSV file '{file}': label_groups prefix '{prefix}' of task '{task}' matches no column{hint}; "
                f"give the exact start of the 0/1 columns' names (case matters); its columns are: {', '.join(header)}"
            )
        if len(members) == 1:
            (column,) = members.values()
            raise DataError(
                f"CSV file '{file}': label_groups prefix '{prefix}' of task '{task}' matches a single "
                f"column ('{column}'); a multilabel task needs at least two labels: use a prefix shared "
                f"by more columns, or make '{column}' a classification target (targets: ['{column}'])"
            )
        for column in members.values():
            if column in owner:
                raise ConfigError(
                    f"label_groups: column '{column}' matches the prefixes of both '{owner[column]}' and "
                    f"'{task}'; give prefixes that do not overlap"
                )
            owner[column] = task
        groups[task] = members
    return groups


def task_name_problem(name: str) -> str | None:
    """Why column `name` cannot be a task name, or None when it can.

    A task name is a key of `--set weights.<task>=2` (parts split at '.', key and value at
    the first '=') and of the model's `torch.nn.ModuleDict`s (no '.', no name the container
    already uses as an attribute, such as 'keys' or 'training'). Refused here, when the
    config is checked, rather than in torch after the baselines trained.
    """
    from torch import nn

    fix = f"rename the column in the file (e.g. to '{_suggest(name)}') and import it again"
    if "." in name:
        return ("has a '.' in its name, which a task name cannot hold ('.' separates the parts of "
                f"`--set weights.<task>=2` and of the model's parameter names); {fix}")
    if "=" in name:
        return f"has a '=' in its name, which `--set weights.<task>=2` would split at; {fix}"
    if hasattr(nn.ModuleDict(), name):
        return (f"is named like an attribute of the model's containers ('{name}' of torch.nn.ModuleDict), "
                f"which a task name cannot be; {fix}")
    return None


def _suggest(name: str) -> str:
    new = name.replace(".", "_").replace("=", "_")
    return new if new != name else f"{name}_"


def infer_kind(
    name: str,
    cells: pd.Series,
    lines: np.ndarray,
    text_counts: np.ndarray | None,
    max_classes: int,
    file: Path,
    delimiter: str = ";",
) -> str:
    """The kind of a target given as a list: 'tagging' when every labelled cell holds one
    tag per word of the text (and some more than one), 'classification' for text labels or
    at most `max_classes` distinct integers, else 'regression'."""
    present = cells.notna().to_numpy()
    values = cells[present]
    if text_counts is not None:
        tag_counts = values.str.split().str.len().to_numpy()
        if np.array_equal(tag_counts, text_counts[present]) and (tag_counts > 1).any():
            return "tagging"
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    bad = np.isnan(numbers)
    if not bad.any():
        finite = np.isfinite(numbers).all()
        if finite and np.all(numbers == np.round(numbers)) and len(np.unique(numbers)) <= max_classes:
            return "classification"
        return "regression"
    if bad.sum() <= 0.1 * len(values):
        # A numeric column with a few stray cells is a typo far more often than a label set.
        raise DataError(
            f"CSV file '{file}': target column '{name}' looks numeric but has non-numbers on "
            f"{offending_lines(lines[present][bad], values[bad].tolist())}; fix those cells, clear them "
            f"to mark 'no label', or say what the column is with targets={{'{name}': "
            "'regression'}} or {'" + name + "': 'classification'}"
        )
    n_classes = values.nunique()
    if n_classes > max_classes:
        if values.str.contains(delimiter, regex=False).mean() > 0.1:
            raise DataError(
                f"CSV file '{file}': target column '{name}' has {n_classes} distinct text values, many "
                f"holding '{delimiter}': if each cell lists several labels, say so with "
                f"kinds={{'{name}': 'multilabel'}} (label_delimiter '{delimiter}'); otherwise raise "
                "max_classes or drop the column"
            )
        raise DataError(
            f"CSV file '{file}': target column '{name}' has {n_classes} distinct text values, "
            f"more than max_classes={max_classes}; if it really is a classification target say "
            f"so with targets={{'{name}': 'classification'}} or raise max_classes, otherwise "
            "it may be an identifier column: don't use it as a target"
        )
    return "classification"
