"""Results: did sharing help? Single-task vs multi-task on the held-out test split, and Δm."""

from __future__ import annotations

import streamlit as st

from dashboard import charts, state, verdicts
from dashboard.app_pages import common
from dashboard.safe_text import html_md, md
from mtl_core.phases import MTL

st.title("Results")
st.caption("Each task's test metric for its own single-task model and for the multi-task model. "
           "Δ % is signed so that positive always means the multi-task model is better.")

def gates_section(run_id: str, result: dict, names: list[str], colors: dict[str, str]) -> None:
    """Which experts each task's gate reads (MMoE, CGC, PLE), at the end and over training."""
    gates = result.get("gates")
    if not gates:
        return
    st.subheader("Which experts each task uses")
    st.caption("Each task's gate mixes the experts with softmax weights that sum to 1 (Ma et al., 2018; "
               "Tang et al., 2020), shown at the last evaluation, averaged over a batch. Tasks that read "
               "the same experts share knowledge; tasks that read different ones have split the network.")
    st.plotly_chart(charts.gates_bars(gates, colors=colors))
    history = state.get_store().metrics(run_id, phase=MTL, split="gates")
    if history["step"].nunique() > 1:
        with st.expander("Gate weights over training"):
            st.plotly_chart(charts.gates_history_chart(history, [t for t in names if t in gates], colors=colors))


def selection_section(result: dict, rows: list[dict]) -> None:
    """Which step's weights gave the test metrics (mtl_core.selection), and the numbers the
    weights at the end of training would have given."""
    sel = result.get("selection")
    if not isinstance(sel, dict) or not sel.get("rule"):
        return
    steps = sel.get("steps")
    if sel["rule"] == "last":
        st.caption(f"Tested with the weights at the end of training (selection: last, step {steps}).")
        return
    base = sel.get("baseline_steps") or {}
    where = ", ".join(f"{md(t)} at step {s}" for t, s in base.items() if s is not None)
    st.caption(f"Each model is tested at its best validation step (selection: best_val): the multi-task model "
               f"at step {sel.get('mtl_step')} of {steps} (best validation Δm against the baselines)"
               + (f", the single-task baselines {where}" if where else "") + " (their best primary metric). "
               "Reading the final weights instead rewards whichever model overfitted less by the end.")
    at_end = [r for r in rows if isinstance(r.get("at_end"), dict)]
    if not at_end:
        return
    with st.expander("At the selected step vs at the end of training"):
        table = [{
            "task": r["name"], "metric": r["metric"],
            "single-task, selected": r.get("stl"), "single-task, at the end": r["at_end"].get("stl"),
            "multi-task, selected": r.get("mtl"), "multi-task, at the end": r["at_end"].get("mtl"),
            "Δ %, selected": r.get("delta_pct"), "Δ %, at the end": r["at_end"].get("delta_pct"),
        } for r in at_end]
        st.dataframe(table, hide_index=True)  # plain text cells: names are not Markdown here
        end_dm = sel.get("delta_m_at_end")
        if end_dm is not None and result.get("delta_m") is not None:
            st.caption(f"Δm at the selected steps {result['delta_m']:+.2f} %, with the final weights {end_dm:+.2f} %.")


