"""Pieces several pages show: the run picker and a run's result with its status messages.

Not a page itself (app.py lists the pages); widgets here are keyed by the caller.
"""

from __future__ import annotations

import functools
import sqlite3
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, Sequence

import pandas as pd
import streamlit as st
import yaml

from dashboard import state
from dashboard.i18n import t
from dashboard.safe_text import md
from mtl_core.errors import MTLLabError
from mtl_core.store import ACTIVE_STATUSES

# What reading a partly corrupted run store can raise: the store turns a damaged row into
# a StoreError (an MTLLabError); invalid JSON text (ValueError), a value of the wrong
# type (pandas: ValueError/TypeError) or a damaged database page (sqlite3.DatabaseError)
# are caught too, so that a page shows one message instead of a traceback.
STORE_READ_ERRORS: tuple[type[BaseException], ...] = (
    MTLLabError, ValueError, TypeError, KeyError, AttributeError, sqlite3.DatabaseError,
)


def store_error_text(exc: BaseException, run_id: str | None = None) -> str:
    """A message for an error met while reading the store; Markdown-escaped."""
    if isinstance(exc, MTLLabError):
        text = str(exc)
        return md(text if not run_id or run_id in text else f"Run {run_id}: {text}")  # the engine's words
    damage = f"{type(exc).__name__}: {exc}"
    return (md(t("common.damaged_run", run_id=run_id, damage=damage) if run_id
               else t("common.damaged_store", damage=damage))
            + " " + t("common.damaged_fix"))


@contextmanager
def store_errors(run_id: str | None = None) -> Iterator[None]:
    """Show an error read from the store as a message where the block stood."""
    try:
        yield
    except STORE_READ_ERRORS as exc:
        st.error(store_error_text(exc, run_id), icon=":material/database:")


def _sync_run(key: str) -> None:
    state.set_run_id(st.session_state.get(key))


def guarded(panel: Callable[..., None]) -> Callable[..., None]:
    """`panel(run_id, ...)` with store read errors shown as a message: a live panel runs
    as a fragment, whose reruns do not pass through the page's own guard."""
    @functools.wraps(panel)
    def guarded_panel(run_id: str, *args: Any, **kwargs: Any) -> None:
        with store_errors(run_id):
            panel(run_id, *args, **kwargs)
    return guarded_panel


def run_listed(run_id: str) -> bool:
    """Whether the store lists `run_id` (True when the store cannot even be listed)."""
    try:
        return run_id in set(state.get_store().runs()["id"])
    except STORE_READ_ERRORS:
        return True


def read_run(run_id: str) -> dict[str, Any] | None:
    """The run's row, or None after saying why: a warning for a run this lab does not hold
    (a stale link), an error for one whose stored record is damaged."""
    try:
        run = state.get_store().get_run(run_id)
        if not isinstance(run.get("config"), dict):
            raise TypeError(f"its config is a {type(run.get('config')).__name__}, not a mapping")
        return run
    except STORE_READ_ERRORS as exc:
        if run_listed(run_id):
            st.error(store_error_text(exc, run_id), icon=":material/database:")
        else:
            st.warning(t("common.run_gone", error=md(exc)), icon=":material/link_off:")
        return None


def pick_run(label: str, *, key: str) -> str | None:
    """A select of the stored runs, newest first, that follows `?run=` and writes it back.

    A link to a run that no longer exists gets a readable message and the newest
    finished run instead.
    """
    try:
        runs = state.get_store().runs()
    except STORE_READ_ERRORS as exc:
        st.error(store_error_text(exc), icon=":material/database:")
        return None
    if runs.empty:
        st.info(t("common.no_runs"), icon=":material/info:")
        st.page_link("app_pages/train.py", label=t("common.go_to_train"), icon=":material/model_training:")
        return None
    # Transfer experiments have their own page; they have no top-level dataset column (nor
    # has a run whose config is damaged).
    records = [r for r in runs.to_dict("records") if isinstance(r.get("dataset"), str)]
    wanted = state.current_run_id()
    elsewhere = bool(wanted) and wanted in set(runs["id"]) and wanted not in {r["id"] for r in records}
    if elsewhere and (run := read_run(wanted)) is not None and state.is_transfer(run["config"]):
        st.info(t("common.is_transfer", run_id=md(wanted)), icon=":material/move_up:")
        st.page_link("app_pages/transfer.py", label=t("common.open_transfer"), icon=":material/move_up:",
                      query_params={state.TRANSFER_PARAM: wanted})
    if not records:
        st.info(t("common.no_mtl_runs"), icon=":material/info:")
        return None
    ids = [r["id"] for r in records]
    labels = {r["id"]: state.run_label(r) for r in records}
    finished = [r["id"] for r in records if r["status"] == "finished"]
    ss = st.session_state
    if wanted in ids:
        ss[key] = wanted
    else:
        if wanted and not elsewhere:
            st.error(t("common.no_such_run", run_id=md(repr(wanted))), icon=":material/link_off:")
        if ss.get(key) not in ids:
            ss[key] = finished[0] if finished else ids[0]
    chosen = st.selectbox(label, ids, key=key, format_func=labels.get, on_change=_sync_run, args=(key,))
    state.set_run_id(chosen)
    return chosen


def load_result(run_id: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(run row, result) of a run; says why when there is no result (yet) or when the
    store cannot give it."""
    run = read_run(run_id)
    if run is None:
        return None, None
    try:
        result = state.get_store().result(run_id)
        if result is not None and not isinstance(result, dict):
            raise TypeError(f"its result is a {type(result).__name__}, not a mapping")
    except STORE_READ_ERRORS as exc:
        st.error(store_error_text(exc, run_id), icon=":material/database:")
        return None, None
    status = run["status"]
    rid, shown_status, error = md(run_id), md(status), md(run.get("error") or "")
    if result is None:
        if status in ACTIVE_STATUSES:
            st.info(t("common.still_active", run_id=rid, status=shown_status), icon=":material/hourglass_top:")
            st.page_link("app_pages/train.py", label=t("common.watch_it"), icon=":material/model_training:",
                         query_params={state.RUN_PARAM: run_id})
        elif status == "failed":
            st.error(t("common.failed", run_id=rid, error=error or t("common.no_message")))
        else:
            st.warning(t("common.ended_early", run_id=rid, status=shown_status, error=error))
    elif status != "finished":
        st.warning(t("common.partial", run_id=rid, status=shown_status))
    return run, result


def config_yaml(config: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(config), sort_keys=False, allow_unicode=True)


def all_metrics_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Every test metric of every task, single-task beside multi-task (a reshaping only); over
    several seeds each value is the mean over the seeds (`stl_all` / `mtl_all`, issue 16)."""
    records = []
    for r in rows:
        stl, mtl = r.get("stl_all") or {}, r.get("mtl_all") or {}
        for metric in dict.fromkeys([*stl, *mtl]):
            records.append({"task": r["name"], "metric": metric, "single-task": stl.get(metric),
                            "multi-task": mtl.get(metric)})
    return pd.DataFrame.from_records(records, columns=["task", "metric", "single-task", "multi-task"])
