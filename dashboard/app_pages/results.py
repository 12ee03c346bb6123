"""Results: did sharing help? Single-task vs multi-task on the held-out test split, and Δm."""

from __future__ import annotations

import streamlit as st

from dashboard import charts, state
from dashboard.app_pages import common
from dashboard.safe_text import html_md, md

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
    history = state.get_store().metrics(run_id, phase="mtl", split="gates")
    if history["step"].nunique() > 1:
        with st.expander("Gate weights over training"):
            st.plotly_chart(charts.gates_history_chart(history, [t for t in names if t in gates], colors=colors))


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
            if n_seeds > 1:  # a gap within the seed-to-seed noise is not called negative transfer
                worse = [r["name"] for r in rows if r.get("verdict") == "negative transfer"]
            else:
                worse = [r["name"] for r in rows if (r.get("delta_pct") is not None and r["delta_pct"] < 0)]
            c_dm, c_tasks, c_params, c_speed = st.columns(4)
            c_dm.metric("Δm (Maninis et al., 2019)", f"{dm:+.2f} %" if dm is not None else "—",
                        help="Mean over tasks of the signed relative change of the multi-task model vs each "
                             "task's single-task baseline; positive: multi-task learning helped on average.")
            c_tasks.metric("tasks with negative transfer", f"{len(worse)} / {len(rows)}",
                           help="Tasks whose multi-task test metric is worse than their single-task baseline's.")
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
            if n_seeds > 1:
                st.caption(f"Mean ± standard deviation over {n_seeds} seeds. The verdict calls a difference "
                           "transfer only when the mean paired gap exceeds twice its standard error.")
                for r in rows:
                    if r.get("verdict_text"):
                        st.markdown(f"<span style='color:{colors.get(r['name'], charts.SHARED_GREY)}; "
                                    f"font-weight:600'>{html_md(r['name'])}</span>: {html_md(r['verdict_text'])}.",
                                    unsafe_allow_html=True)
            else:
                st.caption("One seed: a small difference may be luck. Set **seeds** on the Train page to 3 or more "
                           "for means ± std and a verdict that accounts for the noise.")
            if worse:
                st.warning(f"Negative transfer on {', '.join(md(t) for t in worse)}: sharing made "
                           f"{'this task' if len(worse) == 1 else 'these tasks'} worse than training alone. "
                           "Try less sharing, other loss weights or a gradient-balancing strategy.",
                           icon=":material/trending_down:")
            st.plotly_chart(charts.comparison_bars(rows, colors=colors))

            st.subheader("Effective task weights over training")
            weights = state.get_store().metrics(run_id, phase="mtl", metric="weight")
            if weights.empty:
                st.caption("This run logged no task weights.")
            else:
                st.plotly_chart(charts.weights_chart(weights, names, colors=colors))

            gates_section(run_id, result, names, colors)

            with st.expander("Configuration"):
                st.code(common.config_yaml(config), language="yaml")
            with st.expander("All test metrics"):
                st.dataframe(common.all_metrics_frame(rows), hide_index=True)
