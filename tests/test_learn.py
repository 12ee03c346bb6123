"""The Learn page and its lessons (issue 15): lessons are data that validate with clear
errors; a student predicts, runs, and sees the run's verdict beside the prediction; a
lesson's stored run is reused instead of trained again; English and 中文 follow the URL.

AppTest never fires `run_every`: the tests re-run the page until the run has ended. Each
test has its own MTL_LAB_HOME; training processes a test starts are stopped when it ends.
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

import pytest
import yaml
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dashboard.lessons as lessons_module  # noqa: E402
from dashboard import i18n, state  # noqa: E402
from dashboard.lessons import (  # noqa: E402
    PAIR_WORDS,
    TASK_WORDS,
    LessonError,
    claim_holds,
    find_run,
    load_lessons,
    measured,
    parse_lesson,
    shipped_lessons,
)
from mtl_core.store import TERMINAL_STATUSES, RunStore  # noqa: E402

APP = str(ROOT / "dashboard" / "app.py")
LEARN = "app_pages/learn.py"
TIMEOUT_S = 120.0
SHIPPED = shipped_lessons()


def small(lesson):
    """The lesson with a small budget (same dataset, tasks, sharing and knob): seconds, not tens.
    A transfer lesson: 30 pre-training steps and 10 per target model; MiniLM reads 100 sentences."""
    raw = copy.deepcopy(lesson.experiment)
    base = raw["base"] if lesson.kind == "transfer" else raw
    base.update(steps=30, eval_every=10, log_every=5, batch_size=32)
    if lesson.kind == "transfer":
        raw["target_steps"] = 10
    options = base["dataset"].setdefault("options", {})
    if base["dataset"]["name"] in ("mmoe_synthetic", "toy_language", "digits") and options.get("variant") != "attributes":
        options["n_samples"] = 100 if "text" in lesson.needs else 300
    return lesson.model_copy(update={"experiment": raw})


@pytest.fixture
def in_process(monkeypatch):
    """Run trains the lesson's run here, through the worker's own lifecycle (`worker.execute`:
    the same store writes, result and ending), instead of starting a worker process: each
    such start imports torch anew (~5 s of CPU). The real process path of a lesson is walked
    by test_browser's lesson 1 (a real server and its fork server); a run's process by
    test_jobs, test_warm_worker and test_dashboard_apptest's cancel."""
    from mtl_core import jobs, worker

    def start(config, *, name=None, store_path=None):
        with RunStore(store_path) as store:
            run_id = store.create_run(config.model_dump(mode="json"), name=name)
            worker.execute(store, run_id)
        return run_id

    monkeypatch.setattr(jobs, "start", start)


@pytest.fixture
def small_lessons(monkeypatch):
    """The page shows the shipped lessons with a small budget."""
    shrunk = tuple(small(lesson) for lesson in SHIPPED)
    monkeypatch.setattr(lessons_module, "shipped_lessons", lambda: shrunk)
    return shrunk


def learn(query: dict[str, str] | None = None) -> AppTest:
    """The Learn page opened by a link carrying `query`."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query or {})
    at.run()
    if not any(h.value.startswith(("Learn", "学习")) for h in at.title):
        at.switch_page(LEARN)
        at.query_params.clear()
        at.query_params.update(query or {})
        at.run()
    assert not at.exception, at.exception
    return at


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def wait_for_answer(at: AppTest, home: Path, run_id_hint: str = "Run ") -> str:
    """Re-run the page until its run has ended and the answer shows; the run's id."""
    deadline = time.monotonic() + TIMEOUT_S
    with RunStore(home / "mtl_lab.db") as store:
        while time.monotonic() < deadline:
            runs = store.runs()
            ended = not runs.empty and runs["status"].isin(TERMINAL_STATUSES).all()
            at.run()
            assert not at.exception, at.exception
            if ended and any(c.value.startswith(run_id_hint) for c in at.caption):
                return str(runs.iloc[0]["id"])
            time.sleep(0.5)
    raise AssertionError(f"no answer within {TIMEOUT_S:.0f} s: {texts(at.caption)}")


