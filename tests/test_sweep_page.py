"""The Sweep page (issue 14): the Pareto chart builders, and the page through AppTest.

The charts: points at their test metrics, the front chosen by validation and drawn in x
order, each single-task baseline a dashed line, adaptive strategies labelled markers, the
3-task ternary on the weight simplex, and a hostile task name escaped everywhere. The page:
it counts the runs of its axes, takes Train's "sweep these weights" link, launches a tiny
batched sweep and, once it has ended, draws the front.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from urllib.parse import parse_qsl

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dashboard import charts  # noqa: E402
from dashboard.safe_text import md  # noqa: E402
from mtl_core.store import RunStore  # noqa: E402

APP = str(ROOT / "dashboard" / "app.py")
HOSTILE = "<img src=x onerror=alert(1)>*y*"
HOSTILE_COLUMN = "<b>*y*</b> [z](x)"  # a CSV column may not hold `=` (the importer refuses it)
TIMEOUT_S = 60.0


# ---- the chart builders ------------------------------------------------------------------------
def _table(a: str = "y1", b: str = "y2") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Five manual weightings and one adaptive strategy; a is an MSE (lower is better),
    b an accuracy (higher is better). By validation the front is runs r0, r2, r4 (r1 and r3
    are dominated by r2); the test values put the front in x order r4, r2, r0."""
    nan = math.nan
    rows = [  # run, w_a, w_b, val_a, val_b, test_a, test_b
        ("r0", 2.0, 0.0, 0.10, 0.60, 0.30, 0.55),
        ("r1", 1.5, 0.5, 0.30, 0.65, 0.32, 0.62),
        ("r2", 1.0, 1.0, 0.20, 0.80, 0.25, 0.75),
        ("r3", 0.5, 1.5, 0.40, 0.70, 0.28, 0.70),
        ("r4", 0.0, 2.0, 0.50, 0.90, 0.20, 0.85),
        ("r5", nan, nan, 0.35, 0.75, 0.27, 0.72),
    ]
    points = pd.DataFrame([{
        "run_id": r, "index": i, "status": "finished", "label": f"manual w=({wa:.3g}, {wb:.3g}) hard",
        "strategy": "manual" if not math.isnan(wa) else "uncertainty", "sharing": "hard", "seed": 0,
        f"w:{a}": wa, f"w:{b}": wb, f"val:{a}": va, f"val:{b}": vb, f"test:{a}": ta, f"test:{b}": tb,
        "delta_m": 1.0 + i, "is_front": r in ("r0", "r2", "r4"), "is_front_test": False,
    } for i, (r, wa, wb, va, vb, ta, tb) in enumerate(rows)])
    tasks = pd.DataFrame([
        {"task": a, "metric": "mse", "higher_is_better": False, "baseline_val": 0.22, "baseline_test": 0.26},
        {"task": b, "metric": "accuracy", "higher_is_better": True, "baseline_val": 0.7, "baseline_test": 0.68},
    ])
    return points, tasks


def _trace(fig, name: str):
    found = [t for t in fig.data if t.name == name]
    assert found, [t.name for t in fig.data]
    return found[0]


def test_pareto_chart_plots_test_metrics_and_joins_the_validation_front_in_x_order():
    points, tasks = _table()
    fig = charts.pareto_chart(points, tasks)
    front = _trace(fig, "Pareto front (by validation)")
    assert list(front.customdata) == ["r4", "r2", "r0"]  # the validation front, ordered along x (test)
    assert list(front.x) == [0.20, 0.25, 0.30] and list(front.y) == [0.85, 0.75, 0.55]
    # r4 beats r2 and r0 on both tasks' test metrics: chosen on validation, not a front at test,
    # so the rings are not joined by a line that would zigzag
    assert front.mode == "markers"
    cloud = _trace(fig, "weightings (manual)")
    assert sorted(cloud.customdata) == ["r0", "r1", "r2", "r3", "r4"]
    assert "w y1 = 1.5" in cloud.hovertext[1] and "run r1" in cloud.hovertext[1]


def test_the_validation_front_is_joined_by_a_line_while_it_is_a_front_at_test_too():
    points, tasks = _table()
    points.loc[points["run_id"] == "r2", "test:y2"] = 0.9  # r4 (0.20, 0.85) r2 (0.25, 0.90) r0 (0.30, 0.95)
    points.loc[points["run_id"] == "r0", "test:y2"] = 0.95
    front = _trace(charts.pareto_chart(points, tasks), "Pareto front (by validation)")
    assert list(front.customdata) == ["r4", "r2", "r0"] and front.mode == "lines+markers"


