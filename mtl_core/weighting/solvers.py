"""The small optimisation problems of the gradient methods, on the T × T Gramian M = G Gᵀ.

Every problem here lives in the space of task weights (T numbers), never in parameter
space, so it costs next to nothing next to the backward passes, if it is written with
few array operations. For up to `MAX_EXACT_TASKS` tasks each is solved *exactly* by
enumerating the faces (active sets) of its feasible region: the optimum lies in the
relative interior of one face, where the KKT conditions are one linear system; all 2^T
systems are solved in one batched call and the best feasible candidate is picked with
array operations. No solver dependency, no iteration count to tune. Beyond that size,
the paper's own iterative method or SciPy takes over.

The same code runs on two array libraries (`Ops`): NumPy when the gradients are on the
CPU (an operation on a 3 × 3 array costs about 1 µs in NumPy against 3–5 µs in torch,
and reading a CPU tensor as an array is free), torch when they are on a GPU (the
answer stays on the device: no host synchronisation).

All solvers work in float64 on M normalised by its mean diagonal (the problems are
scale-invariant or rescale exactly), with a tiny ridge so linearly dependent task
gradients (e.g. two identical tasks) still give a unique, symmetric answer.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch

#: Largest number of tasks solved by face enumeration (2^T linear systems of size T).
MAX_EXACT_TASKS = 10
_RIDGE = 1e-9
_TOL = 1e-9

Array = Any  # numpy.ndarray or torch.Tensor (float64)

#: Solve on NumPy when the gradients are on the CPU (tests switch it off to run the
#: torch code path that GPUs use).
NUMPY_ON_CPU = True


class Ops:
    """The array operations the solvers use, on NumPy (CPU) or torch (any other device)."""

    def __init__(self, device: torch.device, *, numpy: bool | None = None) -> None:
        self.device = device
        self.numpy = (device.type == "cpu" and NUMPY_ON_CPU) if numpy is None else numpy
        self.lib: Any = np if self.numpy else torch

    @classmethod
    def like(cls, x: torch.Tensor) -> "Ops":
        return cls(x.device)

    def array(self, x: torch.Tensor) -> Array:
        """x as a float64 array of this library (a CPU tensor is read without a copy)."""
        x = x.detach()
        return x.numpy().astype(np.float64) if self.numpy else x.to(torch.float64)

    def tensor(self, a: Array, like: torch.Tensor) -> torch.Tensor:
        """A result back as a tensor with `like`'s dtype and device."""
        if self.numpy:
            return torch.from_numpy(np.ascontiguousarray(a)).to(like.dtype)
        return a.to(like.dtype)

    def eye(self, n: int) -> Array:
        return np.eye(n) if self.numpy else torch.eye(n, dtype=torch.float64, device=self.device)

    def zeros(self, *shape: int) -> Array:
        return np.zeros(shape) if self.numpy else torch.zeros(shape, dtype=torch.float64, device=self.device)

    def full(self, shape: tuple[int, ...], value: float) -> Array:
        if self.numpy:
            return np.full(shape, value)
        return torch.full(shape, value, dtype=torch.float64, device=self.device)

    def arange(self, n: int) -> Array:
        return np.arange(n) if self.numpy else torch.arange(n, device=self.device)

    def float64(self, x: Array) -> Array:
        return x.astype(np.float64) if self.numpy else x.to(torch.float64)

    def clip_min(self, x: Array, low: float) -> Array:
        return np.maximum(x, low) if self.numpy else torch.clamp_min(x, low)

    def solve(self, A: Array, b: Array) -> Array:
        """Batched A x = b; NaN rows where a system is singular (never raises)."""
        if self.numpy:
            try:
                return np.linalg.solve(A, b)
            except np.linalg.LinAlgError:
                return np.stack([_solve_or_nan(a, r) for a, r in zip(A.reshape(-1, *A.shape[-2:]),
                                                                      b.reshape(-1, *b.shape[-2:]))]).reshape(b.shape)
        x, info = torch.linalg.solve_ex(A, b)
        bad = (info != 0).reshape(*info.shape, *([1] * (x.dim() - info.dim())))
        return torch.where(bad, torch.full_like(x, float("nan")), x)

    def subsets(self, T: int) -> Array:
        """All 2^T subsets of range(T) as a boolean (2^T, T) array, the empty set first."""
        table = _subsets(T)
        return table if self.numpy else _subsets_on(T, self.device)


