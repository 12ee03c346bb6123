"""A sweep's trade-off between tasks: the Pareto plot (2 tasks, or one pair of 3) and the
weight-simplex ternary (3 tasks).

Both read `mtl_core.sweep.sweep_table`'s frames: `points` (run_id, label, strategy,
`w:<task>`, `val:<task>`, `test:<task>`, delta_m, is_front) and `tasks` (task, metric,
higher_is_better, baseline_val, baseline_test). Validation selects, test reports: the
points sit at their *test* metrics, the front is the set no point dominates on the
*validation* metrics (Pareto optimality in MTL: Sener & Koltun, 2018), drawn through its
points in the order of the x axis. A strategy that sets the weights itself (uncertainty,
pcgrad, nash_mtl, ...; its `w:` columns are NaN) is a labelled marker of its own: where
each balancing method lands against the weightings (the picture of Navon et al., 2022).

The charts' own words (legend entries, axis titles, hover lines) follow `lang`
(`dashboard.i18n`, keys `sweep.chart.*`); task, metric, strategy names and run ids are data,
only escaped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.charts.style import _LAYOUT, RUN_PALETTE, _color_of, task_colors
from dashboard.i18n import text
from dashboard.safe_text import plot
from mtl_core.pareto import pareto_front, pareto_mask

WEIGHTING_COLOR = "#4D4D4D"  # the manual weightings: a grey cloud, so the front and the strategies stand out
FRONT_COLOR = "#D55E00"
STRATEGY_SYMBOLS = ("diamond", "square", "triangle-up", "star", "cross", "pentagon", "hexagon", "x")


def _is_weighting(points: pd.DataFrame, tasks: Sequence[str]) -> np.ndarray:
    """Rows that trained with manual weights (their `w:` columns are numbers)."""
    cols = [f"w:{t}" for t in tasks if f"w:{t}" in points.columns]
    if not cols:
        return np.zeros(len(points), dtype=bool)
    return points[cols].notna().all(axis=1).to_numpy()


def _hover(row: Mapping[str, Any], tasks: Sequence[str], lang: str = "en") -> str:
    """The point's weights (or strategy), metrics and run id; every user string escaped."""
    weights = [f"w {plot(t)} = {row[f'w:{t}']:.3g}" for t in tasks
               if isinstance(row.get(f"w:{t}"), (int, float)) and not math.isnan(row[f"w:{t}"])]
    lines = [plot(row.get("label") or row.get("strategy") or "")]
    lines += weights or [text("sweep.chart.weights_set_by", lang, strategy=plot(row.get("strategy")))]
    for t in tasks:
        v, s = row.get(f"test:{t}"), row.get(f"val:{t}")
        if isinstance(v, (int, float)) and not math.isnan(v):
            lines.append(text("sweep.chart.task_scores", lang, task=plot(t), test=v, val=s))
    dm = row.get("delta_m")
    if isinstance(dm, (int, float)) and not math.isnan(dm):
        lines.append(f"Δm {dm:+.2f} %")
    lines.append(text("sweep.chart.run", lang, run_id=plot(row.get("run_id"))))
    return "<br>".join(lines)


def _axis_title(task: str, metric: str, higher: bool, *, horizontal: bool, lang: str = "en") -> str:
    way = ("right" if higher else "left") if horizontal else ("up" if higher else "down")
    better = text(f"sweep.chart.better_{way}", lang)
    return text("sweep.chart.axis", lang, task=plot(task), metric=plot(metric), better=better)


def front_order(points: pd.DataFrame, a: str, b: str, directions: Sequence[bool],
                *, front: Sequence[bool] | None = None) -> list[int]:
    """Row positions of the front of tasks (a, b), ordered along the x axis (a's test metric).

    `front` (e.g. the table's `is_front`) gives the members; otherwise they are the points
    no other point dominates on the validation metrics of a and b."""
    if front is None:
        vals = points[[f"val:{a}", f"val:{b}"]].to_numpy(dtype=float, copy=True)
        finished = (points["status"] == "finished").to_numpy() if "status" in points else np.ones(len(points), bool)
        vals[~finished] = np.nan
        members = pareto_front(vals, directions)
    else:
        members = np.flatnonzero(np.asarray(front, dtype=bool))
    x = points[f"test:{a}"].to_numpy(dtype=float)[members]
    return [int(i) for i in members[np.argsort(x, kind="stable")]]


