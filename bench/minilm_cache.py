"""What the frozen-MiniLM feature cache saves (issue 16 item 2): `python bench/minilm_cache.py`.

A frozen MiniLM (`model.text_encoder: minilm_frozen`, the `text` extra) is a fixed
feature extractor, so `MiniLMEncoder` keeps each sentence's features and a later batch
that holds the sentence reads them instead of running MiniLM again. This bench trains the
same run on `toy_language` (hard sharing, the trainable shared layer on top; with
--baselines also its two single-task baselines, tasks pos and topic) three ways: the cache
turned off (its byte budget set to 0, so every batch runs MiniLM: the cost before the cache
existed), a cache per model (each encoder its own: before the cache was shared), and the
cache as shipped (shared by every encoder that still has the pretrained weights). Prints
the wall time of each (time.perf_counter around `run_experiment`, data and models built
inside, shared features cleared first), median and spread over --repeats, one thread, the
machine's load beside it.

    python bench/minilm_cache.py [--steps 300] [--repeats 3] [--baselines] [--modes off,own,shared]
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

from mtl_core.config import ExperimentConfig  # noqa: E402
from mtl_core.experiment import run_experiment  # noqa: E402
from mtl_core.models import pretrained  # noqa: E402


def config(steps: int, seed: int, baselines: bool) -> ExperimentConfig:
    return ExperimentConfig.model_validate({
        "dataset": {"name": "toy_language"}, "tasks": ["pos", "topic"], "model": {"text_encoder": "minilm_frozen"},
        "steps": steps, "eval_every": max(50, steps // 4), "baselines": baselines, "seed": seed,
        "device": "cpu", "threads": 1,
    })


def timed(steps: int, seed: int, mode: str, baselines: bool) -> tuple[float, int]:
    """Wall seconds of one run, and how many feature rows its caches held at its end (a shared
    cache counted once)."""
    built: list[pretrained.MiniLMEncoder] = []
    init = pretrained.MiniLMEncoder.__init__

    def spy(self, *args, **kwargs):
        init(self, *args, **kwargs)
        if mode == "off":
            self.cache_bytes = 0
        elif mode == "own":
            self._pristine = False  # features of its own, as before they were shared
        built.append(self)

    pretrained.MiniLMEncoder.__init__ = spy
    pretrained.clear_shared_features()
    try:
        t0 = time.perf_counter()
        run_experiment(config(steps, seed, baselines))
        return time.perf_counter() - t0, sum(len(c) for c in {id(e._cache): e._cache for e in built}.values())
    finally:
        pretrained.MiniLMEncoder.__init__ = init


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baselines", action="store_true", help="train the two single-task baselines too")
    ap.add_argument("--modes", default="off,own,shared")
    args = ap.parse_args()
    if not pretrained.minilm_available():
        raise SystemExit(f"the text extra is not installed: {pretrained.INSTALL_HINT}")
    torch.set_num_threads(1)
    timed(10, 0, "shared", False)  # warm-up: MiniLM's weights and tokenizer loaded once per process
    print(f"frozen MiniLM on toy_language (pos, topic), {args.steps} steps, "
          f"{'with' if args.baselines else 'no'} baselines, one thread; load {os.getloadavg()}")
    for mode in args.modes.split(","):
        runs = [timed(args.steps, seed, mode, args.baselines) for seed in range(args.repeats)]
        times = [t for t, _ in runs]
        print(f"  cache {mode:6s}: median {statistics.median(times):6.1f} s "
              f"[{min(times):.1f}-{max(times):.1f}] over {len(times)} runs "
              f"(feature rows held at the end: {runs[-1][1]}); load {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
