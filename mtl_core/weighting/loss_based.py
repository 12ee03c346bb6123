"""Loss-based weighting: each step's objective is built from the task losses alone.

These strategies never look at gradients, so they cost one ordinary backward pass and
work with every sharing mode. Each reports as its effective weights the gradient of its
objective with respect to each task loss, ∂L/∂L_t, which is what actually scales that
task's gradient. Tasks with a zero loss (not drawn this step under task sampling) are
left out of statistics (running averages, geometric means) rather than counted as 0.
"""

from __future__ import annotations

import torch
from pydantic import Field

from mtl_core.spec import NoOptions, StrictModel
from mtl_core.weighting.base import WeightingStrategy, active_tasks, register_weighting, seed_from_torch


# ---- uncertainty ---------------------------------------------------------------------------
class UncertaintyOptions(StrictModel):
    init_log_var: float = Field(
        0.0, ge=-10.0, le=10.0, allow_inf_nan=False,
        description="starting value of every s_t = log σ_t² (0: every task starts with weight 1)",
    )


@register_weighting(
    "uncertainty",
    description="Learns one noise level σ_t per task; noisy tasks weigh less (homoscedastic uncertainty).",
    paper="Kendall, Gal & Cipolla, CVPR 2018 (Multi-task learning using uncertainty to weigh losses)",
    formula=r"L=\sum_t e^{-s_t}L_t+s_t,\quad s_t=\log\sigma_t^2\ \text{learned}",
    options=UncertaintyOptions,
)
class UncertaintyWeighting(WeightingStrategy):
    """Kendall, Gal & Cipolla (2018): L = Σ_t exp(−s_t)·L_t + s_t with s_t = log σ_t².

    The paper's Gaussian likelihood gives ½·exp(−s)·L + ½·s for a regression task and
    exp(−s)·L + s (its Eq. 10 approximation) for a classification task. We use the
    second form for every task, as most implementations do, because the strategy does
    not see task kinds and both forms have the same minimiser in s, s* = log L_t (for
    MSE: the residual variance); the regression form would only halve that task's
    effective weight. s_t is an `nn.Parameter`, so the run's optimiser learns it with
    the model (a weight decay would also pull it towards 0). The +s_t term counts only
    for tasks with a loss this step, so task sampling does not drive an absent task's
    s_t to −∞.
    """
    uses_weights = "none"

    def __init__(self, tasks, options, *, base_weights):
        super().__init__(tasks, options, base_weights=base_weights)
        self.log_vars = torch.nn.Parameter(torch.full((len(tasks),), float(options.init_log_var)))

    def objective(self, losses, step):
        precision = torch.exp(-self.log_vars)
        total = (precision * losses).sum() + (self.log_vars * active_tasks(losses)).sum()
        return total, precision.detach()


# ---- DWA ------------------------------------------------------------------------------------
class DWAOptions(StrictModel):
    temperature: float = Field(
        2.0, gt=0.0, le=100.0, allow_inf_nan=False,
        description="T in softmax(r_t / T): larger is closer to equal weights (paper: 2)",
    )
    window: int = Field(
        50, ge=1, le=1_000_000,
        description="steps averaged into one loss L_t(k) (the paper averages each epoch)",
    )


@register_weighting(
    "dwa",
    description="Dynamic weight average: tasks whose loss falls slowly get more weight.",
    paper="Liu, Johns & Davison, CVPR 2019 (End-to-end multi-task learning with attention)",
    formula=r"w_t(k)=\frac{T\,e^{r_t(k-1)/\tau}}{\sum_i e^{r_i(k-1)/\tau}},\quad r_t(k-1)=\frac{L_t(k-1)}{L_t(k-2)}",
    options=DWAOptions,
)
class DWA(WeightingStrategy):
    """Liu, Johns & Davison (2019): w_t(k) = T·exp(r_t(k−1)/τ) / Σ_i exp(r_i(k−1)/τ),
    r_t(k−1) = L_t(k−1)/L_t(k−2), and w = 1 for the first two periods.

    The paper's L_t(k) is task t's loss averaged over epoch k. The engine trains in
    steps, so a "period" here is `window` consecutive steps: the mean of each task's
    losses over the steps of a window is accumulated on the device, and the weights
    change once per window. With window = steps per epoch this is the paper's rule.
    """
    uses_weights = "none"

    def __init__(self, tasks, options, *, base_weights):
        super().__init__(tasks, options, base_weights=base_weights)
        T = len(tasks)
        self.register_buffer("_sum", torch.zeros(T))
        self.register_buffer("_count", torch.zeros(T))
        self.register_buffer("_prev", torch.ones(2, T))  # L(k−1), L(k−2)
        self.register_buffer("_w", torch.ones(T))
        self._windows_done = 0

    def weights(self, losses, step):
        o = self.options
        active = active_tasks(losses)
        self._sum += torch.where(active, losses.detach(), torch.zeros_like(losses))
        self._count += active
        w = self._w
        if step % o.window == 0:  # a period ends: shift the averages, set the next weights
            mean = self._sum / self._count.clamp_min(1)
            mean = torch.where(self._count > 0, mean, self._prev[0])  # a task unseen all window keeps its value
            self._prev[1].copy_(self._prev[0])
            self._prev[0].copy_(mean)
            self._sum.zero_()
            self._count.zero_()
            self._windows_done += 1
            if self._windows_done >= 2:
                r = self._prev[0] / self._prev[1].clamp_min(1e-12)
                self._w = len(self.tasks) * torch.softmax(r / o.temperature, dim=0)
        return w


