"""Expert gates of MMoE (Ma et al., 2018) and CGC/PLE (Tang et al., 2020): which experts
each task reads, now (`gates_bars`) and over training (`gates_history_chart`)."""

from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard.charts.curves import _select
from dashboard.i18n import text
from dashboard.charts.style import _LAYOUT, EXPERT_PALETTE, _color_of, _lighten, task_colors
from dashboard.safe_text import plot
from mtl_core.phases import MTL


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
    gates: Mapping[str, Mapping[str, float]], *, colors: Mapping[str, str] | None = None, lang: str = "en"
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
                      xaxis=dict(title=text("results.gates_axis", lang), range=[0, 1]),
                      showlegend=True)
    tick_colors = colors or task_colors(tasks)
    fig.update_yaxes(autorange="reversed", tickmode="array", tickvals=shown,
                     ticktext=[f"<span style='color:{_color_of(t, tick_colors)}'><b>{plot(t)}</b></span>"
                               for t in tasks])
    return fig


def gates_history_chart(
    metrics: pd.DataFrame, tasks: Sequence[str], *, colors: Mapping[str, str] | None = None, lang: str = "en"
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
    fig.update_xaxes(title_text=text("results.step", lang))
    return fig
