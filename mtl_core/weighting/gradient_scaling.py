"""Gradient-magnitude balancing: rescale the task gradients so no task dominates by size.

GradNorm learns loss weights that equalise weighted gradient norms (adjusted by each
task's training rate); IMTL-G picks the combination whose projection on every task's
unit gradient is the same; Aligned-MTL whitens the gradient system so its directions
are balanced; DB-MTL balances the log-losses and then the gradient magnitudes.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from mtl_core.spec import StrictModel
from mtl_core.weighting.base import register_weighting
from mtl_core.weighting.jacobian import GradientWeighting, GradOptions, Update, _task_outputs


# ---- GradNorm --------------------------------------------------------------------------------
class GradNormOptions(StrictModel):
    alpha: float = Field(
        1.5, ge=0.0, le=10.0, allow_inf_nan=False,
        description="α, strength of the pull towards equal training rates (0: equal gradient norms; paper: 0.12–1.5)",
    )
    layer: Literal["last", "all"] = Field(
        "last",
        description="W whose gradient norms are balanced: the last shared weight matrix (the paper; "
        "cheap) or all shared parameters (LibMTL)",
    )


@register_weighting(
    "gradnorm",
    description="Gradient normalisation: learn loss weights so that each task's weighted gradient "
    "norm matches the mean, scaled by how slowly that task trains.",
    paper="Chen, Badrinarayanan, Lee & Rabinovich, ICML 2018 (GradNorm)",
    formula=r"L_{grad}=\sum_t\big|\,w_t\lVert\nabla_W L_t\rVert-\overline{G}_W\,r_t^{\alpha}\big|,\ "
            r"r_t=\frac{L_t/L_t(0)}{\mathrm{mean}_s L_s/L_s(0)},\quad \textstyle\sum_t w_t=T",
    options=GradNormOptions,
)
class GradNorm(GradientWeighting):
    """Chen et al. (2018): loss weights w_t (learned, renormalised to Σ w_t = T) minimise
    L_grad = Σ_t |G_W^(t) − Ḡ_W · r_t^α|, with G_W^(t) = ‖∇_W w_t L_t‖, Ḡ_W their mean,
    r_t = L̃_t / mean(L̃), L̃_t = L_t / L_t(0) the inverse training rate; the target
    Ḡ_W·r_t^α is a constant. The network follows L = Σ_t w_t L_t.

    ∂L_grad/∂w_t = sign(G_W^(t) − target_t)·‖∇_W L_t‖ is written into the weights'
    `.grad`; the weights are an `nn.Parameter`, so the run's optimiser steps them, and they
    are renormalised to sum to T (clamped positive) before they are next used. L_t(0) is
    the loss at the first step. W is the last shared weight matrix by default, as in the
    paper, which needs per-task gradients only there (a backward through the heads and
    one layer); `layer: all` uses every shared parameter. Effective weights: w.
    """
    uses_weights = "none"  # its learned w_t, also for the heads

    def __init__(self, tasks, options, *, base_weights):
        super().__init__(tasks, options, base_weights=base_weights)
        self.loss_weights = torch.nn.Parameter(torch.ones(len(tasks)))
        self.register_buffer("initial_losses", torch.zeros(len(tasks)))
        self._started = False

    def _current_weights(self) -> torch.Tensor:
        with torch.no_grad():
            w = self.loss_weights
            w.clamp_(min=1e-4)
            w.mul_(len(self.tasks) / w.sum())
        return w.detach().clone()

    def _update_weights(self, norms: torch.Tensor, losses: torch.Tensor, w: torch.Tensor) -> None:
        L = losses.detach()
        if not self._started:
            self.initial_losses.copy_(L)
            self._started = True
        ratio = L / self.initial_losses.clamp_min(1e-12)
        r = ratio / ratio.mean().clamp_min(1e-12)
        gw = w * norms
        target = gw.mean() * r.clamp_min(0) ** self.options.alpha
        self.loss_weights.grad = torch.sign(gw - target) * norms

    def aggregate(self, G, losses, step):  # layer == "all": the generic mechanics call this
        w = self._current_weights()
        self._update_weights(G.norm(dim=1), losses, w.to(G.dtype))
        return Update(weights=w.to(G.dtype))

    def backward(self, losses, *, step, model, extra_loss=None, grad_scale=None):
        if self.options.layer == "all":
            return super().backward(losses, step=step, model=model, extra_loss=extra_loss, grad_scale=grad_scale)
        plan = self._plan_for(model)
        W = [p for p in plan.shared if p.dim() >= 2][-1:] or plan.shared[-1:]
        rows = []
        for out in _task_outputs(losses):
            if out is None:
                rows.append(torch.zeros(W[0].numel(), dtype=W[0].dtype, device=W[0].device))
                continue
            (g,) = torch.autograd.grad(out[0], W, grad_outputs=out[1], retain_graph=True,
                                       allow_unused=True, materialize_grads=True)
            rows.append(g.reshape(-1))
        GW = torch.stack(rows)
        self.last_grads = None  # G on one layer only: not the shared-parameter G
        w = self._current_weights().to(GW.dtype)
        self._update_weights(GW.norm(dim=1), losses, w)
        total = (w * losses).sum()
        if extra_loss is not None:
            total = total + extra_loss
        if grad_scale is not None:  # fp16: leave scaled gradients, as the GradScaler expects
            total = total * grad_scale
        params = [p for p in model.parameters() if p.requires_grad]
        torch.autograd.backward(total, inputs=params)  # not into loss_weights: its grad is L_grad's
        return w


# ---- IMTL-G ----------------------------------------------------------------------------------
@register_weighting(
    "imtl",
    description="Impartial MTL (gradient part): the update has the same projection on every task's unit gradient.",
    paper="Liu, Li, Kuang, Xue, Chen, Yang, Liao & Zhang, ICLR 2021 (Towards Impartial Multi-task Learning), IMTL-G",
    formula=r"d=\sum_t\alpha_t g_t,\ \ d^\top\frac{g_t}{\lVert g_t\rVert}\ \text{equal for all }t,\ \ \textstyle\sum_t\alpha_t=1",
    options=GradOptions,
)
class IMTLG(GradientWeighting):
    """Liu et al. (2021), IMTL-G: find α (Σα = 1) with dᵀu_1 = … = dᵀu_T for d = Σ_t α_t g_t,
    u_t = g_t/‖g_t‖. The paper's closed form α_{2:T} = g_1 Uᵀ(D Uᵀ)⁻¹ (D, U the
    differences g_1 − g_t, u_1 − u_t) is, on the Gramian, α ∝ M⁻¹ n with n_t = ‖g_t‖:
    then G d = M α ∝ n. We use the pseudo-inverse (TorchJD's generalisation to linearly
    dependent gradients). Effective weights: α; the heads get the manual weights (the
    paper's IMTL-L part, which scales the heads, is not included).
    """
    uses_weights = "heads"

    def aggregate(self, G, losses, step):
        xp, M = self.gram(G)
        n = xp.lib.sqrt(xp.clip_min(xp.lib.diagonal(M), 0.0))
        v = xp.lib.linalg.pinv(M, hermitian=True) @ n
        total = v.sum()
        alpha = xp.lib.where(abs(total) > 1e-12 * n.sum(), v / xp.lib.where(total != 0, total, 1.0), 0.0)
        return Update(weights=xp.tensor(alpha, G), task_weights=self.base_weights)


# ---- Aligned-MTL -----------------------------------------------------------------------------
@register_weighting(
    "aligned_mtl",
    description="Aligned-MTL: make the gradient system well-conditioned (equal, orthogonal principal "
    "components) before combining.",
    paper="Senushkin, Patakin, Kuznetsov & Konushin, CVPR 2023 (Independent Component Alignment for Multi-Task Learning)",
    formula=r"GG^\top=V\Lambda V^\top,\ B=\sqrt{\lambda_{\min}}\,V\Lambda^{-1/2}V^\top,\ d=G^\top B\,w",
    options=GradOptions,
)
class AlignedMTL(GradientWeighting):
    """Senushkin et al. (2023), Algorithm 1: with G Gᵀ = VΛVᵀ (rank r, eigenvalues above a
    tolerance), B = √λ_min · V Λ^{-1/2} Vᵀ and d = Gᵀ B w = (B G)ᵀ w: the aligned system B G has
    all its non-zero singular values equal to √λ_min (condition number 1), so no
    direction of the gradient system dominates the update.

    w are the manual weights (1 each, as the authors' `B.sum(0)`); TorchJD's
    AlignedMTL uses w = 1/T, so its update is ours divided by T. The rank cut uses
    masks rather than slicing (no host sync). Effective weights: B w; the heads get the
    manual weights.
    """
    uses_weights = "all"  # d = Gᵀ B w and the heads

    def aggregate(self, G, losses, step):
        xp, M = self.gram(G)
        lam, V = xp.lib.linalg.eigh(M)
        tol = lam.max() * M.shape[0] * torch.finfo(G.dtype).eps
        keep = lam > tol
        inv_sqrt = xp.lib.where(keep, 1.0 / xp.lib.sqrt(xp.clip_min(lam, 1e-300)), 0.0)
        lam_min = xp.lib.where(keep, lam, float("inf")).min()
        lam_min = xp.lib.where(xp.lib.isfinite(lam_min), lam_min, 0.0)
        B = xp.lib.sqrt(lam_min) * (V * inv_sqrt) @ V.T
        alpha = B @ xp.array(self.base_weights)
        return Update(weights=xp.tensor(alpha, G), task_weights=self.base_weights)


# ---- DB-MTL ----------------------------------------------------------------------------------
class DBMTLOptions(StrictModel):
    beta: float = Field(0.9, ge=0.0, lt=1.0, allow_inf_nan=False,
                        description="EMA rate β of the log-loss gradients (paper: 0.9)")
    beta_sigma: float = Field(0.0, ge=0.0, le=10.0, allow_inf_nan=False,
                              description="decay the EMA rate as β / step^σ (paper: 0)")


@register_weighting(
    "db_mtl",
    description="Dual-balancing: balance loss scales with log-losses, then gradient magnitudes "
    "by scaling every task gradient to the largest norm.",
    paper="Lin, Ye, Xu, Shi & Zhang, 2023 (Dual-Balancing for Multi-Task Learning, arXiv:2308.12029)",
    formula=r"\hat g_t\leftarrow\beta\hat g_t+(1-\beta)\nabla\log L_t,\quad "
            r"d=\sum_t\frac{\max_s\lVert\hat g_s\rVert}{\lVert\hat g_t\rVert}\hat g_t",
    options=DBMTLOptions,
)
class DBMTL(GradientWeighting):
    """Lin et al. (2023): loss-scale balancing by taking log L_t (its gradient is
    ∇L_t / L_t, computed from G without another backward pass), an EMA ĝ_t of those
    gradients (rate β/step^σ), and gradient-magnitude balancing: every ĝ_t scaled to the
    largest norm, d = Σ_t (max_s‖ĝ_s‖/‖ĝ_t‖)·ĝ_t. The heads follow the log losses
    (weights 1/L_t), as in the authors' code (LibMTL).

    d is built from the EMA, not from this step's gradients alone, so no weights give it
    exactly; the effective weights reported are α_t / L_t, the weights on this step's raw
    gradients when β = 0. Parameter-space only (the EMA would mix representations of
    different batches), as in LibMTL. Keeps a T × P buffer.
    """
    uses_weights = "none"  # heads: 1/L_t

    def __init__(self, tasks, options, *, base_weights):
        super().__init__(tasks, options, base_weights=base_weights)
        self._ema: torch.Tensor | None = None

    def aggregate(self, G, losses, step):
        o = self.options
        inv = 1.0 / (losses.detach() + 1e-8)  # ∇ log(L_t + ε) = ∇L_t / (L_t + ε)
        rate = o.beta / float(step) ** o.beta_sigma
        if self._ema is None or self._ema.shape != G.shape:
            self._ema = torch.zeros_like(G)
        # ĝ ← rate·ĝ + (1 − rate)·∇log L, in place (the buffer is T × P).
        self._ema.mul_(rate).addcmul_(G, ((1.0 - rate) * inv).to(G.dtype).unsqueeze(1))
        norms = self._ema.norm(dim=1)
        alpha = norms.max() / (norms + 1e-8)
        d = alpha @ self._ema
        return Update(weights=(alpha * inv).to(G.dtype), direction=d, task_weights=inv.to(G.dtype))
