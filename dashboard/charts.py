"""Pure chart builders: data (DataFrames, dicts, lists) -> plotly Figure.

Nothing here imports Streamlit or reads the store, so every chart is unit-tested
without a browser. Colour has one meaning everywhere (TensorFlow Playground's rule):
each task keeps its colour in every curve, bar, table and diagram, picked from a
colour-blind-safe palette by the task's position in the dataset's task list; blocks
shared by several tasks are always `SHARED_GREY`.

Task, expert and run names are data (a task name is a CSV column header anyone may have
written): every builder passes them through `safe_text.plot` where plotly would render
them (trace names, titles, tick labels, annotations, hover texts), and colours stay keyed
by the raw name.

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

from dashboard import verdicts
from dashboard.safe_text import md, plot
from mtl_core.phases import ARM_LABELS, MTL, Phase  # ARM_LABELS: one home, used here and by pages

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
BETTER_BG = verdicts.GOOD_BG  # a clear gain (dashboard.verdicts holds the verdict colours)
WORSE_BG = verdicts.BAD_BG

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
# Points per curve drawn at most: a long run's curve is thinned (every k-th point, the last
# always kept) so a live redraw costs the same at step 600 and at step 60,000.
MAX_CURVE_POINTS = 500


def thin(steps: np.ndarray, values: np.ndarray, max_points: int = MAX_CURVE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most `max_points` evenly spaced points of a curve, its first and last kept."""
    n = len(steps)
    if max_points <= 0 or n <= max_points:
        return steps, values
    keep = np.unique(np.linspace(0, n - 1, max_points).round().astype(int))
    return steps[keep], values[keep]


