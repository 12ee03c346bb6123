"""The solvers of the gradient methods as the number of tasks grows (issue 11, item 4).

The active-set methods (`solvers.active_set_qp`, CAGrad's search over faces) must give
the same answers as the exhaustive face enumeration they replace above a few tasks, on
random and on degenerate Gramians (duplicate, zero, colinear-opposite gradients, rank
deficiency), the same as quadprog where enumeration is out of reach (T = 10, 16, 32),
satisfy the KKT conditions, and not depend on the warm start. Nothing here times
anything; bench/solvers.py does.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pytest
import torch

from mtl_core.weighting import build_weighting
from mtl_core.weighting import solvers

CPU = solvers.Ops(torch.device("cpu"))


def gradient_cases(T: int, seed: int) -> Iterator[tuple[str, np.ndarray]]:
    """(label, G) for T tasks: generic, aligned, and the degenerate configurations."""
    rng = np.random.default_rng(seed)
    yield "generic", rng.standard_normal((T, 12))
    yield "mostly aligned", 1.5 * rng.standard_normal(12) + rng.standard_normal((T, 12))
    G = rng.standard_normal((T, 12))
    G[1] = G[0]
    yield "duplicate gradients", G
    G = rng.standard_normal((T, 12))
    G[0] = 0.0
    yield "a zero gradient", G
    G = rng.standard_normal((T, 12))
    G[1] = -0.5 * G[0]
    yield "colinear opposite", G
    yield "rank 2", rng.standard_normal((T, 2)) @ rng.standard_normal((2, 12))


def normalised(M: np.ndarray) -> np.ndarray:
    return np.asarray(solvers.normalised(CPU, M))


def cagrad_objective(M: np.ndarray, c: float, w: np.ndarray) -> float:
    Mn = normalised(M)
    T = len(w)
    return float(w @ Mn.sum(1) / T + c * np.sqrt(Mn.sum() / T**2) * np.sqrt(w @ Mn @ w))


def quadprog_dual_cone(M: np.ndarray, U: np.ndarray) -> np.ndarray:
    import quadprog

    T = M.shape[0]
    return np.stack([quadprog.solve_qp(M, np.zeros(T), np.eye(T), u, 0)[0] for u in U])


def quadprog_min_norm(M: np.ndarray) -> np.ndarray:
    import quadprog

    T = M.shape[0]
    C = np.concatenate([np.ones((T, 1)), np.eye(T)], 1)
    return quadprog.solve_qp(M, np.zeros(T), C, np.concatenate([[1.0], np.zeros(T)]), 1)[0]


def assert_kkt(Mn: np.ndarray, C: np.ndarray, U: np.ndarray, V: np.ndarray, *, simplex: bool, tol: float = 1e-8):
    """min ½vᵀMv + cᵀv s.t. v ≥ u (1ᵀv = 1): primal feasibility, λ = Mv + c − μ1 ≥ 0,
    λ_i (v_i − u_i) = 0, with μ the equality's multiplier (the mean of Mv + c on the free set)."""
    grad = V @ Mn + C
    assert np.all(V >= U - tol), "a bound is violated"
    if simplex:
        assert np.allclose(V.sum(1), 1.0, atol=tol), "weights must sum to 1"
        free = V > U + 1e-6
        mu = np.array([g[f].mean() for g, f in zip(grad, free)])
    else:
        mu = np.zeros(len(V))
    lam = grad - mu[:, None]
    assert np.all(lam >= -tol * 10), f"a bound's multiplier is negative: {lam.min():.3g}"
    assert np.all(np.abs(lam * (V - U)) <= tol), "complementary slackness fails"


# ---- the active-set method agrees with face enumeration ------------------------------------
@pytest.mark.parametrize("T", range(2, 9))
@pytest.mark.parametrize("newton_iters", [8, 0], ids=["newton+lawson-hanson", "lawson-hanson only"])
def test_active_set_dual_cone_matches_face_enumeration(T, newton_iters):
    U = np.eye(T) / T
    for label, G in gradient_cases(T, seed=T):
        M = G @ G.T
        exact = np.asarray(solvers.dual_cone_weights_faces(CPU, M, U))
        V, _, ok = solvers.active_set_qp(normalised(M), np.zeros((T, T)), U, simplex=False, newton_iters=newton_iters)
        assert ok.all(), f"{label}: not solved"
        # UPGrad uses Gᵀv (the projected gradients); v itself is not unique when G is rank-deficient.
        scale = max(1.0, float(np.abs(exact @ G).max()))
        assert np.abs((V - exact) @ G).max() <= 1e-6 * scale, label
        assert_kkt(normalised(M), np.zeros((T, T)), U, V, simplex=False)


