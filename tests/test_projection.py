"""What each task's head sees (issue 15, visible internals): the PCA projection recorded at
each evaluation, its chart, and the Interference page section that shows it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import streamlit as st
import torch
from sklearn.decomposition import PCA
from streamlit.testing.v1 import AppTest

from dashboard.charts.projection import projection_chart
from mtl_core import worker
from mtl_core.config import ExperimentConfig
from mtl_core.experiment import run_experiment
from mtl_core.models import build_model
from mtl_core.projection import POINTS, pca_2d, projection_snapshot
from mtl_core.sink import RecordingSink
from mtl_core.store import RunStore
from mtl_core.tasks import load_dataset

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")


def test_the_projection_is_pca_as_scikit_learn_computes_it():
    z = torch.randn(200, 6, generator=torch.Generator().manual_seed(0)) * torch.tensor([5.0, 2.0, 1, 1, 1, 1])
    xy, explained = pca_2d(z)
    reference = PCA(n_components=2).fit(z.numpy())
    expected = reference.transform(z.numpy())
    for k in range(2):  # each axis up to its sign
        assert np.allclose(np.abs(xy[:, k].numpy()), np.abs(expected[:, k]), atol=1e-4)
    assert np.allclose(explained, reference.explained_variance_ratio_, atol=1e-6)
    flat, share = pca_2d(torch.arange(10.0).unsqueeze(1).repeat(1, 3))  # points on a line
    assert share[0] == pytest.approx(1.0) and share[1] == pytest.approx(0.0) and flat.shape == (10, 2)


def test_with_hard_sharing_every_head_sees_the_same_points_coloured_by_its_own_labels():
    ds = load_dataset("penguins", {}).select_tasks(["species", "body_mass"])
    torch.manual_seed(0)
    model = build_model("hard", ds, ["species", "body_mass"], ExperimentConfig.parse({}).model)
    x, y = ds.val.x[:50], {t: ds.val.y[t][:50] for t in ("species", "body_mass")}
    snap = projection_snapshot(model, ds, x, y)
    assert set(snap) == {"species", "body_mass"}
    assert snap["species"]["x"] == snap["body_mass"]["x"] and len(snap["species"]["x"]) == 50
    assert snap["species"]["label"] == y["species"].tolist()
    assert snap["species"]["classes"] == list(ds.tasks["species"].class_names)
    assert snap["body_mass"]["classes"] is None  # a regression target: its value is the colour
    assert snap["body_mass"]["label"] == pytest.approx(y["body_mass"].tolist(), abs=1e-3)


def test_a_tagging_task_projects_its_labelled_tokens_and_a_sentence_task_its_sentences():
    ds = load_dataset("toy_language", {}).select_tasks(["pos", "topic"])
    torch.manual_seed(0)
    model = build_model("hard", ds, ["pos", "topic"], ExperimentConfig.parse({}).model)
    x, y = ds.val.x[:40], {t: ds.val.y[t][:40] for t in ("pos", "topic")}
    snap = projection_snapshot(model, ds, x, y)
    labelled = int((y["pos"] != -100).sum())
    assert len(snap["pos"]["x"]) == min(labelled, POINTS) and len(snap["topic"]["x"]) == 40


def test_each_evaluation_of_a_run_records_the_projection_and_the_chart_draws_it():
    config = ExperimentConfig.parse({"dataset": {"name": "penguins"}, "tasks": ["species", "sex"],
                                     "steps": 40, "eval_every": 20, "baselines": False})
    sink = RecordingSink()
    run_experiment(config, sink=sink)
    snapshots = sink.interference
    assert len(snapshots) == 2 and all(set(s["projection"]) == {"species", "sex"} for s in snapshots)
    fig = projection_chart(snapshots[-1]["projection"], ["species", "sex"], {"species": "#000", "sex": "#111"}, step=40)
    names = {t.name for t in fig.data}
    assert {"Adelie", "Chinstrap", "Gentoo"} <= names and "(step 40)" in fig.layout.title.text


def test_names_reach_the_projection_chart_escaped():
    hostile = "<img src=x onerror=alert(1)>"
    projection = {hostile: {"x": [0, 1, 2], "y": [0, 1, 0], "label": [0, 1, 0], "classes": [hostile, "b"],
                            "explained": [0.6, 0.3]}}
    text = projection_chart(projection, [hostile], {}).to_json()
    assert "<img" not in text and "&lt;img" in text


def test_the_interference_page_shows_what_each_head_sees(tmp_path, monkeypatch):
    monkeypatch.setenv("MTL_LAB_HOME", str(tmp_path))
    st.cache_resource.clear()
    st.cache_data.clear()
    config = ExperimentConfig.parse({"dataset": {"name": "penguins"}, "tasks": ["species", "sex"],
                                     "steps": 40, "eval_every": 20, "baselines": False})
    with RunStore(tmp_path / "mtl_lab.db") as store:
        run_id = store.create_run(config.model_dump(mode="json"))
        assert worker.execute(store, run_id) == "finished"
    try:
        at = AppTest.from_file(APP, default_timeout=60)
        at.query_params["run"] = run_id
        at.switch_page("app_pages/interference.py").run()
        assert not at.exception, at.exception
        assert "What each task's head sees" in [s.value for s in at.subheader]
        assert any("What each task's head sees" in c.proto.spec for c in at.get("plotly_chart"))
    finally:
        st.cache_resource.clear()
        st.cache_data.clear()
