"""Reading a user's CSV file: bytes -> UTF-8 text -> records -> a table of string cells.

Each data row keeps the line it starts on, so that every message can name the first
offending lines (1-based, as a spreadsheet numbers them: the header is line 1). Every
problem raises `DataError` naming the file and saying how to fix it.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mtl_core.errors import DataError

DEFAULT_MAX_BYTES = 50 * 1024 * 1024  # 50 MiB: larger files are refused unless max_bytes is raised
# Cells that mean "no value" (after stripping whitespace), as spreadsheets and pandas write them.
MISSING_MARKERS = frozenset({"", "NA", "N/A", "n/a", "NaN", "nan", "NULL", "null", "#N/A"})
MAX_FIELD_CHARS = 1024 * 1024  # longest cell, in characters (Python's csv module stops at 131,072)
SHOW = 5  # offending lines named in a message
# A cell read as a number must fit the float32 tensors the engine trains on.
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass
class Table:
    """A parsed CSV: stripped string cells (None = missing) and each row's line number."""

    header: list[str]
    frame: pd.DataFrame
    lines: np.ndarray  # 1-based line on which each data row starts
    sha256: str
    n_bytes: int
    # True where a cell was empty (as opposed to a written marker such as NA): a multi-label
    # cell that is empty means "none of the labels", one marked NA "not labelled".
    blank: pd.DataFrame | None = None


def offending_lines(lines: Sequence[int], values: Sequence[object] | None = None) -> str:
    """'line 4' / "lines 4 ('abc'), 9 ('x') and 3 more": the first offending rows."""
    shown = []
    for i, line in enumerate(list(lines)[:SHOW]):
        if values is None:
            shown.append(str(line))
        else:
            text = str(values[i])
            shown.append(f"{line} ({text[:30] + '...' if len(text) > 30 else text!r})")
    more = f" and {len(lines) - SHOW} more" if len(lines) > SHOW else ""
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


def read_table(file: Path, max_bytes: int) -> Table:
    """The whole file as a `Table`; a missing cell (one of `MISSING_MARKERS`) is None."""
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
        shown = ", ".join(f"{ln} ({k} field{'s' if k != 1 else ''})" for ln, k in ragged[:SHOW])
        more = f" and {len(ragged) - SHOW} more" if len(ragged) > SHOW else ""
        raise DataError(
            f"CSV file '{file}': the header (line {header_line}) has {len(header)} columns but "
            f"line{'s' if len(ragged) > 1 else ''} {shown}{more} "
            f"{'do' if len(ragged) > 1 else 'does'} not; a field may contain an unquoted comma "
            "or a row may miss a cell: quote fields that contain commas and give every row "
            "one cell per column (empty is fine)"
        )
    frame = pd.DataFrame(rows, columns=header, dtype=object) if rows else pd.DataFrame(columns=header)
    blank = frame.eq("")
    frame = frame.where(~frame.isin(MISSING_MARKERS), None)
    return Table(header, frame, np.asarray(lines, dtype=np.int64), hashlib.sha256(data).hexdigest(), size, blank)
