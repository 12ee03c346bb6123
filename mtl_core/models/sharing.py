"""Sharing modes: how much of the network the tasks share.

Each mode is a `MultiTaskModel` registered with `@register_sharing(name, ...)`. A mode
states which parameters are shared (`shared_parameters`), which belong to one task
(`task_parameters`), and may add a regulariser to the loss (soft sharing). Weighting
strategies and the interference analysis read the shared parameters from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from mtl_core.errors import ConfigError
from mtl_core.models.encoders import build_encoder
from mtl_core.models.heads import TaskHead
from mtl_core.registry import NoOptions, Registry
from mtl_core.spec import ModelSpec, StrictModel
from mtl_core.tasks.base import PAD_ID, MTLDataset


class MultiTaskModel(nn.Module):
    """x -> {task: output}. Subclasses define the encoders and what is shared.

    `shared_rep` is the representation every task head reads, as computed by the last
    forward pass (with its graph), for methods that balance gradients with respect to
    the shared representation instead of the shared parameters (e.g. MGDA-UB, Sener &
    Koltun, 2018); None for modes without one common representation.
    """

    shared_rep: torch.Tensor | None = None
    #: Registry name, set on the class by `register_sharing` (read by error messages).
    registry_name: ClassVar[str] = ""

    def __init__(self, dataset: MTLDataset, tasks: list[str], spec: ModelSpec, options: Any) -> None:
        super().__init__()
        self.tasks = list(tasks)
        self.token_input = dataset.input_kind == "tokens"
        self.options = options

    def mask(self, x: torch.Tensor) -> torch.Tensor | None:
        return (x != PAD_ID) if self.token_input else None

    def forward(self, x: torch.Tensor, tasks: list[str] | None = None) -> dict[str, torch.Tensor]:
        raise NotImplementedError  # abstract: every registered mode overrides it

    def shared_parameters(self) -> list[nn.Parameter]:
        """Parameters that receive gradient from more than one task."""
        return []

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        """Parameters that only `task`'s loss reaches."""
        return []

    def regularizer(self) -> torch.Tensor | None:
        """An extra term added to the training loss (None when the mode has none)."""
        return None

    def parameter_counts(self) -> dict[str, int]:
        count = lambda ps: sum(p.numel() for p in ps)  # noqa: E731
        return {
            "total": count(self.parameters()),
            "shared": count(self.shared_parameters()),
            **{f"task:{t}": count(self.task_parameters(t)) for t in self.tasks},
        }


@dataclass(frozen=True)
class Block:
    """A named piece of a network and the tasks whose loss reaches it.

    `tasks` is what the mode's wiring implies (which outputs depend on the block), not
    a measurement: a block with two or more tasks is shared, one with one task belongs
    to that task. `role` ("expert", "gate", "layer", "attention", "head", ...; "" when
    the name says enough) and `level` (1-based depth: a PLE extraction level, a layer of
    a stack) let the dashboard draw its diagram from the model instead of from a guess.
    """

    name: str
    module: nn.Module | nn.Parameter
    tasks: tuple[str, ...]
    role: str = ""
    level: int | None = None

    def parameters(self) -> list[nn.Parameter]:
        return [self.module] if isinstance(self.module, nn.Parameter) else list(self.module.parameters())


class BlockModel(MultiTaskModel):
    """A mode that lists its blocks (`blocks()`); what is shared follows from them.

    shared = the blocks more than one task's loss reaches; task_parameters(t) = the
    blocks only t's loss reaches. `describe_blocks()` is the same list for the
    dashboard's diagram and parameter table.
    """

    def blocks(self) -> list[Block]:
        raise NotImplementedError  # abstract: every block-listing mode overrides it

    def shared_parameters(self) -> list[nn.Parameter]:
        return [p for b in self.blocks() if len(b.tasks) > 1 for p in b.parameters()]

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return [p for b in self.blocks() if b.tasks == (task,) for p in b.parameters()]

    def describe_blocks(self) -> list[dict[str, Any]]:
        """[{name, tasks, shared, params, role, level}] in forward order."""
        return [
            {"name": b.name, "tasks": list(b.tasks), "shared": len(b.tasks) > 1,
             "params": sum(p.numel() for p in b.parameters()), "role": b.role, "level": b.level}
            for b in self.blocks()
            if any(True for _ in b.parameters())  # e.g. the stem of vector inputs has none
        ]


def require_tasks(name: str, tasks: list[str], minimum: int) -> None:
    """Refuse to build mode `name` with fewer than `minimum` tasks (the config checks first)."""
    if len(tasks) < minimum:
        raise ConfigError(
            f"sharing: {name!r} needs at least {minimum} tasks; this run has {len(tasks)}. "
            "Tick more tasks or choose another sharing mode"
        )


SHARING: Registry[Callable[..., MultiTaskModel]] = Registry("sharing mode")


def register_sharing(name: str, **kwargs: Any):
    """Register a sharing mode (kwargs: description, paper, formula, options, min_tasks, diagram).

    The name is also recorded on the class (`registry_name`), so code that holds a model
    can name its mode without importing this registry.
    """

    def decorate(cls: type[MultiTaskModel]) -> type[MultiTaskModel]:
        cls.registry_name = name
        return SHARING.register(name, **kwargs)(cls)

    return decorate


