"""The text pipeline every importer of sentences shares: words, a vocabulary, word ids.

Kept apart from any file format so that the CSV importer's free-text column and other
importers (e.g. CoNLL-U) turn words into the same ids the same way: `<pad>` = 0 and
`<unk>` = 1 (`tasks.base.PAD_ID` / `UNK_ID`), then the training words by count,
most frequent first, ties alphabetical, so the same training rows always give the same ids.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from mtl_core.tasks.base import PAD_ID, UNK_ID

PAD_TOKEN, UNK_TOKEN = "<pad>", "<unk>"
MAX_TOKENS = 64  # token inputs are padded (or cut) to min(longest training sentence, MAX_TOKENS)


def tokenise(text: str) -> list[str]:
    """The words of `text`: split at runs of whitespace (no lower-casing, punctuation kept)."""
    return text.split()


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
