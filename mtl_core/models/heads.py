"""Task heads f_t(z; θ_t) and their losses.

A head reads the encoder output z and, for token inputs, the padding mask. Sentence-level
heads (classification, regression, multilabel) on token inputs mean-pool z over real tokens.
A multilabel head gives one logit per label (independent sigmoids, not a softmax).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mtl_core.tasks.base import IGNORE_INDEX, TaskSpec


def masked_mean(z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of z (B, L, H) over positions where mask (B, L) is True."""
    m = mask.unsqueeze(-1).to(z.dtype)
    return (z * m).sum(1) / m.sum(1).clamp_min(1.0)


class TaskHead(nn.Module):
    def __init__(self, spec: TaskSpec, in_dim: int, hidden: int = 0) -> None:
        super().__init__()
        self.kind = spec.kind
        out = 1 if spec.kind == "regression" else int(spec.num_classes)
        if hidden:
            self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out))
        else:
            self.net = nn.Linear(in_dim, out)

    def forward(self, z: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if z.dim() == 3 and self.kind != "tagging":
            z = masked_mean(z, mask) if mask is not None else z.mean(1)
        out = self.net(z)
        return out.squeeze(-1) if self.kind == "regression" else out


def task_loss(kind: str, output: torch.Tensor, target: torch.Tensor, *, masked: bool = True) -> torch.Tensor:
    """Mean loss over the labelled items of a batch (cross-entropy, MSE or, for multilabel,
    binary cross-entropy with logits averaged over the labelled rows' label cells).

    Unlabelled items (IGNORE_INDEX / NaN; a multilabel row of NaN) are masked: they add
    nothing to the sum and are not counted in the mean. A batch with none gives 0 with a
    graph, so a task without labels in this batch contributes no gradient. `masked=False`
    is the fast path for a target known to have no missing labels.
    """
    if kind == "multilabel":
        if not masked:
            return F.binary_cross_entropy_with_logits(output, target)
        labelled = ~torch.isnan(target)
        per_cell = F.binary_cross_entropy_with_logits(output, torch.nan_to_num(target), reduction="none")
        return torch.where(labelled, per_cell, torch.zeros_like(per_cell)).sum() / labelled.sum().clamp_min(1)
    if kind == "tagging":
        output = output.reshape(-1, output.shape[-1])
        target = target.reshape(-1)
    if not masked:
        if kind == "regression":
            return F.mse_loss(output, target)
        return F.cross_entropy(output, target)
    if kind == "regression":
        labelled = ~torch.isnan(target)
        diff = torch.where(labelled, output - torch.nan_to_num(target), torch.zeros_like(output))
        return (diff**2).sum() / labelled.sum().clamp_min(1)
    labelled = (target != IGNORE_INDEX).sum()
    loss = F.cross_entropy(output, target, ignore_index=IGNORE_INDEX, reduction="sum")
    return loss / labelled.clamp_min(1)


def has_missing(target: torch.Tensor) -> bool:
    """Whether any item of a target is unlabelled (NaN / IGNORE_INDEX).

    Padding in tagging targets is IGNORE_INDEX too, so tagging always counts as masked.
    """
    if target.is_floating_point():
        return bool(torch.isnan(target).any())
    return bool((target == IGNORE_INDEX).any())
