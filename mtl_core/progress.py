"""Terminal progress for the CLI: one tqdm bar per model (ETA and samples/s)."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm

from mtl_core.sink import Sink


class TqdmSink(Sink):
    def __init__(self, *, file: Any = None, disable: bool = False) -> None:
        self.file = file or sys.stderr
        self.disable = disable
        self.bar: tqdm | None = None
        self.last_step = 0

    def on_start(self, phase, info):
        self._close()
        if phase == "mtl":
            label = "multi-task"
        elif phase.startswith("stl:"):
            label = f"single-task {phase.split(':', 1)[1]}"
        else:  # "mtl@1" (extra seeds), transfer phases ("pretrain", "frozen@0.05", ...)
            label = phase
        if info.get("cached"):
            if not self.disable:
                print(f"{label}: baseline from cache", file=self.file)
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
