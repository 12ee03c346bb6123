"""The Interference page's figures: gradient cosine between tasks (heat map and history),
gradient norms, look-ahead affinity (Fifty et al., 2021), gradient-magnitude similarity
(Yu et al., 2020), and the per-pair summary table. Values from `mtl_core.interference`."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard import verdicts
from dashboard.i18n import text
from dashboard.charts.style import _LAYOUT, CONFLICT_FILL, SHARED_GREY, _color_of, _num, task_colors
from dashboard.safe_text import plot


def cosine_heatmap(
    tasks: Sequence[str], grad_cosine: Sequence[Sequence[float]], *, colors: Mapping[str, str] | None = None,
    title: str | None = None, lang: str = "en",
) -> go.Figure:
    """Task × task cosine of the task gradients on the shared parameters (red: conflict).
    `title` defaults to "gradient cosine between tasks" in `lang`."""
    title = text("interference.cosine_title", lang) if title is None else title
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
    snapshots: Sequence[Mapping[str, Any]], *, colors: Mapping[str, str] | None = None, lang: str = "en"
) -> go.Figure:
    """Each task pair's gradient cosine over the evaluations; the cos < 0 band shaded.

    A pair's line has the first task's colour and markers of the second's.
    """
    fig = go.Figure()
    fig.add_hrect(y0=-1.0, y1=0.0, fillcolor=CONFLICT_FILL, line_width=0, layer="below",
                  annotation_text=text("interference.conflict_band", lang), annotation_position="bottom left")
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
    fig.update_layout(**_LAYOUT, height=320, title=text("interference.history_title", lang), showlegend=True,
                      xaxis_title=text("interference.step", lang), yaxis_title="cos", yaxis_range=[-1.05, 1.05])
    return fig


def grad_norm_chart(
    snapshots: Sequence[Mapping[str, Any]], *, colors: Mapping[str, str] | None = None, log_y: bool = False,
    lang: str = "en",
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
    fig.update_layout(**_LAYOUT, height=300, title=text("interference.norm_title", lang),
                      xaxis_title=text("interference.step", lang), yaxis_title=text("interference.norm_axis", lang),
                      showlegend=True)
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
    exponent: int | None = None, lang: str = "en",
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
            hovertemplate=text("interference.affinity_hover", lang, row="%{y}", col="%{x}", value="%{z:.3g}")
                          + (f" {scale}" if scale else "")
                          + "<extra></extra>",
        )
    )
    fig.update_layout(**{**_LAYOUT, "hovermode": "closest"}, height=150 + 60 * len(tasks),
                      title=text("interference.affinity_title", lang, scale=" " + scale if scale else ""),
                      xaxis_title=text("interference.affinity_x", lang),
                      yaxis_title=text("interference.affinity_y", lang))
    _task_ticks(fig, tasks, colors)
    return fig


def magnitude_heatmap(
    tasks: Sequence[str], similarity: Sequence[Sequence[float]], *, colors: Mapping[str, str] | None = None,
    lang: str = "en",
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
                      title=text("interference.magnitude_title", lang))
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
