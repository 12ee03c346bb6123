"""The built-in treebank `ud_english_atis`: load time, trivial baselines, STL vs MTL (issue 16).

    python bench/treebank.py [--seeds 3] [--steps 600] [--batch-size 64] [--repeats 5] [--skip-train] [--encoder gru]
    python bench/treebank.py --skip-load --from-json RESULT.json   # the table of a stored run's result

1. Load time (time.perf_counter, one thread): the first load in a process (parsing the
   three gzip files) and a second load (parsed files kept in memory), median and spread
   over `--repeats` fresh processes; `uptime` load beside it.
2. Test-split baselines per task, from the training split alone: "majority" (the most
   frequent class or tag) and, for tagging, "per-word lookup" (each training word's most
   frequent tag, an unseen word the majority tag; every training word its own entry).
3. A quickstart-like run (hard sharing, equal weights, `--steps` steps, batch `--batch-size`,
   selection best_val, threads auto, Adam lr 3e-3 or 1e-4 when fine-tuning MiniLM, seeds
   0..N-1): per task STL and MTL mean ± std over
   seeds, Δ % and the verdict; Δm; wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LOAD_SNIPPET = """
import json, time
t0 = time.perf_counter()
from mtl_core.tasks import load_dataset
t1 = time.perf_counter()
load_dataset("ud_english_atis", seed=0)
t2 = time.perf_counter()
load_dataset("ud_english_atis", seed=1)
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "first": t2 - t1, "second": t3 - t2}))
"""


def load() -> str:
    return os.getloadavg().__repr__()


def load_times(repeats: int) -> None:
    rows = []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", LOAD_SNIPPET], cwd=ROOT, env=env, capture_output=True,
                             text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"1. load time over {repeats} processes (load average {load()})")
    for key in ("import", "first", "second"):
        v = [r[key] for r in rows]
        print(f"   {key:>7}: median {statistics.median(v):.2f} s  (min {min(v):.2f}, max {max(v):.2f})")


def baselines() -> dict[str, dict[str, float]]:
    """Majority and per-word lookup on the test split, fitted on the training split."""
    from mtl_core.tasks import IGNORE_INDEX, load_dataset

    ds = load_dataset("ud_english_atis", {"min_freq": 1}, seed=0)  # every training word its own id
    out: dict[str, dict[str, float]] = {}
    for name, spec in ds.tasks.items():
        y_train, y_test = ds.train.y[name].numpy(), ds.test.y[name].numpy()
        if spec.kind == "tagging":
            x_train, x_test = ds.train.x.numpy(), ds.test.x.numpy()
            mask_tr, mask_te = y_train != IGNORE_INDEX, y_test != IGNORE_INDEX
            majority = Counter(y_train[mask_tr].tolist()).most_common(1)[0][0]
            per_word: dict[int, Counter] = defaultdict(Counter)
            for w, t in zip(x_train[mask_tr].tolist(), y_train[mask_tr].tolist()):
                per_word[w][t] += 1
            lookup = {w: c.most_common(1)[0][0] for w, c in per_word.items()}
            gold = y_test[mask_te]
            guess = np.array([lookup.get(w, majority) for w in x_test[mask_te].tolist()])
            out[name] = {"majority": float((gold == majority).mean()), "lookup": float((gold == guess).mean())}
        else:
            majority = Counter(y_train[y_train != IGNORE_INDEX].tolist()).most_common(1)[0][0]
            gold = y_test[y_test != IGNORE_INDEX]
            out[name] = {"majority": float((gold == majority).mean())}
    print(f"2. baselines on the test split (fitted on train; load average {load()})")
    for name, v in out.items():
        cells = "  ".join(f"{k} {x:.3f}" for k, x in v.items())
        print(f"   {name:>13}: {cells}")
    return out


def train(seeds: int, steps: int, encoder: str, base: dict[str, dict[str, float]], batch_size: int = 64) -> None:
    from mtl_core.config import ExperimentConfig
    from mtl_core.experiment import run_experiment
    from mtl_core.sink import Sink
    from mtl_core.threads import apply_budget

    class Progress(Sink):
        """Each model's test metrics as it ends (a slow machine still leaves numbers)."""

        def __init__(self) -> None:
            self.t0 = time.perf_counter()

        def on_eval(self, phase: str, step: int, split: str, metrics: dict[str, dict[str, float]]) -> None:
            if split == "test":
                cells = ", ".join(f"{t} {next(iter(m.values())):.3f}" for t, m in metrics.items())
                print(f"   [{time.perf_counter() - self.t0:6.0f} s] {phase} step {step}: {cells}", flush=True)

    config = ExperimentConfig.parse({
        "dataset": {"name": "ud_english_atis"},
        "sharing": {"name": "hard"}, "weighting": {"name": "manual"},
        "model": {"text_encoder": encoder}, "steps": steps, "batch_size": batch_size, "eval_every": 50,
        "n_seeds": seeds, "seed": 0, "threads": "auto", "interference": False,
        # Fine-tuning a pretrained encoder wants a small learning rate (mtl_core/models/pretrained.py).
        "optimizer": {"lr": 1e-4 if encoder == "minilm" else 3e-3},
    })
    choice = apply_budget(config)
    t0 = time.perf_counter()
    result = run_experiment(config, sink=Progress())
    wall = time.perf_counter() - t0
    print(f"3. {encoder} encoder, hard sharing, {steps} steps at batch {batch_size}, lr {config.optimizer.lr:g}, seeds 0-{seeds - 1}, "
          f"threads {choice.count} "
          f"({wall:.0f} s wall; load average {load()})")
    print_table(result, base, seeds)


