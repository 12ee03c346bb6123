"""Transfer: does an encoder pre-trained on some tasks let a new task learn from fewer labels?"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import charts, i18n, sidebar, state
from dashboard.app_pages import common
from dashboard.charts.data_efficiency import arm_label
from dashboard.i18n import t
from dashboard.safe_text import html_md, md
from dashboard.state.fields import entry_description, field_help, field_label
from dashboard.transfer_chart import merged_text, reading_text
from mtl_core import jobs
from mtl_core.errors import ConfigError, DataError, StoreError
from mtl_core.metrics import best_arm
from mtl_core.models import pretrained
from mtl_core.store import ACTIVE_STATUSES
from mtl_core.tasks import DATASETS
from mtl_core.transfer import ARMS, TransferConfig, transfer_table, vs_scratch_frame

POLL_S = 2.0  # a live redraw costs the server ~0.5 core at 1 s on 2 cores: see bench/dashboard.py --watch
TEXT_ENCODERS = ("gru", "cnn", "transformer")
ss = st.session_state
lang = i18n.current()  # the page's words (dashboard/locales/*/transfer.yaml); data stays as it is

st.title(t("transfer.title"))
st.caption(t("transfer.intro"))


# ---- the watched transfer run --------------------------------------------------------------------
def watched_run_id(ids: list[str]) -> str | None:
    """`?transfer=` in the URL, else the run this tab last watched (if it still exists)."""
    wanted = st.query_params.get(state.TRANSFER_PARAM) or ss.get("_transfer_run")
    return wanted if wanted in ids else None


def _follow_pick() -> None:
    st.query_params[state.TRANSFER_PARAM] = ss["transfer_pick"]


def watch(run_id: str) -> None:
    ss["_transfer_run"] = run_id
    if st.query_params.get(state.TRANSFER_PARAM) != run_id:
        st.query_params[state.TRANSFER_PARAM] = run_id
    run = common.read_run(run_id)  # says why when there is none: not in this lab, or damaged
    if run is None:
        return
    active = run["status"] in ACTIVE_STATUSES
    if active and st.button(t("transfer.cancel"), key="transfer_cancel", icon=":material/stop_circle:",
                            help=t("transfer.cancel_help")):
        try:
            if jobs.cancel(run_id, store_path=state.store_path()):
                st.toast(t("transfer.cancelling", run_id=md(run_id)))
        except StoreError as exc:
            st.error(md(exc))
    sidebar.live_fragment(common.guarded(panel), POLL_S if active else None, run_id, active)


def panel(run_id: str, was_active: bool) -> None:
    run, message = state.get_live_run(run_id)
    if run is None:
        st.warning(md(message))
        return
    store = state.get_store()
    config, status = run["config"], run["status"]
    progress = state.progress_summary(run, state.run_phases(config), batch_size=state.run_batch_size(config),
                                      budgets=state.run_budgets(config))
    line = f"**{md(status)}**" + (f" · {md(progress['text'])}" if progress["text"] != status else "")
    st.progress(progress["fraction"], text=line)
    result = store.result(run_id)
    if status == "failed":
        st.error(t("transfer.failed", error=md(run.get("error") or t("transfer.no_message")),
                   log=md(jobs.log_path(run_id, store_path=state.store_path()))))
    elif status in ("cancelled", "interrupted"):
        st.warning(t("transfer.stopped", status=md(status), error=md(run.get("error") or "")))
    if result is not None and result.get("rows"):
        show_result(result)
    elif status in ACTIVE_STATUSES:
        st.caption(t("transfer.waiting"))
    if was_active and status not in ACTIVE_STATUSES:
        st.rerun()  # the run ended: one full rerun stops the polling and drops Cancel


def show_result(result: dict[str, Any]) -> None:
    metric, hib = result["metric"], result.get("higher_is_better")
    arrow = "↑" if hib else "↓"
    sources = ", ".join(result["sources"])
    st.subheader(f"{md(sources)} → {md(result['target'])}")
    st.plotly_chart(charts.data_efficiency_chart(
        result["rows"], metric=metric, higher_is_better=hib, arms=result.get("arms"),
        title=t("transfer.chart_title", metric=metric, target=result["target"]), lang=lang,
    ))  # the chart escapes the title: metric and target are data
    st.caption(md(reading_text(metric, hib, lang)))
    merged = merged_text(result, lang)
    if merged:
        st.info(md(merged), icon=":material/merge:")
    table = result_frame(result)
    best = [c for c in table.columns if c in {arm_label(a, lang) for a in ARMS}]
    share, labelled = t("transfer.col_share"), t("transfer.col_labelled")

    def mark_best(row: pd.Series) -> list[str]:
        winner = best_arm(row[best].astype(float).to_dict(), higher_is_better=bool(hib))
        return ["background-color: " + charts.BETTER_BG if c == winner else "" for c in row.index]

    st.table(table.style.apply(mark_best, axis=1)
             .format({**{c: "{:.4g}" for c in best}, share: "{:.3g} %", labelled: "{:,}"})
             .hide(axis="index"))
    st.caption(t("transfer.table_caption", metric=md(metric), arrow=arrow, target=md(result["target"]),
                 steps=result["target_steps"], rows=result["n_target_train"]))
    versus = vs_scratch_frame(result)
    if not versus.empty:
        gain = t("transfer.col_gain", metric=metric)
        versus = versus.assign(
            arm=versus["arm"].map(lambda a: arm_label(a, lang)),
            interval=[t("transfer.interval", low=lo, high=hi) for lo, hi in zip(versus["low"], versus["high"])],
            verdict=versus["verdict"].map(verdict_word),
        )
        st.table(versus[["n_labelled", "arm", "gain", "interval", "verdict"]]
                 .rename(columns={"n_labelled": labelled, "arm": t("transfer.col_arm"), "gain": gain,
                                  "interval": t("transfer.col_interval"), "verdict": t("transfer.col_verdict")})
                 .style.format({gain: "{:+.3g}", labelled: "{:,}"}).hide(axis="index"))
        st.caption(t("transfer.versus_caption"))
    pre = result.get("pretrain") or {}
    names = result.get("pretrain_metric") or {}
    if pre:
        scores = ", ".join(  # task and metric names: data, as stored
            f"{task} {names.get(task, 'loss')} {m.get(names.get(task, 'loss'), float('nan')):.4g}"
            for task, m in pre.items()
        )
        params = (result.get("parameters") or {}).get("encoder")
        st.caption(t("transfer.pretrain_caption", encoder=md(result.get("encoder")),
                     parameters=t("transfer.parameters", n=params) if params else "",
                     steps=result.get("pretrain_steps", 0), scores=md(scores)))


def verdict_word(verdict: Any) -> str:
    """A stored verdict ("helped", "hurt", "no clear difference") in the page's language."""
    key = f"verdict.{verdict}"
    return t(key) if key in i18n.catalogue(i18n.DEFAULT) else str(verdict)


