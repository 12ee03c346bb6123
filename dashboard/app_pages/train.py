"""Train: set up an experiment, start it, and watch the tasks learn side by side."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import streamlit as st
import yaml

from dashboard import charts, i18n, live_pace, sidebar, state, verdicts
from dashboard.app_pages import common
from dashboard.i18n import t
from dashboard.safe_text import html_md, md
from dashboard.state.fields import SECTION_OF_KIND, entry_description, field_help, field_label
from mtl_core import jobs
from mtl_core.config import ExperimentConfig
from mtl_core.errors import ConfigError, DataError, MTLLabError, StoreError
from mtl_core.models import SHARING
from mtl_core.store import ACTIVE_STATUSES
from mtl_core.tasks import DATASETS
from mtl_core.weighting import WEIGHTING
from mtl_core.weighting import weights_note as weights_note_of

POLL_S, STARTING_POLL_S = live_pace.POLL_S, live_pace.STARTING_POLL_S  # how often: see dashboard/live_pace.py
# The rerun after a click on Train waits this long for the run's first point (a started
# worker forked from the fork server logs it within ~0.5 s); a fresh process takes longer
# and is polled instead.
FIRST_POINT_WAIT_S = 1.5
SS_JUST_STARTED = "_train_just_started"
SS_SHOWN = "_train_shown"  # (raw, task names, fingerprint) of the experiment the page last showed
SS_START_ERROR = "_train_start_error"  # why the last click started nothing, said once on the page
# Polls of the live panel before one whole-page rerun lists a run started by a click (that
# click reran only the Train fragment; the sidebar is drawn by the whole page).
SS_SIDEBAR_STALE = "_train_sidebar_stale"
DEFAULTS = ExperimentConfig.parse({})
ss = st.session_state


def _training_value(name: str, value: Any) -> Any:
    """A Training widget's starting value (`review_config` already noted any change)."""
    return state.coerce(state.TRAINING_FIELDS[name], value)


# ---- starting a run -----------------------------------------------------------------------------
def _start(config: ExperimentConfig) -> str | None:
    """Start `config` once for this tab; the new run's id (now watched), or None with the
    reason kept for the page to say."""
    started = ss.setdefault(state.SS_STARTED, {})
    fingerprint = state.config_fingerprint(config)
    started[fingerprint] = ""  # registered before the process starts: a rerun meanwhile starts nothing
    new_run = None
    try:
        state.check_dataset_access(config.dataset.name, config.dataset.options)
        new_run = jobs.start(config, store_path=state.store_path())
    except (ConfigError, DataError, StoreError) as exc:
        ss[SS_START_ERROR] = str(exc)
    finally:
        if new_run is None:
            started.pop(fingerprint, None)
    if new_run is not None:
        started[fingerprint] = new_run
        ss[SS_JUST_STARTED] = new_run
        ss[SS_SIDEBAR_STALE] = 2
        state.set_run_id(new_run)
    return new_run


def _start_on_click() -> None:
    """Train's callback: start the experiment the page showed before the click's rerun draws
    the page, so that one rerun (not two) brings the first point to the browser (about a
    second less on a busy 2-core machine; bench/dashboard.py --click). A click that came with
    a changed setting (a number typed, then Train) leaves the start to the page, which first
    builds the experiment from the new form."""
    shown = ss.get(SS_SHOWN)
    if shown is None or shown[2] is None:
        return
    raw, task_names, fingerprint = shown
    draft, _ = state.review_config(state.draft_from_session(ss, raw, task_names))
    config, _ = state.validate(draft)
    if config is None or state.config_fingerprint(config) != fingerprint or state.started_run(ss, config) is not None:
        return
    _start(config)


# ---- where the form starts from -----------------------------------------------------------
def _starting_params() -> tuple[dict[str, str], bool]:
    """The config params to fill the form with, and whether they replace what it holds.

    A loaded YAML file or a link that this tab did not write (e.g. "open in Train" from
    the Runs page) replaces the form; a bare URL (page switch) keeps it, and so does a URL
    this tab wrote a moment ago: keys pressed on a slider during a rerun come back with
    the URL of the rerun before, and must not reset the slider to that older value.
    """
    pending = ss.pop(state.SS_PENDING, None)
    if pending is not None:
        return pending, True
    incoming = state.config_params(st.query_params.to_dict())
    if incoming and incoming not in ss.get(state.SS_WRITTEN, []):
        return incoming, incoming != ss.get(state.SS_PARAMS)
    return ss.get(state.SS_PARAMS, {}), False


