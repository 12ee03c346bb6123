"""Your own CSV file as a multi-task dataset: name the target columns, get three splits.

One row is one example; each target column is one task. What the importer does:

- **Inputs.** Either tabular columns (default: every column that is neither a target nor
  the text column): numeric columns are standardised and categorical (non-numeric)
  columns one-hot encoded, both fitted on the *training* rows only so that no statistic
  of the validation or test rows leaks into the inputs; a missing numeric cell is
  imputed with the training median. Or one free-text column (`text_column`):
  whitespace-tokenised, a vocabulary built from the training rows (`<pad>` = 0,
  `<unk>` = 1), padded to the longest training sentence (at most `MAX_TOKENS`).
- **Targets.** Each task is classification, regression or tagging. Given as a list, a
  column's kind is inferred: text labels, or integer labels with at most `max_classes`
  distinct values, make a classification task; other numbers a regression task; a
  column whose cells are space-separated tags, one per word of the text column on every
  row (and more than one word on some row), a tagging task. Given as a dict
  (`{"price": "regression"}`), the kind is yours. Class names are the distinct labels as
  strings, sorted (numerically when every label is a number).
- **Missing labels.** An empty cell (or one of `MISSING_MARKERS`: NA, NaN, null, ...)
  in a target column means "no label for this task on this row": `IGNORE_INDEX` in a
  classification/tagging target, NaN in a regression one. The row is kept for the
  other tasks.
- **Regression scale.** A regression target is standardised, (y − mean) / std with the
  mean and std of its labelled *training* rows (validation and test rows use the same
  statistics), so that a price in the 100,000s trains with a loss of order 1 beside a
  cross-entropy instead of taking all the weight. The spec keeps `target_scale =
  (mean, std)` and every metric is reported in the column's own units
  (`metrics.task_metrics`). `standardise_targets=False` keeps the raw units. A column
  constant on the training rows is centred only (std 1) and a warning says so.
- **Splits.** `split_indices` with the seed, stratified by the first classification
  target; when a class is too rare to stratify (e.g. one example) the split falls back
  to an unstratified one and says so in `info["warnings"]`.

The file is UTF-8 (a byte-order mark is fine), comma-separated, with double-quoted fields
where a cell holds a comma, a quote or a line break; files over `DEFAULT_MAX_BYTES`
(50 MiB) are refused unless `max_bytes` is raised.

The importer is pure: it reads the file and writes nothing. Every problem a user can
cause raises `DataError` naming the file, the column and the first offending lines
(1-based, as a spreadsheet numbers them: the header is line 1), and saying how to fix it.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import hashlib
import io
import logging
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Iterable, Iterator, Mapping, Sequence, get_args

import numpy as np
import pandas as pd
import torch
from pydantic import Field

from mtl_core.errors import ConfigError, DataError
from mtl_core.tasks.base import (
    IGNORE_INDEX,
    PAD_ID,
    UNK_ID,
    MTLDataset,
    Split,
    SplitOptions,
    TaskKind,
    TaskSpec,
    fit_target_scale,
    register_dataset,
    split_indices,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 50 * 1024 * 1024  # 50 MiB: larger files are refused unless max_bytes is raised
MAX_TOKENS = 64  # token inputs are padded (or cut) to min(longest training sentence, MAX_TOKENS)
# Cells that mean "no value" (after stripping whitespace), as spreadsheets and pandas write them.
MISSING_MARKERS = frozenset({"", "NA", "N/A", "n/a", "NaN", "nan", "NULL", "null", "#N/A"})
TASK_KINDS: tuple[str, ...] = get_args(TaskKind)
PAD_TOKEN, UNK_TOKEN = "<pad>", "<unk>"
_MISSING_CATEGORY = "<missing>"  # a missing categorical input is a category of its own
_SHOW = 5  # offending lines named in a message
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_MANY_CATEGORIES = 50  # a categorical input wider than this is probably an identifier
MAX_FIELD_CHARS = 1024 * 1024  # longest cell, in characters (Python's csv module stops at 131,072)


class CSVOptions(SplitOptions):
    """Options of the `csv` dataset (see `from_csv`)."""

    max_holdout: ClassVar[float] = 1.0  # a user's file may hold out what it likes

    path: str = Field(..., description="path of the CSV file (UTF-8, comma-separated, header on line 1)")
    targets: list[str] | dict[str, TaskKind] | None = Field(
        None,
        description="target columns, one task each; a list infers each kind, "
        "a dict maps column -> classification / regression / tagging",
    )
    inputs: list[str] | None = Field(
        None, description="input columns (default: every column that is not a target or the text column)"
    )
    text_column: str | None = Field(
        None, description="one free-text column as token input instead of tabular inputs"
    )
    max_bytes: int = Field(
        DEFAULT_MAX_BYTES, ge=1, description="largest file accepted, in bytes (default 50 MiB)"
    )
    max_classes: int = Field(
        20, ge=2, description="most distinct values a target may have to be inferred as classification"
    )
    min_rows: int = Field(
        1, ge=1, description="fewest data rows accepted (the engine passes its batch size)"
    )
    standardise_targets: bool = Field(
        True,
        description="train regression targets standardised with the training rows' mean and std "
        "(losses of order 1 beside the other tasks'); metrics stay in the column's units",
    )


# --------------------------------------------------------------------------- reading


@dataclass
class _Table:
    """A parsed CSV: stripped string cells (None = missing) and each row's line number."""

    header: list[str]
    frame: pd.DataFrame
    lines: np.ndarray  # 1-based line on which each data row starts
    sha256: str
    n_bytes: int


