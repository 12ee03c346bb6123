"""Running a transfer experiment: pre-train the shared encoder on the sources, then train
every arm at every data size on the target with the engine, and collect the results."""

from __future__ import annotations

import dataclasses
import datetime as _dt
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from mtl_core.errors import RunCancelled
from mtl_core.phases import Phase
from mtl_core.sink import Sink
from mtl_core.transfer.encoder import build_target_model, frozen_copy, is_frozen, shared_encoder
from mtl_core.transfer.subsets import describe_merged, fraction_plan, labelled_rows, target_subset

if TYPE_CHECKING:
    from mtl_core.config import ExperimentConfig
    from mtl_core.tasks.base import MTLDataset
    from mtl_core.transfer.config import TransferConfig


def train_arm(
    arm: str,
    config: ExperimentConfig,
    dataset: MTLDataset,
    target: str,
    encoder: nn.Module,
    *,
    sink: Sink | None = None,
    phase: str | None = None,
):
    """Train one target model (`build_target_model`) with the engine; the TrainResult keeps the model."""
    from mtl_core.engine import train

    model = build_target_model(arm, dataset, target, config, encoder)
    return train(config, dataset, sink, phase=phase or arm, model=model, keep_model=True)


def pretrain(config: TransferConfig, dataset: MTLDataset, sink: Sink | None = None):
    """Pre-train the shared encoder on the sources; returns (TrainResult with the model, encoder)."""
    from mtl_core.engine import train
    from mtl_core.models import build_model

    cfg = config.pretrain_config()
    src = dataset.select_tasks(config.sources)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.sharing.name, src, list(config.sources), cfg.model, cfg.sharing.options)
    encoder = shared_encoder(model, cfg.sharing.name)  # refuse before any training
    result = train(cfg, src, sink, phase=Phase.pretrain().format(), model=model, keep_model=True)
    return result, encoder


def run_transfer(
    config: TransferConfig,
    *,
    sink: Sink | None = None,
    run_id: str | None = None,
    dataset: MTLDataset | None = None,
) -> dict[str, Any]:
    """Pre-train on the sources, train every arm at every fraction on the target; the results.

    `sink` hears every model's events under its phase (`mtl_core.phases`: "pretrain",
    "frozen@0.05", ...). A cancel (`sink.should_stop()`) raises RunCancelled carrying the
    finished cells as `exc.result`. To keep the experiment as a run, create it in the store
    and train it as every run is trained: `worker.execute(store, store.create_run(config.to_dict()))`,
    or in the background with `jobs.start(config)` (`mtl-lab transfer [--background]`).
    """
    return _run(config, sink or Sink(), run_id=run_id, dataset=dataset)


def _run(config: TransferConfig, sink: Sink, *, run_id: str | None, dataset: MTLDataset | None) -> dict[str, Any]:
    import mtl_core
    from mtl_core.experiment import _finite
    from mtl_core.tasks import load_dataset
    from mtl_core.threads import record_for

    base = config.base
    threads_used = record_for(config)  # applies an explicit base.threads: N (see mtl_core.threads)
    if dataset is None:
        dataset = load_dataset(base.dataset.name, base.dataset.options, seed=base.seed)
    pre, encoder = pretrain(config, dataset, sink)

    target_cfg = config.target_config()
    target_ds = dataset.select_tasks([config.target])
    spec = target_ds.tasks[config.target]
    n_available = len(labelled_rows(target_ds.train, config.target))
    plan = fraction_plan(config.fractions, n_available, min_rows=target_cfg.batch_size)
    # One frozen encoder serves every frozen arm: its weights never move, and a cached
    # feature extractor (MiniLM) then computes each sentence once for all of them.
    frozen = frozen_copy(encoder) if "frozen" in config.arms and not is_frozen(encoder) else encoder
    rows: list[dict[str, Any]] = []

    def results(status: str) -> dict[str, Any]:
        return _finite({
            "kind": "transfer",
            "run_id": run_id,
            "status": status,
            "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "config": config.to_dict(),
            "sources": list(config.sources),
            "target": config.target,
            "metric": spec.metric,
            "higher_is_better": spec.higher_is_better,
            "arms": list(config.arms),
            "fractions": [p["fraction"] for p in plan],  # one per distinct data size
            "requested_fractions": list(config.fractions),
            "merged_fractions": [p for p in plan if len(p["fractions"]) > 1],
            "merged_text": describe_merged(plan, min_rows=target_cfg.batch_size, n_pool=n_available),
            "n_target_train": n_available,
            "rows": list(rows),
            "pretrain": pre.test,
            "pretrain_metric": {t: dataset.tasks[t].metric for t in config.sources},
            "pretrain_steps": pre.steps,
            "target_steps": config.target_steps,
            "seed": base.seed,
            "device": pre.device,
            "threads": threads_used,
            "encoder": base.model.text_encoder if dataset.input_kind == "tokens" else "mlp",
            "parameters": {"encoder": sum(p.numel() for p in encoder.parameters())},
            "versions": {"mtl_core": mtl_core.__version__, "torch": torch.__version__},
        })

    try:
        for fraction in (p["fraction"] for p in plan):
            index = target_subset(target_ds.train, spec, fraction, min_rows=target_cfg.batch_size, seed=base.seed)
            subset = dataclasses.replace(target_ds, train=target_ds.train.subset(index))
            outputs: dict[str, torch.Tensor] = {}
            for arm in config.arms:
                trained = train_arm(arm, target_cfg, subset, config.target, frozen if arm == "frozen" else encoder,
                                    sink=sink, phase=Phase.arm(arm, fraction).format())
                metrics = trained.test[config.target]
                if trained.test_outputs is not None:
                    outputs[arm] = trained.test_outputs[config.target]
                rows.append({
                    "arm": arm,
                    "fraction": fraction,
                    "n_labelled": int(len(index)),
                    "metric_value": metrics[spec.metric],
                    "metrics": metrics,
                    "train_seconds": trained.train_seconds,
                })
                del trained  # one target model alive at a time (a MiniLM copy is 90 MB)
            _compare_with_scratch(rows[-len(config.arms):], outputs, spec, target_ds.test.y[config.target], base.seed)
    except RunCancelled as exc:
        exc.result = results("cancelled")  # type: ignore[attr-defined]  (the finished cells, for the store)
        raise
    return results("finished")


def _compare_with_scratch(rows: list[dict[str, Any]], outputs: dict[str, torch.Tensor], spec: Any,
                          target: torch.Tensor, seed: int) -> None:
    """Whether each pre-trained arm beat training from scratch at this data size, with its
    noise: the paired bootstrap interval of arm − scratch on the same test rows
    (`significance.paired_interval`; "helped" / "hurt" only when the interval excludes 0),
    kept in the arm's row as `vs_scratch`. Nothing without a scratch arm to compare with."""
    from mtl_core.significance import paired_interval

    if "scratch" not in outputs:
        return
    for row in rows:
        if row["arm"] != "scratch" and row["arm"] in outputs:
            full = paired_interval(spec, target, outputs["scratch"], outputs[row["arm"]], seed=seed)
            row["vs_scratch"] = {k: full[k] for k in ("diff", "low", "high", "verdict", "n")}
