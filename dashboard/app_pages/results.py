"""Results: did sharing help? Single-task vs multi-task on the held-out test split, and Δm."""

from __future__ import annotations

import streamlit as st

from dashboard import charts, i18n, state, verdicts
from dashboard.app_pages import common
from dashboard.i18n import t
from dashboard.safe_text import html_md, md
from mtl_core.phases import MTL

lang = i18n.current()
st.title(t("results.title"))
st.caption(t("results.caption"))

def gates_section(run_id: str, result: dict, names: list[str], colors: dict[str, str]) -> None:
    """Which experts each task's gate reads (MMoE, CGC, PLE), at the end and over training."""
    gates = result.get("gates")
    if not gates:
        return
    st.subheader(t("results.gates_header"))
    st.caption(t("results.gates_caption"))
    st.plotly_chart(charts.gates_bars(gates, colors=colors, lang=lang))
    history = state.get_store().metrics(run_id, phase=MTL, split="gates")
    if history["step"].nunique() > 1:
        with st.expander(t("results.gates_history")):
            st.plotly_chart(charts.gates_history_chart(history, [n for n in names if n in gates], colors=colors,
                                                       lang=lang))


def truncation_caption(cut: object) -> str | None:
    """What cutting the texts to the padded length cost, per split (issue 16); None for a run
    without a text input (or stored before results kept it)."""
    from mtl_core.tasks.text import SOURCE_LONGEST, SOURCE_OPTION, SOURCE_PERCENTILE

    if not isinstance(cut, dict) or "max_len" not in cut:
        return None
    source = str(cut.get("source") or "")
    for name, said in (("option", SOURCE_OPTION), ("percentile", SOURCE_PERCENTILE), ("longest", SOURCE_LONGEST)):
        if source.startswith(said):  # our own words, said in the reader's language
            source = t(f"results.truncation_source.{name}") + source[len(said):]
            break
    rows, words = cut.get("rows_cut") or {}, cut.get("words_cut") or {}
    splits = [s for s in ("train", "val", "test") if s in rows]
    if not any(rows.values()):
        return t("results.truncation_none", max_len=cut["max_len"], source=md(source))
    return t("results.truncation_cut", max_len=cut["max_len"], source=md(source),
             rows=t("results.list_sep").join(t(f"results.split_rows.{s}", n=rows[s]) for s in splits),
             words=t("results.list_sep").join(str(words.get(s, 0)) for s in splits))


def selection_section(result: dict, rows: list[dict]) -> None:
    """Which step's weights gave the test metrics (mtl_core.selection), and the numbers the
    weights at the end of training would have given."""
    sel = result.get("selection")
    if not isinstance(sel, dict) or not sel.get("rule"):
        return
    steps = sel.get("steps")
    if sel["rule"] == "last":
        st.caption(t("results.selection_last", steps=steps))
        return
    base = sel.get("baseline_steps") or {}
    where = ", ".join(t("results.task_at_step", task=md(name), step=s) for name, s in base.items() if s is not None)
    st.caption(t("results.selection_best", mtl_step=sel.get("mtl_step"), steps=steps,
                 baselines=t("results.selection_baselines", where=where) if where else ""))
    at_end = [r for r in rows if isinstance(r.get("at_end"), dict)]
    if not at_end:
        return
    with st.expander(t("results.at_end_header")):
        table = [{
            t("results.col.task"): r["name"], t("results.col.metric"): r["metric"],
            t("results.col.stl_selected"): r.get("stl"), t("results.col.stl_end"): r["at_end"].get("stl"),
            t("results.col.mtl_selected"): r.get("mtl"), t("results.col.mtl_end"): r["at_end"].get("mtl"),
            t("results.col.delta_selected"): r.get("delta_pct"), t("results.col.delta_end"): r["at_end"].get("delta_pct"),
        } for r in at_end]
        st.dataframe(table, hide_index=True)  # plain text cells: names are not Markdown here
        end_dm = sel.get("delta_m_at_end")
        if end_dm is not None and result.get("delta_m") is not None:
            st.caption(t("results.dm_at_end", selected=f"{result['delta_m']:+.2f}", end=f"{end_dm:+.2f}"))