# ---- GLS ------------------------------------------------------------------------------------
@register_weighting(
    "gls",
    description="Geometric loss strategy: minimise the geometric mean of the task losses.",
    paper="Chennupati et al., CVPR Workshops 2019 (MultiNet++)",
    formula=r"L=\Big(\prod_{t=1}^{T}L_t\Big)^{1/T},\quad \frac{\partial L}{\partial L_t}=\frac{L}{T\,L_t}",
    options=NoOptions,
)
class GeometricLoss(WeightingStrategy):
    """Chennupati et al. (2019): L = (Π_t L_t)^{1/T}, computed as exp(mean_t log L_t).

    Its gradient weighs task t by L/(T·L_t): a task whose loss is already small gets a
    large weight, which balances tasks whose losses differ in scale. Under task sampling
    the mean runs over the tasks with a loss this step.
    """
    uses_weights = "none"

    def objective(self, losses, step):
        active = active_tasks(losses)
        logs = torch.log(torch.where(active, losses, torch.ones_like(losses)))  # log 1 = 0 off the active set
        total = torch.exp(logs.sum() / active.sum().clamp_min(1))
        w = torch.where(active, total.detach() / (active.sum().clamp_min(1) * losses.detach()), torch.zeros_like(losses))
        return total, w


# ---- RLW ------------------------------------------------------------------------------------
class RLWOptions(StrictModel):
    seed: int | None = Field(
        None, ge=0, le=2**62,
        description="seed of the weight sampler; empty = derived from the run's seed",
    )


@register_weighting(
    "rlw",
    description="Random loss weighting: fresh random weights every step (a strong, free baseline).",
    paper="Lin et al., TMLR 2022 (Reasonable effectiveness of random weighting)",
    formula=r"w=\mathrm{softmax}(\tilde w),\quad \tilde w\sim\mathcal N(0,I_T)\ \text{each step}",
    options=RLWOptions,
)
class RandomLossWeighting(WeightingStrategy):
    """Lin et al. (2022): each step w = softmax(w̃), w̃ ~ N(0, I_T); L = Σ_t w_t L_t.

    The weights lie on the simplex (sum to 1) as in the paper, not to T as equal
    weighting does; with Adam this only changes the scale of the update slightly.
    They are drawn on the CPU from the strategy's own seeded `torch.Generator` (not the
    global one, so the model's dropout and data order do not depend on it) and copied
    to the device without a sync.
    """
    uses_weights = "none"

    def __init__(self, tasks, options, *, base_weights):
        super().__init__(tasks, options, base_weights=base_weights)
        self._gen = torch.Generator().manual_seed(seed_from_torch(options.seed))

    def weights(self, losses, step):
        z = torch.randn(len(self.tasks), generator=self._gen)
        return torch.softmax(z, dim=0).to(losses.device, non_blocking=True)


# ---- FAMO -----------------------------------------------------------------------------------
class FAMOOptions(StrictModel):
    lr: float = Field(0.025, gt=0.0, le=10.0, allow_inf_nan=False,
                      description="learning rate of the weight logits ξ (Adam; paper: 0.025)")
    gamma: float = Field(0.001, ge=0.0, le=1.0, allow_inf_nan=False,
                         description="weight decay γ of the logits (paper: 0.001)")
    min_loss: float = Field(0.0, ge=0.0, allow_inf_nan=False,
                            description="lower bound L*_t of every loss (0 for MSE and cross-entropy)")