def _where(lines: Sequence[int], values: Sequence[object] | None = None) -> str:
    """'line 4' / "lines 4 ('abc'), 9 ('x') and 3 more": the first offending rows."""
    shown = []
    for i, line in enumerate(list(lines)[:_SHOW]):
        if values is None:
            shown.append(str(line))
        else:
            text = str(values[i])
            shown.append(f"{line} ({text[:30] + '...' if len(text) > 30 else text!r})")
    more = f" and {len(lines) - _SHOW} more" if len(lines) > _SHOW else ""
    return f"{'line' if len(lines) == 1 else 'lines'} {', '.join(shown)}{more}"


def _check_file(file: Path, max_bytes: int) -> int:
    if not file.exists():
        raise DataError(
            f"CSV file '{file}' not found (looked in {file.resolve().parent}); "
            "check the path, or give an absolute one"
        )
    if not file.is_file():
        raise DataError(f"CSV file '{file}' is not a file; give the path of a .csv file")
    size = file.stat().st_size
    if size > max_bytes:
        raise DataError(
            f"CSV file '{file}' is {size:,} bytes ({size / 2**20:.1f} MiB), over the limit of "
            f"{max_bytes:,} bytes ({max_bytes / 2**20:.1f} MiB); raise max_bytes "
            "(dataset option `max_bytes`) or import a sample of the rows"
        )
    if size == 0:
        raise DataError(f"CSV file '{file}' is empty; it needs a header line and data rows")
    return size


def _not_utf8(file: Path, where: str) -> DataError:
    return DataError(
        f"CSV file '{file}' is not UTF-8 text ({where}); re-save it as 'CSV UTF-8' "
        "(in a spreadsheet: Save As -> CSV UTF-8) or convert it, e.g. "
        f"`iconv -f latin1 -t utf-8 '{file.name}'`"
    )


def _records(stream: Iterable[str], file: Path) -> Iterator[tuple[int, list[str]]]:
    """(first line, fields) of every non-blank record; a quoted field may span lines."""
    # The csv module refuses a field over its own limit (131,072 characters) with "field
    # larger than field limit", which the message below would blame on a quote; the file
    # size is bounded (max_bytes), so let the reader take any field and check its length.
    if csv.field_size_limit() < _CSV_READER_LIMIT:
        csv.field_size_limit(_CSV_READER_LIMIT)
    # strict: a stray quote ('"a"b') or a quote never closed is an error, not a guess.
    reader = csv.reader(stream, strict=True)
    start = 1
    header: list[str] | None = None
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DataError(
                f"CSV file '{file}' cannot be parsed at line {start} ({exc}); a quote may be "
                "unbalanced or a quoted field followed by text: quote whole fields (\"a, b\") "
                "and double quotes inside them (\"\")"
            ) from None
        if record and not (len(record) == 1 and not record[0].strip()):  # skip blank lines
            _check_field_sizes(record, header, start, reader.line_num, file)
            header = header or record
            yield start, record
        start = reader.line_num + 1


