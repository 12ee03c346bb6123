"""What checkpoint selection and noise-aware verdicts change on the quickstart (issue 12).

    python bench/selection.py [--seeds 5] [--sweep-seeds 3] [--skip-sweep] [--skip-cost]

1. Δm at `selection: best_val` vs `last`, seeds 0..N-1, at correlation 0.9, 0 and −0.9
   (examples/quickstart.yaml otherwise): per seed Δm with its 95 % interval over test
   examples, the verdict; then the mean over seeds with the seed-level t interval, and how
   often a single seed's verdict agrees with the N-seed verdict.
2. The weight sweep w_y2 / w_y1 ∈ {¼, ½, 1, 2, 4} (w_y1 = 1), 3 seeds, both rules: mean
   test MSE of each task — the task whose weight grows should not get worse.
3. The cost of selection: time per evaluation of copying the weights on improvement
   (the state-dict clone), for the quickstart model and a wider one, vs the evaluation itself.

One thread; clock: time.perf_counter.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from mtl_core.config import ExperimentConfig
from mtl_core.engine import evaluate
from mtl_core.experiment import MemoryBaselineCache, run_experiment
from mtl_core.models import build_model
from mtl_core.significance import t_interval
from mtl_core.tasks import load_dataset

QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "quickstart.yaml"


def run(overrides: list[str], cache: MemoryBaselineCache) -> dict:
    cfg = ExperimentConfig.from_file(QUICKSTART, ["interference=false", *overrides])
    return run_experiment(cfg, baseline_cache=cache)


def delta_m_table(seeds: int) -> None:
    print(f"1. Δm % of the quickstart, seeds 0-{seeds - 1} (95 % interval over test examples per seed)")
    for corr in (0.9, 0.0, -0.9):
        for rule in ("best_val", "last"):
            cache = MemoryBaselineCache()
            dms, verdicts, cells = [], [], []
            for seed in range(seeds):
                r = run([f"dataset.options.correlation={corr}", f"seed={seed}", f"selection={rule}"], cache)
                iv = r["delta_m_interval"]
                dms.append(r["delta_m"])
                verdicts.append(r["delta_m_verdict"])
                cells.append(f"{r['delta_m']:+5.1f} [{iv['low']:+5.1f},{iv['high']:+5.1f}]")
            mean, low, high = t_interval(dms)
            overall = "helped" if low > 0 else "hurt" if high < 0 else "no clear difference"
            agree = sum(v == overall for v in verdicts)
            print(f"  p={corr:+.1f} {rule:8s} mean {mean:+5.1f} % (t 95 % [{low:+5.1f}, {high:+5.1f}]) -> "
                  f"{overall:19s} single seeds agreeing: {agree}/{seeds}")
            print("      per seed: " + " · ".join(cells))


def sweep(seeds: int) -> None:
    print(f"2. weight sweep, mean test MSE over seeds 0-{seeds - 1} (w_y1 = 1)")
    for rule in ("best_val", "last"):
        cache = MemoryBaselineCache()
        for w in (0.25, 0.5, 1.0, 2.0, 4.0):
            mse = {"y1": [], "y2": []}
            for seed in range(seeds):
                r = run([f"weights.y2={w}", f"seed={seed}", f"selection={rule}"], cache)
                for row in r["tasks"]:
                    mse[row["name"]].append(row["mtl"])
            print(f"  {rule:8s} w_y2/w_y1 = {w:4.2f}: y1 {statistics.mean(mse['y1']):.3f}  "
                  f"y2 {statistics.mean(mse['y2']):.3f}")


def copy_cost(repeats: int = 200) -> None:
    print("3. cost of keeping the best weights (state-dict clone) vs one validation evaluation")
    for hidden in ([64, 64], [512, 512]):
        cfg = ExperimentConfig.from_file(QUICKSTART, [f"model.hidden={hidden}"])
        ds = load_dataset(cfg.dataset.name, cfg.dataset.options, seed=0)
        model = build_model("hard", ds, ds.task_names, cfg.model, {})
        times = {"copy": [], "eval": []}
        for _ in range(repeats):
            t0 = time.perf_counter()
            {k: v.detach().clone() for k, v in model.state_dict().items()}
            times["copy"].append(time.perf_counter() - t0)
        for _ in range(max(20, repeats // 10)):
            t0 = time.perf_counter()
            evaluate(model, ds.val, ds)
            times["eval"].append(time.perf_counter() - t0)
        n = sum(p.numel() for p in model.parameters())
        c, e = statistics.median(times["copy"]) * 1e3, statistics.median(times["eval"]) * 1e3
        print(f"  hidden {hidden}: {n:,} parameters: copy {c:.3f} ms (max {max(times['copy']) * 1e3:.3f}), "
              f"validation evaluation {e:.2f} ms -> {100 * c / e:.1f} % of an evaluation")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--sweep-seeds", type=int, default=3)
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--skip-cost", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    delta_m_table(args.seeds)
    if not args.skip_sweep:
        sweep(args.sweep_seeds)
    if not args.skip_cost:
        copy_cost()


if __name__ == "__main__":
    main()
