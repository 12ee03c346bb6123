"""The mechanics every gradient-based strategy shares: per-task gradients in, one update out.

Once per step a `GradientWeighting`
1. computes G, the T × K matrix of per-task gradients: on the shared parameters
   (`mode="params"`, K = number of shared weights) or on the shared representation
   (`mode="rep"`, K = batch × representation size; MGDA-UB, Sener & Koltun, 2018);
2. asks its `aggregate` (the method proper) for an `Update`: the combination weights c
   with d = cᵀG, or a direction d of its own (PCGrad-style surgery, GradDrop), plus the
   weights that the task-specific parameters (the heads) receive;
3. writes d into the shared parameters' `.grad` (params mode), or back-propagates d from
   the representation through the encoder (rep mode), and back-propagates Σ_t w_t L_t
   into the task-specific parameters only.

Speed (reference workload of `bench/throughput.py`, 1 CPU thread; `bench/weighting.py
--jacobian`): one `torch.autograd.grad` call per task, started at the task's own loss
node rather than at `losses[t]`, was the fastest way to get G (forward + G ≈ 2.1× a
forward and one backward pass, against 2.4× starting at `losses[t]`, whose backward
also pushes zero gradients through every other task's head, and 2.5× for one batched
`is_grads_batched`/vmap call, whose dispatch overhead outweighs the batching at these
sizes). Each per-task call also returns that task's head gradients, so the heads need
no further pass. G lives in a buffer reused across steps (`torch.cat(out=...)`: no
allocation), the T × T work runs in NumPy on the CPU (see `solvers`), and nothing here
reads a device value back to the host.

Representation mode assumes what `MultiTaskModel.shared_rep` promises: every path from
a task loss to the shared parameters passes through the representation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, NamedTuple

import torch
from pydantic import Field
from torch import nn
from torch.autograd.graph import GradientEdge

from mtl_core.spec import StrictModel
from mtl_core.weighting.base import ModelNeed, WeightingStrategy
from mtl_core.weighting.solvers import Array, Ops, WarmStart, gramian


class GradOptions(StrictModel):
    """Options every gradient method that can work on the representation takes."""

    mode: Literal["params", "rep"] = Field(
        "params",
        description="params: per-task gradients on the shared parameters (exact); rep: on the shared "
        "representation (one backward through the encoder, cheaper; Sener & Koltun, 2018's MGDA-UB)",
    )


class Update(NamedTuple):
    """What a gradient method decides for one step.

    weights: (T,) the coefficients c of the update d = Σ_t c_t g_t (also what is logged as
        the step's effective weights); for a method whose d is no such combination, the
        weights it reports instead (documented per method).
    direction: (K,) the update in G's space, or None for d = weightsᵀ G.
    task_weights: (T,) the weight of each task's loss for its own task-specific parameters
        (heads), or None to use `weights`.
    """

    weights: torch.Tensor
    direction: torch.Tensor | None = None
    task_weights: torch.Tensor | None = None


@dataclass
class _Plan:
    """Which parameters get what, worked out once per model."""

    model: nn.Module
    shared: list[nn.Parameter]
    own: list[list[nn.Parameter]]  # per task: parameters only that task's loss reaches
    others: list[nn.Parameter]  # trainable, neither shared nor one task's own
    trainable: list[nn.Parameter]
    non_shared: list[nn.Parameter]  # own + others: what the heads' backward pass reaches
    offsets: list[tuple[int, int]] = field(default_factory=list)  # (start, numel) of each shared param in G's row


class GradientWeighting(WeightingStrategy):
    """Base of the gradient-based strategies (`requires = "grads"`).

    Subclasses implement `aggregate(G, losses, step) -> Update`. `self.last_grads` holds
    the G of the last step (a buffer overwritten by the next step) so the interference
    snapshot can reuse it; `self.rep_value` holds the representation in rep mode.
    """

    requires: ClassVar[str] = "grads"
    supports_task_sampling: ClassVar[bool] = False

    def __init__(self, tasks: list[str], options: Any, *, base_weights: torch.Tensor) -> None:
        super().__init__(tasks, options, base_weights=base_weights)
        self.mode: str = getattr(options, "mode", "params")
        self.last_grads: torch.Tensor | None = None
        self.rep_value: torch.Tensor | None = None
        self._plan: _Plan | None = None
        self._G: torch.Tensor | None = None
        self._gram: tuple[torch.Tensor, int, Ops, Array] | None = None
        # The last step's active set, for the QP solvers that warm-start from it (MGDA, CAGrad, UPGrad).
        self.warm = WarmStart()
        # Heads of a run with unit manual weights need no multiplication.
        self._unit_base = bool((base_weights == 1).all())

    @classmethod
    def model_needs(cls, options: Any) -> frozenset[ModelNeed]:
        if getattr(options, "mode", "params") == "rep":
            return frozenset({"shared_rep", "shared_parameters"})
        return frozenset({"shared_parameters"})

    def aggregate(self, G: torch.Tensor, losses: torch.Tensor, step: int) -> Update:
        """The method: per-task gradients G (T, K) and the losses -> the update."""
        raise NotImplementedError  # abstract: every registered gradient method overrides it

    def gram(self, G: torch.Tensor) -> tuple[Ops, Array]:
        """(the array library for T × T work, this step's Gramian G Gᵀ as a float64 array).

        Computed once per step: cached on G itself and its version counter, because the
        G buffer is rewritten in place every step. NumPy on the CPU, torch elsewhere
        (see `solvers`).
        """
        cached = self._gram
        if cached is None or cached[0] is not G or cached[1] != G._version:
            xp = Ops.like(G)
            cached = self._gram = (G, G._version, xp, xp.array(gramian(G)))
        return cached[2], cached[3]

    # ---- the step ----------------------------------------------------------------------
    def backward(
        self,
        losses: torch.Tensor,
        *,
        step: int,
        model: nn.Module,
        extra_loss: torch.Tensor | None = None,
        grad_scale: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One step (see the module docstring). With `grad_scale` (fp16 training), the
        per-task backward passes start from the scaled gradient, so float16 activations'
        gradients do not underflow; G is divided back before `aggregate`, so every method
        sees the true float32 gradients, and what is written to `.grad` is scaled again,
        as the GradScaler expects."""
        plan = self._plan_for(model)
        outputs = _task_outputs(losses)
        if grad_scale is not None:
            outputs = [None if o is None else (o[0], o[1] * grad_scale) for o in outputs]
        if self.mode == "rep":
            return self._backward_rep(losses, outputs, plan, model, extra_loss, step, grad_scale)
        return self._backward_params(losses, outputs, plan, extra_loss, step, grad_scale)

    def _backward_params(self, losses, outputs, plan: _Plan, extra_loss, step, grad_scale=None) -> torch.Tensor:
        T, ns = len(self.tasks), len(plan.shared)
        G = self._buffer(T, plan.offsets[-1][0] + plan.offsets[-1][1], plan.shared[0])
        need_graph = bool(plan.others) or extra_loss is not None
        own_grads: list[tuple[torch.Tensor, ...] | None] = []
        live = [t for t in range(T) if outputs[t] is not None]
        for t in range(T):
            if outputs[t] is None:  # a task without a loss this step: a zero row
                G[t].zero_()
                own_grads.append(None)
                continue
            out, grad_out = outputs[t]
            grads = torch.autograd.grad(
                out, [*plan.shared, *plan.own[t]], grad_outputs=grad_out,
                retain_graph=need_graph or t != live[-1], allow_unused=True, materialize_grads=True,
            )
            torch.cat([g.reshape(-1) for g in grads[:ns]], out=G[t])
            own_grads.append(grads[ns:])
        if grad_scale is not None:
            G.div_(grad_scale)
        self.last_grads = G
        update = self.aggregate(G, losses, step)
        weights = update.weights.to(G.dtype)
        d = update.direction if update.direction is not None else weights @ G
        if grad_scale is not None:
            d = d * grad_scale
        for p, (start, n) in zip(plan.shared, plan.offsets):
            p.grad = d[start : start + n].view_as(p)
        task_w = (weights if update.task_weights is None else update.task_weights.to(G.dtype)).detach()
        self._set_own_grads(plan, own_grads, task_w, update)
        if plan.others:
            torch.autograd.backward(_scaled((task_w * losses).sum(), grad_scale), inputs=plan.others,
                                    retain_graph=extra_loss is not None)
        if extra_loss is not None:
            torch.autograd.backward(_scaled(extra_loss, grad_scale), inputs=plan.trainable)
        return weights.detach()

    def _backward_rep(self, losses, outputs, plan: _Plan, model, extra_loss, step, grad_scale=None) -> torch.Tensor:
        z = getattr(model, "shared_rep", None)
        if z is None or not z.requires_grad:
            self.check_model(model)  # raises with the message
            raise AssertionError("shared_rep does not require grad")
        T = len(self.tasks)
        # Under autocast z may be bfloat16/float16; the method works on float32 gradients.
        Z = self._buffer(T, z.numel(), z, dtype=torch.promote_types(z.dtype, torch.float32))
        own_grads: list[tuple[torch.Tensor, ...] | None] = []
        rows = []
        for t in range(T):
            if outputs[t] is None:
                rows.append(torch.zeros(z.numel(), dtype=Z.dtype, device=Z.device))
                own_grads.append(None)
                continue
            out, grad_out = outputs[t]
            # ∂L_t/∂z and the head's own gradients in one pass through the head.
            grads = torch.autograd.grad(out, [z, *plan.own[t]], grad_outputs=grad_out, retain_graph=True,
                                        allow_unused=True, materialize_grads=True)
            rows.append(grads[0].reshape(-1).to(Z.dtype))
            own_grads.append(grads[1:])
        torch.stack(rows, out=Z)
        if grad_scale is not None:
            Z.div_(grad_scale)
        self.last_grads, self.rep_value = Z, z.detach()
        update = self.aggregate(Z, losses, step)
        weights = update.weights.to(Z.dtype).detach()
        d = update.direction if update.direction is not None else weights @ Z
        if grad_scale is not None:
            d = d * grad_scale
        task_w = (weights if update.task_weights is None else update.task_weights.to(Z.dtype)).detach()
        self._set_own_grads(plan, own_grads, task_w, update)
        if plan.others:
            torch.autograd.backward(_scaled((task_w * losses).sum(), grad_scale), inputs=plan.others,
                                    retain_graph=True)
        # One backward pass from the representation through the encoder (MGDA-UB's saving).
        tensors, grads_in = [z], [d.view_as(z).to(z.dtype)]
        if extra_loss is not None:
            tensors.append(extra_loss)
            grads_in.append(torch.ones_like(extra_loss) if grad_scale is None else grad_scale.expand_as(extra_loss))
        torch.autograd.backward(tensors, grads_in, inputs=plan.shared if extra_loss is None else plan.trainable)
        return weights

    def _set_own_grads(self, plan: _Plan, own_grads, task_w: torch.Tensor, update: Update) -> None:
        """Each task's own parameters get that task's gradient times its weight."""
        unit = update.task_weights is not None and update.task_weights is self.base_weights and self._unit_base
        for t, grads in enumerate(own_grads):
            if grads is None:
                continue
            for p, g in zip(plan.own[t], grads):
                p.grad = g if unit else g * task_w[t]

    # ---- bookkeeping -------------------------------------------------------------------
    def _plan_for(self, model: nn.Module) -> _Plan:
        if self._plan is not None and self._plan.model is model:
            return self._plan
        self.check_model(model)
        shared = [p for p in model.shared_parameters() if p.requires_grad]
        shared_ids = {id(p) for p in shared}
        owner: dict[int, int] = {}
        for t, task in enumerate(self.tasks):
            for p in model.task_parameters(task):
                if id(p) not in shared_ids and p.requires_grad:
                    owner[id(p)] = t if owner.get(id(p), t) == t else -1  # -1: claimed by two tasks
        own: list[list[nn.Parameter]] = [[] for _ in self.tasks]
        trainable = [p for p in model.parameters() if p.requires_grad]
        others = []
        for p in trainable:
            if id(p) in shared_ids:
                continue
            t = owner.get(id(p), -1)
            (own[t] if t >= 0 else others).append(p)
        offsets, start = [], 0
        for p in shared:
            offsets.append((start, p.numel()))
            start += p.numel()
        non_shared = [p for p in trainable if id(p) not in shared_ids]
        self._plan = _Plan(model, shared, own, others, trainable, non_shared, offsets)
        return self._plan

    def _buffer(self, T: int, K: int, like: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The (T, K) gradient buffer, reused while its shape, dtype and device hold."""
        G, dtype = self._G, dtype or like.dtype
        if G is None or G.shape != (T, K) or G.dtype != dtype or G.device != like.device:
            G = self._G = torch.empty(T, K, dtype=dtype, device=like.device)
        return G


def _scaled(loss: torch.Tensor, grad_scale: torch.Tensor | None) -> torch.Tensor:
    return loss if grad_scale is None else loss * grad_scale


def _task_outputs(losses: torch.Tensor) -> list[tuple[Any, torch.Tensor] | None]:
    """Per task: (where to start its backward pass, the gradient to start with), or None.

    When `losses` is `torch.stack` of the task losses (the engine's case), each task's
    backward starts at its own loss node: starting at `losses[t]` would also push zero
    gradients through every other task's head. A task whose loss is a constant (not
    drawn this step) has no node: None.
    """
    T = losses.shape[0]
    fn = losses.grad_fn
    one = torch.ones((), dtype=losses.dtype, device=losses.device)
    if fn is not None and type(fn).__name__ == "StackBackward0" and len(fn.next_functions) == T:
        out: list[tuple[Any, torch.Tensor] | None] = []
        for node, nr in fn.next_functions:
            if node is None:
                out.append(None)
            elif type(node).__name__ == "AccumulateGrad":  # a leaf loss: start at the element
                out = []
                break
            else:
                out.append((GradientEdge(node, nr), one))
        if len(out) == T:
            return out
    if fn is None:
        return [None] * T
    return [(losses[t], one) for t in range(T)]

