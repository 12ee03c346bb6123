"""What a link (or an uploaded config) may make the dashboard's server do (issue 10).

A link is shared with a class: it may name any file and any size. The dashboard reads
only files it was given, keeps every size within documented bounds (saying so when it
brings a value back), never generates a link's data just to draw the page, refuses to run
open to the network unless its operator asked, starts one run per Train press, and keeps
its sidebar and /train links working.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dashboard import sidebar, state  # noqa: E402
from mtl_core import jobs  # noqa: E402
from mtl_core.config import ExperimentConfig  # noqa: E402
from mtl_core.errors import DataError  # noqa: E402
from mtl_core.store import RunStore  # noqa: E402

APP = str(ROOT / "dashboard" / "app.py")
HOSTILE_SIZE = {"dataset.options.n_samples": "200000", "dataset.options.input_dim": "1024"}
SECRET_HEADER = "secret_column,another_secret"


@pytest.fixture
def lab(tmp_path, monkeypatch):
    monkeypatch.setenv("MTL_LAB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(state.DATA_DIRS_ENV, raising=False)
    monkeypatch.delenv(state.ALLOW_REMOTE_ENV, raising=False)
    st.cache_resource.clear()
    st.cache_data.clear()
    # Tests run from the repository root, whose .streamlit/config.toml binds to loopback;
    # say so explicitly so that they pass from any folder.
    address = st.config.get_option("server.address")
    st.config.set_option("server.address", "127.0.0.1")
    yield tmp_path
    st.config.set_option("server.address", address)
    st.cache_resource.clear()
    st.cache_data.clear()


def app(query: dict[str, str] | None = None) -> AppTest:
    """The Train page, opened by a link with `query` (a bare visit would land on Learn)."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query or {})
    return at.switch_page("app_pages/train.py").run()


def page_text(at: AppTest) -> str:
    """Everything the page shows as text (alerts, captions, markdown, widget labels/options)."""
    parts = []
    for kind in ("markdown", "caption", "error", "warning", "info", "success", "title", "subheader"):
        parts += [str(e.value) for e in getattr(at, kind)]
    for widget in (*at.multiselect, *at.selectbox):
        parts += [str(widget.label), *map(str, widget.options)]
    return "\n".join(parts)


def submitted(at: AppTest) -> ExperimentConfig:
    return ExperimentConfig.parse(state.params_to_raw(at.query_params))


def unescaped(text: str) -> str:
    return text.replace("\\", "")


# ---- 1. the dashboard reads only files it was given -----------------------------------------------
@pytest.fixture
def outside_file(tmp_path) -> Path:
    secret = tmp_path / "elsewhere" / "secret.csv"
    secret.parent.mkdir()
    secret.write_text(f"{SECRET_HEADER}\n1,2\n")
    return secret


def test_a_path_outside_uploads_and_data_dirs_is_refused_with_one_message_whether_it_exists_or_not(
        lab, outside_file, monkeypatch):
    messages = set()
    uploads = state.uploads_dir()
    (uploads / "link.csv").symlink_to(outside_file)  # a symlink inside uploads leads outside
    monkeypatch.chdir(uploads)
    for path in (str(outside_file), str(outside_file.with_name("missing.csv")), "/etc/passwd", "~/.bashrc",
                 "../../elsewhere/secret.csv", str(uploads / "link.csv"), "link.csv",
                 str(uploads / ".." / "elsewhere" / "secret.csv"), "", "a\0b"):
        with pytest.raises(DataError) as err:
            state.check_data_path(path)
        message = str(err.value)
        assert "refused" in message and "upload" in message.lower() and "--data-dir" in message
        messages.add(message.replace(f"'{path}'", "'PATH'"))
    assert len(messages) == 1  # nothing tells an existing file from a missing one