def _on_yaml_upload() -> None:
    """Read a loaded config file into the form; what happened is kept as (alert, catalogue key,
    fields), said in the language of the page that shows it."""
    upload = ss.get("yaml_upload")
    ss.pop("_load_message", None)
    if upload is None:
        return
    try:
        data = yaml.safe_load(upload.getvalue().decode("utf-8")) or {}
        if not isinstance(data, dict):
            raise ConfigError("a config file must hold a mapping of fields (dataset:, tasks:, ...)")
        ss[state.SS_PENDING] = state.config_to_params(data)
        ss["_load_message"] = ("success", "train.loaded", {"name": md(upload.name)})
    except UnicodeDecodeError:
        ss["_load_message"] = ("error", "train.not_utf8", {"name": md(upload.name)})
    except yaml.YAMLError as exc:
        ss["_load_message"] = ("error", "train.not_yaml", {"name": md(upload.name), "detail": md(exc)})
    except (MTLLabError, KeyError, TypeError, AttributeError) as exc:
        ss["_load_message"] = ("error", "train.cannot_load",
                               {"name": md(upload.name), "detail": md(state.error_text(exc))})


def _on_csv_upload() -> None:
    upload = ss.get("csv_upload")
    if upload is None:
        return
    try:
        path = state.save_upload(upload.name, upload.getvalue())
    except OSError as exc:  # a full disk, a read-only MTL_LAB_HOME
        ss["_csv_upload_error"] = {"name": md(upload.name), "reason": md(exc.strerror or exc)}
        return
    ss.pop("_csv_upload_error", None)
    ss[state.k_ds_opt("csv", "path")] = str(path)
    ss[state.K_CSV_TARGETS] = []


# ---- option widgets -------------------------------------------------------------------------
def option_widgets(registry: Any, name: str, raw_section: Mapping[str, Any], key_of: Any,
                   *, skip: tuple[str, ...] = (), columns: int = 2) -> None:
    """One widget per simple option of a registry entry (bounds from its pydantic model)."""
    if name not in registry:
        return
    specs = [s for s in state.option_fields(registry.get(name).options)
             if s.kind != "complex" and s.name not in skip]
    if not specs:
        return
    known = dict(raw_section.get("options") or {}) if raw_section.get("name") == name else {}
    section, lang = SECTION_OF_KIND[registry.kind], i18n.current()
    cols = st.columns(min(columns, len(specs)))
    for i, spec in enumerate(specs):
        key = key_of(name, spec.name)
        state.seed(ss, key, state.coerce(spec, known.get(spec.name, spec.default)))
        label, help_ = field_label(spec.name, lang), field_help(section, name, spec, lang) or None
        with cols[i % len(cols)]:
            if spec.kind == "slider":
                st.slider(label, min_value=float(spec.min), max_value=float(spec.max), step=spec.step,
                          key=key, help=help_)
            elif spec.kind == "float":
                st.number_input(label, min_value=spec.min, max_value=spec.max, step=spec.step, format="%g",
                                key=key, help=help_)
            elif spec.kind == "int":
                st.number_input(label, min_value=spec.min, max_value=spec.max, step=int(spec.step or 1),
                                key=key, help=help_)
            elif spec.kind == "bool":
                st.checkbox(label, key=key, help=help_)
            elif spec.kind == "choice":
                st.selectbox(label, list(spec.choices), key=key, help=help_)
            elif spec.kind == "text":
                st.text_input(label, key=key, help=help_)


def entry_header(registry: Any, name: str) -> None:
    entry = registry.get(name)
    st.caption(entry_description(SECTION_OF_KIND[registry.kind], name, entry.description,
                                       i18n.current()))
    if entry.formula:
        st.latex(entry.formula)
    if entry.paper:
        st.caption(f":material/menu_book: {entry.paper}")


def select_entry(label: str, registry: Any, key: str, current: str | None, default: str, *, help_: str) -> str:
    names = registry.names()
    if current not in names and key not in ss:
        kind = {"dataset": t("train.kind.dataset"), "sharing": t("train.kind.sharing"),
                "weighting": t("train.kind.weighting")}[SECTION_OF_KIND[registry.kind]]
        st.warning(t("train.unknown_entry", kind=kind, asked=md(repr(current)), default=md(repr(default)),
                     names=md(", ".join(names))))
    state.seed(ss, key, current if current in names else default)
    if ss[key] not in names:
        ss[key] = names[0]
    return st.selectbox(label, names, key=key, help=help_)


# ---- the CSV section ------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=16)
def _csv_summary(options_json: str, mtime: float) -> dict[str, Any]:
    """Import the CSV once (the importer's checks), for its summary; cached per file version."""
    from mtl_core.tasks import load_dataset

    options = json.loads(options_json)
    state.check_dataset_access("csv", options)
    ds = load_dataset("csv", options)
    return {"rows": {k: v for k, v in ds.summary()["splits"].items()},
            "tasks": {t: s.kind for t, s in ds.tasks.items()},
            "inputs": ds.input_kind, "input_dim": ds.input_dim, "vocab": ds.vocab_size,
            "target_scale": dict(ds.info.get("target_scale") or {}),
            "warnings": list(ds.info.get("warnings", []))}