def pareto_chart(
    points: pd.DataFrame, tasks: pd.DataFrame, *, pair: tuple[str, str] | None = None,
    colors: Mapping[str, str] | None = None, lang: str = "en",
) -> go.Figure:
    """Task a's test metric (x) against task b's (y): the weightings as a grey cloud, the
    validation front joined and highlighted, each task's single-task baseline as a dashed
    line, each adaptive strategy a labelled marker, an arrow to the better corner.

    `pair`: the two tasks to plot (default the first two of `tasks`). Every marker's
    `customdata` is its run id (the page opens the run a click selects)."""
    names = list(tasks["task"])
    if len(names) < 2:
        raise ValueError("a Pareto plot needs two tasks with results")
    a, b = pair or (names[0], names[1])
    info = tasks.set_index("task")
    ha, hb = bool(info.loc[a, "higher_is_better"]), bool(info.loc[b, "higher_is_better"])
    colors = dict(colors) if colors is not None else task_colors(names)
    done = points[points[f"test:{a}"].notna() & points[f"test:{b}"].notna()].reset_index(drop=True)
    weighting = _is_weighting(done, names)
    fig = go.Figure()

    cloud = done[weighting]
    fig.add_trace(go.Scatter(
        x=cloud[f"test:{a}"], y=cloud[f"test:{b}"], mode="markers", name=text("sweep.chart.weightings", lang),
        marker=dict(color=WEIGHTING_COLOR, size=9, opacity=0.55, line=dict(color="white", width=1)),
        customdata=cloud["run_id"], hovertext=[_hover(r, names, lang) for r in cloud.to_dict("records")],
        hoverinfo="text",
    ))

    all_of_pair = len(names) == 2 and "is_front" in done.columns
    order = front_order(done, a, b, [ha, hb], front=done["is_front"].to_numpy() if all_of_pair else None)
    front = done.iloc[order]
    # The members are chosen on validation and drawn at test: joined by a line only while they
    # are still a front there (none beats another on both tasks' test metrics); otherwise the
    # line would zigzag through points one of which beats another, so they are rings alone.
    at_test = front[[f"test:{a}", f"test:{b}"]].to_numpy(dtype=float)
    still_front = len(front) < 2 or bool(pareto_mask(at_test, [ha, hb]).all())
    fig.add_trace(go.Scatter(
        x=front[f"test:{a}"], y=front[f"test:{b}"], mode="lines+markers" if still_front else "markers",
        name=text("sweep.chart.front", lang),
        line=dict(color=FRONT_COLOR, width=2.5),
        marker=dict(color=FRONT_COLOR, size=12, symbol="circle-open", line=dict(width=2.5)),
        customdata=front["run_id"], hovertext=[_hover(r, names, lang) for r in front.to_dict("records")],
        hoverinfo="text",
    ))

    adaptive = done[~weighting]
    for i, (strategy, group) in enumerate(adaptive.groupby("strategy", sort=False)):
        fig.add_trace(go.Scatter(
            x=group[f"test:{a}"], y=group[f"test:{b}"], mode="markers+text", name=plot(strategy),
            text=[plot(strategy)] * len(group), textposition="top center",
            marker=dict(size=13, symbol=STRATEGY_SYMBOLS[i % len(STRATEGY_SYMBOLS)],
                        color=RUN_PALETTE[i % len(RUN_PALETTE)], line=dict(color="white", width=1)),
            customdata=group["run_id"], hovertext=[_hover(r, names, lang) for r in group.to_dict("records")],
            hoverinfo="text",
        ))

    # The single-task baselines as dashed lines across the data's span (traces, not shapes,
    # so that they are in the legend and can be hidden there).
    xs = [*done[f"test:{a}"], info.loc[a, "baseline_test"]]
    ys = [*done[f"test:{b}"], info.loc[b, "baseline_test"]]
    x_lo, x_hi = _span(xs)
    y_lo, y_hi = _span(ys)
    for task, horizontal in ((a, False), (b, True)):
        base = float(info.loc[task, "baseline_test"])
        if math.isnan(base):
            continue
        line = dict(x=[x_lo, x_hi], y=[base, base]) if horizontal else dict(x=[base, base], y=[y_lo, y_hi])
        fig.add_trace(go.Scatter(
            **line, mode="lines", name=text("sweep.chart.single_task", lang, task=plot(task)), hoverinfo="skip",
            line=dict(color=_color_of(task, colors), dash="dash", width=1.5),
        ))

    # An arrow into the corner where both tasks are best.
    fig.add_annotation(
        xref="paper", yref="paper", x=1.0 if ha else 0.0, y=1.0 if hb else 0.0,
        text=text("sweep.chart.better", lang),
        showarrow=True, arrowhead=2, arrowsize=1.2, ax=-50 if ha else 50, ay=50 if hb else -50,
        font=dict(color=FRONT_COLOR),
    )
    fig.update_layout(**{**_LAYOUT, "hovermode": "closest"}, height=480, clickmode="event+select",
                      xaxis_title=_axis_title(a, info.loc[a, "metric"], ha, horizontal=True, lang=lang),
                      yaxis_title=_axis_title(b, info.loc[b, "metric"], hb, horizontal=False, lang=lang))
    fig.update_xaxes(range=[x_lo, x_hi])
    fig.update_yaxes(range=[y_lo, y_hi])
    return fig


