"""Interference: do the tasks pull the shared parameters the same way, or against each other?"""

from __future__ import annotations

import streamlit as st

from dashboard import charts, state
from dashboard.app_pages import common
from mtl_core.errors import StoreError
from mtl_core.interference import conflict_rate
from mtl_core.store import ACTIVE_STATUSES

POLL_S = 2.0

st.title("Interference")
st.caption("At every evaluation the engine takes each task's gradient on the shared parameters. "
           "Their cosine says whether one step helps both tasks (cos > 0) or helps one and hurts the "
           "other (cos < 0: conflicting gradients, Yu et al., 2020).")


def panel(run_id: str, was_active: bool) -> None:
    store = state.get_store()
    try:
        run = store.get_run(run_id)
    except StoreError as exc:
        st.warning(f"{exc}. It may have been deleted.")
        return
    snapshots = [s for s in store.interference(run_id) if s.get("phase", "mtl") == "mtl"]
    if not snapshots:
        config = run["config"]
        if not config.get("interference", True):
            st.info("This run was trained with `interference: false`, so no gradients were recorded.")
        elif run["status"] in ACTIVE_STATUSES:
            st.info("No snapshot yet: the first one comes with the multi-task model's first evaluation.",
                    icon=":material/hourglass_top:")
        else:
            st.info("This run recorded no interference: its sharing mode has no parameters shared by "
                    "several tasks (e.g. single_task or soft sharing), or it has one task.")
        if was_active and run["status"] not in ACTIVE_STATUSES:
            st.rerun()
        return
    tasks = list(snapshots[-1]["tasks"])
    colors = charts.task_colors(state.color_tasks(run["config"], tasks))
    result = store.result(run_id) or {}
    rates = (result.get("interference") or {}).get("conflict_rate") or conflict_rate(snapshots)

    st.subheader("In one sentence")
    for pair, rate in rates.items():
        a, b = pair.split("|", 1)
        verdict = ("they mostly agree: sharing lets each task's updates help the other"
                   if rate < 0.2 else
                   "they often disagree: part of each step undoes the other task's progress"
                   if rate < 0.5 else
                   "they mostly conflict: try less sharing (soft) or a gradient-balancing strategy")
        st.markdown(
            f"<span style='color:{colors[a]}; font-weight:600'>{a}</span> and "
            f"<span style='color:{colors[b]}; font-weight:600'>{b}</span> conflict (cos < 0) in "
            f"**{rate * 100:.0f} %** of {len(snapshots)} evaluations: {verdict}.",
            unsafe_allow_html=True,
        )

    steps = [s["step"] for s in snapshots]
    left, right = st.columns([1, 1.3], gap="large")
    with left:
        if len(steps) > 1:
            step = st.select_slider("evaluation step", options=steps, value=steps[-1], key="interference_step")
        else:
            step = steps[-1]
        snap = snapshots[steps.index(step)]
        title = f"gradient cosine at step {step}" + (" (latest)" if step == steps[-1] else "")
        st.plotly_chart(charts.cosine_heatmap(tasks, snap["grad_cosine"], colors=colors, title=title))
    with right:
        st.plotly_chart(charts.cosine_history_chart(snapshots, colors=colors))
    log_y = st.toggle("log scale for gradient norms", key="interference_log")
    st.plotly_chart(charts.grad_norm_chart(snapshots, colors=colors, log_y=log_y))
    st.caption("Very different gradient norms mean one task dominates the shared update "
               "(the imbalance GradNorm, Chen et al., 2018, corrects).")
    if was_active and run["status"] not in ACTIVE_STATUSES:
        st.rerun()


run_id = common.pick_run("Run", key="interference_run")
if run_id:
    row, message = state.get_run_safe(run_id)
    if row is None:
        st.error(message)
    else:
        active = row["status"] in ACTIVE_STATUSES
        st.fragment(run_every=POLL_S if active else None)(panel)(run_id, active)
