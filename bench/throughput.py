"""Engine throughput vs a plain PyTorch loop on the reference workload.

Reference workload (issue 2): x ~ N(0, I_64), 8,192 training samples, encoder MLP
64→256→256 (ReLU), three regression heads (MSE), batch 256, Adam; our engine with
`hard` sharing and equal weights. Both loops run in this process with one thread and
evaluate once per epoch (32 steps), as the anchors (LibMTL, TorchJD) are measured.

Clock: time.perf_counter over the training window only: the sum of the epochs'
training time, evaluation excluded (the engine's own `TrainResult.train_seconds`, which
also leaves out evaluation but keeps its logging and finiteness checks). Each repeat is
one pair (plain loop, engine; the order alternates between repeats so that drift hits
both alike); the ratio engine time / plain time is taken per pair and reported as the
median with its spread [min–max], beside the ratio of the best times (contention only
ever adds time, so the best times are the estimate least disturbed by other processes).
Goal (issue 11): equal weighting ≤ 1.03× the plain loop. The whole call (building,
evaluation) is printed too, as samples/s.

    python bench/throughput.py [--steps 640] [--repeats 7] [--store]

--store also times the engine with the run store attached (StoreSink writing every
logging step to a temporary SQLite file): the logging overhead of issue 3.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time

import torch
from torch import nn

from mtl_core.config import ExperimentConfig
from mtl_core.engine import train
from mtl_core.tasks.base import MTLDataset, Split, TaskSpec

N_TRAIN, DIM, TASKS, BATCH = 8192, 64, ("a", "b", "c"), 256
STEPS_PER_EPOCH = N_TRAIN // BATCH


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


def engine_config(steps: int, eval_every: int | None = None) -> ExperimentConfig:
    """The reference run; `eval_every` None = one evaluation, at the end."""
    return ExperimentConfig.parse({
        "sharing": {"name": "hard"}, "weighting": {"name": "equal"},
        "model": {"hidden": [256, 256]}, "optimizer": {"name": "adam", "lr": 1e-3},
        "steps": steps, "batch_size": BATCH, "eval_every": eval_every or steps, "log_every": 10,
        "interference": False, "baselines": False, "device": "cpu", "threads": 1,
    })


def engine_run(ds: MTLDataset, steps: int, sink=None) -> tuple[float, float]:
    """(training-window seconds, whole-call seconds) of one engine run, evaluating every epoch."""
    t0 = time.perf_counter()
    result = train(engine_config(steps, STEPS_PER_EPOCH), ds, sink)
    return result.train_seconds, time.perf_counter() - t0


def plain_run(ds: MTLDataset, steps: int) -> tuple[float, float]:
    """The same model, data and optimiser in a textbook loop (no logging, no checks),
    evaluating on the validation split after every epoch; (training seconds, whole seconds)."""
    t_call = time.perf_counter()
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(DIM, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU())
    heads = nn.ModuleList(nn.Linear(256, 1) for _ in TASKS)
    opt = torch.optim.Adam([*enc.parameters(), *heads.parameters()], lr=1e-3)
    x, ys = ds.train.x, [ds.train.y[t] for t in TASKS]
    g = torch.Generator().manual_seed(0)
    perm, pos = torch.randperm(N_TRAIN, generator=g), 0
    trained, tick = 0.0, time.perf_counter()
    for step in range(1, steps + 1):
        if pos + BATCH > N_TRAIN:
            perm, pos = torch.randperm(N_TRAIN, generator=g), 0
        idx = perm[pos : pos + BATCH]
        pos += BATCH
        z = enc(x[idx])
        loss = sum(nn.functional.mse_loss(h(z).squeeze(-1), y[idx]) for h, y in zip(heads, ys))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % STEPS_PER_EPOCH == 0 or step == steps:
            trained += time.perf_counter() - tick
            with torch.no_grad():  # per-epoch validation, outside the training window
                zv = enc(ds.val.x)
                _ = [float(nn.functional.mse_loss(h(zv).squeeze(-1), ds.val.y[t])) for h, t in zip(heads, TASKS)]
            tick = time.perf_counter()
    with torch.no_grad():  # the engine evaluates on the test split at the end; so does this loop
        zv = enc(ds.test.x)
        _ = [h(zv) for h in heads]
    return trained, time.perf_counter() - t_call


def spread(values: list[float], fmt: str = ".3f") -> str:
    return f"{statistics.median(values):{fmt}} [{min(values):{fmt}}–{max(values):{fmt}}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=640)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--store", action="store_true", help="also time the engine with the run store attached")
    args = ap.parse_args()
    if args.repeats < 5:
        ap.error("--repeats: give at least 5 (the median of fewer pairs says little on a busy machine)")
    torch.set_num_threads(1)
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    ds = reference_dataset()
    engine_run(ds, 50)  # warm-up (allocator, kernels)
    plain_run(ds, 50)
    eng, plain, ratio, stored = [], [], [], []
    for r in range(args.repeats):
        if r % 2:
            e, p = engine_run(ds, args.steps), plain_run(ds, args.steps)
        else:
            p, e = plain_run(ds, args.steps), engine_run(ds, args.steps)
        eng.append(e)
        plain.append(p)
        ratio.append(e[0] / p[0])
        if args.store:
            from mtl_core.store import RunStore, StoreSink

            with tempfile.TemporaryDirectory() as tmp, RunStore(f"{tmp}/bench.db") as store:
                run_id = store.create_run(engine_config(args.steps, STEPS_PER_EPOCH).to_dict())
                stored.append(engine_run(ds, args.steps, StoreSink(store, run_id))[0])
    n = args.steps * BATCH
    print(f"reference workload: {N_TRAIN} samples, MLP {DIM}-256-256, {len(TASKS)} MSE heads, batch {BATCH}, "
          f"Adam, {args.steps} steps, evaluation every epoch ({STEPS_PER_EPOCH} steps), 1 thread, "
          f"{args.repeats} paired repeats, clock time.perf_counter")
    print("training window (evaluation excluded):")
    print(f"  plain PyTorch loop : {n / statistics.median([p[0] for p in plain]):10,.0f} samples/s   "
          f"{spread([p[0] for p in plain])} s")
    print(f"  MTL Lab engine (EW): {n / statistics.median([e[0] for e in eng]):10,.0f} samples/s   "
          f"{spread([e[0] for e in eng])} s")
    print(f"  engine / plain     : {spread(ratio)}× per pair (median [min–max]); "
          f"best times {min(e[0] for e in eng) / min(p[0] for p in plain):.3f}×   (goal ≤ 1.03×)")
    print("whole call (building, per-epoch evaluation, test):")
    print(f"  plain {n / statistics.median([p[1] for p in plain]):,.0f} samples/s, engine "
          f"{n / statistics.median([e[1] for e in eng]):,.0f} samples/s, "
          f"engine / plain {spread([e[1] / p[1] for e, p in zip(eng, plain)])}×")
    if stored:
        s, e = statistics.median(stored), statistics.median([x[0] for x in eng])
        print(f"engine + run store : training window {spread(stored)} s, vs engine {s / e:.3f} "
              f"(slow-down {100 * (s / e - 1):.1f} %, goal ≤ 5 %)")


if __name__ == "__main__":
    main()
