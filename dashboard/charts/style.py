"""One look on every chart and table: colours, layout, number formats.

Colour has one meaning everywhere (TensorFlow Playground's rule): each task keeps its
colour in every curve, bar, table and diagram, picked from a colour-blind-safe palette by
the task's position in the dataset's task list (`task_colors`); blocks shared by several
tasks are always `SHARED_GREY`; a verdict's colour comes from `dashboard.verdicts`. The
underscore helpers (`_color_of`, `_LAYOUT`, `_num`, `_fmt`, `_lighten`) are shared by the
chart modules of this package, not by pages.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import pandas as pd

from dashboard import verdicts

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

# Experts every task's gate can pick ("expert 2", "shared 1") take these colours, by name
# order; an expert that belongs to one task ("y1 2" in CGC/PLE) takes that task's colour,
# lighter for each further expert of it.
EXPERT_PALETTE: tuple[str, ...] = (
    "#4D4D4D", "#8C8C8C", "#B8B8B8", "#2F4F6F", "#6F8FAF", "#A6BDD7", "#5C4033", "#A67B5B",
)

# One colour per arm on every transfer chart and table; the control (scratch) is dark
# grey and dashed, so the two pre-trained arms stand out against it.
ARM_COLORS: dict[str, str] = {"frozen": "#7B3294", "finetune": "#1B9E77", "scratch": "#4D4D4D"}


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
