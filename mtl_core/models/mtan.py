"""Multi-Task Attention Network, MTAN (Liu, Johns & Davison, CVPR 2019)."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field
from torch import nn

from mtl_core.models.heads import TaskHead
from mtl_core.models.sharing import Block, BlockModel, register_sharing
from mtl_core.models.stack import LayerStack
from mtl_core.spec import ModelSpec, StrictModel
from mtl_core.tasks.base import MTLDataset


class MTANOptions(StrictModel):
    fixed_attention: bool = Field(
        False,
        description="fix every attention mask at 1 (no attention modules): the model becomes hard "
        "sharing, for comparison",
    )


class AttentionModule(nn.Module):
    """a = h(g(input)): g = Linear-ReLU, h = Linear-sigmoid, one mask value per feature.

    The paper's g and h are 1×1 convolutions with batch norm; on vectors and per token a
    1×1 convolution is a Linear layer (batch norm left out: batches here are small).
    """

    def __init__(self, in_dim: int, width: int) -> None:
        super().__init__()
        self.g = nn.Sequential(nn.Linear(in_dim, width), nn.ReLU())
        self.h = nn.Sequential(nn.Linear(width, width), nn.Sigmoid())

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        return self.h(self.g(inp))


@register_sharing(
    "mtan",
    description="A shared backbone; each task picks features at every level with its own soft-attention masks.",
    paper="Liu, Johns & Davison, CVPR 2019 (End-to-End Multi-Task Learning with Attention)",
    formula=(
        r"\hat a^{(l)}_t=a^{(l)}_t\odot s^{(l)},\quad"
        r"a^{(l)}_t=\sigma\Big(h^{(l)}_t\big(g^{(l)}_t\big([\,s^{(l)};\,f^{(l)}(\hat a^{(l-1)}_t)\,]\big)\big)\Big),\quad"
        r"\hat y_t=f_t\big(\hat a^{(K)}_t\big)"
    ),
    options=MTANOptions,
    diagram="attention",
    min_tasks=1,
)
class MTAN(BlockModel):
    """Shared backbone with task-specific soft-attention at every level (Liu et al., 2019).

    s^(l) is the shared backbone's output at level l. Task t's attended feature is

        â_t^(l) = a_t^(l) ⊙ s^(l),   a_t^(l) = σ(h_t^(l)(g_t^(l)([s^(l); f^(l)(â_t^(l−1))]))),

    with only s^(1) as the input at the first level; the head of t reads â_t^(K). g and h
    belong to task t; f^(l) (Linear-ReLU mapping the previous attended feature to the
    width of level l, the paper's 3×3 conv block) is one module used by every task, as in
    the authors' code. In the paper the mask is computed from the block's intermediate
    feature u^(l) and applied to its output p^(l); our levels are single layers, so both
    are s^(l). For token inputs the masks are per position and feature.

    What is shared: the backbone and the f^(l) (every task's mask reads them); g_t, h_t
    and the head of t belong to t. With `fixed_attention` the masks are 1, no attention
    module is built, and the model is hard sharing with the same backbone.
    """

    def __init__(self, dataset: MTLDataset, tasks: list[str], spec: ModelSpec, options: Any) -> None:
        super().__init__(dataset, tasks, spec, options)
        self.backbone = LayerStack(dataset, spec)
        widths = self.backbone.widths
        self.heads = nn.ModuleDict({t: TaskHead(dataset.tasks[t], widths[-1], spec.head_hidden) for t in tasks})
        self.fixed = bool(options.fixed_attention)
        if self.fixed:
            return
        self.shared_f = nn.ModuleList(
            [nn.Sequential(nn.Linear(widths[l - 1], widths[l]), nn.ReLU()) for l in range(1, len(widths))]
        )
        self.attention = nn.ModuleDict({
            t: nn.ModuleList(
                [AttentionModule(w if l == 0 else 2 * w, w) for l, w in enumerate(widths)]
            )
            for t in tasks
        })

    def forward(self, x, tasks=None):
        tasks = tasks or self.tasks
        levels = self.backbone(x)
        mask = self.mask(x)
        if self.fixed:
            self.shared_rep = levels[-1]
            return {t: self.heads[t](levels[-1], mask) for t in tasks}
        out = {}
        for t in tasks:
            attended = None
            for l, (s, att) in enumerate(zip(levels, self.attention[t])):
                inp = s if attended is None else torch.cat([s, self.shared_f[l - 1](attended)], dim=-1)
                attended = att(inp) * s
            out[t] = self.heads[t](attended, mask)
        return out

    def blocks(self):
        everyone = tuple(self.tasks)
        out = [Block("embedding", self.backbone.stem, everyone)]
        out += [Block(f"backbone layer {k}", layer, everyone)
                for k, layer in enumerate(self.backbone.layers, start=1)]
        if not self.fixed:
            out += [Block(f"shared f {k + 1}", f, everyone) for k, f in enumerate(self.shared_f, start=1)]
            for t in self.tasks:
                out += [Block(f"attention {t} level {k}", att, (t,), "attention", k)
                        for k, att in enumerate(self.attention[t], start=1)]
        out += [Block(f"head {t}", self.heads[t], (t,)) for t in self.tasks]
        return out
