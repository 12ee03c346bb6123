"""A shared link is safe to open: hostile names stay text, exports stay data, damage stays a message.

Task names are CSV column headers and run names are free text: whoever wrote them does
not get to run script, load images or style the page of whoever opens the run. Specifies,
through Streamlit's AppTest (issue 10):
- every page showing a run whose task names and run name are hostile renders them
  escaped, in every element Streamlit renders as Markdown (bodies, captions, alerts,
  labels, progress texts, radio options, table cells), while the user still sees the name;
- the plotly figures hold the names HTML-escaped (plotly renders a subset of HTML);
- the Runs page's CSV export cannot start a spreadsheet formula;
- a partly corrupted store gives a readable error on every page, never a traceback.

One real (tiny) multi-task run and one transfer run are trained once per module with
tasks y1, y2, y3; their names are then rewritten in the store to the hostile ones, so
that every record the pages read (config, curves, snapshots, result) holds them.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import sqlite3
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dashboard import charts  # noqa: E402
from dashboard.safe_text import html_md, md, plot  # noqa: E402
from mtl_core.config import ExperimentConfig  # noqa: E402
from mtl_core.store import RunStore, StoreSink  # noqa: E402

APP = str(ROOT / "dashboard" / "app.py")

# The two attacks of the issue, and the Markdown a name must not turn into.
SCRIPT_TASK = "<iframe srcdoc=\"<script>parent.document.title='pwned'</script>\">"
MARKDOWN_TASK = "![t](http://127.0.0.1:9/task.png) :red[x] $x$ **b**\nnext line"
TARGET_TASK = ":red[target] <b>bold</b> **b** :material/home:"
RUN_NAME = "![t](http://127.0.0.1:9/x.png) :red[run] **b**"
RENAMES = {"y1": SCRIPT_TASK, "y2": MARKDOWN_TASK, "y3": TARGET_TASK}
# What must never reach a Markdown-rendering element unescaped. A backslash before a tag,
# an image or LaTeX makes it text; Streamlit's directives need more (checked in Chromium):
# `:red\[x\]` is still coloured unless its colon is escaped, and `:material/home:` is still
# an icon unless its slash is.
UNESCAPED = re.compile("|".join([
    r"(?<!\\)<iframe", r"(?<!\\)<script", r"(?<!\\)<b>", r"(?<!\\)!\[t\]\(", r"(?<!\\)\$x\$",
    r"(?<!\\)\*\*b\*\*", r"(?<!\\):red\\?\[(?:x|run|target)", r"material/home",
]))

MTL_CONFIG = {
    "dataset": {"name": "mmoe_synthetic", "options": {"n_tasks": 3, "n_samples": 300, "input_dim": 8}},
    "tasks": ["y1", "y2"], "sharing": {"name": "mmoe"}, "steps": 30, "batch_size": 32, "eval_every": 10,
    "log_every": 5, "n_seeds": 2,
}
TRANSFER_CONFIG = {
    "base": {"dataset": {"name": "mmoe_synthetic", "options": {"n_tasks": 3, "n_samples": 300, "input_dim": 8}},
             "steps": 20, "batch_size": 32, "eval_every": 10, "log_every": 5},
    "sources": ["y1", "y2"], "target": "y3", "arms": ["frozen", "scratch"], "fractions": [0.5, 1.0],
    "target_steps": 10,
}


# ---- the hostile lab ------------------------------------------------------------------------------
def rename_tasks(db: Path, renames: dict[str, str]) -> None:
    """Rewrite task names everywhere in a store, as if the CSV's columns had been named so."""
    con = sqlite3.connect(db)
    with con:
        for old, new in renames.items():
            quoted = json.dumps(new)[1:-1]  # inside the JSON text of configs, results, snapshots
            for table, column in (("runs", "config"), ("results", "payload"), ("interference", "payload")):
                con.execute(f"UPDATE {table} SET {column} = replace({column}, ?, ?)", (old, quoted))
            con.execute("UPDATE metrics SET task = replace(task, ?, ?), phase = replace(phase, ?, ?)",
                        (old, new, old, new))
    con.close()