run_id = common.pick_run(t("common.run"), key="results_run")
if run_id:
    with common.store_errors(run_id):  # a damaged record: a message, not a traceback
        run, result = common.load_result(run_id)
        if result is not None and state.is_transfer(result.get("config") or run["config"]):
            st.info(t("results.is_transfer"), icon=":material/move_up:")
            st.page_link("app_pages/transfer.py", label=t("common.open_transfer"), icon=":material/move_up:",
                         query_params={state.TRANSFER_PARAM: run_id})
        elif result is not None:
            config = result.get("config") or run["config"]
            rows = result.get("tasks") or []
            names = [r["name"] for r in rows]
            colors = charts.task_colors(state.color_tasks(config, names))

            dm = result.get("delta_m")
            n_seeds = max([int(r.get("n_seeds") or 1) for r in rows] or [1])
            judged = {r["name"]: verdicts.task_verdict(r) for r in rows}
            hurt = [name for name, v in judged.items() if v == verdicts.HURT]
            c_dm, c_tasks, c_params, c_speed = st.columns(4)
            c_dm.metric(t("results.dm_label"), f"{dm:+.2f} %" if dm is not None else "—",
                        help=t("results.dm_help"))
            verdicts.delta_m_badge(c_dm, result, lang=lang)
            c_tasks.metric(t("results.hurt_label"),
                           f"{len(hurt)} / {len(rows)}" if any(judged.values()) else "—",
                           help=t("results.hurt_help") if any(judged.values()) else t("results.hurt_help_none"))
            params = result.get("parameters") or {}
            if params.get("mtl") and params.get("stl_total"):
                c_params.metric(t("results.params_label"), f"{params['mtl']['total']:,}",
                                delta=t("results.params_delta", diff=f"{params['mtl']['total'] - params['stl_total']:+,}",
                                        stl=f"{params['stl_total']:,}"),
                                delta_color="inverse")
            speed = (result.get("throughput") or {}).get("samples_per_s")
            if speed:
                c_speed.metric(t("results.speed_label"), f"{speed:,.0f}",
                               help=t("results.speed_help", device=md(result.get("device")))
                                    + (t("results.speed_threads", threads=md(str(threads["label"])))  # mtl_core.threads
                                       if isinstance(threads := result.get("threads"), dict) and threads.get("label")
                                       else ""))

            st.subheader(t("results.table_header"))
            frame = charts.comparison_frame(rows)  # English columns and verdicts: the data
            st.table(charts.style_comparison(frame, colors=colors, lang=lang))  # shown in the reader's language
            trivial = [r for r in rows if isinstance(r.get("trivial"), dict)]
            if trivial:
                how = ", ".join(dict.fromkeys(verdicts.trivial_name(r["trivial"].get("name"), lang) for r in trivial))
                st.caption(t("results.trivial_caption", how=md(how)))
            for r in rows:
                if r.get("metric_reason"):
                    st.caption(t("results.metric_reason", task=md(r["name"]),
                                 reason=md(verdicts.metric_reason_text(r["metric_reason"], lang))))
            cut_line = truncation_caption((result.get("dataset") or {}).get("truncation"))
            if cut_line:
                st.caption(cut_line)
            selection_section(result, rows)
            intervals = [r.get("interval") for r in rows if verdicts.interval_bounds(r.get("interval"))]
            seeds = t("results.seeds_spread", n=n_seeds) if n_seeds > 1 else ""
            if intervals:
                how = verdicts.method_text(intervals, lang)
                st.caption(verdicts.words_caption(lang) + (t("results.interval_method", how=md(how)) if how else "")
                           + seeds)
            elif any(judged.values()) and n_seeds > 1 and verdicts.delta_m_verdict(result) is None:
                # stored before issue 12: the verdict of the seeds alone
                st.caption(t("results.old_seeds_caption", n=n_seeds))
            elif any(judged.values()):
                st.caption(t("results.judged_caption") + seeds)
            else:
                st.caption(t("results.no_verdicts_caption"))
            for r in rows:
                if r.get("verdict_text"):
                    st.markdown(f"{verdicts.icon(judged[r['name']])} "
                                f"<span style='color:{colors.get(r['name'], charts.SHARED_GREY)}; "
                                f"font-weight:600'>{html_md(r['name'])}</span>: "
                                f"{html_md(verdicts.task_sentence(r, lang))}.",
                                unsafe_allow_html=True)
            if hurt:
                st.warning(t("results.hurt_warning_one" if len(hurt) == 1 else "results.hurt_warning_many",
                             tasks=", ".join(md(name) for name in hurt)),
                           icon=":material/trending_down:")
            st.plotly_chart(charts.comparison_bars(rows, colors=colors, lang=lang))

            st.subheader(t("results.weights_header"))
            weights = state.get_store().metrics(run_id, phase=MTL, metric="weight")
            if weights.empty:
                st.caption(t("results.no_weights"))
            else:
                raw = st.toggle(t("results.raw_values"), key="results_raw_weights", help=t("results.raw_values_help"))
                st.plotly_chart(charts.weights_chart(weights, names, colors=colors, share=not raw, lang=lang))
                st.caption(t("results.weights_caption"))

            gates_section(run_id, result, names, colors)

            with st.expander(t("results.configuration")):
                st.code(common.config_yaml(config), language="yaml")
            with st.expander(t("results.all_metrics")):
                st.dataframe(common.all_metrics_frame(rows), hide_index=True, column_config={
                    "task": t("results.col.task"), "metric": t("results.col.metric"),
                    "single-task": t("results.col.single_task"), "multi-task": t("results.col.multi_task")})