# ---- lessons as data ------------------------------------------------------------------------
def test_every_shipped_lesson_validates_in_both_languages():
    assert [l.number for l in SHIPPED] == sorted({l.number for l in SHIPPED})
    assert {1, 2, 3}.issubset({l.number for l in SHIPPED})
    for lesson in SHIPPED:
        for text in (lesson.title, lesson.question, lesson.explanation, lesson.try_this.label,
                     *lesson.choices.values()):
            assert text.en.strip() and text.zh.strip(), lesson.id
            assert text.en != text.zh, lesson.id
        assert set(lesson.choices) == set(lesson.expect.words)
        assert lesson.config() != lesson.config(try_this=True)
        assert lesson.config().name == f"lesson {lesson.number}"


def _lesson_dict() -> dict:
    return yaml.safe_load((lessons_module.LESSON_DIR / "01_why_share.yaml").read_text(encoding="utf-8"))


def test_a_bad_lesson_file_names_the_file_the_lesson_and_the_field(tmp_path):
    bad = _lesson_dict()
    bad["number"], bad["id"] = 7, "broken"
    bad["expect"]["verdict"] = "better"
    (tmp_path / "07_broken.yaml").write_text(yaml.safe_dump(bad, allow_unicode=True), encoding="utf-8")
    with pytest.raises(LessonError) as err:
        load_lessons(tmp_path)
    message = str(err.value)
    assert "07_broken.yaml" in message and "lesson 7" in message and "broken" in message
    assert "expect" in message and "'better'" in message and "helped" in message


@pytest.mark.parametrize("change, words", [
    (lambda d: d["experiment"]["sharing"].update(name="hardd"), ["experiment", "sharing.name"]),
    (lambda d: d["title"].pop("zh"), ["title.zh", "Field required"]),
    (lambda d: d.update(colour="red"), ["colour", "unknown field"]),
    (lambda d: d["choices"].pop("hurt"), ["choices", "missing: ['hurt']"]),
    (lambda d: d["try_this"].update(key="selection", value="last"), ["does not change the experiment"]),
    (lambda d: d["try_this"].update(key="dataset.options.correlation", value=7), ["try_this", "correlation"]),
    (lambda d: d.update(charts=["pie"]), ["charts.0"]),
    (lambda d: d.update(charts=["comparison", "gates"]), ["charts", "'gates' needs a sharing mode with gates", "mmoe"]),
    (lambda d: d["expect"].update(measure="task"), ["needs `task:`"]),
    (lambda d: d["expect"].update(measure="task", task="y9"), ["'y9' is not a task"]),
])
def test_each_kind_of_mistake_gets_a_message_that_names_the_field(change, words):
    data = _lesson_dict()
    change(data)
    with pytest.raises(LessonError) as err:
        parse_lesson(data, source="01_why_share.yaml")
    for word in words:
        assert word in str(err.value), (word, str(err.value))
    assert str(err.value).startswith("01_why_share.yaml (lesson 1, why-share)")


def test_two_lessons_with_one_number_are_refused(tmp_path):
    for name in ("01_a.yaml", "01_b.yaml"):
        (tmp_path / name).write_text(yaml.safe_dump(_lesson_dict(), allow_unicode=True), encoding="utf-8")
    with pytest.raises(LessonError, match="lesson number 1 is used twice"):
        load_lessons(tmp_path)


def test_the_catalogues_have_the_same_keys_and_fields():
    import string

    en, zh = i18n.catalogue("en"), i18n.catalogue("zh")
    assert set(en) == set(zh)
    for key in en:
        fields = lambda s: sorted(f for _, f, _, _ in string.Formatter().parse(s) if f)  # noqa: E731
        assert fields(en[key]) == fields(zh[key]), key
    for term in ("Δm", "（helped）", "（hurt）", "（no clear difference）", "gradient cosine"):
        assert term in "".join(zh.values()), term
    assert i18n.text("learn.lesson_title", "zh", number=3, title="x") == "第 3 课 · x"
    assert i18n.text("no.such.key", "zh") == "no.such.key"
    assert i18n.normalise("ZH-cn") == "zh" and i18n.normalise("fr") == "en" and i18n.normalise(None) == "en"


