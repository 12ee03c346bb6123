"""Hierarchical supervision (Søgaard & Goldberg, ACL 2016): tasks read different depths."""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field, field_validator
from torch import nn

from mtl_core.errors import ConfigError
from mtl_core.models.heads import TaskHead
from mtl_core.models.sharing import Block, BlockModel, register_sharing, require_tasks
from mtl_core.models.stack import LayerStack
from mtl_core.spec import ModelSpec, StrictModel
from mtl_core.tasks.base import MTLDataset

# Task names read as "part of speech"-like (low-level syntax) when choosing default depths.
POS_LIKE = ("pos", "upos", "xpos", "morph", "lemma")


class HierarchicalOptions(StrictModel):
    depths: dict[str, int] | None = Field(
        None,
        description="task -> 1-based encoder layer its head reads; tasks left out get the default "
        "(token data: POS-like tagging lowest, other tagging above, sentence tasks on top; "
        "vector data: spread over the layers in task order)",
    )

    @field_validator("depths")
    @classmethod
    def _positive(cls, v: dict[str, int] | None) -> dict[str, int] | None:
        for task, depth in (v or {}).items():
            if depth < 1:
                raise ValueError(
                    f"task {task!r} has depth {depth}; depths are 1-based layer indices (1 = first layer)"
                )
        return v


def default_depths(dataset: MTLDataset, tasks: list[str], n_layers: int) -> dict[str, int]:
    """Søgaard & Goldberg's ordering: low-level tasks low in the stack, high-level ones on top.

    Token data: rank 0 = POS-like tagging (name in POS_LIKE), 1 = other tagging (NER,
    chunking, ...), 2 = sentence-level tasks. Vector data: rank = task order. The r-th of
    m ranks present reads layer ⌈(r+1)·K/m⌉ of K, so the top rank reads the last layer.
    """

    def rank(task: str) -> int:
        if dataset.input_kind != "tokens":
            return tasks.index(task)
        if dataset.tasks[task].kind != "tagging":
            return 2
        return 0 if task.lower() in POS_LIKE else 1

    ranks = sorted({rank(t) for t in tasks})
    return {t: math.ceil((ranks.index(rank(t)) + 1) * n_layers / len(ranks)) for t in tasks}


def check_depths(options: HierarchicalOptions, *, tasks: list[str], model: ModelSpec) -> None:
    """Refuse a depth for a task not in the run or outside the stack (ConfigError).

    Needs only the task list and `model.hidden`, so the config can call it (registry
    extra `check`) before any baseline trains; the model calls it again when built.
    """
    n_layers = len(model.hidden)
    for task, depth in (options.depths or {}).items():
        if task not in tasks:
            raise ConfigError(
                f"sharing.options.depths: {task!r} is not a task of this run ({', '.join(tasks)}); "
                "remove it or tick that task"
            )
        if not 1 <= depth <= n_layers:
            raise ConfigError(
                f"sharing.options.depths: task {task!r} has depth {depth} but the encoder has "
                f"{n_layers} layer(s) (model.hidden = {model.hidden}); give a depth from 1 to {n_layers}, "
                "or add layers to model.hidden"
            )


def resolve_depths(
    dataset: MTLDataset, tasks: list[str], options: HierarchicalOptions, spec: ModelSpec
) -> dict[str, int]:
    """The default depths overridden by `options.depths` (checked first)."""
    check_depths(options, tasks=tasks, model=spec)
    return {**default_depths(dataset, tasks, len(spec.hidden)), **(options.depths or {})}


@register_sharing(
    "hierarchical",
    description="One shared stack; each task's head reads the layer of its depth (low-level tasks low).",
    paper="Søgaard & Goldberg, ACL 2016 (Deep multi-task learning with low level tasks supervised at lower layers)",
    formula=r"\hat y_t = f_t\big(h^{(d_t)}\big),\quad h^{(k)}=g_k\big(h^{(k-1)}\big),\; h^{(0)}=x,\quad L=\sum_t w_t L_t",
    options=HierarchicalOptions,
    diagram="hierarchical",
    min_tasks=2,
    check=check_depths,
)
class Hierarchical(BlockModel):
    """Tasks supervised at different depths of one shared stack (Søgaard & Goldberg, 2016).

    ŷ_t = f_t(h^{(d_t)}) with h^{(k)} = g_k(h^{(k−1)}): the head of task t reads layer d_t
    (`depths`), so e.g. POS tags are predicted from layer 1, entity tags from layer 2 and
    sentence labels from the top. Layer k is reached by every task with d_t ≥ k: it is
    shared when two or more tasks sit at or above it, and belongs to one task otherwise.
    Layers above the deepest supervised one would get no gradient, so they are not built.
    """

    def __init__(self, dataset: MTLDataset, tasks: list[str], spec: ModelSpec, options: Any) -> None:
        super().__init__(dataset, tasks, spec, options)
        require_tasks("hierarchical", tasks, 2)
        self.depths = resolve_depths(dataset, tasks, options, spec)
        self.stack = LayerStack(dataset, spec, depth=max(self.depths.values()))
        self.heads = nn.ModuleDict(
            {t: TaskHead(dataset.tasks[t], self.stack.widths[self.depths[t] - 1], spec.head_hidden) for t in tasks}
        )

    def forward(self, x, tasks=None):
        tasks = tasks or self.tasks
        levels = self.stack(x, depth=max(self.depths[t] for t in tasks))
        mask = self.mask(x)
        return {t: self.heads[t](levels[self.depths[t] - 1], mask) for t in tasks}

    def blocks(self):
        out = [Block("embedding", self.stack.stem, tuple(self.tasks))]
        for k, layer in enumerate(self.stack.layers, start=1):
            out.append(Block(f"layer {k}", layer, tuple(t for t in self.tasks if self.depths[t] >= k), "layer", k))
        out += [Block(f"head {t} (layer {self.depths[t]})", self.heads[t], (t,), "head", self.depths[t])
                for t in self.tasks]
        return out