@pytest.mark.parametrize("T", range(2, 9))
@pytest.mark.parametrize("newton_iters", [8, 0], ids=["newton+lawson-hanson", "lawson-hanson only"])
def test_active_set_min_norm_matches_face_enumeration(T, newton_iters):
    zero = np.zeros((1, T))
    for label, G in gradient_cases(T, seed=10 + T):
        M = G @ G.T
        Mn = normalised(M)
        exact = np.asarray(solvers.min_norm_simplex_faces(CPU, M))
        V, _, ok = solvers.active_set_qp(Mn, zero, zero, simplex=True, newton_iters=newton_iters)
        assert ok.all(), f"{label}: not solved"
        alpha = V[0]
        assert alpha @ Mn @ alpha == pytest.approx(exact @ Mn @ exact, abs=1e-9), label
        assert np.abs((alpha - exact) @ G).max() <= 1e-4 * max(1.0, np.abs(G).max()), label
        assert_kkt(Mn, zero, zero, V, simplex=True)


@pytest.mark.parametrize("T", range(2, 9))
@pytest.mark.parametrize("c", [0.1, 0.4, 1.0, 3.0])
def test_cagrad_active_set_matches_face_enumeration(monkeypatch, T, c):
    monkeypatch.setattr(solvers, "FACES_MAX_TASKS_CPU", 1)  # the active-set path at every T
    solved_without_fallback = 0
    for label, G in gradient_cases(T, seed=20 + T):
        M = G @ G.T
        exact = np.asarray(solvers.cagrad_weights_faces(CPU, M, c))
        w = np.asarray(solvers.cagrad_weights(CPU, M, c))
        assert w.min() >= 0 and w.sum() == pytest.approx(1.0)
        assert cagrad_objective(M, c, w) <= cagrad_objective(M, c, exact) + 1e-9, label
        solved_without_fallback += solvers._cagrad_active_set(normalised(M), c, None) is not None
    # Only the Pareto-stationary degenerate cases (g_w ≈ 0 reachable) may need the fallback.
    assert solved_without_fallback >= 4


# ---- beyond enumeration: the same answers as quadprog ------------------------------------------
@pytest.mark.parametrize("T", [10, 16, 32])
def test_dual_cone_weights_match_quadprog(T):
    rng = np.random.default_rng(T)
    for G in (rng.standard_normal((T, 3 * T)), 0.4 * rng.standard_normal(3 * T) + rng.standard_normal((T, 3 * T))):
        M = G @ G.T
        U = np.eye(T) / T
        ours = np.asarray(solvers.dual_cone_weights(CPU, M, U))
        reference = quadprog_dual_cone(normalised(M), U)
        assert np.allclose(ours @ G, reference @ G, atol=1e-7 * np.abs(reference @ G).max())
        assert_kkt(normalised(M), np.zeros((T, T)), U, ours, simplex=False)


@pytest.mark.parametrize("T", [10, 16, 32])
def test_min_norm_simplex_matches_quadprog(T):
    rng = np.random.default_rng(100 + T)
    for G in (rng.standard_normal((T, 3 * T)), 0.4 * rng.standard_normal(3 * T) + rng.standard_normal((T, 3 * T))):
        M = G @ G.T
        Mn = normalised(M)
        ours = np.asarray(solvers.min_norm_simplex(CPU, M))
        reference = quadprog_min_norm(Mn)
        assert ours @ Mn @ ours == pytest.approx(reference @ Mn @ reference, rel=1e-9, abs=1e-12)
        assert np.allclose(ours, reference, atol=1e-6)
        assert_kkt(Mn, np.zeros((1, T)), np.zeros((1, T)), ours[None], simplex=True)