# ---- the verdict is read from the run, with its noise ------------------------------------------
RESULT = {
    "delta_m": -4.2, "delta_m_verdict": "hurt", "delta_m_interval": {"low": -7.0, "high": -1.5, "level": 0.95},
    "tasks": [{"name": "y1", "metric": "mse", "stl": 2.0, "mtl": 2.2, "delta_pct": -10.0, "diff": -0.2,
               "low": -0.4, "high": 0.05, "verdict": "no clear difference"}],
    "interference": {"pairs": [{"pair": ["y1", "y2"], "mean_cosine": -0.31, "low": -0.45, "high": -0.17,
                                "evaluations": 12, "verdict": "conflict"}]},
}


def test_measured_reads_the_runs_own_verdicts_and_intervals():
    lesson = SHIPPED[0]
    dm = measured(lesson, RESULT)
    assert (dm["verdict"], dm["value"], dm["low"], dm["high"]) == ("hurt", -4.2, -7.0, -1.5)
    task = measured(lesson, RESULT, expect=lesson.expect.model_copy(update={"measure": "task", "task": "y1"}))
    assert (task["verdict"], task["value"], task["mtl"], task["stl"]) == ("no clear difference", -10.0, 2.2, 2.0)
    pair = measured(lesson, RESULT, expect=lesson.expect.model_copy(update={"measure": "pair", "verdict": "conflict"}))
    assert (pair["verdict"], pair["value"], pair["evaluations"]) == ("conflict", -0.31, 12)
    assert measured(lesson, {"delta_m": 3.0})["verdict"] is None  # an old run without an interval: no verdict
    assert measured(lesson, None)["value"] is None
    assert set(TASK_WORDS).isdisjoint(PAIR_WORDS)


# ---- the page ---------------------------------------------------------------------------------
def test_the_landing_page_lists_every_lesson_and_a_link_opens_one(lab):
    at = learn()
    labels = [b.label for b in at.button]
    for lesson in SHIPPED:
        assert f"{lesson.number}. {lesson.title.en}" in labels
    at.button(key=f"learn.open.{SHIPPED[1].number}").click().run()
    assert at.query_params["lesson"] == str(SHIPPED[1].number)
    assert at.header[0].value == f"Lesson {SHIPPED[1].number} · {SHIPPED[1].title.en}"
    at = learn({"lesson": "3"})
    assert at.header[0].value.startswith("Lesson 3 · ")
    at = learn({"lesson": "99"})
    assert "There is no lesson 99" in texts(at.warning)


def test_run_is_locked_until_a_prediction_is_picked(lab):
    at = learn({"lesson": "1"})
    run = at.button(key="learn.run.why-share")
    assert run.disabled
    assert "Pick your prediction first" in texts(at.caption)
    assert at.radio(key="learn.predict.why-share").value is None
    at.radio(key="learn.predict.why-share").set_value("hurt").run()
    assert not at.button(key="learn.run.why-share").disabled


@pytest.mark.parametrize("number", [l.number for l in SHIPPED])
def test_every_lesson_runs_and_shows_the_prediction_beside_the_verdict(lab, small_lessons, in_process, number):
    lesson = next(l for l in small_lessons if l.number == number)
    if not lesson.available():  # greyed with its install command instead (test below)
        pytest.skip(f"lesson {number} needs the {', '.join(lesson.needs)} extra, which is not installed")
    at = learn({"lesson": str(number)})
    prediction = lesson.expect.words[-1]
    at.radio(key=f"learn.predict.{lesson.id}").set_value(prediction).run()
    at.button(key=f"learn.run.{lesson.id}").click().run()
    assert not at.exception and not at.error, texts(at.error)
    run_id = wait_for_answer(at, lab)
    shown = texts(at.markdown)
    assert "**Your prediction**" in shown and "**The run says**" in shown
    assert lesson.choices[prediction].en in shown
    with RunStore(lab / "mtl_lab.db") as store:
        result = store.result(run_id)
        # exactly the lesson's experiment (a data file it ships is read from the uploads folder)
        assert store.get_run(run_id)["config"] == lesson.config(place=state.save_upload).to_dict()
    m = measured(lesson, result)
    if m["verdict"]:  # the sentence carries the run's own verdict word and number
        assert f"**{m['verdict']}**" in shown
        digits = {"task": "+.1f", "vs_scratch": "+.3g"}.get(lesson.expect.measure, "+.2f")
        assert format(m["value"], digits) in shown
    verdict_boxes = texts(at.success) + texts(at.warning) + texts(at.info)
    assert m["verdict"] is None or verdict_boxes, "the agreement with the prediction is said"
    assert len(at.get("plotly_chart")) == len(lesson.charts)
    assert "#### Why" in shown and "#### Try this" in shown
    assert at.radio(key=f"learn.predict.{lesson.id}").disabled  # the prediction is locked once run


