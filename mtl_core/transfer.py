"""Transfer learning: pre-train a shared encoder on source tasks, reuse it for a new task.

The question multi-task pre-training answers is data efficiency: does an encoder trained
on related tasks let a new task be learned from fewer labelled examples? (Caruana, 1997,
§ "inductive transfer"; the pre-train / fine-tune recipe of Collobert & Weston, ICML 2008
and of MT-DNN, Liu et al., ACL 2019.) `run_transfer(config)`

1. pre-trains a model with one shared encoder (hard sharing by default) on the `sources`;
2. for each data `fraction`, draws a seeded subset of the held-out `target` task's
   training split (stratified by class where the class counts allow it, at least one
   batch) and trains one single-task model per arm, each with the same budget
   (`target_steps`), optimiser and seed:
   - frozen: the pre-trained encoder, fixed (no gradient, eval mode), and a new head —
     a "linear probe" of what the encoder carries;
   - finetune: the pre-trained encoder as the starting point, every weight trained;
   - scratch: a freshly initialised encoder of the same size (the control);
3. scores every model on the target's held-out test split.

The result (a data-efficiency table: target metric per arm × number of labelled
examples) is a dict. Stored as a run like any other (`mtl-lab transfer`, `jobs.start`: the
worker trains it), its curves are kept under the phases "pretrain", "frozen@0.05",
"finetune@1", ... (`mtl_core.phases`).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import math
import types
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from pydantic import ConfigDict, Field, field_validator, model_validator
from torch import nn

from mtl_core.config import ConfigModel, ExperimentConfig, SharingSpec
from mtl_core.errors import ConfigError, DataError, RunCancelled
from mtl_core.phases import ARMS, Phase
from mtl_core.sink import Sink
from mtl_core.tasks.base import IGNORE_INDEX, MTLDataset, Split, TaskSpec

if TYPE_CHECKING:
    import pandas as pd

Arm = Literal["frozen", "finetune", "scratch"]  # = phases.ARMS, the order they train in
ARM_DESCRIPTIONS = {
    "frozen": "pre-trained encoder kept fixed, new head trained (linear probe)",
    "finetune": "pre-trained encoder as the starting point, all weights trained",
    "scratch": "fresh encoder of the same size, all weights trained (the control)",
}


class TransferConfig(ConfigModel):
    """One transfer experiment. `base` is the pre-training experiment (dataset, model
    sizes, optimiser, batch size, seed, device; `steps`/`epochs` = the pre-training
    budget); `sources`, `target` and `sharing` say what is trained on what."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["transfer"] = Field("transfer", description="marks a stored run as a transfer experiment")
    name: str | None = None
    base: ExperimentConfig = Field(
        default_factory=ExperimentConfig,
        description="the pre-training experiment: dataset, model, optimizer, batch_size, seed, device, steps",
    )
    sharing: SharingSpec = Field(
        default_factory=SharingSpec, description="sharing mode of the pre-training model (one shared encoder)"
    )
    sources: list[str] = Field(description="tasks the shared encoder is pre-trained on")
    target: str = Field(description="the held-out task the encoder is transferred to")
    arms: list[Arm] = Field(default_factory=lambda: list(ARMS), description="frozen, finetune, scratch")
    fractions: list[float] = Field(
        default_factory=lambda: [0.01, 0.05, 0.2, 1.0],
        description="shares of the target's labelled training rows, each in (0, 1]",
    )
    target_steps: int = Field(300, ge=1, le=10_000_000, description="training steps of every target model")
    target_batch_size: int | None = Field(
        None, ge=1, le=1_000_000,
        description="batch size of the target models (None = base.batch_size); every subset holds at least one batch",
    )

    @field_validator("sharing", mode="before")
    @classmethod
    def _sharing_shorthand(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v  # `sharing: hard` = `sharing: {name: hard}`

    @field_validator("sources")
    @classmethod
    def _sources(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("name at least one source task to pre-train on")
        dup = next((t for i, t in enumerate(v) if t in v[:i]), None)
        if dup is not None:
            raise ValueError(f"task {dup!r} is listed twice; list each source once")
        return v

    @field_validator("arms")
    @classmethod
    def _arms(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError(f"choose at least one arm: {', '.join(ARMS)}")
        if len(set(v)) < len(v):
            raise ValueError("an arm is listed twice; list each arm once")
        return [a for a in ARMS if a in v]  # a fixed order: frozen, finetune, scratch

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("give at least one fraction of the target's training data, e.g. [0.05, 1.0]")
        for f in v:
            if not (math.isfinite(f) and 0.0 < f <= 1.0):
                raise ValueError(
                    f"fraction {f} is outside (0, 1]; each fraction is a share of the target's "
                    "labelled training rows, e.g. 0.05 for 5 %"
                )
        if len(set(v)) < len(v):
            raise ValueError("a fraction is listed twice; list each fraction once")
        return sorted(v)

    @model_validator(mode="after")
    def _resolve(self) -> "TransferConfig":
        base = self.base
        if base.tasks is not None:
            raise ValueError("base.tasks: leave it out; `sources` and `target` name the tasks")
        if base.n_seeds != 1:
            raise ValueError("base.n_seeds: a transfer experiment runs one seed; set it to 1 (or leave it out)")
        if "sharing" in base.model_fields_set and base.sharing.name != self.sharing.name:
            raise ValueError(
                f"base.sharing: set the pre-training sharing mode with the top-level `sharing` "
                f"field (it is {self.sharing.name!r}), not inside base"
            )
        available = base.task_list()
        for t in self.sources:
            if t not in available:
                raise ValueError(
                    f"sources: unknown task {t!r} for dataset {base.dataset.name!r}; "
                    f"choose from: {', '.join(available)}"
                )
        if self.target not in available:
            raise ValueError(
                f"target: unknown task {self.target!r} for dataset {base.dataset.name!r}; "
                f"choose from: {', '.join(available)}"
            )
        if self.target in self.sources:
            raise ValueError(
                f"target: {self.target!r} is also a source; the target must be held out of "
                "pre-training, so remove it from sources or pick another target"
            )
        # The pre-training experiment validates the sharing mode, its options and the
        # weights against the sources; it also normalises base.sharing to ours.
        pre = self.pretrain_config()
        self.sharing = pre.sharing
        base.sharing = pre.sharing.model_copy(deep=True)
        return self

    # ---- the experiments it runs -------------------------------------------------------------
    def pretrain_config(self) -> ExperimentConfig:
        """The pre-training experiment: `base` on the source tasks with `sharing`."""
        data = {**self.base.to_dict(), "tasks": list(self.sources), "sharing": self.sharing.model_dump(mode="json"),
                "baselines": False, "n_seeds": 1}
        return ExperimentConfig.parse(data)

    def target_config(self) -> ExperimentConfig:
        """The experiment of one target model: one task, `target_steps`, plain loss."""
        data = {
            **self.base.to_dict(),
            "tasks": [self.target], "sharing": {"name": "hard"}, "weighting": {"name": "manual"},
            "weights": {}, "sampling": {}, "steps": self.target_steps, "epochs": None,
            "batch_size": self.target_batch_size or self.base.batch_size,
            "baselines": False, "n_seeds": 1, "interference": False, "affinity_every": 0,
        }
        return ExperimentConfig.parse(data)


# ---- pieces (public so that tests and notebooks can drive one arm) ------------------------------
def shared_encoder(model: nn.Module, sharing: str) -> nn.Module:
    """The one encoder every task of `model` reads, or a ConfigError naming the fix.

    A mode qualifies when its model has an `encoder` whose parameters are exactly the
    shared ones (hard sharing); modes with one encoder per task, experts or
    task-specific layers inside the encoder have nothing single to transfer.
    """
    encoder = getattr(model, "encoder", None)
    shared = {id(p) for p in model.shared_parameters()}  # type: ignore[operator]
    if not isinstance(encoder, nn.Module) or {id(p) for p in encoder.parameters()} != shared:
        raise ConfigError(
            f"sharing: {sharing!r} has no single shared encoder to transfer (its tasks do not all "
            "read one encoder); pre-train with sharing 'hard'"
        )
    return encoder


def labelled_rows(split: Split, task: str) -> np.ndarray:
    """Indices of the rows of `split` that carry a label for `task`."""
    y = split.y[task]
    if y.is_floating_point():
        mask = ~torch.isnan(y)
    elif y.dim() > 1:  # tagging: a sentence counts when any token is labelled
        mask = (y != IGNORE_INDEX).any(dim=1)
    else:
        mask = y != IGNORE_INDEX
    return np.flatnonzero(mask.cpu().numpy())


def subset_size(fraction: float, n_pool: int, *, min_rows: int) -> int:
    """Labelled target rows a `fraction` trains on: round(fraction·n_pool), at least
    `min_rows` (one batch), at most all of them (`n_pool`)."""
    return min(n_pool, max(min_rows, int(round(fraction * n_pool))))


def fraction_plan(fractions: list[float], n_pool: int, *, min_rows: int) -> list[dict[str, Any]]:
    """The data sizes a transfer run trains on: fractions that clamp to the same number of
    examples (several below one batch, or several above all the rows) would train the very
    same models on the very same subset, so they are merged into one size.

    One entry per distinct size, smallest first: `n_labelled`, `fraction` (the largest of
    the merged fractions: its nominal count lies closest to the actual one at either
    clamp) and `fractions` (every requested fraction that gives this size).
    """
    plan: dict[int, list[float]] = {}
    for f in sorted(fractions):
        plan.setdefault(subset_size(f, n_pool, min_rows=min_rows), []).append(f)
    return [{"n_labelled": n, "fraction": fs[-1], "fractions": fs} for n, fs in sorted(plan.items())]


def describe_merged(plan: list[dict[str, Any]], *, min_rows: int, n_pool: int) -> str:
    """'1 % and 5 % both give 32 labelled examples (at least one batch of 32): trained once, shown as 5 %.'
    for every merged size of `fraction_plan`; '' when nothing was merged."""
    notes = []
    for entry in plan:
        if len(entry["fractions"]) < 2:
            continue
        shares = [f"{f * 100:g} %" for f in entry["fractions"]]
        listed = ", ".join(shares[:-1]) + " and " + shares[-1]
        n = entry["n_labelled"]
        why = ("all the labelled rows" if n == n_pool else
               f"at least one batch of {min_rows}" if n == min_rows else "the same count after rounding")
        both = "both" if len(shares) == 2 else "all"
        notes.append(f"{listed} {both} give {n:,} labelled examples ({why}): trained once, "
                     f"shown as {entry['fraction'] * 100:g} %.")
    return " ".join(notes)


def target_subset(split: Split, spec: TaskSpec, fraction: float, *, min_rows: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded `fraction` of the labelled rows of `split` for `spec`.

    At least `min_rows` (one batch) rows, or all of them when fewer are labelled; the
    class proportions are kept (stratified) for classification when every class has
    enough rows, else the draw is plain random.
    """
    from sklearn.model_selection import train_test_split

    pool = labelled_rows(split, spec.name)
    if len(pool) == 0:
        raise DataError(
            f"target task {spec.name!r} has no labelled rows in its training split; choose a target "
            "with labels or fill in its column"
        )
    n = subset_size(fraction, len(pool), min_rows=min_rows)
    if n == len(pool):
        return pool
    stratify = split.y[spec.name][pool].cpu().numpy() if spec.kind == "classification" else None
    try:
        chosen, _ = train_test_split(pool, train_size=n, random_state=seed, stratify=stratify)
    except ValueError:  # a class with one row, or fewer rows than classes: stratifying is impossible
        chosen, _ = train_test_split(pool, train_size=n, random_state=seed)
    return np.sort(chosen)


def _eval_mode_only(self: nn.Module, mode: bool = True) -> nn.Module:
    return nn.Module.train(self, False)


def is_frozen(module: nn.Module) -> bool:
    """True when no parameter of `module` is trainable."""
    return not any(p.requires_grad for p in module.parameters())


def frozen_copy(encoder: nn.Module) -> nn.Module:
    """A copy of `encoder` as a fixed feature extractor: no gradients, and eval mode for
    good (the engine's `model.train()` would otherwise switch its dropout back on)."""
    module = copy.deepcopy(encoder)
    module.requires_grad_(False)
    module.train = types.MethodType(_eval_mode_only, module)  # type: ignore[method-assign]
    module.eval()
    return module


def build_target_model(
    arm: str, dataset: MTLDataset, target: str, config: ExperimentConfig, encoder: nn.Module
) -> nn.Module:
    """A one-task hard-sharing model for `arm`, before training.

    - frozen: `encoder` as a fixed feature extractor. An encoder that is already frozen
      (`frozen_copy`, or a frozen MiniLM) is used as it is, so several frozen arms share
      one encoder and its feature cache; otherwise a frozen copy is made.
    - finetune: a trainable copy of `encoder` (its weights, nothing shared).
    - scratch: the new model's own freshly initialised encoder of the same size (an
      encoder that comes pretrained from its constructor, MiniLM, is re-initialised).
    Built right after seeding with `config.seed`, so every arm starts from the same head.
    """
    from mtl_core.models import build_model

    if arm not in ARMS:
        raise ConfigError(f"arms: unknown arm {arm!r}; choose from: {', '.join(ARMS)}")
    torch.manual_seed(config.seed)
    model = build_model("hard", dataset, [target], config.model)
    if arm == "scratch":
        reset = getattr(model.encoder, "reset_parameters", None)
        if callable(reset):
            reset()
        model.encoder.requires_grad_(True)
    elif arm == "frozen":
        model.encoder = encoder if is_frozen(encoder) else frozen_copy(encoder)
    else:
        model.encoder.load_state_dict(encoder.state_dict())
        model.encoder.requires_grad_(True)
    return model


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


# ---- the experiment ------------------------------------------------------------------------------
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
            for arm in config.arms:
                trained = train_arm(arm, target_cfg, subset, config.target, frozen if arm == "frozen" else encoder,
                                    sink=sink, phase=Phase.arm(arm, fraction).format())
                metrics = trained.test[config.target]
                rows.append({
                    "arm": arm,
                    "fraction": fraction,
                    "n_labelled": int(len(index)),
                    "metric_value": metrics[spec.metric],
                    "metrics": metrics,
                    "train_seconds": trained.train_seconds,
                })
                del trained  # one target model alive at a time (a MiniLM copy is 90 MB)
    except RunCancelled as exc:
        exc.result = results("cancelled")  # type: ignore[attr-defined]  (the finished cells, for the store)
        raise
    return results("finished")


def transfer_table(result: dict[str, Any]) -> pd.DataFrame:
    """Target metric per data size (rows: fraction, n_labelled) and arm (columns)."""
    import pandas as pd

    df = pd.DataFrame(result["rows"])
    table = df.pivot_table(index=["fraction", "n_labelled"], columns="arm", values="metric_value", sort=False)
    return table[[a for a in result.get("arms", ARMS) if a in table.columns]]


def format_transfer(result: dict[str, Any]) -> str:
    """The data-efficiency table and the pre-training scores, as text."""
    arrow = "↑" if result["higher_is_better"] else "↓"
    lines = [
        f"transfer {', '.join(result['sources'])} → {result['target']} "
        f"(test {result['metric']} {arrow}, {result['target_steps']} steps per model, "
        f"{result['n_target_train']} labelled target rows in all)",
        transfer_table(result).round(4).to_string(),
        *([result["merged_text"]] if result.get("merged_text") else []),
        "",
        "pre-training (test): " + ", ".join(
            f"{t} {_primary(m, result.get('pretrain_metric', {}).get(t))}" for t, m in result["pretrain"].items()
        ),
    ]
    return "\n".join(lines)


def _primary(metrics: dict[str, float], name: str | None) -> str:
    name = name or next((k for k in metrics if k != "loss"), "loss")
    value = metrics.get(name)
    return f"{name}={value:.4g}" if isinstance(value, (int, float)) else f"{name}=—"
