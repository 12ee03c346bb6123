"""An experiment: the multi-task model beside single-task baselines on the same budget.

`run_experiment(config)` trains one single-task model per task (same encoder size,
steps, batch size, optimiser and seed as the multi-task model; cached), then the
multi-task model, and returns the results JSON: per-task metrics on the held-out test
split, Δm % (Maninis et al., 2019) and the gradient interference between tasks.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import math
from typing import Any, Protocol

import numpy as np
import torch

import mtl_core
from mtl_core.config import ExperimentConfig
from mtl_core.engine import TrainResult, train
from mtl_core.ensemble import baseline_members, train_ensemble
from mtl_core.errors import ConfigError, TrainingError
from mtl_core import threads as thread_budget
from mtl_core.interference import interference_summary
from mtl_core.metrics import comparison_table, delta_m, transfer_verdict, trivial_baseline
from mtl_core.phases import Phase
from mtl_core.models import build_model
from mtl_core.models.sharing import BlockModel
from mtl_core.selection import DeltaMScore
from mtl_core.significance import combine, delta_m_interval, paired_interval
from mtl_core.sink import MultiSink, RecordingSink, Sink
from mtl_core.tasks import MTLDataset, load_dataset

log = logging.getLogger(__name__)

# Bump when a change to the engine makes cached baselines stale.
# 2: checkpoint selection (test metrics at the selected step, test_last); 3: an imbalanced
# classification task's primary metric, which picks the baseline's step, is macro-F1 (issue 16).
BASELINE_FORMAT = 3


class BaselineCache(Protocol):
    def get_baseline(self, key: str) -> dict[str, Any] | None: ...

    def put_baseline(self, key: str, value: dict[str, Any]) -> None: ...


class MemoryBaselineCache:
    """A dict-backed cache (tests, notebooks); the run store is the persistent one."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}

    def get_baseline(self, key: str) -> dict[str, Any] | None:
        return self.data.get(key)

    def put_baseline(self, key: str, value: dict[str, Any]) -> None:
        self.data[key] = value


def baseline_key(config: ExperimentConfig, task: str) -> str:
    """Everything that determines a single-task baseline's result, hashed.

    Loss weights, the sharing mode and the weighting strategy are deliberately left
    out: tuning them does not retrain the baselines.
    """
    ident = {
        "format": BASELINE_FORMAT,
        "dataset": config.dataset.model_dump(mode="json"),
        "task": task,
        "model": config.model.model_dump(mode="json"),
        "optimizer": config.optimizer.model_dump(mode="json"),
        "steps": config.steps,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "eval_every": config.eval_every,
        "seed": config.seed,
        "selection": config.selection,
    }
    if config.class_weights != "none":  # only when set: the keys of older cached baselines stay valid
        ident["class_weights"] = config.class_weights
        # 2: `balanced` weights multilabel tasks too (before, their loss was unweighted), so a
        # baseline cached under the old meaning is not reused
        ident["class_weights_version"] = 2
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32]


def baseline_config(config: ExperimentConfig, task: str) -> ExperimentConfig:
    """The config of `task`'s single-task baseline: the run's config with that one task,
    `hard` sharing (for one task: the same encoder and head, nothing shared) and manual
    weight 1 — same data, encoder sizes, optimiser, budget, batch size and seed.

    The one recipe behind the trained baselines (`_baseline`, `_baseline_ensemble`) and
    the counted ones (`parameter_budget`), so the two cannot drift apart. The weighting
    strategy is replaced too: with one task, a strategy would only rescale its loss.
    """
    data = config.to_dict()
    data.update(tasks=[task], sharing={"name": "hard", "options": {}},
                weighting={"name": "manual", "options": {}}, weights={task: 1.0})
    return ExperimentConfig.model_validate(data)