class _Curves:
    """The long-form metrics split once by (phase, split, metric, task): a figure with many
    curves reads each with a dict lookup instead of a scan of the whole frame."""

    KEY = ["phase", "split", "metric", "task"]

    def __init__(self, metrics: pd.DataFrame | None) -> None:
        if metrics is None or metrics.empty:
            self.groups: dict[tuple, pd.DataFrame] = {}
        else:
            self.groups = {key: df for key, df in metrics.groupby(self.KEY, sort=False)}

    def get(self, smoothing: float = 0.0, **equals: Any) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of one curve, smoothed on every point and then thinned for drawing."""
        df = self.groups.get(tuple(equals[k] for k in self.KEY))
        if df is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        df = df.sort_values("step", kind="stable")
        return thin(df["step"].to_numpy(), ema(df["value"], smoothing))


def loss_curves(
    metrics: pd.DataFrame,
    tasks: Sequence[str],
    *,
    colors: Mapping[str, str] | None = None,
    smoothing: float = 0.0,
    log_y: bool = False,
    show_total: bool = True,
    show_baselines: bool = True,
    reuse: go.Figure | None = None,
) -> go.Figure:
    """Training loss (left) and validation loss (right) of the multi-task model per task.

    Left: each task's training loss and the weighted total Σ_t w_t L_t the optimiser
    sees. Right: each task's validation loss. With `show_baselines`, each task's single-task
    baseline (phase "stl:<task>") is drawn beside it as a dashed line of the same colour on
    both sides, so its curves show while the baselines train, before the multi-task model
    starts. Curves longer than MAX_CURVE_POINTS are thinned for drawing.

    `reuse`: the figure this function returned at the previous poll of a live view. When it
    has the same traces and settings, only their points are replaced (a few ms, instead of
    the ~100 ms a new plotly figure costs) and it is returned.
    """
    colors = dict(colors) if colors is not None else task_colors(tasks)
    curves = _Curves(metrics)
    traces: list[tuple[dict[str, Any], int, tuple[np.ndarray, np.ndarray]]] = []
    for task in tasks:
        color = _color_of(task, colors)
        base_phase = Phase.stl(task).format()
        train = curves.get(smoothing, phase=MTL, split="train", metric="loss", task=task)
        traces.append((dict(mode="lines", name=plot(f"{task} · train"), legendgroup=plot(task),
                            line=dict(color=color, width=2)), 1, train))
        if show_baselines:
            base = curves.get(smoothing, phase=base_phase, split="train", metric="loss", task=task)
            if len(base[0]):
                traces.append((dict(mode="lines", name=plot(f"{task} · single-task train"),
                                    legendgroup=plot(task), line=dict(color=color, width=1.5, dash="dash"),
                                    opacity=0.6), 1, base))
        val = curves.get(phase=MTL, split="val", metric="loss", task=task)
        traces.append((dict(mode="lines+markers", name=plot(f"{task} · val"), legendgroup=plot(task),
                            line=dict(color=color, width=2), marker=dict(size=5)), 2, val))
        if show_baselines:
            base = curves.get(phase=base_phase, split="val", metric="loss", task=task)
            if len(base[0]):
                traces.append((dict(mode="lines", name=plot(f"{task} · single-task val"),
                                    legendgroup=plot(task), line=dict(color=color, width=2, dash="dash"),
                                    opacity=0.8), 2, base))
    if show_total:
        total = curves.get(smoothing, phase=MTL, split="train", metric="loss", task="total")
        if len(total[0]):
            traces.append((dict(mode="lines", name="weighted total", legendgroup="total",
                                line=dict(color=TOTAL_COLOR, width=1.5, dash="dot")), 1, total))

    signature = ([(spec["name"], col) for spec, col, _ in traces], log_y)
    if reuse is not None and getattr(reuse, "_mtl_signature", None) == signature:
        with reuse.batch_update():
            for trace, (_, _, (x, y)) in zip(reuse.data, traces):
                trace.x, trace.y = x, y
        return reuse
    fig = make_subplots(rows=1, cols=2, subplot_titles=("training loss", "validation loss"),
                        horizontal_spacing=0.08)
    for spec, col, (x, y) in traces:
        fig.add_trace(go.Scatter(x=x, y=y, **spec), row=1, col=col)
    fig.update_layout(**_LAYOUT, height=420)
    fig.update_xaxes(title_text="step")
    if log_y:
        fig.update_yaxes(type="log")
    fig._mtl_signature = signature
    return fig


def point_count(fig: go.Figure) -> int:
    """Number of plotted points in a figure (how far a live curve has grown)."""
    return int(sum(len(t.x) for t in fig.data if getattr(t, "x", None) is not None))


def weights_chart(
    metrics: pd.DataFrame, tasks: Sequence[str], *, colors: Mapping[str, str] | None = None, share: bool = True,
) -> go.Figure:
    """Effective per-task loss weight w_t over the steps (metric "weight" of phase "mtl").

    `share` (default): each task's share of the total, w_t / Σ_s w_s at each logged step. A
    gradient method's effective weights (∂objective/∂L_t) are on a scale of its own — MGDA's
    sum to 1, Nash-MTL's to a fraction, PCGrad's grow with the gradient norms — so raw values
    cannot be read against manual weights; the shares can. `share=False`: the raw values.
    """
    colors = dict(colors) if colors is not None else task_colors(tasks)
    curves = {t: _select(metrics, phase=MTL, split="train", metric="weight", task=t) for t in tasks}
    total = None
    if share:
        frames = [c.set_index("step")["value"] for c in curves.values() if not c.empty]
        if frames:
            total = pd.concat(frames, axis=1).sum(axis=1, min_count=1)
            total = total.where(total.abs() > 0)  # all-zero steps: no share
    fig = go.Figure()
    for task, w in curves.items():
        y = w["value"].to_numpy(dtype=float)
        if total is not None and not w.empty:
            y = y / total.reindex(w["step"]).to_numpy(dtype=float)
        fig.add_trace(
            go.Scatter(x=w["step"], y=y, mode="lines", name=plot(task),
                       line=dict(color=_color_of(task, colors), width=2))
        )
    fig.update_layout(**_LAYOUT, height=300, xaxis_title="step",
                      yaxis_title="share of the weights w_t / Σ w" if share else "weight w_t")
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
                mode="lines", name=plot(label), line=dict(color=RUN_PALETTE[i % len(RUN_PALETTE)], width=2),
            )
        )
    fig.update_layout(**_LAYOUT, height=300, xaxis_title="step", yaxis_title=plot(y_title),
                      title=dict(text=plot(title), font=dict(color=title_color) if title_color else None))
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
    titles = [plot(f"{r['name']} · {r['metric']} {'↑' if r.get('higher_is_better') else '↓'}") for r in rows]
    fig = make_subplots(rows=1, cols=n, subplot_titles=titles or None, horizontal_spacing=0.25 / n)
    for i, row in enumerate(rows, start=1):
        color = _color_of(row["name"], colors)
        stl, mtl = _num(row.get("stl")), _num(row.get("mtl"))
        spread = [_num(row.get("stl_std")), _num(row.get("mtl_std"))]
        seeded = int(row.get("n_seeds") or 1) > 1 and not all(math.isnan(v) for v in spread)
        fig.add_trace(
            go.Bar(
                x=["single-task", "multi-task"], y=[stl, mtl], name=plot(row["name"]),
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


def _seeded(rows: Sequence[Mapping[str, Any]]) -> bool:
    return any(int(r.get("n_seeds") or 1) > 1 for r in rows)


def comparison_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The single- vs multi-task table as a DataFrame (values from the result, no maths).

    "transfer" holds the engine's noise-aware verdict ("helped", "hurt", "no clear
    difference"; `dashboard.verdicts`), "—" where the run has none: a sign alone is not
    a verdict. Where the rows carry intervals, the interval of the paired difference
    (multi-task − single-task in the metric's units, > 0 = multi-task better) is a column;
    a run of several seeds (`n_seeds` > 1) adds a std column beside each mean.
    """
    seeded = _seeded(rows)
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
        if interval_col:
            record[interval_col] = verdicts.interval_text(r.get("interval"), label=False) or "—"
        if seeded:
            record["single-task std"] = _num(r.get("stl_std"))
            record["multi-task std"] = _num(r.get("mtl_std"))
        records.append(record)
    columns = (["task", "metric", "single-task", "single-task std", "multi-task", "multi-task std", "Δ %"]
               if seeded else ["task", "metric", "single-task", "multi-task", "Δ %"])
    columns += ([interval_col] if interval_col else []) + ["transfer"]
    return pd.DataFrame.from_records(records, columns=columns)


