"""Interference: do the tasks pull the shared parameters the same way, or against each other?"""

from __future__ import annotations

from typing import Any, Mapping

import streamlit as st

from dashboard import charts, i18n, sidebar, state, verdicts
from dashboard.app_pages import common
from dashboard.i18n import t
from dashboard.safe_text import html_md, md
from mtl_core.grouping import recommend_grouping
from mtl_core.interference import conflict_rate, interference_summary
from mtl_core.phases import MTL
from mtl_core.store import ACTIVE_STATUSES

POLL_S = 2.0
# A pair's words follow its verdict (dashboard.verdicts); a pair without one gets none.
PAIR_WORDS = {
    verdicts.AGREE: "interference.pair_agree",
    verdicts.CONFLICT: "interference.pair_conflict",
    verdicts.NO_SIGN: "interference.pair_no_sign",
}

lang = i18n.current()
st.title(t("interference.title"))
st.caption(t("interference.caption"))


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
    st.subheader(t("interference.affinity_header"))
    affinity = info.get("affinity")
    if affinity is None:
        why = (t("interference.affinity_off") if config.get("affinity_every") == 0
               else t("interference.affinity_not_yet"))
        st.info(t("interference.no_affinity", why=why), icon=":material/info:")
        return
    left, right = st.columns([1.15, 1], gap="large")
    with left:
        k = charts.affinity_exponent(affinity)
        st.plotly_chart(charts.affinity_heatmap(tasks, affinity, colors=colors, exponent=k, lang=lang))
        st.caption(t("interference.affinity_caption", scale=charts.scale_label(k) or t("interference.as_they_are")))
    with right:
        groupings = info.get("grouping") or []
        if groupings:
            grouping_panel(groupings, colors, k)
        elif len(tasks) > 8:
            st.caption(t("interference.too_many_tasks"))


def grouping_panel(groupings: list[dict[str, Any]], colors: Mapping[str, str], k: int) -> None:
    """The best split for each number of models with its score, the recommended one first chosen."""
    st.markdown(t("interference.grouping_header"))
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
    score = t("interference.col.score", scale=charts.scale_label(k)).strip()
    st.dataframe(
        {t("interference.col.models"): options,
         t("interference.col.best_split"): [by_n[n]["text"] for n in options],
         score: [by_n[n]["score"] * scale for n in options],
         t("interference.col.recommended"): ["✓" if n == best["n_groups"] else "" for n in options]},
        hide_index=True,
        column_config={score: st.column_config.NumberColumn(format="%+.2f")},
    )
    n = st.selectbox(t("interference.n_models"), options, key=key,
                     format_func=lambda v: t("interference.models_one" if v == 1 else "interference.models_many", n=v)
                     + (t("interference.recommended") if v == best["n_groups"] else ""),
                     help=t("interference.n_models_help"))
    choice = by_n[n]
    st.markdown(t("interference.suggestion", text=md(choice["text"])))
    st.markdown(" &nbsp; ".join(
        "<span style='border:1px solid #ccc; border-radius:6px; padding:2px 8px'>"
        + ", ".join(chip(task, colors) for task in group) + "</span>"
        for group in choice["groups"]
    ), unsafe_allow_html=True)
    st.caption(t("interference.score_caption",
                 models=t("interference.models_one" if best["n_groups"] == 1 else "interference.models_many",
                          n=best["n_groups"]),
                 score=f"{best['score'] * scale:+.2f}" + (" " + charts.scale_label(k) if k else "")))


def verdicts_section(result: Mapping[str, Any], config: Mapping[str, Any], colors: Mapping[str, str]) -> None:
    rows = [r for r in result.get("tasks") or [] if r.get("verdict_text")]
    if not rows:
        return
    st.subheader(t("interference.verdicts_header"))
    for r in rows:
        st.markdown(f"{verdicts.icon(verdicts.task_verdict(r))} {chip(r['name'], colors)}: "
                    f"{html_md(verdicts.task_sentence(r, lang))}.", unsafe_allow_html=True)
    n_seeds = max(int(r.get("n_seeds") or 1) for r in rows)
    intervals = [r.get("interval") for r in rows if verdicts.interval_bounds(r.get("interval"))]
    if intervals:
        how = verdicts.method_text(intervals, lang)
        st.caption(verdicts.words_caption(lang) + (t("results.interval_method", how=md(how)) if how else ""))
    if n_seeds < 2:
        noise = t("interference.noise_examples") if intervals else t("interference.noise_luck")
        st.info(t("interference.one_seed", noise=noise), icon=":material/casino:")
        params = state.config_to_params({**config, "n_seeds": 3})
        st.page_link("app_pages/train.py", label=t("interference.three_seeds"),
                     icon=":material/model_training:", query_params=params)
    elif not intervals:  # stored before issue 12: the verdict of the seeds alone
        st.caption(t("interference.old_seeds_caption", n=n_seeds))