def csv_section(raw_ds: Mapping[str, Any]) -> None:
    known = dict(raw_ds.get("options") or {}) if raw_ds.get("name") == "csv" else {}
    path_key = state.k_ds_opt("csv", "path")
    state.seed(ss, path_key, str(known.get("path") or ""))
    st.file_uploader(t("train.csv_upload"), type=["csv"], key="csv_upload", on_change=_on_csv_upload,
                     help=t("train.csv_upload_help"))
    if ss.get("_csv_upload_error"):
        st.error(t("train.csv_save_error", **ss["_csv_upload_error"]))
    st.text_input(t("train.csv_path"), key=path_key, help=t("train.csv_path_help"))
    header: list[str] = []
    path = ss.get(path_key) or ""
    if path:
        try:
            header = state.read_csv_header(path)
        except (DataError, ConfigError) as exc:
            st.error(md(exc))
    known_targets = known.get("targets")
    if isinstance(known_targets, dict):
        known_targets = list(known_targets)
    state.seed(ss, state.K_CSV_TARGETS, [t for t in (known_targets or []) if t in header])
    ss[state.K_CSV_TARGETS] = [t for t in ss[state.K_CSV_TARGETS] if t in header]
    st.multiselect(t("train.csv_targets"), header, key=state.K_CSV_TARGETS, help=t("train.csv_targets_help"))
    csv_kind_choosers(known, ss[state.K_CSV_TARGETS])
    text_choices = [state.NO_TEXT_COLUMN, *header]
    state.seed(ss, state.K_CSV_TEXT, known.get("text_column") or state.NO_TEXT_COLUMN)
    if ss[state.K_CSV_TEXT] not in text_choices:
        ss[state.K_CSV_TEXT] = state.NO_TEXT_COLUMN
    no_text = t("train.csv_no_text_column")
    st.selectbox(t("train.csv_text_column"), text_choices, key=state.K_CSV_TEXT,
                 format_func=lambda c: no_text if c == state.NO_TEXT_COLUMN else c)
    with st.expander(t("train.csv_more_options")):
        option_widgets(DATASETS, "csv", raw_ds, state.k_ds_opt, skip=(*state.CSV_SPECIAL, *CSV_MULTILABEL_OPTIONS))


CSV_KIND_CHOICES = ("auto", "classification", "regression", "multilabel")
CSV_MULTILABEL_OPTIONS = ("label_delimiter", "tune_thresholds")  # shown once a column is multilabel


def csv_kind_choosers(known: Mapping[str, Any], chosen: list[str]) -> None:
    """One kind chooser per chosen target column, seeded from the config's `kinds` (or a
    targets dict), and how a multi-label cell is read."""
    if not chosen:
        return
    declared = dict(known.get("targets") or {}) if isinstance(known.get("targets"), Mapping) else {}
    declared.update(known.get("kinds") or {})
    cols = st.columns(min(3, len(chosen)))
    for i, column in enumerate(chosen):
        key = state.k_csv_kind(column)
        state.seed(ss, key, declared.get(column, "auto"))
        if ss[key] not in CSV_KIND_CHOICES:
            ss[key] = "auto"
        cols[i % len(cols)].selectbox(t("train.csv_kind", column=md(column)), CSV_KIND_CHOICES, key=key,
                                      help=t("train.csv_kind_help"))
    if any(ss.get(state.k_csv_kind(c)) == "multilabel" for c in chosen):
        delimiter_key, tune_key = (state.k_ds_opt("csv", o) for o in CSV_MULTILABEL_OPTIONS)
        state.seed(ss, delimiter_key, str(known.get("label_delimiter") or ";"))
        state.seed(ss, tune_key, bool(known.get("tune_thresholds", False)))
        left, right = st.columns(2)
        left.text_input(t("train.csv_delimiter"), key=delimiter_key, help=t("train.csv_delimiter_help"))
        right.checkbox(t("train.csv_tune"), key=tune_key, help=t("train.csv_tune_help"))
        delimiter = str(ss.get(delimiter_key) or ";")
        st.caption(t("train.csv_multilabel_caption", delimiter=md(delimiter)))


def csv_check(options: Mapping[str, Any]) -> None:
    """Import the file with the chosen targets and show what it holds, or why it cannot."""
    if not options.get("path") or not options.get("targets"):
        st.info(t("train.csv_pick"))
        return
    try:
        mtime = state.check_data_path(options["path"]).stat().st_mtime
        with st.spinner(t("train.csv_reading")):
            summary = _csv_summary(json.dumps(dict(options), sort_keys=True), mtime)
    except FileNotFoundError:
        st.error(t("train.csv_not_found", path=md(options["path"])))
        return
    except (DataError, ConfigError) as exc:
        st.error(md(exc))
        return
    tasks = ", ".join(f"{md(t)} ({k})" for t, k in summary["tasks"].items())
    rows = summary["rows"]
    st.caption(t("train.csv_rows", train=rows["train"], val=rows["val"], test=rows["test"], tasks=tasks))
    scales = summary.get("target_scale") or {}
    regression = [task for task, k in summary["tasks"].items() if k == "regression"]
    if scales:
        st.caption(t("train.csv_standardised", scales=", ".join(
            t("train.csv_scale", task=md(task), mean=v["mean"], std=v["std"]) for task, v in scales.items())))
    elif regression and len(summary["tasks"]) > 1:
        st.caption(t("train.csv_raw_units", tasks=", ".join(md(task) for task in regression)))
    for warning in summary["warnings"]:
        st.warning(md(warning))