def result_frame(result: dict[str, Any]) -> pd.DataFrame:
    """The data-efficiency table: one row per data size, one column per arm. "labelled %" is
    the share actually trained on (a fraction below one batch trains on a whole batch).
    Column names in the page's language."""
    table = transfer_table(result).reset_index()
    total = result.get("n_target_train")
    table["fraction"] = (table["n_labelled"] / total if total else table["fraction"]) * 100.0
    return table.rename(columns={"fraction": t("transfer.col_share"), "n_labelled": t("transfer.col_labelled"),
                                 **{a: arm_label(a, lang) for a in ARMS}}).rename_axis(columns=None)


# ---- the form -------------------------------------------------------------------------------------
def dataset_option_widgets(name: str) -> dict[str, Any]:
    """The dataset's simple options (sliders, numbers, choices), as on the Train page."""
    specs = [s for s in state.option_fields(DATASETS.get(name).options) if s.kind != "complex"]
    values: dict[str, Any] = {}
    cols = st.columns(2)
    for i, spec in enumerate(specs):
        key = f"tr.ds.{name}.{spec.name}"
        state.seed(ss, key, spec.default)
        # The option's label and help as on the Train page (the catalogue's, in the page's language).
        label, help_ = field_label(spec.name, lang), field_help("dataset", name, spec, lang) or None
        with cols[i % 2]:
            if spec.kind == "slider":
                values[spec.name] = st.slider(label, float(spec.min), float(spec.max), step=spec.step, key=key,
                                              help=help_)
            elif spec.kind in ("float", "int"):
                values[spec.name] = st.number_input(
                    label, min_value=spec.min, max_value=spec.max,
                    step=int(spec.step or 1) if spec.kind == "int" else spec.step,
                    format="%g" if spec.kind == "float" else None, key=key, help=help_)
            elif spec.kind == "bool":
                values[spec.name] = st.checkbox(label, key=key, help=help_)
            elif spec.kind == "choice":
                values[spec.name] = st.selectbox(label, list(spec.choices), key=key, help=help_)
            elif spec.kind == "text":
                values[spec.name] = st.text_input(label, key=key, help=help_) or spec.default
    return {k: v for k, v in values.items() if v is not None}


