"""The sharing-mode diagram: input → encoder(s) → one head per task, drawn from the
model's `describe_blocks()` so that it cannot disagree with the model."""

from __future__ import annotations

import functools
import json
from typing import Any, Mapping, Sequence

import plotly.graph_objects as go

from dashboard.charts.style import INPUT_COLOR, SHARED_GREY, _color_of, _lighten, task_colors
from dashboard.i18n import text
from dashboard.safe_text import plot

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
    blocks: Sequence[Mapping[str, Any]] | None = None, lang: str = "en",
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

    `lang`: the language of the block labels (en, zh).

    The figure is built once per set of arguments and kept (it is drawn at every rerun of
    the Train page, and building it costs ~0.15 s of plotly validation): the same object
    comes back for the same arguments (the language is one of them), so a caller must not
    change it.
    """
    key = json.dumps([diagram, list(tasks), dict(colors) if colors is not None else None,
                      [dict(b) for b in blocks] if blocks is not None else None, lang],
                     sort_keys=True, default=str)
    return _drawn(key)


@functools.lru_cache(maxsize=64)
def _drawn(key: str) -> go.Figure:
    diagram, tasks, colors, blocks, lang = json.loads(key)
    return _draw(diagram, tasks, colors, blocks, lang)


def _draw(diagram: str, tasks: Sequence[str], colors: Mapping[str, str] | None,
          blocks: Sequence[Mapping[str, Any]] | None, lang: str = "en") -> go.Figure:
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
            box(head_x, y, text("train.diagram.head", lang, task=plot(task)), _color_of(task, colors), width=1.3)
            arrow(from_x, y_from, head_x, y)

    box(0.0, mid, text("train.diagram.input", lang), INPUT_COLOR, width=1.1, font="#333333")
    kind = diagram if diagram in DIAGRAM_KINDS else "shared"
    if kind == "attention" and structure and not structure["attention"]:
        kind = "shared"  # MTAN with fixed attention: a shared backbone and heads, nothing else
    if kind == "shared":
        box(1.8, mid, text("train.diagram.shared_encoder_theta", lang), SHARED_GREY, width=1.8)
        arrow(1.1, mid, 1.8, mid)
        heads(3.6, [mid] * n)
    elif kind == "attention":
        box(1.6, mid, text("train.diagram.shared_encoder", lang), SHARED_GREY, width=1.2)
        arrow(1.1, mid, 1.6, mid)
        for task, y in zip(tasks, ys):
            box(3.2, y, text("train.diagram.attention", lang, task=plot(task)), _color_of(task, colors), width=1.1)
            arrow(2.8, mid, 3.2, y)
        heads(4.3, ys)
    elif kind == "experts":
        _experts(fig, box, arrow, tasks, ys, mid, colors, structure, lang)
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
            box(1.6 + d * step, mid, text("train.diagram.layer", lang, n=d + 1), SHARED_GREY, width=width)
            arrow(1.1 if d == 0 else 1.6 + (d - 1) * step + width, mid, 1.6 + d * step, mid)
        for task, y in zip(tasks, ys):
            d = min(max(task_depth.get(task, depth), 1), depth) - 1  # the layer its head reads
            box(head_x, y, text("train.diagram.head", lang, task=plot(task)), _color_of(task, colors), width=1.3)
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
            box(1.8, y, text("train.diagram.encoder", lang, task=plot(task)), _color_of(task, colors), width=1.8)
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
            fig.add_annotation(x=3.7, y=(ys[0] + ys[1]) / 2, text=text("train.diagram.mixing", lang), showarrow=False,
                               font=dict(color=SHARED_GREY, size=11), xanchor="left",
                               bgcolor="rgba(255,255,255,0.85)")
    fig.update_layout(
        template="plotly_white", height=70 + 60 * n, margin=dict(l=5, r=5, t=5, b=5), showlegend=False,
        xaxis=dict(visible=False, range=[-0.1, 6.2], fixedrange=True),
        yaxis=dict(visible=False, range=[-0.6, n - 0.4], fixedrange=True),
    )
    return fig


def _experts(fig: go.Figure, box: Any, arrow: Any, tasks: list[str], ys: list[float], mid: float,
             colors: Mapping[str, str], structure: Mapping[str, Any], lang: str = "en") -> None:
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
        entries.append((None, text("train.diagram.experts", lang)))
    elif total <= MAX_DRAWN_EXPERTS:
        for owner, count in groups:
            for e in range(1, count + 1):
                if owner is not None:
                    label = f"{plot(owner)} {e}"
                elif own_word:
                    label = text("train.diagram.shared_n", lang, n=e)
                else:
                    label = text("train.diagram.expert_n", lang, n=e)
                entries.append((owner, label))
    else:  # too many to draw one by one: one box per group, with its count
        for owner, count in groups:
            if owner is not None:
                label = text("train.diagram.n_own", lang, task=plot(owner), count=count)
            elif own_word:
                label = text("train.diagram.n_shared_experts", lang, count=count)
            else:
                label = text("train.diagram.n_experts", lang, count=count)
            entries.append((owner, label))
    k = len(entries)
    span = max(n, 1) - 0.2
    expert_ys = [mid + span / 2 - span * (e + 0.5) / k for e in range(k)] if k > 1 else [mid]
    height = min(0.5, 0.85 * span / k)
    for (owner, label), y in zip(entries, expert_ys):
        fill = SHARED_GREY if owner is None else _lighten(_color_of(owner, colors), 0.35)
        box(1.6, y, label, fill, width=1.1, height=height, font="white" if owner is None else "#333333")
        arrow(1.1, mid, 1.6, y)
    if structure.get("levels", 1) > 1:
        fig.add_annotation(x=2.15, y=mid + span / 2 + 0.05, text=text("train.diagram.levels", lang, levels=structure["levels"]),
                           showarrow=False, font=dict(color=SHARED_GREY, size=10), yanchor="bottom")
    for task, y in zip(tasks, ys):
        box(3.2, y, text("train.diagram.gate", lang, task=plot(task)), _color_of(task, colors), width=1.0)
        for (owner, _), ey in zip(entries, expert_ys):
            if owner is None or owner == task:
                fig.add_shape(type="line", x0=2.7, x1=3.2, y0=ey, y1=y, line=dict(color=SHARED_GREY, width=1))