# ---- a glance at the data -----------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=32)
def _data_preview(dataset: str, options_json: str, tasks: tuple[str, ...], lang: str = "en") -> tuple[str, Any] | None:
    """`charts.data_preview` of the dataset's training split, cached by its setup; a link
    asking for 50,000 rows generates at most `state.PREVIEW_ROWS` for it."""
    from mtl_core.tasks import load_dataset

    options = json.loads(options_json)
    if "n_samples" in DATASETS.get(dataset).options.model_fields and int(options.get("n_samples") or 0) > state.PREVIEW_ROWS:
        options["n_samples"] = state.PREVIEW_ROWS
    state.check_dataset_access(dataset, options)
    ds = load_dataset(dataset, options)
    return charts.data_preview(ds, list(tasks), charts.task_colors(list(ds.tasks)), lang=lang)


def data_preview(dataset: str, options: Mapping[str, Any], tasks: list[str]) -> None:
    """What the data looks like (issue 15): drawn from its training rows, before any run."""
    if dataset == "csv":
        return  # the CSV form shows its own summary of the file
    try:
        preview = _data_preview(dataset, json.dumps(dict(options), sort_keys=True, default=str), tuple(tasks),
                                i18n.current())
    except MTLLabError:
        return  # the config check says what is wrong with these options
    if preview is None:
        return
    kind, value = preview
    with st.expander(t("train.data_preview"), expanded=True):
        if kind == "figure":
            st.plotly_chart(value, config={"displayModeBar": False}, key="data_preview")
        else:
            st.dataframe(value, hide_index=True, key="data_preview")


# ---- parameter count and sharing diagram ------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=64)
def _parameter_budget(dataset: str, options_json: str, tasks: tuple[str, ...], sharing: str,
                      sharing_json: str, model_json: str) -> dict[str, Any]:
    """`experiment.parameter_budget` of this setup (the engine's own recipe for the
    multi-task model and the baselines), cached by what the counts depend on.

    Counted on a stand-in with the dataset's inputs and tasks but a handful of rows
    (`state.dataset_stand_in`): opening a link never generates its data."""
    from mtl_core.experiment import parameter_budget

    options = json.loads(options_json)
    config = ExperimentConfig.model_validate({
        "dataset": {"name": dataset, "options": options}, "tasks": list(tasks),
        "sharing": {"name": sharing, "options": json.loads(sharing_json)}, "model": json.loads(model_json),
    })
    return parameter_budget(config, state.dataset_stand_in(dataset, options))


def budget_of(config: Any) -> dict[str, Any] | None:
    """The setup's parameter budget, or None where the page does not count it (token
    inputs, CSV files) or cannot (the count is a nicety; the config check reports real
    problems)."""
    entry = DATASETS.get(config.dataset.name)
    if entry.extra.get("input_kind") != "vector" or config.dataset.name == "csv":
        return None
    try:
        return _parameter_budget(
            config.dataset.name, json.dumps(config.dataset.options, sort_keys=True), tuple(config.task_list()),
            config.sharing.name, json.dumps(config.sharing.options, sort_keys=True),
            json.dumps(config.model.model_dump(mode="json"), sort_keys=True),
        )
    except Exception:  # noqa: BLE001 - see the docstring
        return None


def parameter_caption(config: Any, budget: Mapping[str, Any]) -> None:
    total, shared, stl = budget["mtl_total"], budget["mtl_shared"], budget["stl_total"]
    n = len(budget["tasks"])
    models = t("train.n_models_one") if n == 1 else t("train.n_models", n=n)
    fields = dict(sharing=md(config.sharing.name), models=models, total=total, shared=shared, stl=stl)
    st.caption(t("train.parameters_pct", pct=100 * total / stl, **fields) if stl else t("train.parameters_same", **fields))


# ---- the watched run --------------------------------------------------------------------------
def watch(run_id: str) -> None:
    run = common.read_run(run_id)  # says why when there is none: not in this lab, or damaged
    if run is None:
        state.set_run_id(None)  # stop pointing the URL at it
        return
    active = run["status"] in ACTIVE_STATUSES
    head, hold_col, step_col, cancel_col = st.columns([5, 1, 1, 1])
    head.subheader(t("train.run_header", run=md(run_id)))
    if active:
        hold_controls(run_id, run, hold_col, step_col)
    if active and cancel_col.button(t("train.cancel"), key="cancel", icon=":material/stop_circle:",
                                    help=t("train.cancel_help")):
        try:
            if not jobs.cancel(run_id, store_path=state.store_path()):
                st.info(t("train.already_ended"))
            else:
                st.toast(t("train.cancelling", run=md(run_id)))
        except StoreError as exc:
            st.error(md(exc))
    try:
        starting = active and not state.get_store().has_metrics(run_id)
        if starting and ss.pop(SS_JUST_STARTED, None) == run_id:
            starting = not _await_first_point(run_id)
    except common.STORE_READ_ERRORS:
        starting = False  # the live panel says what is wrong with the store
    # Polled fast until the first point, then at the chart's pace (dashboard/live_pace.py).
    if not active:
        poll = None
    elif starting:
        poll = STARTING_POLL_S
    else:
        poll = live_pace.panel_poll(ss, run_id, paused=bool(run.get("paused")))
    # While it polls, the panel also redraws the sidebar's list of active runs: one poller,
    # not two (dashboard/sidebar.py).
    sidebar.live_fragment(common.guarded(live_panel), poll, run_id, active, starting, poll)


