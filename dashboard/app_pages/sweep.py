"""Sweep: many runs of one base setup over loss weights, strategies, sharing modes and seeds,
then the trade-off between the tasks as a Pareto plot (issue 14).

The whole setup lives in the URL like Train's: the base experiment as Train's dotted keys
(a link from Train's "sweep these weights" fills it), the axes as `ax.*`, the executor as
`executor`, the launched sweep as `?sweep=<id>`, and the language as `?lang=` (so switching
language rewrites no part of the setup). The points are `mtl_core.sweep.expand`'s,
run by `mtl_core.executors.start_sweep` in a background driver; the page only reads the store.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st
import yaml

from dashboard import charts, i18n, live_pace, sidebar, state
from dashboard.app_pages import common
from dashboard.i18n import t, text
from dashboard.safe_text import md
from mtl_core import executors
from mtl_core.errors import ConfigError, DataError, MTLLabError, StoreError
from mtl_core.models import SHARING
from mtl_core.store import ACTIVE_STATUSES
from mtl_core.sweep import (
    MAX_POINTS,
    SweepConfig,
    dump_sweep_yaml,
    expand,
    load_sweep_yaml,
    mirror_line,
    sweep_table,
)
from mtl_core.weighting import WEIGHTING

SWEEP_PARAM = "sweep"  # ?sweep=<id>: the sweep this page shows
AX_WEIGHTS, AX_RES, AX_POINTS = "ax.weights", "ax.resolution", "ax.points"
AX_STRATEGIES, AX_SHARING, AX_SEEDS, EXECUTOR = "ax.strategies", "ax.sharing", "ax.seeds", "executor"
AXIS_KEYS = (AX_WEIGHTS, AX_RES, AX_POINTS, AX_STRATEGIES, AX_SHARING, AX_SEEDS, EXECUTOR)
WEIGHT_MODES = ("grid", "mirror", "none")  # shown as the texts sweep.mode.<mode>
DEFAULT_RESOLUTION, DEFAULT_POINTS = 8, 9
# The time estimate's figures, measured on the 2-core development CPU with one thread (load
# about 3): `mtl-lab run --config examples/quickstart.yaml` (600 steps, batch 64) trains at
# 31-37k samples/s (median 33k, i.e. ~520 steps/s; 3 runs) and takes 12 s of wall time in all,
# ~8.5 s of which are the process's start, data and evaluations (START_S); the 9-point
# batched sweep of examples/sweep.yaml (manual only) takes 15 s: each further ensemble member
# costs ~0.4 of a run's training steps (BATCHED_MEMBER_COST).
MEASURED_STEPS_PER_S = 520.0
START_S = 8.5
BATCHED_MEMBER_COST = 0.4
POLL_S = live_pace.POLL_S
ss = st.session_state
# The page's words (dashboard/locales/*/sweep.yaml); names and ids stay as they are. A
# format_func takes `lang`, not `t()`: Streamlit may call it outside the page's run.
lang = i18n.current()


# ---- the setup in the URL ---------------------------------------------------------------------
def _query() -> dict[str, str]:
    return {k: (v[-1] if isinstance(v, list) else str(v)) for k, v in st.query_params.to_dict().items()}


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _has_ray() -> bool:
    """Whether the `[cluster]` extra is installed (the ray executor is offered only then)."""
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def _split_list(text: str) -> list[str]:
    return [p.strip() for p in str(text).split(",") if p.strip()]


def _on_sweep_upload() -> None:
    """A sweep YAML replaces the page's setup: its inline base, its axes, its executor."""
    upload = ss.get("sweep_yaml_upload")
    ss.pop("_sweep_load_message", None)
    if upload is None:
        return
    in_url = st.query_params.get(i18n.LANG_PARAM)  # the new setup replaces the URL; the language stays
    lang = i18n.current()
    try:
        cfg = load_sweep_yaml(upload.getvalue().decode("utf-8"))
        if not isinstance(cfg.base, dict) or not cfg.base:
            raise ConfigError(text("sweep.upload_needs_inline_base", lang, example="base: {dataset: …}"))
        params = state.config_to_params(cfg.base_dict())
        axes, dropped = cfg.axes, []
        if axes.weights is not None and axes.weights.simplex is not None:
            params.update({AX_WEIGHTS: "grid", AX_RES: str(axes.weights.simplex)})
        else:
            params[AX_WEIGHTS] = "none"
            if axes.weights is not None:
                dropped.append(text("sweep.left_out_values", lang))
        if axes.weighting:
            params[AX_STRATEGIES] = ",".join(w if isinstance(w, str) else w.name for w in axes.weighting)
        if axes.sharing:
            params[AX_SHARING] = ",".join(s if isinstance(s, str) else s.name for s in axes.sharing)
        if axes.seed:
            params[AX_SEEDS] = ",".join(str(s) for s in axes.seed)
        if axes.params:
            dropped.append(text("sweep.left_out_params", lang, names=", ".join(axes.params)))
        if cfg.search is not None:
            dropped.append(text("sweep.left_out_search", lang))
        params[EXECUTOR] = cfg.executor
        if in_url:
            params[i18n.LANG_PARAM] = in_url
        st.query_params.from_dict(params)
        for key in [k for k in ss if str(k).startswith("sw.")]:
            del ss[key]
        note = text("sweep.left_out", lang, what="; ".join(dropped)) if dropped else ""
        ss["_sweep_load_message"] = ("success" if not dropped else "warning",
                                     text("sweep.loaded", lang, name=md(upload.name), note=md(note)))
    except UnicodeDecodeError:
        ss["_sweep_load_message"] = ("error", text("sweep.not_utf8", lang, name=md(upload.name)))
    except (MTLLabError, yaml.YAMLError) as exc:
        ss["_sweep_load_message"] = ("error", text("sweep.cannot_load", lang, name=md(upload.name),
                                                   error=md(state.error_text(exc))))


