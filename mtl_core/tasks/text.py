"""The text pipeline every importer of sentences shares: words, a vocabulary, word ids,
the padded length and what it cuts.

Kept apart from any file format so that the CSV importer's free-text column and other
importers (e.g. CoNLL-U) turn words into the same ids the same way: `<pad>` = 0 and
`<unk>` = 1 (`tasks.base.PAD_ID` / `UNK_ID`), then the training words by count,
most frequent first, ties alphabetical, so the same training rows always give the same ids.

Why a minimum frequency: with every training word in the vocabulary, `<unk>` never
occurs in training and its embedding stays at its random initial value, yet every
unseen test word reads as `<unk>`. Leaving out the words seen once (`min_freq=2`) puts
`<unk>` on the training rows where rare words stand, so it learns what an unknown word
looks like; word dropout (`models.encoders.word_dropout`, Iyyer et al., 2015) does the
same for frequent words during training.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from mtl_core.tasks.base import PAD_ID, UNK_ID

PAD_TOKEN, UNK_TOKEN = "<pad>", "<unk>"
MAX_TOKENS = 64  # the default padded length is at most this (a data-derived length below it)
MAX_TOKENS_ALLOWED = 512  # the largest padded length a user may ask for
LENGTH_PERCENTILE = 99.0  # default padded length: this percentile of the training lengths


def tokenise(text: str, *, lowercase: bool = False) -> list[str]:
    """The words of `text`: split at runs of whitespace, punctuation kept; lower-cased
    (str.lower) when `lowercase`, so that "The" and "the" share one id."""
    return (text.lower() if lowercase else text).split()


def build_vocabulary(token_lists: Iterable[Sequence[str]], *, min_freq: int = 1) -> list[str]:
    """`[<pad>, <unk>, words...]`: the words seen at least `min_freq` times, most frequent
    first, ties alphabetical. Build it from the training rows only, so that no word of the
    validation or test rows gets an id of its own (they read as `<unk>`)."""
    if min_freq < 1:
        raise ValueError(f"min_freq: {min_freq!r} must be at least 1")
    counts = Counter(w for words in token_lists for w in words)
    kept = [w for w, c in counts.items() if c >= min_freq]
    return [PAD_TOKEN, UNK_TOKEN] + sorted(kept, key=lambda w: (-counts[w], w))


def token_ids(token_lists: Sequence[Sequence[str]], vocab: Sequence[str], max_len: int) -> np.ndarray:
    """Word ids, one row per token list: int64 of shape (len(token_lists), max_len), cut at
    `max_len` words and padded with `PAD_ID`; a word not in `vocab` is `UNK_ID`."""
    if max_len < 0:
        raise ValueError(f"max_len: {max_len!r} must be 0 or more")
    index = {w: i for i, w in enumerate(vocab)}
    x = np.full((len(token_lists), max_len), PAD_ID, dtype=np.int64)
    for r, words in enumerate(token_lists):
        cut = list(words[:max_len])
        x[r, : len(cut)] = [index.get(w, UNK_ID) for w in cut]
    return x


def default_max_len(
    train_lengths: Sequence[int] | np.ndarray, *, percentile: float = LENGTH_PERCENTILE, cap: int = MAX_TOKENS
) -> int:
    """The padded length the training rows suggest: the `percentile`-th percentile of their
    word counts (rounded up, numpy's linear interpolation), at least 1, at most `cap`.

    Why not the longest: one very long training row would pad every batch to its length;
    at the 99th percentile about 1 % of the training rows are cut, and `truncation` says
    how many rows of each split were."""
    lengths = np.asarray(train_lengths, dtype=np.float64)
    if lengths.size == 0:
        raise ValueError("train_lengths: no training rows to take a length from")
    return int(min(cap, max(1, math.ceil(np.percentile(lengths, percentile)))))


# Where a padded length came from (`truncation(...)["source"]`).
SOURCE_OPTION = "option max_len"
SOURCE_PERCENTILE = f"{LENGTH_PERCENTILE:g}th percentile of training lengths"
SOURCE_LONGEST = "longest training sentence"


def truncation_text(cut: dict | None) -> str | None:
    """One line saying what cutting the texts cost, per split (None without a text input):
    `texts cut at 4 words (99th percentile of training lengths): 1 train, 1 val, 0 test row(s)
    lose 36, 5, 0 words`, or that nothing was cut."""
    if not isinstance(cut, dict) or "max_len" not in cut:
        return None
    rows, words = cut.get("rows_cut") or {}, cut.get("words_cut") or {}
    splits = [s for s in ("train", "val", "test") if s in rows]
    source = f" ({cut['source']})" if cut.get("source") else ""
    if not any(rows.values()):
        return f"texts padded to {cut['max_len']} words{source}: no row is cut"
    return (f"texts cut at {cut['max_len']} words{source}: "
            + ", ".join(f"{rows[s]} {s}" for s in splits) + " row(s) lose "
            + ", ".join(str(words.get(s, 0)) for s in splits) + " words (a cut word is neither seen nor scored)")


def truncation(lengths: Sequence[int] | np.ndarray, splits: dict[str, np.ndarray], max_len: int) -> dict:
    """What cutting at `max_len` words loses, per split: rows cut and words dropped.

    `{"max_len", "rows_cut": {split: n}, "words_cut": {split: n}, "longest": {split: n}}`;
    a tagging task loses the tags of the cut words (they are neither trained nor scored)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    out: dict = {"max_len": int(max_len), "rows_cut": {}, "words_cut": {}, "longest": {}}
    for name, rows in splits.items():
        part = lengths[np.asarray(rows, dtype=np.int64)]
        out["rows_cut"][name] = int((part > max_len).sum())
        out["words_cut"][name] = int(np.clip(part - max_len, 0, None).sum())
        out["longest"][name] = int(part.max(initial=0))
    return out
