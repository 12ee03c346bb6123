"""Results: did sharing help? Single-task vs multi-task on the held-out test split, and Δm."""

from __future__ import annotations

import streamlit as st

from dashboard import charts, state
from dashboard.app_pages import common

st.title("Results")
st.caption("Each task's test metric for its own single-task model and for the multi-task model. "
           "Δ % is signed so that positive always means the multi-task model is better.")

run_id = common.pick_run("Run", key="results_run")
if run_id:
    run, result = common.load_result(run_id)
    if result is not None:
        config = result.get("config") or run["config"]
        rows = result.get("tasks") or []
        names = [r["name"] for r in rows]
        colors = charts.task_colors(state.color_tasks(config, names))

        dm = result.get("delta_m")
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
            c_speed.metric("training speed, samples/s", f"{speed:,.0f}", help=f"multi-task model on {result.get('device')}")

        st.subheader("Single-task vs multi-task (test split)")
        frame = charts.comparison_frame(rows)
        st.table(charts.style_comparison(frame, colors=colors))
        if worse:
            st.warning(f"Negative transfer on {', '.join(worse)}: sharing made "
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

        with st.expander("Configuration"):
            st.code(common.config_yaml(config), language="yaml")
        with st.expander("All test metrics"):
            st.dataframe(common.all_metrics_frame(rows), hide_index=True)
