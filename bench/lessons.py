"""Do the Learn page's lessons tell the truth, and how long does a student wait? (issue 15)

    python bench/lessons.py [--seeds 5] [--lessons 1,2,3] [--clicks 3] [--skip-truth] [--skip-clicks]

1. Truth: for each lesson, its experiment (and its "try this" variant) at seeds 0..N-1,
   trained in this process (`train_in_process`: `run_experiment` with fresh baselines each
   seed, or `run_transfer` for a transfer lesson): the verdict that
   answers the lesson's question per seed (`dashboard.lessons.measured`: the engine's
   verdict with its 95 % interval), whether the claim holds (`claim_holds`: the stated
   outcome in a strict majority of seeds, every other seed "no clear difference"), and the
   training time per seed.
2. Click → answer: what a student waits for on the Learn page, measured as the page does
   it: `jobs.start` of the lesson's config (seed 0) in a fresh run store, forked from the
   fork server the dashboard keeps (`jobs.keep_warm`), ready, until the run has ended
   and its result is read and its verdict computed. Median and spread over --clicks.

One thread (OMP_NUM_THREADS=1, torch.set_num_threads(1)); clock: time.perf_counter. The
machine's load (os.getloadavg) is printed beside each figure: on a busy machine the
times are longer.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # first: bench/dashboard.py must not shadow the dashboard package

import torch  # noqa: E402

from dashboard.lessons import (  # noqa: E402
    Lesson,
    claim_holds,
    measured,
    shipped_lessons,
    train_in_process,
    with_seed,
)

torch.set_num_threads(1)


def load() -> str:
    return "load {:.1f}/{:.1f}/{:.1f}".format(*os.getloadavg())


def truth(lesson: Lesson, seeds: int, *, try_this: bool) -> dict:
    expect = lesson.expect
    if try_this:
        expect = expect.model_copy(update={"verdict": lesson.try_this.expect or expect.verdict})
    outcomes, values, times = [], [], []
    for seed in range(seeds):
        config = with_seed(lesson.config(try_this=try_this), seed)
        t0 = time.perf_counter()
        result = train_in_process(config)
        times.append(time.perf_counter() - t0)
        m = measured(lesson, result, expect=expect)
        outcomes.append(m["verdict"])
        values.append(m["value"])
    stated = not try_this or lesson.try_this.expect is not None  # a knob may state no outcome
    return {"lesson": lesson.number, "variant": "try" if try_this else "main",
            "change": lesson.try_this.override if try_this else "", "measure": expect.measure,
            "claim": expect.verdict if stated else "(none stated)", "outcomes": outcomes, "values": values,
            "seconds": times, "holds": claim_holds(expect.verdict, outcomes) if stated else None, "load": load()}


def click_to_answer(lesson: Lesson, clicks: int) -> dict:
    """Seconds from Run to a computed verdict, a fresh store each time (no cached run)."""
    from mtl_core import jobs
    from mtl_core.store import RunStore

    jobs.keep_warm(True)
    while not jobs.fork_server_ready():  # its imports done, as between a student's visits
        time.sleep(0.2)
    times = []
    for _ in range(clicks):
        with tempfile.TemporaryDirectory(prefix="mtl_lesson_bench_") as home:
            db = Path(home) / "mtl_lab.db"
            t0 = time.perf_counter()
            run_id = jobs.start(lesson.config(), store_path=db)
            status = jobs.wait(run_id, timeout=300, store_path=db, poll_s=0.1)
            with RunStore(db) as store:
                result = store.result(run_id)
            m = measured(lesson, result)
            times.append(time.perf_counter() - t0)
            assert status == "finished", (lesson.number, status)
            assert m["value"] is not None, lesson.number
    jobs.keep_warm(False)
    return {"lesson": lesson.number, "median_s": statistics.median(times),
            "min_s": min(times), "max_s": max(times), "n": len(times), "budget_s": lesson.budget_s, "load": load()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--lessons", default="", help="comma-separated lesson numbers (default: all)")
    parser.add_argument("--clicks", type=int, default=3)
    parser.add_argument("--skip-truth", action="store_true")
    parser.add_argument("--skip-clicks", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the tables here")
    args = parser.parse_args()
    wanted = {int(n) for n in args.lessons.split(",") if n.strip()}
    lessons = [l for l in shipped_lessons() if not wanted or l.number in wanted]
    for lesson in [l for l in lessons if not l.available()]:
        print(f"lesson {lesson.number} skipped: it needs `{lesson.install_hint}`", file=sys.stderr)
    lessons = [l for l in lessons if l.available()]
    out: dict = {"truth": [], "clicks": []}
    if not args.skip_truth:
        print(f"## Truth table ({args.seeds} seeds, one thread)")
        print("lesson | variant | measure | claim | outcome per seed | value per seed | holds | s per seed (median) | load")
        for lesson in lessons:
            for try_this in (False, True):
                row = truth(lesson, args.seeds, try_this=try_this)
                out["truth"].append(row)
                values = ", ".join("—" if v is None else f"{v:+.2f}" for v in row["values"])
                print(f"{row['lesson']} | {row['variant']} {row['change']} | {row['measure']} | {row['claim']} | "
                      f"{', '.join(str(o) for o in row['outcomes'])} | {values} | "
                      f"{ {True: 'yes', False: 'NO', None: 'n/a'}[row['holds']]} | {statistics.median(row['seconds']):.1f} "
                      f"({min(row['seconds']):.1f}–{max(row['seconds']):.1f}) | {row['load']}", flush=True)
    if not args.skip_clicks:
        print(f"\n## Click → answer ({args.clicks} clicks each, warm fork server, fresh store)")
        print("lesson | median s | min–max s | goal s | load")
        for lesson in lessons:
            row = click_to_answer(lesson, args.clicks)
            out["clicks"].append(row)
            print(f"{row['lesson']} | {row['median_s']:.1f} | {row['min_s']:.1f}–{row['max_s']:.1f} | "
                  f"≤ {row['budget_s']:g} | {row['load']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
