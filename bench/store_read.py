"""How long the dashboard waits for one run's curves: `python bench/store_read.py`.

Writes one run of 2,000 steps × 3 tasks through `StoreSink` the way the engine logs
(on_train every step: 3 task losses, 3 weights and the total; on_eval on "val" every
50 steps: loss, mae and r2 per task), then reads all its curves into pandas with
`RunStore.metrics(run_id)` ten times. Goal: median read < 50 ms.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mtl_core.store import RunStore, StoreSink  # noqa: E402

STEPS, TASKS, EVAL_EVERY, READS = 2000, ("y1", "y2", "y3"), 50, 10
GOAL_MS = 50.0


def write_run(store: RunStore) -> tuple[str, float]:
    run_id = store.create_run({"dataset": {"name": "bench"}, "tasks": list(TASKS)})
    sink = StoreSink(store, run_id)
    sink.on_start("mtl", {"total_steps": STEPS, "device": "cpu"})
    t0 = time.perf_counter()
    for step in range(1, STEPS + 1):
        losses = {t: 1.0 / step + i for i, t in enumerate(TASKS)}
        sink.on_train("mtl", step, losses, sum(losses.values()), {t: 1.0 for t in TASKS}, {})
        sink.on_progress("mtl", step, STEPS, 5000.0)
        if step % EVAL_EVERY == 0:
            sink.on_eval("mtl", step, "val", {t: {"loss": 0.5, "mae": 0.4, "r2": 0.7} for t in TASKS})
    sink.on_end("mtl", "finished")
    return run_id, time.perf_counter() - t0


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, RunStore(Path(tmp) / "bench.db") as store:
        run_id, write_s = write_run(store)
        times, rows = [], 0
        for _ in range(READS):
            t0 = time.perf_counter()
            df = store.metrics(run_id)
            times.append((time.perf_counter() - t0) * 1000)
            rows = len(df)
        median = statistics.median(times)
        print(f"rows: {rows:,} ({STEPS} steps × {len(TASKS)} tasks, eval every {EVAL_EVERY})")
        print(f"write: {write_s:.2f} s for {STEPS} logging steps ({write_s / STEPS * 1000:.2f} ms per commit)")
        print(f"read all curves into pandas: median {median:.1f} ms of {READS} "
              f"(min {min(times):.1f}, max {max(times):.1f}); goal < {GOAL_MS:.0f} ms: "
              f"{'met' if median < GOAL_MS else 'NOT met'}")


if __name__ == "__main__":
    main()
