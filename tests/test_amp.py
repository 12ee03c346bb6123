"""Mixed precision (`amp`) and `torch.compile` (`compile`) in the training loop (issue 11).

On the CPU: auto = off, bf16 trains close to float32, fp16 is refused; gradient methods
keep float32 per-task gradients under autocast; loss scaling (fp16's GradScaler) leaves
exactly the scaled gradients a GradScaler expects; a compiled forward gives the eager
metrics, and a compiler failure falls back to eager with a warning. The CUDA cases run
where a GPU is present.
"""

from __future__ import annotations

import inspect

import logging
import math
from functools import lru_cache
from typing import Any

import pytest
import torch

from mtl_core.config import ExperimentConfig, ModelSpec
from mtl_core.engine import _grad_scaler, evaluate, resolve_amp, train
from mtl_core.errors import ConfigError
from mtl_core.models import build_model
from mtl_core.models.heads import task_loss
from mtl_core.sink import RecordingSink
from mtl_core.tasks import MTLDataset, load_dataset
from mtl_core.weighting import WEIGHTING, build_weighting

SMALL = {"name": "mmoe_synthetic", "options": {"n_samples": 400, "input_dim": 8}}
CPU = torch.device("cpu")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def make_config(**fields: Any) -> ExperimentConfig:
    base = {"dataset": SMALL, "model": {"hidden": [16]}, "steps": 40, "batch_size": 32,
            "eval_every": 20, "optimizer": {"lr": 0.01}, "device": "cpu"}
    return ExperimentConfig.parse({**base, **fields})


@lru_cache(maxsize=None)
def small_dataset() -> MTLDataset:
    return load_dataset("mmoe_synthetic", SMALL["options"], seed=0)


class StartRecorder(RecordingSink):
    def __init__(self) -> None:
        super().__init__()
        self.starts: list[dict[str, Any]] = []

    def on_start(self, phase, info):
        self.starts.append(dict(info))


def mse(result) -> dict[str, float]:
    return {t: m["mse"] for t, m in result.test.items()}


# ---- amp: which dtype ---------------------------------------------------------------------------
def test_amp_auto_is_off_on_the_cpu_and_bf16_where_asked():
    assert resolve_amp("auto", CPU) is None
    assert resolve_amp("off", CPU) is None
    assert resolve_amp("bf16", CPU) is torch.bfloat16


def test_amp_auto_on_the_cpu_trains_exactly_as_amp_off():
    auto, off = StartRecorder(), StartRecorder()
    a = train(make_config(amp="auto"), small_dataset(), auto)
    b = train(make_config(amp="off"), small_dataset(), off)
    assert a.test == b.test and auto.train == off.train
    assert auto.starts[0]["amp"] == "off" and auto.starts[0]["compile"] == "off"


def test_fp16_on_the_cpu_is_refused_naming_the_field_and_the_fix():
    with pytest.raises(ConfigError, match=r"amp: 'fp16' needs a CUDA GPU.*amp: bf16"):
        make_config(amp="fp16")
    with pytest.raises(ConfigError, match=r"amp: 'fp16' needs a CUDA GPU.*use amp: bf16"):
        resolve_amp("fp16", CPU)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_fp16_with_device_auto_on_a_machine_without_gpu_fails_before_training():
    sink = RecordingSink()
    with pytest.raises(ConfigError, match=r"amp: 'fp16' needs a CUDA GPU"):
        train(make_config(amp="fp16", device="auto"), small_dataset(), sink)
    assert sink.train == []


def test_fp16_is_refused_for_a_strategy_whose_backward_cannot_scale_gradients():
    # Every registered strategy takes `grad_scale` (GradNorm's own layer-mode pass included)...
    for name in WEIGHTING.names():
        s = build_weighting(name, ["a", "b"], {}, base_weights=torch.ones(2))
        assert "grad_scale" in inspect.signature(s.backward).parameters, name
    # ...and one that does not (a strategy written before fp16) is refused with the fix.
    s = build_weighting("gradnorm", ["a", "b"], {}, base_weights=torch.ones(2))
    s.backward = lambda losses, *, step, model, extra_loss=None: None  # noqa: E731
    with pytest.raises(ConfigError, match=r"amp: 'fp16' .*'gradnorm' does not support.*amp: bf16"):
        _grad_scaler(torch.float16, torch.device("cuda"), s)
    assert _grad_scaler(torch.bfloat16, CPU, s) is None and _grad_scaler(None, CPU, s) is None


