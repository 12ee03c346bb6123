"""The live chart's pace: redrawn at every poll while young, then less often, and at once
when a setting changes or the run ends (dashboard/live_pace.py, the Train page's live panel)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard import live_pace
from dashboard.live_pace import CHART_MAX_S, PANEL_MAX_S, POLL_S, ChartPace, chart_interval
from mtl_core.config import ExperimentConfig
from mtl_core.store import RunStore

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")


@pytest.mark.parametrize(("age", "interval"), [(0.0, POLL_S), (6.0, POLL_S), (30.0, 5.0), (600.0, CHART_MAX_S)])
def test_the_interval_grows_with_the_charts_age_between_one_poll_and_the_maximum(age, interval):
    assert chart_interval(age) == pytest.approx(interval)


def test_a_redraw_is_due_first_then_after_its_interval_or_a_new_setting_or_the_end():
    pace = ChartPace(key="run")
    assert pace.due(0.0, ("a",))
    pace.drawn(0.0, ("a",))
    assert not pace.due(0.5, ("a",))  # within the interval: the previous figure is shown again
    assert pace.due(0.5, ("b",))  # a toggle or the smoothing slider moved
    assert pace.due(0.5, ("a",), final=True)  # the run ended: its last points are drawn
    assert pace.due(1.98, ("a",))  # a poll a few ms early still redraws a young chart
    pace.drawn(60.0, ("a",))  # a minute old: every 10 s (60 / 6)
    assert not pace.due(67.0, ("a",)) and pace.due(69.5, ("a",))


def _rows(steps: range) -> list[tuple]:
    return [("mtl", s, t, "train", "loss", 1.0 / s, 0.0) for s in steps for t in ("y1", "y2", "total")]


def _last_step(spec: str) -> int:
    """The last step of the first training curve of a figure's JSON (plotly writes arrays
    as base64 typed buffers)."""
    x = json.loads(spec)["data"][0]["x"]
    return int(np.frombuffer(base64.b64decode(x["bdata"]), dtype=x["dtype"]).max())


def _running_run(config, store_path) -> str:
    """A stand-in for `jobs.start`: the run is stored as running, "trained" by this living process."""
    with RunStore(store_path) as store:
        run_id = store.create_run(config.to_dict())
        store.set_status(run_id, "running", pid=os.getpid())
    return run_id


def _chart_spec(at: AppTest) -> str:
    (chart,) = [c for c in at.get("plotly_chart") if '"training loss"' in c.proto.spec]
    return chart.proto.spec


def test_the_train_page_redraws_a_live_chart_at_its_pace_and_shows_the_same_figure_between(tmp_path, monkeypatch):
    """Between redraws the page sends the very same figure (so the browser keeps its plot),
    though new points were logged; after the interval, or on a new setting, it draws them."""
    monkeypatch.setenv("MTL_LAB_HOME", str(tmp_path))
    st.cache_resource.clear()
    st.cache_data.clear()
    clock = [1000.0]
    monkeypatch.setattr(live_pace, "now", lambda: clock[0])
    config = ExperimentConfig.parse({"steps": 100, "baselines": False}).to_dict()
    with RunStore(tmp_path / "mtl_lab.db") as store:
        run_id = store.create_run(config)
        store.set_status(run_id, "running", pid=os.getpid())  # "trained" by this living process
        store.log_metrics(run_id, _rows(range(1, 11)))
    try:
        at = AppTest.from_file(APP, default_timeout=60)
        at.query_params["run"] = run_id
        at.run()
        assert not at.exception, at.exception
        first = _chart_spec(at)
        assert _last_step(first) == 10

        with RunStore(tmp_path / "mtl_lab.db") as store:
            store.log_metrics(run_id, _rows(range(11, 21)))
        clock[0] += 0.5  # the next poll, within the interval
        at.run()
        assert _chart_spec(at) == first

        clock[0] += POLL_S  # the interval passed: the new points are drawn
        at.run()
        redrawn = _chart_spec(at)
        assert redrawn != first
        assert _last_step(redrawn) == 20

        with RunStore(tmp_path / "mtl_lab.db") as store:
            store.log_metrics(run_id, _rows(range(21, 31)))
        at.toggle(key="live_log").set_value(True).run()  # a new setting is drawn at once
        spec = _chart_spec(at)
        assert json.loads(spec)["layout"]["yaxis"]["type"] == "log" and _last_step(spec) == 30
    finally:
        st.cache_resource.clear()
        st.cache_data.clear()


def test_the_rerun_after_a_click_on_train_draws_a_first_point_logged_moments_later(tmp_path, monkeypatch):
    """A warm worker logs its first point ~0.5 s after the click, while the page's rerun after
    the click is under way: that rerun waits for it and draws it, instead of leaving it to a
    later poll of the panel and one more full rerun. Here the "worker" logs its point right
    after the page's first look for one (deterministic, whatever this machine's speed)."""
    from mtl_core import jobs

    monkeypatch.setenv("MTL_LAB_HOME", str(tmp_path))
    st.cache_resource.clear()
    st.cache_data.clear()
    looks: dict[str, int] = {}
    has_metrics = RunStore.has_metrics

    def start(config, *, store_path=None, **_):
        run_id = _running_run(config, store_path)
        looks[run_id] = 0
        return run_id

    def looked(store, run_id):
        if run_id in looks:
            looks[run_id] += 1
            if looks[run_id] == 2:  # the page looked once and found nothing: now the point comes
                store.log_metrics(run_id, _rows(range(1, 2)))
        return has_metrics(store, run_id)

    monkeypatch.setattr(jobs, "start", start)
    monkeypatch.setattr(RunStore, "has_metrics", looked)
    try:
        at = AppTest.from_file(APP, default_timeout=60).switch_page("app_pages/train.py").run()
        at.button(key="train").click().run()
        assert not at.exception, at.exception
        assert _last_step(_chart_spec(at)) == 1
        assert not [c for c in at.caption if "Waiting for the first logged step" in c.value]
    finally:
        st.cache_resource.clear()
        st.cache_data.clear()


def test_a_click_on_train_starts_the_shown_experiment_before_the_page_reruns_and_a_changed_one_after(
        tmp_path, monkeypatch):
    """Train's callback starts the experiment the page showed, so the click's one rerun already
    watches the run (no second full rerun for the browser to apply); a click that arrives with
    a changed setting (a seed typed, then Train at once) starts the experiment with that setting,
    from the page, never the one shown before."""
    from mtl_core import jobs

    from dashboard import state

    monkeypatch.setenv("MTL_LAB_HOME", str(tmp_path))
    st.cache_resource.clear()
    st.cache_data.clear()
    started: list[tuple[str, dict]] = []
    reruns: list[int] = []
    rerun = st.rerun

    def start(config, *, store_path=None, **_):
        run_id = _running_run(config, store_path)  # never logs a point
        started.append((run_id, config.to_dict()))
        return run_id

    def counted_rerun(*args, **kwargs):
        reruns.append(1)
        return rerun(*args, **kwargs)

    monkeypatch.setattr(jobs, "start", start)
    monkeypatch.setattr(st, "rerun", counted_rerun)
    try:
        at = AppTest.from_file(APP, default_timeout=60).switch_page("app_pages/train.py").run()
        at.button(key="train").click().run()
        assert not at.exception, at.exception
        assert len(started) == 1 and reruns == []
        run_id = started[0][0]
        assert f"Run {run_id}" in [h.value for h in at.subheader]
        assert at.button(key="train").disabled

        # A new seed and the click in one request: the run trains seed 7, started by the page.
        at.number_input(key=state.K_SEED).set_value(7)
        at.button(key="train").proto.disabled = False  # the browser sent the click before redrawing
        at.button(key="train").click().run()
        assert not at.exception, at.exception
        assert len(started) == 2 and started[1][1]["seed"] == 7 and reruns == [1]
        assert f"Run {started[1][0]}" in [h.value for h in at.subheader]
    finally:
        st.cache_resource.clear()
        st.cache_data.clear()


def test_the_panel_is_polled_less_often_once_its_chart_is_redrawn_less_often(monkeypatch):
    """Every poll is a rerun the browser pays for, whatever it carries: the panel is polled
    every POLL_S while its chart is young, then every PANEL_MAX_S (one change in a run's
    life, so one whole-page rerun to draw the panel with its new poll)."""
    pace = ChartPace(key="run")
    assert pace.poll(50.0) == POLL_S  # no chart yet
    pace.drawn(0.0, ("a",))
    assert pace.poll(12.0) == POLL_S  # a young chart, redrawn at every poll
    assert pace.poll(29.0) == POLL_S  # redrawn every 4.8 s: still polled every POLL_S
    assert pace.poll(30.0) == PANEL_MAX_S  # redrawn every 5 s or less often
    assert pace.poll(6000.0) == PANEL_MAX_S
    ss = {live_pace.SS_PACE: pace}
    monkeypatch.setattr(live_pace, "now", lambda: 40.0)
    assert live_pace.panel_poll(ss, "run") == PANEL_MAX_S
    assert live_pace.panel_poll(ss, "run", paused=True) == POLL_S  # a held run: a Step shows within a poll
    # Polled every 5 s, a chart of pace 7 s is redrawn every other poll, one of 10 s too.
    pace.drawn(42.0, ("a",))
    assert not pace.due(47.0, ("a",)) and pace.due(52.0, ("a",))
