"""Interference: do the tasks pull the shared parameters the same way, or against each other?"""

from __future__ import annotations

from typing import Any, Mapping

import streamlit as st

from dashboard import charts, state, verdicts
from dashboard.app_pages import common
from dashboard.safe_text import html_md, md
from mtl_core.grouping import recommend_grouping
from mtl_core.interference import conflict_rate, interference_summary
from mtl_core.phases import MTL
from mtl_core.store import ACTIVE_STATUSES

POLL_S = 2.0
# A pair's words follow its verdict (dashboard.verdicts); a pair without one gets none.
PAIR_WORDS = {
    verdicts.AGREE: "they mostly agree: sharing lets each task's updates help the other",
    verdicts.CONFLICT: "they mostly conflict: try less sharing (soft) or a gradient-balancing strategy",
    verdicts.NO_SIGN: "no clear sign — the mean cosine is too close to 0, given how it varies over "
                      "the evaluations, to call them agreeing or conflicting",
}

st.title("Interference")
st.caption("At every evaluation the engine takes each task's gradient on the shared parameters. "
           "Their cosine says whether one step helps both tasks (cos > 0) or helps one and hurts the "
           "other (cos < 0: conflicting gradients, Yu et al., 2020).")


def summary(result: Mapping[str, Any], snapshots: list[dict[str, Any]], tasks: list[str]) -> dict[str, Any]:
    """The run's interference summary: the stored result's once it has finished, else the
    same assembly over the snapshots read so far (`mtl_core.interference.interference_summary`,
    which builds the stored one too)."""
    stored = result.get("interference") or {}
    if stored.get("pairs") is not None:
        return stored
    return interference_summary(snapshots, tasks)


def chip(task: str, colors: Mapping[str, str]) -> str:
    return f"<span style='color:{colors.get(task, charts.SHARED_GREY)}; font-weight:600'>{html_md(task)}</span>"


def affinity_section(info: Mapping[str, Any], tasks: list[str], colors: Mapping[str, str],
                     config: Mapping[str, Any]) -> None:
    st.subheader("Which task helps which")
    affinity = info.get("affinity")
    if affinity is None:
        why = ("this run was trained with `affinity_every: 0`" if config.get("affinity_every") == 0
               else "no look-ahead has been measured yet")
        st.info(f"No task affinity: {why}. Set `affinity_every` ≥ 1 to measure it at every N-th evaluation.",
                icon=":material/info:")
        return
    left, right = st.columns([1.15, 1], gap="large")
    with left:
        k = charts.affinity_exponent(affinity)
        st.plotly_chart(charts.affinity_heatmap(tasks, affinity, colors=colors, exponent=k))
        st.caption(
            "Look-ahead affinity (Fifty et al., 2021): take one plain SGD step on the shared parameters with "
            "the **row** task's gradient and see how much the **column** task's loss drops, "
            "Z = 1 − L_col(after) / L_col(before), averaged over training. Blue: the row task's updates help "
            "the column task; red: they hurt it. One step of the learning rate changes a loss by a tiny "
            "fraction, so the values are small by construction: they are shown "
            f"{charts.scale_label(k) or 'as they are'}. "
            "Compare them with each other (and with the diagonal, a task's help to itself), not with 1.")
    with right:
        groupings = info.get("grouping") or []
        if groupings:
            grouping_panel(groupings, colors, k)
        elif len(tasks) > 8:
            st.caption("Grouping searches every split of up to 8 tasks; this run has more.")


