"""Cost of each weighting strategy on the reference workload, relative to `equal`.

Reference workload (`bench/throughput.py`): x ~ N(0, I_64), 8,192 training samples,
encoder MLP 64→256→256, three MSE regression heads, batch 256, Adam, `hard` sharing.
Each strategy trains with the engine in this process on one thread. Every run of a
strategy is paired with a run of `equal` just before it. Reported: samples/s (wall
clock, median over the repeats); the cost relative to `equal` as the median of the
paired ratios of CPU time (`time.process_time`: on a shared machine wall time also
counts the time other processes hold the core, CPU time only ours); and the ratio of the
best (smallest) CPU times, the estimate least disturbed by other processes, since
contention only ever adds time. Gradient methods run
in their default mode (per-task gradients on the shared parameters, except GradDrop,
whose paper works on the representation), and the representation mode is timed too
for the methods that have one. Goals (issue 6): ≤ 2.0× in parameter mode, ≤ 1.3× in
representation mode (MGDA-UB).

    python bench/weighting.py [--steps 300] [--repeats 3] [--only mgda,pcgrad] [--jacobian]

--jacobian also times the ways of computing the per-task gradient matrix G on the
shared parameters (one `autograd.grad` per task vs one batched vmap call).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import BATCH, N_TRAIN, TASKS, engine_config, reference_dataset  # noqa: E402

from mtl_core.config import ExperimentConfig  # noqa: E402
from mtl_core.engine import train  # noqa: E402
from mtl_core.weighting import WEIGHTING  # noqa: E402


def variants(only: set[str] | None) -> list[tuple[str, str, dict]]:
    """(label, strategy, options) for every registered strategy, plus rep-mode variants."""
    out = []
    for entry in WEIGHTING.entries():
        if only and entry.name not in only and entry.name != "equal":
            continue
        fields = entry.options.model_fields
        if "mode" in fields:
            default = fields["mode"].default
            out.append((f"{entry.name} ({default})", entry.name, {}))
            other = "params" if default == "rep" else "rep"
            out.append((f"{entry.name} ({other})", entry.name, {"mode": other}))
        else:
            out.append((entry.name, entry.name, {}))
    return out


def config_for(name: str, options: dict, steps: int) -> ExperimentConfig:
    data = engine_config(steps).to_dict()
    data["weighting"] = {"name": name, "options": options}
    return ExperimentConfig.parse(data)


def timed_run(ds, config: ExperimentConfig) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one training run."""
    w0, c0 = time.perf_counter(), time.process_time()
    train(config, ds)
    return time.perf_counter() - w0, time.process_time() - c0


def jacobian_timings(ds, repeats: int = 5, steps: int = 100) -> None:
    """Per-step time of computing G with a loop of autograd.grad calls vs one vmap call."""
    from torch.autograd.graph import GradientEdge

    from mtl_core.models import build_model
    from mtl_core.models.heads import task_loss

    config = engine_config(10)
    model = build_model("hard", ds, list(TASKS), config.model)
    shared = model.shared_parameters()
    eye = torch.eye(len(TASKS))
    x, ys = ds.train.x[:BATCH], [ds.train.y[t][:BATCH] for t in TASKS]

    def losses():
        out = model(x)
        return torch.stack([task_loss("regression", out[t], y, masked=False) for t, y in zip(TASKS, ys)])

    def loop_element():
        L = losses()
        return torch.stack([torch.cat([g.reshape(-1) for g in torch.autograd.grad(L[t], shared, retain_graph=True)])
                            for t in range(len(TASKS))])

    def loop_node():
        L = losses()
        one = torch.ones(())
        rows = []
        for node, nr in L.grad_fn.next_functions:
            g = torch.autograd.grad(GradientEdge(node, nr), shared, grad_outputs=one, retain_graph=True)
            rows.append(torch.cat([a.reshape(-1) for a in g]))
        return torch.stack(rows)

    def vmap_batched():
        L = losses()
        g = torch.autograd.grad(L, shared, grad_outputs=eye, is_grads_batched=True)
        return torch.cat([a.reshape(len(TASKS), -1) for a in g], 1)

    def plain_backward():
        model.zero_grad(set_to_none=True)
        losses().sum().backward()

    ref = loop_element()
    for f in (loop_node, vmap_batched):
        assert torch.allclose(f(), ref, atol=1e-5), f.__name__
    fns = [plain_backward, loop_element, loop_node, vmap_batched]
    times: dict[str, list[float]] = {f.__name__: [] for f in fns}
    for f in fns:
        for _ in range(10):
            f()
    for _ in range(repeats):
        for f in fns:
            t0 = time.perf_counter()
            for _ in range(steps):
                f()
            times[f.__name__].append((time.perf_counter() - t0) / steps * 1e3)
    print("\nper-task gradients G on the shared parameters (forward + G), ms per step, median:")
    base = statistics.median(times["plain_backward"])
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"  {name:16s} {m:7.3f} ms   ({m / base:.2f}× forward + one backward)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated strategy names (equal is always timed)")
    ap.add_argument("--jacobian", action="store_true", help="also time the ways of computing G")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ds = reference_dataset()
    only = {s.strip() for s in args.only.split(",") if s.strip()} or None
    runs = variants(only)
    configs = {label: config_for(name, opts, args.steps) for label, name, opts in runs}
    for _, name, opts in runs:  # warm-up: allocator, kernels, lazily built solver tables
        timed_run(ds, config_for(name, opts, 20))
    wall: dict[str, list[float]] = {label: [] for label in configs}
    cpu: dict[str, list[float]] = {label: [] for label in configs}
    ratio: dict[str, list[float]] = {label: [] for label in configs}
    for _ in range(args.repeats):
        for label, config in configs.items():
            w_eq, c_eq = timed_run(ds, configs["equal"])
            w, c = timed_run(ds, config)
            wall[label].append(w)
            cpu[label].append(c)
            ratio[label].append(c / c_eq)
    n = args.steps * BATCH
    eq_best = min(cpu["equal"])
    print(f"reference workload: {N_TRAIN} samples, MLP 64-256-256, {len(TASKS)} MSE heads, batch {BATCH}, Adam, "
          f"hard sharing, {args.steps} steps, 1 thread, {args.repeats} repeats")
    print(f"{'strategy':22s} {'samples/s':>10s} {'cost (median)':>14s} {'cost (best)':>12s}")
    for label, _, _ in runs:
        print(f"{label:22s} {n / statistics.median(wall[label]):10,.0f} {statistics.median(ratio[label]):13.2f}× "
              f"{min(cpu[label]) / eq_best:11.2f}×")
    if args.jacobian:
        jacobian_timings(ds)


if __name__ == "__main__":
    main()
