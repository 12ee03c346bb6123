"""Mixtures of experts for multi-task learning: MMoE (Ma et al., KDD 2018), CGC and PLE
(Tang, Liu, Zhao & Gong, RecSys 2020).

An expert is an encoder of the run's sizes (`model.hidden`): for vectors an MLP, for
token inputs a stack of BiGRU/conv/transformer layers (see `stack.LayerStack`)
over one token embedding that all experts and gates share, as MMoE's experts share the
input embedding in the paper. A gate is a softmax over experts of a linear map of its
input (no bias, as the paper's g(x) = softmax(W_g x)); for token inputs a gate reads the
mean over real tokens of its input (at the first level the embeddings), so one mix of
experts is chosen per sentence and applied at every position.

Each model records the gate weights of its last forward pass, averaged over the batch
(`last_gates`), and `gate_weights()` names them, so a run can log which experts each
task uses.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field
from torch import nn

from mtl_core.models.heads import TaskHead
from mtl_core.models.sharing import Block, BlockModel, register_sharing
from mtl_core.models.stack import Stem, build_layers, pool, run_layers
from mtl_core.spec import ModelSpec, StrictModel
from mtl_core.tasks.base import MTLDataset


def mix(gate: torch.Tensor, experts: list[torch.Tensor]) -> torch.Tensor:
    """Σ_e g_e · expert_e with gate (B, E) and experts of shape (B, H) or (B, L, H)."""
    stacked = torch.stack(experts, dim=1)  # (B, E, ...)
    g = gate.reshape(gate.shape + (1,) * (stacked.dim() - 2))
    return (g * stacked).sum(1)


class GatedExperts(BlockModel):
    """What MMoE, CGC and PLE have in common: a stem, experts, gates and gate logging."""

    last_gates: dict[str, torch.Tensor]

    def __init__(self, dataset: MTLDataset, tasks: list[str], spec: ModelSpec, options: Any) -> None:
        super().__init__(dataset, tasks, spec, options)
        self.stem = Stem(dataset, spec)
        self.spec = spec
        self.last_gates = {}

    def expert(self, in_dim: int) -> nn.ModuleList:
        return build_layers(self.stem.kind, in_dim, self.spec)

    def expert_names(self, task: str) -> list[str]:
        """Names of the experts task `task`'s (last) gate mixes, in gate order."""
        raise NotImplementedError  # abstract

    def _record(self, task: str, gate: torch.Tensor) -> None:
        # Detached and left on the device: no host sync in the training loop.
        self.last_gates[task] = gate.detach().mean(0)

    def gate_weights(self) -> dict[str, dict[str, float]]:
        """{task: {expert name: mean gate weight}} of the last forward pass (each sums to 1)."""
        return {
            t: dict(zip(self.expert_names(t), g.cpu().tolist())) for t, g in self.last_gates.items()
        }


class MMoEOptions(StrictModel):
    n_experts: int = Field(4, ge=1, le=64, description="E, number of shared experts")


@register_sharing(
    "mmoe",
    description="Shared experts; each task mixes them with its own softmax gate.",
    paper="Ma, Zhao, Yi, Chen, Hong & Chi, KDD 2018 (Multi-gate Mixture-of-Experts)",
    formula=(
        r"\hat y_t=f_t\Big(\sum_{e=1}^{E} g_{t,e}(x)\,E_e(x)\Big),\quad"
        r"g_t(x)=\operatorname{softmax}(W_{g_t}x)"
    ),
    options=MMoEOptions,
    diagram="experts",
    min_tasks=1,
)
class MMoE(GatedExperts):
    """Multi-gate Mixture-of-Experts (Ma et al., KDD 2018).

        y_t = f_t(Σ_e g_t,e(x) · E_e(x)),   g_t(x) = softmax(W_gt x)

    E experts E_e shared by all tasks; one gate per task decides how much of each expert
    that task reads, so tasks that conflict can use different experts. What is shared:
    the experts (and the token embedding); each task's gate and head are its own.
    """

    def __init__(self, dataset, tasks, spec, options):
        super().__init__(dataset, tasks, spec, options)
        self.experts = nn.ModuleList([self.expert(self.stem.out_dim) for _ in range(options.n_experts)])
        gate_in = self.stem.out_dim
        self.gates = nn.ModuleDict({t: nn.Linear(gate_in, options.n_experts, bias=False) for t in tasks})
        out_dim = self.experts[0][-1].out_dim
        self.heads = nn.ModuleDict({t: TaskHead(dataset.tasks[t], out_dim, spec.head_hidden) for t in tasks})

    def expert_names(self, task):
        return [f"expert {e + 1}" for e in range(len(self.experts))]

    def forward(self, x, tasks=None):
        pad = self.stem.pad_mask(x)
        h0 = self.stem(x)
        expert_out = [run_layers(e, h0, pad) for e in self.experts]
        gate_in = pool(h0, pad)
        mask = self.mask(x)
        out = {}
        for t in tasks or self.tasks:
            g = torch.softmax(self.gates[t](gate_in), dim=-1)
            self._record(t, g)
            out[t] = self.heads[t](mix(g, expert_out), mask)
        return out

    def blocks(self):
        everyone = tuple(self.tasks)
        out = [Block("embedding", self.stem, everyone)]
        out += [Block(f"expert {e}", ex, everyone, "expert", 1) for e, ex in enumerate(self.experts, start=1)]
        out += [Block(f"gate {t}", self.gates[t], (t,), "gate", 1) for t in self.tasks]
        out += [Block(f"head {t}", self.heads[t], (t,), "head") for t in self.tasks]
        return out