@st.cache_data(show_spinner=t("sweep.checking"), max_entries=32)  # the spinner's words are no part of the key
def _plan(sweep_json: str) -> dict[str, Any]:
    """Expand (and so validate) the sweep once per setup: the number of points, their
    tasks and whether all of them differ only in loss weights and seeds."""
    points = expand(SweepConfig.parse(json.loads(sweep_json)))
    keys = {json.dumps({**p.config.to_dict(), "weights": None, "seed": None, "name": None}, sort_keys=True,
                       default=str) for p in points}
    return {"points": len(points), "weight_only": len(keys) == 1,
            "steps": [p.config.steps or 0 for p in points], "tasks": points[0].config.task_list() if points else [],
            # models per point (n_seeds), and the distinct seeds, each with its own baselines
            "models": [p.config.n_seeds for p in points],
            "seeds": len({p.config.seed + k for p in points for k in range(p.config.n_seeds)})}


def _estimate_s(plan: dict[str, Any], executor: str) -> float:
    """Seconds of wall time, from the measured figures above: one baseline per task and seed
    (trained once, then reused), then the points, each a process of its own (local, ray: split
    over the workers) or members of one stacked ensemble (batched), a model per seed of a point."""
    steps = max(plan["steps"]) if plan["steps"] else 0
    seeds, models = plan.get("seeds", 1), plan.get("models") or [1] * plan["points"]
    baselines = len(plan["tasks"]) * seeds * steps / MEASURED_STEPS_PER_S
    if executor == "batched":
        return START_S + baselines + sum(models) * BATCHED_MEMBER_COST * steps / MEASURED_STEPS_PER_S
    workers = max(1, min(executors.default_workers(), plan["points"]))
    return baselines + sum(START_S + n * steps / MEASURED_STEPS_PER_S for n in models) / workers


# ---- the launched sweep ---------------------------------------------------------------------------
def _open_run_link(run_id: str, *, where: str) -> None:
    """Links to the run of a clicked point: its results, and its setup on Train (to tune on).
    `where`: the help text saying which point (a row of the table, a point of the plot)."""
    c_results, c_train = st.columns(2)
    c_results.page_link("app_pages/results.py", label=t("sweep.open_results", run_id=md(run_id)),
                        icon=":material/leaderboard:", query_params={state.RUN_PARAM: run_id}, help=where)
    run = common.read_run(run_id)
    if run is not None:
        c_train.page_link("app_pages/train.py", label=t("sweep.open_train"), icon=":material/model_training:",
                          query_params={**state.config_to_params(run["config"]), state.RUN_PARAM: run_id},
                          help=t("sweep.open_train_help"))


def _show_sweep() -> None:
    """The stored sweep picked in the select box goes into the URL (`?sweep=`)."""
    if ss.get("sw.shown"):
        st.query_params[SWEEP_PARAM] = ss["sw.shown"]
    else:
        st.query_params.pop(SWEEP_PARAM, None)


