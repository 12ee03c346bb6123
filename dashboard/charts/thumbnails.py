"""A glance at a dataset before training on it (issue 15: what a Playground user expects).

What the knobs do should be visible before the first run: the y1-vs-y2 scatter of two
regression tasks shows what the correlation knob does; a vector dataset with a class task
is a scatter of its first two features coloured by the class (the penguins' classic bill
plot); an image dataset shows a few of its pictures with their labels; a token dataset shows
example sentences with each word's tags and the sentence's labels (a multilabel task's
label set joined by ';', '∅' for none). All from the training
split, never the held-out rows. User strings (task, class and feature names) are escaped.
Titles follow `lang` (en, zh).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.charts.style import task_colors
from dashboard.i18n import text
from dashboard.safe_text import plot
from mtl_core.tasks.base import IGNORE_INDEX, PAD_ID, MTLDataset

POINTS = 400  # scatter points at most: enough to see a correlation, cheap for the browser
SENTENCES = 3
IMAGES = 6
_PIXEL = re.compile(r"^px_r(\d+)_c(\d+)$")


def data_preview(ds: MTLDataset, tasks: Sequence[str] | None = None,
                 colors: Mapping[str, str] | None = None, lang: str = "en") -> tuple[str, Any] | None:
    """("figure", plotly figure) or ("table", DataFrame) for the dataset's training split,
    about `tasks` (default: all of its tasks); None when there is nothing worth drawing."""
    names = [t for t in (tasks or list(ds.tasks)) if t in ds.tasks] or list(ds.tasks)
    colors = dict(colors or task_colors(list(ds.tasks)))
    if ds.input_kind == "tokens":
        return ("table", example_sentences(ds, names, lang)) if ds.vocab else None
    regression = [t for t in names if ds.tasks[t].kind == "regression"]
    if len(regression) >= 2:
        return "figure", target_scatter(ds, regression[0], regression[1], lang)
    classes = [t for t in names if ds.tasks[t].kind == "classification"]
    if ds.feature_names and all(_PIXEL.match(f) for f in ds.feature_names):
        return "figure", image_grid(ds, classes, lang)
    if classes and ds.input_dim >= 2:
        return "figure", feature_scatter(ds, classes[0], lang)
    return None


def _rows(n: int) -> np.ndarray:
    """At most POINTS row indices, spread evenly over the split (deterministic)."""
    return np.unique(np.linspace(0, n - 1, min(n, POINTS)).astype(int))


def _layout(fig: go.Figure, title: str) -> go.Figure:
    fig.update_layout(title={"text": title, "font": {"size": 13}}, height=260,
                      margin={"l": 10, "r": 10, "t": 36, "b": 10}, showlegend=False)
    return fig


def target_scatter(ds: MTLDataset, a: str, b: str, lang: str = "en") -> go.Figure:
    """Task a's target against task b's, one dot per training row, with their correlation."""
    idx = _rows(len(ds.train))
    ya = ds.train.y[a][idx].float().numpy()
    yb = ds.train.y[b][idx].float().numpy()
    r = float(np.corrcoef(ya, yb)[0, 1]) if len(idx) > 2 else float("nan")
    fig = go.Figure(go.Scattergl(x=ya, y=yb, mode="markers", marker={"size": 4, "opacity": 0.6, "color": "#555"},
                                 hovertemplate=f"{plot(a)} %{{x:.2f}}<br>{plot(b)} %{{y:.2f}}<extra></extra>"))
    fig.update_xaxes(title_text=plot(a))
    fig.update_yaxes(title_text=plot(b))
    return _layout(fig, text("train.preview.targets", lang, a=plot(a), b=plot(b), r=r))


def feature_scatter(ds: MTLDataset, task: str, lang: str = "en") -> go.Figure:
    """The first two input features of the training rows, coloured by `task`'s class."""
    idx = _rows(len(ds.train))
    x = ds.train.x[idx].float().numpy()
    y = ds.train.y[task][idx].numpy()
    names = ds.feature_names or [f"x{i}" for i in range(ds.input_dim)]
    spec = ds.tasks[task]
    labels = list(spec.class_names or [str(i) for i in range(spec.num_classes or int(y.max()) + 1)])
    fig = go.Figure()
    for c, label in enumerate(labels):
        keep = y == c
        if keep.any():
            fig.add_trace(go.Scattergl(x=x[keep, 0], y=x[keep, 1], mode="markers", name=plot(label),
                                       marker={"size": 5, "opacity": 0.75}))
    fig.update_xaxes(title_text=plot(names[0]))
    fig.update_yaxes(title_text=plot(names[1]))
    fig = _layout(fig, text("train.preview.features", lang, task=plot(task)))
    fig.update_layout(showlegend=True, legend={"font": {"size": 10}})
    return fig


