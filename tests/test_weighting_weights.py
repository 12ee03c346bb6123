"""What the manual weights w_t do under each strategy (`uses_weights`), and what the Train
page's weight sliders say about it (issue 13, item 8).

"all": the update of the shared parameters and each task's head both depend on w_t;
"heads": only the heads do (the method sets the shared update itself); "none": nothing
does. The flags are checked against the strategies' real backward passes, not restated.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from mtl_core.models import build_model
from mtl_core.models.heads import task_loss
from mtl_core.spec import ModelSpec
from mtl_core.tasks import load_dataset
from mtl_core.weighting import WEIGHTING, build_weighting, weights_note

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = {
    "manual": "all", "equal": "none",
    "uncertainty": "none", "dwa": "none", "gls": "none", "rlw": "none", "famo": "none", "stch": "none",
    "gradnorm": "none", "imtl": "heads", "aligned_mtl": "all", "db_mtl": "none",
    "pcgrad": "heads", "gradvac": "heads", "graddrop": "heads",
    "mgda": "none", "cagrad": "heads", "nash_mtl": "none", "upgrad": "all",
}


def test_every_strategy_states_how_far_the_manual_weights_reach():
    assert {e.name: e.extra["uses_weights"] for e in WEIGHTING.entries()} == EXPECTED
    assert all("uses_weights" in e.describe() for e in WEIGHTING.entries())  # listed by the CLI and dashboard


def _gradients(name: str, weights: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """(gradient of the shared encoder, gradient of the heads), flattened, after one step of
    strategy `name` with manual weights `weights` on a fixed model and batch."""
    ds = load_dataset("mmoe_synthetic", {"n_samples": 200, "input_dim": 8, "n_tasks": 3}, seed=0)
    torch.manual_seed(0)  # the same model, and the same random draws of the strategy
    model = build_model("hard", ds, ds.task_names, ModelSpec(hidden=[16, 8], head_hidden=4))
    strategy = build_weighting(name, ds.task_names, {}, base_weights=torch.tensor(weights))
    out = model(ds.train.x[:32])
    losses = torch.stack([task_loss("regression", out[t], ds.train.y[t][:32]) for t in ds.task_names])
    strategy.backward(losses, step=1, model=model)

    def flat(ps):
        return torch.cat([p.grad.reshape(-1) for p in ps])

    return flat(model.encoder.parameters()), flat(model.heads.parameters())


@pytest.mark.parametrize("name", list(EXPECTED))
def test_the_flag_says_which_gradients_the_weights_change(name):
    shared_1, heads_1 = _gradients(name, [1.0, 1.0, 1.0])
    shared_w, heads_w = _gradients(name, [3.0, 1.0, 0.5])
    shared_moves = not torch.allclose(shared_1, shared_w, rtol=1e-5, atol=1e-7)
    heads_move = not torch.allclose(heads_1, heads_w, rtol=1e-5, atol=1e-7)
    assert (shared_moves, heads_move) == {"all": (True, True), "heads": (False, True),
                                          "none": (False, False)}[EXPECTED[name]]


def test_the_note_beside_the_sliders_names_the_strategy_and_what_it_does():
    assert weights_note("manual") == ""
    assert weights_note("uncertainty") == "uncertainty sets every task weight itself, so the manual weights " \
                                          "w_t are not used."
    assert "pcgrad uses the weights w_t only for each task's own head" in weights_note("pcgrad")
    assert "upgrad uses the weights w_t as its preference between the tasks" in weights_note("upgrad")


# ---- the Train page ---------------------------------------------------------------------------
@pytest.fixture
def train_page(tmp_path, monkeypatch):
    """The Train page with a query, in its own lab folder (nothing is trained)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    sys.path.insert(0, str(ROOT))
    monkeypatch.setenv("MTL_LAB_HOME", str(tmp_path))
    st.cache_resource.clear()
    st.cache_data.clear()

    def run(query: dict[str, str]):
        at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=60)
        at.query_params.update(query)
        return at.switch_page("app_pages/train.py").run()  # a bare visit lands on Learn

    yield run
    st.cache_resource.clear()


def _sliders(at, tasks=("y1", "y2")):
    from dashboard import state

    return [at.slider(key=state.k_weight(t)) for t in tasks]


def _captions(at) -> str:
    return "\n".join(str(c.value) for c in at.caption)


def test_sliders_are_disabled_and_explained_for_a_strategy_that_ignores_them(train_page):
    at = train_page({"weighting.name": "uncertainty", "weights.y2": "2"})
    assert not at.exception
    assert all(s.disabled for s in _sliders(at))
    assert "uncertainty sets every task weight itself, so the manual weights w_t are not used. " \
           "Choose manual under 3 · Loss weighting" in _captions(at)
    assert not any("normalised:" in str(m.value) for m in at.markdown)
    # What the page would start drops the ignored weight instead of failing the config check.
    from dashboard import state
    from mtl_core.config import ExperimentConfig

    config = ExperimentConfig.parse(state.params_to_raw(at.query_params))
    assert config.weighting.name == "uncertainty" and config.weights == {}


def test_sliders_are_enabled_for_manual_and_say_nothing_more(train_page):
    at = train_page({"weights.y2": "2"})
    assert not at.exception
    sliders = _sliders(at)
    assert not any(s.disabled for s in sliders) and sliders[1].value == 2.0
    assert "weights w_t" not in _captions(at)
    assert any("normalised:" in str(m.value) for m in at.markdown)


def test_sliders_stay_enabled_with_a_note_for_a_method_that_uses_them_on_the_heads(train_page):
    at = train_page({"weighting.name": "pcgrad"})
    assert not any(s.disabled for s in _sliders(at))
    assert "pcgrad uses the weights w_t only for each task's own head" in _captions(at)


def test_switching_to_a_strategy_that_ignores_the_sliders_and_back_keeps_their_values(train_page):
    from dashboard import state
    from mtl_core.config import ExperimentConfig

    at = train_page({})
    at.slider(key=state.k_weight("y2")).set_value(2.5).run()
    at.selectbox(key=state.K_WEIGHTING).set_value("dwa").run()  # the sliders are drawn before the select box
    assert not at.exception and not at.error
    assert all(s.disabled for s in _sliders(at))
    assert ExperimentConfig.parse(state.params_to_raw(at.query_params)).weights == {}
    at.selectbox(key=state.K_WEIGHTING).set_value("manual").run()
    assert not any(s.disabled for s in _sliders(at))
    assert ExperimentConfig.parse(state.params_to_raw(at.query_params)).weights == {"y2": 2.5}