def test_a_second_visit_shows_the_stored_run_without_training_again(lab, small_lessons, in_process):
    at = learn({"lesson": "1"})
    at.radio(key="learn.predict.why-share").set_value("helped").run()
    at.button(key="learn.run.why-share").click().run()
    first = wait_for_answer(at, lab)
    # A second student (a new session) predicts and presses Run: the answer shows at once.
    other = learn({"lesson": "1"})
    other.radio(key="learn.predict.why-share").set_value("hurt").run()
    other.button(key="learn.run.why-share").click().run()
    assert not other.exception
    assert f"Run {first}" in texts(other.caption)
    assert "**The run says**" in texts(other.markdown)
    with RunStore(lab / "mtl_lab.db") as store:
        assert list(store.runs()["id"]) == [first]  # one run in the store: nothing trained twice
        assert find_run(store, small_lessons[0].config()) == first
        assert find_run(store, small_lessons[0].config(try_this=True)) is None


def test_the_try_knob_runs_the_changed_experiment(lab, small_lessons, in_process):
    lesson = small_lessons[0]
    at = learn({"lesson": "1"})
    at.radio(key="learn.predict.why-share").set_value("helped").run()
    at.button(key="learn.run.why-share").click().run()
    first = wait_for_answer(at, lab)
    assert f"--set {lesson.try_this.override}" in texts(at.code)
    at.button(key="learn.try.why-share").click().run()
    deadline = time.monotonic() + TIMEOUT_S
    with RunStore(lab / "mtl_lab.db") as store:
        while time.monotonic() < deadline and (len(store.runs()) < 2 or not store.runs()["status"].isin(TERMINAL_STATUSES).all()):
            time.sleep(0.5)
            at.run()
        at.run()
        second = [r for r in store.runs()["id"] if r != first]
        assert len(second) == 1
        assert store.get_run(second[0])["config"] == lesson.config(try_this=True).to_dict()
    assert f"Run {second[0]}" in texts(at.caption)


def test_the_language_switch_changes_the_texts_and_survives_a_reload(lab):
    lesson = SHIPPED[0]
    at = learn({"lesson": "1"})
    assert at.header[0].value == f"Lesson 1 · {lesson.title.en}"
    at.sidebar.get("button_group")[0].set_value("zh").run()
    assert at.header[0].value == f"第 1 课 · {lesson.title.zh}"
    assert at.query_params["lang"] == "zh"
    assert at.radio(key="learn.predict.why-share").label == "你的预测"
    assert lesson.choices["helped"].zh in at.radio(key="learn.predict.why-share").options
    reloaded = learn({"lesson": "1", "lang": "zh"})  # a reload is a new session with the same URL
    assert reloaded.header[0].value == f"第 1 课 · {lesson.title.zh}"
    assert reloaded.title[0].value.startswith("学习")
    back = learn({"lesson": "1", "lang": "en"})
    assert back.header[0].value == f"Lesson 1 · {lesson.title.en}"