def image_grid(ds: MTLDataset, tasks: Sequence[str], lang: str = "en") -> go.Figure:
    """A few training inputs drawn as images (features named px_r<row>_c<col>), titled
    with their labels."""
    coords = [tuple(map(int, _PIXEL.match(f).groups())) for f in ds.feature_names or []]
    height, width = max(r for r, _ in coords) + 1, max(c for _, c in coords) + 1
    idx = _rows(len(ds.train))[:IMAGES]
    images = np.zeros((len(idx), height, width))
    flat = ds.train.x[idx].float().numpy()
    for k, (r, c) in enumerate(coords):
        images[:, r, c] = flat[:, k]
    strip = np.concatenate([np.pad(im, ((0, 0), (0, 1)), constant_values=np.nan) for im in images], axis=1)
    fig = go.Figure(go.Heatmap(z=strip[::-1], colorscale="Greys", showscale=False, hoverinfo="skip"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x")
    labels = []
    for i in idx:
        parts = []
        for t in tasks:
            spec, value = ds.tasks[t], int(ds.train.y[t][i])
            names = spec.class_names or ()
            parts.append(f"{plot(t)} {plot(names[value] if value < len(names) else value)}")
        labels.append(", ".join(parts))
    title = (text("train.preview.images_labelled", lang, labels=" | ".join(labels)) if labels and tasks
             else text("train.preview.images", lang))
    fig = _layout(fig, title)
    fig.update_layout(height=200)
    return fig


def example_sentences(ds: MTLDataset, tasks: Sequence[str], lang: str = "en") -> pd.DataFrame:
    """A few training sentences: each word with its tags (word/TAG…), and the sentence labels."""
    vocab = ds.vocab or []
    rows = []
    for i in _rows(len(ds.train))[:SENTENCES]:
        ids = ds.train.x[i].tolist()
        words = [vocab[w] if 0 <= w < len(vocab) else "?" for w in ids if w != PAD_ID]
        row: dict[str, str] = {}
        tagged = []
        for j, word in enumerate(words):
            tags = []
            for t in tasks:
                spec = ds.tasks[t]
                if spec.kind == "tagging":
                    value = int(ds.train.y[t][i][j])
                    if value != IGNORE_INDEX:
                        names = spec.class_names or ()
                        tags.append(str(names[value]) if value < len(names) else str(value))
            tagged.append(word + ("/" + "/".join(tags) if tags else ""))
        row[text("train.preview.sentence", lang)] = " ".join(tagged)
        for t in tasks:
            spec = ds.tasks[t]
            if spec.kind == "classification":
                value = int(ds.train.y[t][i])
                names = spec.class_names or ()
                row[t] = str(names[value]) if value < len(names) else str(value)
            elif spec.kind == "multilabel":
                values = ds.train.y[t][i]
                if not bool(values.isnan().any()):  # an unlabelled row shows nothing
                    names = spec.class_names or ()
                    on = [str(names[k]) if k < len(names) else str(k) for k in values.nonzero().flatten().tolist()]
                    row[t] = ";".join(on) or "∅"
        rows.append(row)
    return pd.DataFrame(rows)
