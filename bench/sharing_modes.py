"""Sharing modes as task relatedness falls: the MMoE paper's synthetic experiment (Ma et al., KDD 2018, §4).

On `mmoe_synthetic` at label-weight correlation p ∈ {0.9, 0.5, 0.0, -0.5}, seeds 0-2, every
mode is trained with the quickstart settings (n_samples 1500, noise 1.0, input_dim 32,
hidden [64, 64], Adam lr 0.003, 600 steps, batch 64, two tasks, equal weights) beside
single-task baselines trained once per (p, seed) and shared by all modes through one
`MemoryBaselineCache`. A cell is "mean test MSE over tasks (Δm %)", both averaged over
the seeds; Δm (Maninis et al., 2019) is against the single-task baselines, positive =
better than training each task alone. The paper's finding to look for: the multi-task
models lose their edge as p falls, and MMoE loses it least.

    python bench/sharing_modes.py [--quick] [--seeds 3] [--modes hard mmoe ...] [--csv out.csv]

--quick trains 150 steps with one seed (a smoke run, not a result).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from mtl_core.config import ExperimentConfig
from mtl_core.experiment import MemoryBaselineCache, run_experiment
from mtl_core.tasks import load_dataset

CORRELATIONS = (0.9, 0.5, 0.0, -0.5)
MODES = ("single_task", "hard", "soft", "cross_stitch", "mtan", "mmoe", "cgc", "ple")


def config_for(mode: str, p: float, seed: int, steps: int) -> ExperimentConfig:
    return ExperimentConfig.parse({
        "name": f"bench-{mode}-p{p}-s{seed}",
        "dataset": {"name": "mmoe_synthetic", "options": {
            "correlation": p, "n_tasks": 2, "n_samples": 1500, "input_dim": 32, "noise": 1.0}},
        "sharing": {"name": mode},
        "weighting": {"name": "manual"},
        "model": {"hidden": [64, 64]},
        "optimizer": {"name": "adam", "lr": 0.003},
        "steps": steps, "batch_size": 64, "eval_every": steps, "log_every": 50,
        "seed": seed, "device": "cpu", "interference": False,
    })


def run(modes: list[str], seeds: int, steps: int) -> dict[tuple[str, float], list[tuple[float, float]]]:
    """(mode, p) -> [(mean test MSE over tasks, Δm %) per seed]."""
    cache = MemoryBaselineCache()
    cells: dict[tuple[str, float], list[tuple[float, float]]] = {}
    for p in CORRELATIONS:
        for seed in range(seeds):
            cfg0 = config_for(modes[0], p, seed, steps)
            data = load_dataset(cfg0.dataset.name, cfg0.dataset.options, seed=seed)
            for mode in modes:
                t0 = time.perf_counter()
                result = run_experiment(config_for(mode, p, seed, steps), baseline_cache=cache, dataset=data)
                mse = statistics.fmean(row["mtl"] for row in result["tasks"])
                cells.setdefault((mode, p), []).append((mse, result["delta_m"]))
                print(f"p={p:+.1f} seed={seed} {mode:<12} mse={mse:.4f} Δm={result['delta_m']:+.2f}% "
                      f"params={result['parameters']['mtl']['total']} ({time.perf_counter() - t0:.1f}s)",
                      file=sys.stderr, flush=True)
    return cells


def markdown_table(cells: dict[tuple[str, float], list[tuple[float, float]]], modes: list[str]) -> str:
    lines = ["| mode | " + " | ".join(f"p = {p:g}" for p in CORRELATIONS) + " |",
             "|---|" + "---|" * len(CORRELATIONS)]
    for mode in modes:
        row = []
        for p in CORRELATIONS:
            runs = cells[(mode, p)]
            mse = statistics.fmean(r[0] for r in runs)
            dm = statistics.fmean(r[1] for r in runs)
            row.append(f"{mse:.3f} ({dm:+.1f} %)")
        lines.append(f"| {mode} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="150 steps, one seed (smoke run)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default 3; 1 with --quick)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default 600; 150 with --quick)")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--csv", default=None, help="also write every (mode, p, seed) result here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    steps = args.steps or (150 if args.quick else 600)
    seeds = args.seeds or (1 if args.quick else 3)
    t0 = time.perf_counter()
    cells = run(args.modes, seeds, steps)
    print(f"\nmmoe_synthetic, 2 tasks, {seeds} seed(s), {steps} steps; cell = mean test MSE over tasks "
          f"(Δm % vs single-task baselines), averaged over seeds; {time.perf_counter() - t0:.0f} s\n")
    print(markdown_table(cells, args.modes))
    if args.csv:
        import pandas as pd

        pd.DataFrame(
            [{"mode": m, "p": p, "seed": s, "mse": mse, "delta_m": dm}
             for (m, p), runs in cells.items() for s, (mse, dm) in enumerate(runs)]
        ).to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
