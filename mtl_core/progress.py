"""Terminal progress for the CLI: one tqdm bar per model (ETA and samples/s)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from tqdm import tqdm

from mtl_core import phases as phase_names
from mtl_core.sink import Sink


class TqdmSink(Sink):
    """One bar per model, named in words ("single-task baseline y1"); with the run's
    `phases` (`mtl_core.phases.phases(config)`), also which model of how many ("(2/3)")."""

    def __init__(self, *, file: Any = None, disable: bool = False, phases: Sequence[str] | None = None) -> None:
        self.file = file or sys.stderr
        self.disable = disable
        self.phases = list(phases) if phases is not None else None
        self.bar: tqdm | None = None
        self.last_step = 0

    def describe(self, phase: str) -> str:
        """The bar's label: the phase in words, and its place in the run's plan."""
        label = phase_names.label(phase)
        if self.phases and phase in self.phases:
            label += f" ({self.phases.index(phase) + 1}/{len(self.phases)})"
        return label

    def on_start(self, phase, info):
        self._close()
        label = self.describe(phase)
        if info.get("cached"):
            if not self.disable:
                print(f"{label}: from the cache", file=self.file)
            return
        self.bar = tqdm(
            total=info["total_steps"], desc=label, unit="step", file=self.file, disable=self.disable,
            dynamic_ncols=True, leave=True,
        )
        self.last_step = 0

    def on_progress(self, phase, step, total_steps, samples_per_s):
        if self.bar is None:
            return
        self.bar.update(step - self.last_step)
        self.last_step = step
        self.bar.set_postfix_str(f"{samples_per_s:,.0f} samples/s", refresh=False)

    def on_end(self, phase, status, error=None):
        self._close()

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