def parameter_budget(config: ExperimentConfig, dataset: MTLDataset | None = None) -> dict[str, Any]:
    """The parameters the run will train, counted without training: the multi-task model
    (total, shared, each task's own) and each task's single-task baseline, built exactly
    as `run_experiment` builds them (`engine.train`'s `build_model`, `baseline_config`).

    `dataset`: any dataset with the config's inputs and tasks — the counts depend only on
    the input kind and width and the tasks' kinds and classes, so a caller may pass a
    stand-in with a handful of rows (the dashboard does); default: the config's dataset.
    `blocks` is the multi-task model's `describe_blocks()` (None for a mode that lists no
    blocks), from which the dashboard draws its sharing diagram.
    """
    with torch.random.fork_rng(devices=[]):  # building initialises weights: leave the caller's RNG alone
        if dataset is None:
            dataset = load_dataset(config.dataset.name, config.dataset.options, seed=config.seed)
        tasks = config.task_list(dataset.task_names)
        dataset = dataset.select_tasks(tasks)
        model = build_model(config.sharing.name, dataset, tasks, config.model, config.sharing.options)
        counts = model.parameter_counts()
        blocks = model.describe_blocks() if isinstance(model, BlockModel) else None
        del model
        stl = {}
        for t in tasks:
            b = baseline_config(config, t)
            baseline = build_model(b.sharing.name, dataset, b.task_list(), b.model, b.sharing.options)
            stl[t] = baseline.parameter_counts()["total"]
    return {
        "tasks": tasks,
        "mtl_total": counts["total"],
        "mtl_shared": counts["shared"],
        "mtl_task": {t: counts[f"task:{t}"] for t in tasks},
        "stl": stl,
        "stl_total": sum(stl.values()),
        "blocks": blocks,
    }


def run_experiment(
    config: ExperimentConfig,
    *,
    sink: Sink | None = None,
    baseline_cache: BaselineCache | None = None,
    run_id: str | None = None,
    dataset: MTLDataset | None = None,
) -> dict[str, Any]:
    """Train the baselines (or read them from the cache) and the multi-task model, for
    each of the config's `n_seeds` seeds (seed, seed + 1, ...)."""
    sink = sink or Sink()
    cache = baseline_cache if baseline_cache is not None else MemoryBaselineCache()
    # Applies an explicit `threads: N`; `auto` is applied by the worker / CLI, not here, so a
    # notebook's own torch.set_num_threads is not overwritten (see mtl_core.threads).
    threads_used = thread_budget.record_for(config)
    runs = []
    for k in range(config.n_seeds):
        cfg = config if k == 0 else config.model_copy(update={"seed": config.seed + k})
        seed = None if k == 0 else cfg.seed  # extra seeds name their phases: "mtl@1", "stl:y1@1"
        ds = dataset if (dataset is not None and k == 0) else load_dataset(
            cfg.dataset.name, cfg.dataset.options, seed=cfg.seed
        )
        ds = ds.select_tasks(cfg.task_list(ds.task_names))
        baselines = _baselines(cfg, ds, sink, cache, seed) if cfg.baselines else {}
        recorder = RecordingSink()
        mtl = train(cfg, ds, MultiSink(sink, recorder), phase=Phase.mtl(seed).format(), score=mtl_score(ds, baselines))
        runs.append((ds, mtl, baselines, recorder))
    ds, mtl, baselines, recorder = runs[0]
    result = build_results(config, ds, mtl, baselines, recorder, run_id=run_id)
    result["threads"] = threads_used
    return _finite(_aggregate_seeds(result, runs)) if baselines else result


def mtl_score(dataset: MTLDataset, baselines: dict[str, dict[str, Any]]) -> DeltaMScore:
    """The multi-task model's selection score: validation Δm against the baselines'
    validation metrics at their own selected steps (`mtl_core.selection`)."""
    reference = {}
    for t, b in baselines.items():
        value = (b.get("val") or {}).get(dataset.tasks[t].metric)
        if value is not None:
            reference[t] = float(value)
    return DeltaMScore(dataset.tasks, reference if len(reference) == len(dataset.tasks) else None)


