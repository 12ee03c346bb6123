"""Cost of interference logging: wall-clock samples/s with it on (default interval, with and
without look-ahead affinity) vs off, on the quickstart experiment (no baselines).

    python bench/interference_cost.py [--repeats 5] [--steps 1200]

Goal (issue 7): ≤ 10 % slower with interference on at the default interval.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from mtl_core.config import ExperimentConfig
from mtl_core.engine import train
from mtl_core.tasks import load_dataset

QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "quickstart.yaml"


def samples_per_s(overrides: list[str], steps: int) -> float:
    config = ExperimentConfig.from_file(QUICKSTART, ["baselines=false", f"steps={steps}", *overrides])
    dataset = load_dataset(config.dataset.name, config.dataset.options, seed=config.seed)
    t0 = time.perf_counter()
    train(config, dataset)
    return steps * config.batch_size / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=1200)
    args = ap.parse_args()
    torch.set_num_threads(1)
    variants = {
        "off": ["interference=false"],
        "cosine only": ["interference=true", "affinity_every=0"],
        "cosine + affinity (default)": ["interference=true"],
    }
    samples_per_s(variants["off"], 100)  # warm-up
    results: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.repeats):  # interleaved, so background load hits every variant alike
        for name, overrides in variants.items():
            results[name].append(samples_per_s(overrides, args.steps))
    base = statistics.median(results["off"])
    print(f"quickstart, {args.steps} steps, eval every 50, 1 thread, wall clock incl. evaluation, "
          f"median of {args.repeats}")
    for name, values in results.items():
        v = statistics.median(values)
        print(f"{name:<28} {v:10,.0f} samples/s   slow-down {100 * (1 - v / base):5.1f} %")


if __name__ == "__main__":
    main()
