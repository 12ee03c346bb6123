"""Gradient-based weighting strategies, as their papers define them.

Closed-form cases (PCGrad's projected pair, MGDA's two-gradient min-norm point, CAGrad
at c = 0), the properties each paper states (IMTL-G's equal projections, UPGrad's
non-conflicting update, Nash-MTL's bargaining condition, GradNorm's equalised training
rates), cross-checks against TorchJD's aggregators on the same G, and the mechanics
every gradient method shares (G on the shared parameters or the representation, the
update written back, refusal of sharing modes without shared parameters).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from mtl_core.config import ExperimentConfig
from mtl_core.engine import train
from mtl_core.errors import ConfigError
from mtl_core.interference import task_gradients
from mtl_core.models import build_model
from mtl_core.models.heads import task_loss
from mtl_core.sink import RecordingSink
from mtl_core.tasks import MTLDataset, Split, TaskSpec, load_dataset
from mtl_core.weighting import WEIGHTING, GradientWeighting, Update, build_weighting
from mtl_core.weighting import solvers
from mtl_core.weighting.jacobian import GradOptions

GRADIENT_METHODS = [e.name for e in WEIGHTING.entries() if e.extra["requires"] == "grads"]
SMALL = {"name": "mmoe_synthetic", "options": {"n_samples": 300, "input_dim": 8, "n_tasks": 3}}


def strategy(name: str, T: int, tasks: list[str] | None = None, **options: Any) -> GradientWeighting:
    s = build_weighting(name, tasks or [f"t{i}" for i in range(T)], options, base_weights=torch.ones(T))
    assert isinstance(s, GradientWeighting)
    return s


def direction(s: GradientWeighting, G: torch.Tensor, losses: torch.Tensor | None = None, step: int = 1):
    """(update, d) of strategy `s` for the gradient matrix G."""
    u = s.aggregate(G, torch.ones(G.shape[0]) if losses is None else losses, step)
    return u, (u.direction if u.direction is not None else u.weights.to(G.dtype) @ G)


def random_G(T: int, P: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(T, P, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ---- PCGrad ----------------------------------------------------------------------------------
def test_pcgrad_projects_conflicting_pair_onto_each_others_normal_plane():
    g1, g2 = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])  # g1·g2 = −1 < 0
    G = torch.stack([g1, g2])
    s = strategy("pcgrad", 2)
    xp, M = s.gram(G)
    projected = torch.as_tensor(s.projection_coefficients(xp, M)).float() @ G
    # Yu et al. (2020): g_i ← g_i − (g_i·g_j / ‖g_j‖²) g_j
    expected = torch.stack([g1 - (g1 @ g2) / (g2 @ g2) * g2, g2 - (g2 @ g1) / (g1 @ g1) * g1])
    assert torch.allclose(projected, expected, atol=1e-6)
    assert torch.allclose(projected, torch.tensor([[0.5, 0.5], [0.0, 1.0]]), atol=1e-6)
    assert abs(float(projected[0] @ g2)) < 1e-6 and abs(float(projected[1] @ g1)) < 1e-6
    _, d = direction(s, G)
    assert torch.allclose(d, expected.sum(0), atol=1e-6)


def test_pcgrad_leaves_non_conflicting_gradients_unchanged():
    G = torch.tensor([[1.0, 0.0, 2.0], [1.0, 1.0, 0.0], [0.0, 3.0, 1.0]])  # all pairwise dots ≥ 0
    update, d = direction(strategy("pcgrad", 3), G)
    assert torch.allclose(update.weights, torch.ones(3))
    assert torch.allclose(d, G.sum(0))


def test_pcgrad_matches_torchjd_on_two_tasks():
    from torchjd.aggregation import PCGrad

    for seed in range(5):
        G = random_G(2, 7, seed)
        _, d = direction(strategy("pcgrad", 2), G)
        assert torch.allclose(d, PCGrad()(G), atol=1e-9)


def test_pcgrad_task_order_is_reproducible_from_its_seed():
    G = random_G(4, 6, 0)
    a = [direction(strategy("pcgrad", 4, seed=7), G)[1] for _ in range(2)]
    assert torch.equal(a[0], a[1])


# ---- MGDA ------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
def test_mgda_two_gradients_give_the_closed_form_min_norm_point(seed):
    g1, g2 = random_G(2, 5, seed)
    if seed % 3 == 0:
        g1 = 0.1 * g2 + 0.01 * g1  # g1 nearly inside: the clip at α = 1 is active
    alpha = float(((g2 - g1) @ g2) / ((g1 - g2) @ (g1 - g2)))
    alpha = min(max(alpha, 0.0), 1.0)
    update, d = direction(strategy("mgda", 2), torch.stack([g1, g2]))
    assert torch.allclose(update.weights, torch.tensor([alpha, 1 - alpha], dtype=torch.float64), atol=1e-7)
    assert torch.allclose(d, alpha * g1 + (1 - alpha) * g2, atol=1e-7)


def test_mgda_is_the_min_norm_point_and_matches_torchjd():
    from torchjd.aggregation import MGDA

    for T, seed in [(3, 0), (4, 1), (5, 2)]:
        G = random_G(T, 6, seed)
        update, d = direction(strategy("mgda", T), G)
        w = update.weights
        assert torch.all(w >= 0) and abs(float(w.sum()) - 1) < 1e-9
        reference = MGDA(epsilon=1e-9, max_iters=2000)(G)  # Frank-Wolfe, run long
        assert float(d.norm()) <= float(reference.norm()) + 1e-9  # exact: never above Frank-Wolfe
        assert torch.allclose(d, reference, atol=2e-2)
        # A min-norm point d of the hull satisfies g_t·d ≥ ‖d‖² for every task (optimality).
        assert torch.all(G @ d >= d @ d - 1e-7)


def test_frank_wolfe_fallback_agrees_with_the_exact_solver():
    G = random_G(4, 5, 3)
    xp = solvers.Ops(torch.device("cpu"))
    M = (G @ G.T).numpy()
    exact = solvers.min_norm_simplex(xp, M)
    fw = solvers.frank_wolfe_min_norm(xp, M, iters=5000)
    assert fw @ M @ fw == pytest.approx(exact @ M @ exact, rel=1e-3, abs=1e-9)


# ---- IMTL-G ----------------------------------------------------------------------------------
def test_imtl_update_has_equal_projections_on_the_unit_task_gradients():
    from torchjd.aggregation import IMTLG

    for T, seed in [(2, 0), (3, 1), (4, 2)]:
        G = random_G(T, 8, seed)
        update, d = direction(strategy("imtl", T), G)
        projections = (G / G.norm(dim=1, keepdim=True)) @ d
        assert torch.allclose(projections, projections.mean().expand(T), rtol=1e-6)
        assert float(update.weights.sum()) == pytest.approx(1.0)
        assert torch.allclose(d, IMTLG()(G), atol=1e-9)


# ---- UPGrad ----------------------------------------------------------------------------------
def test_upgrad_update_conflicts_with_no_task_and_matches_torchjd():
    from torchjd._linalg import QuadprogProjector
    from torchjd.aggregation import UPGrad

    for T, seed in [(2, 0), (3, 1), (4, 2), (5, 3)]:
        G = random_G(T, 8, seed)
        G[1] = -0.8 * G[0] + 0.3 * G[1]  # a strong conflict
        _, d = direction(strategy("upgrad", T), G)
        assert torch.all(G @ d >= -1e-9), "UPGrad's update must not decrease any task to first order"
        reference = UPGrad(projector=QuadprogProjector(norm_eps=0.0, reg_eps=1e-12))(G)
        assert torch.allclose(d, reference, atol=1e-7)


def test_dual_cone_projection_lands_in_the_cone_and_keeps_unconflicted_gradients():
    xp = solvers.Ops(torch.device("cpu"))
    G = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)  # orthogonal: already in the cone
    W = solvers.dual_cone_weights(xp, (G @ G.T).numpy(), np.eye(2))
    assert np.allclose(W, np.eye(2), atol=1e-8)


# ---- Nash-MTL --------------------------------------------------------------------------------
def test_nash_mtl_weights_satisfy_the_bargaining_condition():
    for T, seed in [(2, 0), (3, 1), (5, 2)]:
        G = random_G(T, 12, seed)
        update, _ = direction(strategy("nash_mtl", T, max_norm=0.0), G)
        alpha = update.weights
        M = G @ G.T
        assert torch.all(alpha > 0)
        assert torch.allclose(M @ alpha, 1.0 / alpha, rtol=1e-4)


def test_nash_mtl_clips_the_shared_update_but_not_the_heads():
    G = 100 * random_G(3, 12, 4)
    update, d = direction(strategy("nash_mtl", 3, max_norm=1.0), G)
    assert float(d.norm()) == pytest.approx(1.0, rel=1e-5)
    assert torch.all(update.task_weights > update.weights)  # α, before the clip


# ---- CAGrad ----------------------------------------------------------------------------------
def test_cagrad_with_c_zero_is_the_mean_gradient():
    G = random_G(3, 9, 0)
    _, d = direction(strategy("cagrad", 3, c=0.0), G)
    assert torch.allclose(d, G.mean(0), atol=1e-12)


def _cagrad_authors(G: np.ndarray, c: float) -> np.ndarray:
    """The authors' CAGrad (their `cagrad` function: SciPy SLSQP, rescale = 1)."""
    from scipy.optimize import minimize

    GG = G @ G.T
    T = len(G)
    g0_norm = np.sqrt(GG.mean() + 1e-8)
    b = np.ones(T) / T
    cc = c * g0_norm + 1e-8
    obj = lambda x: x @ GG @ b + cc * np.sqrt(x @ GG @ x + 1e-8)  # noqa: E731
    res = minimize(obj, np.ones(T) / T, bounds=[(0, 1)] * T, method="SLSQP",
                   constraints={"type": "eq", "fun": lambda x: 1 - x.sum()}, options={"ftol": 1e-14, "maxiter": 500})
    gw = res.x @ G
    g = G.mean(0) + cc / (np.linalg.norm(gw) + 1e-8) * gw
    return g / (1 + c**2)


