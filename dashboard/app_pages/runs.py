"""Runs: every experiment of this lab; compare curves and results, export, delete, reopen."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import charts, i18n, state, verdicts
from dashboard.app_pages import common
from dashboard.i18n import t
from dashboard.safe_text import md
from mtl_core.errors import StoreError
from mtl_core.export import to_safe_csv
from mtl_core.phases import MTL

ss = st.session_state
SELECTED = "runs_selected"
TABLE_IDS = "_runs_table_ids"
CURVES = {  # the radio's values (English, kept in the session); shown through CURVE_KEYS
    "validation loss": ("val", "loss"),
    "training loss": ("train", "loss"),
    "validation primary metric": ("val", None),
}
CURVE_KEYS = {"validation loss": "runs.curve.val_loss", "training loss": "runs.curve.train_loss",
              "validation primary metric": "runs.curve.val_primary"}
# The runs table's columns (English: the CSV export's stable names) -> catalogue key of the header shown.
COLUMN_KEYS = {
    "id": "runs.col.id", "name": "runs.col.name", "status": "runs.col.status", "Δm %": "runs.col.delta_m",
    "Δm verdict": "runs.col.delta_m_verdict", "dataset": "runs.col.dataset", "tasks": "runs.col.tasks",
    "sharing": "runs.col.sharing", "weighting": "runs.col.weighting", "weights": "runs.col.weights",
    "steps": "runs.col.steps", "batch": "runs.col.batch", "lr": "runs.col.lr", "seed": "runs.col.seed",
    "created": "runs.col.created",
}


def _on_table_select() -> None:
    """Rows ticked in the table become the compared runs."""
    rows = ss["runs_table"].selection.rows
    ids = ss.get(TABLE_IDS, [])
    ss[SELECTED] = [ids[i] for i in rows if i < len(ids)]


def _delete_selected() -> None:
    store = state.get_store()
    deleted, errors = [], []
    for run_id in list(ss.get(SELECTED, [])):
        try:
            store.delete_run(run_id)
            deleted.append(run_id)
        except StoreError as exc:
            errors.append(md(exc))
    ss[SELECTED] = [r for r in ss.get(SELECTED, []) if r not in deleted]
    ss["runs_confirm_delete"] = False
    if state.current_run_id() in deleted:
        state.set_run_id(None)
    ss["_runs_messages"] = ([t("runs.deleted", n=len(deleted), ids=", ".join(md(r) for r in deleted))]
                            if deleted else []), errors


@st.cache_data(show_spinner=False, max_entries=4096)
def _stored_delta_m_verdict(db: str, run_id: str, finished_at: str) -> str | None:
    """A run's Δm verdict from its result: read once per run and end time, since a finished
    run's result does not change (a read error is raised, not cached)."""
    result = state.get_store().result(run_id)
    return verdicts.delta_m_verdict(result) if isinstance(result, dict) else None


def _delta_m_verdicts(store: Any, runs: pd.DataFrame) -> list[str]:
    """Each run's Δm verdict ("helped", "hurt", "no clear difference"; "" for none)."""
    if "delta_m_verdict" in runs.columns:  # listed by the store itself
        return [v if v in verdicts.TASK_VERDICTS else "" for v in runs["delta_m_verdict"]]
    out = []
    for run_id, dm, finished in zip(runs["id"], runs["delta_m"], runs["finished_at"]):
        verdict = None
        if not pd.isna(dm):
            try:
                verdict = _stored_delta_m_verdict(str(store.path), run_id, str(finished))
            except common.STORE_READ_ERRORS:
                pass  # a damaged result: no verdict here; comparing the run says what is wrong
        out.append(verdict or "")
    return out


def _runs_table(runs: pd.DataFrame, configs: dict[str, dict[str, Any]], dm_verdicts: list[str]) -> pd.DataFrame:
    def cfg(run_id: str, *path: str, default: Any = None) -> Any:
        node: Any = configs.get(run_id, {})
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        return default if node is None else node

    table = pd.DataFrame({
        "id": runs["id"],
        "name": runs["name"].fillna(""),
        "status": runs["status"],
        "Δm %": runs["delta_m"],
        "Δm verdict": dm_verdicts,
        "dataset": runs["dataset"],
        "tasks": runs["tasks"],
        "sharing": runs["sharing"],
        "weighting": runs["weighting"],
        "weights": [", ".join(f"{t}={w:g}" for t, w in (cfg(r, "weights") or {}).items()) or "all 1"
                    for r in runs["id"]],
        "steps": [cfg(r, "steps") for r in runs["id"]],
        "batch": [cfg(r, "batch_size") for r in runs["id"]],
        "lr": [cfg(r, "optimizer", "lr") for r in runs["id"]],
        "seed": [cfg(r, "seed") for r in runs["id"]],
        "created": runs["created_at"].dt.tz_convert(None),
    })
    return table


