"""Curves over the training steps: the loss curves (live and finished), the effective task
weights, several runs overlaid; smoothing (`ema`) and thinning (`thin`) for drawing.

Curves take the run store's long metric table: columns phase ("mtl" or "stl:<task>"),
step, task (a task name or "total"), split ("train"/"val"/"test"), metric, value.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard.charts.style import _LAYOUT, RUN_PALETTE, TOTAL_COLOR, _color_of, task_colors
from dashboard.i18n import text
from dashboard.safe_text import plot
from mtl_core.phases import MTL, Phase


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
    lang: str = "en",
) -> go.Figure:
    """Training loss (left) and validation loss (right) of the multi-task model per task.

    Left: each task's training loss and the weighted total Σ_t w_t L_t the optimiser
    sees. Right: each task's validation loss. With `show_baselines`, each task's single-task
    baseline (phase "stl:<task>") is drawn beside it as a dashed line of the same colour on
    both sides, so its curves show while the baselines train, before the multi-task model
    starts. Curves longer than MAX_CURVE_POINTS are thinned for drawing.

    `reuse`: the figure this function returned at the previous poll of a live view. When it
    has the same traces and settings, only their points are replaced (a few ms, instead of
    the ~100 ms a new plotly figure costs) and it is returned. `lang`: the language of the
    titles, axes and trace names (en, zh).
    """
    colors = dict(colors) if colors is not None else task_colors(tasks)
    curves = _Curves(metrics)
    traces: list[tuple[dict[str, Any], int, tuple[np.ndarray, np.ndarray]]] = []
    for task in tasks:
        color = _color_of(task, colors)
        base_phase = Phase.stl(task).format()
        train = curves.get(smoothing, phase=MTL, split="train", metric="loss", task=task)
        traces.append((dict(mode="lines", name=plot(text("train.chart.trace_train", lang, task=task)), legendgroup=plot(task),
                            line=dict(color=color, width=2)), 1, train))
        if show_baselines:
            base = curves.get(smoothing, phase=base_phase, split="train", metric="loss", task=task)
            if len(base[0]):
                traces.append((dict(mode="lines", name=plot(text("train.chart.trace_stl_train", lang, task=task)),
                                    legendgroup=plot(task), line=dict(color=color, width=1.5, dash="dash"),
                                    opacity=0.6), 1, base))
        val = curves.get(phase=MTL, split="val", metric="loss", task=task)
        traces.append((dict(mode="lines+markers", name=plot(text("train.chart.trace_val", lang, task=task)), legendgroup=plot(task),
                            line=dict(color=color, width=2), marker=dict(size=5)), 2, val))
        if show_baselines:
            base = curves.get(phase=base_phase, split="val", metric="loss", task=task)
            if len(base[0]):
                traces.append((dict(mode="lines", name=plot(text("train.chart.trace_stl_val", lang, task=task)),
                                    legendgroup=plot(task), line=dict(color=color, width=2, dash="dash"),
                                    opacity=0.8), 2, base))
    if show_total:
        total = curves.get(smoothing, phase=MTL, split="train", metric="loss", task="total")
        if len(total[0]):
            traces.append((dict(mode="lines", name=text("train.chart.weighted_total", lang), legendgroup="total",
                                line=dict(color=TOTAL_COLOR, width=1.5, dash="dot")), 1, total))

    signature = ([(spec["name"], col) for spec, col, _ in traces], log_y, lang)
    if reuse is not None and getattr(reuse, "_mtl_signature", None) == signature:
        with reuse.batch_update():
            for trace, (_, _, (x, y)) in zip(reuse.data, traces):
                trace.x, trace.y = x, y
        return reuse
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08,
                        subplot_titles=(text("train.chart.training_loss", lang),
                                        text("train.chart.validation_loss", lang)))
    for spec, col, (x, y) in traces:
        fig.add_trace(go.Scatter(x=x, y=y, **spec), row=1, col=col)
    fig.update_layout(**_LAYOUT, height=420)
    fig.update_xaxes(title_text=text("train.chart.step", lang))
    if log_y:
        fig.update_yaxes(type="log")
    fig._mtl_signature = signature
    return fig


def point_count(fig: go.Figure) -> int:
    """Number of plotted points in a figure (how far a live curve has grown)."""
    return int(sum(len(t.x) for t in fig.data if getattr(t, "x", None) is not None))


def weights_chart(
    metrics: pd.DataFrame, tasks: Sequence[str], *, colors: Mapping[str, str] | None = None, share: bool = True,
    lang: str = "en",
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
    fig.update_layout(**_LAYOUT, height=300, xaxis_title=text("train.chart.step", lang),
                      yaxis_title=text("train.chart.weight_share", lang) if share else text("train.chart.weight", lang))
    return fig


def overlay_chart(
    curves: Mapping[str, pd.DataFrame],
    *,
    title: str,
    y_title: str = "",
    smoothing: float = 0.0,
    title_color: str | None = None,
    log_y: bool = False,
    lang: str = "en",
) -> go.Figure:
    """Several runs' curves of one task on one chart: curves[label] has columns step, value
    (`lang`: the language of the step axis; the caller gives the title and y title)."""
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
    fig.update_layout(**_LAYOUT, height=300, xaxis_title=text("train.chart.step", lang), yaxis_title=plot(y_title),
                      title=dict(text=plot(title), font=dict(color=title_color) if title_color else None))
    if log_y:
        fig.update_yaxes(type="log")
    return fig
