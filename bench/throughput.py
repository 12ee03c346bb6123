"""Engine throughput vs a plain PyTorch loop on the reference workload.

Reference workload (issue 2): x ~ N(0, I_64), 8,192 training samples, encoder MLP
64→256→256 (ReLU), three regression heads (MSE), batch 256, Adam; our engine with
`hard` sharing and equal weights. Both loops run in this process with one thread,
alternating, and the median of the repeats is reported.

    python bench/throughput.py [--steps 640] [--repeats 5] [--store]

--store also times the engine with the run store attached (StoreSink writing every
logging step to a temporary SQLite file): the logging overhead of issue 3.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from torch import nn

from mtl_core.config import ExperimentConfig
from mtl_core.engine import train
from mtl_core.tasks.base import MTLDataset, Split, TaskSpec

N_TRAIN, DIM, TASKS, BATCH = 8192, 64, ("a", "b", "c"), 256


def reference_dataset(seed: int = 0) -> MTLDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N_TRAIN + 512, DIM, generator=g)
    w = torch.randn(DIM, len(TASKS), generator=g)
    y = x @ w + 0.1 * torch.randn(len(x), len(TASKS), generator=g)

    def split(sl: slice) -> Split:
        return Split(x[sl], {t: y[sl, i].contiguous() for i, t in enumerate(TASKS)})

    return MTLDataset(
        name="reference", input_kind="vector", tasks={t: TaskSpec(t, "regression") for t in TASKS},
        train=split(slice(0, N_TRAIN)), val=split(slice(N_TRAIN, N_TRAIN + 256)),
        test=split(slice(N_TRAIN + 256, None)), input_dim=DIM,
    )


def engine_config(steps: int) -> ExperimentConfig:
    return ExperimentConfig.parse({
        "sharing": {"name": "hard"}, "weighting": {"name": "equal"},
        "model": {"hidden": [256, 256]}, "optimizer": {"name": "adam", "lr": 1e-3},
        "steps": steps, "batch_size": BATCH, "eval_every": steps, "log_every": 10,
        "interference": False, "baselines": False, "device": "cpu",
    })


def engine_samples_per_s(ds: MTLDataset, steps: int, sink=None) -> float:
    t0 = time.perf_counter()
    train(engine_config(steps), ds, sink)
    # Whole-call wall time minus the one final evaluation is what a user waits for;
    # report the engine's own figure too, but compare like with like: wall time.
    return steps * BATCH / (time.perf_counter() - t0)


def plain_samples_per_s(ds: MTLDataset, steps: int) -> float:
    """The same model, data and optimiser in a textbook loop (no logging, no checks)."""
    t0 = time.perf_counter()
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(DIM, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU())
    heads = nn.ModuleList(nn.Linear(256, 1) for _ in TASKS)
    opt = torch.optim.Adam([*enc.parameters(), *heads.parameters()], lr=1e-3)
    x, ys = ds.train.x, [ds.train.y[t] for t in TASKS]
    g = torch.Generator().manual_seed(0)
    perm, pos = torch.randperm(N_TRAIN, generator=g), 0
    for _ in range(steps):
        if pos + BATCH > N_TRAIN:
            perm, pos = torch.randperm(N_TRAIN, generator=g), 0
        idx = perm[pos : pos + BATCH]
        pos += BATCH
        z = enc(x[idx])
        loss = sum(nn.functional.mse_loss(h(z).squeeze(-1), y[idx]) for h, y in zip(heads, ys))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():  # the engine evaluates once at the end; so does this loop
        zv = enc(ds.test.x)
        _ = [h(zv) for h in heads]
    return steps * BATCH / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=640)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--store", action="store_true", help="also time the engine with the run store attached")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ds = reference_dataset()
    engine_samples_per_s(ds, 50)  # warm-up (allocator, kernels)
    plain_samples_per_s(ds, 50)
    eng, plain, stored = [], [], []
    for _ in range(args.repeats):
        plain.append(plain_samples_per_s(ds, args.steps))
        eng.append(engine_samples_per_s(ds, args.steps))
        if args.store:
            from mtl_core.store import RunStore, StoreSink

            with tempfile.TemporaryDirectory() as tmp, RunStore(f"{tmp}/bench.db") as store:
                run_id = store.create_run(engine_config(args.steps).to_dict())
                stored.append(engine_samples_per_s(ds, args.steps, StoreSink(store, run_id)))
    e, p = statistics.median(eng), statistics.median(plain)
    print(f"reference workload: {N_TRAIN} samples, MLP {DIM}-256-256, {len(TASKS)} MSE heads, "
          f"batch {BATCH}, Adam, {args.steps} steps, 1 thread, median of {args.repeats}")
    print(f"plain PyTorch loop : {p:10,.0f} samples/s")
    print(f"MTL Lab engine     : {e:10,.0f} samples/s   ratio {e / p:.3f} (goal ≥ 0.95)")
    if stored:
        s = statistics.median(stored)
        print(f"engine + run store : {s:10,.0f} samples/s   vs engine {s / e:.3f} "
              f"(slow-down {100 * (1 - s / e):.1f} %, goal ≤ 5 %)")


if __name__ == "__main__":
    main()
