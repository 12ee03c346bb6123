"""Samples/s on the CPU and on a CUDA GPU: the quickstart and a large config, mixed
precision (amp off / auto / bf16), torch.compile off / on, and ensembles of K models.

    python bench/gpu.py [--quick] [--threads 1] [--ks 1,4,16,64,256]

Rows:
- quickstart: examples/quickstart.yaml (MLP 32→64→64, 2 regression heads, batch 64);
- large: the same data widened (input 256, MLP 256→1024→1024→1024, 4 heads, batch 1024);
- ensemble K: K quickstart models trained as one (mtl_core.ensemble, members differing
  in seed and loss weights); samples/s counts every member's samples.
Clock: time.perf_counter over the training window (`train_seconds`: evaluation and the
compile warm-up excluded), the median of --repeats runs with [min–max]. The CPU uses
--threads intra-op threads. Where there is no CUDA GPU its rows are skipped with the
reason; `auto` is off on the CPU (the bf16 rows show why: without bf16 instructions the
CPU emulates it, 2× slower on the quickstart and ~20× on the large config). --quick:
fewer steps and repeats, and on the CPU neither compile nor bf16 on the large config
(each takes minutes there), so that the table runs in about two minutes on a 2-core CPU.
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


def quickstart(steps: int, device: str, **fields) -> ExperimentConfig:
    data = ExperimentConfig.from_file(ROOT / "examples" / "quickstart.yaml").to_dict()
    data.update(steps=steps, eval_every=steps, interference=False, baselines=False, device=device, **fields)
    return ExperimentConfig.parse(data)


def large(steps: int, device: str, **fields) -> ExperimentConfig:
    data = quickstart(steps, device, **fields).to_dict()
    data["dataset"]["options"].update(input_dim=256, n_tasks=4, n_samples=20_000)
    data.update(model={"hidden": [1024, 1024, 1024]}, batch_size=1024, weights={})
    return ExperimentConfig.parse(data)


def timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up: allocator, kernels, compilation caches
    return [fn() for _ in range(repeats)]


def engine_rate(config: ExperimentConfig, dataset) -> float:
    result = train(config, dataset)
    return config.steps * config.batch_size / result.train_seconds


def ensemble_rate(config: ExperimentConfig, dataset, k: int) -> float:
    members = [Member(phase=f"m{j}", seed=j, tasks=("y1", "y2"), weights=(1.0 + 0.1 * j, 1.0)) for j in range(k)]
    result = train_ensemble(config, dataset, members)
    return k * config.steps * config.batch_size / result.train_seconds


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values):>12,.0f} [{min(values):,.0f}–{max(values):,.0f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--ks", default="1,4,16,64,256")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    repeats = args.repeats or (2 if args.quick else 5)
    small_steps, large_steps = (60, 8) if args.quick else (400, 60)
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print(f"torch {torch.__version__}, CPU threads {args.threads}, clock time.perf_counter (training window), "
          f"median of {repeats} [min–max], samples/s")
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
        print(f"CUDA: {torch.cuda.get_device_name(0)}, bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}")
    else:
        print("CUDA: skipped — torch.cuda.is_available() is False (no GPU, or a CPU-only torch build)")
    ks = [int(k) for k in args.ks.split(",")]
    print(f"\n{'config':<34} {'device':<6} {'samples/s':>30}")
    data_cache: dict[tuple, object] = {}

    def dataset(config: ExperimentConfig):
        key = tuple(sorted(config.dataset.options.items()))
        if key not in data_cache:
            data_cache[key] = load_dataset(config.dataset.name, config.dataset.options, seed=config.seed)
        return data_cache[key]

    for device in devices:
        rows: list[tuple[str, ExperimentConfig]] = []
        for name, build, steps in (("quickstart", quickstart, small_steps), ("large", large, large_steps)):
            for amp in ("off", "auto", "bf16"):
                if args.quick and device == "cpu" and name == "large" and amp == "bf16":
                    continue  # bf16 matmuls without CPU support are emulated: ~20× slower, minutes
                rows.append((f"{name}, amp {amp}", build(steps, device, amp=amp)))
            if not (args.quick and name == "large" and device == "cpu"):
                rows.append((f"{name}, amp auto, compile", build(steps, device, amp="auto", compile=True)))
        for label, config in rows:
            t0 = time.perf_counter()
            rates = timed(lambda c=config: engine_rate(c, dataset(c)), repeats)
            print(f"{label:<34} {device:<6} {fmt(rates)}   ({time.perf_counter() - t0:.0f} s)", flush=True)
        for k in ks:
            config = quickstart(small_steps if k <= 64 or not args.quick else small_steps // 2, device)
            rates = timed(lambda c=config, k=k: ensemble_rate(c, dataset(c), k), repeats)
            print(f"{f'ensemble K={k} (quickstart)':<34} {device:<6} {fmt(rates)}", flush=True)
        if args.quick and device == "cpu":
            for label, why in (("large, amp bf16", "bf16 is emulated on this CPU: minutes"),
                               ("large, amp auto, compile", "compiling takes ~40 s")):
                print(f"{label:<34} {device:<6} skipped with --quick ({why})")


if __name__ == "__main__":
    main()
