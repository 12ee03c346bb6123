"""The training loop: forward, per-task losses, combine, step, evaluate.

`train(config, dataset, sink)` trains one model (multi-task or single-task) and returns
its held-out test metrics. Bookkeeping goes through the sink; the loop itself keeps
per-step losses on the device and synchronises with the host only every `log_every`
steps (no per-task `.item()` in the hot loop).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from mtl_core.config import ExperimentConfig
from mtl_core.errors import ConfigError, RunCancelled, TrainingError
from mtl_core.interference import lookahead_affinity, snapshot, task_gradients
from mtl_core.metrics import task_metrics
from mtl_core.models import MultiTaskModel, build_model
from mtl_core.models.heads import has_missing, task_loss
from mtl_core.sink import Sink
from mtl_core.tasks.base import MTLDataset, Split
from mtl_core.weighting import WeightingStrategy, build_weighting

log = logging.getLogger(__name__)

EVAL_BATCH = 2048
SNAPSHOT_BATCH = 512


@dataclass
class TrainResult:
    """What one trained model produced (all metrics on held-out data)."""

    phase: str
    tasks: list[str]
    steps: int
    test: dict[str, dict[str, float]]
    val: dict[str, dict[str, float]]
    samples_per_s: float
    train_seconds: float
    device: str
    parameter_counts: dict[str, int]
    interference: dict[str, Any] | None = None
    gates: dict[str, dict[str, float]] | None = None  # expert gate weights per task (MMoE-style)
    model: MultiTaskModel | None = field(default=None, repr=False)


def resolve_device(requested: str) -> torch.device:
    """`auto` = CUDA when present, else CPU; asking for CUDA without one is an error."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' was asked for but no CUDA GPU is available; use 'auto' or 'cpu'")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def total_steps(config: ExperimentConfig, n_train: int) -> int:
    if config.steps is not None:
        return int(config.steps)
    per_epoch = math.ceil(n_train / config.batch_size)
    return max(1, int(round(config.epochs * per_epoch)))