def hold_controls(run_id: str, run: Mapping[str, Any], hold_col: Any, step_col: Any) -> None:
    """Pause / Resume and Step (issue 15): hold a run before its next step to look at it or
    explain it, then let it take one more logged step (one new point per task) at a time."""
    log_every = int(run["config"].get("log_every") or 10)
    try:
        if not run.get("paused"):
            if hold_col.button(t("train.pause"), key="pause", icon=":material/pause_circle:", width="stretch",
                               help=t("train.pause_help")):
                jobs.pause(run_id, store_path=state.store_path())
                st.rerun()
            return
        if hold_col.button(t("train.resume"), key="resume", icon=":material/play_circle:", width="stretch",
                           help=t("train.resume_help")):
            jobs.resume(run_id, store_path=state.store_path())
            st.rerun()
        if step_col.button(t("train.step", n=log_every), key="step", icon=":material/skip_next:", width="stretch",
                           help=t("train.step_help", n=log_every)):
            jobs.step(run_id, log_every, store_path=state.store_path())
    except StoreError as exc:
        st.error(md(exc))


def _await_first_point(run_id: str) -> bool:
    """Wait (at most FIRST_POINT_WAIT_S) for the first logged point of a run this tab has just
    started; whether it came. In a worker forked from the fork server it is logged about half a
    second after the click, so the rerun that follows the click draws it, instead of a later poll of the
    live panel and one more full rerun to slow the polling down (see bench/dashboard.py --click)."""
    store, deadline = state.get_store(), time.monotonic() + FIRST_POINT_WAIT_S
    while time.monotonic() < deadline:
        if store.has_metrics(run_id):
            return True
        if store.get_run(run_id)["status"] not in ACTIVE_STATUSES:
            return False
        time.sleep(0.05)
    return False


def live_panel(run_id: str, was_active: bool, was_starting: bool = False, polled_every: float | None = None) -> None:
    """The watched run's progress, outcome and live curves; rerun every `polled_every` seconds."""
    run, message = state.get_live_run(run_id)
    if run is None:
        st.warning(md(message))
        return
    store = state.get_store()
    config = run["config"]
    status = run["status"]
    tasks = state.run_tasks(config)
    colors = charts.task_colors(state.color_tasks(config, tasks))

    progress = state.progress_summary(run, state.run_phases(config), batch_size=config.get("batch_size", 64))
    shown = "paused" if run.get("paused") and status in ACTIVE_STATUSES else status
    text = f"**{md(shown)}**" + (f" · {md(progress['text'])}" if progress["text"] != status else "")
    st.progress(progress["fraction"], text=text)
    if status == "finished":
        result = store.result(run_id) or {}
        # Green only for a clear gain, red only for a clear loss (dashboard.verdicts), never the sign alone.
        kind, text = verdicts.delta_m_sentence(result)
        getattr(st, kind)(text, icon=verdicts.alert_icon(verdicts.delta_m_verdict(result)))
        st.page_link("app_pages/results.py", label=t("train.see_results"), icon=":material/leaderboard:",
                     query_params={state.RUN_PARAM: run_id})
    elif status == "failed":
        st.error(t("train.run_failed", error=md(run.get("error") or t("train.no_message")),
                   log=md(state.store_path().parent / "logs" / (run_id + ".log"))))
    elif status in ("cancelled", "interrupted"):
        st.warning(t("train.run_stopped", status=md(status), error=md(run.get("error") or "")))

    lang = i18n.current()
    c1, c2, c3 = st.columns([2, 1, 1])
    smoothing = c1.slider(t("train.smoothing"), 0.0, 0.99, 0.0, 0.01, key="live_smoothing")
    log_y = c2.toggle(t("train.log_scale"), key="live_log")
    baselines = c3.toggle(t("train.baselines"), value=True, key="live_baselines")
    # Only the rows logged since the last poll are read, and the figure drawn then gets the
    # new points (see bench/dashboard.py --watch for what watching costs a run).
    metrics = state.live_metrics(ss, run_id, metric="loss")
    if metrics.empty:
        st.caption(t("train.waiting"))
    else:
        # A new figure is a new chart for the browser to plot (dashboard/live_pace.py): drawn
        # at the pace of the run's age; in between the previous figure is shown unchanged.
        # A paused run's chart is drawn anew at each Step (its step is part of the settings).
        held_at = run["step"] if run.get("paused") else None
        pace, now, settings = (live_pace.chart_pace(ss, run_id), live_pace.now(),
                               (smoothing, log_y, baselines, held_at, lang))
        figure = state.live_figure(ss)
        if figure is None or pace.due(now, settings, final=status not in ACTIVE_STATUSES):
            figure = charts.loss_curves(metrics, tasks, colors=colors, smoothing=smoothing, log_y=log_y,
                                        show_baselines=baselines, reuse=figure, lang=lang)
            state.keep_live_figure(ss, figure)
            pace.drawn(now, settings)
        with st.container(key="live_curves"):  # `.st-key-live_curves` for the browser test and bench
            st.plotly_chart(figure)
    stale = ss.get(SS_SIDEBAR_STALE, 0)
    if stale:
        ss[SS_SIDEBAR_STALE] = stale - 1
    if was_active and status not in ACTIVE_STATUSES:
        st.rerun()  # the run ended: one full rerun stops the polling and drops Cancel
    elif was_starting and not metrics.empty:
        st.rerun()  # the first point is drawn: poll at the normal pace from now on
    elif stale == 1:
        st.rerun()  # the poll after the click's: the whole page, so the sidebar lists the new run
    elif (polled_every is not None and not was_starting
          and live_pace.panel_poll(ss, run_id, paused=bool(run.get("paused"))) > polled_every):
        st.rerun()  # the chart has slowed: the whole page, which polls the panel less often


