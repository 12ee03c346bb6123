"""Pieces several pages show: the run picker and a run's result with its status messages.

Not a page itself (app.py lists the pages); widgets here are keyed by the caller.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import pandas as pd
import streamlit as st
import yaml

from dashboard import state
from mtl_core.errors import MTLLabError
from mtl_core.store import ACTIVE_STATUSES


def _sync_run(key: str) -> None:
    state.set_run_id(st.session_state.get(key))


def pick_run(label: str, *, key: str) -> str | None:
    """A select of the stored runs, newest first, that follows `?run=` and writes it back.

    A link to a run that no longer exists gets a readable message and the newest
    finished run instead.
    """
    try:
        runs = state.get_store().runs()
    except MTLLabError as exc:
        st.error(state.error_text(exc))
        return None
    if runs.empty:
        st.info("No runs yet. Start one on the Train page.", icon=":material/info:")
        st.page_link("app_pages/train.py", label="Go to Train", icon=":material/model_training:")
        return None
    # Transfer experiments have their own page; they have no top-level dataset column.
    records = [r for r in runs.to_dict("records") if isinstance(r.get("dataset"), str)]
    if not records:
        st.info("No multi-task runs yet. Start one on the Train page.", icon=":material/info:")
        return None
    ids = [r["id"] for r in records]
    labels = {r["id"]: state.run_label(r) for r in records}
    finished = [r["id"] for r in records if r["status"] == "finished"]
    wanted = state.current_run_id()
    ss = st.session_state
    if wanted in ids:
        ss[key] = wanted
    else:
        if wanted:
            st.error(f"There is no run {wanted!r} in this lab (it may have been deleted); "
                     "showing another run instead.", icon=":material/link_off:")
        if ss.get(key) not in ids:
            ss[key] = finished[0] if finished else ids[0]
    chosen = st.selectbox(label, ids, key=key, format_func=labels.get, on_change=_sync_run, args=(key,))
    state.set_run_id(chosen)
    return chosen


def load_result(run_id: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(run row, result) of a run; says why when there is no result (yet)."""
    run, message = state.get_run_safe(run_id)
    if run is None:
        st.error(message)
        return None, None
    result = state.get_store().result(run_id)
    status = run["status"]
    if result is None:
        if status in ACTIVE_STATUSES:
            st.info(f"Run {run_id} is still {status}; its results appear when it finishes.",
                    icon=":material/hourglass_top:")
            st.page_link("app_pages/train.py", label="Watch it train", icon=":material/model_training:",
                         query_params={state.RUN_PARAM: run_id})
        elif status == "failed":
            st.error(f"Run {run_id} failed: {run.get('error') or 'no message'}")
        else:
            st.warning(f"Run {run_id} ended as {status} before it had results. {run.get('error') or ''}")
    elif status != "finished":
        st.warning(f"Run {run_id} ended as {status}; these are its partial results.")
    return run, result


def config_yaml(config: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(config), sort_keys=False, allow_unicode=True)


def all_metrics_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Every test metric of every task, single-task beside multi-task (a reshaping only)."""
    records = []
    for r in rows:
        stl, mtl = r.get("stl_all") or {}, r.get("mtl_all") or {}
        for metric in dict.fromkeys([*stl, *mtl]):
            records.append({"task": r["name"], "metric": metric, "single-task": stl.get(metric),
                            "multi-task": mtl.get(metric)})
    return pd.DataFrame.from_records(records, columns=["task", "metric", "single-task", "multi-task"])
