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


# The results table of an export, one row per task: what `mtl-lab show` prints, so that an
# exported table cannot hide what the terminal shows (issue 16, item 4). `trivial` is the test
# metric of the input-blind model (majority class / most frequent tag / training mean,
# `metrics.trivial_baseline`): a multi-task value no better than it is a collapse to the prior,
# whatever its accuracy. `metric_reason` says why the primary metric is macro-F1, not accuracy.
# The seed columns (`*_std`, `low`, `high`, `verdict`) are filled over several seeds. Results
# stored before these fields existed export the same rows with those cells empty.
RESULT_COLUMNS = (
    "name", "kind", "metric", "higher_is_better", "trivial_baseline", "trivial", "stl", "stl_std",
    "mtl", "mtl_std", "delta_pct", "low", "high", "verdict", "metric_reason",
)
RUN_COLUMNS = ("delta_m", "delta_m_verdict")  # the run's own figures, repeated on each row


def results_frame(result: dict[str, Any], run: dict[str, Any]) -> pd.DataFrame:
    """One row per task of a stored `result`: run id and name, the task's columns
    (`RESULT_COLUMNS`; missing fields are empty cells) and the run's Δm and its verdict."""
    tasks = result.get("tasks") if isinstance(result.get("tasks"), list) else []
    rows = []
    for task in tasks:
        if not isinstance(task, dict):
            continue
        trivial = task.get("trivial") if isinstance(task.get("trivial"), dict) else {}
        row = {k: task.get(k) for k in RESULT_COLUMNS}
        row["trivial_baseline"], row["trivial"] = trivial.get("name"), trivial.get("value")
        rows.append(row)
    df = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    for column in RUN_COLUMNS:
        df[column] = result.get(column)
    df.insert(0, "run_name", run.get("name"))
    df.insert(0, "run_id", run.get("id"))
    return df