def test_uploads_and_the_operators_data_dirs_are_readable(lab, tmp_path, monkeypatch):
    upload = state.save_upload("data.csv", b"x,y\n1,2\n")
    assert state.check_data_path(str(upload)) == Path(os.path.realpath(upload))
    allowed = tmp_path / "shared_data"
    (allowed / "sub").mkdir(parents=True)
    (allowed / "sub" / "d.csv").write_text("a,b\n")
    with pytest.raises(DataError):
        state.check_data_path(str(allowed / "sub" / "d.csv"))
    monkeypatch.setenv(state.DATA_DIRS_ENV, os.pathsep.join(["", str(allowed)]))
    assert state.check_data_path(str(allowed / "sub" / "d.csv")) == (allowed / "sub" / "d.csv").resolve()
    assert state.read_csv_header(str(allowed / "sub" / "d.csv")) == ["a", "b"]
    with pytest.raises(DataError):  # the folder itself is not a file in it
        state.check_data_path(str(allowed))


@pytest.mark.parametrize("via", ["link", "yaml"])
def test_a_link_or_config_naming_a_file_on_the_server_shows_not_one_byte_of_it(lab, outside_file, via):
    params = {"dataset.name": "csv", "dataset.options.path": str(outside_file)}
    if via == "link":
        at = app(params)
    else:
        at = app()
        yaml_text = f"dataset:\n  name: csv\n  options:\n    path: {outside_file}\n"
        at.file_uploader(key="yaml_upload").upload("cfg.yaml", yaml_text.encode(), "application/x-yaml").run()
    assert not at.exception
    shown = unescaped(page_text(at))
    assert "secret_column" not in shown and "another_secret" not in shown
    assert "refused" in shown and "--data-dir" in shown
    assert at.multiselect(key=state.K_CSV_TARGETS).options == []
    assert at.button(key="train").disabled


@pytest.mark.parametrize("option", ["path", "train", "dev", "test"])
def test_a_treebank_link_naming_a_file_on_the_server_is_refused_for_every_file_option(lab, outside_file, option):
    """`conllu` reads up to four files (path, or train/dev/test): each is checked like a CSV path."""
    line = "1\tsecret_word\t_\tNOUN\t_\t_\t0\troot\t_\t_\n\n"
    treebank = outside_file.with_name("secret.conllu")
    treebank.write_text(line)
    uploaded = str(state.save_upload("mine.conllu", line.replace("secret_word", "word").encode()))
    options = {"train": uploaded, "test": uploaded} if option != "path" else {}
    options[option] = str(treebank)  # the one option that names a file outside
    with pytest.raises(DataError, match=rf"dataset.options.{option} '.*' is refused"):
        state.check_dataset_access("conllu", options)
    state.check_dataset_access("conllu", {"path": "", "train": None})  # unset options are not files
    at = app({"dataset.name": "conllu", **{f"dataset.options.{k}": v for k, v in options.items()}})
    assert not at.exception
    shown = unescaped(page_text(at))
    assert "secret_word" not in shown and "refused" in shown
    assert at.button(key="train").disabled


def test_the_same_file_in_a_data_dir_given_by_the_operator_is_read(lab, outside_file, monkeypatch):
    monkeypatch.setenv(state.DATA_DIRS_ENV, str(outside_file.parent))
    at = app({"dataset.name": "csv", "dataset.options.path": str(outside_file)})
    assert not at.exception
    assert at.multiselect(key=state.K_CSV_TARGETS).options == ["secret_column", "another_secret"]


# ---- 3. a link cannot exhaust the server ------------------------------------------------------------
def test_review_config_brings_sizes_within_the_documented_bounds_and_says_so():
    raw = state.params_to_raw({**HOSTILE_SIZE, "steps": "abc", "batch_size": "100000", "n_seeds": "50",
                               "optimizer.lr": "-1", "seed": "1.5", "weights.y1": "nan", "weights.y2": "9",
                               "model.hidden": "[4096, 64, 64, 64, 64, 64, 64, 64]", "model.embed_dim": "9999"})
    fixed, notes = state.review_config(raw)
    assert fixed["dataset"]["options"] == {"n_samples": 50_000, "input_dim": 512}
    assert (fixed["steps"], fixed["batch_size"], fixed["n_seeds"], fixed["seed"]) == (600, 4096, 20, 0)
    assert fixed["optimizer"]["lr"] == 1e-7 and fixed["weights"] == {"y1": 1.0, "y2": 5.0}
    assert fixed["model"]["hidden"] == [1024, 64, 64, 64, 64, 64] and fixed["model"]["embed_dim"] == 512
    text = "\n".join(notes)
    for expected in ("dataset.options.n_samples: 200000 is above 50,000", "larger only through the CLI",
                     "dataset.options.input_dim: 1024 is above 512", "steps: 'abc' is not a number; using 600",
                     "batch_size: 100000 is above 4,096", "n_seeds: 50", "optimizer.lr: -1 is below",
                     "seed: 1.5 is not a whole number; using 0", "weights.y1: 'nan' is not a finite number",
                     "weights.y2: 9 is above", "model.hidden", "model.embed_dim: 9999"):
        assert expected in text, expected
    assert state.review_config(fixed) == (fixed, [])  # what is within bounds is kept, silently
    assert ExperimentConfig.parse(fixed).dataset.options["n_samples"] == 50_000