def dataset_label(name: str, lang: str) -> str:
    """`toy_language (text)`: the name as it is, its kind in `lang`. A select box's format_func
    takes the language as an argument: Streamlit may call it outside the page's run."""
    if DATASETS.get(name).extra.get("input_kind") == "tokens":
        return i18n.text("transfer.dataset_text", lang, name=name)
    return i18n.text("transfer.dataset_vectors", lang, name=name)


datasets = [n for n in DATASETS.names() if n != "csv"]  # a CSV file: `mtl-lab transfer --config`
state.seed(ss, "tr.dataset", "toy_language" if "toy_language" in datasets else datasets[0])
col_data, col_arms = st.columns([1.1, 1.0], gap="large")

with col_data:
    st.subheader(t("transfer.data_tasks"))
    ds_name = st.selectbox(
        t("transfer.dataset"), datasets, key="tr.dataset",
        format_func=lambda n: dataset_label(n, lang),
        help=t("transfer.dataset_help"))
    st.caption(entry_description("dataset", ds_name, DATASETS.get(ds_name).description, lang))
    with st.expander(t("transfer.dataset_options")):
        ds_options = dataset_option_widgets(ds_name)
    task_names, tasks_error = state.safe_task_names(ds_name, ds_options)
    if tasks_error:
        st.error(md(tasks_error))
    colors = charts.task_colors(task_names)
    src_key, tgt_key = f"tr.sources.{ds_name}", f"tr.target.{ds_name}"
    state.seed(ss, tgt_key, task_names[-1] if task_names else None)
    state.seed(ss, src_key, task_names[:-1])
    ss[src_key] = [task for task in ss[src_key] if task in task_names]
    if ss[tgt_key] not in task_names:
        ss[tgt_key] = task_names[-1] if task_names else None
    sources = st.multiselect(t("transfer.sources"), task_names, key=src_key, help=t("transfer.sources_help"))
    target = st.selectbox(t("transfer.target"), task_names, key=tgt_key, help=t("transfer.target_help"))
    if sources or target:
        st.markdown(
            " ".join(f"<span style='color:{colors[s]}; font-weight:600'>● {html_md(s)}</span>" for s in sources)
            + (f" &nbsp;→&nbsp; <span style='color:{colors[target]}; font-weight:600'>● {html_md(target)}</span>"
               if target else ""),
            unsafe_allow_html=True,
        )
    text_encoder = None
    if DATASETS.get(ds_name).extra.get("input_kind") == "tokens":
        has_minilm = pretrained.minilm_available()
        use_minilm = st.checkbox(t("transfer.minilm"), key="tr.minilm", disabled=not has_minilm, value=False,
                                 help=t("transfer.minilm_help"))
        if not has_minilm:
            st.caption(t("transfer.minilm_missing", hint=pretrained.INSTALL_HINT))
        if use_minilm and has_minilm:
            text_encoder = "minilm"
        else:
            text_encoder = st.selectbox(t("transfer.text_encoder"), TEXT_ENCODERS, key="tr.text_encoder")