# A run whose stored record is damaged (a partly corrupted store) stays listed with what
# could be read; why the rest cannot be read is said once under the table.
damaged: dict[str, str] = {}


def _curve(store: Any, run_id: str, task: str, split: str, metric: str) -> pd.DataFrame:
    try:
        m = store.metrics(run_id, phase=MTL, split=split, metric=metric)
    except common.STORE_READ_ERRORS as exc:
        damaged.setdefault(run_id, common.store_error_text(exc, run_id))
        return pd.DataFrame(columns=["step", "value"])
    return m.loc[m["task"] == task, ["step", "value"]]


def _config_of(store: Any, run_id: str) -> dict[str, Any]:
    try:
        config = store.get_run(run_id)["config"]
        if not isinstance(config, dict):
            raise TypeError(f"its config is a {type(config).__name__}, not a mapping")
        return config
    except common.STORE_READ_ERRORS as exc:  # damaged, or deleted meanwhile
        damaged.setdefault(run_id, common.store_error_text(exc, run_id))
        return {}


def _result_of(store: Any, run_id: str) -> dict[str, Any] | None:
    try:
        result = store.result(run_id)
        if result is not None and not isinstance(result, dict):
            raise TypeError(f"its result is a {type(result).__name__}, not a mapping")
        return result
    except common.STORE_READ_ERRORS as exc:
        damaged.setdefault(run_id, common.store_error_text(exc, run_id))
        return None


lang = i18n.current()
st.title(t("runs.title"))
st.caption(t("runs.caption"))
messages = ss.pop("_runs_messages", None)
if messages:
    for text in messages[0]:
        st.success(text)
    for text in messages[1]:
        st.error(text)

try:
    store = state.get_store()
    runs = store.runs()
except common.STORE_READ_ERRORS as exc:
    st.error(common.store_error_text(exc), icon=":material/database:")
    st.stop()
if runs.empty:
    st.info(t("common.no_runs"), icon=":material/info:")
    st.page_link("app_pages/train.py", label=t("common.go_to_train"), icon=":material/model_training:")
    st.stop()

configs: dict[str, dict[str, Any]] = {run_id: _config_of(store, run_id) for run_id in runs["id"]}
try:
    table = _runs_table(runs, configs, _delta_m_verdicts(store, runs))
except common.STORE_READ_ERRORS as exc:
    st.error(common.store_error_text(exc), icon=":material/database:")
    st.stop()

f_status, f_dataset, f_sharing, f_text = st.columns([1, 1, 1, 1.4])
status_filter = f_status.multiselect(t("runs.col.status"), sorted(table["status"].unique()), key="runs_f_status")
dataset_filter = f_dataset.multiselect(t("runs.col.dataset"), sorted(table["dataset"].dropna().unique()),
                                       key="runs_f_dataset")
sharing_filter = f_sharing.multiselect(t("runs.col.sharing"), sorted(table["sharing"].dropna().unique()),
                                       key="runs_f_sharing")
text_filter = f_text.text_input(t("runs.search"), key="runs_f_text")
shown = table
if status_filter:
    shown = shown[shown["status"].isin(status_filter)]
if dataset_filter:
    shown = shown[shown["dataset"].isin(dataset_filter)]
if sharing_filter:
    shown = shown[shown["sharing"].isin(sharing_filter)]
if text_filter:
    needle = text_filter.lower()
    shown = shown[shown[["id", "name", "tasks"]].apply(lambda r: needle in " ".join(map(str, r)).lower(), axis=1)]
ss[TABLE_IDS] = list(shown["id"])

# The table keeps its English columns and verdicts (the CSV export's data); headers and verdict
# words are shown in the reader's language.
st.dataframe(
    charts.style_verdicts(shown, "Δm verdict", also=["Δm %"])  # the colour follows the verdict, not the sign
    .format({"Δm verdict": lambda v: verdicts.word(v, lang) if v in verdicts.TASK_VERDICTS else v}),
    key="runs_table", on_select=_on_table_select, selection_mode="multi-row", hide_index=True,
    column_config={
        **{c: t(k) for c, k in COLUMN_KEYS.items()},
        "Δm %": st.column_config.NumberColumn(t("runs.col.delta_m"), format="%+.2f", help=t("runs.col.delta_m_help")),
        "Δm verdict": st.column_config.TextColumn(t("runs.col.delta_m_verdict"),
                                                  help=t("runs.col.delta_m_verdict_help")),
        "created": st.column_config.DatetimeColumn(t("runs.col.created"), format="YYYY-MM-DD HH:mm:ss"),
        "lr": st.column_config.NumberColumn(t("runs.col.lr"), format="%g"),
        # a format per number column: the Styler's own text would read 3.000000
        **{c: st.column_config.NumberColumn(t(COLUMN_KEYS[c]), format="%d") for c in ("steps", "batch", "seed")},
    },
)
st.caption(t("runs.table_caption"))
damage_slot = st.container()  # filled at the end, once every read of this page is done

