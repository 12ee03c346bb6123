"""The dashboard, page by page, through Streamlit's AppTest (no browser).

Specifies what a user relies on: every page renders; the widgets build the config that
would be submitted (and the URL that reproduces it); a run started from Train reaches
the Results table; bad inputs give readable messages, never a traceback. Each test has
its own MTL_LAB_HOME; training processes a test starts are stopped when it ends.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dashboard import state  # noqa: E402
from dashboard.safe_text import html_md  # noqa: E402
from mtl_core import jobs  # noqa: E402
from mtl_core.config import ExperimentConfig  # noqa: E402
from mtl_core.grouping import recommend_grouping  # noqa: E402
from mtl_core.store import TERMINAL_STATUSES, RunStore  # noqa: E402

APP = str(ROOT / "dashboard" / "app.py")
PAGES = ["app_pages/train.py", "app_pages/results.py", "app_pages/interference.py", "app_pages/runs.py"]
TINY = {  # ~30 steps on 300 rows: a few seconds including the worker's start
    "steps": "30", "batch_size": "32", "eval_every": "10", "log_every": "5",
    "dataset.options.n_samples": "300", "dataset.options.input_dim": "8",
}
TIMEOUT_S = 90.0


def app(query: dict[str, str] | None = None) -> AppTest:
    """The Train page, opened by a link with `query` (a bare visit would land on Learn)."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query or {})
    return at.switch_page("app_pages/train.py").run()


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def submitted(at: AppTest) -> ExperimentConfig:
    """The config the Train page would start, read back from the URL it wrote."""
    return ExperimentConfig.parse(state.params_to_raw(at.query_params))


def wait_until_ended(at: AppTest, run_id: str, home: Path) -> str:
    """Re-run the page (AppTest never fires run_every) until the run has ended."""
    deadline = time.monotonic() + TIMEOUT_S
    with RunStore(home / "mtl_lab.db") as store:
        while time.monotonic() < deadline:
            status = store.get_run(run_id)["status"]
            at.run()  # after reading the status, so the page shows at least that state
            assert not at.exception, at.exception
            if status in TERMINAL_STATUSES:
                return status
            time.sleep(0.5)
    raise AssertionError(f"run {run_id} did not end within {TIMEOUT_S:.0f} s")


# ---- rendering ----------------------------------------------------------------------------
def test_every_page_renders_on_an_empty_lab(lab):
    at = AppTest.from_file(APP, default_timeout=60).run()  # a bare visit, as the README's first command opens it
    assert not at.exception
    assert at.title[0].value.startswith("Learn"), "a visitor lands on the lessons"
    at = app()
    assert not at.exception
    assert at.title[0].value == "Train"
    assert "No run is training." in texts(at.sidebar.caption)
    for page in PAGES[1:]:
        at.switch_page(page).run()
        assert not at.exception, page
        assert "No runs yet" in texts(at.info), page


def test_a_bare_visit_lands_on_learn_and_a_link_with_an_experiment_opens_train(lab):
    for query, title in (({}, "Learn"), ({"lang": "en", "lesson": "1"}, "Learn"),
                         ({"steps": "300"}, "Train"), ({"run": "20200101-000000-abcdef"}, "Train")):
        at = AppTest.from_file(APP, default_timeout=60)
        at.query_params.update(query)
        at.run()
        assert not at.exception and at.title[0].value.split()[0] == title, query
    # The Train page a link opened stays Train when its form is back at the defaults (no query left).
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["steps"] = "300"
    at.run()
    at.number_input(key=state.K_STEPS).set_value(ExperimentConfig.parse({}).steps).run()
    assert "steps" not in at.query_params and at.title[0].value == "Train"


def test_train_page_lists_the_registries_and_shows_the_sharing_formula(lab):
    at = app()
    assert "mmoe_synthetic" in at.selectbox(key=state.K_DATASET).options
    assert at.selectbox(key=state.K_SHARING).value == "hard"
    assert at.latex, "the sharing mode's formula is shown"
    assert [c.label for c in at.checkbox] == ["y1", "y2"]
    assert "Parameters:" in texts(at.caption)


