"""Task-interference measures on the shared parameters.

G is the T × P matrix of per-task gradients ∇_{θ_s} L_t on the shared parameters θ_s.
Its normalised Gram matrix gives the pairwise gradient cosine: cos < 0 means a step
that helps one task hurts the other (the "conflicting gradients" of Yu et al., 2020).
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Sequence

import torch
from torch import nn

from mtl_core.grouping import all_groupings


def task_gradients(losses: torch.Tensor | Sequence[torch.Tensor], params: list[nn.Parameter]) -> torch.Tensor:
    """G (T, P): the flattened gradient of each task loss w.r.t. `params`, in float32.

    `losses` is the (T,) stacked losses or, cheaper, the list of the T scalar losses: a
    backward pass from `losses[t]` of a stack also pushes zero gradients through every
    other task's head, one from the task's own loss node does not (the same values).
    A task that does not reach some parameter contributes zeros there.
    """
    T = len(losses)
    sizes = [p.numel() for p in params]
    G = torch.empty(T, sum(sizes), dtype=torch.float32, device=params[0].device)
    for t in range(T):
        grads = torch.autograd.grad(losses[t], params, retain_graph=True, allow_unused=True,
                                    materialize_grads=True)
        torch.cat([g.reshape(-1).float() for g in grads], out=G[t])
    return G


def grad_cosine(G: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Pairwise cosine similarity (T, T) of the rows of G."""
    unit = G / G.norm(dim=1, keepdim=True).clamp_min(eps)
    return unit @ unit.T