def grouping_panel(groupings: list[dict[str, Any]], colors: Mapping[str, str], k: int) -> None:
    """The best split for each number of models with its score, the recommended one first chosen."""
    st.markdown("**Which tasks to train together**")
    by_n = {g["n_groups"]: g for g in groupings}
    options = sorted(by_n)
    best = recommend_grouping(groupings)
    assert best is not None  # groupings is not empty
    # Follow the recommendation (it moves while a run trains) until the user picks another count.
    key, seeded = "interference_groups", "_interference_groups_recommended"
    if st.session_state.get(key) not in options or st.session_state.get(key) == st.session_state.get(seeded):
        st.session_state[key] = best["n_groups"]
    st.session_state[seeded] = best["n_groups"]
    scale = 10.0 ** k
    st.dataframe(
        {"models": options,
         "best split": [by_n[n]["text"] for n in options],
         f"score {charts.scale_label(k)}".strip(): [by_n[n]["score"] * scale for n in options],
         "recommended": ["✓" if n == best["n_groups"] else "" for n in options]},
        hide_index=True,
        column_config={f"score {charts.scale_label(k)}".strip(): st.column_config.NumberColumn(format="%+.2f")},
    )
    n = st.selectbox("number of models", options, key=key,
                     format_func=lambda v: f"{v} model{'s' if v > 1 else ''}"
                     + (" (recommended)" if v == best["n_groups"] else ""),
                     help="The best split of the tasks into this many models under the affinity "
                          "(TAG's selection step, Fifty et al., 2021: exhaustive up to 8 tasks).")
    choice = by_n[n]
    st.markdown(f"Suggestion: **{md(choice['text'])}**.")
    st.markdown(" &nbsp; ".join(
        "<span style='border:1px solid #ccc; border-radius:6px; padding:2px 8px'>"
        + ", ".join(chip(t, colors) for t in group) + "</span>"
        for group in choice["groups"]
    ), unsafe_allow_html=True)
    st.caption(
        f"Score: the inter-task affinity (Fifty et al., 2021) each task receives from its group-mates — the mean "
        f"of the column's entries from its group — summed over the tasks; a task alone receives 0, so training "
        f"every task apart scores 0 and a split scores above it only when its groups help their members on "
        f"balance. Recommended: the highest score, on a tie the fewer models "
        f"(here {best['n_groups']} model{'s' if best['n_groups'] > 1 else ''}, score "
        f"{best['score'] * scale:+.2f}{' ' + charts.scale_label(k) if k else ''}). The affinity is measured on "
        "one run: a small score is within its noise.")


def verdicts_section(result: Mapping[str, Any], config: Mapping[str, Any], colors: Mapping[str, str]) -> None:
    rows = [r for r in result.get("tasks") or [] if r.get("verdict_text")]
    if not rows:
        return
    st.subheader("Did sharing help each task?")
    for r in rows:
        st.markdown(f"{verdicts.icon(verdicts.task_verdict(r))} {chip(r['name'], colors)}: "
                    f"{html_md(r['verdict_text'])}.", unsafe_allow_html=True)
    n_seeds = max(int(r.get("n_seeds") or 1) for r in rows)
    intervals = [r.get("interval") for r in rows if verdicts.interval_bounds(r.get("interval"))]
    if intervals:
        how = verdicts.method_text(intervals)
        st.caption(verdicts.WORDS_CAPTION + (f" Interval: {md(how)}." if how else ""))
    if n_seeds < 2:
        noise = ("the interval covers the noise of the test examples, not that of training: another seed "
                 "may land elsewhere" if intervals else
                 "a difference between single- and multi-task may be luck")
        st.info(f"Only one seed was run, so {noise}. Raise **seeds** (`n_seeds`) to 3 or more: each seed "
                "trains both models again, and a difference is called clear only when it exceeds the "
                "seed-to-seed noise too.", icon=":material/casino:")
        params = state.config_to_params({**config, "n_seeds": 3})
        st.page_link("app_pages/train.py", label="Set up this experiment again with 3 seeds",
                     icon=":material/model_training:", query_params=params)
    elif not intervals:  # stored before issue 12: the verdict of the seeds alone
        st.caption(f"Over {n_seeds} seeds (seed, seed + 1, …): a difference is called transfer only when the "
                   "mean paired gap exceeds twice its standard error.")


def pairs_section(info: Mapping[str, Any], snap: Mapping[str, Any], tasks: list[str],
                  colors: Mapping[str, str]) -> None:
    pairs = info.get("pairs") or []
    if not pairs:
        return
    st.subheader("Task pairs")
    left, right = st.columns([1.6, 1], gap="large")
    frame = charts.pairs_frame(pairs)
    with left:
        st.dataframe(
            charts.style_verdicts(frame, "verdict") if "verdict" in frame.columns else frame, hide_index=True,
            column_config={
                "mean cosine": st.column_config.NumberColumn(format="%+.3f",
                                                             help="mean gradient cosine over the evaluations"),
                "conflict rate %": st.column_config.NumberColumn(format="%.0f %%",
                                                                 help="share of evaluations with cos < 0"),
                "trend": st.column_config.NumberColumn(
                    format="%+.3f", help="mean cosine over the last half of training minus the first half: "
                                         "> 0 the tasks agree more as training goes on"),
                "evaluations": st.column_config.NumberColumn(help="snapshots the row rests on"),
                "verdict": st.column_config.TextColumn(
                    help="agree / conflict: the mean cosine over the evaluations is clearly above / below 0; "
                         "no clear sign: it is within its noise"),
            },
        )
    with right:
        similarity = snap.get("grad_magnitude_similarity")
        if similarity is not None:
            st.plotly_chart(charts.magnitude_heatmap(tasks, similarity, colors=colors),
                            config={"displayModeBar": False})
            st.caption("1: the two tasks' gradients are equally long; near 0: one dwarfs the other and "
                       "dominates the shared update (Yu et al., 2020).")


