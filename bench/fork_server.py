"""What the fork server saves: `python bench/fork_server.py [--runs 5] [--repeats 3]`.

The same small runs (the Train page's default experiment, a new seed each, so no baseline is
cached) started one after another with `mtl_core.jobs.start`, each waited for to its end, in
two conditions taken in turns (ABAB…, so that the machine's drift falls on both):

- **cold**: `MTL_LAB_WARM_WORKER=0`, every run a fresh `python -m mtl_core.worker RUN_ID`
  (what `mtl-lab run --background` does, and what the dashboard did before the fork server);
- **forked**: `jobs.keep_warm()`, every run a child forked from one server that imported torch
  once (what the dashboard and a sweep's local executor do). The server is ready before the
  first run, as it is by a user's first click; its one-time import is reported apart.

Prints, per condition: start → finished per run (what a user waits for; median and range
over all runs), and the CPU seconds per run of the processes that trained it (from
`getrusage(RUSAGE_CHILDREN)`: every worker, and the server with its children, are reaped
before it is read). Clock: time.perf_counter; the load (os.getloadavg) is printed.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def stop_server(jobs) -> None:
    pid = jobs.fork_server_pid()
    jobs.keep_warm(False)
    while pid is not None and not gone(pid):
        time.sleep(0.05)
    time.sleep(0.3)  # its reaper thread collects it


def server_import_cpu() -> float:
    """CPU seconds of a fork server started, made ready and stopped with no run."""
    from mtl_core import jobs

    c0 = children_cpu()
    assert jobs.keep_warm()
    assert jobs.fork_server_ready(timeout=300), "the fork server did not get ready"
    stop_server(jobs)
    return children_cpu() - c0


def one_condition(mode: str, runs: int, seed0: int) -> dict:
    from mtl_core import jobs

    os.environ["MTL_LAB_WARM_WORKER"] = "0" if mode == "cold" else "1"
    with tempfile.TemporaryDirectory(prefix="mtl_fork_bench_") as home:
        os.environ["MTL_LAB_HOME"] = home
        server_cpu = server_import_cpu() if mode == "forked" else 0.0
        cpu0 = children_cpu()
        if mode == "forked":
            assert jobs.keep_warm() and jobs.fork_server_ready(timeout=300)
        waits = []
        for i in range(runs):
            t0 = time.perf_counter()
            run_id = jobs.start({"seed": seed0 + i})
            status = jobs.wait(run_id, timeout=600, poll_s=0.05)
            waits.append(time.perf_counter() - t0)
            assert status == "finished", (mode, status)
        for proc in list(jobs._CHILDREN.values()):
            proc.wait(60)
        if mode == "forked":
            stop_server(jobs)  # reaped with its children: their CPU is counted from here on
        cpu = children_cpu() - cpu0 - server_cpu  # the runs' own (its import measured apart)
    return {"waits": waits, "cpu_per_run": cpu / runs, "server_cpu": server_cpu if mode == "forked" else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per condition and repeat")
    parser.add_argument("--repeats", type=int, default=3, help="ABAB repeats of the two conditions")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(f"load {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    out: dict[str, list] = {"cold": [], "forked": []}
    seed = 1000
    for r in range(args.repeats):
        for mode in (("cold", "forked") if r % 2 == 0 else ("forked", "cold")):
            res = one_condition(mode, args.runs, seed)
            seed += args.runs
            out[mode].append(res)
            extra = "" if res["server_cpu"] is None else f", server's import {res['server_cpu']:.2f} CPU-s once"
            print(f"  repeat {r + 1} {mode:6s}: start -> finished "
                  f"{', '.join(f'{w:.2f}' for w in res['waits'])} s; {res['cpu_per_run']:.2f} CPU-s per run{extra} "
                  f"(load {os.getloadavg()[0]:.2f})", flush=True)
    print("\ncondition | start -> finished, median (range) s | CPU-s per run, median (range)")
    for mode, results in out.items():
        waits = [w for res in results for w in res["waits"]]
        cpus = [res["cpu_per_run"] for res in results]
        print(f"{mode} | {statistics.median(waits):.2f} ({min(waits):.2f}–{max(waits):.2f}) | "
              f"{statistics.median(cpus):.2f} ({min(cpus):.2f}–{max(cpus):.2f})")
    servers = [res["server_cpu"] for res in out["forked"]]
    print(f"the fork server's one-time import: {statistics.median(servers):.2f} CPU-s "
          f"({min(servers):.2f}–{max(servers):.2f})")


if __name__ == "__main__":
    main()
