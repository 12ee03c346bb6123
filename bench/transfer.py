"""The transfer table of issue 7: target metric per arm (frozen / fine-tuned / scratch)
× number of labelled target examples, on `examples/transfer.yaml` (toy_language,
sources ner, topic, sentiment, question → target pos).

    python bench/transfer.py [--config examples/transfer.yaml] [--encoder minilm]
                             [--seeds 1] [--json OUT] [--set key=value ...]

--encoder gru|cnn|transformer: the from-scratch text encoder pre-trained on the sources.
--encoder minilm: all-MiniLM-L6-v2 (the `text` extra) as the encoder. By default it is
kept frozen while the source heads pre-train ("minilm_frozen": MiniLM's own
pre-training replaces the source pre-training, and its features are cached), so the arms
read: frozen = MiniLM features + new head, finetune = MiniLM fine-tuned on the target,
scratch = a randomly initialised transformer of MiniLM's size. --pretrain-finetune also
fine-tunes MiniLM on the sources first (about 1 s per step of 32 sentences on 2 CPU
cores). With MiniLM the learning rate defaults to 3e-4 (1e-3 and above wreck pretrained
weights) and the fractions to the small ones, where the arms differ.

Every model uses the same seed, budget and optimiser; --seeds N repeats the whole
experiment with seeds 0 … N−1 and reports mean ± std per cell.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

from mtl_core.config import apply_overrides
from mtl_core.transfer import TransferConfig, format_transfer, run_transfer, transfer_table

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(ROOT / "examples" / "transfer.yaml"))
    p.add_argument("--encoder", choices=["gru", "cnn", "transformer", "minilm"], default=None,
                   help="text encoder (default: the config's)")
    p.add_argument("--pretrain-finetune", action="store_true",
                   help="with --encoder minilm: fine-tune MiniLM on the sources too")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--json", metavar="OUT", help="write every seed's results here")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    data = yaml.safe_load(Path(args.config).read_text())
    if args.encoder == "minilm":
        from mtl_core.models.pretrained import INSTALL_HINT, minilm_available

        if not minilm_available():
            print(f"--encoder minilm: the text extra is not installed: {INSTALL_HINT}", file=sys.stderr)
            return 2
        data["base"]["model"]["text_encoder"] = "minilm" if args.pretrain_finetune else "minilm_frozen"
        data["base"]["optimizer"]["lr"] = 3e-4
        data["fractions"] = [0.004, 0.01, 0.05]
        data["base"]["steps"] = 100  # only the source heads learn while MiniLM is frozen
        data["base"]["eval_every"] = 1000  # evaluating a fine-tuned MiniLM costs seconds
    elif args.encoder:
        data["base"]["model"]["text_encoder"] = args.encoder
    data = apply_overrides(data, args.set)

    results, tables = [], []
    for seed in range(args.seeds):
        config = TransferConfig.parse({**data, "base": {**data["base"], "seed": data["base"].get("seed", 0) + seed}})
        t0 = time.perf_counter()
        result = run_transfer(config)
        result["wall_seconds"] = time.perf_counter() - t0
        results.append(result)
        tables.append(transfer_table(result))
        print(f"seed {config.base.seed}: {result['wall_seconds']:.0f} s, encoder {result['encoder']} "
              f"({result['parameters']['encoder']:,} parameters), {torch.get_num_threads()} threads")
        print(format_transfer(result), "\n", flush=True)
    if args.seeds > 1:
        stacked = pd.concat(tables)
        mean = stacked.groupby(level=[0, 1], sort=False).mean()
        std = stacked.groupby(level=[0, 1], sort=False).std()
        print(f"mean ± std over {args.seeds} seeds ({results[0]['metric']})")
        print((mean.map(lambda v: f"{v:.3f}") + " ± " + std.map(lambda v: f"{v:.3f}")).to_string())
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
