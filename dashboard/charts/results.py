"""The Results page's single- vs multi-task comparison: the bars (`comparison_bars`) and
the table (`comparison_frame`, coloured by `style_comparison`). Values come from the
run's results JSON; verdicts from the engine (`dashboard.verdicts` shows them)."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard import verdicts
from dashboard.i18n import text
from dashboard.charts.style import _LAYOUT, _color_of, _fmt, _lighten, _num, task_colors
from dashboard.safe_text import md, plot


def comparison_bars(
    rows: Sequence[Mapping[str, Any]], *, colors: Mapping[str, str] | None = None, lang: str = "en"
) -> go.Figure:
    """Single-task vs multi-task test metric, one panel per task (metrics differ in scale).

    `rows` are the result's "tasks" rows (name, metric, higher_is_better, stl, mtl).
    The single-task bar is the task's colour, faded and hatched; the multi-task bar solid.
    The bars' labels are in `lang`.
    """
    names = [r["name"] for r in rows]
    colors = dict(colors) if colors is not None else task_colors(names)
    n = max(len(rows), 1)
    titles = [plot(f"{r['name']} · {r['metric']} {'↑' if r.get('higher_is_better') else '↓'}") for r in rows]
    fig = make_subplots(rows=1, cols=n, subplot_titles=titles or None, horizontal_spacing=0.25 / n)
    for i, row in enumerate(rows, start=1):
        color = _color_of(row["name"], colors)
        stl, mtl = _num(row.get("stl")), _num(row.get("mtl"))
        spread = [_num(row.get("stl_std")), _num(row.get("mtl_std"))]
        seeded = int(row.get("n_seeds") or 1) > 1 and not all(math.isnan(v) for v in spread)
        fig.add_trace(
            go.Bar(
                x=[text("results.col.single_task", lang), text("results.col.multi_task", lang)], y=[stl, mtl],
                name=plot(row["name"]),
                # ± one standard deviation over the seeds, when there were several
                error_y=dict(type="data", array=spread, color="#444444", thickness=1.5) if seeded else None,
                # the single-task bar faded and hatched, the multi-task bar solid
                marker=dict(color=[_lighten(color, 0.55), color], pattern=dict(shape=["/", ""])),
                marker_line=dict(color=color, width=1.5),
                text=[_fmt(stl), _fmt(mtl)], textposition="outside", showlegend=False,
                # the name by reference: a name spliced into the template would be parsed as one (`%{…}`)
                hovertemplate="%{x}: %{y:.4g}<extra>%{fullData.name}</extra>",
            ),
            row=1, col=i,
        )
    fig.update_layout(**{**_LAYOUT, "hovermode": "closest"}, height=320, bargap=0.35)
    fig.update_yaxes(rangemode="tozero")
    return fig


NO_CLEAR = verdicts.NO_CLEAR
TRIVIAL_COL = "trivial baseline"


def _seeded(rows: Sequence[Mapping[str, Any]]) -> bool:
    return any(int(r.get("n_seeds") or 1) > 1 for r in rows)


def comparison_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The single- vs multi-task table as a DataFrame (values from the result, no maths).

    "transfer" holds the engine's noise-aware verdict ("helped", "hurt", "no clear
    difference"; `dashboard.verdicts`), "—" where the run has none: a sign alone is not
    a verdict. Where the rows carry intervals, the interval of the paired difference
    (multi-task − single-task in the metric's units, > 0 = multi-task better) is a column;
    a run of several seeds (`n_seeds` > 1) adds a std column beside each mean. "trivial
    baseline" is the test metric of a model that ignores its input (majority class, most
    frequent tag or training mean; `metrics.trivial_baseline`), where the result has it.
    """
    seeded = _seeded(rows)
    trivial = any(isinstance(r.get("trivial"), Mapping) for r in rows)  # results before issue 16: none
    bounds = [verdicts.interval_bounds(r.get("interval")) for r in rows]
    level = next((b[2] for b in bounds if b is not None), None)
    interval_col = f"{level * 100:g} % interval" if level is not None else None
    records = []
    for r in rows:
        record = {
            "task": r["name"],
            "metric": f"{r['metric']} {'↑' if r.get('higher_is_better') else '↓'}",
            "single-task": _num(r.get("stl")),
            "multi-task": _num(r.get("mtl")),
            "Δ %": _num(r.get("delta_pct")),
            "transfer": verdicts.task_verdict(r) or "—",
        }
        if trivial:
            record[TRIVIAL_COL] = _num((r.get("trivial") or {}).get("value"))
        if interval_col:
            record[interval_col] = verdicts.interval_text(r.get("interval"), label=False) or "—"
        if seeded:
            record["single-task std"] = _num(r.get("stl_std"))
            record["multi-task std"] = _num(r.get("mtl_std"))
        records.append(record)
    columns = (["task", "metric", "single-task", "single-task std", "multi-task", "multi-task std", "Δ %"]
               if seeded else ["task", "metric", "single-task", "multi-task", "Δ %"])
    columns += ([interval_col] if interval_col else []) + ["transfer"] + ([TRIVIAL_COL] if trivial else [])
    return pd.DataFrame.from_records(records, columns=columns)


