"""The Train page's sharing diagram is drawn from the model's own blocks
(`describe_blocks`, through `experiment.parameter_budget`), so it cannot disagree with the
model: as many experts as the model has, the layers and depths a hierarchical model uses."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import pytest

from dashboard import charts
from mtl_core.config import ExperimentConfig
from mtl_core.experiment import parameter_budget
from mtl_core.models.experts import MMoEOptions
from mtl_core.tasks import load_dataset

OPTIONS = {"n_samples": 30, "input_dim": 8, "n_tasks": 3}


def budget(sharing: dict[str, Any], **fields: Any) -> dict[str, Any]:
    config = ExperimentConfig.parse({"dataset": {"name": "mmoe_synthetic", "options": OPTIONS},
                                     "model": {"hidden": [16, 12]}, "sharing": sharing, **fields})
    return parameter_budget(config, load_dataset("mmoe_synthetic", OPTIONS, seed=0))


def box_labels(fig: go.Figure) -> list[str]:
    return [a.text for a in fig.layout.annotations if a.text]


def diagram(sharing: dict[str, Any], **fields: Any) -> tuple[go.Figure, dict[str, Any]]:
    b = budget(sharing, **fields)
    kind = {"mmoe": "experts", "cgc": "experts", "ple": "experts", "hierarchical": "hierarchical",
            "mtan": "attention"}[sharing["name"]]
    return charts.architecture_diagram(kind, b["tasks"], blocks=b["blocks"]), b


@pytest.mark.parametrize("n_experts", [None, 2, 6])
def test_mmoe_diagram_draws_as_many_experts_as_the_model_has(n_experts):
    options = {} if n_experts is None else {"n_experts": n_experts}
    fig, b = diagram({"name": "mmoe", "options": options})
    expected = n_experts or MMoEOptions().n_experts  # the default (4), not a number of the chart's own
    model_experts = sum(1 for blk in b["blocks"] if blk["role"] == "expert")
    assert model_experts == expected
    experts = [t for t in box_labels(fig) if t.startswith("expert ")]
    assert experts == [f"expert {e}" for e in range(1, expected + 1)]
    assert sum(1 for s in fig.layout.shapes if s.type == "rect" and s.fillcolor == charts.SHARED_GREY) == expected


def test_many_experts_are_drawn_as_one_box_with_their_count():
    fig, _ = diagram({"name": "mmoe", "options": {"n_experts": 12}})
    labels = box_labels(fig)
    assert "12 experts" in labels and not any(t.startswith("expert ") for t in labels)


def test_cgc_and_ple_diagrams_show_shared_and_own_experts_of_the_model():
    fig, b = diagram({"name": "cgc", "options": {"n_shared_experts": 3, "n_task_experts": 1}})
    s = charts.diagram_structure(b["tasks"], b["blocks"])
    assert (s["shared_experts"], s["own_experts"], s["levels"]) == (3, {"y1": 1, "y2": 1, "y3": 1}, 1)
    labels = box_labels(fig)
    assert [t for t in labels if t.startswith("shared ")] == ["shared 1", "shared 2", "shared 3"]
    assert [t for t in labels if t.startswith("y1 ")] == ["y1 1"]
    fig, b = diagram({"name": "cgc", "options": {"n_shared_experts": 3, "n_task_experts": 2}})  # 9 > 8 boxes
    assert {"3 shared experts", "y1: 2 own", "y3: 2 own"} <= set(box_labels(fig))
    fig, b = diagram({"name": "ple", "options": {"levels": 3}})
    assert charts.diagram_structure(b["tasks"], b["blocks"])["levels"] == 3
    assert "last of 3 levels" in box_labels(fig)


def test_hierarchical_diagram_uses_the_models_layers_and_depths():
    fig, b = diagram({"name": "hierarchical", "options": {"depths": {"y1": 1, "y2": 1, "y3": 2}}})
    s = charts.diagram_structure(b["tasks"], b["blocks"])
    assert s["layers"] == 2 and s["depths"] == {"y1": 1, "y2": 1, "y3": 2}
    assert [t for t in box_labels(fig) if t.startswith("layer ")] == ["layer 1", "layer 2"]


def test_mtan_with_fixed_attention_draws_no_attention_module():
    fig, _ = diagram({"name": "mtan", "options": {"fixed_attention": True}})
    assert not any(t.startswith("attention") for t in box_labels(fig))
    fig, _ = diagram({"name": "mtan"})
    assert sum(t.startswith("attention") for t in box_labels(fig)) == 3


def test_without_a_model_the_experts_diagram_gives_no_number():
    labels = box_labels(charts.architecture_diagram("experts", ["a", "b"]))
    assert "shared<br>experts" in labels and not any(t.startswith("expert ") for t in labels)


def test_the_diagram_is_built_once_per_arguments_and_follows_a_change():
    # Drawn at every rerun of the Train page: kept per arguments, rebuilt when one changes.
    blocks = [{"role": "expert", "level": 1, "tasks": ["a", "b"]}] * 3
    first = charts.architecture_diagram("experts", ["a", "b"], blocks=blocks)
    assert charts.architecture_diagram("experts", ("a", "b"), blocks=[dict(b) for b in blocks]) is first
    other = charts.architecture_diagram("experts", ["a", "b"], blocks=blocks[:2])
    assert other is not first
    assert box_labels(first) != box_labels(other)  # 3 experts vs 2