def test_the_train_page_keeps_the_chosen_language_in_its_url(lab):
    """Train rewrites its URL from the form at every rerun; `?lang=` stays in it, so a
    reload of Train keeps the language the sidebar switch chose."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update({"lang": "zh", "steps": "300"})
    at.switch_page("app_pages/train.py").run()
    assert not at.exception, at.exception
    assert at.query_params["lang"] == "zh"
    assert at.query_params["steps"] == "300"  # the form's own keys are written beside it


def test_presentation_mode_hides_the_sidebar(lab):
    at = learn({"lesson": "1", "present": "1"})
    html = texts(at.get("html"))
    assert "stSidebar" in html and "display: none" in html
    assert not learn({"lesson": "1"}).get("html")


def test_a_claim_holds_in_a_majority_with_no_opposite_verdict():
    assert claim_holds("helped", ["helped", "helped", "no clear difference"])
    assert not claim_holds("helped", ["helped", "helped", "hurt"])  # one seed says the opposite
    assert not claim_holds("helped", ["helped", "no clear difference", "no clear difference"])
    assert not claim_holds("hurt", ["hurt", "hurt", None, None])  # half is no majority
    assert claim_holds("no clear difference", ["no clear difference", "hurt", "no clear difference"])
    assert claim_holds("conflict", ["conflict", "no clear sign", "conflict"])


# ---- a transfer lesson, and a lesson that needs an extra -------------------------------------
def _transfer_dict() -> dict:
    return yaml.safe_load((lessons_module.LESSON_DIR / "09_transfer.yaml").read_text(encoding="utf-8"))


def test_a_transfer_lesson_runs_a_transfer_config_and_reads_vs_scratch():
    from mtl_core.transfer import TransferConfig

    lesson = parse_lesson(_transfer_dict(), source="09_transfer.yaml")
    config, changed = lesson.config(), lesson.config(try_this=True)
    assert isinstance(config, TransferConfig) and config.name == "lesson 9"
    assert (config.target, config.fractions, changed.fractions) == ("pos", [0.02], [1.0])
    assert changed.name == "lesson 9 (try)" and changed.sources == config.sources
    assert lesson.expect.measure == "vs_scratch" and lesson.expect.arm == "frozen" and lesson.charts == ["transfer"]
    assert lessons_module.run_dataset(config).name == "toy_language"
    assert lessons_module.with_seed(config, 3).base.seed == 3 and config.base.seed == 0


@pytest.mark.parametrize("change, words", [
    (lambda d: d["expect"].pop("arm"), ["measure 'vs_scratch' needs `arm:`", "frozen, finetune"]),
    (lambda d: d["expect"].update(arm="scratch"), ["expect.arm"]),
    (lambda d: d["experiment"].update(arms=["frozen", "finetune"]), ["experiment.arms", "'scratch'"]),
    (lambda d: d["expect"].update(fraction=0.5), ["expect.fraction 0.5", "[0.02]"]),
    (lambda d: d["expect"].update(measure="delta_m", arm=None), ["a transfer lesson answers with measure 'vs_scratch'"]),
    (lambda d: d.update(charts=["transfer", "loss_curves"]), ["'loss_curves' cannot be drawn from a transfer"]),
    (lambda d: d["experiment"].update(target="nosuch"), ["experiment", "target", "'nosuch'"]),
    (lambda d: d["try_this"].update(key="fractions", value=[0.02]), ["does not change the experiment"]),
    (lambda d: d.pop("kind"), ["experiment: it has base, sources and target", "add `kind: transfer`"]),
])
def test_each_mistake_in_a_transfer_lesson_names_the_field(change, words):
    data = _transfer_dict()
    change(data)
    with pytest.raises(LessonError) as err:
        parse_lesson(data, source="09_transfer.yaml")
    assert str(err.value).startswith("09_transfer.yaml (lesson 9, transfer)")
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_vs_scratch_and_the_transfer_chart_belong_to_transfer_lessons():
    data = _lesson_dict()
    data["expect"] = {"measure": "vs_scratch", "arm": "frozen", "verdict": "helped"}
    with pytest.raises(LessonError, match="set `kind: transfer`"):
        parse_lesson(data)
    data = _lesson_dict()
    data["charts"] = ["transfer"]
    with pytest.raises(LessonError, match="charts: 'transfer' draws a transfer experiment"):
        parse_lesson(data)
    data = _lesson_dict()
    data["expect"]["fraction"] = 0.1
    with pytest.raises(LessonError, match="belong to measure 'vs_scratch'"):
        parse_lesson(data)


def _row(arm, fraction, n, value, versus=None):
    row = {"arm": arm, "fraction": fraction, "n_labelled": n, "metric_value": value}
    if versus:
        row["vs_scratch"] = dict(zip(("diff", "low", "high", "verdict"), versus))
    return row


TRANSFER_RESULT = {
    "kind": "transfer", "metric": "accuracy", "higher_is_better": True, "arms": ["frozen", "finetune", "scratch"],
    "merged_fractions": [{"n_labelled": 8, "fraction": 0.004, "fractions": [0.001, 0.004]}],
    "rows": [_row("frozen", 0.004, 8, 0.61, (0.11, 0.08, 0.14, "helped")),
             _row("finetune", 0.004, 8, 0.52, (0.02, -0.01, 0.05, "no clear difference")),
             _row("scratch", 0.004, 8, 0.50),
             _row("frozen", 1.0, 2100, 0.90, (-0.05, -0.07, -0.03, "hurt")),
             _row("finetune", 1.0, 2100, 0.96, (0.01, -0.004, 0.02, "no clear difference")),
             _row("scratch", 1.0, 2100, 0.95)],
}


def test_measured_reads_the_transfer_runs_own_paired_comparison():
    lesson = parse_lesson(_transfer_dict(), source="09_transfer.yaml")
    smallest = measured(lesson, TRANSFER_RESULT)  # no fraction named: the smallest data size
    assert (smallest["verdict"], smallest["value"], smallest["low"], smallest["high"]) == ("helped", 0.11, 0.08, 0.14)
    assert (smallest["n_labelled"], smallest["arm_value"], smallest["scratch_value"]) == (8, 0.61, 0.50)
    full = measured(lesson, TRANSFER_RESULT, expect=lesson.expect.model_copy(update={"fraction": 1.0}))
    assert (full["verdict"], full["value"], full["n_labelled"]) == ("hurt", -0.05, 2100)
    tuned = measured(lesson, TRANSFER_RESULT, expect=lesson.expect.model_copy(update={"arm": "finetune"}))
    assert (tuned["verdict"], tuned["value"]) == ("no clear difference", 0.02)
    merged = measured(lesson, TRANSFER_RESULT, expect=lesson.expect.model_copy(update={"fraction": 0.001}))
    assert merged["n_labelled"] == 8 and merged["verdict"] == "helped"  # 0.1 % was trained as the 0.4 % size
    no_scratch = {**TRANSFER_RESULT, "rows": [{k: v for k, v in r.items() if k != "vs_scratch"}
                                              for r in TRANSFER_RESULT["rows"]]}
    assert measured(lesson, no_scratch)["verdict"] is None and measured(lesson, no_scratch)["value"] is None
    from mtl_core.transfer import vs_scratch_frame

    # the same numbers the Transfer page's table shows

    frame = vs_scratch_frame(TRANSFER_RESULT)
    first = frame[(frame["arm"] == "frozen") & (frame["n_labelled"] == 8)].iloc[0]
    assert (first["gain"], first["low"], first["high"], first["verdict"]) == (0.11, 0.08, 0.14, "helped")


def test_a_lesson_needing_the_text_extra_is_greyed_with_the_install_command(lab, monkeypatch):
    from mtl_core.models import pretrained

    needy = [l for l in SHIPPED if "text" in l.needs]
    assert needy, "a shipped lesson needs the text extra (lesson 10: MiniLM)"
    monkeypatch.setattr(pretrained, "minilm_available", lambda: False)
    at = learn()
    for lesson in needy:
        button = at.button(key=f"learn.open.{lesson.number}")
        assert button.disabled
    assert texts(at.caption).count(pretrained.INSTALL_HINT) == len(needy)
    assert not any(b.disabled for b in at.button if (b.key or "").startswith("learn.open.")
                   and int(b.key.rsplit(".", 1)[1]) not in {l.number for l in needy})
    lesson = needy[0]
    at = learn({"lesson": str(lesson.number)})  # a link opens it: it says what to install, and runs nothing
    assert pretrained.INSTALL_HINT in texts(at.warning)
    assert not [b for b in at.button if b.key == f"learn.run.{lesson.id}"]
    assert "#### Why" in texts(at.markdown)
    monkeypatch.setattr(pretrained, "minilm_available", lambda: True)
    at = learn()
    assert not at.button(key=f"learn.open.{lesson.number}").disabled
    assert pretrained.INSTALL_HINT not in texts(at.caption)