_CSV_READER_LIMIT = 2**31 - 1  # the largest the csv module takes on every platform


def _check_field_sizes(record: list[str], header: list[str] | None, start: int, end: int, file: Path) -> None:
    for i, cell in enumerate(record):
        if len(cell) <= MAX_FIELD_CHARS:
            continue
        if header is None:
            where = f"column {i + 1} of the header"
        elif i < len(header):
            where = f"column '{header[i].strip()}'"
        else:
            where = f"column {i + 1}"
        lines = f"on line {start}" if end <= start else f"on lines {start}-{end}"
        raise DataError(
            f"CSV file '{file}': the field in {where} {lines} is {len(cell):,} characters long, "
            f"larger than the limit of {MAX_FIELD_CHARS:,} characters per field; shorten that "
            "cell (cut a long text, or split it over several rows)"
        )


def _check_header(header: list[str], line: int, file: Path) -> list[str]:
    names = [h.strip() for h in header]
    blank = [i + 1 for i, h in enumerate(names) if not h]
    if blank:
        raise DataError(
            f"CSV file '{file}': column {blank[0]} of the header (line {line}) has no name; "
            "give every column a name (a file saved by pandas with its index has an unnamed "
            "first column: re-save it with index=False)"
        )
    counts = Counter(names)
    dups = [n for n in names if counts[n] > 1]
    if dups:
        positions = [str(i + 1) for i, n in enumerate(names) if n == dups[0]]
        raise DataError(
            f"CSV file '{file}': column '{dups[0]}' appears {counts[dups[0]]} times in the header "
            f"(line {line}, columns {', '.join(positions)}); rename them so that every column "
            "name is unique"
        )
    return names