def style_comparison(frame: pd.DataFrame, *, colors: Mapping[str, str] | None = None):
    """pandas Styler of `comparison_frame`: the multi-task, Δ %, interval and transfer cells
    take the verdict's colour (`dashboard.verdicts`: green "helped", red "hurt", grey "no
    clear difference", none without a verdict), never the sign of Δ % alone; the task cell
    carries the task's colour."""
    colors = dict(colors) if colors is not None else task_colors(list(frame["task"]))
    painted = [c for c in frame.columns if c in ("multi-task", "Δ %", "transfer") or c.endswith("% interval")]

    def row_style(row: pd.Series) -> list[str]:
        bg = verdicts.background(row["transfer"])
        styles = [f"background-color: {bg}" if bg and col in painted else "" for col in row.index]
        styles[list(row.index).index("task")] = (
            f"color: {_color_of(row['task'], colors)}; font-weight: bold"
        )
        return styles

    std = lambda v: "—" if math.isnan(_num(v)) else f"± {_num(v):.2g}"  # noqa: E731
    # st.table renders its cells as Markdown: the shown text is escaped, while the colour
    # lookup above still sees the raw task name.
    return (
        frame.style.apply(row_style, axis=1)
        .format({"task": md, "metric": md, "transfer": md,
                 "single-task": _fmt, "multi-task": _fmt, "Δ %": lambda v: _fmt(v, signed=True),
                 **{c: std for c in ("single-task std", "multi-task std") if c in frame.columns}})
        .hide(axis="index")
    )


# ---- expert gates (MMoE, CGC, PLE) -------------------------------------------------------
# Experts every task's gate can pick ("expert 2", "shared 1") take these colours, by name
# order; an expert that belongs to one task ("y1 2" in CGC/PLE) takes that task's colour,
# lighter for each further expert of it.
EXPERT_PALETTE: tuple[str, ...] = (
    "#4D4D4D", "#8C8C8C", "#B8B8B8", "#2F4F6F", "#6F8FAF", "#A6BDD7", "#5C4033", "#A67B5B",
)


def expert_colors(experts: Sequence[str], tasks: Sequence[str], *,
                  colors: Mapping[str, str] | None = None) -> dict[str, str]:
    """One colour per expert name: shared experts greys and slate blues (grey means shared
    in every diagram), a task's own experts shades of the task's colour."""
    colors = dict(colors) if colors is not None else task_colors(tasks)
    out: dict[str, str] = {}
    shared = 0
    own: dict[str, int] = {}
    for name in experts:
        owner = next((t for t in tasks if name.startswith(f"{t} ")), None)
        if owner is not None:
            k = own.get(owner, 0)
            own[owner] = k + 1
            base = _color_of(owner, colors)
            out[name] = _lighten(base, min(0.25 * k, 0.7)) if k else base
        else:
            out[name] = EXPERT_PALETTE[shared % len(EXPERT_PALETTE)]
            shared += 1
    return out