def _trials(sweep: dict[str, Any]) -> int:
    """The points a study (`search:`, mtl_core.tune) will propose in all; 0 for an axes sweep."""
    return int(((sweep["config"] or {}).get("search") or {}).get("trials") or 0)


def _is_active(sweep: dict[str, Any]) -> bool:
    """Whether the sweep may still change: a run queued or running, or a study's driver
    between two rounds (every stored point ended, the next round not asked yet)."""
    between_rounds = (sweep["driver_alive"] and not sweep["cancel_requested"]
                      and sweep["points"] < _trials(sweep))
    return sweep["status"] in ACTIVE_STATUSES or between_rounds


def sweep_panel(sweep_id: str, active: bool) -> None:
    """The points filling in (a table) and, once two tasks have results, the Pareto plot."""
    store = state.get_store()
    table = sweep_table(store, sweep_id)
    sweep, points = table.sweep, table.points
    counts = sweep["counts"]
    ended = sum(counts.get(s, 0) for s in ("finished", "failed", "cancelled", "interrupted"))
    # A study stores its points round by round: count its trials while it asks.
    total = max(sweep["points"], _trials(sweep)) if _is_active(sweep) else sweep["points"]
    st.progress(ended / max(total, 1),
                text=t("sweep.progress", status=md(sweep["status"]), ended=ended, total=total,
                       counts=", ".join(f"{n} {md(s)}" for s, n in sorted(counts.items()))))
    if not points.empty:
        shown = [c for c in ["index", "status", "label", *[c for c in points.columns if c.startswith(("val:", "test:"))],
                             "delta_m", "is_front", "run_id"] if c in points.columns]
        rows = st.dataframe(points[shown], hide_index=True, key="sweep_grid", on_select="rerun",
                            selection_mode="single-row",
                            column_config={
                                "delta_m": st.column_config.NumberColumn(t("sweep.col_delta_m"), format="%+.2f"),
                                "is_front": st.column_config.CheckboxColumn(t("sweep.col_front"))})
        picked = (rows or {}).get("selection", {}).get("rows") if rows else None
        if picked:
            _open_run_link(str(points.iloc[picked[0]]["run_id"]), where=t("sweep.open_results_help_row"))
    tasks = table.tasks
    if len(tasks) >= 2 and points["is_front"].any():
        st.subheader(t("sweep.tradeoff"))
        st.caption(t("sweep.tradeoff_caption"))
        names = list(tasks["task"])
        pair = (names[0], names[1])
        if len(names) > 2:
            pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
            pair = st.selectbox(t("sweep.pair"), pairs, key="sweep_pair",
                                format_func=lambda p: text("sweep.pair_option", lang, a=p[0], b=p[1]))
        figure = charts.pareto_chart(points, tasks, pair=pair, colors=charts.task_colors(names), lang=lang)
        event = st.plotly_chart(figure, key="sweep_pareto", on_select="rerun", selection_mode="points")
        chosen = charts.selected_run(event, figure)
        if chosen:
            _open_run_link(chosen, where=t("sweep.open_results_help_point"))
        if len(names) == 3:
            st.plotly_chart(charts.ternary_chart(points, tasks, lang=lang), key="sweep_ternary")
    elif ended == 0:
        st.caption(t("sweep.pareto_later"))
    if active and not _is_active(sweep):
        st.rerun()  # the sweep ended: one full rerun stops the polling and drops Cancel


def watch_sweep(sweep_id: str) -> None:
    try:
        sweep = state.get_store().get_sweep(sweep_id)
    except StoreError as exc:
        st.error(md(exc), icon=":material/link_off:")
        return
    active = _is_active(sweep)
    head, cancel_col = st.columns([4, 1])
    head.subheader(t("sweep.heading", name=md(sweep["name"] or sweep_id), executor=md(sweep["executor"])))
    if active and cancel_col.button(t("sweep.cancel"), key="sweep_cancel", icon=":material/stop_circle:"):
        try:
            n = executors.cancel_sweep(sweep_id, store_path=state.store_path())
            st.toast(t("sweep.cancelling", n=n))
        except StoreError as exc:
            st.error(md(exc))
    sidebar.live_fragment(common.guarded(sweep_panel), POLL_S if active else None, sweep_id, active)


# ---- the page ---------------------------------------------------------------------------------------
st.title(t("sweep.title"))
st.caption(t("sweep.intro"))

query = _query()
base_params = state.config_params(query)
load_message = ss.get("_sweep_load_message") if ss.get("sweep_yaml_upload") is not None else None
if load_message:
    getattr(st, load_message[0])(load_message[1])