def test_the_bounds_are_one_documented_table_within_the_engines_own():
    assert state.DASHBOARD_LIMITS["dataset.options.n_samples"] == 50_000
    assert state.DASHBOARD_LIMITS["batch_size"] == 4_096 and state.DASHBOARD_LIMITS["steps"] == 100_000
    fields = {f.name: f for f in state.option_fields(__import__("mtl_core.tasks", fromlist=["DATASETS"])
                                                     .DATASETS.get("mmoe_synthetic").options)}
    assert fields["n_samples"].max == 50_000 and fields["input_dim"].max == 512
    assert fields["n_tasks"].max == 8  # an engine bound below the table's is kept


def test_a_hostile_size_link_stays_within_bounds_and_shows_a_note(lab):
    at = app({**HOSTILE_SIZE, "steps": "abc"})
    assert not at.exception
    options = submitted(at).dataset.options
    assert options["n_samples"] == 50_000 and options["input_dim"] == 512
    assert submitted(at).steps == 600
    note = unescaped(" ".join(w.value for w in at.warning))
    assert "dataset.options.n_samples: 200000 is above 50,000" in note
    assert "dataset.options.input_dim: 1024 is above 512" in note
    assert "steps: 'abc' is not a number; using 600" in note
    assert at.number_input(key=state.k_ds_opt("mmoe_synthetic", "n_samples")).value == 50_000


def test_the_parameter_caption_never_generates_the_links_data(lab, monkeypatch):
    import mtl_core.tasks as tasks

    real_load = tasks.load_dataset
    asked = []

    def load_dataset(name, options=None, **kwargs):
        asked.append(dict(options or {}))
        if (options or {}).get("n_samples", 0) > state.PREVIEW_ROWS:
            raise AssertionError(f"the page generated {options['n_samples']} rows")
        return real_load(name, options, **kwargs)

    monkeypatch.setattr(tasks, "load_dataset", load_dataset)
    at = app(HOSTILE_SIZE)
    assert not at.exception
    caption = " ".join(c.value for c in at.caption if "Parameters" in c.value)
    # 512 inputs -> 64 -> 64 shared, two linear regression heads: the count of the asked-for width.
    assert "37,122 multi-task" in caption.replace("\\", "")
    # The count reads a 30-row stand-in; the data preview at most state.PREVIEW_ROWS rows, whatever the link asks.
    assert asked and all(a["input_dim"] == 512 for a in asked)
    assert sorted({a["n_samples"] for a in asked}) == [30, state.PREVIEW_ROWS]


# ---- 4. no silent replacement ------------------------------------------------------------------------
@pytest.mark.parametrize("key, value, expected", [
    ("steps", "abc", "steps: 'abc' is not a number; using 600"),
    ("epochs", "-3", "epochs: -3 is below the minimum 0.01; using 0.01"),
    ("batch_size", "0", "batch_size: 0 is below the minimum 1; using 1"),
    ("optimizer.lr", "lots", "optimizer.lr: 'lots' is not a number; using 0.003"),
    ("seed", "-5", "seed: -5 is below the minimum 0; using 0"),
    ("n_seeds", "99", "n_seeds: 99 is above the maximum 20; using 20"),
    ("weights.y1", "x", "weights.y1: 'x' is not a number; using 1.0"),
    ("dataset.options.correlation", "7", "dataset.options.correlation: 7 is above the maximum 1; using 1.0"),
    ("sharing.name", "mmoe", None),
])
def test_every_replaced_url_value_is_named_on_the_page(lab, key, value, expected):
    query = {key: value}
    if key == "sharing.name":  # an option of the mode the link names
        query["sharing.options.n_experts"] = "1000"
        expected = "sharing.options.n_experts: 1000 is above 16"
    at = app(query)
    assert not at.exception
    assert expected in unescaped(" ".join(w.value for w in at.warning))


