"""Many small models trained as one: an ensemble of runs that differ only in seed,
loss weights or (for tasks of the same kind and size) which tasks they learn.

The K members' parameters are stacked along a leading member dimension and trained by
one optimiser over the stack. Nothing in a step mixes members: the forward pass is a
batched matrix product per layer (member k only ever multiplies its own weights), the
objective is the sum of the members' objectives (so ∂/∂θ_k of the sum is ∂/∂θ_k of
member k's objective), and Adam, AdamW and SGD (momentum and weight decay included)
update every element from that element's gradient and state alone. Each member is
therefore the run `engine.train` would have trained with its seed: the same initial
parameters (built under `torch.manual_seed(seed)` exactly as the engine builds them),
the same mini-batches (each seed's generator draws its permutations as the engine's
`BatchSampler` does) and the same update, up to floating-point rounding of the batched
kernels. What would couple members, and is therefore refused: a norm or clipping over
all parameters, dropout (one global random stream per run), task sampling with
several tasks (a random task per member and step), gradient-based weighting.

Two ways to run the stacked forward pass are kept, chosen by `impl`:
- "batched" (default): `torch.baddbmm` per linear layer over the stacked weights;
- "vmap": `torch.vmap` of `torch.func.functional_call` over the members' own modules.
`bench/ensemble.py` times both; "batched" is the faster on CPU for these small MLPs
(vmap adds per-operation dispatch that is large next to a 64-wide layer).

Scope: vector inputs, the MLP encoder, `hard` sharing (one or more tasks) or
`single_task` with one task, weighting `manual` or `equal` — what the single-task
baselines and weight sweeps use. Anything else raises ConfigError naming what is not
supported; train such runs one by one with `engine.train`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mtl_core.config import ExperimentConfig
from mtl_core.engine import (
    SNAPSHOT_BATCH,
    TrainResult,
    _check_finite,
    evaluate,
    interference_snapshot,
    make_optimizer,
    predict,
    resolve_device,
    total_steps,
)
from mtl_core.errors import ConfigError, RunCancelled, TrainingError
from mtl_core.models import MultiTaskModel, build_model
from mtl_core.models.encoders import MLPEncoder
from mtl_core.models.heads import TaskHead, has_missing
from mtl_core.phases import Phase
from mtl_core.selection import DeltaMScore, Score, keeper, single_task_score
from mtl_core.sink import Sink
from mtl_core.tasks.base import IGNORE_INDEX, MTLDataset

log = logging.getLogger(__name__)

Impl = Literal["batched", "vmap"]

#: Optimiser settings whose update is element-wise (so members stay independent). A
#: setting added to `OptimizerSpec` later (e.g. gradient clipping by global norm) is
#: refused until someone checks that it does not couple the members.
ELEMENTWISE_OPTIMIZER_FIELDS = frozenset({"name", "lr", "weight_decay", "momentum"})
SUPPORTED_WEIGHTING = ("manual", "equal")


@dataclass(frozen=True)
class Member:
    """One model of an ensemble: what makes it differ from its siblings.

    `phase` names its events in the sink (as the engine's `phase`); `weights` are its
    fixed loss weights w_t, one per task of `tasks` (None: the config's weights).
    """

    phase: str
    seed: int
    tasks: tuple[str, ...]
    weights: tuple[float, ...] | None = None


@dataclass
class EnsembleResult:
    """What an ensemble produced: one TrainResult per member, or that member's error."""

    members: list[Member]
    results: list[TrainResult | None]
    errors: list[str | None]
    steps: int
    train_seconds: float

    def result(self, phase: str) -> TrainResult:
        """The member `phase`'s result; raises TrainingError with its message if it failed."""
        for member, res, err in zip(self.members, self.results, self.errors):
            if member.phase == phase:
                if res is None:
                    raise TrainingError(err or f"ensemble member {phase!r} did not finish")
                return res
        raise KeyError(phase)


def baseline_members(config: ExperimentConfig, tasks: Sequence[str], seed: int | None = None) -> list[Member]:
    """The single-task baselines of `config` as members: one per task, the config's seed,
    weight 1, phase "stl:<task>" (train them with `sharing="hard"`); `seed` tags the phases of an
    extra seed ("stl:<task>@<seed>", `mtl_core.phases`)."""
    return [Member(phase=Phase.stl(t, seed).format(), seed=config.seed, tasks=(t,), weights=(1.0,)) for t in tasks]


def train_ensemble(
    config: ExperimentConfig,
    dataset: MTLDataset | Sequence[MTLDataset],
    members: Sequence[Member],
    sink: Sink | None = None,
    *,
    sharing: str | None = None,
    should_stop: Callable[[], bool] | None = None,
    keep_models: bool = False,
    impl: Impl = "batched",
    scores: Sequence[Score] | None = None,
) -> EnsembleResult:
    """Train `members` together; member k reproduces
    `engine.train(config with seed_k, dataset, tasks=tasks_k, weights=w_k, sharing=sharing)`.

    With `config.selection == "best_val"` each member keeps its own best checkpoint
    (`mtl_core.selection`) by `scores[k]` (default: a one-task member's primary validation
    metric, a multi-task member's validation Δm against its own first evaluation).

    `dataset`: the data every member learns, or one dataset per member (in `members`' order):
    the engine draws a run's data from its seed (`load_dataset(seed=...)`), so members of
    different seeds each learn their own draw. Those must have the same shapes (input size,
    training rows, each task position's kind and number of outputs), or ConfigError.

    `sharing` overrides the config's mode as in `engine.train` (a given mode also means
    weighting "manual" with the members' weights); the baselines instead pass the config of
    their recipe (`experiment.baseline_config`: one task, hard sharing, manual weighting).
    `should_stop` (default: the sink's) is asked before every step; True cancels the
    whole ensemble (RunCancelled). A member whose loss stops being finite ends as
    "failed" with the engine's message; the others train on, unaffected.
    """
    sink = sink or Sink()
    stop = should_stop or sink.should_stop
    members = list(members)
    sharing_name = sharing or config.sharing.name
    datasets = member_datasets(dataset, members)
    check_supported(config, datasets, members, sharing=sharing_name, baseline=sharing is not None)
    device = resolve_device(config.device)
    K, T = len(members), len(members[0].tasks)
    weighting = "manual" if sharing is not None else config.weighting.name
    W = torch.tensor([_member_weights(config, m, weighting) for m in members], dtype=torch.float32, device=device)

    # Each distinct dataset moved to the device once; member k reads its own.
    on_device = {id(d): (d.train.to(device), d.val.to(device)) for d in datasets}
    train_of = [on_device[id(d)][0] for d in datasets]
    val_of = [on_device[id(d)][1] for d in datasets]
    one_dataset = len(on_device) == 1
    # The inputs: (N, D) shared by every member, or (U, N, D) for U distinct draws, member k
    # reading draw data_row[k].
    X = train_of[0].x if one_dataset else torch.stack([tr.x for tr, _ in on_device.values()])
    data_row = torch.tensor([list(on_device).index(id(d)) for d in datasets], device=device).unsqueeze(1)
    models = []
    for m, d in zip(members, datasets):  # as the engine builds its model: global seed, then build, then move
        torch.manual_seed(m.seed)
        models.append(build_model(sharing_name, d, list(m.tasks), config.model, {}).to(device))
    stack = _Stack(models, impl)
    optimizer = _stacked_optimizer(config, stack.params)

    specs = [datasets[0].tasks[t] for t in members[0].tasks]
    # Targets by task position: member k learns members[k].tasks[i] of its own data at position i.
    targets = [torch.stack([tr.y[m.tasks[i]] for m, tr in zip(members, train_of)]) for i in range(T)]
    masked = [any(has_missing(tr.y[m.tasks[i]]) for m, tr in zip(members, train_of)) for i in range(T)]
    loss_fns = [_stacked_loss(specs[i].kind, masked[i]) for i in range(T)]
    n_train = len(train_of[0])
    steps = total_steps(config, n_train)
    sampler = _SeedSampler([m.seed for m in members], n_train, config.batch_size, device)
    B = sampler.batch_size

    alive = [True] * K
    errors: list[str | None] = [None] * K
    for m, model in zip(members, models):
        sink.on_start(m.phase, {
            "tasks": list(m.tasks), "total_steps": steps, "batch_size": B, "device": str(device),
            "sharing": sharing_name, "parameter_counts": model.parameter_counts(), "ensemble_size": K,
        })
    loss_buf = torch.zeros(config.log_every, K, T, device=device)
    val_metrics: list[dict[str, dict[str, float]]] = [{} for _ in members]
    snapshots: list[dict[str, Any] | None] = [None] * K
    interference = config.interference and T > 1  # as the engine: a one-task model has no snapshot
    snap_idx = [_snapshot_rows(m.seed, n_train, config.batch_size, device) for m in members]
    affinity_lr = config.affinity_lr or config.optimizer.lr
    n_evals, k = 0, 0
    if scores is None:
        scores = [single_task_score(d.tasks[m.tasks[0]]) if len(m.tasks) == 1
                  else DeltaMScore({t: d.tasks[t] for t in m.tasks}) for m, d in zip(members, datasets)]
    keepers = [keeper(config.selection, score) for score in scores]
    train_seconds, tick = 0.0, time.perf_counter()

    def end_alive(status: str, message: str | None = None) -> None:
        for j, m in enumerate(members):
            if alive[j]:
                sink.on_end(m.phase, status, message)

    try:
        for step in range(1, steps + 1):
            if stop():
                raise RunCancelled(f"run cancelled at step {step - 1} of {steps}")
            idx = sampler.next()  # (B,) when every member has the same seed, else (K, B)
            # Member k's rows of its own data: (B, D) shared by every member, or (K, B, D).
            xb = X[idx] if one_dataset else X[data_row, idx if idx.dim() == 2 else idx.unsqueeze(0)]
            outs = stack.forward(xb)
            losses = torch.stack(
                [loss_fns[i](outs[i], targets[i][:, idx] if idx.dim() == 1 else targets[i].gather(1, idx))
                 for i in range(T)], dim=1,
            )  # (K, T)
            optimizer.zero_grad(set_to_none=True)
            (W * losses).sum().backward()  # Σ_k Σ_t w_kt L_kt: member k's gradient is its own
            optimizer.step()
            loss_buf[k] = losses.detach()
            k += 1

            evaluate_now = step % config.eval_every == 0 or step == steps
            if k == config.log_every or evaluate_now:
                train_seconds += time.perf_counter() - tick  # as the engine: logging and evaluation excluded
                _find_failures(loss_buf[:k], members, alive, errors, step - k + 1, sink)
                _log_members(sink, members, alive, step, loss_buf[:k], W)
                for j, m in enumerate(members):
                    if alive[j]:
                        sink.on_progress(m.phase, step, steps, step * B / max(train_seconds, 1e-9))
                k = 0
                if evaluate_now:
                    n_evals += 1
                    measure_affinity = config.affinity_every and n_evals % config.affinity_every == 0
                    for j, (m, model) in enumerate(zip(members, models)):
                        if not alive[j]:
                            continue
                        val_metrics[j] = evaluate(model, val_of[j], datasets[j])
                        sink.on_eval(m.phase, step, "val", val_metrics[j])
                        if keepers[j] is not None:
                            keepers[j].offer(step, val_metrics[j], model)
                        if interference:
                            snapshots[j] = interference_snapshot(
                                model, datasets[j], train_of[j].x[snap_idx[j]],
                                {t: train_of[j].y[t][snap_idx[j]] for t in m.tasks},
                                affinity_lr=affinity_lr if measure_affinity else None,
                            )
                            if snapshots[j] is not None:
                                sink.on_interference(m.phase, step, snapshots[j])
                if not any(alive):
                    break
                tick = time.perf_counter()

        test_of = {id(d): d.test.to(device) for d in datasets}
        results: list[TrainResult | None] = []
        for j, (m, model) in enumerate(zip(members, models)):
            if not alive[j]:
                results.append(None)
                continue
            test_data, data_j = test_of[id(datasets[j])], datasets[j]
            outputs = predict(model, test_data)
            test_last = test_metrics = evaluate(model, test_data, data_j, outputs=outputs)
            selected, val_selected = steps, val_metrics[j]
            best = keepers[j]
            if best is not None and best.step is not None:
                selected, val_selected = best.step, best.val
                if best.step != steps:  # the selected weights are not the last: test them
                    best.restore(model)
                    outputs = predict(model, test_data)
                    test_metrics = evaluate(model, test_data, data_j, outputs=outputs)
            sink.on_eval(m.phase, selected, "test", test_metrics)
            if keep_models:
                for p in model.parameters():  # own storage, not a view into the whole stack
                    p.data = p.data.clone()
            results.append(TrainResult(
                phase=m.phase, tasks=list(m.tasks), steps=steps, test=test_metrics, val=val_selected,
                selected_step=selected, test_last=test_last, val_last=val_metrics[j],
                test_outputs={t: o.cpu() for t, o in outputs.items()},
                samples_per_s=steps * B / max(train_seconds, 1e-9), train_seconds=train_seconds,
                device=str(device), parameter_counts=model.parameter_counts(), interference=snapshots[j],
                model=model if keep_models else None,
            ))
    except RunCancelled as exc:
        end_alive("cancelled", str(exc))
        raise
    except Exception as exc:
        end_alive("failed", str(exc))
        raise
    end_alive("finished")
    return EnsembleResult(members=members, results=results, errors=errors, steps=steps, train_seconds=train_seconds)


# ---- what an ensemble can hold -------------------------------------------------------------

def member_datasets(dataset: MTLDataset | Sequence[MTLDataset], members: Sequence[Member]) -> list[MTLDataset]:
    """Member k's dataset: `dataset` for every member, or the k-th of a sequence (one per member)."""
    if isinstance(dataset, MTLDataset):
        return [dataset] * len(members)
    datasets = list(dataset)
    if len(datasets) != len(members):
        raise ConfigError(
            f"ensemble: {len(datasets)} datasets for {len(members)} members; give one dataset, or one per member"
        )
    return datasets


def check_supported(
    config: ExperimentConfig, dataset: MTLDataset | Sequence[MTLDataset], members: list[Member], *,
    sharing: str, baseline: bool,
) -> None:
    """Raise ConfigError naming the first thing about this ensemble that is not supported
    (`dataset`: one for every member, or one per member as `train_ensemble` takes it)."""
    hint = "Train these runs one by one (engine.train) instead."
    if not members:
        raise ConfigError("ensemble: give at least one member")
    datasets = member_datasets(dataset, members)
    dataset = datasets[0]
    for m, d in zip(members, datasets):
        if d is dataset:
            continue
        differs = [what for what, a, b in (
            ("input kind", d.input_kind, dataset.input_kind), ("input size", d.input_dim, dataset.input_dim),
            ("training rows", len(d.train), len(dataset.train)),
        ) if a != b]
        differs += [f"task {t!r}" for t in m.tasks if t in d.tasks and t in dataset.tasks
                    and (d.tasks[t].kind, _out_size(d, t)) != (dataset.tasks[t].kind, _out_size(dataset, t))]
        if differs:
            raise ConfigError(
                f"ensemble: member {m.phase!r} learns data of another shape than member {members[0].phase!r} "
                f"({', '.join(differs)} differ); only draws of the same shape share a stack. {hint}"
            )
    if dataset.input_kind != "vector":
        raise ConfigError(
            f"ensemble: dataset {dataset.name!r} has token inputs; only MLP models on vector data "
            f"train as an ensemble. {hint}"
        )
    for m in members:
        for t in m.tasks:
            kind = dataset.tasks[t].kind if t in dataset.tasks else None
            if kind is not None and kind not in ("classification", "regression"):
                raise ConfigError(
                    f"ensemble: task {t!r} is {kind}; only classification and regression tasks train as "
                    f"an ensemble. {hint}"
                )
    if sharing not in ("hard", "single_task"):
        raise ConfigError(
            f"ensemble: sharing mode {sharing!r} is not supported; an ensemble trains 'hard' sharing "
            f"(or 'single_task' with one task). {hint}"
        )
    if not baseline and config.weighting.name not in SUPPORTED_WEIGHTING:
        raise ConfigError(
            f"ensemble: weighting {config.weighting.name!r} is not supported; an ensemble trains fixed "
            f"weights only ({', '.join(SUPPORTED_WEIGHTING)}). {hint}"
        )
    if config.model.dropout:
        raise ConfigError(
            f"ensemble: model.dropout = {config.model.dropout} is not supported: a run draws its dropout "
            f"masks from one global random stream, which members cannot each reproduce. Set dropout to 0 "
            f"or train the runs one by one."
        )
    extra = {
        name for name, info in type(config.optimizer).model_fields.items()
        if name not in ELEMENTWISE_OPTIMIZER_FIELDS and getattr(config.optimizer, name) != info.default
    }
    if extra:
        raise ConfigError(
            f"ensemble: optimizer setting(s) {', '.join(sorted(extra))} are not supported: an update "
            f"that is not element-wise (e.g. a norm over all parameters) would couple the members. {hint}"
        )
    phases = [m.phase for m in members]
    if len(set(phases)) != len(phases):
        dup = next(p for p in phases if phases.count(p) > 1)
        raise ConfigError(f"ensemble: phase {dup!r} is given to two members; give each member its own phase")
    T = len(members[0].tasks)
    for m, d in zip(members, datasets):
        if not m.tasks:
            raise ConfigError(f"ensemble: member {m.phase!r} has no task; give it at least one")
        if len(m.tasks) != T:
            raise ConfigError(
                f"ensemble: member {m.phase!r} learns {len(m.tasks)} tasks, member {members[0].phase!r} "
                f"{T}; every member must learn the same number of tasks"
            )
        unknown = [t for t in m.tasks if t not in d.tasks]
        if unknown:
            raise ConfigError(
                f"ensemble: member {m.phase!r} names unknown task {unknown[0]!r}; "
                f"choose from: {', '.join(d.task_names)}"
            )
        if m.weights is not None:
            if len(m.weights) != T:
                raise ConfigError(
                    f"ensemble: member {m.phase!r} has {len(m.weights)} weights for {T} tasks; give one per task"
                )
            if any(not math.isfinite(w) or w < 0 for w in m.weights):
                raise ConfigError(f"ensemble: member {m.phase!r} has a weight that is not a finite number ≥ 0")
    if sharing == "single_task" and T > 1:
        raise ConfigError(
            f"ensemble: 'single_task' with {T} tasks (one encoder per task) is not supported; "
            f"give each member one task, or use 'hard'. {hint}"
        )
    if T > 1 and config.sampling.mode == "random":
        raise ConfigError(
            "ensemble: sampling.mode 'random' with several tasks is not supported: each member would "
            f"draw its own task every step. Set sampling.mode to 'all'. {hint}"
        )
    for i in range(T):
        shapes = {(d.tasks[m.tasks[i]].kind, _out_size(d, m.tasks[i])) for m, d in zip(members, datasets)}
        if len(shapes) > 1:
            names = sorted({m.tasks[i] for m in members})
            raise ConfigError(
                f"ensemble: tasks {', '.join(names)} sit at the same position in different members but "
                f"differ in kind or number of outputs ({', '.join(f'{k}/{n}' for k, n in sorted(shapes))}); "
                "only tasks of the same kind and size can share a stack"
            )


def _out_size(dataset: MTLDataset, task: str) -> int:
    spec = dataset.tasks[task]
    return 1 if spec.kind == "regression" else int(spec.num_classes)


def _member_weights(config: ExperimentConfig, member: Member, weighting: str) -> list[float]:
    if weighting == "equal":
        return [1.0] * len(member.tasks)
    if member.weights is not None:
        return [float(w) for w in member.weights]
    return [float(config.weights.get(t, 1.0)) for t in member.tasks]  # as config.task_weights()


# ---- the stacked model --------------------------------------------------------------------

RELU = "relu"


def _parts(model: MultiTaskModel) -> tuple[nn.Module, list[nn.Module]]:
    """(encoder, heads in task order) of a `hard` or one-task `single_task` model."""
    encoder = model.encoder if hasattr(model, "encoder") else model.encoders[model.tasks[0]]
    return encoder, [model.heads[t] for t in model.tasks]


def _chain(module: nn.Module) -> list[nn.Linear | str]:
    """A Linear/ReLU network as a list of layers (the MLP encoder and the task heads)."""
    net = module.net if isinstance(module, (MLPEncoder, TaskHead)) else module
    layers = [net] if isinstance(net, nn.Linear) else list(net)
    out: list[nn.Linear | str] = []
    for layer in layers:
        if isinstance(layer, nn.Linear):
            assert layer.bias is not None, "every layer of the MLP and the heads has a bias"
            out.append(layer)
        else:
            assert isinstance(layer, nn.ReLU), f"unexpected layer {layer!r} (checked by check_supported)"
            out.append(RELU)
    return out


class _Stack:
    """The members' parameters stacked (K, ...) and the batched forward pass over them.

    Each member's module keeps working: its parameters are rebound to views of the
    stack, so `engine.evaluate` and the interference snapshot run on the member's own
    model and always see its current parameters.
    """

    def __init__(self, models: list[MultiTaskModel], impl: Impl) -> None:
        per_member = [[p for p in m.parameters()] for m in models]
        # Stack by position, not by name: members learning different tasks name their heads differently.
        self.params = [
            torch.stack([ps[i].detach() for ps in per_member]).requires_grad_() for i in range(len(per_member[0]))
        ]
        for k, model in enumerate(models):
            slots = {id(p): i for i, p in enumerate(per_member[k])}
            for module in model.modules():
                for name, p in list(module.named_parameters(recurse=False)):
                    setattr(module, name, nn.Parameter(self.params[slots[id(p)]].detach()[k]))
        self.regression = [h.kind == "regression" for h in _parts(models[0])[1]]
        self.impl = impl
        if impl == "batched":
            index = {id(p): i for i, p in enumerate(models[0].parameters())}
            encoder, heads = _parts(models[0])
            program = lambda mod: [  # noqa: E731  (layer -> positions of its weight and bias in the stack)
                RELU if isinstance(layer, str) else (index[id(layer.weight)], index[id(layer.bias)]) for layer in _chain(mod)
            ]
            self.encoder_prog, self.head_progs = program(encoder), [program(h) for h in heads]
        elif impl == "vmap":
            self._vmapped = _vmap_forward(models[0], len(self.params))
        else:
            raise ConfigError(f"ensemble: impl {impl!r} is unknown; choose 'batched' or 'vmap'")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x (B, D) shared by every member or (K, B, D) -> per task position (K, B[, C])."""
        K = self.params[0].shape[0]
        if self.impl == "vmap":
            return list(self._vmapped(tuple(self.params), x if x.dim() == 3 else x.expand(K, -1, -1)))
        h = self._run(self.encoder_prog, x.expand(K, -1, -1) if x.dim() == 2 else x)
        outs = [self._run(prog, h) for prog in self.head_progs]
        return [o.squeeze(-1) if reg else o for o, reg in zip(outs, self.regression)]

    def _run(self, program: list, h: torch.Tensor) -> torch.Tensor:
        for op in program:
            if op == RELU:
                h = torch.relu(h)
            else:
                weight, bias = self.params[op[0]], self.params[op[1]]
                h = torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))  # member k: h_k W_kᵀ + b_k
        return h


def _vmap_forward(template: MultiTaskModel, n_params: int) -> Callable:
    """One member's forward (encoder, then every head) through `functional_call`, vmapped."""
    encoder, heads = _parts(template)
    names = [n for n, _ in template.named_parameters()]
    assert len(names) == n_params

    def one_member(params: tuple[torch.Tensor, ...], x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        by_name = dict(zip(names, params))
        z = torch.func.functional_call(encoder, _under(by_name, encoder, template), (x,))
        return tuple(torch.func.functional_call(h, _under(by_name, h, template), (z,)) for h in heads)

    return torch.vmap(one_member)


def _under(by_name: dict[str, torch.Tensor], module: nn.Module, root: nn.Module) -> dict[str, torch.Tensor]:
    """The entries of `by_name` (names relative to `root`) that belong to `module`, renamed relative to it."""
    prefix = next(n for n, m in root.named_modules() if m is module)
    return {n[len(prefix) + 1:]: t for n, t in by_name.items() if n.startswith(prefix + ".")}


def _stacked_loss(kind: str, masked: bool) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The engine's `task_loss` with a leading member dimension: (K, B[, C]), (K, B) -> (K,).

    Written out rather than `torch.vmap(task_loss)`: the same arithmetic per member, at a
    quarter of vmap's cost on these small tensors (bench/ensemble.py).
    """
    assert kind in ("regression", "classification"), "vector data has no tagging tasks"
    if kind == "regression":
        if not masked:
            return lambda out, y: F.mse_loss(out, y, reduction="none").mean(1)

        def masked_mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            labelled = ~torch.isnan(y)
            diff = torch.where(labelled, out - torch.nan_to_num(y), torch.zeros_like(out))
            return (diff**2).sum(1) / labelled.sum(1).clamp_min(1)

        return masked_mse
    if not masked:  # cross_entropy takes the classes in dim 1: (K, C, B)
        return lambda out, y: F.cross_entropy(out.transpose(1, 2), y, reduction="none").mean(1)

    def masked_ce(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        per_item = F.cross_entropy(out.transpose(1, 2), y, ignore_index=IGNORE_INDEX, reduction="none")
        return per_item.sum(1) / (y != IGNORE_INDEX).sum(1).clamp_min(1)

    return masked_ce


def _stacked_optimizer(config: ExperimentConfig, params: list[torch.Tensor]) -> torch.optim.Optimizer:
    """The engine's optimiser (`make_optimizer`: same class and settings) over the stack,
    fused where torch has a fused kernel for it.

    Fused and plain Adam/AdamW/SGD compute the same element-wise update (up to rounding);
    the plain loop runs about a dozen small operations per tensor, which at K = 16 was a
    third of a step, the fused kernel one pass (bench/ensemble.py).
    """
    o = config.optimizer
    try:
        if o.name == "sgd":
            return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay, fused=True)
        cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
        return cls(params, lr=o.lr, weight_decay=o.weight_decay, fused=True)
    except (RuntimeError, ValueError):  # a device or dtype without a fused kernel
        return make_optimizer(config, params)


# ---- data order ---------------------------------------------------------------------------

class _SeedSampler:
    """Each member's mini-batches exactly as the engine's `BatchSampler` draws them for its seed.

    Every member has the same data size and batch size, so all re-shuffle at the same
    steps: one (S, N) permutation table per epoch, one slice per step. Members with the
    same seed draw the same rows; when all do, `next()` returns one (B,) index vector
    that every member shares, else (K, B).
    """

    def __init__(self, seeds: list[int], n: int, batch_size: int, device: torch.device) -> None:
        unique = sorted(set(seeds))
        self.row_of = torch.tensor([unique.index(s) for s in seeds], device=device)
        self.shared = len(unique) == 1
        self.gens = [torch.Generator().manual_seed(s) for s in unique]
        self.n, self.batch_size, self.device = n, min(batch_size, n), device
        self._perms = torch.empty(0, dtype=torch.long)
        self._pos = n

    def next(self) -> torch.Tensor:
        if self._pos + self.batch_size > self.n:
            perms = torch.stack([torch.randperm(self.n, generator=g) for g in self.gens]).to(self.device)
            self._perms = perms[0] if self.shared else perms[self.row_of]
            self._pos = 0
        idx = self._perms[..., self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        return idx


def _snapshot_rows(seed: int, n: int, batch_size: int, device: torch.device) -> torch.Tensor:
    """The engine's fixed interference batch for `seed`."""
    gen = torch.Generator().manual_seed(seed + 1)
    return torch.randperm(n, generator=gen)[: max(SNAPSHOT_BATCH, batch_size)].to(device)


# ---- bookkeeping --------------------------------------------------------------------------

def _find_failures(
    losses: torch.Tensor, members: list[Member], alive: list[bool], errors: list[str | None],
    first_step: int, sink: Sink,
) -> None:
    """Mark members whose loss stopped being finite as failed (the engine's message)."""
    if bool(torch.isfinite(losses).all()):  # one host sync in the common case
        return
    for j, m in enumerate(members):
        if not alive[j]:
            continue
        try:
            _check_finite(losses[:, j], torch.ones_like(losses[:, j], dtype=torch.bool), list(m.tasks), first_step)
        except TrainingError as exc:
            alive[j], errors[j] = False, str(exc)
            log.info("ensemble member %s failed: %s", m.phase, exc)
            sink.on_end(m.phase, "failed", str(exc))


def _log_members(
    sink: Sink, members: list[Member], alive: list[bool], step: int, losses: torch.Tensor, W: torch.Tensor
) -> None:
    """The engine's training log line for every live member (every task is active every step)."""
    mean_loss = losses.mean(0).tolist()  # (K, T)
    total = (losses * W).sum(2).mean(0).tolist()  # (K,)
    weights = W.tolist()
    for j, m in enumerate(members):
        if alive[j]:
            sink.on_train(
                m.phase, step, dict(zip(m.tasks, mean_loss[j])), total[j], dict(zip(m.tasks, weights[j])), {}
            )
