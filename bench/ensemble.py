"""Ensemble training (mtl_core.ensemble) vs K separate runs, on the quickstart model.

Workload: examples/quickstart.yaml (mmoe_synthetic, 2 regression tasks, 1,500 rows,
input 32, MLP 32→64→64, batch 64, Adam lr 0.003, hard sharing, manual weights), with
interference off and one evaluation at the end (evaluation is outside the timed window
anyway). Members differ in seed (so each draws its own batches) and loss weights.

Clock: time.perf_counter over the training window, exactly as the engine's
`train_seconds` (forward, losses, backward, optimiser step; logging and evaluation
excluded), divided by the steps. One thread (torch.set_num_threads(1)). Each figure is
the median over --repeats runs, with the spread as [min–max]. "K separate" is K × the
measured per-step time of one `engine.train` run; "vs 1 run" is the ensemble's step
time over one run's. The whole call (building, evaluation, logging) is printed
too, per step, for the ensemble and as K × one engine call. Goal (issue 11): 16 members ≤ 3× one run.

    python bench/ensemble.py [--steps 200] [--repeats 5] [--ks 1,4,16,64] [--impl batched,vmap] [--same-seed]

--same-seed: every member has seed 0 (the single-task baselines' case: shared batches).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from mtl_core.config import ExperimentConfig  # noqa: E402
from mtl_core.engine import train  # noqa: E402
from mtl_core.ensemble import Member, train_ensemble  # noqa: E402
from mtl_core.tasks import load_dataset  # noqa: E402


def quickstart_config(steps: int) -> ExperimentConfig:
    data = ExperimentConfig.from_file(ROOT / "examples" / "quickstart.yaml").to_dict()
    data.update(steps=steps, eval_every=steps, interference=False, baselines=False, device="cpu")
    return ExperimentConfig.parse(data)


def members(k: int, same_seed: bool) -> list[Member]:
    return [
        Member(phase=f"m{j}", seed=0 if same_seed else j, tasks=("y1", "y2"), weights=(1.0 + 0.1 * j, 1.0))
        for j in range(k)
    ]


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):8.3f} [{min(values):.3f}–{max(values):.3f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--ks", default="1,4,16,64")
    ap.add_argument("--impl", default="batched,vmap")
    ap.add_argument("--same-seed", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print(f"torch {torch.__version__}, threads 1, clock time.perf_counter, {args.steps} steps, "
          f"{args.repeats} repeats, {'one seed' if args.same_seed else 'one seed per member'}")
    config = quickstart_config(args.steps)
    dataset = load_dataset(config.dataset.name, config.dataset.options, seed=config.seed)
    ks = [int(k) for k in args.ks.split(",")]
    impls = args.impl.split(",")

    single: list[float] = []
    single_call: list[float] = []
    step_ms: dict[tuple[str, int], list[float]] = {(i, k): [] for i in impls for k in ks}
    call_ms: dict[tuple[str, int], list[float]] = {(i, k): [] for i in impls for k in ks}
    train(config, dataset)  # warm-up (allocator, kernels)
    for _ in range(args.repeats):  # interleaved, so a burst of load hits every column alike
        start = time.perf_counter()
        run = train(config, dataset)
        single_call.append((time.perf_counter() - start) / args.steps * 1e3)
        single.append(run.train_seconds / args.steps * 1e3)
        for impl in impls:
            for k in ks:
                start = time.perf_counter()
                result = train_ensemble(config, dataset, members(k, args.same_seed), impl=impl)
                call_ms[impl, k].append((time.perf_counter() - start) / args.steps * 1e3)
                step_ms[impl, k].append(result.train_seconds / args.steps * 1e3)

    one, one_call = statistics.median(single), statistics.median(single_call)
    print(f"\none run (engine.train): {summary(single)} ms/step; whole call {summary(single_call)} ms/step\n")
    print(f"{'impl':8} {'K':>3}  {'ensemble ms/step':>26}  {'K separate ms/step':>18}  {'vs 1 run':>8}  "
          f"{'vs K runs':>9}  {'whole call ms/step':>26}  {'K separate calls':>16}")
    for impl in impls:
        for k in ks:
            ens = statistics.median(step_ms[impl, k])
            print(f"{impl:8} {k:>3}  {summary(step_ms[impl, k]):>26}  {k * one:18.3f}  {ens / one:7.2f}×  "
                  f"{ens / (k * one):8.2f}×  {summary(call_ms[impl, k]):>26}  {k * one_call:16.3f}")


if __name__ == "__main__":
    main()