def _expert_order(gates: Mapping[str, Mapping[str, float]]) -> list[str]:
    return list(dict.fromkeys(e for per_task in gates.values() for e in per_task))


def gates_bars(
    gates: Mapping[str, Mapping[str, float]], *, colors: Mapping[str, str] | None = None
) -> go.Figure:
    """Each task's mean gate weight per expert as one stacked horizontal bar (sums to 1).

    gates[task][expert] is the softmax gate of MMoE (Ma et al., 2018) or CGC/PLE (Tang et
    al., 2020) averaged over a batch: which experts each task reads. One trace per expert,
    so an expert has the same colour in every task's bar.
    """
    tasks = list(gates)
    experts = _expert_order(gates)
    ecolors = expert_colors(experts, tasks, colors=colors)
    fig = go.Figure()
    shown = [plot(t) for t in tasks]  # the categories are the shown (escaped) names
    for expert in experts:
        values = [float(gates[t].get(expert, 0.0)) for t in tasks]
        fig.add_trace(go.Bar(
            y=shown, x=values, name=plot(expert), orientation="h", marker=dict(color=ecolors[expert]),
            text=[f"{v:.2f}" if v >= 0.06 else "" for v in values], textposition="inside",
            hovertemplate="%{y} · %{fullData.name}: %{x:.3f}<extra></extra>",
        ))
    fig.update_layout(**{**_LAYOUT, "hovermode": "closest", "legend": {**_LAYOUT["legend"], "traceorder": "normal"}},
                      barmode="stack", height=110 + 45 * len(tasks),
                      xaxis=dict(title="gate weight (each task's bar sums to 1)", range=[0, 1]),
                      showlegend=True)
    tick_colors = colors or task_colors(tasks)
    fig.update_yaxes(autorange="reversed", tickmode="array", tickvals=shown,
                     ticktext=[f"<span style='color:{_color_of(t, tick_colors)}'><b>{plot(t)}</b></span>"
                               for t in tasks])
    return fig


def gates_history_chart(
    metrics: pd.DataFrame, tasks: Sequence[str], *, colors: Mapping[str, str] | None = None
) -> go.Figure:
    """Gate weights over training, one panel per task, experts stacked (areas sum to 1).

    `metrics` are the run store's rows of split "gates" (task, metric = expert name).
    """
    tasks = [t for t in tasks if not _select(metrics, phase=MTL, split="gates", task=t).empty] or list(tasks)
    experts = list(dict.fromkeys(_select(metrics, phase=MTL, split="gates")["metric"]))
    ecolors = expert_colors(experts, tasks, colors=colors)
    n = max(len(tasks), 1)
    fig = make_subplots(rows=1, cols=n, subplot_titles=[plot(t) for t in tasks] or None, shared_yaxes=True,
                        horizontal_spacing=0.04)
    for col, task in enumerate(tasks, start=1):
        for expert in experts:
            curve = _select(metrics, phase=MTL, split="gates", task=task, metric=expert)
            if curve.empty:
                continue
            fig.add_trace(go.Scatter(
                x=curve["step"], y=curve["value"], mode="lines", stackgroup=plot(task), name=plot(expert),
                legendgroup=plot(expert), showlegend=col == 1 or expert.startswith(f"{task} "),
                line=dict(color=ecolors[expert], width=0.5), fillcolor=ecolors[expert],
            ), row=1, col=col)
    fig.update_layout(**_LAYOUT, height=300)
    fig.update_yaxes(range=[0, 1])
    fig.update_xaxes(title_text="step")
    return fig


