"""Pure chart builders: data (DataFrames, dicts, lists) -> plotly Figure.

Nothing here imports Streamlit or reads the store, so every chart is unit-tested
without a browser. Colour has one meaning everywhere (TensorFlow Playground's rule):
each task keeps its colour in every curve, bar, table and diagram, picked from a
colour-blind-safe palette by the task's position in the dataset's task list; blocks
shared by several tasks are always `SHARED_GREY`.

Curves take the run store's long metric table: columns phase ("mtl" or "stl:<task>"),
step, task (a task name or "total"), split ("train"/"val"/"test"), metric, value.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

# Okabe & Ito (2008) colour-blind-safe colours, then Tol's muted scheme for more tasks.
TASK_PALETTE: tuple[str, ...] = (
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9",
    "#882255", "#117733", "#999933", "#332288", "#AA4499", "#44AA99",
)
SHARED_GREY = "#8C8C8C"
TOTAL_COLOR = "#222222"
INPUT_COLOR = "#FFFFFF"
# Runs compared on one task's chart need colours of their own (the task's colour is
# the chart's title); plotly's Dark24 has enough distinct ones.
RUN_PALETTE: tuple[str, ...] = (
    "#2E91E5", "#E15F99", "#1CA71C", "#FB0D0D", "#DA16FF", "#222A2A", "#B68100",
    "#750D86", "#EB663B", "#511CFB", "#00A08B", "#FB00D1",
)
CONFLICT_FILL = "rgba(214, 39, 40, 0.08)"
BETTER_BG = "#d9f2d9"
WORSE_BG = "#f8d7d7"

_LAYOUT = dict(
    template="plotly_white",
    margin=dict(l=10, r=10, t=40, b=10),
    legend=dict(orientation="h", yanchor="top", y=-0.22, xanchor="left", x=0),
    hovermode="x unified",
)


# ---- colours and smoothing ------------------------------------------------------------
def task_colors(tasks: Sequence[str]) -> dict[str, str]:
    """One colour per task, by position: the same task order always gives the same colours.

    Pass the dataset's full task list (not only the ticked tasks) so that a task keeps
    its colour when others are left out.
    """
    return {t: TASK_PALETTE[i % len(TASK_PALETTE)] for i, t in enumerate(tasks)}


def _color_of(task: str, colors: Mapping[str, str]) -> str:
    if task in colors:
        return colors[task]
    return TASK_PALETTE[len(colors) % len(TASK_PALETTE)]


def ema(values: Sequence[float] | np.ndarray | pd.Series, smoothing: float) -> np.ndarray:
    """Exponential moving average with TensorBoard's debiasing, for display only.

    s_t = Σ_{i≤t} (1−α)^{t−i} x_i / Σ_{i≤t} (1−α)^{t−i} with α = 1 − smoothing: the
    average of the points so far, each weighted by smoothing^age. Dividing by the sum of
    the weights (pandas' `adjust=True`) removes the pull towards 0 of a zero-initialised
    EMA at the start of the curve. NaN points are skipped. smoothing = 0 returns the
    values unchanged; it is clipped to [0, 0.999].
    """
    x = pd.Series(np.asarray(values, dtype=float))
    if x.empty:
        return x.to_numpy()
    s = min(max(float(smoothing), 0.0), 0.999)
    if s == 0.0:
        return x.to_numpy()
    return x.ewm(alpha=1.0 - s, adjust=True, ignore_na=True).mean().to_numpy()


def _select(metrics: pd.DataFrame, **equals: Any) -> pd.DataFrame:
    if metrics is None or metrics.empty:
        return pd.DataFrame(columns=["phase", "step", "task", "split", "metric", "value"])
    mask = np.ones(len(metrics), dtype=bool)
    for column, value in equals.items():
        mask &= (metrics[column] == value).to_numpy()
    return metrics.loc[mask].sort_values("step", kind="stable")


# ---- training curves ------------------------------------------------------------------
def loss_curves(
    metrics: pd.DataFrame,
    tasks: Sequence[str],
    *,
    colors: Mapping[str, str] | None = None,
    smoothing: float = 0.0,
    log_y: bool = False,
    show_total: bool = True,
    show_baselines: bool = True,
) -> go.Figure:
    """Training loss (left) and validation loss (right) of the multi-task model per task.

    Left: each task's training loss and the weighted total Σ_t w_t L_t the optimiser
    sees. Right: each task's validation loss, with its single-task baseline's validation
    loss as a dashed line of the same colour (phase "stl:<task>").
    """
    colors = dict(colors) if colors is not None else task_colors(tasks)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("training loss", "validation loss"),
                        horizontal_spacing=0.08)
    for task in tasks:
        color = _color_of(task, colors)
        train = _select(metrics, phase="mtl", split="train", metric="loss", task=task)
        fig.add_trace(
            go.Scatter(
                x=train["step"], y=ema(train["value"], smoothing), mode="lines",
                name=f"{task} · train", legendgroup=task, line=dict(color=color, width=2),
            ),
            row=1, col=1,
        )
        val = _select(metrics, phase="mtl", split="val", metric="loss", task=task)
        fig.add_trace(
            go.Scatter(
                x=val["step"], y=val["value"], mode="lines+markers", name=f"{task} · val",
                legendgroup=task, line=dict(color=color, width=2), marker=dict(size=5),
            ),
            row=1, col=2,
        )
        if show_baselines:
            base = _select(metrics, phase=f"stl:{task}", split="val", metric="loss", task=task)
            if not base.empty:
                fig.add_trace(
                    go.Scatter(
                        x=base["step"], y=base["value"], mode="lines",
                        name=f"{task} · single-task val", legendgroup=task,
                        line=dict(color=color, width=2, dash="dash"), opacity=0.8,
                    ),
                    row=1, col=2,
                )
    if show_total:
        total = _select(metrics, phase="mtl", split="train", metric="loss", task="total")
        if not total.empty:
            fig.add_trace(
                go.Scatter(
                    x=total["step"], y=ema(total["value"], smoothing), mode="lines",
                    name="weighted total", legendgroup="total",
                    line=dict(color=TOTAL_COLOR, width=1.5, dash="dot"),
                ),
                row=1, col=1,
            )
    fig.update_layout(**_LAYOUT, height=420)
    fig.update_xaxes(title_text="step")
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def point_count(fig: go.Figure) -> int:
    """Number of plotted points in a figure (how far a live curve has grown)."""
    return int(sum(len(t.x) for t in fig.data if getattr(t, "x", None) is not None))


def weights_chart(
    metrics: pd.DataFrame, tasks: Sequence[str], *, colors: Mapping[str, str] | None = None
) -> go.Figure:
    """Effective per-task loss weight w_t over the steps (metric "weight" of phase "mtl")."""
    colors = dict(colors) if colors is not None else task_colors(tasks)
    fig = go.Figure()
    for task in tasks:
        w = _select(metrics, phase="mtl", split="train", metric="weight", task=task)
        fig.add_trace(
            go.Scatter(x=w["step"], y=w["value"], mode="lines", name=task,
                       line=dict(color=_color_of(task, colors), width=2))
        )
    fig.update_layout(**_LAYOUT, height=300, xaxis_title="step", yaxis_title="weight w_t")
    return fig


def overlay_chart(
    curves: Mapping[str, pd.DataFrame],
    *,
    title: str,
    y_title: str = "",
    smoothing: float = 0.0,
    title_color: str | None = None,
    log_y: bool = False,
) -> go.Figure:
    """Several runs' curves of one task on one chart: curves[label] has columns step, value."""
    fig = go.Figure()
    for i, (label, curve) in enumerate(curves.items()):
        curve = curve.sort_values("step") if not curve.empty else curve
        fig.add_trace(
            go.Scatter(
                x=curve["step"] if not curve.empty else [],
                y=ema(curve["value"], smoothing) if not curve.empty else [],
                mode="lines", name=label, line=dict(color=RUN_PALETTE[i % len(RUN_PALETTE)], width=2),
            )
        )
    fig.update_layout(**_LAYOUT, height=300, xaxis_title="step", yaxis_title=y_title,
                      title=dict(text=title, font=dict(color=title_color) if title_color else None))
    if log_y:
        fig.update_yaxes(type="log")
    return fig


# ---- results --------------------------------------------------------------------------
def comparison_bars(
    rows: Sequence[Mapping[str, Any]], *, colors: Mapping[str, str] | None = None
) -> go.Figure:
    """Single-task vs multi-task test metric, one panel per task (metrics differ in scale).

    `rows` are the result's "tasks" rows (name, metric, higher_is_better, stl, mtl).
    The single-task bar is the task's colour, faded and hatched; the multi-task bar solid.
    """
    names = [r["name"] for r in rows]
    colors = dict(colors) if colors is not None else task_colors(names)
    n = max(len(rows), 1)
    titles = [f"{r['name']} · {r['metric']} {'↑' if r.get('higher_is_better') else '↓'}" for r in rows]
    fig = make_subplots(rows=1, cols=n, subplot_titles=titles or None, horizontal_spacing=0.25 / n)
    for i, row in enumerate(rows, start=1):
        color = _color_of(row["name"], colors)
        stl, mtl = _num(row.get("stl")), _num(row.get("mtl"))
        fig.add_trace(
            go.Bar(
                x=["single-task", "multi-task"], y=[stl, mtl], name=row["name"],
                # the single-task bar faded and hatched, the multi-task bar solid
                marker=dict(color=[_lighten(color, 0.55), color], pattern=dict(shape=["/", ""])),
                marker_line=dict(color=color, width=1.5),
                text=[_fmt(stl), _fmt(mtl)], textposition="outside", showlegend=False,
                hovertemplate="%{x}: %{y:.4g}<extra>" + row["name"] + "</extra>",
            ),
            row=1, col=i,
        )
    fig.update_layout(**{**_LAYOUT, "hovermode": "closest"}, height=320, bargap=0.35)
    fig.update_yaxes(rangemode="tozero")
    return fig


def comparison_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The single- vs multi-task table as a DataFrame (values from the result, no maths)."""
    records = []
    for r in rows:
        delta = _num(r.get("delta_pct"))
        records.append(
            {
                "task": r["name"],
                "metric": f"{r['metric']} {'↑' if r.get('higher_is_better') else '↓'}",
                "single-task": _num(r.get("stl")),
                "multi-task": _num(r.get("mtl")),
                "Δ %": delta,
                "transfer": (
                    "—" if math.isnan(delta)
                    else "negative transfer" if delta < 0
                    else "positive transfer" if delta > 0
                    else "no change"
                ),
            }
        )
    return pd.DataFrame.from_records(
        records, columns=["task", "metric", "single-task", "multi-task", "Δ %", "transfer"]
    )


def style_comparison(frame: pd.DataFrame, *, colors: Mapping[str, str] | None = None):
    """pandas Styler of `comparison_frame`: multi-task cell and Δ % green where MTL is
    better, red where worse (the sign of Δ % already accounts for the metric's direction);
    the task cell carries the task's colour."""
    colors = dict(colors) if colors is not None else task_colors(list(frame["task"]))

    def row_style(row: pd.Series) -> list[str]:
        styles = [""] * len(row)
        delta = row["Δ %"]
        if isinstance(delta, (int, float)) and not math.isnan(delta) and delta != 0:
            bg = BETTER_BG if delta > 0 else WORSE_BG
            for col in ("multi-task", "Δ %", "transfer"):
                styles[list(row.index).index(col)] = f"background-color: {bg}"
        styles[list(row.index).index("task")] = (
            f"color: {_color_of(row['task'], colors)}; font-weight: bold"
        )
        return styles

    return (
        frame.style.apply(row_style, axis=1)
        .format({"single-task": _fmt, "multi-task": _fmt, "Δ %": lambda v: _fmt(v, signed=True)})
        .hide(axis="index")
    )


# ---- interference ---------------------------------------------------------------------
def cosine_heatmap(
    tasks: Sequence[str], grad_cosine: Sequence[Sequence[float]], *, colors: Mapping[str, str] | None = None,
    title: str = "gradient cosine between tasks",
) -> go.Figure:
    """Task × task cosine of the task gradients on the shared parameters (red: conflict)."""
    colors = dict(colors) if colors is not None else task_colors(tasks)
    z = np.asarray(grad_cosine, dtype=float)
    labels = [f"<span style='color:{_color_of(t, colors)}'><b>{t}</b></span>" for t in tasks]
    fig = go.Figure(
        go.Heatmap(
            z=z, x=list(tasks), y=list(tasks), zmin=-1.0, zmax=1.0, colorscale="RdBu",
            text=[[f"{v:+.2f}" for v in row] for row in z], texttemplate="%{text}",
            colorbar=dict(title="cos"), hovertemplate="%{y} · %{x}: %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(**{**_LAYOUT, "hovermode": "closest"}, height=120 + 60 * len(tasks), title=title)
    fig.update_xaxes(tickmode="array", tickvals=list(tasks), ticktext=labels, side="bottom")
    fig.update_yaxes(tickmode="array", tickvals=list(tasks), ticktext=labels, autorange="reversed")
    return fig


def _pairs(tasks: Sequence[str]) -> list[tuple[int, int]]:
    return [(i, j) for i in range(len(tasks)) for j in range(i + 1, len(tasks))]


def cosine_history_chart(
    snapshots: Sequence[Mapping[str, Any]], *, colors: Mapping[str, str] | None = None
) -> go.Figure:
    """Each task pair's gradient cosine over the evaluations; the cos < 0 band shaded.

    A pair's line has the first task's colour and markers of the second's.
    """
    fig = go.Figure()
    fig.add_hrect(y0=-1.0, y1=0.0, fillcolor=CONFLICT_FILL, line_width=0, layer="below",
                  annotation_text="conflict (cos < 0)", annotation_position="bottom left")
    if snapshots:
        tasks = list(snapshots[0]["tasks"])
        colors = dict(colors) if colors is not None else task_colors(tasks)
        steps = [s["step"] for s in snapshots]
        for i, j in _pairs(tasks):
            fig.add_trace(
                go.Scatter(
                    x=steps, y=[s["grad_cosine"][i][j] for s in snapshots], mode="lines+markers",
                    name=f"{tasks[i]} · {tasks[j]}",
                    line=dict(color=_color_of(tasks[i], colors), width=2),
                    marker=dict(color=_color_of(tasks[j], colors), size=7),
                )
            )
    fig.add_hline(y=0.0, line=dict(color=SHARED_GREY, width=1))
    fig.update_layout(**_LAYOUT, height=320, title="gradient cosine over training", showlegend=True,
                      xaxis_title="step", yaxis_title="cos", yaxis_range=[-1.05, 1.05])
    return fig


def grad_norm_chart(
    snapshots: Sequence[Mapping[str, Any]], *, colors: Mapping[str, str] | None = None, log_y: bool = False
) -> go.Figure:
    """Each task's gradient norm ‖∇_{θs} L_t‖ on the shared parameters over the evaluations."""
    fig = go.Figure()
    if snapshots:
        tasks = list(snapshots[0]["tasks"])
        colors = dict(colors) if colors is not None else task_colors(tasks)
        steps = [s["step"] for s in snapshots]
        for i, task in enumerate(tasks):
            fig.add_trace(
                go.Scatter(x=steps, y=[s["grad_norm"][i] for s in snapshots], mode="lines+markers",
                           name=task, line=dict(color=_color_of(task, colors), width=2))
            )
    fig.update_layout(**_LAYOUT, height=300, title="gradient norm per task (shared parameters)",
                      xaxis_title="step", yaxis_title="gradient norm", showlegend=True)
    if log_y:
        fig.update_yaxes(type="log")
    return fig


# ---- architecture diagram -------------------------------------------------------------
DIAGRAM_KINDS = ("shared", "separate", "soft", "cross_stitch", "attention", "experts", "hierarchical")


def architecture_diagram(
    diagram: str, tasks: Sequence[str], *, colors: Mapping[str, str] | None = None
) -> go.Figure:
    """A small block diagram of a sharing mode: input → encoder(s) → one head per task.

    Grey blocks are shared by every task, coloured blocks belong to one task. `diagram` is
    the sharing mode's `diagram` entry: "shared" (one encoder for all), "separate" (one
    encoder per task), "soft" (one per task, tied by an L2 pull), "cross_stitch" (one per
    task, mixed by learned α units), "attention" (shared encoder, one attention module per
    task), "experts" (shared experts mixed by one gate per task), "hierarchical" (tasks
    branch off a shared stack at different depths). Unknown kinds are drawn as "shared".
    """
    tasks = list(tasks) or ["task"]
    colors = dict(colors) if colors is not None else task_colors(tasks)
    n = len(tasks)
    fig = go.Figure()
    ys = [n - 1 - k for k in range(n)]  # first task on top
    mid = (n - 1) / 2
    head_x = 4.8

    def box(x0: float, y: float, label: str, fill: str, *, width: float = 1.4, height: float = 0.64,
            font: str = "white") -> None:
        fig.add_shape(type="rect", x0=x0, x1=x0 + width, y0=y - height / 2, y1=y + height / 2,
                      fillcolor=fill, line=dict(color="#555555", width=1))
        fig.add_annotation(x=x0 + width / 2, y=y, text=label, showarrow=False, font=dict(color=font, size=11))

    def arrow(x0: float, y0: float, x1: float, y1: float) -> None:
        fig.add_annotation(x=x1, y=y1, ax=x0, ay=y0, xref="x", yref="y", axref="x", ayref="y",
                           showarrow=True, arrowhead=2, arrowsize=1, arrowwidth=1.2, arrowcolor="#777777",
                           text="")

    def link(x0: float, y0: float, x1: float, y1: float) -> None:
        fig.add_shape(type="line", x0=x0, x1=x1, y0=y0, y1=y1,
                      line=dict(color=SHARED_GREY, width=3, dash="dot"))

    def heads(from_x: float, from_ys: Sequence[float]) -> None:
        for task, y, y_from in zip(tasks, ys, from_ys):
            box(head_x, y, f"head {task}", _color_of(task, colors), width=1.3)
            arrow(from_x, y_from, head_x, y)

    box(0.0, mid, "input x", INPUT_COLOR, width=1.1, font="#333333")
    kind = diagram if diagram in DIAGRAM_KINDS else "shared"
    if kind == "shared":
        box(1.8, mid, "shared<br>encoder θs", SHARED_GREY, width=1.8)
        arrow(1.1, mid, 1.8, mid)
        heads(3.6, [mid] * n)
    elif kind == "attention":
        box(1.6, mid, "shared<br>encoder", SHARED_GREY, width=1.2)
        arrow(1.1, mid, 1.6, mid)
        for task, y in zip(tasks, ys):
            box(3.2, y, f"attention<br>{task}", _color_of(task, colors), width=1.1)
            arrow(2.8, mid, 3.2, y)
        heads(4.3, ys)
    elif kind == "experts":
        k = 3
        expert_ys = [mid + (k - 1) / 2 - e for e in range(k)] if n > 1 else [0.25, 0.0, -0.25]
        for e, y in enumerate(expert_ys):
            box(1.6, y, f"expert {e + 1}", SHARED_GREY, width=1.1, height=min(0.5, 0.9 * max(n, 1) / k))
            arrow(1.1, mid, 1.6, y)
        for task, y in zip(tasks, ys):
            box(3.2, y, f"gate {task}", _color_of(task, colors), width=1.0)
            for ey in expert_ys:
                fig.add_shape(type="line", x0=2.7, x1=3.2, y0=ey, y1=y,
                              line=dict(color=SHARED_GREY, width=1))
        heads(4.2, ys)
    elif kind == "hierarchical":
        depth = min(max(n, 2), 3)
        for d in range(depth):
            box(1.6 + d * 1.0, mid, f"layer {d + 1}", SHARED_GREY, width=0.8)
            arrow(1.1 + d * 1.0 if d else 1.1, mid, 1.6 + d * 1.0, mid)
        for i, (task, y) in enumerate(zip(tasks, ys)):
            d = min(i, depth - 1)  # earlier (lower-level) tasks branch off lower layers
            box(head_x, y, f"head {task}", _color_of(task, colors), width=1.3)
            # Branch from the layer's top or bottom edge, so no arrow crosses a later layer.
            if y > mid:
                arrow(2.0 + d * 1.0, mid + 0.32, head_x, y)
            elif y < mid:
                arrow(2.0 + d * 1.0, mid - 0.32, head_x, y)
            else:
                arrow(2.4 + (depth - 1) * 1.0, mid, head_x, y)
    else:  # separate, soft, cross_stitch: one encoder per task
        for task, y in zip(tasks, ys):
            box(1.8, y, f"encoder<br>θ {task}", _color_of(task, colors), width=1.8)
            arrow(1.1, mid, 1.8, y)
        heads(3.6, ys)
        if kind == "soft" and n > 1:
            for a, b in zip(ys[:-1], ys[1:]):
                link(2.7, a - 0.32, 2.7, b + 0.32)
            fig.add_annotation(x=3.7, y=(ys[0] + ys[1]) / 2, text="λ‖θt − θ̄‖²", showarrow=False,
                               font=dict(color=SHARED_GREY, size=11), xanchor="left",
                               bgcolor="rgba(255,255,255,0.85)")
        if kind == "cross_stitch" and n > 1:
            for a, b in zip(ys[:-1], ys[1:]):  # each unit mixes neighbouring tasks' features
                link(2.2, a - 0.32, 3.2, b + 0.32)
                link(3.2, a - 0.32, 2.2, b + 0.32)
            fig.add_annotation(x=3.7, y=(ys[0] + ys[1]) / 2, text="α mixing", showarrow=False,
                               font=dict(color=SHARED_GREY, size=11), xanchor="left",
                               bgcolor="rgba(255,255,255,0.85)")
    fig.update_layout(
        template="plotly_white", height=70 + 60 * n, margin=dict(l=5, r=5, t=5, b=5), showlegend=False,
        xaxis=dict(visible=False, range=[-0.1, 6.2], fixedrange=True),
        yaxis=dict(visible=False, range=[-0.6, n - 0.4], fixedrange=True),
    )
    return fig


# ---- small helpers --------------------------------------------------------------------
def _num(value: Any) -> float:
    try:
        return float(value) if value is not None else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def _fmt(value: Any, *, signed: bool = False) -> str:
    v = _num(value)
    if math.isnan(v):
        return "—"
    return f"{v:+.2f}" if signed else f"{v:.4g}"


def _lighten(color: str, amount: float) -> str:
    """Mix a #rrggbb colour with white (amount 0: unchanged, 1: white)."""
    c = color.lstrip("#")
    r, g, b = (int(c[k : k + 2], 16) for k in (0, 2, 4))
    mix = lambda v: round(v + (255 - v) * amount)  # noqa: E731
    return f"#{mix(r):02x}{mix(g):02x}{mix(b):02x}"