def _solve_or_nan(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.solve(A, b)
    except np.linalg.LinAlgError:
        return np.full(b.shape, np.nan)


@lru_cache(maxsize=32)
def _subsets(T: int) -> np.ndarray:
    table = (np.arange(2**T)[:, None] >> np.arange(T)) & 1 == 1
    table.flags.writeable = False
    return table


@lru_cache(maxsize=32)
def _subsets_on(T: int, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(_subsets(T).copy(), device=device)


def normalised(xp: Ops, M: Array) -> Array:
    """M / its mean diagonal (+ ridge·I), symmetrised; a zero M is left at scale 1."""
    T = M.shape[0]
    scale = float(np.trace(M) / T) if xp.numpy else torch.diagonal(M).mean()
    if xp.numpy:
        scale = scale if scale > 1e-30 else 1.0
    else:
        scale = torch.where(scale > 1e-30, scale, torch.ones_like(scale))
    return 0.5 * (M + M.T) / scale + _RIDGE * xp.eye(T)


def gramian(G: torch.Tensor) -> torch.Tensor:
    """M = G Gᵀ (T, T), the inner products of the task gradients."""
    return G @ G.T


# ---- MGDA: min-norm point of the convex hull ----------------------------------------------
def min_norm_simplex(xp: Ops, M: Array) -> Array:
    """α* = argmin_{α ∈ Δ^T} αᵀ M α: the convex combination of the task gradients with the
    smallest norm (the MGDA subproblem, Désidéri 2012; Sener & Koltun, 2018, Eq. 3).

    Exact for T ≤ MAX_EXACT_TASKS (face enumeration), else Sener & Koltun's Frank-Wolfe
    solver (Algorithm 2). For T = 2 this is the closed form
    α_1 = clip(((g_2 − g_1)·g_2) / ‖g_1 − g_2‖², 0, 1).
    """
    T = M.shape[0]
    if T == 1:
        return xp.full((1,), 1.0)
    if T > MAX_EXACT_TASKS:
        return frank_wolfe_min_norm(xp, M)
    Mn = normalised(xp, M)
    S = xp.float64(xp.subsets(T)[1:])  # every non-empty face, as 0/1 floats
    K = S.shape[0]
    # KKT on a face S: M_SS α_S + μ·1 = 0, 1ᵀα_S = 1, α_i = 0 off S (identity rows there).
    A = xp.zeros(K, T + 1, T + 1)
    A[:, :T, :T] = Mn * (S[:, :, None] * S[:, None, :]) + xp.eye(T) * (1.0 - S)[:, None, :]
    A[:, :T, T] = S
    A[:, T, :T] = S
    b = xp.zeros(K, T + 1, 1)
    b[:, T] = 1.0
    alpha = xp.solve(A, b)[:, :T, 0]
    ok = xp.lib.isfinite(alpha).all(1) & (alpha >= -_TOL).all(1)
    obj = ((alpha @ Mn) * alpha).sum(1)
    # Faces tie when gradients coincide; prefer the larger support (the symmetric answer).
    obj = xp.lib.where(ok, obj - 1e-12 * S.sum(1), float("inf"))
    best = xp.clip_min(alpha[xp.lib.argmin(obj)], 0.0)
    return best / best.sum()


def frank_wolfe_min_norm(xp: Ops, M: Array, iters: int = 250) -> Array:
    """Sener & Koltun (2018), Algorithm 2: Frank-Wolfe on the simplex with exact line
    search from the uniform point, a fixed number of iterations (no host sync)."""
    Mn = normalised(xp, M)
    T = Mn.shape[0]
    alpha = xp.full((T,), 1.0 / T)
    eye = xp.eye(T)
    for _ in range(iters):
        Ma = Mn @ alpha
        t = xp.lib.argmin(Ma)
        a, b, c = alpha @ Ma, Ma[t], Mn[t, t]  # ‖v‖², v·g_t, ‖g_t‖² (v = αᵀG)
        denom = a - 2 * b + c
        gamma = xp.lib.where(denom > 1e-30, (a - b) / xp.clip_min(denom, 1e-30), 0.0)
        gamma = xp.clip_min(-xp.clip_min(-gamma, -1.0), 0.0)  # clip to [0, 1]
        alpha = (1 - gamma) * alpha + gamma * eye[t]
    return alpha


# ---- UPGrad: projection onto the dual cone ------------------------------------------------
def dual_cone_weights(xp: Ops, M: Array, U: Array) -> Array:
    """For each row u of U (R, T): v* = argmin_{v ≥ u} vᵀ M v.

    Gᵀv* is the projection of Gᵀu onto the dual cone {x : Gx ≥ 0} of the task gradients
    (Quinton & Rey, 2024, Proposition 1). Exact by enumerating the active sets A
    (v_A = u_A; on the free set F, (M v)_F = 0) for T ≤ MAX_EXACT_TASKS, else SciPy's
    bounded-variable least squares on ½‖Lᵀv‖² (M = L Lᵀ).
    """
    T = M.shape[0]
    if T > MAX_EXACT_TASKS:
        return _dual_cone_weights_scipy(xp, M, U)
    Mn = normalised(xp, M)
    act = xp.subsets(T)  # (S, T): True = constraint active (v_i = u_i)
    A = xp.lib.where(act[:, :, None], xp.eye(T), Mn)  # (S, T, T): identity rows on A, rows of M on F
    rhs = xp.lib.where(act[None, :, :], U[:, None, :], 0.0)  # (R, S, T)
    R, S = U.shape[0], act.shape[0]
    A = xp.lib.broadcast_to(A[None], (R, S, T, T))
    v = xp.solve(A, rhs[..., None])[..., 0]  # (R, S, T)
    ok = xp.lib.isfinite(v).all(-1) & (v >= U[:, None, :] - _TOL).all(-1)
    obj = xp.lib.einsum("rsi,ij,rsj->rs", v, Mn, v)
    obj = xp.lib.where(ok, obj, float("inf"))
    best = v[xp.arange(R), xp.lib.argmin(obj, 1)]
    return xp.lib.maximum(best, U)


def _dual_cone_weights_scipy(xp: Ops, M: Array, U: Array) -> Array:
    from scipy.optimize import lsq_linear

    Mn = np.asarray(normalised(xp, M).cpu() if not xp.numpy else normalised(xp, M))
    Un = np.asarray(U.cpu() if not xp.numpy else U)
    L = np.linalg.cholesky(Mn)
    rows = [lsq_linear(L.T, np.zeros(len(u)), bounds=(u, np.full(len(u), np.inf)), method="bvls").x for u in Un]
    out = np.stack(rows)
    return out if xp.numpy else torch.as_tensor(out, device=xp.device)


# ---- CAGrad: the conflict-averse subproblem -----------------------------------------------
def cagrad_weights(xp: Ops, M: Array, c: float) -> Array:
    """w* = argmin_{w ∈ Δ^T} wᵀ b + c' √(wᵀ M w), b = M 1/T, c' = c ‖g_0‖ (Liu et al., 2021,
    the dual of max_d min_t ⟨g_t, d⟩ s.t. ‖d − g_0‖ ≤ c ‖g_0‖, g_0 the mean gradient).

    Exact for T ≤ MAX_EXACT_TASKS: on a face S with s = √(wᵀMw) > 0, stationarity
    b_S + c' M_SS w_S / s = ν 1 gives w_S ∝ ν p − q with p = M_SS⁻¹ 1, q = M_SS⁻¹ b_S,
    and ν solves ν² 1ᵀp − 2ν 1ᵀq + bᵀq − c'² = 0 (the root with 1ᵀw > 0): one closed
    form per face; vertices are always candidates. Beyond that size: SciPy's SLSQP, as
    in the authors' code.
    """
    T = M.shape[0]
    if T == 1 or c == 0.0:
        return xp.full((T,), 1.0 / T)
    if T > MAX_EXACT_TASKS:
        return _cagrad_weights_scipy(xp, M, c)
    Mn = normalised(xp, M)
    b = Mn.sum(1) / T
    cp = c * xp.lib.sqrt(xp.clip_min(Mn.sum() / T**2, 0.0))
    S = xp.subsets(T)[1:]
    Sf = xp.float64(S)
    A = xp.lib.where(S[:, :, None] & S[:, None, :], Mn, xp.eye(T))
    rhs = xp.lib.stack([Sf, Sf * b], -1)  # (K, T, 2)
    X = xp.solve(A, rhs)
    p, q = X[..., 0] * Sf, X[..., 1] * Sf
    sp, sq, bq = p.sum(1), q.sum(1), (q * b).sum(1)
    disc = sq**2 - sp * (bq - cp**2)
    root = xp.lib.sqrt(xp.clip_min(disc, 0.0))
    nu = (sq + root) / xp.lib.where(sp != 0, sp, 1.0)
    w = (nu[:, None] * p - q) / xp.clip_min(root, 1e-300)[:, None]
    single = Sf.sum(1) == 1
    w = xp.lib.where(single[:, None], Sf, w)  # a vertex: w = e_i
    ok = single | ((disc > 1e-24) & (sp > 0) & xp.lib.isfinite(w).all(1) & (w >= -_TOL).all(1))
    w = xp.lib.where(ok[:, None], w, 0.0)
    obj = w @ b + cp * xp.lib.sqrt(xp.clip_min(((w @ Mn) * w).sum(1), 0.0))
    obj = xp.lib.where(ok, obj, float("inf"))
    best = xp.clip_min(w[xp.lib.argmin(obj)], 0.0)
    return best / best.sum()


def _cagrad_weights_scipy(xp: Ops, M: Array, c: float) -> Array:
    from scipy.optimize import minimize

    A = np.asarray(normalised(xp, M).cpu() if not xp.numpy else normalised(xp, M))
    T = A.shape[0]
    b = A.sum(1) / T
    cp = c * np.sqrt(max(A.sum() / T**2, 0.0))
    res = minimize(
        lambda w: w @ b + cp * np.sqrt(max(w @ A @ w, 0.0) + 1e-16),
        np.full(T, 1.0 / T), bounds=[(0.0, 1.0)] * T,
        constraints=({"type": "eq", "fun": lambda w: 1.0 - w.sum()},), method="SLSQP",
        options={"ftol": 1e-12, "maxiter": 500},
    )
    w = np.clip(res.x, 0.0, None)
    w = w / w.sum()
    return w if xp.numpy else torch.as_tensor(w, device=xp.device)


# ---- Nash-MTL: the bargaining solution ----------------------------------------------------
def nash_bargaining(xp: Ops, M: Array, alpha0: Array | None = None, *, iters: int = 20) -> Array:
    """α > 0 with M α = 1/α (Navon et al., 2022, Eq. 5: each task's utility ⟨g_t, d⟩
    times α_t equals 1, d = Gᵀα).

    M α = 1/α is the stationarity condition of the strictly convex, self-concordant
    φ(α) = ½ αᵀMα − Σ_t log α_t, so damped Newton (step 1/(1+λ), λ the Newton
    decrement; Nesterov & Nemirovskii, 1994) converges to the unique solution from any
    α > 0 and never leaves α > 0. The paper instead runs a sequence of convex programs
    with cvxpy (its "CCP" iterations); both find the same fixed point. M is scaled by its
    Frobenius norm n first, as in the authors' code; α for the unscaled M is α_n/√n.
    `alpha0` (a previous step's answer) warm-starts it. On NumPy (CPU) it stops once
    converged; on a GPU it runs `iters` steps (checking would synchronise).
    """
    T = M.shape[0]
    n = float(np.linalg.norm(M)) if xp.numpy else torch.linalg.matrix_norm(M)
    n = max(n, 1e-30) if xp.numpy else torch.clamp_min(n, 1e-30)
    Mn = 0.5 * (M + M.T) / n + 1e-8 * xp.eye(T)  # the ridge keeps a task with a zero gradient finite
    sqrt_n = n**0.5
    if alpha0 is None:
        a = 1.0 / xp.lib.sqrt(xp.lib.diagonal(Mn))  # exact when the gradients are orthogonal
    else:
        a = xp.clip_min(alpha0 * sqrt_n, 1e-12)
    for _ in range(iters):
        g = Mn @ a - 1.0 / a
        H = Mn + xp.lib.diag(1.0 / a**2)
        step = xp.solve(H, g[:, None])[:, 0]
        lam = xp.lib.sqrt(xp.clip_min(g @ step, 0.0))
        t = xp.lib.where(lam < 0.25, 1.0, 1.0 / (1.0 + lam))
        a = xp.clip_min(a - t * step, 1e-12)
        if xp.numpy and lam < 1e-10:
            break
    return a / sqrt_n