try:
    raw = state.params_to_raw(base_params)
except ConfigError as exc:
    st.error(t("sweep.bad_link", error=md(exc)))
    raw, base_params = {}, {}
base, base_error = state.validate(raw)

col_base, col_axes = st.columns([1, 1.3], gap="large")
with col_base:
    st.subheader(t("sweep.base"))
    if base is None:
        st.error(md(base_error))
    else:
        tasks = base.task_list()
        st.markdown(t("sweep.base_summary", dataset=md(base.dataset.name), tasks=md(", ".join(tasks)),
                      sharing=md(base.sharing.name), weighting=md(base.weighting.name),
                      weights=md(", ".join(f"{task} {base.weights.get(task, 1.0):g}" for task in tasks))))
        steps_field = state.TRAINING_FIELDS["steps"]
        state.seed(ss, "sw.steps", int(base.steps or base_params.get("steps") or steps_field.default))
        st.number_input(t("sweep.steps"), min_value=1, max_value=int(steps_field.max), step=50, key="sw.steps",
                        help=t("sweep.steps_help"))
        if ss["sw.steps"] != base.steps:
            raw = {**raw, "steps": int(ss["sw.steps"]), "epochs": None}
            base, base_error = state.validate(raw)
        st.page_link("app_pages/train.py", label=t("sweep.change_base"), icon=":material/model_training:",
                     query_params=base_params)
    with st.expander(t("sweep.load")):
        st.file_uploader(t("sweep.file"), type=["yaml", "yml"], key="sweep_yaml_upload", on_change=_on_sweep_upload,
                         label_visibility="collapsed")
        st.caption(t("sweep.load_caption"))

sweep_dict: dict[str, Any] | None = None
plan: dict[str, Any] | None = None
with col_axes:
    st.subheader(t("sweep.axes"))
    tasks = base.task_list() if base is not None else []
    state.seed(ss, "sw.weights", query.get(AX_WEIGHTS) if query.get(AX_WEIGHTS) in WEIGHT_MODES
               else ("grid" if 2 <= len(tasks) <= 3 else "none"))
    mode = st.radio(t("sweep.weights"), list(WEIGHT_MODES), key="sw.weights",
                    format_func=lambda m: text(f"sweep.mode.{m}", lang), horizontal=True, help=t("sweep.weights_help"))
    c1, c2 = st.columns(2)
    if mode == "grid":
        state.seed(ss, "sw.resolution", _int(query.get(AX_RES), DEFAULT_RESOLUTION))
        c1.slider(t("sweep.resolution"), 1, 20, key="sw.resolution", help=t("sweep.resolution_help"))
    elif mode == "mirror":
        state.seed(ss, "sw.points", _int(query.get(AX_POINTS), DEFAULT_POINTS))
        c1.slider(t("sweep.points"), 2, 21, key="sw.points")
    default_strategies = _split_list(query.get(AX_STRATEGIES, "")) or ([base.weighting.name] if base else ["manual"])
    state.seed(ss, "sw.strategies", [s for s in default_strategies if s in WEIGHTING.names()] or ["manual"])
    st.multiselect(t("sweep.strategies"), WEIGHTING.names(), key="sw.strategies", help=t("sweep.strategies_help"))
    default_sharing = _split_list(query.get(AX_SHARING, "")) or ([base.sharing.name] if base else ["hard"])
    state.seed(ss, "sw.sharing", [s for s in default_sharing if s in SHARING.names()] or ["hard"])
    st.multiselect(t("sweep.sharing"), SHARING.names(), key="sw.sharing")
    state.seed(ss, "sw.seeds", query.get(AX_SEEDS) or (str(base.seed) if base else "0"))
    c2.text_input(t("sweep.seeds"), key="sw.seeds", help=t("sweep.seeds_help"))
    seeds, seeds_error = [], None
    try:
        seeds = [int(s) for s in _split_list(ss["sw.seeds"])]
    except ValueError:
        seeds_error = t("sweep.bad_seeds", value=md(ss["sw.seeds"]))
    if seeds_error:
        st.error(seeds_error)

    if base is not None and not seeds_error:
        axes: dict[str, Any] = {"weighting": list(ss["sw.strategies"]) or ["manual"],
                                "sharing": list(ss["sw.sharing"]) or [base.sharing.name],
                                "seed": seeds or [base.seed]}
        if mode == "grid":
            axes["weights"] = {"simplex": int(ss["sw.resolution"])}
        elif mode == "mirror":
            axes["weights"] = {"values": mirror_line({t: float(base.weights.get(t, 1.0)) for t in tasks},
                                                     int(ss["sw.points"]))}
        sweep_dict = {"name": f"{base.name or base.dataset.name} sweep", "base": base.to_dict(), "axes": axes}
        try:
            plan = _plan(json.dumps(sweep_dict, sort_keys=True))
        except (ConfigError, ValueError) as exc:
            st.error(md(state.error_text(exc)), icon=":material/error:")

    auto = "batched" if plan and plan["weight_only"] else "local"
    choices = ["auto", "local", "batched"] + (["ray"] if _has_ray() else [])
    state.seed(ss, "sw.executor", query.get(EXECUTOR) if query.get(EXECUTOR) in choices else "auto")
    if ss["sw.executor"] not in choices:
        ss["sw.executor"] = "auto"
    chosen_executor = st.radio(
        t("sweep.executor"), choices, key="sw.executor", horizontal=True,
        format_func=lambda e: text("sweep.executor_auto", lang, auto=auto) if e == "auto" else e,  # names as they are
        help=t("sweep.executor_help"))
    executor = auto if chosen_executor == "auto" else chosen_executor

