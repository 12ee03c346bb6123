"""Loss-based weighting strategies, as their papers define them.

Uncertainty weighting recovers the tasks' noise levels (Kendall et al., 2018); DWA's
weights follow its softmax of loss ratios; GLS is the geometric mean; RLW draws seeded
simplex weights; FAMO raises the weight of the task that improves least; STCH is a
smooth maximum. Every strategy reports as its weights the true ∂L/∂L_t and trains with
every sharing mode and with one task per step.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from mtl_core.config import ExperimentConfig
from mtl_core.engine import train
from mtl_core.sink import RecordingSink
from mtl_core.tasks import MTLDataset, Split, TaskSpec, load_dataset
from mtl_core.weighting import WEIGHTING, build_weighting

LOSS_BASED = [e.name for e in WEIGHTING.entries() if e.extra["requires"] == "losses"]
SMALL = {"name": "mmoe_synthetic", "options": {"n_samples": 300, "input_dim": 8, "n_tasks": 3}}


def strategy(name: str, T: int = 2, **options: Any):
    return build_weighting(name, [f"t{i}" for i in range(T)], options, base_weights=torch.ones(T))


# ---- uncertainty -----------------------------------------------------------------------------
def _noisy_linear(seed: int, sigmas=(0.1, 1.0), n: int = 3000, d: int = 4) -> MTLDataset:
    """Two regression tasks y_t = x·w_t + σ_t ε on the same inputs."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    w = torch.randn(d, 2, generator=g) / math.sqrt(d)
    y = x @ w + torch.randn(n, 2, generator=g) * torch.tensor(sigmas)

    def split(sl: slice) -> Split:
        return Split(x[sl], {"quiet": y[sl, 0].contiguous(), "noisy": y[sl, 1].contiguous()})

    return MTLDataset(name="noisy_linear", input_kind="vector",
                      tasks={t: TaskSpec(t, "regression") for t in ("quiet", "noisy")},
                      train=split(slice(0, n - 400)), val=split(slice(n - 400, n - 200)),
                      test=split(slice(n - 200, n)), input_dim=d)


@pytest.mark.parametrize("seed", [0, 1])
def test_uncertainty_weighting_learns_the_tasks_noise_variances(seed):
    config = ExperimentConfig.parse({
        "model": {"hidden": [32]}, "steps": 1200, "batch_size": 128, "eval_every": 1200, "log_every": 50,
        "optimizer": {"lr": 0.01}, "weighting": {"name": "uncertainty"}, "interference": False,
        "baselines": False, "device": "cpu", "seed": seed,
    })
    sink = RecordingSink()
    train(config, _noisy_linear(seed), sink)
    w = sink.train[-1]["weights"]  # exp(−s_t), s_t = log σ_t²
    learned = math.log(w["quiet"] / w["noisy"])  # s_noisy − s_quiet
    assert learned == pytest.approx(math.log(1.0**2 / 0.1**2), abs=0.4)


def test_uncertainty_objective_is_kendalls():
    s = strategy("uncertainty", init_log_var=0.5)
    losses = torch.tensor([2.0, 3.0])
    total, w = s.objective(losses, 1)
    assert float(total.detach()) == pytest.approx(float((math.exp(-0.5) * losses).sum() + 2 * 0.5))
    assert torch.allclose(w, torch.full((2,), math.exp(-0.5)))
    assert [n for n, _ in s.named_parameters()] == ["log_vars"]  # learned by the run's optimiser


# ---- DWA -------------------------------------------------------------------------------------
def test_dwa_weights_are_the_softmax_of_loss_ratios_after_two_periods():
    s = strategy("dwa", temperature=2.0, window=2)
    history = [torch.tensor(v) for v in ([4.0, 2.0], [4.0, 2.0], [2.0, 1.8], [2.0, 1.8], [1.0, 1.7])]
    weights = [s.weights(L, step) for step, L in enumerate(history, start=1)]
    for w in weights[:4]:  # periods 1 and 2: equal weights
        assert torch.equal(w, torch.ones(2))
    r = torch.tensor([2.0 / 4.0, 1.8 / 2.0])  # L(k−1) / L(k−2), period means
    assert torch.allclose(weights[4], 2 * torch.softmax(r / 2.0, 0))
    assert float(weights[4][1]) > float(weights[4][0])  # the slower task weighs more


# ---- GLS -------------------------------------------------------------------------------------
def test_gls_is_the_geometric_mean_of_the_losses():
    losses = torch.tensor([0.5, 2.0, 8.0])
    total, _ = strategy("gls", 3).objective(losses, 1)
    assert float(total) == pytest.approx(2.0)  # (0.5·2·8)^(1/3)