run_id = common.pick_run("Run", key="results_run")
if run_id:
    with common.store_errors(run_id):  # a damaged record: a message, not a traceback
        run, result = common.load_result(run_id)
        if result is not None and state.is_transfer(result.get("config") or run["config"]):
            st.info("This is a transfer experiment: its data-efficiency table is on the Transfer page.",
                    icon=":material/move_up:")
            st.page_link("app_pages/transfer.py", label="Open it on the Transfer page", icon=":material/move_up:",
                         query_params={state.TRANSFER_PARAM: run_id})
        elif result is not None:
            config = result.get("config") or run["config"]
            rows = result.get("tasks") or []
            names = [r["name"] for r in rows]
            colors = charts.task_colors(state.color_tasks(config, names))

            dm = result.get("delta_m")
            n_seeds = max([int(r.get("n_seeds") or 1) for r in rows] or [1])
            judged = {r["name"]: verdicts.task_verdict(r) for r in rows}
            hurt = [t for t, v in judged.items() if v == verdicts.HURT]
            c_dm, c_tasks, c_params, c_speed = st.columns(4)
            c_dm.metric("Δm (Maninis et al., 2019)", f"{dm:+.2f} %" if dm is not None else "—",
                        help="Mean over tasks of the signed relative change of the multi-task model vs each "
                             "task's single-task baseline; positive: multi-task learning helped on average.")
            verdicts.delta_m_badge(c_dm, result)
            c_tasks.metric("tasks that sharing hurt",
                           f"{len(hurt)} / {len(rows)}" if any(judged.values()) else "—",
                           help="Tasks whose 95 % interval of the paired difference (multi-task − single-task) "
                                "lies wholly below 0." if any(judged.values()) else
                                "This run has no verdicts: it was stored before verdicts knew their noise.")
            params = result.get("parameters") or {}
            if params.get("mtl") and params.get("stl_total"):
                c_params.metric("parameters, multi-task vs single-task", f"{params['mtl']['total']:,}",
                                delta=f"{params['mtl']['total'] - params['stl_total']:+,} vs {params['stl_total']:,}",
                                delta_color="inverse")
            speed = (result.get("throughput") or {}).get("samples_per_s")
            if speed:
                c_speed.metric("training speed, samples/s", f"{speed:,.0f}",
                               help=f"multi-task model on {md(result.get('device'))}"
                                    + (f", CPU threads: {md(str(threads['label']))}"  # mtl_core.threads
                                       if isinstance(threads := result.get("threads"), dict) and threads.get("label")
                                       else ""))

            st.subheader("Single-task vs multi-task (test split)")
            frame = charts.comparison_frame(rows)
            st.table(charts.style_comparison(frame, colors=colors))
            trivial = [r for r in rows if isinstance(r.get("trivial"), dict)]
            if trivial:
                how = ", ".join(dict.fromkeys(str(r["trivial"].get("name") or "") for r in trivial))
                st.caption(f"**trivial baseline**: the test metric of a model that ignores its input "
                           f"({md(how)}, learnt from the training split). A model no better than it has collapsed "
                           "to the most common answer, whatever its accuracy looks like.")
            for r in rows:
                if r.get("metric_reason"):
                    st.caption(f"Primary metric of {md(r['name'])}: {md(r['metric_reason'])}: its classes are "
                               "imbalanced, so accuracy would reward always answering the majority class "
                               "(accuracy is under All test metrics).")
            selection_section(result, rows)
            intervals = [r.get("interval") for r in rows if verdicts.interval_bounds(r.get("interval"))]
            if intervals:
                how = verdicts.method_text(intervals)
                st.caption(verdicts.WORDS_CAPTION + (f" Interval: {md(how)}." if how else "")
                           + (f" Means ± standard deviation over {n_seeds} seeds." if n_seeds > 1 else ""))
            elif any(judged.values()) and n_seeds > 1 and verdicts.delta_m_verdict(result) is None:
                # stored before issue 12: the verdict of the seeds alone
                st.caption(f"Mean ± standard deviation over {n_seeds} seeds. The verdict calls a difference "
                           "clear only when the mean paired gap exceeds twice its standard error.")
            elif any(judged.values()):
                st.caption("**helped** / **hurt**: the difference is beyond its noise; **no clear difference**: "
                           "it is within it, so it may be luck (each task's sentence below says how it was "
                           "judged). Green and red mark only clear differences."
                           + (f" Means ± standard deviation over {n_seeds} seeds." if n_seeds > 1 else ""))
            else:
                st.caption("This run has no verdicts (it was stored before verdicts knew their noise): a "
                           "small difference may be luck, so nothing is coloured. Train it again for a verdict "
                           "with its 95 % interval.")
            for r in rows:
                if r.get("verdict_text"):
                    st.markdown(f"{verdicts.icon(judged[r['name']])} "
                                f"<span style='color:{colors.get(r['name'], charts.SHARED_GREY)}; "
                                f"font-weight:600'>{html_md(r['name'])}</span>: {html_md(r['verdict_text'])}.",
                                unsafe_allow_html=True)
            if hurt:
                st.warning(f"Sharing hurt {', '.join(md(t) for t in hurt)}: "
                           f"{'this task is' if len(hurt) == 1 else 'these tasks are'} clearly worse than when "
                           "trained alone. Try less sharing, other loss weights or a gradient-balancing strategy.",
                           icon=":material/trending_down:")
            st.plotly_chart(charts.comparison_bars(rows, colors=colors))

            st.subheader("Effective task weights over training")
            weights = state.get_store().metrics(run_id, phase=MTL, metric="weight")
            if weights.empty:
                st.caption("This run logged no task weights.")
            else:
                raw = st.toggle("raw values", key="results_raw_weights",
                                help="Off: each task's share of the total weight at each step. On: the values.")
                st.plotly_chart(charts.weights_chart(weights, names, colors=colors, share=not raw))
                st.caption("The effective weight of a task is ∂objective/∂L_t at that step. Manual weights are the "
                           "sliders' values; a gradient method's weights are on a scale of its own (MGDA's sum to "
                           "1, PCGrad's grow with the gradient norms), so compare their shares, not their values "
                           "with manual weights.")

            gates_section(run_id, result, names, colors)

            with st.expander("Configuration"):
                st.code(common.config_yaml(config), language="yaml")
            with st.expander("All test metrics"):
                st.dataframe(common.all_metrics_frame(rows), hide_index=True)
