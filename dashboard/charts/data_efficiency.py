"""A transfer experiment's data-efficiency curve (`mtl_core.transfer`): the target task's
test metric against the number of labelled target examples, one line per arm. Its own words
(axis titles, the arms' names) follow `lang` (`dashboard.i18n`, keys `transfer.chart.*`,
`transfer.arm.*`); the caller's `title` and the metric are data and only escaped."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import plotly.graph_objects as go

from dashboard.charts.style import _LAYOUT, ARM_COLORS, RUN_PALETTE, _num
from dashboard.i18n import text
from dashboard.safe_text import plot
from mtl_core.phases import ARM_LABELS  # one home, used here and by pages


def arm_label(arm: str, lang: str = "en") -> str:
    """An arm's name in `lang` (English: `mtl_core.phases.ARM_LABELS`); an unknown arm as given."""
    return text(f"transfer.arm.{arm}", lang) if arm in ARM_LABELS else arm


def data_efficiency_chart(
    rows: Sequence[Mapping[str, Any]], *, metric: str, higher_is_better: bool | None = None,
    arms: Sequence[str] | None = None, title: str | None = None, lang: str = "en",
) -> go.Figure:
    """Target-task test metric vs number of labelled target examples (log x), one line per
    arm: the data-efficiency curve of a transfer experiment (`mtl_core.transfer`)."""
    arms = list(arms) if arms is not None else list(dict.fromkeys(r["arm"] for r in rows))
    fig = go.Figure()
    examples = plot(text("transfer.chart.hover", lang))
    for arm in arms:
        points = sorted((r for r in rows if r["arm"] == arm), key=lambda r: r["n_labelled"])
        color = ARM_COLORS.get(arm, RUN_PALETTE[len(fig.data) % len(RUN_PALETTE)])
        fig.add_trace(go.Scatter(
            x=[r["n_labelled"] for r in points], y=[_num(r.get("metric_value")) for r in points],
            mode="lines+markers", name=plot(arm_label(arm, lang)),
            line=dict(color=color, width=2.5, dash="dash" if arm == "scratch" else "solid"),
            marker=dict(size=8, color=color),
            # The count, not the asked-for fraction: fractions that clamp to one count are merged.
            hovertemplate=f"%{{x:,}} {examples}: %{{y:.4g}}<extra>%{{fullData.name}}</extra>",
        ))
    arrow = "" if higher_is_better is None else (" ↑" if higher_is_better else " ↓")
    fig.update_layout(**{**_LAYOUT, "hovermode": "closest"}, height=380, showlegend=True,
                      title=plot(title or text("transfer.chart.title", lang)),
                      xaxis_title=plot(text("transfer.chart.x", lang)),
                      yaxis_title=plot(text("transfer.chart.y", lang, metric=metric, arrow=arrow)))
    sizes = sorted({int(r["n_labelled"]) for r in rows})
    # Ticks at the data sizes themselves: a log axis's own minor labels (2, 5, 100, 2, …) confuse.
    fig.update_xaxes(type="log", tickvals=sizes, ticktext=[f"{n:,}" for n in sizes])
    return fig