def print_table(result: dict, base: dict[str, dict[str, float]], seeds: int) -> None:
    """Per task: majority, per-word lookup, STL and MTL (mean ± std over seeds), Δ % and the verdict; Δm."""
    print(f"   {'task':>13} {'metric':>15} {'majority':>8} {'lookup':>7} {'STL':>15} {'MTL':>15} {'Δ %':>7}  verdict")
    for row in result["tasks"]:
        b = base.get(row["name"], {})
        stl = f"{row['stl_mean']:.3f} ± {row['stl_std']:.3f}" if seeds > 1 else f"{row['stl']:.3f}"
        mtl = f"{row['mtl_mean']:.3f} ± {row['mtl_std']:.3f}" if seeds > 1 else f"{row['mtl']:.3f}"
        look = f"{b['lookup']:.3f}" if "lookup" in b else "—"
        print(f"   {row['name']:>13} {row['metric']:>15} {b.get('majority', float('nan')):>8.3f} {look:>7} "
              f"{stl:>15} {mtl:>15} {row['delta_pct']:>+7.2f}  {row.get('verdict', '')}")
    dm = result.get("delta_m_interval") or {}
    print(f"   Δm {result['delta_m']:+.2f} %  (95 % interval {dm.get('low', float('nan')):+.2f} to "
          f"{dm.get('high', float('nan')):+.2f}; {result.get('delta_m_verdict', '')})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--encoder", default="gru")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--from-json", metavar="PATH",
                    help="print the table of a stored result (`mtl-lab run --config ... --json PATH`) "
                         "instead of training; e.g. a long fine-tuning run trained in the background")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--skip-load", action="store_true")
    args = ap.parse_args()
    if not args.skip_load:
        load_times(args.repeats)
    base = baselines()
    if args.from_json:
        result = json.loads(Path(args.from_json).read_text())
        seeds = result.get("seeds") or [result.get("seed", 0)]
        print(f"3. {args.from_json}: seeds {', '.join(map(str, seeds))}")
        print_table(result, base, len(seeds))
    elif not args.skip_train:
        train(args.seeds, args.steps, args.encoder, base, args.batch_size)


if __name__ == "__main__":
    main()
