"""The quickstart's wall time under contention: the engine's thread budget vs torch's default.

Issue 11: torch's default (one intra-op thread per core) makes every parallel region wait
for a descheduled thread when other busy processes share the machine. This runs the
quickstart as a user does, `python -m mtl_core run --config examples/quickstart.yaml
--quiet` in a subprocess with a fresh MTL_LAB_HOME (so the single-task baselines train
every time, no cache), in four situations:

    alone        nothing else of ours running
    +1 busy      beside one CPU-bound single-thread torch process (matmuls, set_num_threads(1))
    +2 busy      beside two of them
    2 runs       two quickstart runs started together (each one's time is a sample)

each with `threads=auto` (the engine's budget, mtl_core.threads) and `threads=torch`
(torch's default left untouched: what the product did before issue 11), interleaved,
`--repeats` times. The clock is time.perf_counter() around each subprocess: import of
torch and mtl_core, data, baselines, multi-task model and the results, all that a user
waits for. OMP_NUM_THREADS / MKL_NUM_THREADS are removed from the runs' environment, so
that `torch` means torch's own default. The competitors set torch.set_num_threads(1).

Goals (issue 11), for `auto`: +2 busy ≤ 2× the idle median, 2 runs ≤ 2.2× each, no
case worse than 3×.

    python bench/contention.py [--repeats 3] [--settings auto torch] [--set steps=300 ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "quickstart.yaml"
CASES = ("alone", "+1 busy", "+2 busy", "2 runs")
GOALS = {"+2 busy": 2.0, "2 runs": 2.2}  # × the idle median; every case ≤ 3×
WORST = 3.0

COMPETITOR = """
import torch
torch.set_num_threads(1)
a = torch.randn(256, 256)
print("ready", flush=True)
while True:
    a = torch.tanh(a @ a * 0.01)
"""


def _env(home: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    if home is not None:
        env["MTL_LAB_HOME"] = home
    return env


def start_competitors(n: int) -> list[subprocess.Popen]:
    procs = []
    for _ in range(n):
        proc = subprocess.Popen([sys.executable, "-c", COMPETITOR], stdout=subprocess.PIPE, text=True, env=_env())
        procs.append(proc)
    for proc in procs:  # busy before the timed run starts, not still importing torch
        line = proc.stdout.readline() if proc.stdout else ""
        if line.strip() != "ready":
            stop(procs)
            raise RuntimeError("a competitor process did not start")
    return procs


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_run(setting: str, overrides: list[str], home: str) -> tuple[subprocess.Popen, float]:
    cmd = [sys.executable, "-m", "mtl_core", "run", "--config", str(CONFIG), "--quiet", "--set", f"threads={setting}"]
    for item in overrides:
        cmd += ["--set", item]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(home), cwd=ROOT)
    return proc, t0


def finish(proc: subprocess.Popen, t0: float) -> tuple[float, str]:
    out, err = proc.communicate()
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"the quickstart run failed (exit {proc.returncode}): {err.strip()[-500:]}")
    threads = next((line for line in out.splitlines() if line.startswith("threads:")), "threads: ?")
    return seconds, threads


def measure(case: str, setting: str, overrides: list[str]) -> tuple[list[float], str]:
    """Wall seconds of the quickstart run(s) in `case`, and the threads line it printed."""
    competitors = start_competitors({"+1 busy": 1, "+2 busy": 2}.get(case, 0))
    try:
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            homes = [a, b] if case == "2 runs" else [a]
            started = [start_run(setting, overrides, home) for home in homes]
            results = [finish(proc, t0) for proc, t0 in started]
    finally:
        stop(competitors)
    return [s for s, _ in results], results[0][1]


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "load average: %.2f, %.2f, %.2f" % os.getloadavg()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--settings", nargs="+", default=["auto", "torch"], help="threads values to compare")
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra config overrides")
    args = p.parse_args(argv)

    import torch

    print(f"uptime at start: {uptime()}")
    print(f"usable cores: {len(os.sched_getaffinity(0))}; torch {torch.__version__}, "
          f"default intra-op threads here: {torch.get_num_threads()} (OMP_NUM_THREADS removed for the runs)")
    print(f"clock: time.perf_counter() around each `python -m mtl_core run` subprocess; {args.repeats} repeats, "
          "cases and settings interleaved\n")
    times: dict[tuple[str, str], list[float]] = {}
    chosen: dict[tuple[str, str], str] = {}
    for rep in range(args.repeats):
        for case in args.cases:
            for setting in args.settings:
                seconds, threads = measure(case, setting, args.set)
                times.setdefault((case, setting), []).extend(seconds)
                chosen[(case, setting)] = threads
                print(f"  repeat {rep + 1}: {case:<8} threads={setting:<5} "
                      f"{', '.join(f'{s:.1f} s' for s in seconds)}  [{threads}]", flush=True)

    print(f"\nuptime at end: {uptime()}\n")
    # × idle: vs the idle median of the same setting (the goals); × auto idle: vs the idle
    # median with the engine's budget, which shows what torch's default costs even alone.
    auto_idle = times.get(("alone", "auto"))
    ref = statistics.median(auto_idle) if auto_idle else float("nan")
    header = (f"{'case':<9} {'threads':<7} {'n':>2} {'median s':>9} {'min–max s':>13} {'× idle':>7} "
              f"{'× auto idle':>11}  goal        chosen")
    print(header)
    print("-" * len(header))
    worst_auto = 0.0
    for case in args.cases:
        for setting in args.settings:
            samples = times[(case, setting)]
            idle = times.get(("alone", setting))
            med = statistics.median(samples)
            ratio = med / statistics.median(idle) if idle else float("nan")
            goal = GOALS.get(case, WORST if case != "alone" else None)
            mark = ""
            if setting == "auto" and goal is not None:
                worst_auto = max(worst_auto, ratio)
                mark = f"≤{goal:g}× {'ok' if ratio <= goal else 'MISSED'}"
            print(f"{case:<9} {setting:<7} {len(samples):>2} {med:>9.1f} "
                  f"{min(samples):>6.1f}–{max(samples):<6.1f} {ratio:>6.2f}× {med / ref:>10.2f}×  {mark:<11} "
                  f"{chosen[(case, setting)].removeprefix('threads: ')}")
    if "auto" in args.settings and "alone" in args.cases and len(args.cases) > 1:
        print(f"\nworst auto case: {worst_auto:.2f}× its idle median (goal ≤ {WORST:g}×)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