# ---- interference ---------------------------------------------------------------------
def cosine_heatmap(
    tasks: Sequence[str], grad_cosine: Sequence[Sequence[float]], *, colors: Mapping[str, str] | None = None,
    title: str = "gradient cosine between tasks",
) -> go.Figure:
    """Task × task cosine of the task gradients on the shared parameters (red: conflict)."""
    colors = dict(colors) if colors is not None else task_colors(tasks)
    z = np.asarray(grad_cosine, dtype=float)
    fig = go.Figure(
        go.Heatmap(
            z=z, x=[plot(t) for t in tasks], y=[plot(t) for t in tasks], zmin=-1.0, zmax=1.0, colorscale="RdBu",
            text=[[f"{v:+.2f}" for v in row] for row in z], texttemplate="%{text}",
            colorbar=dict(title="cos"), hovertemplate="%{y} · %{x}: %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(**{**_LAYOUT, "hovermode": "closest"}, height=120 + 60 * len(tasks), title=plot(title))
    _task_ticks(fig, tasks, colors)
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
                    name=plot(f"{tasks[i]} · {tasks[j]}"),
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
                           name=plot(task), line=dict(color=_color_of(task, colors), width=2))
            )
    fig.update_layout(**_LAYOUT, height=300, title="gradient norm per task (shared parameters)",
                      xaxis_title="step", yaxis_title="gradient norm", showlegend=True)
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def _task_ticks(fig: go.Figure, tasks: Sequence[str], colors: Mapping[str, str]) -> None:
    """Each heat-map tick in its task's colour; the categories are the escaped names."""
    labels = [f"<span style='color:{_color_of(t, colors)}'><b>{plot(t)}</b></span>" for t in tasks]
    shown = [plot(t) for t in tasks]
    fig.update_xaxes(tickmode="array", tickvals=shown, ticktext=labels, side="bottom")
    fig.update_yaxes(tickmode="array", tickvals=shown, ticktext=labels, autorange="reversed")


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def scale_label(exponent: int) -> str:
    """"×10³" for exponent 3 ("" for 0): how scaled values are labelled."""
    return f"×10{str(exponent).translate(_SUPERSCRIPT)}" if exponent else ""


def affinity_exponent(affinity: Sequence[Sequence[float]] | None) -> int:
    """k such that the largest |Z|·10^k lies in [1, 10): affinities are relative loss
    changes after one small SGD step, so they are tiny (~1e-3) by construction and are
    shown scaled. 3 when the matrix is empty or all zero."""
    z = np.asarray(affinity if affinity is not None else [], dtype=float)
    top = float(np.nanmax(np.abs(z))) if z.size and np.isfinite(z).any() else 0.0
    if top <= 0.0:
        return 3
    return int(-math.floor(math.log10(top)))


def affinity_heatmap(
    tasks: Sequence[str], affinity: Sequence[Sequence[float]], *, colors: Mapping[str, str] | None = None,
    exponent: int | None = None,
) -> go.Figure:
    """Look-ahead inter-task affinity (Fifty et al., NeurIPS 2021), row i helps column j.

    Z[i][j] = 1 − L_j(θs − η∇L_i) / L_j(θs): the relative drop of task j's loss after one
    SGD step on the shared parameters with task i's gradient, averaged over training
    (> 0: i's updates help j; < 0: they hurt it). Not symmetric. Shown ×10^k (see
    `affinity_exponent`) on a diverging scale centred on 0, red where a step hurts.
    """
    colors = dict(colors) if colors is not None else task_colors(tasks)
    k = affinity_exponent(affinity) if exponent is None else exponent
    z = np.asarray(affinity, dtype=float) * 10.0 ** k
    top = float(np.nanmax(np.abs(z))) if z.size and np.isfinite(z).any() else 1.0
    scale = scale_label(k)
    fig = go.Figure(
        go.Heatmap(
            z=z, x=[plot(t) for t in tasks], y=[plot(t) for t in tasks], zmid=0.0, zmin=-top, zmax=top,
            colorscale="RdBu",
            text=[[f"{v:+.2f}" for v in row] for row in z], texttemplate="%{text}",
            colorbar=dict(title=f"Z {scale}".strip()),
            hovertemplate="a step on %{y} changes the loss of %{x} by %{z:.3g}" + (f" {scale}" if scale else "")
                          + "<extra></extra>",
        )
    )
    fig.update_layout(**{**_LAYOUT, "hovermode": "closest"}, height=150 + 60 * len(tasks),
                      title=f"look-ahead affinity{' ' + scale if scale else ''}: row i helps column j",
                      xaxis_title="column j: the task whose loss changes",
                      yaxis_title="row i: the task whose gradient steps")
    _task_ticks(fig, tasks, colors)
    return fig