# The setup, written back to the URL: a reload or a shared link shows the same sweep.
axis_params = {AX_WEIGHTS: mode, AX_STRATEGIES: ",".join(ss["sw.strategies"]),
               AX_SHARING: ",".join(ss["sw.sharing"]), AX_SEEDS: ss["sw.seeds"], EXECUTOR: chosen_executor}
if mode == "grid":
    axis_params[AX_RES] = str(ss["sw.resolution"])
elif mode == "mirror":
    axis_params[AX_POINTS] = str(ss["sw.points"])
written = state.config_to_params(raw) if base is not None else base_params
sweep_id = query.get(SWEEP_PARAM)
lang_in_url = query.get(i18n.LANG_PARAM)
wanted_query = {**written, **axis_params, **({SWEEP_PARAM: sweep_id} if sweep_id else {}),
                **({i18n.LANG_PARAM: lang_in_url} if lang_in_url else {})}
if _query() != wanted_query:
    st.query_params.from_dict(wanted_query)

st.divider()
c_count, c_launch, c_download = st.columns([2, 1, 1], vertical_alignment="center")
if plan is not None:
    est = _estimate_s(plan, executor)
    c_count.markdown(t("sweep.count", n=plan["points"], time=state.format_seconds(est), executor=md(executor)))
    c_count.caption(t("sweep.estimate", rate=MEASURED_STEPS_PER_S, start=START_S, member=BATCHED_MEMBER_COST))
launch = c_launch.button(t("sweep.launch"), type="primary", key="sweep_launch", icon=":material/rocket_launch:",
                         disabled=plan is None or plan["points"] > MAX_POINTS, width="stretch")
if sweep_dict is not None:
    c_download.download_button(t("sweep.download"), data=dump_sweep_yaml(SweepConfig.parse(
        {**sweep_dict, "executor": executor})), file_name="sweep.yaml", mime="application/x-yaml",
        key="sweep_download", icon=":material/download:", width="stretch")

if launch and sweep_dict is not None and plan is not None:
    try:
        state.check_dataset_access(base.dataset.name, base.dataset.options)
        new_id = executors.start_sweep(SweepConfig.parse({**sweep_dict, "executor": executor}), executor=executor,
                                       store_path=state.store_path())
    except (ConfigError, DataError, StoreError) as exc:
        st.error(md(exc))
    else:
        st.query_params[SWEEP_PARAM] = new_id
        st.rerun()

try:
    stored = state.get_store().sweeps()
except common.STORE_READ_ERRORS as exc:
    stored = pd.DataFrame()
    st.error(common.store_error_text(exc), icon=":material/database:")
if not stored.empty:
    ids = list(stored["id"])
    labels = {r["id"]: t("sweep.stored_option", name=r["name"] or r["id"], status=r["status"], points=r["points"])
              for r in stored.to_dict("records")}
    ss["sw.shown"] = sweep_id if sweep_id in ids else None
    st.selectbox(t("sweep.stored"), [None, *ids], key="sw.shown", format_func=lambda i: labels.get(i, "—"),
                 on_change=_show_sweep)
if sweep_id:
    watch_sweep(sweep_id)
else:
    st.info(t("sweep.start_here"), icon=":material/info:")