def build_model(
    name: str, dataset: MTLDataset, tasks: list[str], spec: ModelSpec, options: dict[str, Any] | None = None
) -> MultiTaskModel:
    entry = SHARING.get(name, field_name="sharing.name")
    opts = entry.parse_options(options, where="sharing")
    return entry.obj(dataset, tasks, spec, opts)


def _heads(dataset: MTLDataset, tasks: list[str], in_dim: int, spec: ModelSpec) -> nn.ModuleDict:
    return nn.ModuleDict({t: TaskHead(dataset.tasks[t], in_dim, spec.head_hidden) for t in tasks})


@register_sharing(
    "single_task",
    description="No sharing: an independent encoder and head per task (the single-task baseline).",
    paper="Caruana, 1997 (the reference point multi-task learning is measured against)",
    formula=r"\min_{\theta_t}\; L_t\big(f_t(g(x;\theta_t))\big)\quad\text{for each task } t",
    options=NoOptions,
    diagram="separate",
)
class SingleTask(MultiTaskModel):
    def __init__(self, dataset, tasks, spec, options):
        super().__init__(dataset, tasks, spec, options)
        self.encoders = nn.ModuleDict({t: build_encoder(dataset, spec) for t in tasks})
        self.heads = _heads(dataset, tasks, self.encoders[tasks[0]].out_dim, spec)

    def forward(self, x, tasks=None):
        mask = self.mask(x)
        return {t: self.heads[t](self.encoders[t](x), mask) for t in (tasks or self.tasks)}

    def task_parameters(self, task):
        return [*self.encoders[task].parameters(), *self.heads[task].parameters()]


@register_sharing(
    "hard",
    description="Hard parameter sharing: one shared encoder, one small head per task.",
    paper="Caruana, 1997 (Multitask Learning, Machine Learning 28)",
    formula=r"\hat y_t = f_t\big(g(x;\theta_s);\theta_t\big),\quad L=\sum_t w_t L_t",
    options=NoOptions,
    diagram="shared",
)
class HardSharing(MultiTaskModel):
    def __init__(self, dataset, tasks, spec, options):
        super().__init__(dataset, tasks, spec, options)
        self.encoder = build_encoder(dataset, spec)
        self.heads = _heads(dataset, tasks, self.encoder.out_dim, spec)

    def forward(self, x, tasks=None):
        z = self.encoder(x)
        self.shared_rep = z
        mask = self.mask(x)
        return {t: self.heads[t](z, mask) for t in (tasks or self.tasks)}

    def shared_parameters(self):
        return list(self.encoder.parameters()) if len(self.tasks) > 1 else []

    def task_parameters(self, task):
        own = list(self.heads[task].parameters())
        return own + (list(self.encoder.parameters()) if len(self.tasks) == 1 else [])


class SoftOptions(StrictModel):
    lam: float = Field(
        1e-3, ge=0, allow_inf_nan=False,
        description="λ, strength of the L2 pull between the task encoders",
    )
    penalty: Literal["mean", "pairwise"] = Field(
        "mean",
        description="mean: λ·Σ_t‖θ_t − θ̄‖² (pull towards the mean encoder); "
        "pairwise: λ·Σ_{i≠j}‖θ_i − θ_j‖² (every pair, Duong et al., 2015)",
    )


@register_sharing(
    "soft",
    description="Soft parameter sharing: one encoder per task, an L2 penalty keeps them close.",
    paper="Duong et al., ACL 2015 (L2 distance between task parameters); survey: Ruder, 2017",
    formula=(
        r"L=\sum_t w_t L_t+\lambda\,\Omega,\quad"
        r"\Omega_{\text{mean}}=\sum_t\lVert\theta_t-\bar\theta\rVert_2^2,\;"
        r"\Omega_{\text{pairwise}}=\sum_{i\neq j}\lVert\theta_i-\theta_j\rVert_2^2"
    ),
    options=SoftOptions,
    diagram="soft",
)
class SoftSharing(SingleTask):
    """Task encoders θ_t tied by an L2 penalty (Duong et al., ACL 2015).

    penalty="mean": λ·Σ_t ‖θ_t − θ̄‖² (θ̄ the mean encoder); penalty="pairwise":
    λ·Σ_{i≠j} ‖θ_i − θ_j‖² over ordered pairs, Duong et al.'s distance between every two
    task models. The two differ by a constant factor, Σ_{i≠j}‖θ_i − θ_j‖² =
    2T·Σ_t‖θ_t − θ̄‖², so "pairwise" is computed from the mean form (O(T) memory, not
    O(T²)); the same λ pulls 2T times harder with it.

    No parameter is shared outright: each task's gradient reaches only its own encoder,
    and the penalty is what transfers knowledge between them. d/dθ_t of the mean form is
    2λ(θ_t − θ̄) because Σ_t (θ_t − θ̄) = 0, so θ̄ need not be detached.
    """

    def regularizer(self):
        if len(self.tasks) < 2:
            return None
        per_task = [list(self.encoders[t].parameters()) for t in self.tasks]
        total = per_task[0][0].new_zeros(())
        for group in zip(*per_task):  # the same tensor position in every task's encoder
            stacked = torch.stack(group)
            total = total + ((stacked - stacked.mean(0, keepdim=True)) ** 2).sum()
        if self.options.penalty == "pairwise":
            total = 2 * len(self.tasks) * total
        return self.options.lam * total
