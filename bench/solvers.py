"""Per-step cost of the gradient methods' small solvers, as the number of tasks T grows.

For UPGrad (T dual-cone QPs), MGDA (min-norm point of the hull) and CAGrad (its dual on
the simplex), on the same T × T Gramians M = G Gᵀ, times one solve per step:

- ours, faces:   the face-enumerating solvers (`solvers.*_faces`, what ran before
                 issue 11 at every T ≤ 10; 2^T linear systems, skipped above T = 10);
- ours, cold:    the dispatching solver with no memory (each M on its own);
- ours, warm:    the same over a training-like sequence of Gramians (each step's G a
                 small perturbation of the last), with the strategy's `WarmStart`;
- TorchJD:       `UPGradWeighting` (quadprog, one QP per task) and `MGDAWeighting`
                 (Frank-Wolfe), on the Gramian as a tensor; TorchJD's CAGrad needs
                 cvxpy, not installed, so none for CAGrad;
- quadprog:      the QPs as LibMTL-style code solves them, `quadprog.solve_qp` (one per
                 task for UPGrad; the simplex QP for MGDA); for CAGrad SciPy's SLSQP, the
                 authors' and LibMTL's solver.

Every number is the median over `--repeats` single solves (clock: time.perf_counter),
with the spread as the 25th–75th percentile, in microseconds. One thread
(torch.set_num_threads(1)); `uptime` is printed first because other processes on the
machine inflate every figure.

    python bench/solvers.py [--repeats 200] [--tasks 3,6,10,16] [--dim 512]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from typing import Callable

import numpy as np
import torch

from mtl_core.weighting import solvers


def gradients(T: int, P: int, rng: np.random.Generator) -> np.ndarray:
    """T task gradients with a shared component and task noise: most pairs agree, some
    conflict (as in a real multi-task run)."""
    common = rng.standard_normal(P)
    return 0.4 * common + rng.standard_normal((T, P))


def sequence(T: int, P: int, n: int, seed: int) -> list[np.ndarray]:
    """n Gramians of a slowly drifting G, like successive training steps."""
    rng = np.random.default_rng(seed)
    G = gradients(T, P, rng)
    out = []
    for _ in range(n):
        G = G + 0.05 * rng.standard_normal(G.shape)
        out.append(G @ G.T)
    return out


def timed(fn: Callable[[np.ndarray], object], grams: list[np.ndarray]) -> list[float]:
    times = []
    for M in grams:
        t0 = time.perf_counter()
        fn(M)
        times.append((time.perf_counter() - t0) * 1e6)
    return times


def summary(times: list[float] | None) -> str:
    if not times:
        return "—"
    q = statistics.quantiles(times, n=4)
    return f"{statistics.median(times):8.1f} [{q[0]:.0f}–{q[2]:.0f}]"


def quadprog_dual_cone(M: np.ndarray, U: np.ndarray) -> np.ndarray:
    import quadprog

    T = M.shape[0]
    P = M + 1e-9 * np.eye(T)
    return np.stack([quadprog.solve_qp(P, np.zeros(T), np.eye(T), u, 0)[0] for u in U])


def quadprog_min_norm(M: np.ndarray) -> np.ndarray:
    import quadprog

    T = M.shape[0]
    P = M + 1e-9 * np.eye(T)
    C = np.concatenate([np.ones((T, 1)), np.eye(T)], 1)
    return quadprog.solve_qp(P, np.zeros(T), C, np.concatenate([[1.0], np.zeros(T)]), 1)[0]


def slsqp_cagrad(M: np.ndarray, c: float) -> np.ndarray:
    xp = solvers.Ops(torch.device("cpu"))
    return solvers._cagrad_weights_scipy(xp, M, c)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--tasks", default="3,6,10,16")
    parser.add_argument("--dim", type=int, default=512, help="length P of each task gradient")
    parser.add_argument("--c", type=float, default=0.4, help="CAGrad's c")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print(f"clock: time.perf_counter; µs per solve, median [25th–75th percentile] over {args.repeats} solves; 1 thread")
    from torchjd.aggregation import MGDAWeighting, UPGradWeighting

    xp = solvers.Ops(torch.device("cpu"))
    jd_upgrad, jd_mgda = UPGradWeighting(), MGDAWeighting()
    rows = []
    for T in [int(t) for t in args.tasks.split(",")]:
        grams = sequence(T, args.dim, args.repeats, seed=T)
        rng = np.random.default_rng(1000 + T)
        cold = [G @ G.T for G in (gradients(T, args.dim, rng) for _ in range(args.repeats))]
        U = np.eye(T) / T
        few = cold[: max(10, args.repeats // 10)]  # the slow references: fewer solves
        faces_ok = T <= solvers.MAX_EXACT_TASKS
        solvers_by_method = {
            "upgrad": dict(
                faces=(lambda M: solvers.dual_cone_weights_faces(xp, M, U)) if faces_ok else None,
                new=lambda M, w=None: solvers.dual_cone_weights(xp, M, U, w),
                torchjd=lambda M: jd_upgrad(torch.from_numpy(M)),
                quadprog=lambda M: quadprog_dual_cone(M, U),
            ),
            "mgda": dict(
                faces=(lambda M: solvers.min_norm_simplex_faces(xp, M)) if faces_ok else None,
                new=lambda M, w=None: solvers.min_norm_simplex(xp, M, w),
                torchjd=lambda M: jd_mgda(torch.from_numpy(M)),
                quadprog=quadprog_min_norm,
            ),
            "cagrad": dict(
                faces=(lambda M: solvers.cagrad_weights_faces(xp, M, args.c)) if faces_ok else None,
                new=lambda M, w=None: solvers.cagrad_weights(xp, M, args.c, w),
                torchjd=None,
                quadprog=lambda M: slsqp_cagrad(M, args.c),
            ),
        }
        for method, f in solvers_by_method.items():
            faces = timed(f["faces"], few if T >= 8 else cold) if f["faces"] else None
            new_cold = timed(f["new"], cold)
            warm = solvers.WarmStart()
            new_warm = timed(lambda M: f["new"](M, warm), grams)
            jd = timed(f["torchjd"], cold) if f["torchjd"] else None
            qp = timed(f["quadprog"], cold if method != "cagrad" else few)
            rows.append((method, T, faces, new_cold, new_warm, jd, qp))
    header = f"{'method':7} {'T':>3} | {'ours faces (old)':>22} | {'ours cold (new)':>22} | {'ours warm (new)':>22} | {'TorchJD':>22} | {'quadprog / SLSQP':>22}"
    print(header)
    print("-" * len(header))
    for method, T, *cells in rows:
        print(f"{method:7} {T:>3} | " + " | ".join(f"{summary(c):>22}" for c in cells))


if __name__ == "__main__":
    main()