def store_hostile_runs(db: Path) -> dict[str, str]:
    """Train one multi-task and one transfer run into `db` (a few seconds), named RUN_NAME,
    then give their tasks the hostile names. Returns {"mtl": id, "transfer": id}."""
    from mtl_core import worker
    from mtl_core.experiment import run_experiment
    from mtl_core.transfer import TransferConfig

    config = ExperimentConfig.parse(MTL_CONFIG)
    with RunStore(db) as store:
        mtl_id = store.create_run(config.to_dict(), name=RUN_NAME)
        store.set_status(mtl_id, "running")
        sink = StoreSink(store, mtl_id)
        result = run_experiment(config, sink=sink, run_id=mtl_id)
        sink.flush()
        store.save_result(mtl_id, result)
        store.set_status(mtl_id, "finished")
        transfer = TransferConfig.parse(TRANSFER_CONFIG)
        transfer_id = store.create_run(transfer.to_dict(), name=RUN_NAME)
        worker.execute(store, transfer_id)  # the one lifecycle of a run, as `mtl-lab transfer` uses
    rename_tasks(db, RENAMES)
    return {"mtl": mtl_id, "transfer": transfer_id}


@pytest.fixture(scope="module")
def hostile_store(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    db = tmp_path_factory.mktemp("hostile") / "mtl_lab.db"
    return db, store_hostile_runs(db)


@pytest.fixture
def lab(tmp_path, monkeypatch, hostile_store) -> Iterator[tuple[Path, dict[str, str]]]:
    """A fresh lab folder holding a copy of the hostile store."""
    home = tmp_path / "lab"
    home.mkdir()
    shutil.copy(hostile_store[0], home / "mtl_lab.db")
    monkeypatch.setenv("MTL_LAB_HOME", str(home))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    st.cache_resource.clear()
    st.cache_data.clear()
    yield home, hostile_store[1]
    st.cache_resource.clear()
    st.cache_data.clear()


def open_page(page: str, query: dict[str, str]) -> AppTest:
    """`page` opened first, from a link with `query` (as a shared link opens it)."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query)
    if page != "train":
        at.switch_page(f"app_pages/{page}.py")
    return at.run()


# ---- what the browser would render as Markdown ----------------------------------------------------
# Proto fields Streamlit 1.67 renders through its Markdown component (read in Chromium):
# element bodies (markdown, caption, alerts, headings, toasts), progress texts, every label
# and help tooltip; options only for radio and select_slider (selectbox and multiselect
# options are plain text).
MARKDOWN_FIELDS = {"body", "label", "text", "help"}
MARKDOWN_OPTIONS = {"Radio", "Slider"}


def _proto_markdown(msg: Any) -> Iterator[str]:
    for fd, value in msg.ListFields():
        values = value if fd.is_repeated else [value]
        if fd.type == fd.TYPE_MESSAGE:
            for v in values:
                yield from _proto_markdown(v)
        elif fd.type == fd.TYPE_STRING and (
            fd.name in MARKDOWN_FIELDS or (fd.name == "options" and msg.DESCRIPTOR.name in MARKDOWN_OPTIONS)
        ):
            yield from values


def _table_cells(table: Any) -> Iterator[str]:
    """The text cells and headers of an st.table as shown: a Styler's display values."""
    from streamlit import dataframe_util

    arrow = table.proto.arrow_data
    frame = dataframe_util.convert_arrow_bytes_to_pandas_df(
        arrow.styler.display_values if arrow.HasField("styler") else arrow.data)
    yield from (str(c) for c in frame.columns)
    for column in frame.columns:
        yield from (v for v in frame[column] if isinstance(v, str))


def markdown_texts(at: AppTest) -> list[str]:
    """Every string of the page that the browser would render as Markdown."""
    out: list[str] = []

    def visit(node: Any) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None and hasattr(proto, "ListFields"):
            out.extend(_proto_markdown(proto))
        for child in getattr(node, "children", {}).values():
            visit(child)

    visit(at._tree)
    for table in at.get("table"):
        out.extend(_table_cells(table))
    return out


def assert_inert(at: AppTest, *shown: str) -> None:
    """No hostile string reaches Markdown raw, and each of `shown` is on the page, escaped."""
    assert not at.exception, at.exception
    texts = markdown_texts(at)
    for text in texts:
        assert not UNESCAPED.search(text), f"a hostile string reaches Markdown unescaped in: {text!r}"
    page = "\n".join(texts)
    for name in shown:
        assert md(name) in page or html_md(name) in page, f"{name!r} is not shown (escaped) on the page"


def assert_charts_escaped(at: AppTest, *names: str) -> None:
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert specs, "the page shows charts"
    strings = [s for spec in specs for s in _strings(spec)]
    assert not [s for s in strings if "<iframe" in s or "<script" in s or "<b>bold" in s]
    for name in names:
        assert any(plot(name) in s for s in strings), f"{name!r} is not in any chart"


# ---- pages with hostile names -----------------------------------------------------------------------
def test_train_page_watching_a_hostile_run_shows_its_names_as_text(lab):
    _, ids = lab
    at = open_page("train", {"run": ids["mtl"]})
    assert_inert(at)
    assert f"Run {ids['mtl']}" in "\n".join(s.value for s in at.subheader)
    # the finish banner's box follows the Δm verdict (success / error / info)
    assert "Finished" in "\n".join(s.value for s in [*at.success, *at.error, *at.info])
    assert_charts_escaped(at, f"{SCRIPT_TASK} · train", f"{MARKDOWN_TASK} · val")


def test_train_page_link_to_a_hostile_run_id_says_so_without_markdown(lab):
    at = open_page("train", {"run": RUN_NAME})
    assert_inert(at)
    warning = "\n".join(w.value for w in at.warning)
    assert "no run" in warning and md(repr(RUN_NAME)) in warning


def test_results_page_shows_hostile_task_names_escaped_in_table_verdicts_and_charts(lab):
    _, ids = lab
    at = open_page("results", {"run": ids["mtl"]})
    assert_inert(at, SCRIPT_TASK, MARKDOWN_TASK)
    cells = list(_table_cells(at.table[0]))
    assert md(SCRIPT_TASK) in cells and md(MARKDOWN_TASK) in cells  # the task cell, escaped
    verdicts = [m.value for m in at.markdown if "font-weight:600" in m.value]
    assert len(verdicts) == 2 and html_md(SCRIPT_TASK) in verdicts[0]  # two seeds: a verdict per task
    assert_charts_escaped(at, SCRIPT_TASK, MARKDOWN_TASK)


def test_results_page_link_to_a_hostile_run_id_is_escaped(lab):
    at = open_page("results", {"run": "![t](http://127.0.0.1:9/x.png)"})
    assert_inert(at)
    assert "There is no run" in "\n".join(e.value for e in at.error)


def test_interference_page_shows_hostile_task_names_escaped(lab):
    _, ids = lab
    at = open_page("interference", {"run": ids["mtl"]})
    assert_inert(at, SCRIPT_TASK, MARKDOWN_TASK)
    sentence = "\n".join(m.value for m in at.markdown if "conflict (cos < 0) in" in m.value)
    assert html_md(SCRIPT_TASK) in sentence and html_md(MARKDOWN_TASK) in sentence
    assert_charts_escaped(at, SCRIPT_TASK, MARKDOWN_TASK)


def test_runs_page_shows_a_hostile_run_name_and_its_tasks_escaped(lab):
    _, ids = lab
    at = open_page("runs", {})
    assert_inert(at)
    at.multiselect(key="runs_selected").set_value([ids["mtl"]]).run()
    assert_inert(at, RUN_NAME, SCRIPT_TASK)
    assert any(md(RUN_NAME) in m.value and m.value.startswith("**") for m in at.markdown)  # its results header
    assert_charts_escaped(at, SCRIPT_TASK)


def test_transfer_page_shows_hostile_source_and_target_names_escaped(lab):
    _, ids = lab
    at = open_page("transfer", {"transfer": ids["transfer"]})
    assert_inert(at, TARGET_TASK)
    heading = "\n".join(s.value for s in at.subheader)
    assert f"{md(SCRIPT_TASK)}, {md(MARKDOWN_TASK)} → {md(TARGET_TASK)}" in heading
    assert_charts_escaped(at, TARGET_TASK)


def test_sidebar_lists_an_active_hostile_run_with_escaped_progress(lab):
    """A run training now is listed in the sidebar with its phase, which names a task."""
    import os

    home, ids = lab
    with RunStore(home / "mtl_lab.db") as store:  # "trained" by this (living) process
        store.set_status(ids["mtl"], "running", pid=os.getpid())
        store.update_progress(ids["mtl"], phase=f"stl:{SCRIPT_TASK}", step=3, total_steps=30, samples_per_s=None)
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, at.exception
    texts = markdown_texts(at)
    progress = [t for t in texts if "(1/6)" in t]  # baseline 1 of 6 models (2 tasks + MTL, 2 seeds)
    assert progress and md(SCRIPT_TASK) in progress[0], texts
    assert not [t for t in texts if UNESCAPED.search(t)]


# ---- plotly figures ------------------------------------------------------------------------------
def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _strings(value)


def test_chart_builders_hold_task_names_html_escaped():
    import pandas as pd

    tasks = [SCRIPT_TASK, MARKDOWN_TASK]
    colors = charts.task_colors(tasks)
    metrics = pd.DataFrame(
        [("mtl", s, t, split, "loss", 1.0 / (s + 1), 0.0) for s in (1, 2) for t in tasks for split in ("train", "val")]
        + [(f"stl:{t}", s, t, "val", "loss", 1.0, 0.0) for s in (1, 2) for t in tasks]
        + [("mtl", s, t, "train", "weight", 1.0, 0.0) for s in (1, 2) for t in tasks]
        + [("mtl", s, t, "gates", f"{t} 1", 0.5, 0.0) for s in (1, 2) for t in tasks],
        columns=["phase", "step", "task", "split", "metric", "value", "wall_time"])
    snapshots = [{"step": s, "tasks": tasks, "grad_cosine": [[1, -0.2], [-0.2, 1]], "grad_norm": [1.0, 2.0]}
                 for s in (1, 2)]
    rows = [{"name": t, "metric": "accuracy", "higher_is_better": True, "stl": 0.5, "mtl": 0.6} for t in tasks]
    figures = {
        "loss_curves": charts.loss_curves(metrics, tasks, colors=colors),
        "weights_chart": charts.weights_chart(metrics, tasks, colors=colors),
        "overlay_chart": charts.overlay_chart({RUN_NAME + SCRIPT_TASK: metrics.head(2)},
                                              title=f"{SCRIPT_TASK} · loss", y_title=SCRIPT_TASK),
        "comparison_bars": charts.comparison_bars(rows, colors=colors),
        "gates_bars": charts.gates_bars({t: {f"{t} 1": 0.7, "shared 1": 0.3} for t in tasks}, colors=colors),
        "gates_history_chart": charts.gates_history_chart(metrics, tasks, colors=colors),
        "cosine_heatmap": charts.cosine_heatmap(tasks, [[1, -0.2], [-0.2, 1]], colors=colors),
        "cosine_history_chart": charts.cosine_history_chart(snapshots, colors=colors),
        "grad_norm_chart": charts.grad_norm_chart(snapshots, colors=colors),
        "affinity_heatmap": charts.affinity_heatmap(tasks, [[1e-3, -1e-3], [2e-3, 1e-3]], colors=colors),
        "magnitude_heatmap": charts.magnitude_heatmap(tasks, [[1, 0.5], [0.5, 1]], colors=colors),
        "data_efficiency_chart": charts.data_efficiency_chart(
            [{"arm": "frozen", "n_labelled": 10, "fraction": 0.5, "metric_value": 0.7}],
            metric=SCRIPT_TASK, title=f"test of {SCRIPT_TASK}"),
        **{f"architecture_diagram[{kind}]": charts.architecture_diagram(kind, tasks, colors=colors)
           for kind in charts.DIAGRAM_KINDS},
    }
    for name, fig in figures.items():
        strings = list(_strings(fig.to_plotly_json()))
        leaked = [s for s in strings if "<iframe" in s or "<script" in s]
        assert not leaked, (name, leaked)
        assert any(plot(SCRIPT_TASK) in s for s in strings), f"{name}: the task name is not shown"
    # st.table renders cells as Markdown: the results table shows the task escaped, and its
    # colour (looked up by the raw name) is kept.
    html = charts.style_comparison(charts.comparison_frame(rows), colors=colors).to_html()
    assert md(SCRIPT_TASK) in html and md(MARKDOWN_TASK) in html
    assert f"color: {colors[SCRIPT_TASK]}" in html and f"color: {colors[MARKDOWN_TASK]}" in html


# ---- CSV export ------------------------------------------------------------------------------------
def test_runs_table_export_cannot_start_a_spreadsheet_formula(lab, monkeypatch):
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
    from streamlit.testing.v1 import app_test

    home, _ = lab
    with RunStore(home / "mtl_lab.db") as store:
        formula_id = store.create_run({**MTL_CONFIG, "tasks": ["+1+1", "y2"]}, name="=HYPERLINK(\"http://x\")")
        store.set_status(formula_id, "failed", error="@SUM(1)")
    downloads: dict[str, bytes] = {}

    class Recording(MemoryMediaFileStorage):
        def load_and_get_id(self, path_or_data, mimetype, kind, filename=None):
            downloads[filename] = path_or_data if isinstance(path_or_data, bytes) else str(path_or_data).encode()
            return super().load_and_get_id(path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(app_test, "MemoryMediaFileStorage", Recording)
    at = open_page("runs", {})
    assert not at.exception
    rows = list(csv.DictReader(io.StringIO(downloads["mtl_lab_runs.csv"].decode())))
    row = next(r for r in rows if r["id"] == formula_id)
    assert row["name"] == "'=HYPERLINK(\"http://x\")"
    assert row["tasks"] == "'+1+1, y2"
    for r in rows:
        assert not [v for v in r.values() if v[:1] in ("=", "+", "@", "\t", "\r")], r


# ---- a partly corrupted store ------------------------------------------------------------------------
DAMAGE = re.compile(r"damaged|corrupt|malformed|invalid|cannot be (read|used)", re.I)


def damage(db: Path, sql: str, *params: Any) -> None:
    con = sqlite3.connect(db)
    with con:
        assert con.execute(sql, params).rowcount >= 1, sql
    con.close()


def errors_of(at: AppTest) -> str:
    assert not at.exception, at.exception  # no traceback, no "This app has encountered an error"
    return "\n".join(e.value for e in at.error)


@pytest.mark.parametrize("what, sql", [
    ("config", "UPDATE runs SET config = '{\"dataset\": ' WHERE id = ?"),
    ("result", "UPDATE results SET payload = 'not json' WHERE run_id = ?"),
    ("metrics", "UPDATE metrics SET value = 'garbage' WHERE run_id = ? AND metric = 'loss'"),
])
def test_train_page_with_a_damaged_run_says_what_is_wrong(lab, what, sql):
    home, ids = lab
    damage(home / "mtl_lab.db", sql, ids["mtl"])
    errors = errors_of(open_page("train", {"run": ids["mtl"]}))
    assert DAMAGE.search(errors) or "could not convert" in errors, (what, errors)
    assert ids["mtl"] in errors or what == "config" and "run store" in errors.lower(), (what, errors)


@pytest.mark.parametrize("what, sql", [
    ("config", "UPDATE runs SET config = '{\"dataset\": ' WHERE id = ?"),
    ("result", "UPDATE results SET payload = 'not json' WHERE run_id = ?"),
    ("weights", "UPDATE metrics SET value = 'garbage' WHERE run_id = ? AND metric = 'weight'"),
    ("result shape", "UPDATE results SET payload = '{\"tasks\": 5}' WHERE run_id = ?"),
])
def test_results_page_with_a_damaged_run_says_what_is_wrong(lab, what, sql):
    home, ids = lab
    damage(home / "mtl_lab.db", sql, ids["mtl"])
    errors = errors_of(open_page("results", {"run": ids["mtl"]}))
    assert DAMAGE.search(errors) or "could not convert" in errors, (what, errors)


@pytest.mark.parametrize("what, sql", [
    ("config", "UPDATE runs SET config = '{\"dataset\": ' WHERE id = ?"),
    ("snapshot", "UPDATE interference SET payload = '{oops' WHERE run_id = ?"),
    ("snapshot shape", "UPDATE interference SET payload = '{\"tasks\": 3}' WHERE run_id = ?"),
    ("result", "UPDATE results SET payload = 'not json' WHERE run_id = ?"),
])
def test_interference_page_with_a_damaged_run_says_what_is_wrong(lab, what, sql):
    home, ids = lab
    damage(home / "mtl_lab.db", sql, ids["mtl"])
    errors = errors_of(open_page("interference", {"run": ids["mtl"]}))
    assert DAMAGE.search(errors), (what, errors)


def test_runs_page_with_a_damaged_result_lists_the_runs_and_names_the_damaged_one(lab):
    home, ids = lab
    damage(home / "mtl_lab.db", "UPDATE results SET payload = 'not json' WHERE run_id = ?", ids["mtl"])
    at = open_page("runs", {})
    assert not errors_of(at)
    assert set(at.dataframe[0].value["id"]) == {ids["mtl"], ids["transfer"]}
    at.multiselect(key="runs_selected").set_value([ids["mtl"]]).run()
    errors = errors_of(at)
    assert ids["mtl"] in errors and DAMAGE.search(errors), errors


def test_runs_page_with_a_damaged_config_says_what_is_wrong(lab):
    home, ids = lab
    damage(home / "mtl_lab.db", "UPDATE runs SET config = '{\"dataset\": ' WHERE id = ?", ids["mtl"])
    errors = errors_of(open_page("runs", {}))
    assert DAMAGE.search(errors), errors


@pytest.mark.parametrize("what, sql", [
    ("config", "UPDATE runs SET config = '{\"base\": ' WHERE id = ?"),
    ("result", "UPDATE results SET payload = 'not json' WHERE run_id = ?"),
])
def test_transfer_page_with_a_damaged_run_says_what_is_wrong(lab, what, sql):
    home, ids = lab
    damage(home / "mtl_lab.db", sql, ids["transfer"])
    at = open_page("transfer", {"transfer": ids["transfer"]})
    errors = errors_of(at)
    assert DAMAGE.search(errors), (what, errors)
    assert at.button(key="transfer_run"), "the form to start a new transfer run is still there"


@pytest.mark.parametrize("page", ["train", "results", "interference", "transfer", "runs"])
def test_every_page_says_so_when_the_store_file_is_not_a_database(lab, page):
    home, ids = lab
    (home / "mtl_lab.db").write_bytes(b"this is not an SQLite file" * 100)
    at = open_page(page, {"run": ids["mtl"]})
    assert not at.exception, at.exception
    said = "\n".join(e.value for e in [*at.error, *at.warning])
    assert "mtl_lab.db" in said and DAMAGE.search(said), said
