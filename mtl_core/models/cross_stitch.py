"""Cross-stitch networks (Misra, Shrivastava, Gupta & Hebert, CVPR 2016)."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field
from torch import nn

from mtl_core.models.heads import TaskHead
from mtl_core.models.sharing import Block, BlockModel, register_sharing, require_tasks
from mtl_core.models.stack import LayerStack
from mtl_core.spec import ModelSpec, StrictModel
from mtl_core.tasks.base import MTLDataset


class CrossStitchOptions(StrictModel):
    init_self: float = Field(
        0.9, ge=0.0, le=1.0, allow_inf_nan=False,
        description="initial α_tt (a task's weight on its own column); the others get "
        "(1 − init_self)/(T − 1); 1.0 starts as independent networks",
    )


def stitch_init(n_tasks: int, init_self: float) -> torch.Tensor:
    """A T×T mixing matrix with init_self on the diagonal and rows summing to 1."""
    off = (1.0 - init_self) / (n_tasks - 1)
    return torch.full((n_tasks, n_tasks), off) + (init_self - off) * torch.eye(n_tasks)


@register_sharing(
    "cross_stitch",
    description="One network per task; after every layer a learned linear mix of the tasks' activations.",
    paper="Misra, Shrivastava, Gupta & Hebert, CVPR 2016 (Cross-stitch Networks for Multi-task Learning)",
    formula=(
        r"\tilde h^{(l)}_t=\sum_{s=1}^{T}\alpha^{(l)}_{ts}\,h^{(l)}_s,\quad"
        r"h^{(l)}_s=g^{(l)}_s\big(\tilde h^{(l-1)}_s\big),\quad"
        r"\alpha^{(l)}\in\mathbb R^{T\times T}\text{ learned, }\alpha^{(l)}\approx I\text{ at start}"
    ),
    options=CrossStitchOptions,
    diagram="cross_stitch",
    min_tasks=2,
)
class CrossStitch(BlockModel):
    """One column (encoder) per task, linked by cross-stitch units (Misra et al., 2016).

    After layer l every task's activation is replaced by a learned linear combination of
    all tasks' activations at that layer:

        h̃_t^(l) = Σ_s α^(l)_ts · h_s^(l),   h_s^(l) = g_s^(l)(h̃_s^(l−1)),

    with one T×T matrix α^(l) per layer (the paper's per-layer unit; it also discusses a
    per-channel variant, not built here). α starts near the identity (`init_self` on the
    diagonal, the rest spread evenly), as the paper initialises its units close to the
    two separately trained networks; init_self = 1.0 is exactly T independent networks
    at step 0. The heads read h̃_t of the last layer. For token inputs each column is a
    `LayerStack` (its own embedding, one BiGRU/conv/transformer layer per width) and the
    units mix every position.

    What is shared: α^(l)_ts carries task t's loss into column s, so every task's loss
    reaches every column (through α) and every unit. All columns and all units are
    therefore shared parameters, even at the identity start (where the gradient into
    another column is zero only until α moves); the heads belong to their tasks.
    """

    def __init__(self, dataset: MTLDataset, tasks: list[str], spec: ModelSpec, options: Any) -> None:
        super().__init__(dataset, tasks, spec, options)
        require_tasks("cross_stitch", tasks, 2)
        self.columns = nn.ModuleDict({t: LayerStack(dataset, spec) for t in tasks})
        n_layers = len(self.columns[tasks[0]].layers)
        self.stitches = nn.ParameterList(
            [nn.Parameter(stitch_init(len(tasks), options.init_self)) for _ in range(n_layers)]
        )
        out_dim = self.columns[tasks[0]].out_dim
        self.heads = nn.ModuleDict({t: TaskHead(dataset.tasks[t], out_dim, spec.head_hidden) for t in tasks})

    def forward(self, x, tasks=None):
        columns = [self.columns[t] for t in self.tasks]
        pad = columns[0].stem.pad_mask(x)
        hs = [c.stem(x) for c in columns]
        # Every column is needed even for one task: the units mix them all.
        for level, alpha in enumerate(self.stitches):
            stacked = torch.stack([c.layers[level](h, pad) for c, h in zip(columns, hs)])  # (T, B, ...)
            mixed = torch.einsum("ts,s...->t...", alpha, stacked)
            hs = list(mixed.unbind(0))
        mask = self.mask(x)
        by_task = dict(zip(self.tasks, hs))
        return {t: self.heads[t](by_task[t], mask) for t in (tasks or self.tasks)}

    def blocks(self):
        everyone = tuple(self.tasks)
        out = []
        for t in self.tasks:
            out.append(Block(f"column {t} embedding", self.columns[t].stem, everyone))
            out += [Block(f"column {t} layer {k}", layer, everyone)
                    for k, layer in enumerate(self.columns[t].layers, start=1)]
        out += [Block(f"cross-stitch {k}", alpha, everyone) for k, alpha in enumerate(self.stitches, start=1)]
        out += [Block(f"head {t}", self.heads[t], (t,)) for t in self.tasks]
        return out

    def stitch_matrices(self) -> list[list[list[float]]]:
        """α^(l) of every layer as nested lists (for the dashboard: how much tasks mix)."""
        return [alpha.detach().cpu().tolist() for alpha in self.stitches]