def panel(run_id: str, was_active: bool) -> None:
    run, message = state.get_live_run(run_id, refresh=False)
    if run is None:
        st.warning(md(message))
        return
    store = state.get_store()
    snapshots = [s for s in store.interference(run_id) if s.get("phase", MTL) == MTL]
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
    info = summary(result, snapshots, tasks)
    rates = info.get("conflict_rate") or conflict_rate(snapshots)

    st.subheader("In one sentence")
    # Pairs are keyed "a|b"; a task name may hold "|" itself, so the names come from the task list.
    pair_names = {f"{a}|{b}": (a, b) for a in tasks for b in tasks if a != b}
    pair_rows = {"|".join(p["pair"]): p for p in info.get("pairs") or [] if isinstance(p, Mapping)}
    for pair, rate in rates.items():
        a, b = pair_names.get(pair) or pair.split("|", 1)
        row = pair_rows.get(pair) or {}
        verdict = verdicts.pair_verdict(row)
        cosine = row.get("mean_cosine")
        span = verdicts.interval_text(row, fmt="+.3f")  # the engine's interval of the mean cosine
        mean = (f", mean cosine {cosine:+.3f}" + (f" ({span})" if span else "")
                if isinstance(cosine, (int, float)) else "")
        # The words "agree" / "conflict" only where the engine's verdict says so.
        st.markdown(
            (f"{verdicts.icon(verdict)} " if verdict else "")
            + f"{chip(a, colors)} and {chip(b, colors)} conflict (cos < 0) in "
            f"**{rate * 100:.0f} %** of {len(snapshots)} evaluations{mean}"
            + (f": {PAIR_WORDS[verdict]}." if verdict else "."),
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
    pairs_section(info, snap, tasks, colors)
    projection_section(snap, tasks, colors, step)
    affinity_section(info, tasks, colors, run["config"])
    log_y = st.toggle("log scale for gradient norms", key="interference_log")
    st.plotly_chart(charts.grad_norm_chart(snapshots, colors=colors, log_y=log_y))
    st.caption("Very different gradient norms mean one task dominates the shared update "
               "(the imbalance GradNorm, Chen et al., 2018, corrects).")
    verdicts_section(result, run["config"], colors)
    if was_active and run["status"] not in ACTIVE_STATUSES:
        st.rerun()


def projection_section(snap: Mapping[str, Any], tasks: list[str], colors: Mapping[str, str], step: int) -> None:
    """What each task's head sees at this evaluation (`mtl_core.projection`), if recorded."""
    projection = snap.get("projection") or {}
    if not projection:
        return  # a run recorded before projections were logged
    st.subheader("What each task's head sees")
    st.plotly_chart(charts.projection_chart(projection, tasks, colors, step=step))
    st.caption("The first validation rows, each placed by the first two principal components of the vector "
               "its task's head reads, coloured by that task's label. With hard sharing every panel shows the "
               "same shared representation, coloured by a different task: where one task's classes come apart "
               "and another's do not, the encoder learned more for the first. Move the evaluation step above to "
               "see it form during training.")


run_id = common.pick_run("Run", key="interference_run")
if run_id:
    with common.store_errors(run_id):  # a damaged record: a message, not a traceback
        row = common.read_run(run_id)  # None after saying why there is none
        if row is not None and state.is_transfer(row["config"]):
            st.info("This is a transfer experiment: it trains one task at a time, so there is no interference "
                    "to show. Its data-efficiency chart is on the Transfer page.", icon=":material/move_up:")
            st.page_link("app_pages/transfer.py", label="Open it on the Transfer page", icon=":material/move_up:",
                         query_params={state.TRANSFER_PARAM: run_id})
        elif row is not None:
            active = row["status"] in ACTIVE_STATUSES
            st.fragment(run_every=POLL_S if active else None)(common.guarded(panel))(run_id, active)
