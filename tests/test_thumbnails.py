"""A glance at the data before training (issue 15): the preview each built-in dataset gets,
drawn from its training rows, with user strings escaped."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard import state
from dashboard.charts.thumbnails import POINTS, data_preview
from mtl_core.tasks import load_dataset

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")


@pytest.mark.parametrize("correlation", [0.9, -0.9])
def test_two_regression_tasks_are_a_scatter_of_their_targets_with_their_correlation(correlation):
    ds = load_dataset("mmoe_synthetic", {"correlation": correlation, "n_samples": 600})
    kind, fig = data_preview(ds)
    assert kind == "figure"
    (trace,) = fig.data
    n = min(len(ds.train), POINTS)
    assert len(trace.x) == n  # training rows only, at most POINTS
    r = float(np.corrcoef(trace.x, trace.y)[0, 1])
    assert f"(r = {r:+.2f})" in fig.layout.title.text
    assert (r > 0.3) if correlation > 0 else (r < -0.3), "the knob shows in the picture"


def test_a_class_task_colours_the_first_two_inputs_and_images_show_as_pictures():
    penguins = load_dataset("penguins", {})
    kind, fig = data_preview(penguins, ["species"])
    assert kind == "figure" and {t.name for t in fig.data} == {"Adelie", "Chinstrap", "Gentoo"}
    assert fig.layout.xaxis.title.text == "bill_length_mm"
    kind, fig = data_preview(load_dataset("digits", {}))
    assert kind == "figure" and fig.data[0].type == "heatmap" and "left" in fig.layout.title.text


def test_a_token_dataset_shows_example_sentences_with_their_tags_and_labels():
    ds = load_dataset("toy_language", {})
    kind, table = data_preview(ds, ["pos", "topic"])
    assert kind == "table" and list(table.columns) == ["sentence", "topic"] and len(table) == 3
    first = table["sentence"][0].split()
    words = [ds.vocab[i] for i in ds.train.x[0].tolist() if i != 0]
    assert [w.rsplit("/", 1)[0] for w in first] == words  # every word, each with its POS tag
    assert table["topic"][0] == ds.tasks["topic"].class_names[int(ds.train.y["topic"][0])]


def test_task_and_class_names_reach_the_chart_escaped():
    ds = load_dataset("penguins", {})
    hostile = "<img src=x onerror=alert(1)>"
    spec = dataclasses.replace(ds.tasks["species"], name=hostile, class_names=(hostile, "b", "c"))
    ds = dataclasses.replace(ds, tasks={hostile: spec},
                             train=dataclasses.replace(ds.train, y={hostile: ds.train.y["species"]}))
    _, fig = data_preview(ds)
    text = fig.to_json()
    assert "<img" not in text and "&lt;img" in text


def test_the_train_page_shows_the_preview_of_the_chosen_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("MTL_LAB_HOME", str(tmp_path))
    st.cache_data.clear()
    try:
        at = AppTest.from_file(APP, default_timeout=60).switch_page("app_pages/train.py").run()
        assert not at.exception, at.exception
        charts = [c for c in at.get("plotly_chart") if "training targets: y1 vs y2" in c.proto.spec]
        assert len(charts) == 1
        at.selectbox(key=state.K_DATASET).set_value("toy_language").run()
        assert not at.exception, at.exception
        assert any("sentence" in df.value.columns for df in at.dataframe)
    finally:
        st.cache_data.clear()
        st.cache_resource.clear()