# ---- the page -----------------------------------------------------------------------------------
st.title(t("train.title"))
st.caption(t("train.intro"))

params, force = _starting_params()
try:
    raw = state.params_to_raw(params)
except ConfigError as exc:
    st.error(t("train.bad_link", detail=md(exc)))
    raw = {}
# Values the widgets cannot hold (steps=abc, n_samples over the dashboard's bound) are
# replaced here, each with a note, instead of silently by the widgets.
raw, value_notes = state.review_config(raw)
if force:
    state.clear_form(ss)
if value_notes:
    st.warning(t("train.values_changed") + "  \n"
               + "  \n".join(f"• {md(n)}" for n in value_notes), icon=":material/tune:")
# Said for as long as the file stays in the uploader.
load_message = ss.get("_load_message") if ss.get("yaml_upload") is not None else None
if load_message:
    getattr(st, load_message[0])(t(load_message[1], **load_message[2]))

raw_ds = state.section(raw, "dataset")
col_data, col_model, col_train = st.columns([1.1, 1.0, 1.0], gap="large")

with col_data:
    st.subheader(t("train.section_data"))
    ds_name = select_entry(t("train.dataset"), DATASETS, state.K_DATASET, raw_ds.get("name", DEFAULTS.dataset.name),
                           DEFAULTS.dataset.name, help_=t("train.dataset_help"))
    entry_header(DATASETS, ds_name)
    if ds_name == "csv":
        csv_section(raw_ds)
    else:
        option_widgets(DATASETS, ds_name, raw_ds, state.k_ds_opt)
    ds_options = state.dataset_from_session(ss, raw)["options"]
    if ds_name == "csv":
        csv_check(ds_options)
    task_names, tasks_error = state.safe_task_names(ds_name, ds_options)
    if tasks_error and ds_name != "csv":
        st.error(md(tasks_error))
    same_dataset = raw_ds.get("name", DEFAULTS.dataset.name) == ds_name
    raw_tasks = raw.get("tasks") if same_dataset else None
    raw_weights = dict(raw.get("weights") or {}) if same_dataset else {}
    colors = charts.task_colors(task_names)
    # The strategy is chosen further down (section 3); its select box holds it from the
    # second run on, the loaded config before. Sliders it would ignore are disabled.
    wt_current = state.weighting_from_session(ss, raw)
    weights_on = state.weights_used(wt_current)
    weights_note = weights_note_of(wt_current) if wt_current in WEIGHTING else ""
    if task_names:
        st.markdown(t("train.tasks_and_weights"))
        if weights_note:
            fix = "" if weights_on else t("train.choose_manual")
            st.caption(md(weights_note + fix))
    for task in task_names:
        state.seed(ss, state.k_task(task), raw_tasks is None or task in raw_tasks)
        try:
            w0 = min(max(float(raw_weights.get(task, 1.0)), 0.0), 5.0)
        except (TypeError, ValueError):
            w0 = 1.0
        state.seed(ss, state.k_weight(task), w0)
        c_box, c_slider = st.columns([1, 2.2], vertical_alignment="center")
        c_box.checkbox(md(task), key=state.k_task(task))
        # Collapsed, the label is still rendered (hidden): an image in it would still load.
        c_slider.slider(t("train.weight_of", task=md(task)), 0.0, 5.0, step=0.1, key=state.k_weight(task),
                        label_visibility="collapsed", disabled=not (ss[state.k_task(task)] and weights_on))
    ticked = [t for t in task_names if ss.get(state.k_task(t))]
    if ticked and weights_on:
        shares = state.normalised_weights({t: float(ss[state.k_weight(t)]) for t in ticked})
        st.markdown(
            t("train.normalised") + " " + " ".join(
                f"<span style='color:{colors[t]}; font-weight:600'>● {html_md(t)} {shares[t]:.2f}</span>"
                for t in ticked
            ),
            unsafe_allow_html=True,
        )
    sweep_slot = st.empty()  # "sweep these weights": a link filled in below, once the URL's setup is known
    if not tasks_error:
        data_preview(ds_name, ds_options, ticked or task_names)

