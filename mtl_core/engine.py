"""The training loop: forward, per-task losses, combine, step, evaluate.

`train(config, dataset, sink)` trains one model (multi-task or single-task) and returns
its held-out test metrics. Bookkeeping goes through the sink; the loop itself keeps
per-step losses on the device and synchronises with the host only every `log_every`
steps (no per-task `.item()` in the hot loop).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from mtl_core.config import ExperimentConfig
from mtl_core.errors import ConfigError, RunCancelled, TrainingError
from mtl_core.interference import lookahead_affinity, snapshot, task_gradients
from mtl_core.metrics import decision_logits, task_metrics, tune_thresholds
from mtl_core.models import MultiTaskModel, build_model
from mtl_core.models.heads import has_missing, task_loss
from mtl_core.projection import ROWS as PROJECTION_ROWS
from mtl_core.projection import projection_snapshot
from mtl_core.selection import DeltaMScore, Score, keeper, single_task_score
from mtl_core.sink import Sink
from mtl_core.tasks.base import IGNORE_INDEX, MTLDataset, Split, balanced_class_weights, balanced_label_weights
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
    # Checkpoint selection (mtl_core.selection): `test` and `val` are the metrics at
    # `selected_step`; `test_last` and `val_last` those of the weights at the end.
    selected_step: int | None = None
    test_last: dict[str, dict[str, float]] | None = None
    val_last: dict[str, dict[str, float]] | None = None
    # Every task's test outputs at the selected step (CPU, float32): the paired comparison
    # with another model on the same test rows (mtl_core.significance). A multilabel task
    # with tuned thresholds stores its decision logits (`metrics.decision_logits`).
    test_outputs: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    # Multilabel tasks with `tune_thresholds`: the per-label thresholds the test metrics used.
    thresholds: dict[str, list[float]] | None = None


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


def resolve_amp(requested: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `amp` on `device`, or None for full float32.

    auto = bfloat16 on a CUDA GPU that supports it, else off (on the CPU, bfloat16
    autocast is slower than float32 for our small models: bench/gpu.py); bf16 = bfloat16
    anywhere it is supported, the CPU included when asked for explicitly; fp16 = float16
    with a GradScaler, CUDA only (float16 without loss scaling underflows, and the
    scaler is a CUDA feature here).
    """
    cuda = device.type == "cuda"
    if requested == "off":
        return None
    if requested == "auto":
        return torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else None
    if requested == "bf16":
        if cuda and not torch.cuda.is_bf16_supported():
            raise ConfigError("amp: this GPU does not support bfloat16; use amp: fp16 (with loss scaling) or off")
        return torch.bfloat16
    if not cuda:  # fp16
        raise ConfigError(
            f"amp: 'fp16' needs a CUDA GPU (float16 training with a GradScaler), but this run is on {device.type}; "
            "use amp: bf16 (bfloat16 autocast, also on the CPU), auto or off"
        )
    return torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    """A context that runs the forward pass under autocast to `dtype`; a no-op when None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _grad_scaler(amp: torch.dtype | None, device: torch.device, strategy: WeightingStrategy):
    """A GradScaler for float16 training (None otherwise). The scale reaches the strategy's
    own backward pass as `grad_scale`, so every strategy must take that argument."""
    if amp is not torch.float16:
        return None
    if "grad_scale" not in inspect.signature(strategy.backward).parameters:
        name = strategy.registry_name or type(strategy).__name__
        raise ConfigError(
            f"amp: 'fp16' scales the gradients (GradScaler), which weighting {name!r} does not support yet; "
            "use amp: bf16 (no scaling needed) or off"
        )
    return torch.amp.GradScaler(device.type)


def compile_model(model: MultiTaskModel, example: torch.Tensor) -> str:
    """Compile `model`'s forward with `torch.compile` in place; returns "on", or
    "failed: <reason>" after a logged fall-back to eager execution.

    The forward is replaced on the instance (`model.forward = torch.compile(...)`), so
    the model keeps its class, state_dict keys and methods (shared_parameters, ...). It
    is tried at once on one training batch, forward and backward, under a forked RNG
    (the run's random stream is left as it was), because torch.compile fails lazily, at
    the first call: a missing C++ compiler or an unsupported operation then falls back
    here, before training starts, instead of failing the run mid-way.
    """
    try:
        model.forward = torch.compile(model.forward)
        devices = [example.device] if example.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            out = model(example)
            sum(o.float().sum() for o in out.values()).backward()
    except Exception as exc:  # noqa: BLE001 - any compiler failure means: run eagerly
        model.__dict__.pop("forward", None)
        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"[:300]
        log.warning("compile: torch.compile failed (%s); training without it", reason)
        return f"failed: {reason}"
    finally:
        model.zero_grad(set_to_none=True)
    return "on"


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
@torch.no_grad()
def predict(model: MultiTaskModel, data: Split, *, amp: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Every task's outputs (logits or values) of `model` on `data`, in eval mode, float32.

    `amp`: the forward pass runs under autocast to this dtype (as training does); the
    outputs are cast to float32, so metrics never see bfloat16 rounding of their sums.
    """
    was_training = model.training
    model.eval()
    outputs: dict[str, list[torch.Tensor]] = {t: [] for t in model.tasks}
    with autocast(data.x.device, amp):
        for start in range(0, len(data), EVAL_BATCH):
            out = model(data.x[start : start + EVAL_BATCH])
            for t in model.tasks:
                outputs[t].append(out[t])
    model.train(was_training)
    return {t: torch.cat(outputs[t]).float() for t in model.tasks}


@torch.no_grad()
def evaluate(
    model: MultiTaskModel, data: Split, dataset: MTLDataset, *, amp: torch.dtype | None = None,
    outputs: dict[str, torch.Tensor] | None = None, thresholds: dict[str, list[float]] | None = None,
) -> dict[str, dict[str, float]]:
    """Metrics and mean loss of every task of `model` on `data` (eval mode); `outputs`:
    the model's `predict` on `data` when the caller already has them; `thresholds`: tuned
    per-label thresholds of multilabel tasks (0.5 for a task not in it)."""
    outputs = predict(model, data, amp=amp) if outputs is None else outputs
    thresholds = thresholds or {}
    result = {}
    for t in model.tasks:
        spec = dataset.tasks[t]
        result[t] = task_metrics(spec, outputs[t], data.y[t], thresholds=thresholds.get(t))
        result[t]["loss"] = float(task_loss(spec.kind, outputs[t], data.y[t]))
    return result


def class_weight_table(config: ExperimentConfig, dataset: MTLDataset, tasks: list[str],
                       device: torch.device | str = "cpu") -> list[torch.Tensor | None]:
    """Per task, its loss's class weights (`class_weights: balanced`, from the training split)
    or None for an unweighted loss: a classification task's `(n_classes,)` cross-entropy
    weights; a multilabel task's `(2, n_labels)` weights of each label's absent / present
    cells (`balanced_label_weights`); None for regression and tagging."""
    if config.class_weights != "balanced":
        return [None] * len(tasks)
    table: list[torch.Tensor | None] = []
    for t in tasks:
        spec = dataset.tasks[t]
        if spec.kind == "classification":
            table.append(balanced_class_weights(dataset.train.y[t], int(spec.num_classes)).to(device))
        elif spec.kind == "multilabel":
            table.append(balanced_label_weights(dataset.train.y[t]).to(device))
        else:
            table.append(None)
    return table


def weighted_task_loss(kind: str, output: torch.Tensor, target: torch.Tensor, *, masked: bool,
                       class_weight: torch.Tensor | None) -> torch.Tensor:
    """`task_loss`, or with class weights the weighted mean cross-entropy
    Σ_i w_{y_i}·CE_i / Σ_i w_{y_i} over the labelled items (0 with a graph when none is);
    for a multilabel task the same weighted mean over its labelled cells, each binary
    cross-entropy weighted by its label's weight of "present" or "absent"."""
    if class_weight is None:
        return task_loss(kind, output, target, masked=masked)
    if kind == "multilabel":
        labelled = ~torch.isnan(target)
        y = torch.nan_to_num(target)
        w = torch.where(y > 0.5, class_weight[1], class_weight[0]).to(output.dtype) * labelled
        per_cell = F.binary_cross_entropy_with_logits(output, y, reduction="none")
        return (w * per_cell).sum() / w.sum().clamp_min(1e-12)
    loss = F.cross_entropy(output, target, weight=class_weight.to(output.dtype), ignore_index=IGNORE_INDEX,
                           reduction="sum")
    labelled = target != IGNORE_INDEX
    return loss / (class_weight[target.clamp_min(0)] * labelled).sum().clamp_min(1e-12)


# Above this many trainable shared parameters (a fine-tuned MiniLM shares 22.7 M) a snapshot
# measures the last ones only: the layers nearest the heads, where the tasks meet first.
INTERFERENCE_MAX_PARAMS = 2_000_000


def interference_parameters(model: MultiTaskModel, limit: int | None = None) -> tuple[list[torch.nn.Parameter], int]:
    """(the shared parameters a snapshot measures, how many trainable shared parameters there are).

    Only parameters that train: a frozen encoder's are left out (nothing there moves, so
    nothing there interferes). When the rest exceed `limit` (default
    `INTERFERENCE_MAX_PARAMS`), the last of them in the model's order are kept, up to `limit`
    (at least one tensor): the gradient w.r.t. them needs a backward pass through the heads
    and the top layers only, not through the whole encoder (a snapshot of a fine-tuned MiniLM on
    512 rows: ~30 s -> ~7 s on one CPU thread, bench/interference_large.py). What the snapshot then measures is the interference in those top
    shared layers, as gradient methods that work on the last shared layer do (MGDA-UB, Sener &
    Koltun, 2018, on the shared representation); the result says how many were measured.
    """
    limit = INTERFERENCE_MAX_PARAMS if limit is None else limit
    shared = [p for p in model.shared_parameters() if p.requires_grad]
    total = sum(p.numel() for p in shared)
    if total <= limit:
        return shared, total
    picked: list[torch.nn.Parameter] = []
    size = 0
    for p in reversed(shared):
        if picked and size + p.numel() > limit:
            break
        picked.append(p)
        size += p.numel()
    return picked[::-1], total


def interference_snapshot(
    model: MultiTaskModel,
    dataset: MTLDataset,
    xb: torch.Tensor,
    yb: dict[str, torch.Tensor],
    *,
    affinity_lr: float | None = None,
    class_weights: list[torch.Tensor | None] | None = None,
) -> dict[str, Any] | None:
    """Gradient interference on the shared parameters at one batch: pairwise cosine,
    magnitude similarity, norms and, when `affinity_lr` is given, look-ahead affinity.

    The per-task losses are those the engine trains with (`weighted_task_loss`, with the
    run's `class_weights` per task in `model.tasks` order, `class_weight_table`): the
    gradients measured are the gradients the weighting strategy combines.

    Protocol: the engine passes one fixed training batch (`SNAPSHOT_BATCH` rows, drawn
    once from the run's seed), measured in eval mode and in float32 whatever `amp` says,
    so that snapshots of one run, and of runs with different weighting strategies, are
    measured alike. That is why a gradient method's own per-step G (on a mini-batch, in
    train mode, under autocast) is not reused here, although it would save one backward
    pass per task: the snapshot would then depend on the strategy and on mini-batch
    noise. The costs cut instead (issue 11, bench/interference_cost.py): each task's
    gradient starts at its own loss node (no zero gradients pushed through the other
    heads), and the affinity look-ahead reuses the losses of this forward pass as its
    "before".
    """
    shared, total = interference_parameters(model)
    if not shared or len(model.tasks) < 2:
        return None
    was_training = model.training
    model.eval()  # no dropout noise in the measurement
    kinds = [dataset.tasks[t].kind for t in model.tasks]
    weights = class_weights or [None] * len(kinds)

    def task_losses() -> list[torch.Tensor]:
        out = model(xb)
        return [weighted_task_loss(kind, out[t], yb[t], masked=True, class_weight=w)
                for kind, w, t in zip(kinds, weights, model.tasks)]

    try:
        losses = task_losses()
        G = task_gradients(losses, shared)
        affinity = None
        if affinity_lr:
            before = torch.stack([loss.detach() for loss in losses])
            del losses  # free the graph before the look-ahead passes
            with torch.no_grad():
                affinity = lookahead_affinity(shared, G, affinity_lr, lambda: torch.stack(task_losses()),
                                              before=before)
    finally:
        model.train(was_training)
    out = snapshot(G, model.tasks, affinity)
    if G.shape[1] < total:  # measured on the top shared layers only (`interference_parameters`)
        out["measured_params"], out["shared_params"] = int(G.shape[1]), int(total)
    return out


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
    score: Score | None = None,
) -> TrainResult:
    """Train one model on `dataset` as `config` says; return its test metrics.

    `tasks`, `sharing` and `weights` override the config (the single-task baselines
    reuse the multi-task config with one task and hard sharing). `model` trains a
    prepared model instead of a fresh one (transfer learning: a pre-trained encoder,
    possibly frozen — parameters with requires_grad=False are left out of the optimiser).
    With `config.selection == "best_val"` the test metrics are those of the evaluation step
    with the best `score` of the validation metrics (`mtl_core.selection`; default: the
    primary metric for one task, validation Δm against the first evaluation for several).
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
    amp = resolve_amp(config.amp, device)
    scaler = _grad_scaler(amp, device, strategy)
    compiled = compile_model(model, train_data.x[: config.batch_size]) if config.compile else "off"
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(config, [*trainable, *strategy.parameters()])
    specs = [dataset.tasks[t] for t in tasks]
    masked = [has_missing(train_data.y[t]) for t in tasks]  # fast loss where no label is missing
    class_w = class_weight_table(config, dataset, tasks, device)  # None per task unless class_weights: balanced
    T, steps = len(tasks), total_steps(config, len(train_data))
    batches = BatchSampler(len(train_data), config.batch_size, gen, device)
    probs = _task_probabilities(config, train_data, tasks)
    # Interference is measured on one fixed training batch, larger than a step's batch so
    # the cosine reflects the tasks rather than mini-batch noise.
    snap_idx = torch.randperm(len(train_data), generator=torch.Generator().manual_seed(config.seed + 1))[
        : max(SNAPSHOT_BATCH, config.batch_size)
    ].to(device)
    snap_batch: tuple[torch.Tensor, dict[str, torch.Tensor]] | None = None  # gathered at the first snapshot

    sink.on_start(phase, {
        "tasks": tasks, "total_steps": steps, "batch_size": batches.batch_size, "device": str(device),
        "sharing": sharing_name, "parameter_counts": model.parameter_counts(),
        "amp": str(amp).removeprefix("torch.") if amp is not None else "off", "compile": compiled,
    })
    # Per-step losses, weights and task masks stay on the device, one small tensor per
    # step, until the next logging step stacks them: appending to a list launches no
    # kernel, where copying each row into a preallocated buffer cost three indexed copies
    # per step (issue 11; on a GPU each is a kernel launch).
    loss_rows: list[torch.Tensor] = []
    weight_rows: list[torch.Tensor] = []
    active_rows: list[torch.Tensor] = []
    reg_rows: list[torch.Tensor] = []
    all_active = torch.ones(T, dtype=torch.bool, device=device)
    one_active = torch.eye(T, dtype=torch.bool, device=device)
    forward_context = autocast(device, amp)  # forward + losses only; a no-op context when amp is off
    val_metrics: dict[str, dict[str, float]] = {}
    gates: dict[str, dict[str, float]] | None = None
    last_snapshot = None
    n_evals = 0
    affinity_lr = config.affinity_lr or config.optimizer.lr
    if score is None:
        score = single_task_score(specs[0]) if T == 1 else DeltaMScore(dict(zip(tasks, specs)))
    best = keeper(config.selection, score)
    train_seconds, tick = 0.0, time.perf_counter()
    model.train()

    try:
        for step in range(1, steps + 1):
            if sink.should_stop():
                raise RunCancelled(f"run cancelled at step {step - 1} of {steps}")
            idx = batches.next()
            xb = train_data.x[idx]
            with forward_context:
                if probs is None:
                    out = model(xb)
                    task_losses = [weighted_task_loss(specs[i].kind, out[t], train_data.y[t][idx],
                                                      masked=masked[i], class_weight=class_w[i])
                                   for i, t in enumerate(tasks)]
                    active_row = all_active
                else:  # one task this step; the others get a zero loss and no gradient
                    j = int(torch.multinomial(probs, 1, generator=gen))
                    active_row = one_active[j]
                    out = model(xb, [tasks[j]])
                    loss_j = weighted_task_loss(specs[j].kind, out[tasks[j]], train_data.y[tasks[j]][idx],
                                                masked=masked[j], class_weight=class_w[j])
                    task_losses = [loss_j if i == j else loss_j.new_zeros(()) for i in range(T)]
                if amp is not None:  # the strategies weigh float32 losses, whatever the forward ran in
                    task_losses = [loss.float() for loss in task_losses]
                losses = torch.stack(task_losses)
            reg = model.regularizer()
            optimizer.zero_grad(set_to_none=True)
            if scaler is None:
                applied = strategy.backward(losses, step=step, model=model, extra_loss=reg)
                optimizer.step()
            else:  # fp16: gradients scaled against underflow (GradScaler), steps with inf/NaN skipped
                applied = strategy.backward(losses, step=step, model=model, extra_loss=reg,
                                            grad_scale=scaler.scale(torch.ones((), device=device)))
                scaler.step(optimizer)
                scaler.update()

            loss_rows.append(losses.detach())
            weight_rows.append(applied)
            active_rows.append(active_row)
            if reg is not None:
                reg_rows.append(reg.detach())

            evaluate_now = step % config.eval_every == 0 or step == steps
            if len(loss_rows) == config.log_every or evaluate_now:
                _flush_train_log(sink, phase, step, tasks, loss_rows, weight_rows, active_rows, reg_rows)
                train_seconds += time.perf_counter() - tick  # evaluation time is not training time
                sink.on_progress(phase, step, steps, step * batches.batch_size / max(train_seconds, 1e-9))
                if evaluate_now:
                    val_metrics = evaluate(model, val_data, dataset, amp=amp)
                    sink.on_eval(phase, step, "val", val_metrics)
                    if best is not None:
                        best.offer(step, val_metrics, model)
                    if hasattr(model, "gate_weights"):  # MMoE-style modes: which experts each task uses
                        gates = model.gate_weights()
                        sink.on_eval(phase, step, "gates", gates)
                    if config.interference:
                        n_evals += 1
                        measure_affinity = config.affinity_every and n_evals % config.affinity_every == 0
                        if snap_batch is None:
                            snap_batch = train_data.x[snap_idx], {t: train_data.y[t][snap_idx] for t in tasks}
                        last_snapshot = interference_snapshot(
                            model, dataset, *snap_batch, affinity_lr=affinity_lr if measure_affinity else None,
                            class_weights=class_w,
                        )
                        if last_snapshot is not None:
                            # What each head sees, on the first validation rows (mtl_core.projection).
                            rows = min(PROJECTION_ROWS, len(val_data))
                            last_snapshot["projection"] = projection_snapshot(
                                model, dataset, val_data.x[:rows], {t: val_data.y[t][:rows] for t in tasks})
                            sink.on_interference(phase, step, last_snapshot)
                tick = time.perf_counter()

        test_data = dataset.test.to(device)
        tuned = [t for t in tasks if dataset.tasks[t].tune_thresholds]
        thresholds = _tuned_thresholds(model, val_data, tuned, amp)
        test_outputs = predict(model, test_data, amp=amp)
        test_last = test_metrics = evaluate(model, test_data, dataset, outputs=test_outputs, thresholds=thresholds)
        selected, val_last = steps, val_metrics
        if best is not None and best.step is not None:
            selected, val_metrics = best.step, best.val
            if best.step != steps:  # the selected weights are not the last: test them
                best.restore(model)
                thresholds = _tuned_thresholds(model, val_data, tuned, amp)
                test_outputs = predict(model, test_data, amp=amp)
                test_metrics = evaluate(model, test_data, dataset, outputs=test_outputs, thresholds=thresholds)
        if thresholds:
            sink.on_eval(phase, selected, "thresholds",
                         {t: dict(zip(dataset.tasks[t].class_names or (), th)) for t, th in thresholds.items()})
            test_outputs = {t: decision_logits(o, thresholds.get(t)) for t, o in test_outputs.items()}
        sink.on_eval(phase, selected, "test", test_metrics)
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
        selected_step=selected, test_last=test_last, val_last=val_last,
        test_outputs={t: o.cpu() for t, o in test_outputs.items()}, thresholds=thresholds or None,
    )


def _tuned_thresholds(model: MultiTaskModel, val_data: Split, tasks: list[str],
                      amp: torch.dtype | None) -> dict[str, list[float]]:
    """Per-label decision thresholds of the multilabel `tasks`, tuned on the current model's
    validation outputs (`metrics.tune_thresholds`); {} when there are none to tune."""
    if not tasks:
        return {}
    outputs = predict(model, val_data, amp=amp)
    return {t: tune_thresholds(outputs[t], val_data.y[t]) for t in tasks}


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


def _flush_train_log(sink, phase, step, tasks, loss_rows, weight_rows, active_rows, reg_rows) -> None:
    """Stop on a non-finite loss, else send the mean losses and weights since the last log
    to the sink; empties the row lists. One device-to-host transfer for everything (a
    GPU waits once per logging step, not once per figure)."""
    losses, weights, active = torch.stack(loss_rows), torch.stack(weight_rows), torch.stack(active_rows)
    k, T = losses.shape
    counts = active.sum(0).clamp_min(1)
    parts = [
        (active & ~torch.isfinite(losses)).any().reshape(1).float(),
        (losses * active).sum(0) / counts,
        weights.mean(0).to(losses.dtype),
        active.any(0).float(),
        (losses * weights).sum(1).mean().reshape(1),
    ]
    if reg_rows:
        parts.append(torch.stack(reg_rows).float().mean().reshape(1))
    values = torch.cat(parts).tolist()
    if values[0]:
        _check_finite(losses, active, tasks, step - k + 1)  # raises, naming task and step
    ml, mw, seen = values[1 : 1 + T], values[1 + T : 1 + 2 * T], values[1 + 2 * T : 1 + 3 * T]
    extras = {"reg": values[2 + 3 * T]} if reg_rows else {}
    loss_rows.clear(), weight_rows.clear(), active_rows.clear(), reg_rows.clear()
    sink.on_train(
        phase, step,
        {t: ml[i] for i, t in enumerate(tasks) if seen[i]},
        values[1 + 3 * T],
        {t: mw[i] for i, t in enumerate(tasks)},
        extras,
    )