# ---- amp: training and evaluation ---------------------------------------------------------------
def test_bf16_on_the_cpu_trains_with_finite_metrics_close_to_float32():
    sink = StartRecorder()
    bf16 = train(make_config(amp="bf16"), small_dataset(), sink)
    fp32 = train(make_config(amp="off"), small_dataset())
    assert sink.starts[0]["amp"] == "bfloat16"
    for task in ("y1", "y2"):
        m16, m32 = bf16.test[task], fp32.test[task]
        assert all(isinstance(v, float) and math.isfinite(v) for v in m16.values())
        assert m16["mse"] == pytest.approx(m32["mse"], rel=0.03)  # measured: 0.1 %
        assert m16["mse"] != m32["mse"]  # it did run in bfloat16
    assert all(math.isfinite(v) for row in sink.train for v in row["losses"].values())


def test_evaluation_under_autocast_reports_float32_metrics_close_to_full_precision():
    ds = small_dataset()
    torch.manual_seed(0)
    model = build_model("hard", ds, ds.task_names, ModelSpec(hidden=[16]))
    full = evaluate(model, ds.val, ds)
    half = evaluate(model, ds.val, ds, amp=torch.bfloat16)
    for task in ds.task_names:
        for metric in ("mse", "loss"):
            assert isinstance(half[task][metric], float)
            assert half[task][metric] == pytest.approx(full[task][metric], rel=0.02)


@pytest.mark.parametrize(("name", "options"), [("pcgrad", {}), ("mgda", {}), ("mgda", {"mode": "rep"}),
                                               ("upgrad", {})])
def test_gradient_methods_train_under_bf16_with_float32_task_gradients(name, options):
    sink = RecordingSink()
    result = train(make_config(amp="bf16", weighting={"name": name, "options": options}), small_dataset(), sink,
                   keep_model=True)
    assert all(math.isfinite(v) for m in result.test.values() for v in m.values())
    fp32 = train(make_config(amp="off", weighting={"name": name, "options": options}), small_dataset())
    for task in ("y1", "y2"):
        assert result.test[task]["mse"] == pytest.approx(fp32.test[task]["mse"], rel=0.05)
    assert all(math.isfinite(w) for row in sink.train for w in row["weights"].values())


def test_a_gradient_methods_G_is_float32_even_when_the_representation_is_bfloat16():
    ds = small_dataset()
    torch.manual_seed(0)
    model = build_model("hard", ds, ds.task_names, ModelSpec(hidden=[16]))
    s = build_weighting("mgda", ds.task_names, {"mode": "rep"}, base_weights=torch.ones(2))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(ds.train.x[:32])
        losses = torch.stack([task_loss("regression", out[t], ds.train.y[t][:32]).float() for t in ds.task_names])
    assert model.shared_rep.dtype == torch.bfloat16
    w = s.backward(losses, step=1, model=model)
    assert s.last_grads.dtype == torch.float32 and w.dtype == torch.float32
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters())


# ---- fp16 loss scaling: what a GradScaler expects -----------------------------------------------
def _grads_after(name: str, options: dict, grad_scale: torch.Tensor | None):
    ds = small_dataset()
    torch.manual_seed(0)
    model = build_model("hard", ds, ds.task_names, ModelSpec(hidden=[16, 8], head_hidden=4))
    s = build_weighting(name, ds.task_names, options, base_weights=torch.tensor([1.0, 0.5]))
    out = model(ds.train.x[:32])
    losses = torch.stack([task_loss("regression", out[t], ds.train.y[t][:32]) for t in ds.task_names])
    w = s.backward(losses, step=1, model=model, grad_scale=grad_scale)
    return w, [p.grad.clone() for p in model.parameters()], getattr(s, "last_grads", None)