with col_model:
    st.subheader(t("train.section_sharing"))
    sh_name = select_entry(t("train.sharing_mode"), SHARING, state.K_SHARING,
                           state.section(raw, "sharing").get("name", DEFAULTS.sharing.name), DEFAULTS.sharing.name,
                           help_=t("train.sharing_help"))
    entry_header(SHARING, sh_name)
    option_widgets(SHARING, sh_name, state.section(raw, "sharing"), state.k_sh_opt)
    diagram = SHARING.get(sh_name).extra.get("diagram", "shared")
    diagram_slot = st.empty()  # drawn below, from the model the config describes
    param_slot = st.empty()

with col_train:
    st.subheader(t("train.section_weighting"))
    wt_name = select_entry(t("train.weighting_strategy"), WEIGHTING, state.K_WEIGHTING,
                           state.section(raw, "weighting").get("name", DEFAULTS.weighting.name),
                           DEFAULTS.weighting.name, help_=t("train.weighting_help"))
    entry_header(WEIGHTING, wt_name)
    option_widgets(WEIGHTING, wt_name, state.section(raw, "weighting"), state.k_wt_opt)

    st.subheader(t("train.section_training"))
    state.seed(ss, state.K_BUDGET, "epochs" if raw.get("epochs") and not raw.get("steps") else "steps")
    c_budget, c_amount = st.columns(2)
    budget_words = {"steps": t("train.field.steps"), "epochs": t("train.field.epochs")}
    budget = c_budget.radio(t("train.budget_in"), ["steps", "epochs"], key=state.K_BUDGET, horizontal=True,
                            format_func=budget_words.get)
    f_steps, f_epochs, f_batch, f_lr, f_seed, f_n_seeds = (state.TRAINING_FIELDS[k] for k in (
        "steps", "epochs", "batch_size", "optimizer.lr", "seed", "n_seeds"))
    if budget == "steps":
        state.seed(ss, state.K_STEPS, _training_value("steps", raw.get("steps")))
        c_amount.number_input(t("train.field.steps"), min_value=f_steps.min, max_value=f_steps.max, step=50,
                              key=state.K_STEPS, help=t("train.field.steps_help", max=f_steps.max))
    else:
        state.seed(ss, state.K_EPOCHS, _training_value("epochs", raw.get("epochs")))
        c_amount.number_input(t("train.field.epochs"), min_value=f_epochs.min, max_value=float(f_epochs.max), step=1.0,
                              format="%g", key=state.K_EPOCHS)
    c_batch, c_lr = st.columns(2)
    state.seed(ss, state.K_BATCH, _training_value("batch_size", raw.get("batch_size")))
    c_batch.number_input(t("train.field.batch_size"), min_value=f_batch.min, max_value=f_batch.max, step=16, key=state.K_BATCH)
    state.seed(ss, state.K_LR, _training_value("optimizer.lr", state.section(raw, "optimizer").get("lr")))
    c_lr.number_input(t("train.field.optimizer.lr"), min_value=f_lr.min, max_value=f_lr.max, step=1e-4, format="%g",
                      key=state.K_LR)
    c_seed, c_device = st.columns(2)
    state.seed(ss, state.K_SEED, _training_value("seed", raw.get("seed")))
    c_seed.number_input(t("train.field.seed"), min_value=f_seed.min, max_value=f_seed.max, step=1, key=state.K_SEED)
    devices = ["auto", "cpu"] + (["cuda"] if state.cuda_available() else [])
    wanted_device = raw.get("device", "auto")
    if wanted_device not in devices:
        st.warning(t("train.no_such_device", device=md(repr(wanted_device))))
    state.seed(ss, state.K_DEVICE, wanted_device if wanted_device in devices else "auto")
    if ss[state.K_DEVICE] not in devices:
        ss[state.K_DEVICE] = "auto"
    c_device.radio(t("train.field.device"), devices, key=state.K_DEVICE, horizontal=True,
                   help=t("train.field.device_help"))
    c_seeds, c_threads = st.columns(2)
    state.seed(ss, state.K_N_SEEDS, _training_value("n_seeds", raw.get("n_seeds")))
    c_seeds.number_input(t("train.field.n_seeds"), min_value=f_n_seeds.min, max_value=f_n_seeds.max, step=1,
                         key=state.K_N_SEEDS, help=t("train.field.n_seeds_help"))
    thread_choices = state.thread_choices()
    state.seed(ss, state.K_THREADS, state.threads_noted(raw.get("threads", "auto"))[0])
    if ss[state.K_THREADS] not in thread_choices:
        ss[state.K_THREADS] = "auto"
    thread_words = {"auto": t("train.field.threads_auto"), "torch": t("train.field.threads_torch")}
    c_threads.selectbox(
        t("train.field.threads"), thread_choices, key=state.K_THREADS,
        format_func=lambda v: thread_words.get(v, str(v)),
        help=t("train.field.threads_help", cores=thread_choices[-2]))


