"""Multi-objective gradient methods: each step solves a small convex program over the
task weights, on the Gramian M = G Gᵀ (see `solvers`), and moves along d = Σ_t c_t g_t.

MGDA finds a direction that decreases every task (the min-norm point of the convex
hull of the gradients); CAGrad trades the mean gradient against the worst task;
Nash-MTL picks the bargaining solution; UPGrad projects each gradient onto the cone of
directions that conflict with no task and averages. All are scale-aware in the sense of
their papers; all can also run on the shared representation (`mode: rep`).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from mtl_core.weighting.base import register_weighting
from mtl_core.weighting.jacobian import GradientWeighting, GradOptions, Update
from mtl_core.weighting.solvers import cagrad_weights, dual_cone_weights, min_norm_simplex, nash_bargaining


# ---- MGDA ------------------------------------------------------------------------------------
class MGDAOptions(GradOptions):
    normalization: Literal["none", "l2", "loss", "loss+"] = Field(
        "none",
        description="divide each task gradient before solving by: nothing, its norm, its loss, "
        "or loss × norm (the authors' gradient normalisers)",
    )


@register_weighting(
    "mgda",
    description="Multiple-gradient descent: the smallest convex combination of task gradients, "
    "a direction that decreases every task (mode rep = MGDA-UB).",
    paper="Sener & Koltun, NeurIPS 2018 (Multi-Task Learning as Multi-Objective Optimization); Désidéri, 2012",
    formula=r"\alpha^*=\arg\min_{\alpha\in\Delta}\Big\lVert\sum_t\alpha_t g_t\Big\rVert^2,\quad L=\sum_t\alpha^*_t L_t",
    options=MGDAOptions,
)
class MGDA(GradientWeighting):
    """Sener & Koltun (2018): α* = argmin_{α ∈ Δ} ‖Σ_t α_t g_t‖², then L = Σ_t α*_t L_t.

    The min-norm element of the convex hull of the gradients is a common descent
    direction for all tasks (or 0 at a Pareto-stationary point). We solve the
    subproblem exactly (`solvers.min_norm_simplex`: faces for few tasks, an active-set
    method warm-started from the last step's face for more) rather than with the paper's
    Frank-Wolfe iterations. As in the authors'
    code, α is found on the (optionally normalised) gradients and then applied to the
    raw losses, so the heads also get α_t·∇L_t. `mode: rep` is MGDA-UB (the paper's
    Section 3.3): gradients with respect to the shared representation Z of the batch,
    an upper bound that needs one backward pass through the encoder.
    Effective weights: α*.
    """
    uses_weights = "none"  # α* also for the heads

    def aggregate(self, G, losses, step):
        xp, M = self.gram(G)
        norm = self.options.normalization
        if norm != "none":
            scale = xp.full((M.shape[0],), 1.0)
            if norm in ("l2", "loss+"):
                scale = scale * xp.lib.sqrt(xp.clip_min(xp.lib.diagonal(M), 0.0))
            if norm in ("loss", "loss+"):
                scale = scale * xp.array(losses)
            scale = xp.clip_min(scale, 1e-12)
            M = M / (scale[None, :] * scale[:, None])
        return Update(weights=xp.tensor(min_norm_simplex(xp, M, self.warm), G))


# ---- CAGrad ----------------------------------------------------------------------------------
class CAGradOptions(GradOptions):
    c: float = Field(
        0.4, ge=0.0, le=10.0, allow_inf_nan=False,
        description="radius c of the ball around the mean gradient, in units of its norm (0 = mean gradient)",
    )
    rescale: Literal[0, 1, 2] = Field(
        1, description="divide the update by 1 (0), 1 + c² (1, the authors' default) or 1 + c (2)",
    )


@register_weighting(
    "cagrad",
    description="Conflict-averse gradient descent: near the mean gradient, but improving the worst task most.",
    paper="Liu, Liu, Jin, Stone & Liu, NeurIPS 2021 (Conflict-Averse Gradient Descent for Multi-task Learning)",
    formula=r"d=g_0+\frac{c\lVert g_0\rVert}{\lVert g_w\rVert}g_w,\ g_w=\sum_t w_t g_t,\ "
            r"w=\arg\min_{w\in\Delta} g_w^\top g_0+c\lVert g_0\rVert\,\lVert g_w\rVert",
    options=CAGradOptions,
)
class CAGrad(GradientWeighting):
    """Liu et al. (2021): max_d min_t ⟨g_t, d⟩ s.t. ‖d − g_0‖ ≤ c‖g_0‖, g_0 = mean gradient.

    Its dual, min_{w ∈ Δ} g_wᵀg_0 + c‖g_0‖‖g_w‖ (g_w = Σ w_t g_t), is solved exactly on
    the Gramian (`solvers.cagrad_weights`; the authors use SciPy's SLSQP), and
    d = g_0 + (c‖g_0‖/‖g_w‖)·g_w, divided by 1 + c² (their default `rescale=1`).
    c = 0 gives the mean gradient. Effective weights: the coefficients of d,
    1/T + λ w_t (rescaled); the heads get the manual weights, as in the authors' code
    where only the shared gradient is replaced.
    """
    uses_weights = "heads"

    def aggregate(self, G, losses, step):
        T, c = G.shape[0], float(self.options.c)
        xp, M = self.gram(G)
        if c == 0.0:
            coeffs = xp.full((T,), 1.0 / T)
        else:
            w = cagrad_weights(xp, M, c, self.warm)
            g0_norm = xp.lib.sqrt(xp.clip_min(M.mean(), 0.0))
            gw_norm = xp.lib.sqrt(xp.clip_min(w @ M @ w, 0.0))
            coeffs = 1.0 / T + (c * g0_norm / (gw_norm + 1e-8)) * w
        coeffs = coeffs / {0: 1.0, 1: 1.0 + c**2, 2: 1.0 + c}[self.options.rescale]
        return Update(weights=xp.tensor(coeffs, G), task_weights=self.base_weights)


# ---- Nash-MTL --------------------------------------------------------------------------------
class NashMTLOptions(GradOptions):
    max_norm: float = Field(
        1.0, ge=0.0, allow_inf_nan=False,
        description="clip the norm of the shared update to this (0 = no clipping; authors: 1)",
    )
    update_weights_every: int = Field(1, ge=1, le=100_000, description="solve for α every k steps, reuse it between")
    optim_niter: int = Field(20, ge=1, le=1000, description="at most this many Newton iterations per solve")


@register_weighting(
    "nash_mtl",
    description="Nash bargaining: the update every task agrees on, each task's gain times its weight equal.",
    paper="Navon, Shamsian, Achituve, Maron, Kawaguchi, Chechik & Fetaya, ICML 2022 (Multi-Task Learning as a Bargaining Game)",
    formula=r"G G^\top\alpha=1/\alpha,\ \alpha>0,\quad d=\sum_t\alpha_t g_t",
    options=NashMTLOptions,
)
class NashMTL(GradientWeighting):
    """Navon et al. (2022): the Nash bargaining solution d = Σ_t α_t g_t with
    (G Gᵀ α)_t = 1/α_t, i.e. α_t·⟨g_t, d⟩ = 1 for every task.

    Solved by damped Newton on ½αᵀMα − Σ log α (`solvers.nash_bargaining`), warm-started
    from the previous α, instead of the paper's sequence of cvxpy programs; both reach
    the same α. As in the authors' code the heads get α_t·∇L_t and the shared update's
    norm is clipped to `max_norm`. Effective weights: the coefficients of the clipped
    shared update (α times the clip factor).
    """
    uses_weights = "none"  # α also for the heads

    def __init__(self, tasks, options, *, base_weights):
        super().__init__(tasks, options, base_weights=base_weights)
        self._alpha = None  # the last solution, as an array of the solver's library

    def aggregate(self, G, losses, step):
        o = self.options
        xp, M = self.gram(G)
        if self._alpha is None or (step - 1) % o.update_weights_every == 0:
            warm = self._alpha if self._alpha is not None and type(self._alpha) is type(M) else None
            self._alpha = nash_bargaining(xp, M, warm, iters=o.optim_niter)
        alpha = self._alpha
        coeffs = alpha
        if o.max_norm > 0:
            norm = xp.lib.sqrt(xp.clip_min(alpha @ M @ alpha, 0.0))
            coeffs = alpha * xp.lib.where(norm > o.max_norm, o.max_norm / xp.clip_min(norm, 1e-12), 1.0)
        return Update(weights=xp.tensor(coeffs, G), task_weights=xp.tensor(alpha, G))

    @property
    def alpha(self) -> torch.Tensor | None:
        """The last bargaining solution α (before the norm clip), or None before the first step."""
        if self._alpha is None:
            return None
        return torch.as_tensor(self._alpha)


# ---- UPGrad ----------------------------------------------------------------------------------
@register_weighting(
    "upgrad",
    description="Unconflicting projection of gradients: each task gradient projected onto the "
    "directions that hurt no task, then averaged.",
    paper="Quinton & Rey, 2024 (Jacobian Descent for Multi-Objective Optimization, arXiv:2406.16232)",
    formula=r"d=\frac1T\sum_t \pi_{\mathcal C}(g_t),\quad \mathcal C=\{x: Gx\ge 0\},\quad "
            r"\pi_{\mathcal C}(G^\top u)=G^\top\arg\min_{v\ge u}v^\top GG^\top v",
    options=GradOptions,
)
class UPGrad(GradientWeighting):
    """Quinton & Rey (2024): d = Σ_t p_t·π(g_t), π the projection onto the dual cone
    {x : ⟨g_s, x⟩ ≥ 0 ∀s} of the task gradients, p the preference (the manual weights
    divided by T: 1/T each by default, TorchJD's default).

    π(Gᵀu) = Gᵀv* with v* = argmin_{v ≥ u} vᵀ G Gᵀ v (their Proposition 1): one small QP
    per task, solved exactly (`solvers.dual_cone_weights`: faces for few tasks, else all T
    together by an active-set method warm-started from the last step). Every projected gradient has
    a non-negative inner product with every task gradient, so d conflicts with no task.
    Effective weights: Σ_t v*_t, the coefficients of d. The heads get the manual weights.
    """
    uses_weights = "all"  # the preference p = w/T and the heads

    def aggregate(self, G, losses, step):
        xp, M = self.gram(G)
        U = xp.lib.diag(xp.array(self.base_weights) / G.shape[0])
        W = dual_cone_weights(xp, M, U, self.warm)
        return Update(weights=xp.tensor(W.sum(0), G), task_weights=self.base_weights)
