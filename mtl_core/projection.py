"""What each task's head sees, in two dimensions (issue 15: visible internals).

At each evaluation of a multi-task model, a fixed set of validation rows goes through the
model and the input of each task's head is recorded: with hard sharing that is the shared
representation z = g(x; θ_s) itself, in other modes the task's own mixture or column. Each
is projected on its first two principal components (PCA, Pearson 1901: the centred rows'
SVD, z − mean = U S Vᵀ, coordinates U₂S₂) and stored with the rows' labels for that task,
so a student sees whether the classes or target values of each task come apart in what
the encoder learned, and how that changes from one evaluation to the next.

Token inputs: a tagging task's points are its labelled tokens, a sentence task's the mean
of each sentence's real tokens. A multilabel task's points are coloured by how many labels
each row holds (0, 1, 2, ...): one colour per label set would not fit a legend, and the
first label alone would hide the rest. Each axis's sign is fixed (its largest loading positive)
so that an unchanged picture does not flip between evaluations.
"""

from __future__ import annotations

from typing import Any

import torch

from mtl_core.tasks.base import IGNORE_INDEX, PAD_ID, MTLDataset

ROWS = 256  # validation rows projected at each evaluation (the first ones: the same each time)
POINTS = 512  # points per task at most (labelled tokens of a tagging task)


def pca_2d(z: torch.Tensor) -> tuple[torch.Tensor, list[float]]:
    """(n, 2) coordinates of rows `z` (n, d) on their first two principal components, and
    the share of the variance each explains. Fewer than 2 dimensions are padded with 0."""
    z = z.double()
    centred = z - z.mean(dim=0, keepdim=True)
    u, s, vh = torch.linalg.svd(centred, full_matrices=False)
    k = min(2, s.shape[0])
    signs = torch.sign(vh[:k].gather(1, vh[:k].abs().argmax(dim=1, keepdim=True))).squeeze(1)
    signs[signs == 0] = 1.0
    xy = torch.zeros(z.shape[0], 2, dtype=torch.float64)
    xy[:, :k] = u[:, :k] * s[:k] * signs
    total = float((s**2).sum())
    explained = [float(s[i] ** 2 / total) if total > 0 and i < k else 0.0 for i in range(2)]
    return xy.float(), explained


def head_inputs(model: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The input of each task's head (`model.heads[t]`) for inputs `x`, in eval mode."""
    seen: dict[str, torch.Tensor] = {}
    handles = [head.register_forward_hook(lambda m, args, out, t=t: seen.__setitem__(t, args[0].detach()))
               for t, head in model.heads.items()]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return seen


def projection_snapshot(model: torch.nn.Module, dataset: MTLDataset, x: torch.Tensor,
                        y: dict[str, torch.Tensor]) -> dict[str, dict[str, Any]]:
    """{task: {"x", "y": coordinates, "label": each point's label (class index or target),
    "classes": class names (None for regression), "explained": [pc1, pc2] variance shares}}
    for rows `x` with targets `y`."""
    out: dict[str, dict[str, Any]] = {}
    if not hasattr(model, "heads"):
        return out
    seen = head_inputs(model, x)
    real = (x != PAD_ID) if dataset.input_kind == "tokens" else None
    for task, z in seen.items():
        spec, target = dataset.tasks[task], y[task].detach().cpu()
        z = z.float().cpu()
        if z.dim() == 3:  # tokens (n, L, d)
            if spec.kind == "tagging":
                keep = target != IGNORE_INDEX
                z, target = z[keep], target[keep]
            else:
                mask = real.cpu().unsqueeze(-1).to(z.dtype) if real is not None else torch.ones_like(z[..., :1])
                z = (z * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        classes = list(spec.class_names or []) if spec.kind != "regression" else None
        if spec.kind == "multilabel":  # colour = number of labels of the row
            keep = ~torch.isnan(target).any(dim=1)
            z, target = z[keep], target[keep].sum(dim=1).long()
            classes = [f"{k} label{'' if k == 1 else 's'}" for k in range(int(spec.num_classes) + 1)]
        elif spec.kind != "regression":
            keep = target != IGNORE_INDEX
            z, target = z[keep], target[keep]
        z, target = z[:POINTS], target[:POINTS]
        if z.shape[0] < 3:
            continue
        xy, explained = pca_2d(z)
        labels = target.float() if spec.kind == "regression" else target.long()
        out[task] = {"x": [round(v, 4) for v in xy[:, 0].tolist()], "y": [round(v, 4) for v in xy[:, 1].tolist()],
                     "label": [round(v, 4) for v in labels.tolist()] if spec.kind == "regression" else labels.tolist(),
                     "classes": classes,
                     "explained": [round(e, 4) for e in explained]}
    return out
