"""Gradient surgery: edit the task gradients where they conflict, then add them up.

PCGrad removes the conflicting component pair by pair; GradVac instead steers each pair
towards a target similarity it learns; GradDrop keeps, per coordinate, only one sign
with a probability given by how much the tasks agree. PCGrad and GradVac are computed in
the T × T coefficient space (g_i' = Σ_j C_ij g_j, all inner products from the Gramian),
as in TorchJD, so they never touch a P-sized vector until the final d = (Σ_i C_i)ᵀ G.
Random task orders come from the strategy's own seeded generator.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from mtl_core.weighting.base import register_weighting, seed_from_torch
from mtl_core.weighting.jacobian import GradientWeighting, GradOptions, Update
from mtl_core.weighting.solvers import Array, Ops


class SeededOptions(GradOptions):
    seed: int | None = Field(
        None, ge=0, le=2**62, description="seed of the random task order / masks; empty = derived from the run's seed",
    )


class _Seeded(GradientWeighting):
    """A gradient method with its own random stream (task orders on the CPU)."""

    def __init__(self, tasks, options, *, base_weights):
        super().__init__(tasks, options, base_weights=base_weights)
        self._seed = seed_from_torch(options.seed)
        self._cpu_gen = torch.Generator().manual_seed(self._seed)

    def task_orders(self, xp: Ops) -> Array:
        """(T, T−1): row i is a random order of the tasks other than i (one shuffle per
        task, as in Yu et al.'s code), drawn on the CPU from the strategy's generator and
        handed to the solver's array library (sent to the GPU without a sync)."""
        T = len(self.tasks)
        keys = torch.rand(T, T, generator=self._cpu_gen)
        keys.fill_diagonal_(2.0)  # i sorts last: it is never its own partner
        order = keys.argsort(dim=1)[:, : T - 1]
        return order.numpy() if xp.numpy else order.to(xp.device, non_blocking=True)


# ---- PCGrad ----------------------------------------------------------------------------------
@register_weighting(
    "pcgrad",
    description="Projecting conflicting gradients: where two task gradients conflict, remove "
    "the component of one along the other.",
    paper="Yu, Kumar, Gupta, Levine, Hausman & Finn, NeurIPS 2020 (Gradient Surgery for Multi-Task Learning)",
    formula=r"g_i\leftarrow g_i-\frac{\min(g_i\cdot g_j,0)}{\lVert g_j\rVert^2}g_j\ \ (j\ \text{in random order}),\quad d=\sum_i g_i",
    options=SeededOptions,
)
class PCGrad(_Seeded):
    """Yu et al. (2020), Algorithm 1: for each task i, for the other tasks j in random
    order, if g_i^PC·g_j < 0 then g_i^PC ← g_i^PC − (g_i^PC·g_j / ‖g_j‖²)·g_j (against the
    original g_j); d = Σ_i g_i^PC. Pairs with cos ≥ 0 are left alone.

    Written as g_i^PC = Σ_j C_ij g_j, the projections need only the Gramian; the T rows
    are processed together, one partner j per row at a time. Effective weights: the
    coefficients Σ_i C_ij of d (1 per task when nothing conflicts); the heads get the
    manual weights.
    """
    uses_weights = "heads"

    def aggregate(self, G, losses, step):
        xp, M = self.gram(G)
        C = self.projection_coefficients(xp, M)
        return Update(weights=xp.tensor(C.sum(0), G), task_weights=self.base_weights)

    def projection_coefficients(self, xp: Ops, M: Array) -> Array:
        """C (T, T) with g_i^PC = Σ_j C_ij g_j, from the Gramian M (draws new task orders)."""
        T = M.shape[0]
        rows = xp.arange(T)
        order = self.task_orders(xp)
        C = xp.eye(T)
        sq_norm = xp.clip_min(xp.lib.diagonal(M), 1e-30)
        for r in range(T - 1):
            j = order[:, r]
            dots = (C * M[j]).sum(1)  # g_i^PC · g_j (M is symmetric)
            C[rows, j] += xp.clip_min(-dots, 0.0) / sq_norm[j]  # C_ij −= min(g_i^PC·g_j, 0) / ‖g_j‖²
        return C


# ---- GradVac ---------------------------------------------------------------------------------
class GradVacOptions(SeededOptions):
    beta: float = Field(
        0.01, ge=0.0, le=1.0, allow_inf_nan=False,
        description="EMA rate β of the target similarities φ̂_ij (paper: 0.01; LibMTL/TorchJD default 0.5)",
    )


@register_weighting(
    "gradvac",
    description="Gradient vaccine: nudge each pair of task gradients towards the similarity "
    "they usually have, not just away from conflict.",
    paper="Wang, Tsvetkov, Firat & Cao, ICLR 2021 (Gradient Vaccine)",
    formula=r"\text{if }\phi_{ij}<\hat\phi_{ij}:\ g_i\leftarrow g_i+\frac{\lVert g_i\rVert(\hat\phi_{ij}\sqrt{1-\phi_{ij}^2}"
            r"-\phi_{ij}\sqrt{1-\hat\phi_{ij}^2})}{\lVert g_j\rVert\sqrt{1-\hat\phi_{ij}^2}}g_j,\ "
            r"\hat\phi_{ij}\leftarrow(1-\beta)\hat\phi_{ij}+\beta\phi_{ij}",
    options=GradVacOptions,
)
class GradVac(_Seeded):
    """Wang et al. (2021): for each task i and the others j in random order, with
    φ_ij = cos(g_i', g_j) and an EMA target φ̂_ij (starting at 0): if φ_ij < φ̂_ij, add
    the multiple of g_j that raises the cosine to exactly φ̂_ij; then
    φ̂_ij ← (1−β)φ̂_ij + βφ_ij. d = Σ_i g_i'.

    With φ̂ = 0 this is PCGrad. Applied to the whole shared gradient (the paper also
    has per-layer variants), in coefficient space as in TorchJD. Effective weights: the
    coefficients of d; the heads get the manual weights.
    """
    uses_weights = "heads"

    def __init__(self, tasks, options, *, base_weights):
        super().__init__(tasks, options, base_weights=base_weights)
        self.register_buffer("phi_hat", torch.zeros(len(tasks), len(tasks), dtype=torch.float64))

    def aggregate(self, G, losses, step):
        xp, M = self.gram(G)
        T, beta, eps = M.shape[0], float(self.options.beta), 1e-8
        rows = xp.arange(T)
        order = self.task_orders(xp)
        C = xp.eye(T)
        norm_j_all = xp.lib.sqrt(xp.clip_min(xp.lib.diagonal(M), 0.0))
        phi_hat = self.phi_hat.numpy().copy() if xp.numpy else self.phi_hat.to(xp.device).clone()
        for r in range(T - 1):
            j = order[:, r]
            cG = C @ M  # cG[i, k] = g_i' · g_k
            dot = cG[rows, j]
            norm_i = xp.lib.sqrt(xp.clip_min((cG * C).sum(1), 0.0))
            norm_j = norm_j_all[j]
            phi = dot / (norm_i * norm_j + eps)
            hat = phi_hat[rows, j]
            sin_phi = xp.lib.sqrt(xp.clip_min(1 - phi**2, 0.0))
            sin_hat = xp.lib.sqrt(xp.clip_min(1 - hat**2, 0.0))
            w = norm_i * (hat * sin_phi - phi * sin_hat) / (norm_j * sin_hat + eps)
            C[rows, j] += xp.lib.where(phi < hat, w, 0.0)
            phi_hat[rows, j] = (1 - beta) * hat + beta * phi
        self.phi_hat = torch.as_tensor(phi_hat, device=self.phi_hat.device)
        return Update(weights=xp.tensor(C.sum(0), G), task_weights=self.base_weights)


# ---- GradDrop --------------------------------------------------------------------------------
class GradDropOptions(SeededOptions):
    mode: Literal["params", "rep"] = Field(
        "rep",
        description="rep (the paper): sign dropout on the gradient at the shared representation; "
        "params: per coordinate of the shared parameters' gradient (as TorchJD)",
    )
    leak: float = Field(
        0.0, ge=0.0, le=1.0, allow_inf_nan=False,
        description="share ℓ of every task gradient that always passes (0: pure GradDrop)",
    )


@register_weighting(
    "graddrop",
    description="Gradient sign dropout: per coordinate, keep only the positive or only the "
    "negative task gradients, with a probability set by how much the tasks agree.",
    paper="Chen, Ngiam, Huang, Luong, Kretzschmar, Chai & Anguelov, NeurIPS 2020 (Just Pick a Sign)",
    formula=r"P=\tfrac12\Big(1+\frac{\sum_t g_t}{\sum_t|g_t|}\Big),\ U\sim\mathcal U(0,1),\ "
            r"d=\sum_t\big(\ell+(1-\ell)\,[\,(P>U)(g_t>0)+(P<U)(g_t<0)\,]\big)\,g_t",
    options=GradDropOptions,
)
class GradDrop(_Seeded):
    """Chen et al. (2020), Algorithm 1: the positive-sign purity P = ½(1 + Σ_t g_t / Σ_t |g_t|)
    per coordinate, U ~ U(0,1); task t's gradient passes where (P > U and g_t > 0) or
    (P < U and g_t < 0), plus a leak ℓ.

    The paper places GradDrop on the shared activations, with P computed from the
    batch-summed, sign(activation)-corrected gradients and the mask shared by every
    example (`mode: rep`, the default; the same as LibMTL). `mode: params` applies it to
    each coordinate of the shared parameters' gradient (TorchJD's GradDrop). The update is
    no combination of whole task gradients, so the effective weights reported are the
    manual weights.
    """
    uses_weights = "heads"

    def __init__(self, tasks, options, *, base_weights):
        super().__init__(tasks, options, base_weights=base_weights)
        self._dev_gen: torch.Generator | None = None

    def _uniform(self, shape: torch.Size, like: torch.Tensor) -> torch.Tensor:
        if self._dev_gen is None or self._dev_gen.device != like.device:
            self._dev_gen = torch.Generator(device=like.device).manual_seed(self._seed)
        return torch.rand(shape, generator=self._dev_gen, device=like.device, dtype=like.dtype)

    def aggregate(self, G, losses, step):
        T, leak = G.shape[0], float(self.options.leak)
        if self.mode == "params":
            # Per coordinate: the kept gradients are all positive parts (P > U) or all
            # negative parts (P < U), so d needs only Σ_t g_t and Σ_t max(g_t, 0):
            # three passes over G instead of one per task and per mask.
            total = G.sum(0)
            positive = G.clamp_min(0).sum(0)
            purity = 0.5 * (1.0 + total / (2 * positive - total + 1e-7))  # Σ|g_t| = 2Σg⁺ − Σg
            U = self._uniform(purity.shape, purity)
            # s = +1 keeps the positive parts, −1 the negative ones (arithmetic, not masks:
            # boolean selection over P elements is several times slower on the CPU).
            s = torch.sign(purity - U)
            kept = 0.5 * ((1 + s) * positive + (1 - s) * (total - positive))
            d = kept if leak == 0.0 else leak * total + (1.0 - leak) * kept
        else:
            z = self.rep_value
            B = z.shape[0]
            per_example = G.view(T, B, -1)
            signal = (per_example * torch.sign(z).reshape(1, B, -1)).sum(1)  # (T, H...), batch-summed
            purity = 0.5 * (1.0 + signal.sum(0) / (signal.abs().sum(0) + 1e-7))
            U = self._uniform(purity.shape, purity)
            keep = ((purity > U) & (signal > 0)) | ((purity < U) & (signal < 0))
            factor = leak + (1.0 - leak) * keep.to(G.dtype)  # one mask per task, shared by every example
            d = (per_example * factor.unsqueeze(1)).sum(0).reshape(-1)
        return Update(weights=self.base_weights.to(G.dtype), direction=d, task_weights=self.base_weights)