def magnitude_similarity(G: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Gradient-magnitude similarity (T, T) (Yu et al., NeurIPS 2020, PCGrad §3):
    GMS(g_i, g_j) = 2‖g_i‖‖g_j‖ / (‖g_i‖² + ‖g_j‖²); 1 for equal norms, → 0 when one dominates."""
    n = G.norm(dim=1)
    return 2 * torch.outer(n, n) / (n[:, None] ** 2 + n[None, :] ** 2).clamp_min(eps)


@torch.no_grad()
def lookahead_affinity(
    params: list[nn.Parameter],
    G: torch.Tensor,
    lr: float,
    task_losses: Callable[[], torch.Tensor],
    *,
    before: torch.Tensor | None = None,
) -> torch.Tensor:
    """Inter-task affinity by look-ahead (Fifty et al., NeurIPS 2021, "Which Tasks Should Be
    Learned Together?", Eq. 1): Z_{i→j} = 1 − L_j(θ_s − η·g_i, θ_j) / L_j(θ_s, θ_j).

    Row i, column j: how much a step on the shared parameters with task i's gradient g_i
    (row i of G, a plain SGD step of size η) lowers task j's loss on the same batch; > 0
    means i helps j. `task_losses()` evaluates every task's loss at the current
    parameters; `before`, when the caller already has those losses at θ_s (the forward
    pass that gave G), saves one evaluation. The parameters are restored exactly
    afterwards: it is a measurement.
    """
    if before is None:
        before = task_losses()
    saved = [p.detach().clone() for p in params]
    sizes = [p.numel() for p in params]
    T = G.shape[0]
    Z = torch.zeros(T, T, device=G.device)
    try:
        for i in range(T):
            for p, g in zip(params, torch.split(G[i], sizes)):
                p.sub_(lr * g.view_as(p).to(p.dtype))
            Z[i] = 1 - task_losses().float() / before.float().clamp_min(1e-12)
            for p, old in zip(params, saved):
                p.copy_(old)
    finally:
        for p, old in zip(params, saved):
            p.copy_(old)
    return Z


def snapshot(G: torch.Tensor, tasks: list[str], affinity: torch.Tensor | None = None) -> dict[str, Any]:
    """JSON-ready interference snapshot: task names, gradient cosine and magnitude
    similarity matrices, gradient norms and (when measured) the look-ahead affinity."""
    def rows(m: torch.Tensor) -> list[list[float]]:
        return [[round(float(v), 6) for v in row] for row in m.cpu()]

    out = {
        "tasks": list(tasks),
        "grad_cosine": rows(grad_cosine(G)),
        "grad_magnitude_similarity": rows(magnitude_similarity(G)),
        "grad_norm": [float(v) for v in G.norm(dim=1).cpu()],
    }
    if affinity is not None:
        out["affinity"] = [[float(v) for v in row] for row in affinity.cpu()]
    return out


def mean_matrix(snapshots: list[dict[str, Any]], key: str) -> list[list[float]] | None:
    """Element-wise mean of one matrix over the snapshots that have it (e.g. affinity over training)."""
    mats = [s[key] for s in snapshots if s.get(key) is not None]
    if not mats:
        return None
    return torch.tensor(mats, dtype=torch.float64).mean(0).tolist()


def pair_summary(snapshots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per task pair: mean gradient cosine, share of conflicting evaluations (cos < 0),
    trend (mean cosine over the last half of training minus the first half), and a verdict
    "agree" / "conflict" / "no clear sign" with the interval of the mean cosine
    (`significance.pair_sign`: a pair conflicts only when it is clearly below 0)."""
    from mtl_core.significance import pair_sign

    if not snapshots:
        return []
    tasks = snapshots[0]["tasks"]
    out = []
    for i, j in itertools.combinations(range(len(tasks)), 2):
        cos = [s["grad_cosine"][i][j] for s in snapshots]
        half = len(cos) // 2
        trend = (sum(cos[half:]) / len(cos[half:]) - sum(cos[:half]) / half) if half else 0.0
        out.append({
            "pair": [tasks[i], tasks[j]],
            "mean_cosine": sum(cos) / len(cos),
            "conflict_rate": sum(c < 0 for c in cos) / len(cos),
            "trend": trend,
            "evaluations": len(cos),
            **{k: v for k, v in pair_sign(cos).items() if k in ("verdict", "low", "high", "n_eff")},
        })
    return out


def conflict_rate(snapshots: list[dict[str, Any]]) -> dict[str, float]:
    """Share of snapshots in which each task pair's gradient cosine is negative ("a|b": rate)."""
    return {"|".join(p["pair"]): p["conflict_rate"] for p in pair_summary(snapshots)}


def interference_summary(
    snapshots: list[dict[str, Any]], tasks: Sequence[str] | None = None, *, last: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A run's interference over `snapshots` (the multi-task model's, in step order): the
    last snapshot's matrices, per-pair summaries and verdicts, the conflict rate, the mean
    look-ahead affinity over training (Fifty et al., 2021) and the best groupings under it.

    The one assembly behind a finished run's results ("interference" in the results JSON)
    and the dashboard's view of a run still training (the snapshots read so far), so the
    two cannot disagree. `tasks`: default the last snapshot's; `last`: the snapshot whose
    matrices are reported (default the last of `snapshots`).
    """
    if last is None and snapshots:
        last = snapshots[-1]
    last = last or {}
    tasks = list(tasks) if tasks is not None else list(last.get("tasks") or [])
    affinity = mean_matrix(snapshots, "affinity")
    return {
        "tasks": tasks,
        "grad_cosine": last.get("grad_cosine"),
        "grad_magnitude_similarity": last.get("grad_magnitude_similarity"),
        "grad_norm": last.get("grad_norm"),
        "conflict_rate": conflict_rate(snapshots),
        "pairs": pair_summary(snapshots),
        "affinity": affinity,
        "grouping": all_groupings(affinity, tasks) if affinity is not None else [],
        "history": [{k: v for k, v in s.items() if k != "phase"} for s in snapshots],
        # Set when a large shared encoder was measured on its top layers only
        # (`engine.interference_parameters`): how many of how many shared parameters.
        **{k: last[k] for k in ("measured_params", "shared_params") if k in last},
    }