# ---- RLW -------------------------------------------------------------------------------------
def test_rlw_draws_fresh_simplex_weights_reproducibly():
    a, b = strategy("rlw", 3, seed=5), strategy("rlw", 3, seed=5)
    losses = torch.ones(3)
    wa = [a.weights(losses, k) for k in range(1, 5)]
    wb = [b.weights(losses, k) for k in range(1, 5)]
    assert all(torch.equal(x, y) for x, y in zip(wa, wb))
    assert not torch.equal(wa[0], wa[1])
    assert all(float(w.sum()) == pytest.approx(1.0) and bool((w > 0).all()) for w in wa)


def test_rlw_seed_follows_the_run_seed_by_default():
    torch.manual_seed(0)
    first = strategy("rlw", 3).weights(torch.ones(3), 1)
    torch.manual_seed(0)
    again = strategy("rlw", 3).weights(torch.ones(3), 1)
    torch.manual_seed(1)
    other = strategy("rlw", 3).weights(torch.ones(3), 1)
    assert torch.equal(first, again) and not torch.equal(first, other)


# ---- FAMO ------------------------------------------------------------------------------------
def test_famo_raises_the_weight_of_the_task_that_improves_least():
    s = strategy("famo", lr=0.1)
    s.objective(torch.tensor([1.0, 1.0]), 1)
    s.objective(torch.tensor([0.5, 0.99]), 2)  # task 0's log loss fell by log 2, task 1's barely
    z = torch.softmax(s.logits.detach(), 0)
    assert float(z[1]) > float(z[0])


# ---- STCH ------------------------------------------------------------------------------------
def test_stch_is_a_smooth_maximum_of_the_normalised_log_losses():
    s = strategy("stch", 3, mu=0.05, warmup_steps=1)
    s.objective(torch.tensor([1.0, 2.0, 4.0]), 1)  # warm-up: the nadir is these losses
    losses = torch.tensor([2.0, 2.0, 4.0])  # normalised log losses: log 2, 0, 0
    total, w = s.objective(losses, 2)
    f_max = math.log(2.0)
    assert 3 * f_max <= float(total) <= 3 * (f_max + 0.05 * math.log(3)) + 1e-6
    assert float(w[0] * losses[0]) == pytest.approx(3.0, rel=1e-3)  # nearly all the weight on the max


# ---- all loss-based strategies ---------------------------------------------------------------
@pytest.mark.parametrize("name", LOSS_BASED)
def test_reported_weights_are_the_gradient_of_the_objective(name):
    s = strategy(name, 3, **({"window": 1} if name == "dwa" else {}) | ({"warmup_steps": 1} if name == "stch" else {}))
    for step, values in enumerate(([1.0, 2.0, 3.0], [0.8, 2.1, 2.5], [0.7, 1.5, 2.6], [0.6, 1.4, 2.0]), start=1):
        losses = torch.tensor(values, requires_grad=True)
        total, w = s.objective(losses, step)
        (grad,) = torch.autograd.grad(total, losses)
        assert torch.allclose(w, grad, rtol=1e-5), (name, step)


def _config(weighting: str, sharing: str, **fields: Any) -> ExperimentConfig:
    return ExperimentConfig.parse({
        "dataset": SMALL, "model": {"hidden": [16]}, "steps": 5, "batch_size": 32, "eval_every": 5,
        "log_every": 5, "optimizer": {"lr": 0.01}, "sharing": {"name": sharing},
        "weighting": {"name": weighting}, "interference": False, "baselines": False, "device": "cpu", **fields,
    })


@pytest.fixture(scope="module")
def small_dataset() -> MTLDataset:
    return load_dataset("mmoe_synthetic", SMALL["options"], seed=0)


@pytest.mark.parametrize("name", LOSS_BASED)
def test_every_loss_based_strategy_trains_with_every_sharing_mode(small_dataset, name):
    for sharing in ("hard", "soft", "single_task"):
        sink = RecordingSink()
        train(_config(name, sharing), small_dataset, sink)
        row = sink.train[-1]
        assert all(math.isfinite(v) for v in row["losses"].values()), (name, sharing)
        assert all(math.isfinite(v) for v in row["weights"].values()), (name, sharing)


@pytest.mark.parametrize("name", LOSS_BASED)
def test_loss_based_strategies_run_with_one_task_per_step(small_dataset, name):
    sink = RecordingSink()
    train(_config(name, "hard", sampling={"mode": "random"}, steps=12, log_every=4, eval_every=12),
          small_dataset, sink)
    assert all(math.isfinite(v) for row in sink.train for v in row["weights"].values())
    assert WEIGHTING.get(name).obj.supports_task_sampling


def test_uncertainty_leaves_an_absent_tasks_variance_alone():
    s = strategy("uncertainty")
    total, _ = s.objective(torch.tensor([2.0, 0.0]), 1)  # task 1 not drawn this step
    total.backward()
    assert float(s.log_vars.grad[1]) == 0.0