def test_an_unknown_device_is_named_on_the_page(lab):
    at = app({"device": "tpu"})
    assert "device 'tpu'" in unescaped(" ".join(w.value for w in at.warning))


# ---- 5. uploads --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["a" * 300 + ".csv", "ü🙂 data (final) ".ljust(260, "x") + ".CSV",
                                  "../../etc/passwd", "....csv", "-rf .csv", "x" * 250])
def test_any_uploaded_file_name_saves_under_a_short_name_that_keeps_its_hash(lab, name):
    path = state.save_upload(name, b"a,b\n1,2\n")
    assert path.parent == state.uploads_dir() and path.read_bytes() == b"a,b\n1,2\n"
    assert len(path.name.encode()) <= 100
    assert path.name.startswith(__import__("hashlib").sha256(b"a,b\n1,2\n").hexdigest()[:12] + "-")
    assert state.check_data_path(str(path)) == path.resolve()


def test_a_long_upload_name_becomes_tasks_on_the_page(lab):
    at = app()
    at.selectbox(key=state.K_DATASET).set_value("csv").run()
    rows = "\n".join(f"{i},{i % 3},{'ab'[i % 2]}" for i in range(40))
    at.file_uploader(key="csv_upload").upload("d" * 251 + ".csv", f"x,k,label\n{rows}\n".encode(), "text/csv").run()
    assert not at.exception
    assert at.multiselect(key=state.K_CSV_TARGETS).options == ["x", "k", "label"]


# ---- 7a. the sidebar with a run that has no phase yet ---------------------------------------------------
def test_progress_summary_of_a_run_without_phase_in_a_table_reads_starting():
    row = {"status": "running", "phase": math.nan, "step": math.nan, "total_steps": math.nan,
           "samples_per_s": math.nan}
    assert state.progress_summary(row, ["stl:y1", "mtl"], batch_size=64) == {
        "fraction": 0.0, "text": "starting the training process…", "eta_s": None}
    assert state.progress_summary(row, ["pretrain", "frozen@0.1"], batch_size=64, budgets=[10, 10])["fraction"] == 0


def _running_run(store: RunStore, *, phase: str | None) -> str:
    run_id = store.create_run(ExperimentConfig.parse({}).to_dict())
    store.set_status(run_id, "running", pid=os.getpid())  # alive: never marked interrupted
    if phase:
        store.update_progress(run_id, phase=phase, step=5, total_steps=600, samples_per_s=100.0)
    return run_id


def test_the_sidebar_lists_two_active_runs_when_one_has_no_phase_yet(lab):
    with RunStore(state.store_path()) as store:
        with_phase = _running_run(store, phase="stl:y1")
        without_phase = _running_run(store, phase=None)
    at = app()
    assert not at.exception
    progress = unescaped(" ".join(str(p.proto.text) for p in at.get("progress")))
    assert "starting the training process" in progress and "step 5/600" in progress
    links = " ".join(str(p.proto.label) for p in at.get("page_link"))
    assert with_phase in links.replace("\\", "") and without_phase in links.replace("\\", "")


def _sidebar_text(at: AppTest) -> str:
    return unescaped(" ".join([str(p.proto.label) for p in at.sidebar.get("page_link")]
                              + [str(p.proto.text) for p in at.sidebar.get("progress")]))


