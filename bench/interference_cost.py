"""Cost of interference logging: the quickstart experiment (no baselines) with interference
off, on without look-ahead affinity, and on with it at the default interval, for equal
weighting and for one gradient method (PCGrad, Yu et al., 2020).

    python bench/interference_cost.py [--repeats 5] [--steps 1200] [--methods equal,pcgrad]

Two figures per variant, both over the whole call (evaluation included, since the
snapshots are taken beside it), clock time.perf_counter, one thread:
- slow-down: median over repeats of (wall time with the variant / wall time with
  interference off) − 1, the off run paired with each on run (interleaved, so that
  background load hits every variant alike), with the spread [min–max];
- share: the time spent inside the snapshots / the run's wall time, measured within
  the same run (robust to load: both parts of the ratio see the same machine).
Goal (issue 11): ≤ 5 % with affinity at the default interval.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from pathlib import Path

import torch

import mtl_core.engine as engine
from mtl_core.config import ExperimentConfig
from mtl_core.tasks import load_dataset

QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "quickstart.yaml"
_snapshot_seconds = [0.0]
_measure = engine.interference_snapshot


def _timed_snapshot(*args, **kwargs):
    t0 = time.perf_counter()
    try:
        return _measure(*args, **kwargs)
    finally:
        _snapshot_seconds[0] += time.perf_counter() - t0


engine.interference_snapshot = _timed_snapshot  # the engine looks it up at each evaluation


def run(overrides: list[str], steps: int) -> tuple[float, float, ExperimentConfig]:
    """(wall seconds, seconds inside snapshots, config) of one run."""
    config = ExperimentConfig.from_file(QUICKSTART, ["baselines=false", f"steps={steps}", "device=cpu", *overrides])
    dataset = load_dataset(config.dataset.name, config.dataset.options, seed=config.seed)
    _snapshot_seconds[0] = 0.0
    t0 = time.perf_counter()
    engine.train(config, dataset)
    return time.perf_counter() - t0, _snapshot_seconds[0], config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--methods", default="equal,pcgrad")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    variants = {
        "off": ["interference=false"],
        "cosine only": ["interference=true", "affinity_every=0"],
        "cosine + affinity (default)": ["interference=true"],
    }
    default = ExperimentConfig.parse({})
    print(f"quickstart, {args.steps} steps, eval every 50, affinity every {default.affinity_every} evaluations "
          f"(default), 1 thread, clock time.perf_counter, whole call, {args.repeats} repeats")
    for method in args.methods.split(","):
        over = {name: [f"weighting={method}", *o] for name, o in variants.items()}
        run(over["off"], 100)  # warm-up
        walls: dict[str, list[float]] = {k: [] for k in over}
        shares: dict[str, list[float]] = {k: [] for k in over}
        slow: dict[str, list[float]] = {k: [] for k in over}
        for _ in range(args.repeats):
            for name, o in over.items():
                wall, snap, _ = run(o, args.steps)
                walls[name].append(wall)
                shares[name].append(snap / wall)
            for name in over:
                slow[name].append(walls[name][-1] / walls["off"][-1] - 1)
        print(f"\nweighting {method}: off {args.steps * 64 / statistics.median(walls['off']):,.0f} samples/s")
        for name in over:
            if name == "off":
                continue
            s, sh = slow[name], shares[name]
            print(f"  {name:<28} slow-down {100 * statistics.median(s):5.1f} % [{100 * min(s):.1f}–{100 * max(s):.1f}]"
                  f"   share in snapshots {100 * statistics.median(sh):4.1f} % [{100 * min(sh):.1f}–{100 * max(sh):.1f}]")


if __name__ == "__main__":
    main()
