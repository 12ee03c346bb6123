"""What a transfer experiment is: `TransferConfig` (the pre-training experiment, sources,
target, arms, data fractions, the target models' budget) and the two experiments it
derives, `pretrain_config` and `target_config`."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from mtl_core.config import ConfigModel, ExperimentConfig, SharingSpec
from mtl_core.phases import ARMS

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