def test_a_watched_runs_live_panel_keeps_the_sidebar_list_fresh_instead_of_a_second_poller(lab):
    """Every poll is a rerun the browser pays for: on the Train page watching an active run,
    the live panel redraws the sidebar's list at its own polls and the list does not poll too;
    elsewhere the list polls itself while a run is active, and not at all when none is."""
    at = app()
    assert at.session_state[sidebar.SS_POLLED_BY] is None  # no run active: nothing polls
    with RunStore(state.store_path()) as store:
        watched = _running_run(store, phase="stl:y1")
        other = _running_run(store, phase="mtl")
    at = app({state.RUN_PARAM: watched})
    assert not at.exception, at.exception
    assert at.session_state[sidebar.SS_POLLED_BY] == "panel"
    text = _sidebar_text(at)
    assert text.count(watched) == 1 and text.count(other) == 1  # listed once, not by two drawers
    assert text.count("step 5/600") == 2
    with RunStore(state.store_path()) as store:  # the runs go on; the panel's next poll shows it
        store.update_progress(watched, phase="stl:y1", step=300, total_steps=600, samples_per_s=100.0)
    at.run()
    assert "step 300/600" in _sidebar_text(at) and at.session_state[sidebar.SS_POLLED_BY] == "panel"
    # A page without a live panel: the list keeps itself fresh.
    at.switch_page("app_pages/results.py").run()
    assert not at.exception, at.exception
    assert at.session_state[sidebar.SS_POLLED_BY] == sidebar.POLL_S
    assert _sidebar_text(at).count(watched) == 1
    # Another page's live panel of an active run takes the list the same way.
    at.switch_page("app_pages/interference.py").run()
    assert not at.exception, at.exception
    assert at.session_state[sidebar.SS_POLLED_BY] == "panel"
    assert _sidebar_text(at).count(watched) == 1 and _sidebar_text(at).count(other) == 1


# ---- 7b. one Train press, one run -------------------------------------------------------------------------
def test_pressing_train_twice_before_the_page_redraws_starts_one_run(lab, monkeypatch):
    started = []

    def start(config, *, store_path=None, name=None):  # registers the run like jobs.start, without a process
        with RunStore(store_path) as store:
            run_id = store.create_run(config.model_dump(mode="json"), name=name)
            store.set_status(run_id, "running", pid=os.getpid())
        started.append(run_id)
        return run_id

    monkeypatch.setattr(jobs, "start", start)
    at = app({"steps": "30"})
    at.button(key="train").click().run()
    assert len(started) == 1 and not at.exception
    assert at.button(key="train").disabled  # until this run ends or the setup changes
    assert f"Started as run {started[0]}" in unescaped(" ".join(c.value for c in at.caption))
    second = at.button(key="train")
    second.proto.disabled = False  # a second click the browser sent before it drew the disabled button
    second.click().run()
    at.run()
    assert len(started) == 1
    # Another setup is another submission.
    at.number_input(key=state.K_SEED).set_value(1).run()
    assert not at.button(key="train").disabled
    at.button(key="train").click().run()
    assert len(started) == 2
    # The first run ended: the same setup may be trained again, knowingly.
    with RunStore(state.store_path()) as store:
        for run_id in started:
            store.set_status(run_id, "cancelled")
    at.number_input(key=state.K_SEED).set_value(0).run()
    assert not at.button(key="train").disabled


# ---- the server's exposure ----------------------------------------------------------------------------------
@pytest.mark.parametrize("address, refused", [
    (None, True), ("", True), ("0.0.0.0", True), ("::", True), ("192.168.1.20", True), ("example.org", True),
    ("127.0.0.1", False), ("127.0.0.2", False), ("::1", False), ("[::1]", False), ("localhost", False),
])
def test_beyond_loopback_is_refused_unless_the_operator_allowed_it(address, refused):
    message = state.exposure_message(address, environ={})
    assert (message is not None) == refused
    if refused:
        assert "mtl-lab dashboard" in message and state.ALLOW_REMOTE_ENV in message
    assert state.exposure_message(address, environ={state.ALLOW_REMOTE_ENV: "1"}) is None


def test_the_app_refuses_to_run_bound_to_every_interface(lab):
    st.config.set_option("server.address", "0.0.0.0")
    at = app()
    assert not at.exception
    assert "mtl-lab dashboard" in unescaped(" ".join(e.value for e in at.error))
    assert not at.title  # no page was drawn


def test_the_app_runs_bound_beyond_loopback_when_the_operator_allowed_it(lab, monkeypatch):
    st.config.set_option("server.address", "0.0.0.0")
    monkeypatch.setenv(state.ALLOW_REMOTE_ENV, "1")
    at = app()
    assert not at.exception and [t.value for t in at.title] == ["Train"]
