"""A run's progress as the dashboard shows it: the fraction done, a line of words, the ETA.

The run's plan of phases comes from `mtl_core.phases` (the one owner of phase names and
their order); this module only turns the run's row (phase, step, speed) into what the
progress bar says. The terminal's progress bar is `mtl_core.progress`.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from dashboard.state.links import section
from dashboard.state.transfer_form import is_transfer
from mtl_core import phases as phase_plan


def run_budgets(config: Mapping[str, Any]) -> list[int] | None:
    """Steps per model of `run_phases(config)` when they differ (a transfer run's
    pre-training vs its target models); None when every model has the same budget.
    A pre-training budget in epochs counts as one target model's."""
    if not is_transfer(config):
        return None
    steps = [s for _, s in phase_plan.plan(config)]
    target = int(config.get("target_steps") or 0)
    return [target if s is None else s for s in steps]


def run_batch_size(config: Mapping[str, Any]) -> int:
    """The batch size a run's speed (samples/s) is counted in."""
    if is_transfer(config):
        return int(section(config, "base").get("batch_size") or 64)
    return int(config.get("batch_size") or 64)


def run_phases(config: Mapping[str, Any]) -> list[str]:
    """The models a run trains, in order (`mtl_core.phases.plan`): for each seed, one
    single-task baseline per task, then the multi-task model ("stl:y1", "mtl", then
    "stl:y1@1", "mtl@1", ...); a transfer run: "pretrain", then each arm at each fraction."""
    return phase_plan.phases(config)


def phase_label(phase: str | None) -> str:
    """A phase in words ("single-task baseline y1", "multi-task model, seed 2", ...)."""
    return phase_plan.label(phase)


def progress_summary(
    run: Mapping[str, Any], phases: Sequence[str], *, batch_size: int, budgets: Sequence[int] | None = None
) -> dict[str, Any]:
    """Overall fraction done, a one-line description and the ETA in seconds (or None).

    The work done is every model before the current one in the run's plan (`phases`) plus
    the steps of the current one (`mtl_core.phases.position`); the work left, at the current
    speed, gives the ETA (cached baselines take no time, so it errs on the long side).
    `budgets` gives each phase's steps when they differ (a transfer run); otherwise every
    model has the budget the current one reports.
    """
    status, phase = run.get("status"), _phase(run)
    if status == "finished":
        return {"fraction": 1.0, "text": "finished", "eta_s": 0.0}
    if status == "queued" or not phase:
        return {"fraction": 0.0, "text": "starting the training process…", "eta_s": None}
    total = run.get("total_steps")
    total = int(total) if total is not None and not _isnan(total) else None
    at = phase_plan.position(list(phases), phase, _count(run.get("step")), budgets=budgets, total_steps=total)
    parts = [f"{phase_label(phase)} ({at.index + 1}/{at.count})"]
    if at.budget:
        parts.append(f"step {at.step:,}/{at.budget:,}")
    sps = run.get("samples_per_s")
    sps = float(sps) if sps is not None and not _isnan(sps) else None
    eta = None
    if sps and status == "running":  # an ended run has no speed and no ETA
        parts.append(f"{sps:,.0f} samples/s")
        if at.budget:
            eta = (at.total - at.done) / (sps / float(max(int(batch_size), 1)))
            parts.append(f"ETA {format_seconds(eta)}")
    return {"fraction": at.fraction, "text": " · ".join(parts), "eta_s": eta}


def _phase(run: Mapping[str, Any]) -> str | None:
    """The run's phase, None when it has none yet: a table of several runs (pandas) holds
    NaN, not None, for a run that has not reported one."""
    phase = run.get("phase")
    return phase if isinstance(phase, str) and phase else None


def _count(value: Any) -> int:
    """A step count from a run row; 0 for None or NaN (no step reported yet)."""
    return 0 if value is None or _isnan(value) else int(value)


def format_seconds(seconds: float) -> str:
    seconds = max(float(seconds), 0.0)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def _isnan(value: Any) -> bool:
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return False
