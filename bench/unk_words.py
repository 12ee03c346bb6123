"""Known vs unknown words: per-token tagging accuracy before/after `min_freq` and word
dropout (issue 16, item 1).

    python bench/unk_words.py [--seeds 3] [--epochs 12]

A CSV made here: 1,200 sentences of a tag hidden Markov model (`TRANSITIONS`) whose
words are drawn Zipf-like (Zipf, 1935) from open classes of 3,000 nouns, 1,500 verbs,
1,000 adjectives and 300 adverbs (some forms both noun and verb), so that, as in real text, many test words never occur in training and
their tag must come from context. The CSV importer's text pipeline and the project's GRU
encoder (`build_encoder`), a linear tag head, Adam, one thread. Test words are grouped by
their training count (0 = unseen, 1 = seen once, >= 2), the same groups in every
configuration: "before" (min_freq 1, no word dropout: `<unk>` never trained), min_freq 2,
(the CSV defaults) and min_freq 2 + word dropout 0.1. Median over seeds; `uptime` beside.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mtl_core.models.encoders import build_encoder
from mtl_core.spec import ModelSpec
from mtl_core.tasks.base import IGNORE_INDEX, PAD_ID
from mtl_core.tasks.csv_import import from_csv

CONFIGS = {
    "before (min_freq 1, no word dropout)": {"min_freq": 1, "word_dropout": 0.0},
    "min_freq 2 (default)": {"min_freq": 2, "word_dropout": 0.0},
    "min_freq 2 + word dropout 0.1": {"min_freq": 2, "word_dropout": 0.1},
}


# A hidden Markov model of tags (Rabiner, 1989): each tag emits a word of its own class,
# and the next tag depends on this one, so a word's context says something, not all, of its tag.
TRANSITIONS = {
    "START": {"DET": 0.6, "NOUN": 0.2, "ADV": 0.2},
    "DET": {"ADJ": 0.35, "NOUN": 0.65},
    "ADJ": {"ADJ": 0.2, "NOUN": 0.8},
    "NOUN": {"VERB": 0.5, "ADP": 0.25, "END": 0.25},
    "VERB": {"DET": 0.35, "NOUN": 0.2, "ADV": 0.2, "ADP": 0.15, "END": 0.1},
    "ADP": {"DET": 0.7, "NOUN": 0.3},
    "ADV": {"VERB": 0.5, "ADJ": 0.2, "END": 0.3},
}
OPEN = {"NOUN": 3000, "VERB": 1500, "ADJ": 1000, "ADV": 300}
CLOSED = {"DET": ["the", "a", "this", "every"], "ADP": ["on", "in", "with", "under", "near"]}


def make_csv(path: Path, n: int = 1200, seed: int = 0) -> None:
    """`n` sentences of the tag HMM; open-class words drawn with p(k-th word) ∝ 1/k.
    A fifth of the nouns are also verbs (the same form), as "run" or "walk" are."""
    rng = np.random.default_rng(seed)
    lex = {c: [f"{c.lower()}{i}" for i in range(k)] for c, k in OPEN.items()}
    lex["VERB"][: len(lex["VERB"]) // 5] = lex["NOUN"][: len(lex["VERB"]) // 5]

    def word(tag: str) -> str:
        if tag in CLOSED:
            return str(rng.choice(CLOSED[tag]))
        words = lex[tag]
        p = 1.0 / np.arange(1, len(words) + 1)
        return words[rng.choice(len(words), p=p / p.sum())]

    rows = []
    while len(rows) < n:
        tags, tag = [], "START"
        while True:
            nxt = TRANSITIONS[tag]
            tag = str(rng.choice(list(nxt), p=list(nxt.values())))
            if tag == "END" or len(tags) == 30:
                break
            tags.append(tag)
        if len(tags) >= 2:
            rows.append((" ".join(word(t) for t in tags), " ".join(tags)))
    path.write_text("text,tags\n" + "\n".join(f"{a},{b}" for a, b in rows) + "\n", encoding="utf-8")


def run(path: Path, options: dict, seed: int, epochs: int) -> dict[str, float]:
    ds = from_csv(path, targets={"tags": "tagging"}, text_column="text", seed=0, **options)
    torch.manual_seed(seed)
    enc = build_encoder(ds, ModelSpec(hidden=[64], embed_dim=32, text_encoder="gru"))
    head = nn.Linear(enc.out_dim, ds.tasks["tags"].num_classes)
    opt = torch.optim.Adam([*enc.parameters(), *head.parameters()], lr=3e-3)
    x, y = ds.train.x, ds.train.y["tags"]
    for _ in range(epochs):
        enc.train()
        for idx in torch.randperm(len(x)).split(32):
            loss = nn.functional.cross_entropy(
                head(enc(x[idx])).flatten(0, 1), y[idx].flatten(), ignore_index=IGNORE_INDEX
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
    enc.eval()
    with torch.no_grad():
        pred = head(enc(ds.test.x)).argmax(-1)
    # Group test words by their count among the training words (independent of the vocabulary).
    tokens = [line.split(",")[0].split() for line in path.read_text().splitlines()[1:]]
    train_rows = from_csv(path, targets={"tags": "tagging"}, text_column="text", seed=0, min_freq=1, max_len=512)
    counts: Counter = Counter()
    for row in train_rows.train.x.tolist():
        counts.update(train_rows.vocab[i] for i in row if i != PAD_ID)
    test_words = _test_words(tokens)
    ok = (pred == ds.test.y["tags"])
    groups: dict[str, list[bool]] = {"unseen": [], "seen once": [], "seen 2+": [], "all": []}
    for r, words in enumerate(test_words):
        for j, w in enumerate(words[: ds.test.x.shape[1]]):
            c = counts[w]
            g = "unseen" if c == 0 else "seen once" if c == 1 else "seen 2+"
            groups[g].append(bool(ok[r, j]))
            groups["all"].append(bool(ok[r, j]))
    return {g: (float(np.mean(v)) if v else float("nan")) for g, v in groups.items()} | {
        "n_" + g: len(v) for g, v in groups.items()
    }


def _test_words(tokens: list[list[str]]) -> list[list[str]]:
    """The test rows' words, in the split's order (the random split sorts row indices)."""
    from mtl_core.tasks.base import split_indices

    test = split_indices(len(tokens), seed=0)[2]
    return [tokens[i] for i in test]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--only", nargs="*", help="configurations whose name starts with one of these")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "grammar.csv"
        make_csv(path)
        for name, options in CONFIGS.items():
            if args.only and not any(name.startswith(o) for o in args.only):
                continue
            t0 = time.perf_counter()
            results = [run(path, options, s, args.epochs) for s in range(args.seeds)]
            wall = time.perf_counter() - t0
            med = {g: statistics.median(r[g] for r in results) for g in ("unseen", "seen once", "seen 2+", "all")}
            spread = {g: max(r[g] for r in results) - min(r[g] for r in results) for g in med}
            ns = {g: results[0]["n_" + g] for g in med}
            print(f"{name}: " + "; ".join(
                f"{g} {med[g]:.3f} (spread {spread[g]:.3f}, n={ns[g]})" for g in med
            ) + f"; {wall:.0f} s for {args.seeds} seeds; load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
