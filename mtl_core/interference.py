"""Task-interference measures on the shared parameters.

G is the T × P matrix of per-task gradients ∇_{θ_s} L_t on the shared parameters θ_s.
Its normalised Gram matrix gives the pairwise gradient cosine: cos < 0 means a step
that helps one task hurts the other (the "conflicting gradients" of Yu et al., 2020).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def task_gradients(losses: torch.Tensor, params: list[nn.Parameter]) -> torch.Tensor:
    """G (T, P): the flattened gradient of each task loss w.r.t. `params`.

    A task that does not reach some parameter contributes zeros there.
    """
    rows = []
    for t in range(losses.shape[0]):
        grads = torch.autograd.grad(losses[t], params, retain_graph=True, allow_unused=True)
        rows.append(
            torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)])
        )
    return torch.stack(rows)


def grad_cosine(G: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Pairwise cosine similarity (T, T) of the rows of G."""
    unit = G / G.norm(dim=1, keepdim=True).clamp_min(eps)
    return unit @ unit.T


def snapshot(G: torch.Tensor, tasks: list[str]) -> dict[str, Any]:
    """JSON-ready interference snapshot: task names, cosine matrix and gradient norms."""
    cos = grad_cosine(G).cpu()
    norms = G.norm(dim=1).cpu()
    return {
        "tasks": list(tasks),
        "grad_cosine": [[round(float(v), 6) for v in row] for row in cos],
        "grad_norm": [float(v) for v in norms],
    }


def conflict_rate(snapshots: list[dict[str, Any]]) -> dict[str, float]:
    """Share of snapshots in which each task pair's gradient cosine is negative."""
    if not snapshots:
        return {}
    tasks = snapshots[0]["tasks"]
    out = {}
    for i in range(len(tasks)):
        for j in range(i + 1, len(tasks)):
            neg = sum(1 for s in snapshots if s["grad_cosine"][i][j] < 0)
            out[f"{tasks[i]}|{tasks[j]}"] = neg / len(snapshots)
    return out