def test_a_click_on_a_point_selects_its_run():
    points, tasks = _table()
    fig = charts.pareto_chart(points, tasks)
    curve = [t.name for t in fig.data].index("Pareto front (by validation)")
    assert charts.selected_run({"selection": {"points": [{"curve_number": curve, "point_index": 1}]}}, fig) == "r2"
    assert charts.selected_run({"selection": {"points": [{"customdata": ["r5"]}]}}, fig) == "r5"
    baseline = [t.name for t in fig.data].index("single-task y1")  # a line, not a run
    assert charts.selected_run({"selection": {"points": [{"curve_number": baseline, "point_index": 0}]}}, fig) is None
    assert charts.selected_run(None, fig) is None and charts.selected_run({"selection": {"points": []}}, fig) is None


def test_front_order_computes_the_front_by_validation_with_mixed_directions():
    points, _ = _table()
    assert charts.front_order(points, "y1", "y2", [False, True]) == [4, 2, 0]
    # with both metrics higher-is-better, low val y1 no longer wins: r4 (0.5, 0.9) dominates all
    assert charts.front_order(points, "y1", "y2", [True, True]) == [4]


def test_pareto_chart_draws_each_baseline_dashed_and_strategies_as_labelled_markers():
    points, tasks = _table()
    fig = charts.pareto_chart(points, tasks)
    b1, b2 = _trace(fig, "single-task y1"), _trace(fig, "single-task y2")
    assert b1.line.dash == b2.line.dash == "dash"
    assert set(b1.x) == {0.26} and len(set(b1.y)) == 2  # a vertical line at y1's baseline
    assert set(b2.y) == {0.68} and len(set(b2.x)) == 2  # a horizontal line at y2's baseline
    strategy = _trace(fig, "uncertainty")
    assert strategy.mode == "markers+text" and list(strategy.text) == ["uncertainty"]
    assert list(strategy.customdata) == ["r5"] and "weights set by uncertainty" in strategy.hovertext[0]
    # axis titles say which way is better; the arrow points at the (low y1, high y2) corner
    assert "← better" in fig.layout.xaxis.title.text and "↑ better" in fig.layout.yaxis.title.text
    arrow = fig.layout.annotations[0]
    assert arrow.text == "better" and (arrow.x, arrow.y) == (0.0, 1.0)


def test_pareto_chart_escapes_a_hostile_task_name():
    points, tasks = _table(a=HOSTILE)
    fig = charts.pareto_chart(points, tasks)
    shown = json.dumps(fig.to_plotly_json(), default=str)
    assert "<img" not in shown
    assert "&lt;img src=x onerror=alert(1)&gt;" in fig.layout.xaxis.title.text
    assert _trace(fig, "single-task &lt;img src=x onerror=alert(1)&gt;*y*")
    assert "w &lt;img" in _trace(fig, "weightings (manual)").hovertext[0]


def test_ternary_chart_places_weightings_on_the_simplex_coloured_by_delta_m():
    points = pd.DataFrame([{
        "run_id": f"r{i}", "label": "manual", "strategy": "manual", "status": "finished",
        "w:a": w[0], "w:b": w[1], "w:<c>": w[2], "delta_m": dm, "is_front": i == 0,
    } for i, (w, dm) in enumerate([((3, 0, 0), -2.0), ((1, 1, 1), 1.5), ((0, 1.5, 1.5), 0.5)])]
        + [{"run_id": "r9", "label": "pcgrad", "strategy": "pcgrad", "status": "finished", "w:a": math.nan,
            "w:b": math.nan, "w:<c>": math.nan, "delta_m": 3.0, "is_front": False}])
    tasks = pd.DataFrame({"task": ["a", "b", "<c>"], "metric": ["mse"] * 3, "higher_is_better": [False] * 3,
                          "baseline_val": [1.0] * 3, "baseline_test": [1.0] * 3})
    fig = charts.ternary_chart(points, tasks)
    (trace,) = fig.data
    assert trace.type == "scatterternary"
    assert list(trace.customdata) == ["r0", "r1", "r2"]  # the adaptive strategy has no weights to place
    assert [round(a + b + c, 9) for a, b, c in zip(trace.a, trace.b, trace.c)] == [1.0] * 3
    assert list(trace.a) == [1.0, pytest.approx(1 / 3), 0.0]
    assert list(trace.marker.color) == [-2.0, 1.5, 0.5]
    assert fig.layout.ternary.caxis.title.text == "w &lt;c&gt;"