def _span(values: Sequence[Any]) -> tuple[float, float]:
    v = np.asarray([float(x) for x in values], dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return 0.0, 1.0
    lo, hi = float(v.min()), float(v.max())
    pad = (hi - lo) * 0.08 or abs(hi) * 0.05 or 0.05
    return lo - pad, hi + pad


def ternary_chart(points: pd.DataFrame, tasks: pd.DataFrame, *, lang: str = "en") -> go.Figure:
    """For 3 tasks: the weightings on the weight simplex (each normalised to Σ = 1), coloured
    by test Δm % (Maninis et al., 2019; higher is better), validation-front points ringed."""
    names = list(tasks["task"])[:3]
    if len(names) != 3:
        raise ValueError("a ternary plot needs three tasks")
    done = points[_is_weighting(points, names) & points["delta_m"].notna()].reset_index(drop=True)
    w = done[[f"w:{t}" for t in names]].to_numpy(dtype=float)
    total = w.sum(axis=1, keepdims=True)
    share = np.divide(w, total, out=np.full_like(w, 1 / 3), where=total > 0)
    front = done["is_front"].to_numpy(dtype=bool) if "is_front" in done else np.zeros(len(done), bool)
    fig = go.Figure(go.Scatterternary(
        a=share[:, 0], b=share[:, 1], c=share[:, 2], mode="markers",
        name=text("sweep.chart.simplex_weightings", lang),
        marker=dict(color=done["delta_m"], colorscale="Viridis", size=[15 if f else 11 for f in front],
                    line=dict(color=[FRONT_COLOR if f else "white" for f in front], width=[3 if f else 1 for f in front]),
                    colorbar=dict(title=text("sweep.chart.delta_m_scale", lang)), showscale=True),
        customdata=done["run_id"], hovertext=[_hover(r, names, lang) for r in done.to_dict("records")],
        hoverinfo="text",
    ))
    fig.update_layout(**{**_LAYOUT, "hovermode": "closest"}, height=480, clickmode="event+select",
                      ternary=dict(aaxis_title=f"w {plot(names[0])}", baxis_title=f"w {plot(names[1])}",
                                   caxis_title=f"w {plot(names[2])}"))
    return fig


def selected_run(event: Any, figure: go.Figure) -> str | None:
    """The run id of the point a click selected (`st.plotly_chart(..., on_select=...)`'s
    event): the point's customdata, or its trace's customdata at the point's index."""
    points = ((event or {}).get("selection") or {}).get("points") or []
    for p in points:
        value = p.get("customdata")
        if value:
            return str(value[0] if isinstance(value, list) else value)
        curve, index = p.get("curve_number"), p.get("point_index", p.get("point_number"))
        if curve is not None and index is not None and curve < len(figure.data):
            data = figure.data[curve].customdata
            if data is not None and index < len(data):
                return str(data[index])
    return None