@pytest.mark.parametrize(("name", "options"), [("manual", {}), ("uncertainty", {}), ("pcgrad", {}),
                                               ("mgda", {}), ("mgda", {"mode": "rep"}), ("cagrad", {})])
def test_grad_scale_leaves_scaled_gradients_and_the_same_weights(name, options):
    S = torch.tensor(1024.0)
    w1, g1, G1 = _grads_after(name, options, None)
    wS, gS, GS = _grads_after(name, options, S)
    torch.testing.assert_close(wS, w1, rtol=1e-5, atol=1e-7)
    for a, b in zip(gS, g1):
        torch.testing.assert_close(a, S * b, rtol=1e-4, atol=1e-5)
    if G1 is not None:  # the method saw the true gradients, not the scaled ones
        torch.testing.assert_close(GS, G1, rtol=1e-5, atol=1e-7)


# ---- torch.compile ------------------------------------------------------------------------------
def test_compile_with_representation_mode_is_refused_naming_the_fix():
    with pytest.raises(ConfigError, match=r"compile: weighting 'mgda' in mode 'rep'.*mode to 'params' or compile"):
        make_config(compile=True, weighting={"name": "mgda", "options": {"mode": "rep"}})
    assert make_config(compile=True, weighting={"name": "mgda"}).compile is True


def test_a_failing_compiler_falls_back_to_eager_with_a_warning(monkeypatch, caplog):
    def broken(fn, *args, **kwargs):
        def call(*a, **k):
            raise RuntimeError("no C++ compiler found\nmore detail")
        return call

    monkeypatch.setattr(torch, "compile", broken)
    sink = StartRecorder()
    with caplog.at_level(logging.WARNING, logger="mtl_core.engine"):
        result = train(make_config(compile=True), small_dataset(), sink, keep_model=True)
    eager = train(make_config(), small_dataset())
    assert result.test == eager.test  # trained eagerly, and the failed try changed nothing
    assert sink.starts[0]["compile"] == "failed: RuntimeError: no C++ compiler found"
    assert "torch.compile failed (RuntimeError: no C++ compiler found); training without it" in caplog.text
    assert "forward" not in vars(result.model)  # the instance's compiled forward is gone


@pytest.mark.slow
def test_a_compiled_model_gives_the_metrics_of_the_eager_one():
    sink = StartRecorder()
    compiled = train(make_config(compile=True, weighting={"name": "pcgrad"}), small_dataset(), sink,
                     keep_model=True)
    if sink.starts[0]["compile"] != "on":
        pytest.skip(f"torch.compile is not usable here: {sink.starts[0]['compile']}")
    eager = train(make_config(weighting={"name": "pcgrad"}), small_dataset())
    for task in ("y1", "y2"):
        for metric, value in eager.test[task].items():
            assert compiled.test[task][metric] == pytest.approx(value, rel=1e-3, abs=1e-5)
    assert type(compiled.model).__name__ == "HardSharing"  # still the model, not a wrapper
    assert set(compiled.model.state_dict()) == set(build_model(
        "hard", small_dataset(), ["y1", "y2"], ModelSpec(hidden=[16])).state_dict())


# ---- on a GPU -----------------------------------------------------------------------------------
@needs_cuda
def test_amp_auto_on_cuda_is_bf16_where_supported():
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    assert resolve_amp("auto", torch.device("cuda")) is expected


@needs_cuda
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
@pytest.mark.parametrize("weighting", ["equal", "pcgrad"])
def test_mixed_precision_on_cuda_trains_close_to_float32(amp, weighting):
    if amp == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16")
    mixed = train(make_config(device="cuda", amp=amp, weighting={"name": weighting}), small_dataset())
    full = train(make_config(device="cuda", amp="off", weighting={"name": weighting}), small_dataset())
    for task in ("y1", "y2"):
        assert math.isfinite(mixed.test[task]["mse"])
        assert mixed.test[task]["mse"] == pytest.approx(full.test[task]["mse"], rel=0.05)
