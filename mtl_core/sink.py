"""Where the engine's events go. The engine never prints, draws or stores by itself.

A sink receives what happened during a run; the terminal progress bar, the run
store and tests are all sinks. `phase` names which model is training: "mtl" for the
multi-task model, "stl:<task>" for a single-task baseline.
"""

from __future__ import annotations

from typing import Any


class Sink:
    """No-op base: override what you need."""

    def on_start(self, phase: str, info: dict[str, Any]) -> None:
        """A model starts training. info: tasks, total_steps, batch_size, device, shared_params, ..."""

    def on_train(
        self,
        phase: str,
        step: int,
        losses: dict[str, float],
        total: float,
        weights: dict[str, float],
        extra: dict[str, float],
    ) -> None:
        """Training losses at a logging step (mean over the steps since the last one).

        `extra` holds scalars such as the soft-sharing regulariser ("reg").
        """

    def on_eval(self, phase: str, step: int, split: str, metrics: dict[str, dict[str, float]]) -> None:
        """Evaluation of every task on `split` ("val" or "test"): metrics[task][metric] (incl. "loss").

        Split "gates" carries expert gate weights instead: metrics[task][expert] (MMoE-style modes).
        """

    def on_interference(self, phase: str, step: int, snapshot: dict[str, Any]) -> None:
        """Gradient interference: {"tasks", "grad_cosine" (T×T lists), "grad_norm" (T)}."""

    def on_progress(self, phase: str, step: int, total_steps: int, samples_per_s: float) -> None:
        """Called at every logging step for progress bars."""

    def on_end(self, phase: str, status: str, error: str | None = None) -> None:
        """A model stopped: status is finished, failed or cancelled."""

    def should_stop(self) -> bool:
        """True asks the engine to cancel the run before its next step."""
        return False


class MultiSink(Sink):
    """Fans every event out to several sinks; stops when any of them asks."""

    def __init__(self, *sinks: Sink) -> None:
        self.sinks = [s for s in sinks if s is not None]

    def on_start(self, phase, info):
        for s in self.sinks:
            s.on_start(phase, info)

    def on_train(self, phase, step, losses, total, weights, extra):
        for s in self.sinks:
            s.on_train(phase, step, losses, total, weights, extra)

    def on_eval(self, phase, step, split, metrics):
        for s in self.sinks:
            s.on_eval(phase, step, split, metrics)

    def on_interference(self, phase, step, snapshot):
        for s in self.sinks:
            s.on_interference(phase, step, snapshot)

    def on_progress(self, phase, step, total_steps, samples_per_s):
        for s in self.sinks:
            s.on_progress(phase, step, total_steps, samples_per_s)

    def on_end(self, phase, status, error=None):
        for s in self.sinks:
            s.on_end(phase, status, error)

    def should_stop(self) -> bool:
        return any(s.should_stop() for s in self.sinks)


class RecordingSink(Sink):
    """Keeps every event in memory (tests, notebooks, the results history)."""

    def __init__(self) -> None:
        self.train: list[dict[str, Any]] = []
        self.evals: list[dict[str, Any]] = []
        self.interference: list[dict[str, Any]] = []
        self.ends: list[tuple[str, str, str | None]] = []

    def on_train(self, phase, step, losses, total, weights, extra):
        self.train.append(
            {"phase": phase, "step": step, "losses": dict(losses), "total": total,
             "weights": dict(weights), **extra}
        )

    def on_eval(self, phase, step, split, metrics):
        self.evals.append({"phase": phase, "step": step, "split": split, "metrics": metrics})

    def on_interference(self, phase, step, snapshot):
        self.interference.append({"phase": phase, "step": step, **snapshot})

    def on_end(self, phase, status, error=None):
        self.ends.append((phase, status, error))
