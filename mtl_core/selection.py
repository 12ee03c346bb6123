"""Checkpoint selection on validation data: which weights of a run give its test metrics.

Small models on little data overfit: the validation loss turns up long before the end of
the budget, and test metrics read from the final weights then say more about when
training stopped than about sharing (a higher loss weight can make its own task *worse*).
The protocol of the MTL literature (e.g. LibMTL, Lin & Zhang, 2023; Nash-MTL, Navon et
al., 2022) evaluates on validation data during training, keeps the best checkpoint, and
reports the test metrics of that checkpoint. `selection: best_val` (the default) does that
for every model a run trains, with one rule per kind of model:

- a **single-task baseline**: the evaluation with the best validation value of its
  task's primary metric;
- the **multi-task model**: the evaluation with the best validation Δm (Maninis et al.,
  2019) against the baselines' validation metrics at *their* selected steps — the mean
  over tasks of the signed relative change, i.e. the same number the results report,
  computed on validation data. Without baselines the reference is the model's own first
  evaluation (the mean normalised validation metric).

Ties keep the earlier step. The best weights are kept in memory (a copy of the state
dict whenever the score improves; no disk). `selection: last` keeps today's behaviour:
the weights at the end.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import torch

from mtl_core.metrics import relative_change
from mtl_core.tasks.base import TaskSpec

Metrics = Mapping[str, Mapping[str, float]]  # task -> metric -> value (engine.evaluate)
Score = Callable[[Metrics], float]


def _signed(value: Any, higher_is_better: bool) -> float:
    """The value with "higher is better" orientation; NaN or missing → −∞ (never best)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return -math.inf
    if math.isnan(v):
        return -math.inf
    return v if higher_is_better else -v


def single_task_score(spec: TaskSpec) -> Score:
    """A baseline's score: its task's primary validation metric, higher = better."""

    def score(val: Metrics) -> float:
        return _signed(val.get(spec.name, {}).get(spec.metric), bool(spec.higher_is_better))

    return score


class DeltaMScore:
    """The multi-task model's score: validation Δm % against `reference` (task -> the
    primary metric of its baseline on validation), or, without one, against the model's own
    first evaluation."""

    def __init__(self, specs: Mapping[str, TaskSpec], reference: Mapping[str, float] | None = None) -> None:
        self.specs = dict(specs)
        self.reference = dict(reference) if reference else None

    def __call__(self, val: Metrics) -> float:
        if self.reference is None:
            self.reference = {t: float(val.get(t, {}).get(s.metric, math.nan)) for t, s in self.specs.items()}
        changes = [
            relative_change(self.reference.get(t, math.nan), float(val.get(t, {}).get(s.metric, math.nan)),
                            higher_is_better=bool(s.higher_is_better))
            for t, s in self.specs.items()
        ]
        finite = [c for c in changes if math.isfinite(c)]
        return sum(finite) / len(finite) if finite else -math.inf


class BestCheckpoint:
    """Keeps the weights of the best-scoring evaluation so far, in memory.

    `offer(step, val, model)` at each evaluation copies the model's state when its score is
    strictly better than the best so far (the first evaluation is always kept);
    `restore(model)` loads the kept weights back and returns their step.
    """

    def __init__(self, score: Score) -> None:
        self.score = score
        self.best = -math.inf
        self.step: int | None = None
        self.val: dict[str, dict[str, float]] = {}
        self._state: dict[str, torch.Tensor] | None = None

    def offer(self, step: int, val: Metrics, model: torch.nn.Module) -> bool:
        score = self.score(val)
        if self._state is not None and not score > self.best:
            return False
        self.best, self.step = score, int(step)
        self.val = {t: dict(m) for t, m in val.items()}
        self._state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return True

    def restore(self, model: torch.nn.Module) -> int | None:
        """Load the kept weights into `model` (in place: views into an ensemble's stack are
        written through); None when nothing was kept."""
        if self._state is None:
            return None
        with torch.no_grad():
            for name, value in model.state_dict().items():
                value.copy_(self._state[name])
        return self.step


def keeper(selection: str, score: Score) -> BestCheckpoint | None:
    """A BestCheckpoint for `selection: best_val`, None for `last`."""
    return BestCheckpoint(score) if selection == "best_val" else None
