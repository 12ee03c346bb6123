"""What each task's head sees, in two dimensions (`mtl_core.projection`): one panel per
task, its validation points on their first two principal components, coloured by that
task's labels (a colour per class; a colour scale for a regression target)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard.charts.style import _color_of
from dashboard.i18n import text
from dashboard.safe_text import plot

MAX_PANELS = 4
CLASS_PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999",
                 "#332288", "#882255")  # Okabe–Ito, then Tol's: distinguishable for colour-blind readers


def projection_chart(projection: Mapping[str, Mapping[str, Any]], tasks: Sequence[str],
                     colors: Mapping[str, str], *, step: int | None = None, lang: str = "en") -> go.Figure:
    """One scatter per task (at most MAX_PANELS) of `projection` (an interference snapshot's
    "projection": {task: {x, y, label, classes, explained}}); titles in `lang`."""
    shown = [t for t in tasks if t in projection][:MAX_PANELS]
    titles = []
    for t in shown:
        pc1, pc2 = (list(projection[t].get("explained") or []) + [0.0, 0.0])[:2]
        titles.append(f"<span style='color:{_color_of(t, colors)}'>●</span> {plot(t)}"
                      f"<br><sup>{text('interference.projection_variance', lang, pc1=f'{pc1 * 100:.0f}', pc2=f'{pc2 * 100:.0f}')}</sup>")
    fig = make_subplots(rows=1, cols=max(1, len(shown)), subplot_titles=titles or None, horizontal_spacing=0.06)
    for col, t in enumerate(shown, start=1):
        p = projection[t]
        x, y, labels = list(p.get("x") or []), list(p.get("y") or []), list(p.get("label") or [])
        classes = p.get("classes")
        if classes is None:  # regression: the target's value as a colour scale
            fig.add_trace(go.Scattergl(
                x=x, y=y, mode="markers", showlegend=False, name=plot(t),
                marker={"size": 5, "color": labels, "colorscale": "Viridis", "opacity": 0.8},
                hovertemplate=f"{plot(t)} = %{{marker.color:.2f}}<extra></extra>"), row=1, col=col)
            continue
        for c in sorted(set(labels)):
            keep = [i for i, label in enumerate(labels) if label == c]
            name = classes[c] if isinstance(c, int) and 0 <= c < len(classes) else str(c)
            fig.add_trace(go.Scattergl(
                x=[x[i] for i in keep], y=[y[i] for i in keep], mode="markers", name=plot(name),
                legendgroup=plot(t), legendgrouptitle_text=plot(t), showlegend=True,
                marker={"size": 5, "opacity": 0.75, "color": CLASS_PALETTE[int(c) % len(CLASS_PALETTE)]},
                hovertemplate=f"{plot(t)}: {plot(name)}<extra></extra>"), row=1, col=col)
    fig.update_xaxes(showticklabels=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, zeroline=False)
    title = text("interference.projection_title", lang)
    if step is not None:
        title += text("interference.projection_step", lang, step=step)
    fig.update_layout(title={"text": title, "font": {"size": 14}},
                      height=340, margin={"l": 10, "r": 10, "t": 90, "b": 10},
                      legend={"font": {"size": 10}, "groupclick": "toggleitem"})
    return fig