def make_optimizer(config: ExperimentConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    o = config.optimizer
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
    return cls(params, lr=o.lr, weight_decay=o.weight_decay)


class BatchSampler:
    """Shuffled mini-batches without replacement, epoch after epoch, from a seeded generator."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator, device: torch.device) -> None:
        self.n, self.batch_size, self.gen, self.device = n, min(batch_size, n), generator, device
        self._perm = torch.empty(0, dtype=torch.long)
        self._pos = n

    def next(self) -> torch.Tensor:
        if self._pos + self.batch_size > self.n:
            self._perm = torch.randperm(self.n, generator=self.gen).to(self.device)
            self._pos = 0
        idx = self._perm[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        return idx


@torch.no_grad()
def evaluate(model: MultiTaskModel, data: Split, dataset: MTLDataset) -> dict[str, dict[str, float]]:
    """Metrics and mean loss of every task of `model` on `data` (eval mode)."""
    was_training = model.training
    model.eval()
    outputs: dict[str, list[torch.Tensor]] = {t: [] for t in model.tasks}
    for start in range(0, len(data), EVAL_BATCH):
        out = model(data.x[start : start + EVAL_BATCH])
        for t in model.tasks:
            outputs[t].append(out[t])
    model.train(was_training)
    result = {}
    for t in model.tasks:
        spec = dataset.tasks[t]
        out = torch.cat(outputs[t])
        result[t] = task_metrics(spec, out, data.y[t])
        result[t]["loss"] = float(task_loss(spec.kind, out, data.y[t]))
    return result


def interference_snapshot(
    model: MultiTaskModel,
    dataset: MTLDataset,
    xb: torch.Tensor,
    yb: dict[str, torch.Tensor],
    *,
    affinity_lr: float | None = None,
) -> dict[str, Any] | None:
    """Gradient interference on the shared parameters at one batch: pairwise cosine,
    magnitude similarity, norms and, when `affinity_lr` is given, look-ahead affinity."""
    shared = [p for p in model.shared_parameters() if p.requires_grad]
    if not shared or len(model.tasks) < 2:
        return None
    was_training = model.training
    model.eval()  # no dropout noise in the measurement

    def losses_now() -> torch.Tensor:
        out = model(xb)
        return torch.stack([task_loss(dataset.tasks[t].kind, out[t], yb[t]) for t in model.tasks])

    G = task_gradients(losses_now(), shared)
    affinity = lookahead_affinity(shared, G, affinity_lr, losses_now) if affinity_lr else None
    model.train(was_training)
    return snapshot(G, model.tasks, affinity)


def train(
    config: ExperimentConfig,
    dataset: MTLDataset,
    sink: Sink | None = None,
    *,
    phase: str = "mtl",
    tasks: list[str] | None = None,
    sharing: str | None = None,
    weights: dict[str, float] | None = None,
    keep_model: bool = False,
    model: MultiTaskModel | None = None,
) -> TrainResult:
    """Train one model on `dataset` as `config` says; return its test metrics.

    `tasks`, `sharing` and `weights` override the config (the single-task baselines
    reuse the multi-task config with one task and hard sharing). `model` trains a
    prepared model instead of a fresh one (transfer learning: a pre-trained encoder,
    possibly frozen — parameters with requires_grad=False are left out of the optimiser).
    """
    sink = sink or Sink()
    tasks = list(tasks or config.task_list(dataset.task_names))
    sharing_name = sharing or config.sharing.name
    sharing_opts = config.sharing.options if sharing is None else {}
    weights = weights if weights is not None else config.task_weights()
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)

    train_data, val_data = dataset.train.to(device), dataset.val.to(device)
    if model is None:
        model = build_model(sharing_name, dataset, tasks, config.model, sharing_opts)
    else:
        tasks = list(model.tasks)
    model = model.to(device)
    w0 = torch.tensor([weights.get(t, 1.0) for t in tasks], dtype=torch.float32, device=device)
    weighting_name = config.weighting.name if sharing is None else "manual"
    weighting_opts = config.weighting.options if sharing is None else {}
    strategy: WeightingStrategy = build_weighting(weighting_name, tasks, weighting_opts, base_weights=w0).to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(config, [*trainable, *strategy.parameters()])
    specs = [dataset.tasks[t] for t in tasks]
    masked = [has_missing(train_data.y[t]) for t in tasks]  # fast loss where no label is missing
    T, steps = len(tasks), total_steps(config, len(train_data))
    batches = BatchSampler(len(train_data), config.batch_size, gen, device)
    probs = _task_probabilities(config, train_data, tasks)
    # Interference is measured on one fixed training batch, larger than a step's batch so
    # the cosine reflects the tasks rather than mini-batch noise.
    snap_idx = torch.randperm(len(train_data), generator=torch.Generator().manual_seed(config.seed + 1))[
        : max(SNAPSHOT_BATCH, config.batch_size)
    ].to(device)

    sink.on_start(phase, {
        "tasks": tasks, "total_steps": steps, "batch_size": batches.batch_size, "device": str(device),
        "sharing": sharing_name, "parameter_counts": model.parameter_counts(),
    })
    # Per-step losses and weights stay on the device until the next logging step.
    loss_buf = torch.zeros(config.log_every, T, device=device)
    weight_buf = torch.zeros(config.log_every, T, device=device)
    active_buf = torch.zeros(config.log_every, T, dtype=torch.bool, device=device)
    extra_buf = torch.zeros(config.log_every, device=device)
    all_active = torch.ones(T, dtype=torch.bool, device=device)
    one_active = torch.eye(T, dtype=torch.bool, device=device)
    has_reg = False
    k = 0
    val_metrics: dict[str, dict[str, float]] = {}
    gates: dict[str, dict[str, float]] | None = None
    last_snapshot = None
    n_evals = 0
    affinity_lr = config.affinity_lr or config.optimizer.lr
    train_seconds, tick = 0.0, time.perf_counter()
    model.train()

    try:
        for step in range(1, steps + 1):
            if sink.should_stop():
                raise RunCancelled(f"run cancelled at step {step - 1} of {steps}")
            idx = batches.next()
            xb = train_data.x[idx]
            if probs is None:
                out = model(xb)
                losses = torch.stack(
                    [task_loss(specs[i].kind, out[t], train_data.y[t][idx], masked=masked[i]) for i, t in enumerate(tasks)]
                )
                active_row = all_active
            else:  # one task this step; the others get a zero loss and no gradient
                j = int(torch.multinomial(probs, 1, generator=gen))
                active_row = one_active[j]
                out = model(xb, [tasks[j]])
                loss_j = task_loss(specs[j].kind, out[tasks[j]], train_data.y[tasks[j]][idx], masked=masked[j])
                losses = torch.stack([loss_j if i == j else loss_j.new_zeros(()) for i in range(T)])
            reg = model.regularizer()
            optimizer.zero_grad(set_to_none=True)
            applied = strategy.backward(losses, step=step, model=model, extra_loss=reg)
            optimizer.step()

            loss_buf[k] = losses.detach()
            weight_buf[k] = applied
            active_buf[k] = active_row
            if reg is not None:
                extra_buf[k] = reg.detach()
                has_reg = True
            k += 1

            evaluate_now = step % config.eval_every == 0 or step == steps
            if k == config.log_every or evaluate_now:
                _check_finite(loss_buf[:k], active_buf[:k], tasks, step - k + 1)
                train_seconds += time.perf_counter() - tick  # evaluation time is not training time
                _log_train(sink, phase, step, tasks, loss_buf[:k], weight_buf[:k], active_buf[:k],
                           extra_buf[:k] if has_reg else None)
                sink.on_progress(phase, step, steps, step * batches.batch_size / max(train_seconds, 1e-9))
                k = 0
                if evaluate_now:
                    val_metrics = evaluate(model, val_data, dataset)
                    sink.on_eval(phase, step, "val", val_metrics)
                    if hasattr(model, "gate_weights"):  # MMoE-style modes: which experts each task uses
                        gates = model.gate_weights()
                        sink.on_eval(phase, step, "gates", gates)
                    if config.interference:
                        n_evals += 1
                        measure_affinity = config.affinity_every and n_evals % config.affinity_every == 0
                        last_snapshot = interference_snapshot(
                            model, dataset, train_data.x[snap_idx], {t: train_data.y[t][snap_idx] for t in tasks},
                            affinity_lr=affinity_lr if measure_affinity else None,
                        )
                        if last_snapshot is not None:
                            sink.on_interference(phase, step, last_snapshot)
                tick = time.perf_counter()

        test_metrics = evaluate(model, dataset.test.to(device), dataset)
        sink.on_eval(phase, steps, "test", test_metrics)
    except RunCancelled as exc:
        sink.on_end(phase, "cancelled", str(exc))
        raise
    except Exception as exc:
        sink.on_end(phase, "failed", str(exc))
        raise
    sink.on_end(phase, "finished")
    return TrainResult(
        phase=phase, tasks=tasks, steps=steps, test=test_metrics, val=val_metrics,
        samples_per_s=steps * batches.batch_size / max(train_seconds, 1e-9),
        train_seconds=train_seconds, device=str(device), parameter_counts=model.parameter_counts(),
        interference=last_snapshot, gates=gates, model=model if keep_model else None,
    )


def _task_probabilities(config: ExperimentConfig, data: Split, tasks: list[str]) -> torch.Tensor | None:
    """None = every task every step; else the probability of sampling each task."""
    if config.sampling.mode == "all" or len(tasks) == 1:
        return None  # one task: nothing to draw (and no draw from the batch generator)
    if config.sampling.proportional:
        counts = torch.tensor([float(data.labelled_count(t)) for t in tasks])
    else:
        counts = torch.ones(len(tasks))
    return counts / counts.sum()


def _check_finite(losses: torch.Tensor, active: torch.Tensor, tasks: list[str], first_step: int) -> None:
    """Stop a diverging run, naming the first task and step whose loss is not finite."""
    bad = active & ~torch.isfinite(losses)
    if not bool(bad.any()):
        return
    row, col = (int(v) for v in bad.nonzero()[0])
    value = float(losses[row, col])
    raise TrainingError(
        f"the loss of task {tasks[col]!r} became {value} at step {first_step + row}: training diverged. "
        "Lower the learning rate (optimizer.lr), lower that task's weight, or check its targets for "
        "extreme values."
    )


def _log_train(sink, phase, step, tasks, losses, weights, active, extra) -> None:
    counts = active.sum(0).clamp_min(1)
    mean_loss = (losses * active).sum(0) / counts
    mean_w = weights.mean(0)
    total = float(((losses * weights).sum(1)).mean())
    ml, mw, seen = mean_loss.tolist(), mean_w.tolist(), active.any(0).tolist()
    extras = {"reg": float(extra.mean())} if extra is not None else {}
    sink.on_train(
        phase, step,
        {t: ml[i] for i, t in enumerate(tasks) if seen[i]},
        total,
        {t: mw[i] for i, t in enumerate(tasks)},
        extras,
    )