def test_every_sharing_mode_and_weighting_strategy_renders_with_its_options(lab):
    from mtl_core.models import SHARING
    from mtl_core.weighting import WEIGHTING

    at = app()
    for name in SHARING.names():
        at.selectbox(key=state.K_SHARING).set_value(name).run()
        assert not at.exception, name
        assert submitted(at).sharing.name == name
    for name in WEIGHTING.names():
        at.selectbox(key=state.K_WEIGHTING).set_value(name).run()
        assert not at.exception, name
        assert not at.error, (name, texts(at.error))  # every default option is a valid config
        assert submitted(at).weighting.name == name


# ---- widgets -> config -> URL ---------------------------------------------------------------
def test_widgets_change_the_config_that_would_be_submitted(lab):
    at = app()
    at.slider(key=state.k_ds_opt("mmoe_synthetic", "correlation")).set_value(-0.5).run()
    at.slider(key=state.k_weight("y2")).set_value(2.5).run()
    at.number_input(key=state.K_STEPS).set_value(123).run()
    at.selectbox(key=state.K_SHARING).set_value("soft").run()
    assert not at.exception
    config = submitted(at)
    assert config.dataset.options["correlation"] == -0.5
    assert config.weights == {"y2": 2.5}
    assert config.steps == 123
    assert config.sharing.name == "soft"
    assert at.query_params["dataset.options.correlation"] == "-0.5"  # the link reproduces it
    assert "0.29" in texts(at.markdown) and "0.71" in texts(at.markdown)  # normalised weights 1 : 2.5


def test_a_rerun_that_still_carries_an_older_url_of_this_tab_keeps_the_form(lab):
    # Keys pressed on a slider while the page reruns reach the server with the URL of the
    # rerun before: that echo of this tab must not reset the slider to the older value.
    at = app()
    at.slider(key=state.k_weight("y2")).set_value(1.1).run()
    older = dict(at.query_params)
    at.slider(key=state.k_weight("y2")).set_value(1.5).run()
    assert at.query_params["weights.y2"] == "1.5"
    at.query_params.clear()
    at.query_params.update(older)  # the browser had not applied the newest URL yet
    at.run()
    assert not at.exception
    assert at.slider(key=state.k_weight("y2")).value == 1.5
    assert submitted(at).weights == {"y2": 1.5}
    # A link this tab never wrote still replaces the form.
    at.query_params.clear()
    at.query_params.update({"weights.y2": "3"})
    at.run()
    assert at.slider(key=state.k_weight("y2")).value == 3.0


def test_toy_language_knobs_are_sliders_within_their_bounds(lab):
    at = app()
    at.selectbox(key=state.K_DATASET).set_value("toy_language").run()
    relatedness = at.slider(key=state.k_ds_opt("toy_language", "relatedness"))
    noise = at.slider(key=state.k_ds_opt("toy_language", "label_noise"))
    assert (relatedness.min, relatedness.max) == (0.0, 1.0)
    assert (noise.min, noise.max) == (0.0, 1.0)
    noise.set_value(0.2).run()
    relatedness.set_value(0.3).run()
    at.checkbox(key=state.k_task("pos")).uncheck().run()
    config = submitted(at)
    assert config.dataset.options["label_noise"] == 0.2
    assert config.dataset.options["relatedness"] == 0.3
    assert "pos" not in config.task_list()


def test_a_link_fills_the_form(lab):
    at = app({"dataset.options.correlation": "-0.3", "weights.y1": "3", "tasks": "[y1, y2]",
              "optimizer.lr": "0.01", "seed": "7"})
    assert not at.exception
    assert at.slider(key=state.k_ds_opt("mmoe_synthetic", "correlation")).value == -0.3
    assert at.slider(key=state.k_weight("y1")).value == 3.0
    assert at.number_input(key=state.K_LR).value == 0.01
    assert at.number_input(key=state.K_SEED).value == 7


def test_config_params_round_trip_through_the_url():
    config = ExperimentConfig.parse({
        "dataset": {"name": "toy_language", "options": {"relatedness": 0.3, "label_noise": {"topic": 0.1}}},
        "tasks": ["ner", "topic"], "weights": {"topic": 2.0}, "sharing": {"name": "soft", "options": {"lam": 0.01}},
        "steps": 42, "optimizer": {"lr": 3e-4},
    })
    params = state.config_to_params(config)
    assert "steps" in params and "batch_size" not in params  # only what differs from the defaults
    assert ExperimentConfig.parse(state.params_to_raw(params)) == config


