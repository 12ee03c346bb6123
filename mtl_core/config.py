"""`ExperimentConfig`: everything that defines a run, validated at the boundary.

The same config drives the CLI, the dashboard and Python. Every invalid value is
rejected with a `ConfigError` that names the field and says how to fix it. The
registries (datasets, sharing modes, weighting strategies) are read from the top: they
import `mtl_core.spec`, never this module, so there is no import cycle.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from mtl_core.errors import ConfigError
from mtl_core.models import SHARING
from mtl_core.registry import format_validation_error
from mtl_core.spec import ModelSpec, StrictModel
from mtl_core.tasks import DATASETS, dataset_task_names
from mtl_core.weighting import WEIGHTING, strategies_using_weights

__all__ = [
    "ConfigModel", "DatasetSpec", "ExperimentConfig", "ModelSpec", "NamedSpec", "OptimizerSpec",
    "SamplingSpec", "SharingSpec", "WeightingSpec", "apply_overrides",
]

SHORTHANDS = ("dataset", "sharing", "weighting", "optimizer")
# `dataset.path=x` is short for `dataset.options.path=x` (likewise sharing, weighting).
OPTION_SECTIONS = ("dataset", "sharing", "weighting")
MAX_THREADS = 1024  # `threads: N` beyond this is a typo, not a machine


class ConfigModel(StrictModel):
    """Validation at the boundary and the YAML/JSON round trip, shared by every config."""

    @classmethod
    def parse(cls, data: dict[str, Any] | None = None):
        """Validate a plain dict; raises ConfigError with one line per problem."""
        try:
            return cls.model_validate(data or {})
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc)) from None

    @classmethod
    def from_file(cls, path: str | Path, overrides: list[str] | None = None):
        """Read a YAML or JSON file, apply `key=value` overrides, validate."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist; check the path") from None
        data = _mapping(text, where=f"config file {path}")
        return cls.parse(apply_overrides(data, overrides or []))

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_yaml(cls, text: str):
        return cls.parse(_mapping(text, where="the config"))


def _mapping(text: str, *, where: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where} is not valid YAML/JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must hold a mapping of fields, not {type(data).__name__}")
    return data


class NamedSpec(StrictModel):
    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class DatasetSpec(NamedSpec):
    name: str = "mmoe_synthetic"


class SharingSpec(NamedSpec):
    name: str = "hard"


class WeightingSpec(NamedSpec):
    name: str = "manual"


class SamplingSpec(StrictModel):
    mode: Literal["all", "random"] = Field(
        "all", description="all: every task every step; random: one task per step"
    )
    proportional: bool = Field(
        False, description="random mode: pick a task with probability ∝ its labelled examples"
    )


class OptimizerSpec(StrictModel):
    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(3e-3, gt=0, allow_inf_nan=False, description="learning rate")
    weight_decay: float = Field(0.0, ge=0, allow_inf_nan=False)
    momentum: float = Field(0.9, ge=0, lt=1, description="sgd only")


