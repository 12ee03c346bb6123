"""Learn: guided lessons, each predict → run → see → explain → try (issue 15).

The lessons are data (`dashboard/lessons/*.yaml`); this page only walks a student
through one: pick a prediction, press Run (the lesson's experiment starts as a normal run,
or the stored run of the same config is shown at once), read the two or three charts that
answer the question and the verdict the engine computed with its noise beside the
prediction, then the explanation with its formula, then turn one knob and run again.
`?lesson=N` opens a lesson, `?lang=zh` shows it in Chinese, `?present=1` is for a projector.
A transfer lesson (`kind: transfer`) starts a transfer run the same way and shows the
Transfer page's data-efficiency curve and vs-scratch table; a lesson whose extra is not
installed (`needs: [text]`) is listed greyed with the command that installs it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import charts, i18n, sidebar, state
from dashboard import verdicts as vd
from dashboard.app_pages import common
from dashboard.i18n import t
from dashboard.lessons import (
    Lesson,
    LessonError,
    find_run,
    measured,
    run_dataset,
    shipped_lessons,
)
from dashboard.safe_text import md
from mtl_core import jobs
from mtl_core.errors import ConfigError, DataError, StoreError
from mtl_core.store import ACTIVE_STATUSES

LESSON_PARAM = "lesson"
PRESENT_PARAM = "present"
POLL_S = 1.0
SS_RUNS = "_learn_runs"  # (lesson id, variant) -> run id this tab is showing


def _run_key(lesson: Lesson, variant: str) -> str:
    return f"{lesson.id}:{variant}"


def lesson_from_url(lessons: tuple[Lesson, ...]) -> Lesson | None:
    raw = st.query_params.get(LESSON_PARAM)
    if raw is None:
        return None
    try:
        number = int(str(raw))
    except ValueError:
        number = None
    lesson = next((l for l in lessons if l.number == number), None)
    if lesson is None:
        st.warning(t("learn.no_such_lesson", given=md(raw), count=len(lessons)), icon=":material/link_off:")
    return lesson


def open_lesson(number: int | None) -> None:
    if number is None:
        st.query_params.pop(LESSON_PARAM, None)
    else:
        st.query_params[LESSON_PARAM] = str(number)


def presentation_style() -> None:
    """Projector mode: no sidebar, larger text (Streamlit's own classes are not an API;
    the data-testid attributes are what its tests use)."""
    st.html("""<style>
      [data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"] {display: none;}
      [data-testid="stMainBlockContainer"] {max-width: 1200px;}
      [data-testid="stMarkdownContainer"] p, [data-testid="stMarkdownContainer"] li,
      [data-testid="stWidgetLabel"] p, label p {font-size: 1.35rem !important;}
      h1 {font-size: 3rem !important;} h2, h3 {font-size: 2.1rem !important;}
    </style>""")


# ---- the landing list ------------------------------------------------------------------------
def lesson_list(lessons: tuple[Lesson, ...], lang: str) -> None:
    st.markdown(t("learn.intro"))
    for lesson in lessons:
        ready = lesson.available()
        c_open, c_text = st.columns([1, 4], vertical_alignment="center")
        if c_open.button(f"{lesson.number}. {lesson.title.get(lang)}", key=f"learn.open.{lesson.number}",
                         width="stretch", disabled=not ready,
                         help=None if ready else t("learn.needs_extra", command=lesson.install_hint)):
            open_lesson(lesson.number)
            st.rerun()
        c_text.caption(lesson.question.get(lang))
        if not ready:
            c_text.caption(t("learn.needs_extra", command=lesson.install_hint))


# ---- starting (or finding) a lesson's run ------------------------------------------------------
def start_or_reuse(lesson: Lesson, variant: str) -> str | None:
    """The run that answers this lesson (variant "main" or "try"): the stored run of the same
    config when there is one (finished, or still training for someone else), else a new one."""
    store = state.get_store()
    try:
        config = lesson.config(try_this=variant == "try", place=state.save_upload)
        run_id = find_run(store, config)
        if run_id is None:
            dataset = run_dataset(config)
            state.check_dataset_access(dataset.name, dataset.options)
            run_id = jobs.start(config, store_path=state.store_path())
    except (ConfigError, DataError, StoreError, OSError) as exc:
        st.error(md(exc))
        return None
    st.session_state.setdefault(SS_RUNS, {})[_run_key(lesson, variant)] = run_id
    return run_id


def progress_panel(run_id: str) -> None:
    """The run's progress while it trains; a full rerun draws the answer once it ends."""
    run, message = state.get_live_run(run_id)
    if run is None:
        st.warning(md(message))
        return
    if run["status"] not in ACTIVE_STATUSES:
        st.rerun()  # ended: the page draws the answer
    config = run["config"]
    progress = state.progress_summary(run, state.run_phases(config), batch_size=state.run_batch_size(config),
                                      budgets=state.run_budgets(config))  # a transfer run's models differ
    st.progress(progress["fraction"], text=f"{t('learn.training')} · {md(progress['text'])}")


# ---- the answer ------------------------------------------------------------------------------
def verdict_word(word: str | None) -> str:
    return t(f"verdict.{word}") if word else t("verdict.none")


def verdict_sentence(m: dict[str, Any]) -> str:
    """The run's answer with its numbers and its noise, e.g. `Δm = +3.2 % (95 % interval
    +0.8 to +5.6 %): helped`, in the page's language."""
    if m["value"] is None:
        return t("learn.no_verdict")
    span = ""
    if m["low"] is not None and m["high"] is not None:
        span = t("learn.interval_pct" if m["measure"] == "delta_m" else "learn.interval", low=m["low"], high=m["high"])
    word = verdict_word(m["verdict"])
    if m["measure"] == "delta_m":
        return t("learn.sentence_delta_m", value=m["value"], span=span, word=word)
    if m["measure"] == "task":
        return t("learn.sentence_task", task=md(m["task"]), mtl=m.get("mtl") or float("nan"),
                 stl=m.get("stl") or float("nan"), metric=md(m.get("metric") or ""), value=m["value"],
                 span=span, word=word)
    if m["measure"] == "vs_scratch":
        return t("learn.sentence_vs_scratch", n=m.get("n_labelled") or 0, arm=t(f"learn.arm.{m['arm']}"),
                 metric=md(m.get("metric") or ""), arm_value=_or_nan(m.get("arm_value")),
                 scratch_value=_or_nan(m.get("scratch_value")), value=m["value"], span=span, word=word)
    pair = " · ".join(md(p) for p in m.get("pair") or [])
    return t("learn.sentence_pair", pair=pair, value=m["value"], n=m.get("evaluations") or 0, span=span, word=word)


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else value


def prediction_vs_verdict(lesson: Lesson, lang: str, prediction: str | None, m: dict[str, Any]) -> None:
    """The student's prediction beside the run's verdict, and whether they agree."""
    c_pred, c_run = st.columns(2)
    with c_pred.container(border=True):
        st.markdown(f"**{t('learn.your_prediction')}**")
        st.markdown(lesson.choices[prediction].get(lang) if prediction else t("learn.no_prediction"))
    with c_run.container(border=True):
        st.markdown(f"**{t('learn.the_run_says')}**")
        st.markdown(f"{vd.icon(m['verdict'])} {verdict_sentence(m)}")
    verdict = m["verdict"]
    if verdict is None or prediction is None:
        return
    if verdict == prediction:
        st.success(t("learn.match"), icon=":material/check_circle:")
    elif verdict in ("no clear difference", "no clear sign"):
        st.info(t("learn.unclear"), icon=":material/help:")
    else:
        st.warning(t("learn.mismatch", verdict=verdict_word(verdict)), icon=":material/lightbulb:")
    if verdict != lesson.expect.verdict:
        st.caption(t("learn.not_the_usual", expected=verdict_word(lesson.expect.verdict)))


def transfer_answer(result: dict[str, Any], *, key: str) -> None:
    """A transfer run's answer as the Transfer page shows it: the data-efficiency curve
    (`charts.data_efficiency_chart`) and each pre-trained arm against scratch
    (`mtl_core.transfer.vs_scratch_frame`: the paired interval the run stored)."""
    from mtl_core.transfer import vs_scratch_frame

    metric, hib = result.get("metric") or "", result.get("higher_is_better")
    st.plotly_chart(charts.data_efficiency_chart(
        result.get("rows") or [], metric=metric, higher_is_better=hib, arms=result.get("arms"),
        title=f"{result.get('target')}: test {metric} vs labelled examples"), key=f"{key}.chart.transfer", width="stretch")
    if hib is not None:
        st.caption(t("learn.transfer_reading_" + ("up" if hib else "down"), metric=md(metric)))
    versus = vs_scratch_frame(result)
    if versus.empty:
        return
    table = {
        t("learn.col_labelled"): [f"{n:,}" for n in versus["n_labelled"]],
        t("learn.col_arm"): [t(f"learn.arm.{a}") for a in versus["arm"]],
        t("learn.col_gain", metric=metric): [f"{g:+.3g}" for g in versus["gain"]],
        t("learn.col_interval"): [f"{lo:+.3g} … {hi:+.3g}" for lo, hi in zip(versus["low"], versus["high"])],
        t("learn.col_verdict"): [verdict_word(v) for v in versus["verdict"]],
    }
    st.table(pd.DataFrame(table).style.hide(axis="index"))


def draw_charts(lesson: Lesson, run_id: str, result: dict[str, Any], *, key: str) -> None:
    """The lesson's two or three charts, drawn by `dashboard.charts`."""
    if lesson.kind == "transfer":
        transfer_answer(result, key=key)  # `transfer`, the one chart a transfer run draws
        return
    rows = result.get("tasks") or []
    names = [r["name"] for r in rows]
    colors = charts.task_colors(names)
    inter = result.get("interference") or {}
    figures = []
    for name in lesson.charts:
        if name == "comparison" and rows:
            figures.append(charts.comparison_bars(rows, colors=colors))
        elif name in ("loss_curves", "weights"):
            metrics = state.get_store().metrics(run_id)
            figures.append(charts.loss_curves(metrics, names, colors=colors) if name == "loss_curves"
                           else charts.weights_chart(metrics, names, colors=colors))
        elif name == "cosine_heatmap" and inter.get("grad_cosine"):
            figures.append(charts.cosine_heatmap(inter["tasks"], inter["grad_cosine"], colors=colors))
        elif name == "cosine_history" and inter.get("history"):
            figures.append(charts.cosine_history_chart(inter["history"], colors=colors))
        elif name == "gates" and result.get("gates"):
            figures.append(charts.gates_bars(result["gates"], colors=colors))
    for i, figure in enumerate(figures):
        st.plotly_chart(figure, key=f"{key}.chart.{i}", width="stretch")


def answer(lesson: Lesson, lang: str, variant: str, run_id: str, prediction: str | None) -> bool:
    """The run's progress, or its answer once it has one. True when the answer is shown."""
    run = common.read_run(run_id)
    if run is None:
        st.session_state.get(SS_RUNS, {}).pop(_run_key(lesson, variant), None)
        return False
    if run["status"] in ACTIVE_STATUSES:
        sidebar.live_fragment(common.guarded(progress_panel), POLL_S, run_id)
        return False
    with common.store_errors(run_id):
        run, result = common.load_result(run_id)  # says why when there is no result
        if result is None:
            # Failed, cancelled or interrupted before its result: Run may start it again.
            st.session_state.get(SS_RUNS, {}).pop(_run_key(lesson, variant), None)
            return False
        expect = lesson.expect if variant == "main" else lesson.expect.model_copy(
            update={"verdict": lesson.try_this.expect or lesson.expect.verdict})
        m = measured(lesson, result, expect=expect)
        if variant == "main":
            prediction_vs_verdict(lesson, lang, prediction, m)
        else:
            st.markdown(f"{vd.icon(m['verdict'])} {verdict_sentence(m)}")
        draw_charts(lesson, run_id, result, key=f"learn.{lesson.id}.{variant}")
        st.caption(t("learn.run_link", run_id=md(run_id)))
        return True
    return False


def explain(lesson: Lesson, lang: str) -> None:
    st.markdown(f"#### {t('learn.why')}")
    st.markdown(lesson.explanation.get(lang))
    if lesson.formula:
        st.latex(lesson.formula)
    if lesson.paper:
        st.caption(t("learn.paper", paper=md(lesson.paper)))


def try_this(lesson: Lesson, lang: str) -> None:
    knob = lesson.try_this
    st.markdown(f"#### {t('learn.try')}")
    st.markdown(knob.label.get(lang))
    st.code(f"--set {knob.override}", language="bash")
    key = _run_key(lesson, "try")
    if st.button(t("learn.run_try"), key=f"learn.try.{lesson.id}", icon=":material/tune:"):
        start_or_reuse(lesson, "try")
    run_id = st.session_state.get(SS_RUNS, {}).get(key)
    if run_id:
        answer(lesson, lang, "try", run_id, None)


def lesson_view(lesson: Lesson, lessons: tuple[Lesson, ...], lang: str) -> None:
    numbers = [l.number for l in lessons]
    at = numbers.index(lesson.number)
    c_back, c_next = st.columns(2)
    if c_back.button(t("learn.all_lessons"), key="learn.back", icon=":material/list:"):
        open_lesson(None)
        st.rerun()
    if at + 1 < len(lessons) and c_next.button(t("learn.next", title=lessons[at + 1].title.get(lang)),
                                               key="learn.next", icon=":material/arrow_forward:"):
        open_lesson(numbers[at + 1])
        st.rerun()
    st.header(t("learn.lesson_title", number=lesson.number, title=lesson.title.get(lang)))
    st.markdown(lesson.question.get(lang))
    config = lesson.config()
    if lesson.kind == "transfer":
        st.caption(t("learn.setup_transfer", dataset=md(config.base.dataset.name),
                     sources=", ".join(f"`{md(s)}`" for s in config.sources), target=md(config.target),
                     steps=config.base.steps or 0, arms=", ".join(t(f"learn.arm.{a}") for a in config.arms),
                     target_steps=config.target_steps))
    else:
        st.caption(t("learn.setup", dataset=md(config.dataset.name), sharing=md(config.sharing.name),
                     weighting=md(config.weighting.name), steps=config.steps or 0))
    if not lesson.available():
        st.warning(t("learn.needs_extra", command=lesson.install_hint), icon=":material/extension_off:")
        explain(lesson, lang)
        return

    run_key = _run_key(lesson, "main")
    run_id = st.session_state.get(SS_RUNS, {}).get(run_key)
    words = list(lesson.expect.words)
    # Locked once the run is started: the prediction is made before the answer is seen.
    prediction = st.radio(t("learn.predict"), words, index=None, key=f"learn.predict.{lesson.id}",
                          format_func=lambda w: lesson.choices[w].get(lang), disabled=run_id is not None)
    clicked = st.button(t("learn.run"), type="primary", key=f"learn.run.{lesson.id}", icon=":material/play_arrow:",
                        disabled=prediction is None or run_id is not None,
                        help=t("learn.run_help"))
    if prediction is None:
        st.caption(t("learn.predict_first"))
    if clicked and prediction is not None and run_id is None:
        run_id = start_or_reuse(lesson, "main")
    if run_id and answer(lesson, lang, "main", run_id, prediction):
        explain(lesson, lang)
        try_this(lesson, lang)


# ---- the page --------------------------------------------------------------------------------
lang = i18n.current()
if st.query_params.get(PRESENT_PARAM) == "1":
    presentation_style()
st.title(t("learn.title"))
try:
    LESSONS = shipped_lessons()
except LessonError as exc:
    st.error(md(exc), icon=":material/error:")
    st.stop()
chosen = lesson_from_url(LESSONS)
if chosen is None:
    lesson_list(LESSONS, lang)
else:
    lesson_view(chosen, LESSONS, lang)