def read_header(file: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> list[str]:
    """The column names of a CSV file, reading only its header line."""
    file = Path(file).expanduser()
    _check_file(file, max_bytes)
    try:
        with file.open(encoding="utf-8-sig", newline="") as stream:
            first = next(_records(stream, file), None)
    except UnicodeDecodeError:
        raise _not_utf8(file, "in its header") from None
    if first is None:
        raise DataError(f"CSV file '{file}' has no header line; put the column names on line 1")
    return _check_header(first[1], first[0], file)


def _read_table(file: Path, max_bytes: int) -> _Table:
    size = _check_file(file, max_bytes)
    data = file.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8-sig", errors="replace")
        line = len(io.StringIO(before, newline="").readlines()) + (not before or before[-1] in "\r\n")
        raise _not_utf8(file, f"byte {data[exc.start]:#04x} on line {line}") from None
    if not text.strip():
        raise DataError(f"CSV file '{file}' is empty; it needs a header line and data rows")

    # The standard library's csv reader rather than pandas.read_csv: it tells the line each
    # record starts on (for messages), and neither pads short rows with NaN nor renames a
    # repeated header name to 'a.1' behind the user's back.
    records = _records(io.StringIO(text, newline=""), file)
    first = next(records, None)
    if first is None:
        raise DataError(f"CSV file '{file}' has no header line; put the column names on line 1")
    header_line, raw_header = first
    header = _check_header(raw_header, header_line, file)
    rows, lines, ragged = [], [], []
    for line, record in records:
        if len(record) != len(header):
            ragged.append((line, len(record)))
        rows.append([c.strip() for c in record])
        lines.append(line)
    if ragged:
        shown = ", ".join(f"{ln} ({k} field{'s' if k != 1 else ''})" for ln, k in ragged[:_SHOW])
        more = f" and {len(ragged) - _SHOW} more" if len(ragged) > _SHOW else ""
        raise DataError(
            f"CSV file '{file}': the header (line {header_line}) has {len(header)} columns but "
            f"line{'s' if len(ragged) > 1 else ''} {shown}{more} "
            f"{'do' if len(ragged) > 1 else 'does'} not; a field may contain an unquoted comma "
            "or a row may miss a cell: quote fields that contain commas and give every row "
            "one cell per column (empty is fine)"
        )
    frame = pd.DataFrame(rows, columns=header, dtype=object) if rows else pd.DataFrame(columns=header)
    frame = frame.where(~frame.isin(MISSING_MARKERS), None)
    return _Table(header, frame, np.asarray(lines, dtype=np.int64), hashlib.sha256(data).hexdigest(), size)


# --------------------------------------------------------------------------- columns


@dataclass
class _Plan:
    targets: dict[str, str | None]  # column -> declared kind (None: infer)
    inputs: list[str]
    text_column: str | None


def _check_settings(
    val_fraction: float, test_fraction: float, max_bytes: int, min_rows: int, max_classes: int
) -> None:
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


def _plan_columns(
    header: list[str],
    file: Path,
    targets: Sequence[str] | Mapping[str, str] | None,
    inputs: Sequence[str] | None,
    text_column: str | None,
) -> _Plan:
    """Which column plays which part; the same rules for the header-only task listing."""
    if not targets:
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
        for name in inputs:
            if name not in header:
                raise _unknown_column(file, header, "input", name)
            if name in declared:
                raise DataError(
                    f"CSV file '{file}': column '{name}' is both a target and an input; a task "
                    "cannot see its own label: remove it from inputs (or from targets)"
                )
        chosen = list(inputs)
    elif text_column is None:
        chosen = [c for c in header if c not in declared]
        if not chosen:
            raise DataError(
                f"CSV file '{file}' has no input column: every column ({', '.join(header)}) is "
                "a target; add feature columns, or name a text column with text_column=..."
            )
    else:
        chosen = []
    return _Plan(declared, chosen, text_column)


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


# --------------------------------------------------------------------------- targets


def _number_name(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _infer_kind(
    name: str,
    cells: pd.Series,
    lines: np.ndarray,
    text_counts: np.ndarray | None,
    max_classes: int,
    file: Path,
) -> str:
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
            f"{_where(lines[present][bad], values[bad].tolist())}; fix those cells, clear them "
            f"to mark 'no label', or say what the column is with targets={{'{name}': "
            "'regression'}} or {'" + name + "': 'classification'}"
        )
    n_classes = values.nunique()
    if n_classes > max_classes:
        raise DataError(
            f"CSV file '{file}': target column '{name}' has {n_classes} distinct text values, "
            f"more than max_classes={max_classes}; if it really is a classification target say "
            f"so with targets={{'{name}': 'classification'}} or raise max_classes, otherwise "
            "it may be an identifier column: don't use it as a target"
        )
    return "classification"


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
            f"{_where(lines[bad], cells[bad].tolist())}; a regression target needs numbers"
            f"{' with . as the decimal mark' if comma else ''}: fix those cells, clear them to "
            f"mark 'no label', or type the column with targets={{'{name}': 'classification'}}"
        )
    huge = present & ~(np.abs(numbers) <= _FLOAT32_MAX)
    if huge.any():
        raise DataError(
            f"CSV file '{file}': regression target column '{name}' has infinite or too large "
            f"values (beyond ±3.4e38) on {_where(lines[huge], cells[huge].tolist())}; fix them, "
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
        rows = np.flatnonzero(bad)[:_SHOW]
        shown = ", ".join(f"{lines[i]} ({tag_counts[i]} tags for {text_counts[i]} words)" for i in rows)
        more = f" and {bad.sum() - _SHOW} more" if bad.sum() > _SHOW else ""
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


# --------------------------------------------------------------------------- splits


def _split_sizes(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """Split sizes as `split_indices` (scikit-learn's train_test_split) makes them."""
    holdout = val_fraction + test_fraction
    n_rest = math.ceil(holdout * n)
    n_test = math.ceil(test_fraction / holdout * n_rest)
    return n - n_rest, n_rest - n_test, n_test


def _fewest_rows(val_fraction: float, test_fraction: float) -> int | None:
    """Fewest rows that give every split at least one row (None: not below a million)."""
    return next(
        (n for n in range(3, 1_000_000) if min(_split_sizes(n, val_fraction, test_fraction)) >= 1), None
    )


# --------------------------------------------------------------------------- inputs


def _vector_inputs(
    frame: pd.DataFrame,
    columns: list[str],
    train: np.ndarray,
    lines: np.ndarray,
    file: Path,
    warnings: list[str],
) -> tuple[np.ndarray, list[str], dict]:
    """Standardised numeric + one-hot categorical features, fitted on the training rows."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric: dict[str, np.ndarray] = {}
    categorical: dict[str, np.ndarray] = {}
    imputed: dict[str, int] = {}
    for col in columns:
        cells = frame[col]
        present = cells.notna().to_numpy()
        if not present.any():
            warnings.append(f"input column '{col}' is empty on every row; it is ignored")
            continue
        numbers = pd.to_numeric(cells, errors="coerce").to_numpy(dtype=float)
        not_numbers = present & np.isnan(numbers)
        if not not_numbers.any():
            huge = present & ~(np.abs(numbers) <= _FLOAT32_MAX)
            if huge.any():
                raise DataError(
                    f"CSV file '{file}': input column '{col}' has infinite or too large values "
                    f"(beyond ±3.4e38) on {_where(lines[huge], cells[huge].tolist())}; fix them "
                    "or clear those cells (an empty cell is filled with the training median)"
                )
            numeric[col] = numbers
            if (~present).any():
                imputed[col] = int((~present).sum())
            continue
        if not_numbers.sum() <= 0.1 * present.sum():
            warnings.append(
                f"input column '{col}' is treated as categorical because "
                f"{_where(lines[not_numbers], cells[not_numbers].tolist())} "
                "are not numbers; fix them if the column is numeric"
            )
        values = cells.fillna(_MISSING_CATEGORY).astype(str).to_numpy()
        categorical[col] = values
        width = len(np.unique(values[train]))
        if width > _MANY_CATEGORIES:
            warnings.append(
                f"input column '{col}' has {width} distinct values in the training rows, one "
                "feature each; if it is an identifier, leave it out with inputs=[...]"
            )
    if not numeric and not categorical:
        raise DataError(
            f"CSV file '{file}' has no usable input column (every input column is empty); "
            "fill the feature columns or name a text column with text_column=..."
        )

    table = pd.DataFrame({**{c: v for c, v in numeric.items()}, **{c: v for c, v in categorical.items()}})
    parts = []
    if numeric:
        # keep_empty_features: a column missing on every training row becomes 0, not dropped,
        # so the feature width does not depend on the split.
        parts.append((
            "num",
            make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()),
            list(numeric),
        ))
    if categorical:
        parts.append((
            "cat",
            OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float64),
            list(categorical),
        ))
    transform = ColumnTransformer(parts, sparse_threshold=0.0)
    transform.fit(table.iloc[train])
    x = np.asarray(transform.transform(table), dtype=np.float64)
    names = [n.split("__", 1)[1] for n in transform.get_feature_names_out()]
    unusable = ~np.isfinite(x).all(axis=0) | (np.abs(x) > _FLOAT32_MAX).any(axis=0)
    broken = [names[j] for j in np.flatnonzero(unusable)]
    if broken:
        raise DataError(
            f"CSV file '{file}': input column '{broken[0]}' cannot be standardised (its values "
            "are too large for its spread); rescale the column, e.g. to other units"
        )
    details = {"numeric": list(numeric), "categorical": list(categorical), "imputed": imputed}
    return x.astype(np.float32), names, details


def _token_inputs(
    tokens: list[list[str]], train: np.ndarray, text_column: str, file: Path
) -> tuple[np.ndarray, list[str], int]:
    """Word ids over a vocabulary of the training rows, padded to the longest training row."""
    counts = Counter(w for i in train for w in tokens[i])
    longest = max((len(tokens[i]) for i in train), default=0)
    if longest == 0:
        raise DataError(
            f"CSV file '{file}': text column '{text_column}' has no words on any training row; "
            "fill the text column"
        )
    # Most frequent first, ties alphabetical: the same file always gives the same ids.
    vocab = [PAD_TOKEN, UNK_TOKEN] + sorted(counts, key=lambda w: (-counts[w], w))
    index = {w: i for i, w in enumerate(vocab)}
    max_len = min(longest, MAX_TOKENS)
    x = np.full((len(tokens), max_len), PAD_ID, dtype=np.int64)
    for r, words in enumerate(tokens):
        cut = words[:max_len]
        x[r, : len(cut)] = [index.get(w, UNK_ID) for w in cut]
    return x, vocab, max_len


# --------------------------------------------------------------------------- the importer


def _encode_targets(
    kinds: dict[str, str], declared: dict[str, str | None], frame: pd.DataFrame, lines: np.ndarray,
    text_counts: np.ndarray | None, file: Path,
) -> tuple[dict[str, np.ndarray], dict[str, TaskSpec]]:
    """Targets as the engine wants them (classes from the whole file) and their specs."""
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
            assert text_counts is not None  # _plan_columns requires a text column for tagging
            y[name], tags = _encode_tagging(name, frame[name], lines, text_counts, MAX_TOKENS, file)
            specs[name] = TaskSpec(
                name, "tagging", num_classes=len(tags), class_names=tuple(tags),
                description=f"column '{name}' of {file.name}: {len(tags)} tags, one per word ({how})",
            )
    return y, specs


def _split_rows(
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


def _standardise_regression(
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


def _labelled_counts(
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
                f"({_where(lines[has])}), none of them in the training split (seed {seed}); "
                "label more rows of this column or drop it from targets"
            )
        for s in ("val", "test"):
            if counts[name][s] == 0:
                warnings.append(
                    f"task '{name}' has no labelled row in the {s} split; its {s} metrics are empty"
                )
    return counts


def from_csv(
    path: str | Path,
    *,
    targets: Sequence[str] | Mapping[str, str] | None = None,
    inputs: Sequence[str] | None = None,
    text_column: str | None = None,
    seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    max_bytes: int = DEFAULT_MAX_BYTES,
    min_rows: int = 1,
    max_classes: int = 20,
    standardise_targets: bool = True,
) -> MTLDataset:
    """Build a multi-task dataset from a CSV file; deterministic for a given seed.

    Args:
        path: a UTF-8, comma-separated file with the column names on its first line.
        targets: the columns to predict, one task each: a list (kinds inferred, see the
            module docstring) or a dict column -> "classification" | "regression" | "tagging".
        inputs: tabular input columns (default: every column that is neither a target nor
            the text column). Other columns are ignored.
        text_column: use this free-text column as the (token) input instead.
        seed: seeds the train/val/test split.
        val_fraction, test_fraction: shares of the rows held out for validation and test.
        max_bytes: larger files are refused (default `DEFAULT_MAX_BYTES`, 50 MiB).
        min_rows: fewest data rows accepted (the engine passes its batch size).
        max_classes: most distinct integer (or text) values for a target inferred as
            classification; an integer column with more is a regression target.
        standardise_targets: store regression targets as (y − mean) / std with the
            training rows' statistics (see the module docstring); False keeps raw units.

    Raises:
        DataError: the file cannot be used (message names file, column, lines and the fix).
        ConfigError: an argument is invalid whatever the file (an unknown kind, fractions).
    """
    _check_settings(val_fraction, test_fraction, max_bytes, min_rows, max_classes)
    file = Path(path).expanduser()
    table = _read_table(file, max_bytes)
    plan = _plan_columns(table.header, file, targets, inputs, text_column)
    frame, lines = table.frame, table.lines
    n = len(frame)
    if n == 0:
        raise DataError(f"CSV file '{file}' has a header but no data rows; add one row per example")
    if n < min_rows:
        raise DataError(
            f"CSV file '{file}' has {n} data rows, fewer than the batch size {min_rows} "
            "(min_rows); add rows or lower the batch size"
        )

    tokens: list[list[str]] | None = None
    text_counts = None
    if plan.text_column is not None:
        text = frame[plan.text_column]
        tokens = [str(c).split() if ok else [] for c, ok in zip(text.tolist(), text.notna().tolist())]
        text_counts = np.array([len(t) for t in tokens])

    kinds: dict[str, str] = {}
    for name, declared in plan.targets.items():
        if frame[name].isna().all():
            raise DataError(
                f"CSV file '{file}': target column '{name}' has no labels (its cells on lines "
                f"{lines[0]}-{lines[-1]} are all empty); fill it or drop it from targets"
            )
        kinds[name] = declared or _infer_kind(name, frame[name], lines, text_counts, max_classes, file)
    labelled = frame[list(plan.targets)].notna().any(axis=1).to_numpy()
    if labelled.sum() < 3:
        raise DataError(
            f"CSV file '{file}' has {int(labelled.sum())} labelled row(s) in its target columns "
            f"({', '.join(plan.targets)}); train, validation and test need at least one each: "
            "label at least 3 rows (more for a useful model)"
        )
    if min(_split_sizes(n, val_fraction, test_fraction)) < 1:
        fewest = _fewest_rows(val_fraction, test_fraction)
        need = f"it needs at least {fewest}" if fewest else "the fractions are too small"
        raise DataError(
            f"CSV file '{file}' has {n} data rows, too few to split into train/val/test with "
            f"val_fraction={val_fraction:g} and test_fraction={test_fraction:g}; {need}: add "
            "rows or change the fractions"
        )

    y, specs = _encode_targets(kinds, plan.targets, frame, lines, text_counts, file)
    warnings: list[str] = []
    splits, stratified_by = _split_rows(
        n, y, specs, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction, warnings=warnings
    )
    labelled_counts = _labelled_counts(y, splits, lines, seed=seed, file=file, warnings=warnings)
    # After the split and its checks (every task has a labelled training row), before tensors.
    scales = (
        _standardise_regression(y, specs, splits["train"], warnings=warnings) if standardise_targets else {}
    )
    info: dict = {
        "source": str(file.resolve()),
        "file_name": file.name,
        "sha256": table.sha256,
        "bytes": table.n_bytes,
        "seed": seed,
        "val_fraction": val_fraction,
        "test_fraction": test_fraction,
        "rows": n,
        "split_rows": {s: len(idx) for s, idx in splits.items()},
        "labelled": labelled_counts,
        "targets": {t: {"kind": k, "inferred": plan.targets[t] is None} for t, k in kinds.items()},
        "stratified_by": stratified_by,
        "standardise_targets": standardise_targets,
        # task -> {mean, std} of the training rows, in the column's units (empty: raw units)
        "target_scale": scales,
    }

    # Inputs last: their statistics (scaler, medians, categories, vocabulary) come from train rows.
    if tokens is not None:
        x, vocab, seq_len = _token_inputs(tokens, splits["train"], plan.text_column, file)
        for name, kind in kinds.items():
            if kind == "tagging":
                y[name] = y[name][:, :seq_len]
        empty = int((text_counts == 0).sum())
        if empty:
            warnings.append(
                f"text column '{plan.text_column}' is empty on {empty} row(s); they are all padding"
            )
        info.update(
            text_column=plan.text_column, max_len=seq_len, truncated_rows=int((text_counts > seq_len).sum())
        )
        input_kind, input_dim, feature_names = "tokens", 0, None
    else:
        x, feature_names, details = _vector_inputs(
            frame, plan.inputs, splits["train"], lines, file, warnings
        )
        info["inputs"] = {"numeric": details["numeric"], "categorical": details["categorical"]}
        info["imputed"] = details["imputed"]
        input_kind, input_dim, vocab = "vector", x.shape[1], None
    info["warnings"] = warnings
    for w in warnings:
        log.warning("%s: %s", file, w)

    x_t = torch.as_tensor(x)
    y_t = {t: torch.as_tensor(v) for t, v in y.items()}

    def split(rows: np.ndarray) -> Split:
        index = torch.as_tensor(rows, dtype=torch.long)
        return Split(x_t[index], {t: v[index] for t, v in y_t.items()})

    return MTLDataset(
        name="csv",
        input_kind=input_kind,
        tasks=specs,
        train=split(splits["train"]),
        val=split(splits["val"]),
        test=split(splits["test"]),
        input_dim=input_dim,
        vocab=vocab,
        feature_names=feature_names,
        info=info,
    )


def _task_names(opts: CSVOptions) -> list[str]:
    """Task names from the header alone (config validation), by the rules of `from_csv`."""
    file = Path(opts.path).expanduser()
    header = read_header(file, max_bytes=opts.max_bytes)
    plan = _plan_columns(header, file, opts.targets, opts.inputs, opts.text_column)
    return list(plan.targets)


@register_dataset(
    "csv",
    description="Your own CSV file: one row per example, one target column per task.",
    options=CSVOptions,
    task_names=_task_names,
)
def build_csv(opts: CSVOptions, seed: int) -> MTLDataset:
    return from_csv(
        opts.path,
        targets=opts.targets,
        inputs=opts.inputs,
        text_column=opts.text_column,
        seed=seed,
        val_fraction=opts.val_fraction,
        test_fraction=opts.test_fraction,
        max_bytes=opts.max_bytes,
        min_rows=opts.min_rows,
        max_classes=opts.max_classes,
        standardise_targets=opts.standardise_targets,
    )