# ---- the page ------------------------------------------------------------------------------------
TINY = {  # 3 weightings × 20 steps on 300 rows: a few seconds with the driver's start
    "steps": "20", "batch_size": "32", "eval_every": "10", "log_every": "5",
    "dataset.options.n_samples": "300", "dataset.options.input_dim": "8",
}


@pytest.fixture
def driver_in_process(monkeypatch):
    """Launch records the sweep and drives it here (`run_sweep`, the driver's own code) instead
    of starting a driver process, which imports torch anew; the process path is launched for
    real by `test_a_tiny_batched_sweep_is_launched_and_its_pareto_front_drawn`."""
    from mtl_core import executors

    def start(config, *, executor=None, workers=None, store_path=None):
        with RunStore(store_path) as store:
            sweep_id = executors.record_sweep(store, config, executor=executor or config.executor)
        executors.run_sweep(sweep_id, executor=executor or config.executor, workers=workers, store_path=store_path)
        return sweep_id

    monkeypatch.setattr(executors, "start_sweep", start)


def sweep_page(query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.query_params.update(query or {})
    return at.switch_page("app_pages/sweep.py").run()


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def test_sweep_page_loads_with_defaults_and_counts_the_runs(lab):
    at = sweep_page()
    assert not at.exception, at.exception
    assert at.title[0].value == "Sweep"
    assert at.radio(key="sw.weights").value == "grid" and at.slider(key="sw.resolution").value == 8
    assert "**9 runs**" in texts(at.markdown)  # a resolution-8 grid on 2 tasks
    # 8.5 s start + 2 baselines × 600 steps + 9 members × 0.4 × 600 steps at 520 steps/s (measured: 15 s)
    assert "about 15 s with batched" in texts(at.markdown)
    assert at.radio(key="sw.executor").value == "auto" and "auto (batched)" in at.radio(key="sw.executor").options
    at.multiselect(key="sw.strategies").set_value(["manual", "uncertainty"]).run()
    assert "**10 runs**" in texts(at.markdown)  # the adaptive strategy trains once
    assert "auto (local)" in at.radio(key="sw.executor").options  # not every point is weight-only now
    assert at.query_params["ax.strategies"] in ("manual,uncertainty", ["manual,uncertainty"])  # in the URL


def test_train_links_its_weights_to_a_nine_point_mirror_sweep(lab):
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update({"weights.y1": "2"})
    at.run()
    (link,) = [e.proto for e in at.get("page_link") if "Sweep these weights" in e.proto.label]
    query = dict(parse_qsl(link.query_string))
    assert query == {"weights.y1": "2.0", "ax.weights": "mirror", "ax.points": "9", "ax.strategies": "manual"}
    at2 = sweep_page(query)  # what a click on the link opens
    assert not at2.exception, at2.exception
    assert at2.radio(key="sw.weights").value == "mirror" and at2.slider(key="sw.points").value == 9
    assert "**9 runs**" in texts(at2.markdown)
    assert at2.query_params["weights.y1"] in ("2.0", ["2.0"])  # the base setup came along


def test_a_hostile_task_name_is_escaped_and_a_bad_seed_list_named(lab):
    csv = lab / "uploads" / "hostile.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    rows = [f"x1,x2,{HOSTILE_COLUMN},y"] + [f"{i},{i % 3},{i % 2},{i * 0.5}" for i in range(60)]
    csv.write_text("\n".join(rows) + "\n")
    targets = json.dumps([HOSTILE_COLUMN, "y"])
    at = sweep_page({"dataset.name": "csv", "dataset.options.path": str(csv), "tasks": targets,
                     "dataset.options.targets": targets})
    assert not at.exception, at.exception
    assert not at.error, texts(at.error)
    shown = texts(at.markdown)
    assert md(HOSTILE_COLUMN) in shown and HOSTILE_COLUMN not in shown  # the base summary names it, escaped
    assert "**9 runs**" in shown
    at.text_input(key="sw.seeds").set_value("0, one").run()
    assert "is not a list of whole numbers" in texts(at.error)


def test_a_tiny_batched_sweep_is_launched_and_its_pareto_front_drawn(lab):
    at = sweep_page({**TINY, "ax.weights": "grid", "ax.resolution": "2"})
    assert "**3 runs**" in texts(at.markdown)
    at.button(key="sweep_launch").click().run()
    assert not at.exception, at.exception
    sweep_id = at.query_params["sweep"]
    sweep_id = sweep_id[0] if isinstance(sweep_id, list) else sweep_id
    deadline = time.monotonic() + TIMEOUT_S
    with RunStore(lab / "mtl_lab.db") as store:
        assert store.get_sweep(sweep_id)["executor"] == "batched"
        while store.get_sweep(sweep_id)["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, store.get_sweep(sweep_id)
            time.sleep(0.5)
        assert store.get_sweep(sweep_id)["status"] == "finished"
    at.run()  # AppTest never fires run_every: one rerun shows the ended sweep
    assert not at.exception, at.exception
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    names = [t.get("name") for s in specs for t in s["data"]]
    assert "Pareto front (by validation)" in names and "single-task y1" in names
    assert "3 of 3 points ended" in "\n".join(str(p.proto.text) for p in at.get("progress"))


def test_a_three_task_sweep_shows_pairwise_fronts_and_the_weight_simplex(lab, driver_in_process):
    at = sweep_page({**TINY, "dataset.options.n_tasks": "3", "ax.weights": "grid", "ax.resolution": "1"})
    assert "**3 runs**" in texts(at.markdown)  # the simplex's corners
    at.button(key="sweep_launch").click().run()
    sweep_id = at.query_params["sweep"]
    sweep_id = sweep_id[0] if isinstance(sweep_id, list) else sweep_id
    deadline = time.monotonic() + TIMEOUT_S
    with RunStore(lab / "mtl_lab.db") as store:
        while store.get_sweep(sweep_id)["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, store.get_sweep(sweep_id)
            time.sleep(0.5)
    at.run()
    assert not at.exception and not at.warning, (at.exception, texts(at.warning))
    pairs = at.selectbox(key="sweep_pair")
    assert pairs.options == ["y1 vs y2", "y1 vs y3", "y2 vs y3"]
    pairs.set_value(("y2", "y3")).run()
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert any("y2 · test mse" in (s["layout"].get("xaxis", {}).get("title", {}).get("text") or "") for s in specs)
    assert any(t.get("type") == "scatterternary" for s in specs for t in s["data"])


@pytest.mark.skipif(__import__("importlib").util.find_spec("optuna") is None, reason="the [tune] extra is absent")
def test_a_study_between_two_rounds_shows_as_active_with_its_trials_and_its_front(lab):
    """A `search:` sweep (mtl_core.tune) whose first round has ended and whose driver lives:
    the page counts the study's trials, keeps Cancel and polling, and plots the trials."""
    import os

    from mtl_core.executors import BatchedExecutor, record_sweep
    from mtl_core.sweep import SweepConfig

    base = {"dataset": {"name": "mmoe_synthetic", "options": {"n_tasks": 2, "n_samples": 300, "input_dim": 8}},
            "model": {"hidden": [16]}, "steps": 20, "eval_every": 10, "batch_size": 32, "device": "cpu"}
    config = SweepConfig.parse({"name": "study", "base": base, "search": {
        "kind": "optuna", "trials": 4, "batch": 2, "space": {"weights": "simplex"}}})
    with RunStore(lab / "mtl_lab.db") as store:
        sweep_id = record_sweep(store, config, executor="batched")
        store.set_sweep_driver(sweep_id, os.getpid())  # this test is the driver, between two rounds
        BatchedExecutor(store, sweep_id).run()
        assert store.get_sweep(sweep_id)["counts"] == {"finished": 2}
    at = sweep_page({"sweep": sweep_id})
    assert not at.exception, at.exception
    assert "2 of 4 points ended" in "\n".join(str(p.proto.text) for p in at.get("progress"))
    assert at.button(key="sweep_cancel")  # still active: the study asks for its next round
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    front = [t for s in specs for t in s["data"] if t.get("name") == "Pareto front (by validation)"]
    assert front and front[0]["x"]