def _aggregate_seeds(result: dict[str, Any], runs: list) -> dict[str, Any]:
    """Per task: mean ± std over seeds of STL and MTL, and a verdict that names a difference
    only when its 95 % interval excludes 0 (`metrics.transfer_verdict`): over seeds (Student
    t) and over the test examples (paired bootstrap of the two models' predictions on the
    same rows, `mtl_core.significance`) — so one seed gets an honest verdict too. Δm gets
    the same treatment (`delta_m_interval`, combined over seeds)."""
    rows = []
    for row in result["tasks"]:
        t, metric = row["name"], row["metric"]
        stl = [b[t]["test"][metric] for _, _, b, _ in runs if t in b]
        mtl = [m.test[t][metric] for _, m, _, _ in runs]
        examples = [_task_interval(ds, t, m, b[t]) for ds, m, b, _ in runs if t in b]
        examples = examples if examples and all(e is not None for e in examples) else None
        # The input-blind baseline of each seed's own split, averaged like the models' metrics.
        trivial = [trivial_baseline(ds.tasks[t], ds.train.y[t], ds.test.y[t])["value"] for ds, _, _, _ in runs]
        trivial_mean = float(np.mean(trivial)) if trivial and None not in trivial else None
        if isinstance(row.get("trivial"), dict) and trivial_mean is not None:
            row = {**row, "trivial": {**row["trivial"], "value": trivial_mean}}
        v = transfer_verdict(stl, mtl, higher_is_better=row["higher_is_better"], examples=examples,
                             trivial=trivial_mean) if stl else {}
        if "low" in v:
            v["interval"] = {"low": v["low"], "high": v["high"], "level": 0.95, "method": v.get("method", "")}
        rows.append({
            **row,
            "stl": v.get("stl_mean"), "mtl": v.get("mtl_mean", sum(mtl) / len(mtl)),
            "delta_pct": v.get("delta_pct"), **v,
            **_all_metrics(
                "stl", [b[t]["test"] for _, _, b, _ in runs if t in b], row.get("stl_all"), len(runs)),
            **_all_metrics("mtl", [m.test[t] for _, m, _, _ in runs], row.get("mtl_all"), len(runs)),
        })
    result["tasks"] = rows
    result["delta_m"] = delta_m(rows)
    result["seeds"] = [result["seed"] + k for k in range(len(runs))]
    per_seed = [_delta_m_interval(ds, m, b) for ds, m, b, _ in runs]
    if per_seed and all(p is not None for p in per_seed):
        dm = combine(per_seed, [p["diff"] for p in per_seed])
        result["delta_m_interval"] = {
            "low": dm["low"], "high": dm["high"], "level": 0.95, "method": dm.get("method", ""),
            "per_seed": [{k: p[k] for k in ("diff", "low", "high")} for p in per_seed],
        }
        result["delta_m_verdict"] = dm["verdict"]
    return result


def _all_metrics(prefix: str, per_seed: list[dict[str, float]], first: dict[str, float] | None,
                 n_runs: int) -> dict[str, Any]:
    """Every test metric of one model of one task over the seeds: `{prefix}_all` the mean
    over seeds of each metric, `{prefix}_all_seeds` each metric's values in seed order (so
    the JSON keeps every seed's numbers). One seed, or a model some seed lacks: seed 0's
    metrics as before, no per-seed lists — a one-seed result reads as it always did. A
    metric that is not a number (none today) keeps seed 0's value."""
    if n_runs < 2 or len(per_seed) != n_runs:
        return {f"{prefix}_all": first or {}}
    def number(v: Any) -> bool:
        return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))

    names = [k for k in per_seed[0] if all(k in metrics and number(metrics[k]) for metrics in per_seed)]
    seeds = {k: [float("nan") if metrics[k] is None else float(metrics[k]) for metrics in per_seed]
             for k in names}
    means = {k: (float(np.mean(seeds[k])) if k in seeds else v) for k, v in per_seed[0].items()}
    return {f"{prefix}_all": means, f"{prefix}_all_seeds": seeds}


def _task_interval(dataset: MTLDataset, task: str, mtl: TrainResult, baseline: dict[str, Any]) -> dict[str, Any] | None:
    """The paired bootstrap interval of one task at one seed; None when an output is missing."""
    stl_out = baseline.get("test_output")
    if stl_out is None or not mtl.test_outputs or task not in mtl.test_outputs:
        return None
    return paired_interval(dataset.tasks[task], dataset.test.y[task], torch.as_tensor(stl_out),
                           mtl.test_outputs[task])