with col_arms:
    st.subheader(t("transfer.arms_sizes"))
    arms = []
    for arm in ARMS:
        state.seed(ss, f"tr.arm.{arm}", True)
        if st.checkbox(arm_label(arm, lang), key=f"tr.arm.{arm}", help=t(f"transfer.arm_help.{arm}")):
            arms.append(arm)
    state.seed(ss, "tr.fractions", ["1 %", "5 %", "20 %", "100 %"])
    picked = st.multiselect(t("transfer.fractions"), list(state.FRACTION_CHOICES), key="tr.fractions",
                            accept_new_options=True, help=t("transfer.fractions_help"))
    fractions, fractions_error = state.parse_fractions(picked, lang)
    st.subheader(t("transfer.budget"))
    c1, c2 = st.columns(2)
    state.seed(ss, "tr.pre_steps", 300)
    pre_steps = c1.number_input(t("transfer.pre_steps"), min_value=1, max_value=10_000_000, step=50,
                                key="tr.pre_steps")
    state.seed(ss, "tr.target_steps", 200)
    target_steps = c2.number_input(t("transfer.target_steps"), min_value=1, max_value=10_000_000, step=50,
                                   key="tr.target_steps", help=t("transfer.target_steps_help"))
    c3, c4, c5 = st.columns(3)
    state.seed(ss, "tr.batch", 32)
    batch = c3.number_input(t("transfer.batch"), min_value=1, max_value=1_000_000, step=16, key="tr.batch")
    state.seed(ss, "tr.lr", 3e-3)
    lr = c4.number_input(t("transfer.lr"), min_value=1e-7, max_value=10.0, step=1e-4, format="%g", key="tr.lr")
    state.seed(ss, "tr.seed", 0)
    seed = c5.number_input(t("transfer.seed"), min_value=0, max_value=2**31 - 1, step=1, key="tr.seed")
    n_models = 1 + len(arms) * len(fractions)
    st.caption(t("transfer.n_models", n=n_models, arms=len(arms), sizes=len(fractions)))

draft = state.transfer_draft(
    dataset=ds_name, options=ds_options, sources=sources, target=target, arms=arms, fractions=fractions,
    pretrain_steps=int(pre_steps), target_steps=int(target_steps), batch_size=int(batch), lr=float(lr),
    seed=int(seed), text_encoder=text_encoder,
)
config, config_error = None, fractions_error
if config_error is None and not tasks_error:
    try:
        config = TransferConfig.parse(draft)
    except (ConfigError, DataError) as exc:
        config_error = str(exc)  # mtl_core's message: English, naming the field

st.divider()
if config_error:
    st.error(md(config_error), icon=":material/error:")
c_run, c_yaml = st.columns([1, 3], vertical_alignment="center")
run_clicked = c_run.button(t("transfer.run"), type="primary", key="transfer_run", icon=":material/play_arrow:",
                           disabled=config is None, width="stretch", help=t("transfer.run_help"))
if config is not None:
    with c_yaml.expander(t("transfer.as_config")):
        st.code(config.to_yaml(), language="yaml")
if run_clicked and config is not None:
    try:
        new_run = jobs.start(config, store_path=state.store_path())
    except (ConfigError, DataError, StoreError) as exc:
        st.error(md(exc))
    else:
        ss["_transfer_run"] = new_run
        st.query_params[state.TRANSFER_PARAM] = new_run
        st.rerun()  # redraw the frame too: the sidebar starts listing the new run

st.subheader(t("transfer.runs"))
try:
    past = state.transfer_runs(state.get_store())
except common.STORE_READ_ERRORS as exc:
    st.error(common.store_error_text(exc), icon=":material/database:")
    past = []
ids = [r["id"] for r in past]
labels = {r["id"]: state.transfer_run_label(r) for r in past}
wanted = st.query_params.get(state.TRANSFER_PARAM)
if wanted and wanted not in ids:
    if not common.run_listed(wanted):
        st.warning(t("transfer.no_such_run", run_id=md(repr(wanted))), icon=":material/link_off:")
    elif common.read_run(wanted) is not None:  # readable (else it said why): a multi-task run
        st.info(t("transfer.is_mtl_run", run_id=md(wanted)), icon=":material/leaderboard:")
        st.page_link("app_pages/results.py", label=t("transfer.open_results"), icon=":material/leaderboard:",
                     query_params={state.RUN_PARAM: wanted})
if not ids:
    st.info(t("transfer.no_runs"), icon=":material/info:")
else:
    current = watched_run_id(ids) or ids[0]
    if ss.get("transfer_pick") not in ids or ss.get("transfer_pick") != current:
        ss["transfer_pick"] = current
    chosen = st.selectbox(t("transfer.pick"), ids, key="transfer_pick", format_func=labels.get, on_change=_follow_pick)
    with common.store_errors(chosen):
        watch(chosen)
