"""The page bench/redraw.py loads: a live panel that polls every second, drawing the Train
page's loss chart (2 tasks with baselines and the total; `n` points per training curve) in
one of four ways, chosen by `?mode=`: `none` (no chart: the poll alone), `same` (the same
figure every poll), `new` (new points every poll: a new figure) and `static` (as `new`, with
plotly's staticPlot)."""

from __future__ import annotations

import sys
from pathlib import Path

# Streamlit puts this script's folder (bench/, which holds a dashboard.py) first on sys.path:
# the project's root goes before it, so `dashboard` is the dashboard package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import charts

mode = st.query_params.get("mode", "new")
n_points = int(st.query_params.get("n", "500"))
st.session_state.setdefault("polls", 0)


def metrics(poll: int) -> pd.DataFrame:
    """Loss rows like a run's: train every step, validation every 10th, baselines too."""
    rng = np.random.default_rng(poll)
    steps = np.arange(1, n_points + 1) * (poll + 1)
    frames = []
    for task in ("y1", "y2"):
        for phase in ("mtl", f"stl:{task}"):
            for split, n in (("train", n_points), ("val", max(n_points // 10, 1))):
                frames.append(pd.DataFrame({"step": steps[:n], "phase": phase, "split": split, "metric": "loss",
                                            "task": task, "value": 1 / np.sqrt(steps[:n]) + 0.01 * rng.random(n)}))
    frames.append(pd.DataFrame({"step": steps, "phase": "mtl", "split": "train", "metric": "loss",
                                "task": "total", "value": 2 / np.sqrt(steps)}))
    return pd.concat(frames, ignore_index=True)


@st.fragment(run_every=1.0)
def panel() -> None:
    st.session_state.polls += 1
    polls = st.session_state.polls
    st.progress(polls % 100 / 100, text=f"poll {polls}")
    st.caption(f"polls={polls}")
    if mode == "none":
        return
    if mode == "same":
        figure = st.session_state.setdefault("figure", charts.loss_curves(metrics(0), ["y1", "y2"]))
    else:
        figure = charts.loss_curves(metrics(polls), ["y1", "y2"], reuse=st.session_state.get("figure"))
        st.session_state["figure"] = figure
    st.plotly_chart(figure, config={"staticPlot": True} if mode == "static" else {})


panel()