def _delta_m_interval(dataset: MTLDataset, mtl: TrainResult, baselines: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    if not mtl.test_outputs or any(b.get("test_output") is None for b in baselines.values()):
        return None
    tasks = [t for t in dataset.task_names if t in baselines]
    return delta_m_interval(
        {t: dataset.tasks[t] for t in tasks}, {t: dataset.test.y[t] for t in tasks},
        {t: torch.as_tensor(baselines[t]["test_output"]) for t in tasks},
        {t: mtl.test_outputs[t] for t in tasks},
    )


def _baselines(
    config: ExperimentConfig, dataset: MTLDataset, sink: Sink, cache: BaselineCache, seed: int | None = None,
    *, batched: bool = True,
) -> dict[str, dict[str, Any]]:
    """Every task's single-task baseline: replayed from the cache, or trained.

    Uncached tasks of the same kind and output size train together as one ensemble
    (`mtl_core.ensemble`: each member is the run `_baseline` would train, to ~1e-7);
    a task alone in its group, or a config the ensemble refuses (token data, dropout,
    ...), trains on its own. `batched=False` trains every baseline on its own. The sink
    receives the baselines' events in task order either way (see `_PhaseOrderSink`).
    `seed` tags the phase names of an extra seed ("stl:y1@1"; None for the config's own).
    With `class_weights` set every baseline trains on its own: `engine.train` weighs the
    cross-entropy as the multi-task model's, the ensemble does not.
    """
    batched = batched and config.class_weights == "none"
    groups: dict[tuple[str, int], list[str]] = {}
    for t in dataset.task_names:
        # The ensemble stacks cross-entropy and MSE losses only: a multilabel baseline trains alone.
        if cache.get_baseline(baseline_key(config, t)) is None and dataset.tasks[t].kind != "multilabel":
            spec = dataset.tasks[t]
            size = 1 if spec.kind == "regression" else int(spec.num_classes or 0)
            groups.setdefault((spec.kind, size), []).append(t)
    out: dict[str, dict[str, Any]] = {}
    trained: dict[str, dict[str, Any] | TrainingError] = {}  # by an ensemble, events held
    ordered = _PhaseOrderSink(sink)
    for t in dataset.task_names:
        group = next((g for g in groups.values() if t in g), None)
        if t in trained:
            ordered.release(Phase.stl(t, seed).format())
        elif batched and group is not None and len(group) > 1 and group[0] == t:
            trained.update(_baseline_ensemble(config, dataset, group, ordered, cache, seed) or {})
        if t in trained:
            value = trained[t]
            if isinstance(value, TrainingError):
                raise value
            out[t] = value
        else:  # cached (replayed), alone in its group, or refused by the ensemble
            out[t] = _baseline(config, dataset, t, sink, cache, seed)
    return out


def _baseline_ensemble(
    config: ExperimentConfig, dataset: MTLDataset, tasks: list[str], ordered: _PhaseOrderSink,
    cache: BaselineCache, seed: int | None,
) -> dict[str, dict[str, Any] | TrainingError] | None:
    """The baselines of `tasks` trained as one ensemble, the finished ones cached (a
    diverged one is its TrainingError); None where the ensemble refuses this config."""
    recorder = RecordingSink()
    held = [Phase.stl(t, seed).format() for t in tasks[1:]]
    ordered.hold(held)
    try:
        # Every member follows `baseline_config` (hard sharing, manual weight 1); only the task differs.
        er = train_ensemble(
            baseline_config(config, tasks[0]), dataset, baseline_members(config, tasks, seed),
            MultiSink(ordered, recorder),
        )
    except ConfigError as exc:  # refused before any event: train these one by one
        ordered.drop(held)
        log.info("baselines %s train one by one: %s", ", ".join(tasks), exc)
        return None
    out: dict[str, dict[str, Any] | TrainingError] = {}
    for t in tasks:
        try:
            result = er.result(Phase.stl(t, seed).format())
        except TrainingError as exc:  # the engine's message; raised when the run reaches this task
            out[t] = exc
            continue
        out[t] = _store_baseline(cache, baseline_key(config, t), t, result, recorder)
    return out


class _PhaseOrderSink(Sink):
    """Passes an ensemble's events on as if its members had trained one after another.

    The members train in lockstep, so their events interleave (stl:y1 step 20, stl:y2
    step 20, stl:y1 step 40, ...); a run store that records "the phase training now"
    would swing back and forth between them, and the dashboard's progress bar with it.
    The first member's events go through live; the held members' are kept until
    `release(phase)` sends them, when the run reaches that task in order.
    """

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.held: dict[str, list[tuple[str, tuple[Any, ...]]]] = {}

    def hold(self, phases: list[str]) -> None:
        """Keep the events of `phases` from now on, until released."""
        self.held.update({p: [] for p in phases})

    def drop(self, phases: list[str]) -> None:
        for p in phases:
            self.held.pop(p, None)

    def release(self, phase: str) -> None:
        for event, args in self.held.pop(phase, []):
            getattr(self.sink, event)(*args)

    def _pass(self, event: str, phase: str, *args: Any) -> None:
        if phase in self.held:
            self.held[phase].append((event, (phase, *args)))
        else:
            getattr(self.sink, event)(phase, *args)

    def on_start(self, phase, info):
        self._pass("on_start", phase, info)

    def on_train(self, phase, step, losses, total, weights, extra):
        self._pass("on_train", phase, step, losses, total, weights, extra)

    def on_eval(self, phase, step, split, metrics):
        self._pass("on_eval", phase, step, split, metrics)

    def on_interference(self, phase, step, snapshot):
        self._pass("on_interference", phase, step, snapshot)

    def on_progress(self, phase, step, total_steps, samples_per_s):
        self._pass("on_progress", phase, step, total_steps, samples_per_s)

    def on_end(self, phase, status, error=None):
        self._pass("on_end", phase, status, error)

    def should_stop(self) -> bool:
        return self.sink.should_stop()


def _baseline(
    config: ExperimentConfig, dataset: MTLDataset, task: str, sink: Sink, cache: BaselineCache,
    seed: int | None = None,
) -> dict[str, Any]:
    phase = Phase.stl(task, seed).format()
    key = baseline_key(config, task)
    cached = cache.get_baseline(key)
    if cached is not None:
        _replay(sink, phase, task, cached)
        return {**cached, "cached": True}
    recorder = RecordingSink()
    result = train(baseline_config(config, task), dataset, MultiSink(sink, recorder), phase=phase)
    return _store_baseline(cache, key, task, result, recorder)


def _store_baseline(
    cache: BaselineCache, key: str, task: str, result: TrainResult, recorder: RecordingSink
) -> dict[str, Any]:
    """A trained baseline's value (metrics, throughput, size, curve), cached under `key`."""
    value = {
        "key": key,
        "task": task,
        "test": result.test[task],
        "val": result.val.get(task, {}),
        "selected_step": result.selected_step,
        "test_last": (result.test_last or result.test)[task],
        # Its test outputs at the selected step: the multi-task model is compared with it
        # example by example (mtl_core.significance), from the cache as when just trained.
        "test_output": result.test_outputs[task].tolist() if result.test_outputs else None,
        # Multilabel with tuned thresholds: the per-label thresholds its test metrics used.
        **({"thresholds": result.thresholds[task]} if result.thresholds and task in result.thresholds else {}),
        "steps": result.steps,
        "samples_per_s": result.samples_per_s,
        "parameter_count": result.parameter_counts["total"],
        "curve": _curve(recorder, task),
    }
    cache.put_baseline(key, _finite(value))
    return {**value, "cached": False}


def _curve(recorder: RecordingSink, task: str) -> list[dict[str, Any]]:
    """A baseline's training and validation curve, kept with it in the cache."""
    points: dict[int, dict[str, Any]] = {}
    for row in recorder.train:
        if task in row["losses"]:
            points.setdefault(row["step"], {"step": row["step"]})["train_loss"] = row["losses"][task]
    for ev in recorder.evals:
        if ev["split"] == "val" and task in ev["metrics"]:
            points.setdefault(ev["step"], {"step": ev["step"]})["val"] = ev["metrics"][task]
    return [points[s] for s in sorted(points)]


def _replay(sink: Sink, phase: str, task: str, cached: dict[str, Any]) -> None:
    """Send a cached baseline's curve to the sink, so every run stores its baselines' curves."""
    sink.on_start(phase, {"tasks": [task], "total_steps": cached["steps"], "cached": True})
    for point in cached.get("curve", []):
        if "train_loss" in point:
            loss = point["train_loss"]
            sink.on_train(phase, point["step"], {task: loss}, loss, {task: 1.0}, {})
        if "val" in point:
            sink.on_eval(phase, point["step"], "val", {task: point["val"]})
    sink.on_eval(phase, cached.get("selected_step") or cached["steps"], "test", {task: cached["test"]})
    sink.on_end(phase, "finished")


def build_results(
    config: ExperimentConfig,
    dataset: MTLDataset,
    mtl: TrainResult,
    baselines: dict[str, dict[str, Any]],
    recorder: RecordingSink,
    *,
    run_id: str | None,
) -> dict[str, Any]:
    """The results JSON (the contract the dashboard and later tools read)."""
    stl = {t: b["test"] for t, b in baselines.items()}
    rows = comparison_table(dataset.tasks, stl, mtl.test)
    # The same comparison with the weights at the end of training (selection `last`).
    stl_last = {t: b.get("test_last") or b["test"] for t, b in baselines.items()}
    rows_last = comparison_table(dataset.tasks, stl_last, mtl.test_last or mtl.test)
    for row, last in zip(rows, rows_last):
        row["at_end"] = {"stl": last["stl"], "mtl": last["mtl"], "delta_pct": last["delta_pct"]}
        # What a model that ignores its input scores on the same test rows (issue 16): a
        # collapse to the majority answer is visible beside the trained models.
        t = row["name"]
        row["trivial"] = trivial_baseline(dataset.tasks[t], dataset.train.y[t], dataset.test.y[t])
        if dataset.tasks[t].tune_thresholds:  # the decision thresholds each model's test metrics used
            row["thresholds"] = {"labels": list(dataset.tasks[t].class_names or ()),
                                 "mtl": (mtl.thresholds or {}).get(t),
                                 "stl": baselines.get(t, {}).get("thresholds")}
    snapshots = recorder.interference
    stl_params = sum(b["parameter_count"] for b in baselines.values())
    result = {
        "run_id": run_id,
        "status": "finished",
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": config.to_dict(),
        "seed": config.seed,
        "device": mtl.device,
        "versions": {"mtl_core": mtl_core.__version__, "torch": torch.__version__},
        # The summary without its bulky info, except what cutting the texts cost (issue 16).
        "dataset": {**{k: v for k, v in dataset.summary().items() if k != "info"},
                    **({"truncation": dataset.info["truncation"]} if "truncation" in dataset.info else {})},
        "tasks": rows,
        "delta_m": delta_m(rows) if baselines else float("nan"),
        "selection": {
            "rule": config.selection,
            "mtl_step": mtl.selected_step,
            "baseline_steps": {t: b.get("selected_step") for t, b in baselines.items()},
            "steps": mtl.steps,
            "delta_m_at_end": delta_m(rows_last) if baselines else float("nan"),
        },
        "interference": interference_results(mtl, snapshots),
        "gates": mtl.gates,
        "throughput": {
            "samples_per_s": mtl.samples_per_s,
            "train_seconds": mtl.train_seconds,
            "steps": mtl.steps,
        },
        "parameters": {"mtl": mtl.parameter_counts, "stl_total": stl_params},
        "baselines": {
            t: {k: b[k] for k in ("key", "cached", "steps", "samples_per_s", "parameter_count", "curve")}
            for t, b in baselines.items()
        },
        "history": {
            "train": [{k: v for k, v in r.items() if k != "phase"} for r in recorder.train],
            "val": [
                {"step": e["step"], "metrics": e["metrics"]} for e in recorder.evals if e["split"] == "val"
            ],
            "gates": [
                {"step": e["step"], "gates": e["metrics"]} for e in recorder.evals if e["split"] == "gates"
            ],
        },
    }
    return _finite(result)


def interference_results(mtl: TrainResult, snapshots: list[dict[str, Any]]) -> dict[str, Any]:
    """The results' "interference" section (`interference.interference_summary`, which the
    dashboard also applies to a running run's snapshots)."""
    return interference_summary(snapshots, mtl.tasks, last=mtl.interference)


def _finite(obj: Any) -> Any:
    """NaN/inf -> None, so the JSON is standard (json.dumps would write NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