@pytest.mark.parametrize("c", [0.4, 1.0])
def test_cagrad_matches_the_authors_solver_and_stays_in_its_ball(c):
    for T, seed in [(2, 0), (3, 1), (4, 2)]:
        G = random_G(T, 10, seed)
        _, d = direction(strategy("cagrad", T, c=c), G)
        assert np.allclose(d.numpy(), _cagrad_authors(G.numpy(), c), atol=1e-4)
        g0 = G.mean(0)
        assert float((d * (1 + c**2) - g0).norm()) <= c * float(g0.norm()) * (1 + 1e-6)


# ---- Aligned-MTL, GradVac, GradDrop, DB-MTL --------------------------------------------------
def test_aligned_mtl_matches_torchjd_up_to_its_mean_preference():
    from torchjd.aggregation import AlignedMTL

    for T, seed in [(2, 0), (3, 1), (4, 2)]:
        G = random_G(T, 8, seed)
        _, d = direction(strategy("aligned_mtl", T), G)
        assert torch.allclose(d, T * AlignedMTL()(G), atol=1e-8)  # TorchJD weighs 1/T, the authors 1


def test_aligned_mtl_balances_the_singular_values_of_the_gradient_system():
    G = random_G(3, 8, 5) * torch.tensor([[10.0], [1.0], [0.1]], dtype=torch.float64)
    s = strategy("aligned_mtl", 3)
    update, _ = direction(s, G)
    # d = (B G)ᵀ w with all singular values of B G equal to √λ_min.
    xp, M = s.gram(G)
    lam, V = np.linalg.eigh(M)
    B = np.sqrt(lam.min()) * V @ np.diag(lam**-0.5) @ V.T
    assert np.allclose(np.linalg.svd(B @ G.numpy(), compute_uv=False), np.sqrt(lam.min()))
    assert np.allclose(update.weights.numpy(), B @ np.ones(3))