@pytest.mark.parametrize("T", [10, 16])
def test_cagrad_weights_are_no_worse_than_slsqp(T):
    rng = np.random.default_rng(200 + T)
    G = 0.4 * rng.standard_normal(3 * T) + rng.standard_normal((T, 3 * T))
    M = G @ G.T
    ours = np.asarray(solvers.cagrad_weights(CPU, M, 0.4))
    assert solvers._cagrad_active_set(normalised(M), 0.4, None) is not None, "the active-set path must solve it"
    slsqp = solvers._cagrad_weights_scipy(CPU, M, 0.4)
    assert cagrad_objective(M, 0.4, ours) <= cagrad_objective(M, 0.4, slsqp) + 1e-10


# ---- warm starts change the cost, never the answer ----------------------------------------------
def drifting_gramians(T: int, n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    G = 0.4 * rng.standard_normal(40) + rng.standard_normal((T, 40))
    out = []
    for _ in range(n):
        G = G + 0.3 * rng.standard_normal(G.shape)
        out.append(G @ G.T)
    return out


def test_warm_started_solvers_give_the_cold_answers():
    T = 10
    U = np.eye(T) / T
    warm_up, warm_mgda, warm_ca = solvers.WarmStart(), solvers.WarmStart(), solvers.WarmStart()
    for M in drifting_gramians(T, 30, 5):
        assert np.allclose(solvers.dual_cone_weights(CPU, M, U, warm_up), solvers.dual_cone_weights(CPU, M, U), atol=1e-9)
        assert np.allclose(solvers.min_norm_simplex(CPU, M, warm_mgda), solvers.min_norm_simplex(CPU, M), atol=1e-9)
        assert np.allclose(solvers.cagrad_weights(CPU, M, 0.4, warm_ca), solvers.cagrad_weights(CPU, M, 0.4), atol=1e-8)


def test_warm_start_from_the_same_face_takes_one_solve(monkeypatch):
    T = 12
    G = np.random.default_rng(3).standard_normal((T, 30))
    M = G @ G.T
    warm = solvers.WarmStart()
    solvers.dual_cone_weights(CPU, M, np.eye(T) / T, warm)
    solves = []
    real = solvers._batched_solve
    monkeypatch.setattr(solvers, "_batched_solve", lambda A, b: solves.append(A.shape) or real(A, b))
    solvers.dual_cone_weights(CPU, 1.01 * M, np.eye(T) / T, warm)  # same faces
    assert solves == [(T, T, T)], "all T problems of UPGrad in one batched solve"


# ---- the strategies above the old enumeration limit -------------------------------------------
def test_upgrad_with_many_tasks_matches_torchjd_on_numpy_and_torch(monkeypatch):
    from torchjd._linalg import QuadprogProjector
    from torchjd.aggregation import UPGrad

    T = 14
    G = torch.randn(T, 40, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    G[1] = -0.8 * G[0] + 0.3 * G[1]
    reference = UPGrad(projector=QuadprogProjector(norm_eps=0.0, reg_eps=1e-12))(G)
    for numpy_on_cpu in (True, False):  # False: the torch path a GPU takes (active set on the host)
        monkeypatch.setattr(solvers, "NUMPY_ON_CPU", numpy_on_cpu)
        s = build_weighting("upgrad", [f"t{i}" for i in range(T)], {}, base_weights=torch.ones(T))
        for step in (1, 2):  # the second step starts warm
            d = s.aggregate(G, torch.ones(T), step).weights.to(G.dtype) @ G
            assert torch.all(G @ d >= -1e-9), "UPGrad's update must conflict with no task"
            assert torch.allclose(d, reference, atol=1e-7)


def test_mgda_with_many_tasks_finds_the_min_norm_point():
    from torchjd.aggregation import MGDA

    T = 14
    G = torch.randn(T, 40, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    s = build_weighting("mgda", [f"t{i}" for i in range(T)], {}, base_weights=torch.ones(T))
    w = s.aggregate(G, torch.ones(T), 1).weights.to(G.dtype)
    d = w @ G
    assert torch.all(w >= 0) and float(w.sum()) == pytest.approx(1.0)
    assert float(d.norm()) <= float(MGDA(epsilon=1e-9, max_iters=5000)(G).norm()) + 1e-9
    assert torch.all(G @ d >= d @ d - 1e-7), "a min-norm point d has g_t·d ≥ ‖d‖² for every task"