def test_progress_counts_every_model_of_the_run():
    run = {"status": "running", "phase": "stl:y2", "step": 50, "total_steps": 100, "samples_per_s": 640.0}
    progress = state.progress_summary(run, ["stl:y1", "stl:y2", "mtl"], batch_size=64)
    assert progress["fraction"] == pytest.approx(1.5 / 3)  # baseline 1 done, baseline 2 half done
    assert progress["eta_s"] == pytest.approx((50 + 100) / (640 / 64))  # 10 steps/s
    assert "single-task baseline y2 (2/3)" in progress["text"] and "ETA 15 s" in progress["text"]
    ended = state.progress_summary({**run, "status": "cancelled"}, ["stl:y1", "stl:y2", "mtl"], batch_size=64)
    assert ended["eta_s"] is None and "samples/s" not in ended["text"]


# ---- bad inputs ------------------------------------------------------------------------------
def test_no_task_ticked_shows_the_error_and_disables_train(lab):
    at = app()
    at.checkbox(key=state.k_task("y1")).uncheck().run()
    at.checkbox(key=state.k_task("y2")).uncheck().run()
    assert not at.exception
    assert "tick at least one task" in texts(at.error)
    assert at.button(key="train").disabled


def test_all_weights_zero_shows_the_error(lab):
    at = app({"weights.y1": "0", "weights.y2": "0"})
    assert "all task weights are zero" in texts(at.error)
    assert at.button(key="train").disabled  # nothing can be started
    assert not at.exception


def test_malformed_links_give_messages_not_tracebacks(lab):
    at = app({"dataset.name": "no_such_data", "steps": "many", "dataset.options.correlation": "abc"})
    assert not at.exception
    assert "no_such_data" in texts(at.warning)
    at = app({"dataset.options": "5"})
    assert not at.exception
    assert "cannot be read" in texts(at.error)


def test_a_deleted_runs_link_gives_a_readable_message_on_every_page(lab):
    at = app({"run": "20200101-000000-abcdef"})
    assert not at.exception
    assert "no run '20200101-000000-abcdef'" in texts(at.warning)
    for page in PAGES[1:]:
        at = AppTest.from_file(APP, default_timeout=60)
        at.query_params["run"] = "20200101-000000-abcdef"
        at.run()
        at.switch_page(page).run()
        assert not at.exception, page


def test_yaml_config_upload_fills_the_form_and_bad_yaml_is_reported(lab):
    at = app()
    text = ExperimentConfig.parse({"weights": {"y1": 4.0}, "steps": 77}).to_yaml()
    at.file_uploader(key="yaml_upload").upload("exp.yaml", text.encode(), "application/x-yaml").run()
    at.run()
    assert not at.exception
    assert at.slider(key=state.k_weight("y1")).value == 4.0
    assert at.number_input(key=state.K_STEPS).value == 77
    bad = app()
    bad.file_uploader(key="yaml_upload").upload("bad.yaml", b"steps: [1, 2\n", "application/x-yaml").run()
    bad.run()
    assert not bad.exception
    assert "not valid YAML" in texts(bad.error)


def test_csv_upload_becomes_tasks_and_a_broken_csv_is_reported(lab):
    at = app()
    at.selectbox(key=state.K_DATASET).set_value("csv").run()
    assert not at.exception
    rows = "\n".join(f"{i},{i % 3},{'a' if i % 2 else 'b'},{i * 0.5}" for i in range(60))
    at.file_uploader(key="csv_upload").upload("data.csv", f"x,k,label,price\n{rows}\n".encode(), "text/csv").run()
    at.run()
    assert not at.exception
    saved = Path(at.text_input(key=state.k_ds_opt("csv", "path")).value)
    assert saved.parent == lab / "uploads" and saved.exists()
    at.multiselect(key=state.K_CSV_TARGETS).set_value(["label", "price"]).run()
    assert not at.exception
    assert [c.label for c in at.checkbox] == ["standardise targets", "lowercase", "label", "price"]
    assert submitted(at).dataset.options["targets"] == ["label", "price"]
    # The summary says on which scale the regression target trains, with its statistics.
    scale = next(c.value for c in at.caption if "train standardised" in c.value)
    assert "price (mean" in scale and "std" in scale
    # A target's kind can be chosen instead of inferred; multi-label shows how its cells are read.
    assert "kinds" not in submitted(at).dataset.options or not submitted(at).dataset.options["kinds"]
    at.selectbox(key=state.k_csv_kind("label")).set_value("multilabel").run()
    assert not at.exception
    assert submitted(at).dataset.options["kinds"] == {"label": "multilabel"}
    assert any("multi-label cell lists" in c.value for c in at.caption)

    broken = app()
    broken.selectbox(key=state.K_DATASET).set_value("csv").run()
    broken.file_uploader(key="csv_upload").upload("broken.csv", b"a,a,b\n1,2,3\n", "text/csv").run()
    broken.run()
    assert not broken.exception
    assert "broken.csv" in texts(broken.error)