ids = list(table["id"])
labels = {r["id"]: state.run_label(r) for r in runs.to_dict("records")}
ss[SELECTED] = [r for r in ss.get(SELECTED, []) if r in ids]
selected = st.multiselect(t("runs.compare"), ids, key=SELECTED, format_func=labels.get, help=t("runs.compare_help"))

c_csv, c_json, c_open, c_delete = st.columns(4, vertical_alignment="bottom")
c_csv.download_button(t("runs.export_csv"), to_safe_csv(shown), file_name="mtl_lab_runs.csv",
                      mime="text/csv", icon=":material/table:", key="runs_export_csv", width="stretch")
exported = [{"run": {k: (str(v) if isinstance(v, pd.Timestamp) else v)
                     for k, v in runs.loc[runs["id"] == r].iloc[0].to_dict().items()},
             "config": configs.get(r), "result": _result_of(store, r)} for r in selected]
c_json.download_button(t("runs.export_json"), json.dumps(exported, indent=1, default=str),
                       file_name="mtl_lab_runs.json", mime="application/json", icon=":material/data_object:",
                       key="runs_export_json", disabled=not selected, width="stretch")
if c_open.button(t("runs.open"), key="runs_open", icon=":material/open_in_new:", disabled=len(selected) != 1,
                 help=t("runs.open_help"), width="stretch"):
    config = configs.get(selected[0]) or {}
    params = state.config_to_params(config)
    ss[state.SS_PENDING] = params  # replaces the form even if this tab wrote this config before
    state.set_run_id(selected[0])
    st.switch_page("app_pages/train.py", query_params={**params, state.RUN_PARAM: selected[0]})
with c_delete.popover(t("runs.delete_selected"), icon=":material/delete:", disabled=not selected,
                      width="stretch"):
    st.checkbox(t("runs.confirm_delete", n=len(selected)), key="runs_confirm_delete")
    st.button(t("runs.delete"), key="runs_delete", type="primary", on_click=_delete_selected,
              disabled=not ss.get("runs_confirm_delete"))

if selected:
    st.subheader(t("runs.curves"))
    v1, v2, v3 = st.columns([1.2, 2, 1])
    which = v1.radio(t("runs.curve"), list(CURVES), key="runs_curve", horizontal=False,
                     format_func=lambda c: t(CURVE_KEYS[c]))
    smoothing = v2.slider(t("runs.smoothing"), 0.0, 0.99, 0.6, 0.01, key="runs_smoothing",
                          help=t("runs.smoothing_help"))
    log_y = v3.toggle(t("runs.log_scale"), key="runs_log")
    results = {r: _result_of(store, r) for r in selected}
    task_order: list[str] = []
    for r in selected:
        for name in state.run_tasks(configs.get(r) or {}):
            if name not in task_order:
                task_order.append(name)
    # Each task keeps the colour it has in its own dataset (first run wins on a name clash).
    colors: dict[str, str] = {}
    for r in selected:
        own = state.run_tasks(configs.get(r) or {})
        for name, c in charts.task_colors(state.color_tasks(configs.get(r), own)).items():
            colors.setdefault(name, c)
    chart_cols = st.columns(min(len(task_order), 2) or 1)
    for i, task in enumerate(task_order):
        split, metric = CURVES[which]
        curves = {}
        for r in selected:
            m = metric
            if m is None:
                rows = (results[r] or {}).get("tasks") or []
                m = next((row.get("metric") for row in rows
                          if isinstance(row, dict) and row.get("name") == task), None) or "loss"
            curves[labels[r]] = _curve(store, r, task, split, m)
        y_title = metric or t("runs.primary_metric")
        with chart_cols[i % len(chart_cols)]:
            st.plotly_chart(charts.overlay_chart(curves, title=f"{task} · {t(CURVE_KEYS[which])}", y_title=y_title,
                                                 smoothing=smoothing, title_color=colors.get(task),
                                                 log_y=log_y, lang=lang))

    st.subheader(t("runs.side_by_side"))
    per_row = min(len(selected), 3)
    for start in range(0, len(selected), per_row):
        cols = st.columns(per_row)
        for col, r in zip(cols, selected[start:start + per_row]):
            with col:
                st.markdown(f"**{md(labels[r])}**")
                result = results[r]
                if not result:
                    st.caption(t("runs.no_results", status=md(table.loc[table["id"] == r, "status"].iloc[0])))
                    continue
                with common.store_errors(r):
                    dm = result.get("delta_m")
                    st.metric("Δm", f"{dm:+.2f} %" if dm is not None else "—")
                    verdicts.delta_m_badge(st, result, lang=lang)
                    rows = result.get("tasks") or []
                    own = state.run_tasks(configs.get(r) or {})
                    st.table(charts.style_comparison(
                        charts.comparison_frame(rows),
                        colors=charts.task_colors(state.color_tasks(configs.get(r), own)), lang=lang,
                    ))

with damage_slot:
    for why in damaged.values():
        st.error(why, icon=":material/database:")
