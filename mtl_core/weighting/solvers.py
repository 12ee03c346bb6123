"""The small optimisation problems of the gradient methods, on the T × T Gramian M = G Gᵀ.

Every problem here lives in the space of task weights (T numbers), never in parameter
space, so it costs next to nothing next to the backward passes, if it is written with
few array operations. Two exact methods solve them:

- *Face enumeration* (few tasks): the optimum lies in the relative interior of one face
  (active set) of the feasible region, where the KKT conditions are one linear system;
  all 2^T systems are solved in one batched call and the best feasible candidate is
  picked with array operations. No branching on the data, so on a GPU it needs no host
  synchronisation; but its cost doubles with every task.
- *Active sets* (more tasks): `active_set_qp` walks from face to face, a primal–dual
  active-set (semismooth Newton) step first and Lawson & Hanson's primal active-set
  method as the safeguard, a handful of T × T solves per step (polynomial in T), warm
  started from the previous step's face (`WarmStart`).

On NumPy (CPU) faces are enumerated up to `FACES_MAX_TASKS_CPU` tasks, on a GPU up to
`MAX_EXACT_TASKS`; beyond that the active-set methods run on the host.

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

#: Largest number of tasks solved by face enumeration on a GPU (2^T linear systems of
#: size T in one batched call, no host synchronisation).
MAX_EXACT_TASKS = 10
#: Largest number of tasks solved by face enumeration on NumPy (CPU), where the
#: active-set methods are faster above it (see bench/solvers.py).
FACES_MAX_TASKS_CPU = 4
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


# ---- the active-set method, for many tasks --------------------------------------------------
class WarmStart:
    """A strategy's memory between steps: the free set of each problem it solved last
    (and CAGrad's λ). Successive steps have nearly the same Gramian, so the last face
    is usually the answer, found by one linear solve."""

    def __init__(self) -> None:
        self.free: dict[str, np.ndarray] = {}
        self.theta: float | None = None


def _by_faces(xp: Ops, T: int) -> bool:
    return T <= (FACES_MAX_TASKS_CPU if xp.numpy else MAX_EXACT_TASKS)


def _host(xp: Ops, a: Array) -> np.ndarray:
    """An array as NumPy (a device tensor is copied to the host: one synchronisation)."""
    return a if xp.numpy else a.detach().cpu().numpy()


def _device(xp: Ops, a: np.ndarray) -> Array:
    return a if xp.numpy else torch.as_tensor(a, device=xp.device)


def _warm_free(warm: WarmStart | None, key: str, shape: tuple[int, int]) -> np.ndarray | None:
    free = None if warm is None else warm.free.get(key)
    return free if free is not None and free.shape == shape else None


def _remember(warm: WarmStart | None, key: str, free: np.ndarray) -> None:
    if warm is not None:
        warm.free[key] = free.copy()


def _batched_solve(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A x = b for a batch of square systems (R, n, n), (R, n); NaN rows where singular."""
    try:
        return np.linalg.solve(A, b[..., None])[..., 0]
    except np.linalg.LinAlgError:
        return np.stack([_solve_or_nan(a, r) for a, r in zip(A, b)])


def active_set_qp(
    Mn: np.ndarray, C: np.ndarray, U: np.ndarray, *, simplex: bool,
    free0: np.ndarray | None = None, newton_iters: int = 8,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """R convex QPs sharing a positive definite M (T × T), row r:

        min_v ½ vᵀ M v + c_rᵀ v   s.t.  v ≥ u_r   (and 1ᵀv = 1 if `simplex`).

    Returns (V (R, T), free (R, T) the rows' free sets, ok (R,) solved). A free set F
    (v_i = u_i off F) determines v through one linear KKT system (M v + c − μ1)_F = 0,
    solved for all rows in one batched call, with the bound multipliers
    λ = M v + c − μ1 ≥ 0 off F at the optimum (KKT).

    1. Primal–dual active set (Hintermüller, Ito & Kunisch, 2002, a semismooth Newton
       method for complementarity λ ≥ 0, v − u ≥ 0, λᵀ(v − u) = 0): keep i free while
       v_i ≥ u_i, free a bound i when λ_i < 0; stop when the set repeats, which is then
       an exact KKT point. From the previous step's sets (`free0`) that is usually one
       solve; cold, a few. It can cycle on some matrices, hence:
    2. for rows not settled after `newton_iters` solves, Lawson & Hanson's primal
       active-set method (1974, "Solving Least Squares Problems", Ch. 23, NNLS; on M
       directly as in Bro & de Jong, 1997): from a feasible point, add the bound with
       the most negative λ, solve on the enlarged set, and step back to the boundary
       when the solution leaves the feasible region. The objective falls strictly at
       each face, so it ends after finitely many steps; all rows move in lock step.
    """
    R, T = U.shape
    C = np.broadcast_to(C, (R, T))
    n = T + simplex
    K = np.zeros((n, n))
    K[:T, :T] = Mn
    if simplex:
        K[:T, T] = -1.0  # −μ in the stationarity rows
        K[T, :T] = 1.0  # 1ᵀv = 1
    eye = np.eye(n)
    tol = _TOL * 10

    def solve(free: np.ndarray, c: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = np.concatenate([free, np.ones((len(free), 1), bool)], 1) if simplex else free
        A = np.where(rows[:, :, None], K, eye)  # identity rows fix the bound variables
        rhs = np.where(free, -c, u)
        if simplex:
            rhs = np.concatenate([rhs, np.ones((len(free), 1))], 1)
        x = _batched_solve(A, rhs)
        return x[:, :T], (x[:, T] if simplex else np.zeros(len(free)))

    def multipliers(V: np.ndarray, c: np.ndarray, mu: np.ndarray) -> np.ndarray:
        return V @ Mn + c - mu[:, None]

    # 1. primal-dual active set
    if free0 is not None:
        free = free0.copy()
    elif simplex:
        free = np.ones((R, T), bool)
    else:
        free = multipliers(U, C, np.zeros(R)) < 0  # from v = u: free what conflicts
    ok = np.zeros(R, bool)
    V = np.array(U, dtype=float)
    for _ in range(newton_iters):
        V, mu = solve(free, C, U)
        lam = multipliers(V, C, mu)
        new = np.where(free, V > U - tol, lam < -tol)
        if simplex:  # the simplex needs one free variable: the one that most wants to be
            empty = ~new.any(1)
            new[empty, np.argmin(lam[empty], 1)] = True
        ok = (new == free).all(1) & np.isfinite(V).all(1)
        if ok.all():
            return V, free, ok
        free = np.where(ok[:, None], free, new)

    # 2. Lawson-Hanson on the rows left
    rows = np.flatnonzero(~ok)
    Vl, freel, okl = _lawson_hanson(Mn, np.array(C[rows]), np.array(U[rows]), simplex, solve, multipliers, tol)
    V[rows], free[rows], ok[rows] = Vl, freel, okl
    return V, free, ok


def _lawson_hanson(Mn, C, U, simplex, solve, multipliers, tol):
    R, T = U.shape
    at = np.arange(R)
    if simplex:  # start at the best vertex
        assert (U == 0).all()
        k = np.argmin(0.5 * np.diagonal(Mn) + C, 1)
        V = np.zeros((R, T))
        V[at, k] = 1.0
        free = V > 0
        mu = Mn[k, k] + C[at, k]
    else:  # start at v = u, every variable at its bound
        V, free, mu = U.copy(), np.zeros((R, T), bool), np.zeros(R)
    at_face = np.ones(R, bool)  # V solves the KKT system of its free set
    done = np.zeros(R, bool)
    for _ in range(3 * T + 10):
        # at a face's solution: optimal, or free the bound with the most negative λ
        lam = np.where(free, np.inf, multipliers(V, C, mu))
        j = np.argmin(lam, 1)
        check = at_face & ~done
        done |= check & (lam[at, j] >= -tol)
        add = check & ~done
        free[add, j[add]] = True
        todo = np.flatnonzero(~done)
        if len(todo) == 0:
            break
        Z, muz = solve(free[todo], C[todo], U[todo])
        Vt, Ft, Ut = V[todo], free[todo], U[todo]
        below = Ft & (Z < Ut - tol)
        # λ_j < 0 only through rounding when the freed variable will not move: stop there
        spurious = add[todo] & below[np.arange(len(todo)), j[todo]]
        inside = ~below.any(1) & np.isfinite(Z).all(1)
        # inside: accept the face's solution; else step from V towards Z to the boundary
        ratio = np.where(below, (Vt - Ut) / np.where(below, Vt - Z, 1.0), np.inf)
        alpha = np.clip(ratio.min(1), 0.0, 1.0)[:, None]
        stepped = np.where(np.isfinite(Z), Vt + alpha * (Z - Vt), Vt)
        Vnew = np.where(inside[:, None], Z, stepped)
        Fnew = np.where(inside[:, None], Ft, Ft & (Vnew > Ut + tol))
        Vnew = np.where(Fnew, Vnew, Ut)
        if simplex:
            Fnew[~Fnew.any(1), :] = Ft[~Fnew.any(1), :]  # never empty (cannot happen exactly)
        sp = spurious
        Fnew[sp] = Ft[sp]
        Fnew[sp, j[todo][sp]] = False
        Vnew[sp] = Vt[sp]
        V[todo], free[todo] = Vnew, Fnew
        mu[todo] = np.where(inside, muz, mu[todo])
        at_face[todo] = inside & ~sp
        done[todo[sp]] = True
    return V, free, done


def _cagrad_active_set(Mn: np.ndarray, c: float, warm: WarmStart | None) -> np.ndarray | None:
    """CAGrad's w* through the QPs in θ = λ/c' (see `cagrad_weights`); None if no face
    passed the KKT test.

    The envelope theorem gives ψ'(λ) ∝ 1 − s(λ)²/λ² for ψ(λ) = min_w of the joint
    objective, convex in λ, so s(θ) − c'θ changes sign once, at θ*: a bracket that
    only shrinks. Each trial θ solves one QP; its face is tested in closed form; the
    next θ is that face's own fixed point s(w_S)/c' (exact when the face is right, a
    Newton-like step) when it lies inside the bracket, else the bracket's midpoint.
    """
    T = Mn.shape[0]
    b = Mn.sum(1) / T
    cp = c * float(np.sqrt(max(Mn.sum() / T**2, 0.0)))
    if cp < 1e-12:  # the mean gradient is 0: nothing to trade against
        return None
    theta = warm.theta if warm is not None and warm.theta else 1.0 / c  # λ = ‖g_0‖ at w = 1/T
    free = _warm_free(warm, "cagrad", (1, T))
    if free is not None:  # the last step's face is usually still right: no QP at all
        w = _cagrad_on_face(Mn, b, free[0], cp)
        if w is not None and _cagrad_kkt(Mn, b, cp, w, free[0]):
            warm.theta = float(np.sqrt(max(w @ Mn @ w, 1e-300))) / cp
            return np.maximum(w, 0.0) / np.maximum(w, 0.0).sum()
    zero = np.zeros((1, T))
    lo, hi = 0.0, np.inf
    for _ in range(40):
        V, free, ok = active_set_qp(Mn, theta * b[None], zero, simplex=True, free0=free)
        if not ok.all():
            return None
        v = V[0]
        step = None
        support = free[0] & (v > _TOL)
        for face in (free[0], support) if (support != free[0]).any() and support.any() else (free[0],):
            w = _cagrad_on_face(Mn, b, face, cp)
            if w is None:
                continue
            s_face = float(np.sqrt(max(w @ Mn @ w, 1e-300)))
            if _cagrad_kkt(Mn, b, cp, w, face):
                if warm is not None:
                    warm.theta = s_face / cp
                    warm.free["cagrad"] = free.copy()
                return np.maximum(w, 0.0) / np.maximum(w, 0.0).sum()
            step = s_face / cp if step is None else step
        if step is not None and abs(step - theta) <= 1e-9 * theta:
            return None  # at the face's own fixed point, yet not optimal: degenerate (s ≈ 0)
        if float(np.sqrt(max(v @ Mn @ v, 0.0))) > cp * theta:
            lo = theta
        else:
            hi = theta
        if np.isfinite(hi) and hi - lo <= 1e-12 * max(hi, 1.0):
            return None
        if step is not None and lo < step < hi:
            theta = step
        else:
            theta = 0.5 * (lo + hi) if np.isfinite(hi) else 4.0 * max(theta, 1e-6)
    return None


def _cagrad_on_face(Mn: np.ndarray, b: np.ndarray, S: np.ndarray, cp: float) -> np.ndarray | None:
    """The stationary point of wᵀb + c'√(wᵀMw) on the affine hull of face S of the
    simplex (w ∝ νp − q, see `cagrad_weights`); None if that hull has none."""
    T = len(b)
    if S.sum() == 1:
        return S.astype(float)
    A = np.where(S[:, None] & S[None, :], Mn, np.eye(T))
    X = _solve_or_nan(A, np.stack([S * 1.0, S * b], 1))
    p, q = X[:, 0] * S, X[:, 1] * S
    sp, sq, bq = p.sum(), q.sum(), q @ b
    disc = sq**2 - sp * (bq - cp**2)
    if not (disc > 1e-24 and sp > 0):
        return None
    root = np.sqrt(disc)
    w = ((sq + root) / sp * p - q) / root
    return w if np.isfinite(w).all() else None


def _cagrad_kkt(Mn: np.ndarray, b: np.ndarray, cp: float, w: np.ndarray, S: np.ndarray) -> bool:
    """w (supported on S) is CAGrad's optimum: w ≥ 0 and ∂_i ≥ ν = ∂_S off S."""
    if (w < -_TOL).any():
        return False
    Mw = Mn @ w
    grad = b + cp * Mw / float(np.sqrt(max(w @ Mw, 1e-300)))
    nu = grad[S].min()
    return bool((grad >= nu - 1e-8 * max(1.0, abs(nu))).all())


# ---- MGDA: min-norm point of the convex hull ----------------------------------------------
def min_norm_simplex(xp: Ops, M: Array, warm: WarmStart | None = None) -> Array:
    """α* = argmin_{α ∈ Δ^T} αᵀ M α: the convex combination of the task gradients with the
    smallest norm (the MGDA subproblem, Désidéri 2012; Sener & Koltun, 2018, Eq. 3).

    Exact: face enumeration for few tasks (`min_norm_simplex_faces`), else the active-set
    method (`active_set_qp` with the constraint 1ᵀα = 1, in the spirit of Wolfe's 1976
    min-norm-point algorithm), warm-started from `warm`; Sener & Koltun's Frank-Wolfe
    solver (Algorithm 2) only if that fails beyond `MAX_EXACT_TASKS`. For T = 2 this is
    the closed form α_1 = clip(((g_2 − g_1)·g_2) / ‖g_1 − g_2‖², 0, 1).
    """
    T = M.shape[0]
    if T == 1:
        return xp.full((1,), 1.0)
    if _by_faces(xp, T):
        return min_norm_simplex_faces(xp, M)
    Mn = _host(xp, normalised(xp, M))
    zero = np.zeros((1, T))
    V, free, ok = active_set_qp(Mn, zero, zero, simplex=True, free0=_warm_free(warm, "mgda", (1, T)))
    if not ok.all():
        return min_norm_simplex_faces(xp, M) if T <= MAX_EXACT_TASKS else frank_wolfe_min_norm(xp, M)
    _remember(warm, "mgda", free)
    alpha = np.maximum(V[0], 0.0)
    return _device(xp, alpha / alpha.sum())


def min_norm_simplex_faces(xp: Ops, M: Array) -> Array:
    """`min_norm_simplex` by face enumeration (any T ≥ 2; 2^T − 1 systems of size T + 1)."""
    T = M.shape[0]
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
def dual_cone_weights(xp: Ops, M: Array, U: Array, warm: WarmStart | None = None) -> Array:
    """For each row u of U (R, T): v* = argmin_{v ≥ u} vᵀ M v.

    Gᵀv* is the projection of Gᵀu onto the dual cone {x : Gx ≥ 0} of the task gradients
    (Quinton & Rey, 2024, Proposition 1). Exact: face enumeration for few tasks
    (`dual_cone_weights_faces`), else the R problems together by the active-set method
    (`active_set_qp`; they share M), warm-started from `warm`; SciPy's bounded-variable
    least squares only for rows where that fails beyond `MAX_EXACT_TASKS`.
    """
    T = M.shape[0]
    if _by_faces(xp, T):
        return dual_cone_weights_faces(xp, M, U)
    Mn, Uh = _host(xp, normalised(xp, M)), _host(xp, U)
    V, free, ok = active_set_qp(Mn, np.zeros_like(Uh), Uh, simplex=False,
                                free0=_warm_free(warm, "dual_cone", Uh.shape))
    if not ok.all():
        if T <= MAX_EXACT_TASKS:
            V[~ok] = _host(xp, dual_cone_weights_faces(xp, M, _device(xp, Uh[~ok])))
        else:
            V[~ok] = _host(xp, _dual_cone_weights_scipy(xp, M, _device(xp, Uh[~ok])))
    _remember(warm, "dual_cone", free)
    return _device(xp, np.maximum(V, Uh))


def dual_cone_weights_faces(xp: Ops, M: Array, U: Array) -> Array:
    """`dual_cone_weights` by enumerating the active sets A (v_A = u_A; on the free set F,
    (M v)_F = 0): 2^T systems of size T per row of U."""
    T = M.shape[0]
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
def cagrad_weights(xp: Ops, M: Array, c: float, warm: WarmStart | None = None) -> Array:
    """w* = argmin_{w ∈ Δ^T} wᵀ b + c' √(wᵀ M w), b = M 1/T, c' = c ‖g_0‖ (Liu et al., 2021,
    the dual of max_d min_t ⟨g_t, d⟩ s.t. ‖d − g_0‖ ≤ c ‖g_0‖, g_0 the mean gradient).

    On a face S with s = √(wᵀMw) > 0, stationarity b_S + c' M_SS w_S / s = ν 1 gives
    w_S ∝ ν p − q with p = M_SS⁻¹ 1, q = M_SS⁻¹ b_S, and ν solves
    ν² 1ᵀp − 2ν 1ᵀq + bᵀq − c'² = 0 (the root with 1ᵀw > 0): one closed form per face;
    vertices are always candidates. Few tasks: every face (`cagrad_weights_faces`).
    More: the face is found from √s = min_{λ>0} (s/λ + λ)/2, which makes the objective
    jointly convex in (w, λ) and, for fixed λ, the simplex QP min_w ½wᵀMw + (λ/c') bᵀw
    (`active_set_qp`); alternating λ = √(wᵀMw) and that QP (block coordinate descent)
    until the QP's face, solved in closed form, passes the KKT test of the original
    problem (∂_i ≥ ν off the face). SciPy's SLSQP (the authors' solver) or face
    enumeration only if that fails.
    """
    T = M.shape[0]
    if T == 1 or c == 0.0:
        return xp.full((T,), 1.0 / T)
    if _by_faces(xp, T):
        return cagrad_weights_faces(xp, M, c)
    Mn = _host(xp, normalised(xp, M))
    w = _cagrad_active_set(Mn, c, warm)
    if w is None:
        return cagrad_weights_faces(xp, M, c) if T <= MAX_EXACT_TASKS else _cagrad_weights_scipy(xp, M, c)
    return _device(xp, w)


def cagrad_weights_faces(xp: Ops, M: Array, c: float) -> Array:
    """`cagrad_weights` by evaluating the closed form on every face (any T ≥ 2)."""
    T = M.shape[0]
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
