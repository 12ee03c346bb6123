"""Exports that are safe to open in a spreadsheet.

A CSV cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is read by
Excel, LibreOffice and Google Sheets as a formula ("CSV injection"). Task names are CSV
column headers a stranger may have written, and run names are free text, so every text
cell and header of an export is prefixed with a single quote when it starts with one of
those characters (OWASP, "CSV Injection"). Numbers are left as numbers: -0.5 is data.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe_cell(value: Any) -> Any:
    """`value`, with a leading `'` if it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` whose text cells and column names cannot start a formula."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(spreadsheet_safe_cell)
    out.columns = [spreadsheet_safe_cell(str(c)) if isinstance(c, str) else c for c in out.columns]
    return out


def to_safe_csv(frame: pd.DataFrame, **kwargs: Any) -> str:
    """`frame` as CSV text (no index unless asked), every cell spreadsheet-safe."""
    kwargs.setdefault("index", False)
    return spreadsheet_safe(frame).to_csv(**kwargs)