def test_gradvac_matches_torchjd_over_several_steps_of_its_ema():
    from torchjd.aggregation import GradVac as TorchJDGradVac

    ours, theirs = strategy("gradvac", 2, beta=0.5), TorchJDGradVac(beta=0.5)
    for step in range(1, 6):
        G = random_G(2, 6, step)
        _, d = direction(ours, G, step=step)
        assert torch.allclose(d, theirs(G), atol=1e-9)


def test_gradvac_with_zero_targets_is_pcgrad_on_two_tasks():
    G = random_G(2, 6, 11)
    _, d_vac = direction(strategy("gradvac", 2, beta=0.0), G)
    _, d_pc = direction(strategy("pcgrad", 2), G)
    assert torch.allclose(d_vac, d_pc, atol=1e-9)


def test_graddrop_keeps_one_sign_per_coordinate():
    G = random_G(3, 2000, 0, dtype=torch.float32)
    _, d = direction(strategy("graddrop", 3, mode="params", seed=0), G)
    positive, negative = G.clamp_min(0).sum(0), G.clamp_max(0).sum(0)
    assert torch.all(torch.isclose(d, positive, atol=1e-6) | torch.isclose(d, negative, atol=1e-6))
    # Where the tasks agree in sign (purity 0 or 1), nothing is dropped: TorchJD gives the same.
    from torchjd.aggregation import GradDrop as TorchJDGradDrop

    agree = G.abs() * torch.sign(G[0])  # every row has g_0's signs
    _, d_agree = direction(strategy("graddrop", 3, mode="params"), agree)
    assert torch.allclose(d_agree, agree.sum(0), atol=1e-6)
    assert torch.allclose(d_agree, TorchJDGradDrop()(agree), atol=1e-6)