class CGCOptions(StrictModel):
    n_shared_experts: int = Field(2, ge=1, le=32, description="experts every task's gate may use")
    n_task_experts: int = Field(1, ge=1, le=32, description="experts of each task's own")


class PLEOptions(CGCOptions):
    levels: int = Field(
        2, ge=1, le=8,
        description="extraction levels stacked (1 = CGC); each level's experts are encoders of model.hidden",
    )


class ProgressiveLayeredExtraction(GatedExperts):
    """PLE and its one-level case CGC (Tang, Liu, Zhao & Gong, RecSys 2020).

    Customized Gate Control (one level): shared experts E_s,· and task-specific experts
    E_t,· ; task t's gate mixes its own and the shared experts only,

        y_t = f_t(Σ_e g_t,e(x) · S_t,e(x)),   S_t = [E_t,1..m_t, E_s,1..m_s],
        g_t(x) = softmax(W_t x).

    PLE stacks `levels` extraction networks: at level j the task-t branch mixes
    S_t^j(x_t^j) with gate input x_t^j (its previous level's output), and, at every level
    but the last, a shared gate mixes *all* experts of that level (the shared ones and
    every task's) into the next level's shared input x_s^(j+1). Every level's experts
    are encoders of `model.hidden` widths, so PLE with L levels is L times deeper.

    What is shared follows from that wiring: the shared experts, the shared gates and
    the embedding reach every task; a task's own experts at a level below the last feed
    the shared gate, so every task's loss reaches them too and they count as shared;
    a task's own experts at the last level, its gate at the last level and at the level
    below it, and its head belong to it alone. `last_gates` holds the last level's gates.
    """

    def __init__(self, dataset, tasks, spec, options, *, levels: int):
        super().__init__(dataset, tasks, spec, options)
        self.n_levels = levels
        n_s, n_t, T = options.n_shared_experts, options.n_task_experts, len(tasks)
        self.shared_experts = nn.ModuleList()
        self.task_experts = nn.ModuleList()  # level -> task -> experts
        self.task_gates = nn.ModuleList()
        self.shared_gates = nn.ModuleList()  # levels 1 .. L-1
        in_dim = self.stem.out_dim
        for level in range(levels):
            self.shared_experts.append(nn.ModuleList([self.expert(in_dim) for _ in range(n_s)]))
            self.task_experts.append(nn.ModuleDict(
                {t: nn.ModuleList([self.expert(in_dim) for _ in range(n_t)]) for t in tasks}
            ))
            self.task_gates.append(nn.ModuleDict({t: nn.Linear(in_dim, n_t + n_s, bias=False) for t in tasks}))
            if level < levels - 1:
                self.shared_gates.append(nn.Linear(in_dim, n_s + T * n_t, bias=False))
            in_dim = self.shared_experts[-1][0][-1].out_dim
        self.heads = nn.ModuleDict({t: TaskHead(dataset.tasks[t], in_dim, spec.head_hidden) for t in tasks})

    def expert_names(self, task):
        n_t, n_s = self.options.n_task_experts, self.options.n_shared_experts
        return [f"{task} {e + 1}" for e in range(n_t)] + [f"shared {e + 1}" for e in range(n_s)]

    def forward(self, x, tasks=None):
        tasks = tasks or self.tasks
        pad = self.stem.pad_mask(x)
        h0 = self.stem(x)
        shared_in, task_in = h0, {t: h0 for t in self.tasks}
        for level in range(self.n_levels):
            last = level == self.n_levels - 1
            # Below the last level the shared gate needs every task's experts.
            active = tasks if last else self.tasks
            shared_out = [run_layers(e, shared_in, pad) for e in self.shared_experts[level]]
            own = {t: [run_layers(e, task_in[t], pad) for e in self.task_experts[level][t]] for t in active}
            new_task_in = {}
            for t in active:
                g = torch.softmax(self.task_gates[level][t](pool(task_in[t], pad)), dim=-1)
                if last:
                    self._record(t, g)
                new_task_in[t] = mix(g, own[t] + shared_out)
            if not last:
                g_s = torch.softmax(self.shared_gates[level](pool(shared_in, pad)), dim=-1)
                shared_in = mix(g_s, shared_out + [z for t in self.tasks for z in own[t]])
            task_in = new_task_in
        mask = self.mask(x)
        return {t: self.heads[t](task_in[t], mask) for t in tasks}

    def blocks(self):
        everyone = tuple(self.tasks)
        L = self.n_levels
        out = [Block("embedding", self.stem, everyone)]
        for level in range(L):
            j = level + 1
            out += [Block(f"level {j} shared expert {e}", ex, everyone, "expert", j)
                    for e, ex in enumerate(self.shared_experts[level], start=1)]
            for t in self.tasks:
                # Below the last level a task's experts feed the shared gate: every task.
                reach = (t,) if level == L - 1 else everyone
                out += [Block(f"level {j} {t} expert {e}", ex, reach, "task expert", j)
                        for e, ex in enumerate(self.task_experts[level][t], start=1)]
                # Task t's gate output is t's input at the next level, whose experts
                # feed the shared gate unless that next level is the last.
                reach = (t,) if level >= L - 2 else everyone
                out.append(Block(f"level {j} gate {t}", self.task_gates[level][t], reach, "gate", j))
            if level < L - 1:
                out.append(Block(f"level {j} shared gate", self.shared_gates[level], everyone, "shared gate", j))
        out += [Block(f"head {t}", self.heads[t], (t,), "head") for t in self.tasks]
        return out