# ---- a real run -------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_tiny_run_started_from_train_reaches_the_results_table(lab, jobs_in_process):
    at = app(TINY)
    at.slider(key=state.k_weight("y2")).set_value(2.0).run()
    at.button(key="train").click().run()
    assert not at.exception
    run_id = at.query_params.get("run")
    assert run_id, "the run id is in the URL so a refresh re-attaches"
    other_tab = app()  # another session: its own draft, watching nothing
    assert "run" not in other_tab.query_params
    assert other_tab.slider(key=state.k_weight("y2")).value == 1.0
    assert not any(b.key == "cancel" for b in other_tab.button)
    assert wait_until_ended(at, run_id, lab) == "finished"
    assert "Δm =" in texts([*at.success, *at.error, *at.info])  # the box follows the Δm verdict
    refreshed = app({**TINY, "weights.y2": "2.0", "run": run_id})  # a refresh re-attaches
    assert f"Run {run_id}" in texts(refreshed.subheader) and "Δm =" in texts(
        [*refreshed.success, *refreshed.error, *refreshed.info])
    with RunStore(lab / "mtl_lab.db") as store:
        assert store.get_run(run_id)["config"]["weights"] == {"y2": 2.0}

    at.switch_page("app_pages/results.py").run()
    assert not at.exception
    table = at.table[0].value
    assert list(table["task"]) == ["y1", "y2"]
    assert {"single-task", "multi-task", "Δ %", "transfer"} <= set(table.columns)
    # issue 16: the input-blind model's test metric beside the trained ones, and what it is
    assert "trivial baseline" in table.columns
    assert any("predict the training mean" in c.value for c in at.caption)
    assert at.metric[0].value.endswith("%")
    # Which step's weights were tested, and the numbers of the final weights beside them.
    with RunStore(lab / "mtl_lab.db") as store:
        selection = store.result(run_id)["selection"]
    assert f"the multi-task model at step {selection['mtl_step']} of {selection['steps']}" in texts(at.caption)
    ends = at.dataframe[0].value
    assert list(ends["task"]) == ["y1", "y2"] and "multi-task, at the end" in ends.columns

    at.switch_page("app_pages/interference.py").run()
    assert not at.exception
    assert "conflict (cos < 0) in" in texts(at.markdown)

    at.switch_page("app_pages/runs.py").run()
    assert not at.exception
    at.multiselect(key="runs_selected").set_value([run_id]).run()
    assert not at.exception
    assert at.table, "the selected run's results table is shown"
    at.button(key="runs_open").click().run()  # open in Train with its config
    assert not at.exception
    assert at.title[0].value == "Train"
    assert at.slider(key=state.k_weight("y2")).value == 2.0

    at.switch_page("app_pages/runs.py").run()
    at.multiselect(key="runs_selected").set_value([run_id]).run()
    at.checkbox(key="runs_confirm_delete").check().run()
    at.button(key="runs_delete").click().run()
    assert not at.exception
    assert f"Deleted 1 run(s): {run_id}" in texts(at.success)
    at.switch_page("app_pages/results.py").run()
    assert not at.exception  # the deleted run is gone from the picker, no crash


@pytest.mark.slow
def test_cancelling_twice_is_harmless(lab):
    at = app({"steps": "100000", "baselines": "false", "interference": "false",
              "dataset.options.n_samples": "300", "dataset.options.input_dim": "8"})
    at.button(key="train").click().run()
    run_id = at.query_params["run"]
    at.button(key="cancel").click().run()
    assert not at.exception
    if any(b.key == "cancel" for b in at.button):  # still stopping: ask a second time
        at.button(key="cancel").click().run()
        assert not at.exception
    assert wait_until_ended(at, run_id, lab) == "cancelled"
    assert jobs.cancel(run_id) is False  # once ended, cancel says so instead of failing
    assert "cancelled" in texts(at.warning)