def magnitude_heatmap(
    tasks: Sequence[str], similarity: Sequence[Sequence[float]], *, colors: Mapping[str, str] | None = None,
) -> go.Figure:
    """Gradient-magnitude similarity 2‖g_i‖‖g_j‖ / (‖g_i‖² + ‖g_j‖²) (Yu et al., 2020):
    1 when two tasks' gradients are equally long, near 0 when one dwarfs the other."""
    colors = dict(colors) if colors is not None else task_colors(tasks)
    z = np.asarray(similarity, dtype=float)
    fig = go.Figure(
        go.Heatmap(
            z=z, x=[plot(t) for t in tasks], y=[plot(t) for t in tasks], zmin=0.0, zmax=1.0, colorscale="Greys",
            reversescale=True,
            text=[[f"{v:.2f}" for v in row] for row in z], texttemplate="%{text}", showscale=False,
            hovertemplate="%{y} · %{x}: %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(**{**_LAYOUT, "hovermode": "closest"}, height=100 + 45 * len(tasks),
                      title="gradient magnitude similarity")
    _task_ticks(fig, tasks, colors)
    return fig


def pairs_frame(pairs: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The per-pair interference summary as a table: mean cosine, conflict rate in %,
    trend (mean cosine of the last half of training minus the first half), the number
    of evaluations it rests on and, where the engine gave one, the pair's verdict ("agree",
    "conflict", "no clear sign"; "—" for a pair without). Values from the engine, no maths
    but the percentage."""
    judged = any(verdicts.pair_verdict(p) for p in pairs)
    records = [
        {
            "pair": " · ".join(p["pair"]),
            "mean cosine": _num(p.get("mean_cosine")),
            "conflict rate %": 100.0 * _num(p.get("conflict_rate")),
            "trend": _num(p.get("trend")),
            "evaluations": int(p.get("evaluations") or 0),
            **({"verdict": verdicts.pair_verdict(p) or "—"} if judged else {}),
        }
        for p in pairs
    ]
    return pd.DataFrame.from_records(
        records, columns=["pair", "mean cosine", "conflict rate %", "trend", "evaluations"]
        + (["verdict"] if judged else [])
    )


def style_verdicts(frame: pd.DataFrame, verdict_column: str, *, also: Sequence[str] = ()):
    """pandas Styler of `frame` whose `verdict_column` cells, and the same row's cells of
    `also`, take the colour of that row's verdict: green a clear gain, red a clear loss,
    grey no clear one, none without a verdict (`dashboard.verdicts`). For st.dataframe:
    its cells are plain text, and a column_config number or date format still wins over the
    Styler's text (give one to every number column that should not read `3.000000`)."""
    colours = [verdicts.background(v if isinstance(v, str) else None) for v in frame[verdict_column]]
    return frame.style.apply(
        lambda col: [f"background-color: {c}" if c else "" for c in colours], subset=[*also, verdict_column]
    ).format(na_rep="")  # a missing value stays blank, not "nan"


# ---- transfer ----------------------------------------------------------------------------
# One colour per arm on every transfer chart and table; the control (scratch) is dark
# grey and dashed, so the two pre-trained arms stand out against it.
ARM_COLORS: dict[str, str] = {"frozen": "#7B3294", "finetune": "#1B9E77", "scratch": "#4D4D4D"}


def data_efficiency_chart(
    rows: Sequence[Mapping[str, Any]], *, metric: str, higher_is_better: bool | None = None,
    arms: Sequence[str] | None = None, title: str | None = None,
) -> go.Figure:
    """Target-task test metric vs number of labelled target examples (log x), one line per
    arm: the data-efficiency curve of a transfer experiment (`mtl_core.transfer`)."""
    arms = list(arms) if arms is not None else list(dict.fromkeys(r["arm"] for r in rows))
    fig = go.Figure()
    for arm in arms:
        points = sorted((r for r in rows if r["arm"] == arm), key=lambda r: r["n_labelled"])
        color = ARM_COLORS.get(arm, RUN_PALETTE[len(fig.data) % len(RUN_PALETTE)])
        fig.add_trace(go.Scatter(
            x=[r["n_labelled"] for r in points], y=[_num(r.get("metric_value")) for r in points],
            mode="lines+markers", name=plot(ARM_LABELS.get(arm, arm)),
            line=dict(color=color, width=2.5, dash="dash" if arm == "scratch" else "solid"),
            marker=dict(size=8, color=color),
            # The count, not the asked-for fraction: fractions that clamp to one count are merged.
            hovertemplate="%{x:,} labelled examples: %{y:.4g}<extra>%{fullData.name}</extra>",
        ))
    arrow = "" if higher_is_better is None else (" ↑" if higher_is_better else " ↓")
    fig.update_layout(**{**_LAYOUT, "hovermode": "closest"}, height=380, showlegend=True,
                      title=plot(title or "data efficiency on the target task"),
                      xaxis_title="labelled target examples (log scale)", yaxis_title=plot(f"test {metric}{arrow}"))
    sizes = sorted({int(r["n_labelled"]) for r in rows})
    # Ticks at the data sizes themselves: a log axis's own minor labels (2, 5, 100, 2, …) confuse.
    fig.update_xaxes(type="log", tickvals=sizes, ticktext=[f"{n:,}" for n in sizes])
    return fig


# ---- architecture diagram -------------------------------------------------------------
DIAGRAM_KINDS = ("shared", "separate", "soft", "cross_stitch", "attention", "experts", "hierarchical")
MAX_DRAWN_EXPERTS = 8  # more expert boxes than this are drawn as one box per group, with the count


def diagram_structure(tasks: Sequence[str], blocks: Sequence[Mapping[str, Any]] | None) -> dict[str, Any]:
    """What the diagram draws, read from a model's `describe_blocks()` (None: unknown).

    experts: the shared experts of the last extraction level, each task's own experts at
    that level, and the number of levels (MMoE: E shared, none own, 1 level; CGC/PLE:
    n_shared, n_task per task, L levels). layers / depths: the layers of a hierarchical
    stack and the layer each task's head reads. attention: whether any attention module
    exists (MTAN with fixed attention has none).
    """
    if blocks is None:
        return {}
    experts = [b for b in blocks if b.get("role") in ("expert", "task expert")]
    levels = max((int(b.get("level") or 1) for b in experts), default=0)
    top = [b for b in experts if int(b.get("level") or 1) == levels]
    layers = sorted(int(b.get("level") or 0) for b in blocks if b.get("role") == "layer")
    heads = {b["tasks"][0]: int(b["level"]) for b in blocks
             if b.get("role") == "head" and b.get("level") and len(b.get("tasks") or []) == 1}
    return {
        "shared_experts": sum(1 for b in top if b["role"] == "expert"),
        "own_experts": {t: sum(1 for b in top if b["role"] == "task expert" and list(b["tasks"]) == [t])
                        for t in tasks},
        "levels": levels,
        "layers": len(layers),
        "depths": {t: heads[t] for t in tasks if t in heads},
        "attention": any(b.get("role") == "attention" for b in blocks),
    }


def architecture_diagram(
    diagram: str, tasks: Sequence[str], *, colors: Mapping[str, str] | None = None,
    blocks: Sequence[Mapping[str, Any]] | None = None,
) -> go.Figure:
    """A small block diagram of a sharing mode: input → encoder(s) → one head per task.

    Grey blocks are shared by every task, coloured blocks belong to one task. `diagram` is
    the sharing mode's `diagram` entry: "shared" (one encoder for all), "separate" (one
    encoder per task), "soft" (one per task, tied by an L2 pull), "cross_stitch" (one per
    task, mixed by learned α units), "attention" (shared encoder, one attention module per
    task), "experts" (shared experts mixed by one gate per task), "hierarchical" (tasks
    branch off a shared stack at different depths). Unknown kinds are drawn as "shared".

    `blocks`: the model's `describe_blocks()` (`mtl_core.experiment.parameter_budget`
    gives it), from which the number of experts, the layers and each task's depth are
    drawn, so the picture cannot disagree with the model; without it, those are drawn
    without numbers that could be wrong (one box "experts"; a generic stack).
    """
    tasks = list(tasks) or ["task"]
    colors = dict(colors) if colors is not None else task_colors(tasks)
    structure = diagram_structure(tasks, blocks)
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
            box(head_x, y, f"head {plot(task)}", _color_of(task, colors), width=1.3)
            arrow(from_x, y_from, head_x, y)

    box(0.0, mid, "input x", INPUT_COLOR, width=1.1, font="#333333")
    kind = diagram if diagram in DIAGRAM_KINDS else "shared"
    if kind == "attention" and structure and not structure["attention"]:
        kind = "shared"  # MTAN with fixed attention: a shared backbone and heads, nothing else
    if kind == "shared":
        box(1.8, mid, "shared<br>encoder θs", SHARED_GREY, width=1.8)
        arrow(1.1, mid, 1.8, mid)
        heads(3.6, [mid] * n)
    elif kind == "attention":
        box(1.6, mid, "shared<br>encoder", SHARED_GREY, width=1.2)
        arrow(1.1, mid, 1.6, mid)
        for task, y in zip(tasks, ys):
            box(3.2, y, f"attention<br>{plot(task)}", _color_of(task, colors), width=1.1)
            arrow(2.8, mid, 3.2, y)
        heads(4.3, ys)
    elif kind == "experts":
        _experts(fig, box, arrow, tasks, ys, mid, colors, structure)
        heads(4.2, ys)
    elif kind == "hierarchical":
        if structure.get("layers"):
            depth, task_depth = structure["layers"], structure["depths"]
        else:  # no model: a generic stack, lower tasks branching lower
            depth = min(max(n, 2), 3)
            task_depth = {t: min(i, depth - 1) + 1 for i, t in enumerate(tasks)}
        step = min(1.0, 2.8 / depth)
        width = 0.8 * step
        for d in range(depth):
            box(1.6 + d * step, mid, f"layer {d + 1}", SHARED_GREY, width=width)
            arrow(1.1 if d == 0 else 1.6 + (d - 1) * step + width, mid, 1.6 + d * step, mid)
        for task, y in zip(tasks, ys):
            d = min(max(task_depth.get(task, depth), 1), depth) - 1  # the layer its head reads
            box(head_x, y, f"head {plot(task)}", _color_of(task, colors), width=1.3)
            centre = 1.6 + d * step + width / 2
            # Branch from the layer's top or bottom edge, so no arrow crosses a later layer.
            if y > mid:
                arrow(centre, mid + 0.32, head_x, y)
            elif y < mid or d < depth - 1:
                arrow(centre, mid - 0.32, head_x, y)
            else:
                arrow(1.6 + d * step + width, mid, head_x, y)
    else:  # separate, soft, cross_stitch: one encoder per task
        for task, y in zip(tasks, ys):
            box(1.8, y, f"encoder<br>θ {plot(task)}", _color_of(task, colors), width=1.8)
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


def _experts(fig: go.Figure, box: Any, arrow: Any, tasks: list[str], ys: list[float], mid: float,
             colors: Mapping[str, str], structure: Mapping[str, Any]) -> None:
    """The experts column (shared ones grey, a task's own in its colour, lightened) and one
    gate per task, wired to the experts it mixes: every shared expert and its own."""
    n = len(tasks)
    groups: list[tuple[str | None, int]] = []  # (owner task or None for shared, count)
    if structure.get("levels"):
        groups.append((None, structure["shared_experts"]))
        groups += [(t, structure["own_experts"].get(t, 0)) for t in tasks if structure["own_experts"].get(t)]
    total = sum(c for _, c in groups)
    own_word = any(owner is not None for owner, _ in groups)
    entries: list[tuple[str | None, str]] = []  # (owner, label), one per box
    if not groups:  # no model to count from: one box, no number that could be wrong
        entries.append((None, "shared<br>experts"))
    elif total <= MAX_DRAWN_EXPERTS:
        for owner, count in groups:
            prefix = "expert" if owner is None and not own_word else ("shared" if owner is None else plot(owner))
            entries += [(owner, f"{prefix} {e}") for e in range(1, count + 1)]
    else:  # too many to draw one by one: one box per group, with its count
        for owner, count in groups:
            what = "shared experts" if owner is None and own_word else "experts"
            entries.append((owner, f"{count} {what}" if owner is None else f"{plot(owner)}: {count} own"))
    k = len(entries)
    span = max(n, 1) - 0.2
    expert_ys = [mid + span / 2 - span * (e + 0.5) / k for e in range(k)] if k > 1 else [mid]
    height = min(0.5, 0.85 * span / k)
    for (owner, label), y in zip(entries, expert_ys):
        fill = SHARED_GREY if owner is None else _lighten(_color_of(owner, colors), 0.35)
        box(1.6, y, label, fill, width=1.1, height=height, font="white" if owner is None else "#333333")
        arrow(1.1, mid, 1.6, y)
    if structure.get("levels", 1) > 1:
        fig.add_annotation(x=2.15, y=mid + span / 2 + 0.05, text=f"last of {structure['levels']} levels",
                           showarrow=False, font=dict(color=SHARED_GREY, size=10), yanchor="bottom")
    for task, y in zip(tasks, ys):
        box(3.2, y, f"gate {plot(task)}", _color_of(task, colors), width=1.0)
        for (owner, _), ey in zip(entries, expert_ys):
            if owner is None or owner == task:
                fig.add_shape(type="line", x0=2.7, x1=3.2, y0=ey, y1=y, line=dict(color=SHARED_GREY, width=1))


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