# The table's column names (the data's, English, as exports and tests read them) -> catalogue key
# of the header shown.
HEADER_KEYS = {
    "task": "results.col.task", "metric": "results.col.metric", "single-task": "results.col.single_task",
    "single-task std": "results.col.single_task_std", "multi-task": "results.col.multi_task",
    "multi-task std": "results.col.multi_task_std", "Δ %": "results.col.delta", "transfer": "results.col.transfer",
    TRIVIAL_COL: "results.col.trivial",
}
_INTERVAL_SUFFIX = " % interval"


def header(column: str, lang: str = "en") -> str:
    """The header a reader of `lang` sees over a `comparison_frame` column."""
    if column.endswith(_INTERVAL_SUFFIX):
        return text("results.col.interval", lang, level=column[: -len(_INTERVAL_SUFFIX)])
    return text(HEADER_KEYS[column], lang) if column in HEADER_KEYS else column


def style_comparison(frame: pd.DataFrame, *, colors: Mapping[str, str] | None = None, lang: str = "en"):
    """pandas Styler of `comparison_frame`: the multi-task, Δ %, interval and transfer cells
    take the verdict's colour (`dashboard.verdicts`: green "helped", red "hurt", grey "no
    clear difference", none without a verdict), never the sign of Δ % alone; the task cell
    carries the task's colour. Headers and verdict words are shown in `lang`; the cells'
    values stay the data's (English verdicts), which the colours are read from."""
    colors = dict(colors) if colors is not None else task_colors(list(frame["task"]))
    # Streamlit takes a table's headers from the data, not from the Styler: rename the columns.
    h = {c: header(c, lang) for c in frame.columns}
    painted = [h[c] for c in frame.columns if c in ("multi-task", "Δ %", "transfer") or c.endswith("% interval")]

    def row_style(row: pd.Series) -> list[str]:
        bg = verdicts.background(row[h["transfer"]])
        styles = [f"background-color: {bg}" if bg and col in painted else "" for col in row.index]
        styles[list(row.index).index(h["task"])] = (
            f"color: {_color_of(row[h['task']], colors)}; font-weight: bold"
        )
        return styles

    std = lambda v: "—" if math.isnan(_num(v)) else f"± {_num(v):.2g}"  # noqa: E731
    said = lambda v: md(verdicts.word(v, lang) if v in verdicts.TASK_VERDICTS else v)  # noqa: E731
    formats = {"task": md, "metric": md, "transfer": said,
               "single-task": _fmt, "multi-task": _fmt, "Δ %": lambda v: _fmt(v, signed=True),
               TRIVIAL_COL: _fmt, "single-task std": std, "multi-task std": std}
    # st.table renders its cells as Markdown: the shown text is escaped, while the colour
    # lookup above still sees the raw task name.
    return (
        frame.rename(columns=h).style.apply(row_style, axis=1)
        .format({h[c]: f for c, f in formats.items() if c in h})
        .hide(axis="index")
    )
