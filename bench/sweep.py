"""Sweep executors (mtl_core.executors) vs separate runs, on the quickstart.

Workloads (each in a fresh run store, so every measurement trains its baselines once):
- `weights`: the 9-point 2-task weight sweep of examples/sweep.yaml's simplex (resolution 8,
  w_y1 + w_y2 = 2) on examples/quickstart.yaml (600 steps), with each executor, beside
  9 separate `mtl-lab run`s (one after another, as a user would; the first trains the
  baselines, the rest read them from the cache) and one `mtl-lab run`. Goal (issue 14):
  `batched` ≤ 2× one run.
- `simplex3`: a 3-task quickstart (n_tasks 3) over the 21-point simplex of resolution 5.
- `seeds`: the same 9 weights × seeds 0, 1, 2 (27 points): `batched` trains them as one
  ensemble of 27 members, each seed on its own draw of the data (before: three ensembles,
  one per seed), `local` as 27 worker processes.
- `ray`: the Ray executor's overhead per point: N tiny points (5 steps, no baselines, one
  worker) through Ray vs the same points trained in this process; Ray's start-up apart.

Clock: time.perf_counter around the whole command / call (process start, imports, data,
baselines, training, evaluation, store writes). One thread per process (OMP_NUM_THREADS=1,
the engine's own choice for these models). Each figure is the median over --repeats with
the spread [min-max]; the machine's load (uptime) is printed first and last.

    python bench/sweep.py [--repeats 3] [--only weights,simplex3,seeds,ray] [--executors local,batched,ray] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
QUICKSTART = ROOT / "examples" / "quickstart.yaml"


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ, MTL_LAB_HOME=str(home), OMP_NUM_THREADS="1", MTL_LAB_WARM_WORKER="0")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def _timed(cmd: list[str], home: Path) -> float:
    t = time.perf_counter()
    done = subprocess.run(cmd, env=_env(home), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[2:])} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    print(f"  {' '.join(cmd[3:5] + cmd[-4:])[:90]:<90} {seconds:6.1f} s", flush=True)
    return seconds


def _fresh() -> Path:
    return Path(tempfile.mkdtemp(prefix="mtl-bench-sweep-"))


def _fmt(values: list[float]) -> str:
    return f"{statistics.median(values):7.1f} s [{min(values):.1f}-{max(values):.1f}]"


def _sweep_file(folder: Path, body: dict) -> Path:
    path = folder / "sweep.json"
    path.write_text(json.dumps(body))
    return path


def bench_weights(repeats: int, executors: list[str], workers: int) -> dict[str, list[float]]:
    cli = [sys.executable, "-m", "mtl_core"]
    times: dict[str, list[float]] = {}
    for _ in range(repeats):
        home = _fresh()
        times.setdefault("1 × mtl-lab run", []).append(_timed([*cli, "run", "-q", "--config", str(QUICKSTART)], home))
        shutil.rmtree(home)
        home = _fresh()
        t = 0.0
        for k in range(9):
            w1 = 2.0 * (8 - k) / 8
            t += _timed([*cli, "run", "-q", "--config", str(QUICKSTART), "--set", f"weights.y1={w1}",
                         "--set", f"weights.y2={2.0 - w1}"], home)
        times.setdefault("9 × mtl-lab run", []).append(t)
        shutil.rmtree(home)
        for ex in executors:
            home = _fresh()
            f = _sweep_file(home, {"base": str(QUICKSTART), "axes": {"weights": {"simplex": 8}}})
            times.setdefault(f"sweep --executor {ex}", []).append(
                _timed([*cli, "sweep", "-q", "--config", str(f), "--executor", ex, "--workers", str(workers)], home))
            shutil.rmtree(home)
    return times


def bench_sweeps(label: str, body: dict, repeats: int, executors: list[str], workers: int) -> dict[str, list[float]]:
    """`mtl-lab sweep` of the sweep file `body` with each executor, each in a fresh store."""
    cli = [sys.executable, "-m", "mtl_core"]
    times: dict[str, list[float]] = {}
    for _ in range(repeats):
        for ex in executors:
            home = _fresh()
            f = _sweep_file(home, body)
            times.setdefault(f"{label} --executor {ex}", []).append(
                _timed([*cli, "sweep", "-q", "--config", str(f), "--executor", ex, "--workers", str(workers)], home))
            shutil.rmtree(home)
    return times


SIMPLEX3 = {"base": str(QUICKSTART), "set": {"dataset.options.n_tasks": 3, "weights": {}},
            "axes": {"weights": {"simplex": 5}}}
SEEDS = {"base": str(QUICKSTART), "axes": {"weights": {"simplex": 8}, "seed": [0, 1, 2]}}


def bench_ray(repeats: int, points: int) -> dict[str, list[float]]:
    import ray

    from mtl_core.executors import run_sweep
    from mtl_core.experiment import run_experiment
    from mtl_core.store import RunStore
    from mtl_core.sweep import SweepConfig, create_sweep, expand

    config = SweepConfig.parse({"base": str(QUICKSTART), "set": {"steps": 5, "eval_every": 5, "baselines": False},
                                "axes": {"seed": list(range(points))}})
    times: dict[str, list[float]] = {}
    t = time.perf_counter()
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    times["ray.init (local, 1 CPU)"] = [time.perf_counter() - t]
    try:
        # Warm-up, untimed: this process's first training (lazy imports) and Ray's first worker.
        run_experiment(expand(config)[0].config)
        home = _fresh()
        with RunStore(home / "mtl_lab.db") as store:
            sid = create_sweep(store, config, executor="ray")
        t = time.perf_counter()
        run_sweep(sid, executor="ray", workers=1, store_path=home / "mtl_lab.db")
        times["first Ray sweep (worker start-up)"] = [time.perf_counter() - t]
        shutil.rmtree(home)
        for _ in range(repeats):
            t = time.perf_counter()
            for p in expand(config):
                run_experiment(p.config)
            local = (time.perf_counter() - t) / points
            home = _fresh()
            with RunStore(home / "mtl_lab.db") as store:
                sid = create_sweep(store, config, executor="ray")
            t = time.perf_counter()
            run_sweep(sid, executor="ray", workers=1, store_path=home / "mtl_lab.db")
            via_ray = (time.perf_counter() - t) / points
            shutil.rmtree(home)
            times.setdefault("per point in this process", []).append(local)
            times.setdefault("per point through Ray", []).append(via_ray)
            times.setdefault("Ray overhead per point", []).append(via_ray - local)
    finally:
        ray.shutdown()
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default="weights,simplex3,ray")
    ap.add_argument("--executors", default="local,batched,ray")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--ray-points", type=int, default=8)
    args = ap.parse_args()
    only = args.only.split(",")
    executors = args.executors.split(",")
    print("uptime:", _uptime())
    print(f"cores: {os.cpu_count()}, workers: {args.workers}, repeats: {args.repeats}")
    results: dict[str, list[float]] = {}
    if "weights" in only:
        results.update(bench_weights(args.repeats, executors, args.workers))
    not_ray = [e for e in executors if e != "ray"]
    if "simplex3" in only:
        results.update(bench_sweeps("21-point 3-task sweep", SIMPLEX3, args.repeats, not_ray, args.workers))
    if "seeds" in only:
        results.update(bench_sweeps("27-point 9 weights × 3 seeds", SEEDS, args.repeats, not_ray, args.workers))
    if "ray" in only:
        results.update(bench_ray(args.repeats, args.ray_points))
    for name, values in results.items():
        if "per point" in name:
            print(f"{name:<40} {statistics.median(values) * 1000:8.1f} ms [{min(values) * 1000:.1f}-{max(values) * 1000:.1f}]")
        else:
            print(f"{name:<40} {_fmt(values)}")
    if "1 × mtl-lab run" in results:
        one = statistics.median(results["1 × mtl-lab run"])
        for name, values in results.items():
            if name.startswith("sweep"):
                print(f"{name:<40} = {statistics.median(values) / one:.2f} × one run")
    print("uptime:", _uptime())


if __name__ == "__main__":
    main()