# ---- the experiment the form describes ----------------------------------------------------------
draft, late_notes = state.review_config(state.draft_from_session(ss, raw, task_names))
for late_note in late_notes:  # the widgets' bounds make this rare (e.g. a field without widget)
    st.warning(md(late_note), icon=":material/tune:")
config, config_error = state.validate(draft)
ss[SS_SHOWN] = (raw, list(task_names), state.config_fingerprint(config) if config is not None else None)
written = state.config_to_params(draft)
ss[state.SS_PARAMS] = written
ss[state.SS_WRITTEN] = [p for p in ss.get(state.SS_WRITTEN, []) if p != written][-(state.WRITTEN_KEPT - 1):] + [written]
run_id = state.current_run_id()
lang = st.query_params.get(i18n.LANG_PARAM)  # the sidebar's language switch keeps its choice in the URL
wanted_query = {**written, **({state.RUN_PARAM: run_id} if run_id else {}),
                **({i18n.LANG_PARAM: lang} if lang else {})}
if st.query_params.to_dict() != wanted_query:
    st.query_params.from_dict(wanted_query)
if config is not None and len(ticked) >= 2 and weights_on:
    # One click from the sliders to a sweep (issue 14): 9 weightings on the line from these
    # weights to their mirror, the rest of the setup as it is (the Sweep page reads the same keys).
    sweep_slot.page_link("app_pages/sweep.py", label=t("train.sweep_link"), icon=":material/scatter_plot:",
                         query_params={**written, "ax.weights": "mirror", "ax.points": "9", "ax.strategies": "manual"},
                         help=t("train.sweep_link_help"))
budget = budget_of(config) if config is not None else None
# The diagram is drawn from the model's own blocks (`describe_blocks`), so its experts,
# layers and depths are the model's; without a count, a drawing without numbers.
diagram_slot.plotly_chart(
    charts.architecture_diagram(diagram, ticked or task_names or ["task"], colors=colors,
                                blocks=(budget or {}).get("blocks"), lang=i18n.current()),
    config={"displayModeBar": False, "staticPlot": True})
if budget is not None:
    with param_slot.container():
        parameter_caption(config, budget)

st.divider()
if config_error:
    st.error(md(config_error), icon=":material/error:")
c_download, c_load = st.columns([1, 2], vertical_alignment="top")
c_download.download_button(
    t("train.download"),
    data=config.to_yaml() if config is not None else yaml.safe_dump(draft, sort_keys=False),
    file_name=f"{(config.name if config is not None and config.name else 'experiment')}.yaml",
    mime="application/x-yaml", key="download_yaml", icon=":material/download:", width="stretch",
)
with c_load.expander(t("train.load")):
    st.file_uploader(t("train.load_file"), type=["yaml", "yml", "json"], key="yaml_upload",
                     on_change=_on_yaml_upload, label_visibility="collapsed")
    st.caption(t("train.load_caption"))


@st.fragment
def train_and_watch(config: ExperimentConfig | None) -> None:
    """The Train button and the watched run, one fragment: a click on Train reruns only this
    part of the page, so the browser applies a handful of elements, not the whole form, before
    the first point shows (bench/dashboard.py --click). `config` is the form's experiment as
    the last full run of the page built it: a changed setting reruns the whole page."""
    # One submission starts one run: while the run this tab started for this very config is
    # queued or running, Train is disabled and a second click (sent before the page redrew)
    # starts nothing.
    already_started = state.started_run(ss, config)
    c_train, c_note = st.columns([1, 3], vertical_alignment="center")
    train_clicked = c_train.button(
        t("train.train"), type="primary", key="train", icon=":material/play_arrow:", on_click=_start_on_click,
        disabled=config is None or already_started is not None, width="stretch", help=t("train.train_help"))
    if already_started:
        c_note.caption(t("train.started_as", run=md(already_started)))
    if train_clicked and config is not None and already_started is None and _start(config):
        st.rerun()  # the whole page: Train disabled, the sidebar lists (and polls) the new run
    start_error = ss.pop(SS_START_ERROR, None)
    if start_error:
        st.error(md(start_error))
    run_id = state.current_run_id()  # the callback may just have started one
    if run_id:
        watch(run_id)
    else:
        st.info(t("train.set_up_first"), icon=":material/info:")


train_and_watch(config)