# ---- interference, seeds and gates of a stored run -----------------------------------------------
def _chart_specs(at: AppTest) -> str:
    """Every plotly figure on the page as JSON text (unicode unescaped)."""
    import json

    return "\n".join(json.dumps(json.loads(c.proto.spec), ensure_ascii=False) for c in at.get("plotly_chart"))


THREE_TASKS_MMOE = {
    "dataset": {"name": "mmoe_synthetic", "options": {"n_tasks": 3, "n_samples": 300, "input_dim": 8}},
    "sharing": {"name": "mmoe"}, "steps": 30, "batch_size": 32, "eval_every": 10, "log_every": 5, "n_seeds": 2,
}


def test_interference_and_results_pages_explain_a_finished_three_task_run(lab, store_finished_run):
    run_id = store_finished_run(lab, THREE_TASKS_MMOE)
    with RunStore(lab / "mtl_lab.db") as store:
        result = store.result(run_id)
    at = app({"run": run_id})
    at.switch_page("app_pages/interference.py").run()
    assert not at.exception
    assert {"Task pairs", "Which task helps which", "Did sharing help each task?"} <= {s.value for s in at.subheader}
    specs = _chart_specs(at)
    assert "look-ahead affinity ×10" in specs and "row i helps column j" in specs
    assert "gradient magnitude similarity" in specs
    pairs = at.dataframe[0].value
    assert list(pairs["pair"]) == ["y1 · y2", "y1 · y3", "y2 · y3"]
    assert {"mean cosine", "conflict rate %", "trend", "evaluations"} <= set(pairs.columns)
    best = recommend_grouping(result["interference"]["grouping"])  # the best-scoring split, by default
    assert f"Suggestion: **{best['text']}**." in texts(at.markdown)
    at.selectbox(key="interference_groups").set_value(3).run()
    assert "train y1 alone, y2 alone and y3 alone" in texts(at.markdown)
    for row in result["tasks"]:  # the plain-words verdict of every task
        assert html_md(row["verdict_text"]) in texts(at.markdown)
    assert "Raise **seeds**" not in texts(at.info)  # two seeds were run

    at.switch_page("app_pages/results.py").run()
    assert not at.exception
    table = at.table[0].value
    assert {"single-task std", "multi-task std"} <= set(table.columns)
    assert set(table["transfer"]) <= {"helped", "hurt", "no clear difference"}
    assert "Which experts each task uses" in texts(at.subheader)
    assert "expert 4" in _chart_specs(at)  # the MMoE gate weights, four experts by default


def test_a_one_seed_run_suggests_more_seeds(lab, store_finished_run):
    run_id = store_finished_run(lab, {**THREE_TASKS_MMOE, "sharing": {"name": "hard"}, "n_seeds": 1})
    at = app({"run": run_id})
    at.switch_page("app_pages/interference.py").run()
    assert not at.exception
    assert "Only one seed was run" in texts(at.info)
    assert "on one seed" in texts(at.markdown)


def test_seeds_input_sets_n_seeds_and_the_parameter_sentence_is_shown(lab):
    at = app()
    at.number_input(key=state.K_N_SEEDS).set_value(3).run()
    assert not at.exception
    assert submitted(at).n_seeds == 3
    assert at.query_params["n_seeds"] == "3"
    assert "hard sharing uses" in texts(at.caption) and "of the parameters of 2 single-task models" in texts(at.caption)


# ---- transfer --------------------------------------------------------------------------------------
def _transfer_page(at: AppTest) -> AppTest:
    at.switch_page("app_pages/transfer.py").run()
    at.selectbox(key="tr.dataset").set_value("mmoe_synthetic").run()
    for option, value in (("n_tasks", 3), ("n_samples", 300), ("input_dim", 8)):
        at.number_input(key=f"tr.ds.mmoe_synthetic.{option}").set_value(value).run()
    at.multiselect(key="tr.sources.mmoe_synthetic").set_value(["y1", "y2"]).run()
    at.selectbox(key="tr.target.mmoe_synthetic").set_value("y3").run()
    return at


