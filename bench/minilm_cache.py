"""What the frozen-MiniLM feature cache saves (issue 16 item 2): `python bench/minilm_cache.py`.

A frozen MiniLM (`model.text_encoder: minilm_frozen`, the `text` extra) is a fixed
feature extractor, so `MiniLMEncoder` keeps each sentence's features and a later batch
that holds the sentence reads them instead of running MiniLM again. This bench trains the
same multi-task run on `toy_language` (hard sharing, the trainable shared layer on top,
no baselines) with the cache as shipped and with the cache turned off (its byte budget
set to 0, so every batch runs MiniLM: the cost before the cache existed), and prints the
wall time of each (time.perf_counter around `run_experiment`, data and model built
inside), median and spread over --repeats, one thread, the machine's load beside it.

    python bench/minilm_cache.py [--steps 300] [--repeats 3]
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


def config(steps: int, seed: int) -> ExperimentConfig:
    return ExperimentConfig.model_validate({
        "dataset": {"name": "toy_language"}, "model": {"text_encoder": "minilm_frozen"},
        "steps": steps, "eval_every": max(50, steps // 4), "baselines": False, "seed": seed,
        "device": "cpu", "threads": 1,
    })


def timed(steps: int, seed: int, cached: bool) -> tuple[float, int]:
    """Wall seconds of one run, and how many sentences the cache held at its end."""
    built: list[pretrained.MiniLMEncoder] = []
    init = pretrained.MiniLMEncoder.__init__

    def spy(self, *args, **kwargs):
        init(self, *args, **kwargs)
        if not cached:
            self.cache_bytes = 0
        built.append(self)

    pretrained.MiniLMEncoder.__init__ = spy
    try:
        t0 = time.perf_counter()
        run_experiment(config(steps, seed))
        return time.perf_counter() - t0, sum(len(e._cache) for e in built)
    finally:
        pretrained.MiniLMEncoder.__init__ = init


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if not pretrained.minilm_available():
        raise SystemExit(f"the text extra is not installed: {pretrained.INSTALL_HINT}")
    torch.set_num_threads(1)
    timed(10, 0, True)  # warm-up: MiniLM's weights and tokenizer loaded once per process
    print(f"frozen MiniLM on toy_language, {args.steps} steps, one thread; load {os.getloadavg()}")
    for cached in (False, True):
        runs = [timed(args.steps, seed, cached) for seed in range(args.repeats)]
        times = [t for t, _ in runs]
        print(f"  cache {'on ' if cached else 'off'}: median {statistics.median(times):6.1f} s "
              f"[{min(times):.1f}-{max(times):.1f}] over {len(times)} runs "
              f"(sentences cached at the end: {runs[-1][1]}); load {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