@register_weighting(
    "famo",
    description="Fast adaptive multitask optimisation: balances the tasks' log-loss decrease, no gradients needed.",
    paper="Liu, Liu, Jin, Stone & Liu, NeurIPS 2023 (FAMO: Fast Adaptive Multitask Optimization)",
    formula=r"L=\sum_t \frac{z_t}{c}\log(L_t-L_t^*),\ z=\mathrm{softmax}(\xi),\ c=\sum_t\frac{z_t}{L_t-L_t^*};\ "
            r"\xi\leftarrow\xi-\eta\,J_{\mathrm{softmax}}^\top\delta,\ \delta_t=\log L_t^{\text{prev}}-\log L_t",
    options=FAMOOptions,
)
class FAMO(WeightingStrategy):
    """Liu et al. (2023): minimise Σ_t (z_t/c)·log(L_t − L*_t), z = softmax(ξ),
    c = Σ_t z_t/(L_t − L*_t) (detached), so the effective weight of L_t is z_t/(c·(L_t − L*_t)).

    The logits ξ follow the observed decrease of each log loss, δ_t = log L_t(before) −
    log L_t(after): ξ ← Adam step on J_softmax(ξ)ᵀ δ with weight decay γ, raising the
    weight of tasks that improve slowly. The authors measure "after" with an extra
    forward pass on the same batch once the step is taken; the engine does not give us
    that pass, so we use the next step's losses (a fresh batch) as "after", as LibMTL
    does. ξ has its own Adam (the paper's), outside the run's optimiser. A task without
    a loss at either step contributes δ_t = 0.
    """
    uses_weights = "none"

    def __init__(self, tasks, options, *, base_weights):
        super().__init__(tasks, options, base_weights=base_weights)
        self.register_buffer("logits", torch.zeros(len(tasks)))
        self.register_buffer("_prev", torch.zeros(len(tasks)))
        self._opt: torch.optim.Optimizer | None = None
        self._has_prev = False

    def objective(self, losses, step):
        o = self.options
        d = (losses - o.min_loss).clamp_min(0) + 1e-8
        if self._opt is None or self._opt.param_groups[0]["params"][0] is not self.logits:
            self.logits.requires_grad_(True)
            self._opt = torch.optim.Adam([self.logits], lr=o.lr, weight_decay=o.gamma)
        active = active_tasks(losses)
        if self._has_prev:
            now = torch.log(d.detach())
            both = active & (self._prev != 0)
            delta = torch.where(both, torch.log(self._prev.clamp_min(1e-30)) - now, torch.zeros_like(now))
            with torch.no_grad():
                z = torch.softmax(self.logits, 0)
                self.logits.grad = z * (delta - (z * delta).sum())  # J_softmax(ξ)ᵀ δ
            self._opt.step()
        self._prev.copy_(torch.where(active, d.detach(), torch.zeros_like(d)))
        self._has_prev = True
        z = torch.softmax(self.logits.detach(), 0)
        c = (z / d.detach()).sum()
        total = (z / c * torch.log(d)).sum()
        return total, z / (c * d.detach())


# ---- STCH -----------------------------------------------------------------------------------
class STCHOptions(StrictModel):
    mu: float = Field(1.0, gt=0.0, le=100.0, allow_inf_nan=False,
                      description="smoothing μ: → 0 is the (non-smooth) Tchebycheff max, large is close to the mean")
    warmup_steps: int = Field(
        100, ge=0, le=1_000_000,
        description="steps of Σ log L_t that also measure the nadir L̄_t (mean loss) used to normalise; "
        "0 = no warm-up, f_t = log L_t",
    )


@register_weighting(
    "stch",
    description="Smooth Tchebycheff scalarisation: a soft maximum of the normalised task losses.",
    paper="Lin, Zhang, Ye, Zhang & Liu, ICML 2024 (Smooth Tchebycheff Scalarization for Multi-Objective Optimization)",
    formula=r"L=T\mu\log\sum_t\exp\!\Big(\frac{f_t}{\mu}\Big),\quad f_t=\log\frac{L_t}{\bar L_t}",
    options=STCHOptions,
)
class SmoothTchebycheff(WeightingStrategy):
    """Lin et al. (2024): g_μ(x) = μ log Σ_t exp(λ_t (f_t(x) − z*_t)/μ), a smooth upper
    bound of the Tchebycheff max_t λ_t (f_t − z*_t) that tends to it as μ → 0.

    For multi-task learning the authors' code (STCH_MTL, also in LibMTL) takes
    f_t = log(L_t / L̄_t), with the nadir L̄_t the mean loss over a warm-up during which
    it minimises Σ_t log L_t, λ_t = 1, z* = 0, and multiplies by T. We follow it, with
    the warm-up counted in steps. Effective weight: ∂L/∂L_t = T·softmax(f/μ)_t / L_t
    (1/L_t during the warm-up).
    """
    uses_weights = "none"

    def __init__(self, tasks, options, *, base_weights):
        super().__init__(tasks, options, base_weights=base_weights)
        T = len(tasks)
        self.register_buffer("_sum", torch.zeros(T))
        self.register_buffer("_count", torch.zeros(T))
        self.register_buffer("nadir", torch.ones(T))

    def objective(self, losses, step):
        o = self.options
        T = len(self.tasks)
        active = active_tasks(losses)
        safe = torch.where(active, losses, torch.ones_like(losses))
        if step <= o.warmup_steps:
            self._sum += torch.where(active, losses.detach(), torch.zeros_like(losses))
            self._count += active
            if step == o.warmup_steps:
                self.nadir.copy_(torch.where(self._count > 0, self._sum / self._count.clamp_min(1), self.nadir))
            total = torch.log(safe).sum()
            return total, torch.where(active, 1.0 / safe.detach(), torch.zeros_like(losses))
        f = torch.log(safe / self.nadir)
        f = torch.where(active, f, torch.full_like(f, -1e4))  # an absent task takes no part in the max
        total = T * o.mu * torch.logsumexp(f / o.mu, dim=0)
        w = T * torch.softmax(f.detach() / o.mu, dim=0) / safe.detach()
        return total, torch.where(active, w, torch.zeros_like(w))