class ExperimentConfig(ConfigModel):
    """One experiment: a multi-task model (and its single-task baselines) on a dataset."""

    name: str | None = None
    dataset: DatasetSpec = Field(default_factory=DatasetSpec)
    tasks: list[str] | None = Field(None, description="subset of the dataset's tasks; None = all")
    sharing: SharingSpec = Field(default_factory=SharingSpec)
    weighting: WeightingSpec = Field(default_factory=WeightingSpec)
    weights: dict[str, float] = Field(
        default_factory=dict, description="manual loss weights w_t (missing tasks get 1.0)"
    )
    sampling: SamplingSpec = Field(default_factory=SamplingSpec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    steps: int | None = Field(None, ge=1, le=10_000_000, description="training steps (or give epochs)")
    epochs: float | None = Field(None, gt=0, le=100_000, allow_inf_nan=False)
    batch_size: int = Field(64, ge=1, le=1_000_000)
    eval_every: int = Field(50, ge=1, description="evaluate on validation every N steps")
    log_every: int = Field(10, ge=1, description="log training losses every N steps")
    selection: Literal["best_val", "last"] = Field(
        "best_val",
        description="which weights give the test metrics: best_val = the evaluation step with the best "
        "validation score (each baseline: its primary metric; the multi-task model: Δm vs the baselines' "
        "validation metrics; see mtl_core.selection), last = the weights at the end of training",
    )
    seed: int = Field(0, ge=0, le=2**31 - 1)
    n_seeds: int = Field(
        1, ge=1, le=20, description="train baselines and MTL with seeds seed … seed+n−1; report mean ± std"
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["auto", "off", "bf16", "fp16"] = Field(
        "auto",
        description="mixed precision of the forward pass: auto = bf16 on a CUDA GPU that supports it, "
        "off on the CPU; bf16 = bfloat16 autocast (also on the CPU when asked); fp16 = float16 with "
        "loss scaling (CUDA only); off = float32. Losses, weighting and metrics stay float32",
    )
    compile: bool = Field(
        False, description="torch.compile the model's forward pass (pays on a GPU with a large model; "
        "falls back to eager with a warning where compilation fails)",
    )
    threads: int | Literal["auto", "torch"] = Field(
        "auto",
        description="intra-op CPU threads of the training process: auto = the engine decides "
        "(mtl_core.threads: 1 for small models or when other runs share the machine), N = exactly N, "
        "torch = leave torch's own default",
    )
    baselines: bool = Field(True, description="also train single-task baselines (cached)")
    interference: bool = Field(True, description="gradient-cosine snapshot at each evaluation")
    affinity_every: int = Field(
        2, ge=0, description="look-ahead task affinity (Fifty et al., 2021) every N-th evaluation; 0 = off "
        "(default 2: every evaluation cost ~5 % of a quickstart run, every other one ~4 %; bench/interference_cost.py)"
    )
    affinity_lr: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="step size of the affinity look-ahead; None = optimizer.lr"
    )
    class_weights: Literal["none", "balanced"] = Field(
        "none", description="class weights in the loss: none, or balanced = "
        "n_samples / (n_classes · count_c) from the training split (scikit-learn's compute_class_weight) for "
        "classification tasks and, for each label of a multilabel task, the same over its present / absent "
        "cells; for the multi-task model and its baselines alike; helps a task whose majority class dominates",
    )

    @field_validator("threads", mode="before")
    @classmethod
    def _threads(cls, v: Any) -> Any:
        # Before pydantic's own union check, so that a wrong value gets one message with
        # the fix instead of one complaint per member of `int | Literal[...]`.
        fix = ("give auto (the engine decides), torch (keep torch's default) or a whole number "
               f"of threads from 1 to {MAX_THREADS}, e.g. threads: 1")
        if isinstance(v, str) and v.strip().lower() in ("auto", "torch"):
            return v.strip().lower()
        if isinstance(v, str) and v.strip().isdigit():
            v = int(v.strip())
        elif isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"{v!r} is not a thread count; {fix}")
        if not 1 <= v <= MAX_THREADS:
            raise ValueError(f"{v} is out of range; {fix}")
        return v

    @field_validator("class_weights", mode="before")
    @classmethod
    def _class_weights(cls, v: Any) -> Any:
        # YAML's `class_weights: null` / a missing value mean no weighting, as `none` does.
        if v is None:
            return "none"
        if isinstance(v, str) and v.strip().lower() in ("none", "balanced"):
            return v.strip().lower()
        raise ValueError(f"{v!r} is not a class weighting; give none or balanced, e.g. class_weights: balanced")

    @field_validator("amp", mode="before")
    @classmethod
    def _amp(cls, v: Any) -> Any:
        # YAML 1.1 reads an unquoted `amp: off` (or `--set amp=off`) as the boolean false.
        if v is False:
            return "off"
        if v is True:
            raise ValueError("true is not a precision; give auto, off, bf16 or fp16, e.g. amp: bf16")
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("weights")
    @classmethod
    def _weights_finite(cls, w: dict[str, float]) -> dict[str, float]:
        for task, value in w.items():
            if math.isnan(value) or math.isinf(value):
                raise ValueError(f"weight of task {task!r} is {value}; give a finite number ≥ 0")
            if value < 0:
                raise ValueError(f"weight of task {task!r} is {value}; loss weights must be ≥ 0")
        return w  # "all weights zero" needs the task list: checked in _resolve

    @model_validator(mode="after")
    def _resolve(self) -> "ExperimentConfig":
        if self.steps is not None and self.epochs is not None:
            raise ValueError("steps, epochs: give one budget, not both")
        if self.steps is None and self.epochs is None:
            self.steps = 600

        entry = DATASETS.get(self.dataset.name, field_name="dataset.name")
        if "min_rows" in entry.options.model_fields and "min_rows" not in self.dataset.options:
            # A file dataset must hold at least one batch; the importer says so by name.
            self.dataset.options = {**self.dataset.options, "min_rows": self.batch_size}
        ds_opts = entry.parse_options(self.dataset.options, where="dataset")
        self.dataset.options = ds_opts.model_dump(mode="json")
        available = list(entry.extra["task_names"](ds_opts))

        if self.tasks is not None:
            if not self.tasks:
                raise ValueError(f"tasks: tick at least one task; available: {', '.join(available)}")
            seen: set[str] = set()
            for t in self.tasks:
                if t in seen:
                    raise ValueError(f"tasks: task {t!r} is listed twice; list each task once")
                seen.add(t)
                if t not in available:
                    raise ValueError(
                        f"tasks: unknown task {t!r} for dataset {self.dataset.name!r}; "
                        f"choose from: {', '.join(available)}"
                    )
        tasks = self.task_list(available)
        for t in self.weights:
            if t not in tasks:
                raise ValueError(
                    f"weights: {t!r} is not a task of this run ({', '.join(tasks)}); "
                    "remove its weight or add the task"
                )
        if tasks and all(self.weights.get(t, 1.0) == 0 for t in tasks):
            raise ValueError("weights: all task weights are zero, so nothing would be learned; "
                             "give at least one task a weight > 0")

        sh = SHARING.get(self.sharing.name, field_name="sharing.name")
        self.sharing.options = sh.parse_options(self.sharing.options, where="sharing").model_dump(mode="json")
        min_tasks = sh.extra.get("min_tasks", 1)
        if len(tasks) < min_tasks:
            raise ValueError(
                f"sharing: {self.sharing.name!r} needs at least {min_tasks} tasks; "
                f"this run has {len(tasks)}. Tick more tasks or choose another sharing mode"
            )
        check = sh.extra.get("check")  # a mode's own fit test (e.g. hierarchical depths)
        if check is not None:
            check(sh.parse_options(self.sharing.options, where="sharing"), tasks=tasks, model=self.model)
        wt = WEIGHTING.get(self.weighting.name, field_name="weighting.name")
        self.weighting.options = wt.parse_options(self.weighting.options, where="weighting").model_dump(mode="json")
        ignored = {t: w for t, w in self.weights.items() if w != 1.0}
        if wt.extra["uses_weights"] == "none" and ignored:
            # Refused rather than dropped: a run that silently trains other weights than
            # the ones written down is worse than an error (issue 13, item 8).
            users = strategies_using_weights()
            raise ValueError(
                f"weights: weighting {self.weighting.name!r} sets every task weight itself and ignores "
                f"manual weights, but this config gives {', '.join(f'{t}={w:g}' for t, w in ignored.items())}. "
                "Remove them (or set them to 1), or choose a weighting that uses them: "
                f"{', '.join(users['all'])} (or, for the task heads only: {', '.join(users['heads'])})"
            )
        if self.amp == "fp16" and self.device == "cpu":
            raise ValueError("amp: 'fp16' needs a CUDA GPU (float16 with loss scaling); on the CPU use "
                             "amp: bf16 (bfloat16 autocast) or off")
        if self.compile and self.weighting.options.get("mode") == "rep":
            raise ValueError(
                f"compile: weighting {self.weighting.name!r} in mode 'rep' differentiates with respect to the "
                "shared representation, which a compiled forward pass hides inside one graph; set "
                "weighting.options.mode to 'params' or compile to false"
            )
        if self.sampling.mode == "random" and not getattr(wt.obj, "supports_task_sampling", True):
            raise ValueError(
                f"weighting: {self.weighting.name!r} needs every task's gradient at each step; "
                "set sampling.mode to 'all' or choose a loss-based weighting"
            )
        return self

    def task_list(self, available: list[str] | None = None) -> list[str]:
        """The run's tasks in order (the dataset's order when `tasks` is None)."""
        if self.tasks is not None:
            return list(self.tasks)
        if available is None:
            available = dataset_task_names(self.dataset.name, self.dataset.options)
        return available

    def task_weights(self) -> dict[str, float]:
        return {t: float(self.weights.get(t, 1.0)) for t in self.task_list()}

def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `dotted.key=value` overrides (values parsed as YAML) to a config dict.

    `sharing=soft` is short for `sharing.name=soft` (likewise dataset, weighting, optimizer),
    and `dataset.path=x` for `dataset.options.path=x` (likewise sharing, weighting).
    """
    import copy

    out = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: write it as key=value, e.g. --set sharing=soft")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"--set {item!r}: the key is empty or has an empty part")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        parts = key.split(".")
        if parts[0] == "weights" and len(parts) > 2:
            # A task name never holds '.' (the CSV importer refuses such columns), so a
            # nested weight is a typo, not a task: say so instead of a type error later.
            raise ConfigError(
                f"--set {item!r}: weights.<task> takes one task name, and task names contain no "
                "'.'; write e.g. --set weights.y1=2"
            )
        if len(parts) == 1 and parts[0] in SHORTHANDS and not isinstance(value, dict):
            parts = [parts[0], "name"]
        elif len(parts) >= 2 and parts[0] in OPTION_SECTIONS and parts[1] not in ("name", "options"):
            parts = [parts[0], "options", *parts[1:]]
        node = out
        for part in parts[:-1]:
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is not a section that has fields")
            node = nxt
        node[parts[-1]] = value
    return out