_CGC_FORMULA = (
    r"\hat y_t=f_t\Big(\sum_{e} g_{t,e}(x)\,S_{t,e}(x)\Big),\quad"
    r"S_t=[E_{t,1..m_t},\,E_{s,1..m_s}],\quad g_t(x)=\operatorname{softmax}(W_t x)"
)


@register_sharing(
    "cgc",
    description="Shared experts plus each task's own experts; a task's gate mixes only its own and the shared ones.",
    paper="Tang, Liu, Zhao & Gong, RecSys 2020 (Progressive Layered Extraction), Customized Gate Control",
    formula=_CGC_FORMULA,
    options=CGCOptions,
    diagram="experts",
    min_tasks=1,
)
class CGC(ProgressiveLayeredExtraction):
    """Customized Gate Control: PLE with one extraction level (Tang et al., 2020)."""

    def __init__(self, dataset, tasks, spec, options):
        super().__init__(dataset, tasks, spec, options, levels=1)


@register_sharing(
    "ple",
    description="Progressive Layered Extraction: CGC levels stacked, a shared gate passes all experts upward.",
    paper="Tang, Liu, Zhao & Gong, RecSys 2020 (Progressive Layered Extraction)",
    formula=(
        r"x^{(j+1)}_t=\sum_e g^{(j)}_{t,e}(x^{(j)}_t)\,S^{(j)}_{t,e},\quad"
        r"x^{(j+1)}_s=\sum_e g^{(j)}_{s,e}(x^{(j)}_s)\,S^{(j)}_{s,e},\quad"
        r"S^{(j)}_s=[E^{(j)}_{1..T},E^{(j)}_s],\quad \hat y_t=f_t\big(x^{(L+1)}_t\big)"
    ),
    options=PLEOptions,
    diagram="experts",
    min_tasks=1,
)
class PLE(ProgressiveLayeredExtraction):
    """Progressive Layered Extraction with `levels` extraction networks (Tang et al., 2020)."""

    def __init__(self, dataset, tasks, spec, options):
        super().__init__(dataset, tasks, spec, options, levels=options.levels)
