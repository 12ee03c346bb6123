"""Synthetic regression tasks with controllable correlation (Ma et al., KDD 2018, MMoE §4.1).

Following the paper: pick orthogonal unit vectors u_1, ..., u_T in R^d, set
    w_1 = c·u_1,   w_t = c·(p_t·u_1 + sqrt(1 − p_t²)·u_t)   (t ≥ 2),
draw x ~ N(0, I_d) and
    y_t = w_tᵀx + Σ_{i=1}^{m} sin(α_i·w_tᵀx + β_i) + ε,   ε ~ N(0, σ²),
with α_i, β_i ~ N(0, 1) shared by all tasks. cos(w_1, w_t) = p_t is the knob: the
label correlation falls as p falls, and the paper shows multi-task models suffer
more the lower it is. With one `correlation` p every task t ≥ 2 has cos(w_1, w_t) = p
(so cos(w_s, w_t) = p² between two of them); `correlations` sets p_t per task.
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field, model_validator

from mtl_core.spec import StrictModel
from mtl_core.tasks.base import MTLDataset, Split, TaskSpec, register_dataset, split_indices


class MMoESyntheticOptions(StrictModel):
    correlation: float = Field(
        0.9, ge=-1.0, le=1.0, description="p = cos(w_1, w_t): task relatedness, -1 to 1"
    )
    correlations: list[float] | None = Field(
        None,
        description="per-task p_t (first entry is task y1 itself and must be 1); overrides correlation",
    )
    n_tasks: int = Field(2, ge=1, le=8, description="number of regression tasks")
    n_samples: int = Field(1500, ge=30, le=1_000_000, description="rows in all splits together")
    input_dim: int = Field(32, ge=2, le=4096, description="d, the input dimension")
    scale: float = Field(1.0, gt=0, description="c, the norm of the task weight vectors")
    n_sin: int = Field(10, ge=0, le=100, description="m, number of sine terms")
    noise: float = Field(
        1.0, ge=0, description="σ, standard deviation of the label noise (little, noisy data: sharing pays)"
    )

    @model_validator(mode="after")
    def _check(self) -> "MMoESyntheticOptions":
        if self.correlations is not None:
            if len(self.correlations) != self.n_tasks:
                raise ValueError(
                    f"correlations has {len(self.correlations)} entries but n_tasks is "
                    f"{self.n_tasks}; give one p per task"
                )
            if any(not -1.0 <= p <= 1.0 for p in self.correlations):
                raise ValueError("every correlation must lie in [-1, 1]")
            if self.correlations[0] != 1.0:
                raise ValueError("correlations[0] is task y1 against itself and must be 1.0")
        if self.n_tasks > self.input_dim:
            raise ValueError(f"n_tasks ({self.n_tasks}) cannot exceed input_dim ({self.input_dim})")
        return self

    def task_correlations(self) -> list[float]:
        if self.correlations is not None:
            return list(self.correlations)
        return [1.0] + [self.correlation] * (self.n_tasks - 1)


def _task_names(opts: MMoESyntheticOptions) -> list[str]:
    return [f"y{t + 1}" for t in range(opts.n_tasks)]


@register_dataset(
    "mmoe_synthetic",
    description="Synthetic regression tasks whose correlation you set: from positive to negative transfer.",
    paper="Ma et al., KDD 2018 (MMoE), synthetic data of §4.1",
    options=MMoESyntheticOptions,
    task_names=_task_names,
)
def build_mmoe_synthetic(opts: MMoESyntheticOptions, seed: int) -> MTLDataset:
    rng = np.random.default_rng(seed)
    d, T = opts.input_dim, opts.n_tasks
    # Orthonormal u_1..u_T: QR of a Gaussian matrix.
    q, _ = np.linalg.qr(rng.standard_normal((d, T)))
    u = q.T  # (T, d)
    ps = opts.task_correlations()
    w = np.stack(
        [opts.scale * (u[0] if t == 0 else ps[t] * u[0] + np.sqrt(1.0 - ps[t] ** 2) * u[t]) for t in range(T)]
    )
    alpha = rng.standard_normal(opts.n_sin)
    beta = rng.standard_normal(opts.n_sin)

    x = rng.standard_normal((opts.n_samples, d))
    proj = x @ w.T  # (N, T)
    y = proj + np.sin(proj[:, :, None] * alpha + beta).sum(-1)
    y = y + opts.noise * rng.standard_normal(y.shape)

    names = _task_names(opts)
    x_t = torch.as_tensor(x, dtype=torch.float32)
    y_t = torch.as_tensor(y, dtype=torch.float32)
    train, val, test = (
        Split(x_t[i], {n: y_t[i, t] for t, n in enumerate(names)})
        for i in split_indices(opts.n_samples, seed=seed)
    )
    # The generator's own units, as in the paper (not standardised): with the default
    # options a target's std is about 3.5: MSE of order 1-10, not a scale apart from a cross-entropy.
    stds = {n: float(train.y[n].std()) for n in names}
    tasks = {
        n: TaskSpec(
            n, "regression",
            description=f"y{t + 1} with cos(w_1, w_{t + 1}) = {ps[t]:g}; the generator's units, "
            f"not standardised (training std {stds[n]:.2g})",
        )
        for t, n in enumerate(names)
    }
    label_corr = np.corrcoef(y.T) if T > 1 else np.ones((1, 1))
    return MTLDataset(
        name="mmoe_synthetic",
        input_kind="vector",
        tasks=tasks,
        train=train,
        val=val,
        test=test,
        input_dim=d,
        feature_names=[f"x{i}" for i in range(d)],
        info={
            "weight_cosines": ps,
            "label_correlation": np.round(label_corr, 4).tolist(),
        },
    )