def test_transfer_page_validates_its_setup(lab, monkeypatch):
    from mtl_core.models import pretrained

    monkeypatch.setattr(pretrained, "minilm_available", lambda: False)
    at = app()
    at.switch_page("app_pages/transfer.py").run()
    assert not at.exception
    assert at.title[0].value == "Transfer"
    minilm = at.checkbox(key="tr.minilm")  # toy_language (text) is the default dataset
    assert minilm.disabled and "pip install 'mtl-lab[text]'" in texts(at.caption)
    assert "No transfer run yet" in texts(at.info)

    _transfer_page(at)
    assert not at.error and not at.button(key="transfer_run").disabled
    at.selectbox(key="tr.target.mmoe_synthetic").set_value("y1").run()
    assert "'y1' is also a source" in texts(at.error)
    assert at.button(key="transfer_run").disabled
    at.selectbox(key="tr.target.mmoe_synthetic").set_value("y3").run()
    at.multiselect(key="tr.fractions").set_value(["5 %", "lots"]).run()
    assert "'lots' is not a percentage" in texts(at.error)
    at.multiselect(key="tr.fractions").set_value(["5 %"]).run()
    for arm in ("frozen", "finetune", "scratch"):
        at.checkbox(key=f"tr.arm.{arm}").uncheck().run()
    assert "choose at least one arm" in texts(at.error)
    assert not at.exception


@pytest.mark.slow
def test_a_tiny_transfer_run_started_from_the_page_reaches_its_table(lab, jobs_in_process):
    at = _transfer_page(app())
    at.multiselect(key="tr.fractions").set_value(["20 %", "100 %"]).run()
    at.number_input(key="tr.pre_steps").set_value(20).run()
    at.number_input(key="tr.target_steps").set_value(10).run()
    at.button(key="transfer_run").click().run()
    assert not at.exception
    run_id = at.query_params.get(state.TRANSFER_PARAM)
    assert run_id, "the run id is in the URL so a refresh re-attaches"
    with RunStore(lab / "mtl_lab.db") as store:
        assert store.get_run(run_id)["config"]["kind"] == "transfer"
    assert wait_until_ended(at, run_id, lab) == "finished"
    table = at.table[0].value
    assert list(table.columns) == ["labelled %", "labelled examples", "frozen encoder", "fine-tuned encoder",
                                   "from scratch"]
    assert len(table) == 2  # one row per data size
    versus = at.table[1].value  # each pre-trained arm against scratch, with its interval
    assert list(versus["arm"]) == ["frozen encoder", "fine-tuned encoder"] * 2
    assert set(versus["verdict"]) <= {"helped", "hurt", "no clear difference"} and "95 % interval" in versus.columns
    assert "labelled target examples (log scale)" in _chart_specs(at)
    at.switch_page("app_pages/interference.py").run()  # transfer runs are not offered there
    assert not at.exception and "No multi-task runs yet" in texts(at.info)


# ---- pure helpers of the transfer page ---------------------------------------------------------------
def test_fractions_are_read_as_percentages():
    assert state.parse_fractions(["100 %", "5 %", "12.5", "5%"]) == ([0.05, 0.125, 1.0], None)
    assert state.parse_fractions(["0"])[1].startswith("fractions: '0' is outside")
    assert "not a percentage" in state.parse_fractions(["half"])[1]


def test_transfer_progress_weighs_pretraining_and_target_models_by_their_steps():
    from mtl_core.transfer import TransferConfig

    config = TransferConfig.parse(state.transfer_draft(
        dataset="mmoe_synthetic", options={"n_tasks": 3}, sources=["y1", "y2"], target="y3",
        arms=["frozen", "scratch"], fractions=[0.5, 1.0], pretrain_steps=400, target_steps=100,
        batch_size=32, lr=1e-3, seed=0)).to_dict()
    phases = state.run_phases(config)
    assert phases == ["pretrain", "frozen@0.5", "scratch@0.5", "frozen@1", "scratch@1"]
    budgets = state.run_budgets(config)
    assert budgets == [400, 100, 100, 100, 100]
    run = {"status": "running", "phase": "scratch@0.5", "step": 50, "samples_per_s": 320.0}
    progress = state.progress_summary(run, phases, batch_size=32, budgets=budgets)
    assert progress["fraction"] == pytest.approx((400 + 100 + 50) / 800)
    assert progress["eta_s"] == pytest.approx(250 / 10)  # 250 steps left at 10 steps/s
    assert "from scratch on 50 % of the target's labels (3/5)" in progress["text"]