def pairs_section(info: Mapping[str, Any], snap: Mapping[str, Any], tasks: list[str],
                  colors: Mapping[str, str]) -> None:
    pairs = info.get("pairs") or []
    if not pairs:
        return
    st.subheader(t("interference.pairs_header"))
    if info.get("measured_params") and info.get("shared_params"):  # a large encoder: its top layers only
        st.caption(t("interference.measured_top", measured=info["measured_params"], shared=info["shared_params"]))
    left, right = st.columns([1.6, 1], gap="large")
    frame = charts.pairs_frame(pairs)  # English column names and verdicts: the data; labels below
    with left:
        st.dataframe(
            charts.style_verdicts(frame, "verdict").format(
                {"verdict": lambda v: verdicts.word(v, lang) if v in verdicts.PAIR_VERDICTS else v})
            if "verdict" in frame.columns else frame, hide_index=True,
            column_config={
                "pair": st.column_config.TextColumn(t("interference.col.pair")),
                "mean cosine": st.column_config.NumberColumn(t("interference.col.mean_cosine"), format="%+.3f",
                                                             help=t("interference.col.mean_cosine_help")),
                "conflict rate %": st.column_config.NumberColumn(t("interference.col.conflict_rate"),
                                                                 format="%.0f %%",
                                                                 help=t("interference.col.conflict_rate_help")),
                "trend": st.column_config.NumberColumn(t("interference.col.trend"), format="%+.3f",
                                                       help=t("interference.col.trend_help")),
                "evaluations": st.column_config.NumberColumn(t("interference.col.evaluations"),
                                                             help=t("interference.col.evaluations_help")),
                "verdict": st.column_config.TextColumn(t("interference.col.verdict"),
                                                       help=t("interference.col.verdict_help")),
            },
        )
    with right:
        similarity = snap.get("grad_magnitude_similarity")
        if similarity is not None:
            st.plotly_chart(charts.magnitude_heatmap(tasks, similarity, colors=colors, lang=lang),
                            config={"displayModeBar": False})
            st.caption(t("interference.magnitude_caption"))


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
            st.info(t("interference.off"))
        elif run["status"] in ACTIVE_STATUSES:
            st.info(t("interference.no_snapshot_yet"), icon=":material/hourglass_top:")
        else:
            st.info(t("interference.none_recorded"))
        if was_active and run["status"] not in ACTIVE_STATUSES:
            st.rerun()
        return
    tasks = list(snapshots[-1]["tasks"])
    colors = charts.task_colors(state.color_tasks(run["config"], tasks))
    result = store.result(run_id) or {}
    info = summary(result, snapshots, tasks)
    rates = info.get("conflict_rate") or conflict_rate(snapshots)

    st.subheader(t("interference.sentence_header"))
    # Pairs are keyed "a|b"; a task name may hold "|" itself, so the names come from the task list.
    pair_names = {f"{a}|{b}": (a, b) for a in tasks for b in tasks if a != b}
    pair_rows = {"|".join(p["pair"]): p for p in info.get("pairs") or [] if isinstance(p, Mapping)}
    for pair, rate in rates.items():
        a, b = pair_names.get(pair) or pair.split("|", 1)
        row = pair_rows.get(pair) or {}
        verdict = verdicts.pair_verdict(row)
        cosine = row.get("mean_cosine")
        span = verdicts.interval_text(row, fmt="+.3f", lang=lang)  # the engine's interval of the mean cosine
        mean = t("interference.mean_cosine", cosine=f"{cosine:+.3f}") if isinstance(cosine, (int, float)) else ""
        mean = t("common.with_span", text=mean, span=span) if mean and span else mean
        # The words "agree" / "conflict" only where the engine's verdict says so.
        st.markdown(
            (f"{verdicts.icon(verdict)} " if verdict else "")
            + t("interference.pair_sentence", a=chip(a, colors), b=chip(b, colors), rate=f"{rate * 100:.0f}",
                n=len(snapshots), mean=mean)
            + (t("interference.pair_words", words=t(PAIR_WORDS[verdict])) if verdict else t("interference.full_stop")),
            unsafe_allow_html=True,
        )

    steps = [s["step"] for s in snapshots]
    left, right = st.columns([1, 1.3], gap="large")
    with left:
        if len(steps) > 1:
            step = st.select_slider(t("interference.eval_step"), options=steps, value=steps[-1],
                                    key="interference_step")
        else:
            step = steps[-1]
        snap = snapshots[steps.index(step)]
        title = t("interference.cosine_at", step=step) + (t("interference.latest") if step == steps[-1] else "")
        st.plotly_chart(charts.cosine_heatmap(tasks, snap["grad_cosine"], colors=colors, title=title))
    with right:
        st.plotly_chart(charts.cosine_history_chart(snapshots, colors=colors, lang=lang))
    pairs_section(info, snap, tasks, colors)
    projection_section(snap, tasks, colors, step)
    affinity_section(info, tasks, colors, run["config"])
    log_y = st.toggle(t("interference.log_norms"), key="interference_log")
    st.plotly_chart(charts.grad_norm_chart(snapshots, colors=colors, log_y=log_y, lang=lang))
    st.caption(t("interference.norms_caption"))
    verdicts_section(result, run["config"], colors)
    if was_active and run["status"] not in ACTIVE_STATUSES:
        st.rerun()


def projection_section(snap: Mapping[str, Any], tasks: list[str], colors: Mapping[str, str], step: int) -> None:
    """What each task's head sees at this evaluation (`mtl_core.projection`), if recorded."""
    projection = snap.get("projection") or {}
    if not projection:
        return  # a run recorded before projections were logged
    st.subheader(t("interference.projection_header"))
    st.plotly_chart(charts.projection_chart(projection, tasks, colors, step=step, lang=lang))
    st.caption(t("interference.projection_caption"))


run_id = common.pick_run(t("common.run"), key="interference_run")
if run_id:
    with common.store_errors(run_id):  # a damaged record: a message, not a traceback
        row = common.read_run(run_id)  # None after saying why there is none
        if row is not None and state.is_transfer(row["config"]):
            st.info(t("interference.is_transfer"), icon=":material/move_up:")
            st.page_link("app_pages/transfer.py", label=t("common.open_transfer"), icon=":material/move_up:",
                         query_params={state.TRANSFER_PARAM: run_id})
        elif row is not None:
            active = row["status"] in ACTIVE_STATUSES
            sidebar.live_fragment(common.guarded(panel), POLL_S if active else None, run_id, active)