def test_graddrop_keeps_positive_sign_as_often_as_its_purity_says():
    G = torch.tensor([[3.0], [-1.0]]).repeat(1, 20_000)  # purity P = ½(1 + 2/4) = 0.75
    _, d = direction(strategy("graddrop", 2, mode="params", seed=1), G)
    kept_positive = (d > 0).float().mean()
    assert float(kept_positive) == pytest.approx(0.75, abs=0.02)


def test_db_mtl_scales_every_log_loss_gradient_to_the_largest_norm():
    G = random_G(3, 10, 0)
    losses = torch.tensor([0.5, 2.0, 8.0], dtype=torch.float64)
    s = strategy("db_mtl", 3, beta=0.0)
    update, d = direction(s, G, losses)
    g_log = G / (losses[:, None] + 1e-8)
    scaled = (update.weights * losses)[:, None] * g_log  # α_t ĝ_t (weights report α_t / L_t)
    norms = scaled.norm(dim=1)
    assert torch.allclose(norms, norms.max().expand(3), rtol=1e-6)
    assert torch.allclose(d, scaled.sum(0), atol=1e-6)


# ---- GradNorm --------------------------------------------------------------------------------
def _gradnorm_toy(seed: int, sigmas=(1.0, 10.0, 30.0), n: int = 2000, d: int = 16) -> MTLDataset:
    """Chen et al. (2018)'s toy: y_t = σ_t tanh(x·(b + ε_t)), tasks alike up to scale σ_t."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    b = torch.randn(d, generator=g) / math.sqrt(d)
    eps = torch.randn(len(sigmas), d, generator=g) * 0.5 / math.sqrt(d)
    y = torch.stack([s * torch.tanh(x @ (b + e)) for s, e in zip(sigmas, eps)], 1)
    names = [f"t{i}" for i in range(len(sigmas))]

    def split(sl: slice) -> Split:
        return Split(x[sl], {t: y[sl, i].contiguous() for i, t in enumerate(names)})

    return MTLDataset(name="gradnorm_toy", input_kind="vector", tasks={t: TaskSpec(t, "regression") for t in names},
                      train=split(slice(0, n - 400)), val=split(slice(n - 400, n - 200)),
                      test=split(slice(n - 200, n)), input_dim=d)


def _training_rate_spread(weighting: str, seed: int) -> tuple[float, dict[str, float]]:
    """max_t r_t / min_t r_t of the relative inverse training rates r_t = L̃_t / mean L̃."""
    config = ExperimentConfig.parse({
        "model": {"hidden": [32, 32]}, "steps": 300, "batch_size": 64, "eval_every": 300, "log_every": 1,
        "optimizer": {"lr": 0.01}, "weighting": {"name": weighting}, "interference": False,
        "baselines": False, "device": "cpu", "seed": seed,
    })
    sink = RecordingSink()
    train(config, _gradnorm_toy(seed), sink)
    first = sink.train[0]["losses"]
    last = {t: np.mean([row["losses"][t] for row in sink.train[-50:]]) for t in first}
    inverse_rate = np.array([last[t] / first[t] for t in first])
    r = inverse_rate / inverse_rate.mean()
    return float(r.max() / r.min()), sink.train[-1]["weights"]


@pytest.mark.parametrize("seed", [0, 1])
def test_gradnorm_drives_relative_inverse_training_rates_towards_equality(seed):
    spread_equal, _ = _training_rate_spread("equal", seed)
    spread_gradnorm, weights = _training_rate_spread("gradnorm", seed)
    assert spread_gradnorm < 0.5 * spread_equal
    # The small-scale task trains slowest under equal weights; GradNorm raises its weight.
    assert weights["t0"] > weights["t1"] > weights["t2"]
    assert sum(weights.values()) == pytest.approx(3.0, rel=1e-4)


# ---- the torch code path (what a GPU runs) agrees with NumPy's ------------------------------
@pytest.mark.parametrize("name", [n for n in GRADIENT_METHODS if n != "graddrop"])
def test_solvers_give_the_same_update_on_torch_as_on_numpy(monkeypatch, name):
    G, losses = random_G(4, 9, 21, dtype=torch.float32), torch.tensor([0.5, 1.0, 2.0, 4.0])
    G[1] = -0.7 * G[0] + 0.2 * G[1]
    results = []
    for numpy_on_cpu in (True, False):
        monkeypatch.setattr(solvers, "NUMPY_ON_CPU", numpy_on_cpu)
        s = strategy(name, 4, seed=3) if "seed" in WEIGHTING.get(name).options.model_fields else strategy(name, 4)
        for step in (1, 2):  # two steps: the stateful methods (GradVac, Nash-MTL, DB-MTL) carry state
            update, d = direction(s, G * step, losses, step)
        results.append((update.weights, d))
    assert torch.allclose(results[0][0], results[1][0], rtol=1e-4, atol=1e-6)
    assert torch.allclose(results[0][1], results[1][1], rtol=1e-4, atol=1e-5)


def test_every_solver_agrees_between_numpy_and_torch():
    G = random_G(4, 3, 8)  # P < T: linearly dependent gradients, the hard case
    M = (G @ G.T).numpy()
    on_np, on_torch = solvers.Ops(torch.device("cpu"), numpy=True), solvers.Ops(torch.device("cpu"), numpy=False)
    Mt = torch.as_tensor(M)
    U = np.eye(4) / 4
    pairs = [
        (solvers.min_norm_simplex(on_np, M), solvers.min_norm_simplex(on_torch, Mt)),
        (solvers.frank_wolfe_min_norm(on_np, M, 50), solvers.frank_wolfe_min_norm(on_torch, Mt, 50)),
        (solvers.dual_cone_weights(on_np, M, U), solvers.dual_cone_weights(on_torch, Mt, torch.as_tensor(U))),
        (solvers.cagrad_weights(on_np, M, 0.5), solvers.cagrad_weights(on_torch, Mt, 0.5)),
        (solvers.nash_bargaining(on_np, M + np.eye(4), iters=30), solvers.nash_bargaining(on_torch, Mt + torch.eye(4, dtype=Mt.dtype), iters=30)),
    ]
    for a, b in pairs:
        assert np.allclose(a, b.numpy(), rtol=1e-6, atol=1e-8)


def test_scipy_fallbacks_for_many_tasks_agree_with_the_exact_solvers():
    G = random_G(5, 12, 13)
    xp = solvers.Ops(torch.device("cpu"))
    M, U = (G @ G.T).numpy(), np.eye(5) / 5
    assert np.allclose(solvers._dual_cone_weights_scipy(xp, M, U), solvers.dual_cone_weights(xp, M, U), atol=1e-6)
    assert np.allclose(solvers._cagrad_weights_scipy(xp, M, 0.4), solvers.cagrad_weights(xp, M, 0.4), atol=1e-4)
    big = random_G(solvers.MAX_EXACT_TASKS + 2, 40, 14)  # beyond enumeration: the fallbacks run
    _, d = direction(strategy("upgrad", big.shape[0]), big)
    assert torch.all(big @ d >= -1e-7)
    update, _ = direction(strategy("mgda", big.shape[0]), big)
    assert float(update.weights.sum()) == pytest.approx(1.0)


# ---- the shared mechanics --------------------------------------------------------------------
class SumOfGradients(GradientWeighting):
    """d = Σ_t g_t, reached either as weights (one path) or as an explicit direction."""

    def __init__(self, tasks, options, *, base_weights, explicit: bool = False):
        super().__init__(tasks, options, base_weights=base_weights)
        self.explicit = explicit

    def aggregate(self, G, losses, step):
        ones = torch.ones(G.shape[0], dtype=G.dtype)
        if self.explicit:
            return Update(weights=ones, direction=G.sum(0), task_weights=self.base_weights)
        return Update(weights=ones)


@pytest.fixture(scope="module")
def small_dataset() -> MTLDataset:
    return load_dataset("mmoe_synthetic", SMALL["options"], seed=0)


def _model_and_losses(ds: MTLDataset, sharing: str = "hard", head_hidden: int = 4):
    from mtl_core.config import ModelSpec

    torch.manual_seed(0)
    model = build_model(sharing, ds, ds.task_names, ModelSpec(hidden=[16, 8], head_hidden=head_hidden))
    x = ds.train.x[:32]
    out = model(x)
    losses = torch.stack([task_loss("regression", out[t], ds.train.y[t][:32]) for t in ds.task_names])
    return model, losses


@pytest.mark.parametrize("mode", ["params", "rep"])
@pytest.mark.parametrize("explicit", [False, True])
def test_summing_the_task_gradients_reproduces_plain_backpropagation(small_dataset, mode, explicit):
    model, losses = _model_and_losses(small_dataset)
    losses.sum().backward(retain_graph=True)
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    s = SumOfGradients(small_dataset.task_names, GradOptions(mode=mode), base_weights=torch.ones(3), explicit=explicit)
    applied = s.backward(losses, step=1, model=model)
    assert torch.equal(applied, torch.ones(3))
    for n, p in model.named_parameters():
        assert torch.allclose(p.grad, expected[n], atol=1e-6), n


def test_last_grads_is_the_per_task_gradient_matrix_on_the_shared_parameters(small_dataset):
    model, losses = _model_and_losses(small_dataset)
    G = task_gradients(losses, model.shared_parameters())
    s = strategy("mgda", 3, small_dataset.task_names)
    s.backward(losses, step=1, model=model)
    assert torch.allclose(s.last_grads, G, atol=1e-6)


def test_a_task_without_a_loss_this_step_gets_a_zero_gradient_row(small_dataset):
    model, losses = _model_and_losses(small_dataset)
    losses = torch.stack([losses[0], losses[1].new_zeros(()), losses[2]])
    s = strategy("pcgrad", 3, small_dataset.task_names)
    s.backward(losses, step=1, model=model)
    assert torch.all(s.last_grads[1] == 0) and s.last_grads[0].abs().sum() > 0
    assert s.supports_task_sampling is False  # the config can refuse random sampling with it


def test_heads_follow_the_methods_weights(small_dataset):
    """MGDA (as Sener & Koltun's code) scales each head by α_t; PCGrad leaves it at 1."""
    for name, scaled in [("mgda", True), ("pcgrad", False)]:
        model, losses = _model_and_losses(small_dataset)
        w = strategy(name, 3, small_dataset.task_names).backward(losses, step=1, model=model)
        fresh_model, fresh_losses = _model_and_losses(small_dataset)  # same seed: same weights and batch
        (unweighted,) = torch.autograd.grad(fresh_losses[0], [fresh_model.heads["y1"].net[0].weight])
        factor = float(w[0]) if scaled else 1.0
        assert torch.allclose(model.heads["y1"].net[0].weight.grad, factor * unweighted, atol=1e-6), name


# ---- every method, every sharing mode it claims ----------------------------------------------
def _config(weighting: str, sharing: str, **options: Any) -> ExperimentConfig:
    return ExperimentConfig.parse({
        "dataset": SMALL, "model": {"hidden": [16]}, "steps": 5, "batch_size": 32, "eval_every": 5,
        "log_every": 5, "optimizer": {"lr": 0.01}, "sharing": {"name": sharing},
        "weighting": {"name": weighting, "options": options}, "interference": False, "baselines": False,
        "device": "cpu",
    })


def _modes(name: str) -> list[dict[str, str]]:
    fields = WEIGHTING.get(name).options.model_fields
    return [{"mode": "params"}, {"mode": "rep"}] if "mode" in fields else [{}]


@pytest.mark.parametrize("name", GRADIENT_METHODS)
def test_every_gradient_method_trains_with_hard_sharing(small_dataset, name):
    for options in _modes(name):
        sink = RecordingSink()
        train(_config(name, "hard", **options), small_dataset, sink)
        row = sink.train[-1]
        assert all(math.isfinite(v) for v in row["losses"].values()), (name, options)
        assert all(math.isfinite(v) for v in row["weights"].values()), (name, options)


@pytest.mark.parametrize("name", GRADIENT_METHODS)
def test_gradient_methods_refuse_a_model_without_shared_parameters(small_dataset, name):
    with pytest.raises(ConfigError, match=rf"'{name}'.*'single_task'.*shares no parameters"):
        train(_config(name, "single_task"), small_dataset)


def test_representation_mode_needs_a_shared_representation(small_dataset):
    s = strategy("mgda", 3, small_dataset.task_names, mode="rep")
    assert s.model_needs(s.options) == {"shared_rep", "shared_parameters"}
    model, _ = _model_and_losses(small_dataset)
    model.shared_rep = None  # as a sharing mode without one common representation
    with pytest.raises(ConfigError, match="mode 'rep'.*weighting.options.mode"):
        s.check_model(model)


def test_registry_entries_cite_their_paper_and_validate_options():
    for name in GRADIENT_METHODS:
        entry = WEIGHTING.get(name)
        assert entry.paper and entry.formula and entry.description, name
        assert all(f.description for f in entry.options.model_fields.values()), name
        with pytest.raises(ConfigError, match="not_an_option"):
            build_weighting(name, ["a", "b"], {"not_an_option": 1}, base_weights=torch.ones(2))


def test_options_are_range_checked():
    with pytest.raises(ConfigError, match="weighting.options.c"):
        build_weighting("cagrad", ["a", "b"], {"c": -1.0}, base_weights=torch.ones(2))
    with pytest.raises(ConfigError, match="weighting.options.mode"):
        build_weighting("mgda", ["a", "b"], {"mode": "activations"}, base_weights=torch.ones(2))

