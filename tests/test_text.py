"""The text pipeline importers share (`mtl_core.tasks.text`): words, vocabulary, word ids."""

from __future__ import annotations

import numpy as np
import pytest

from mtl_core.tasks.base import PAD_ID, UNK_ID
from mtl_core.tasks.csv_import import from_csv
from mtl_core.tasks.text import PAD_TOKEN, UNK_TOKEN, build_vocabulary, default_max_len, token_ids, tokenise


def test_tokenise_splits_at_runs_of_whitespace_and_keeps_case_and_punctuation():
    assert tokenise("  The cat\tsat,\n on  it. ") == ["The", "cat", "sat,", "on", "it."]
    assert tokenise("") == [] and tokenise(" \t ") == []


def test_vocabulary_is_pad_unk_then_count_descending_then_alphabetical():
    vocab = build_vocabulary([["b", "a", "b"], ["c", "a", "b"], ["d"]])
    assert vocab == [PAD_TOKEN, UNK_TOKEN, "b", "a", "c", "d"]
    assert vocab.index(PAD_TOKEN) == PAD_ID == 0 and vocab.index(UNK_TOKEN) == UNK_ID == 1


def test_vocabulary_min_freq_keeps_words_seen_often_enough():
    lists = [["b", "a", "b"], ["c", "a", "b"], ["d"]]
    assert build_vocabulary(lists, min_freq=2) == [PAD_TOKEN, UNK_TOKEN, "b", "a"]
    assert build_vocabulary(lists, min_freq=4) == [PAD_TOKEN, UNK_TOKEN]
    assert build_vocabulary(iter(lists)) == build_vocabulary(lists)  # a generator is fine
    with pytest.raises(ValueError, match="min_freq: 0 must be at least 1"):
        build_vocabulary(lists, min_freq=0)


def test_token_ids_pad_cut_and_map_unknown_words_to_unk():
    vocab = [PAD_TOKEN, UNK_TOKEN, "b", "a"]
    x = token_ids([["a", "b", "zebra", "a"], ["b"], []], vocab, max_len=3)
    assert x.dtype == np.int64 and x.shape == (3, 3)
    assert x.tolist() == [[3, 2, UNK_ID], [2, PAD_ID, PAD_ID], [PAD_ID] * 3]
    assert token_ids([["a"]], vocab, max_len=0).shape == (1, 0)


def test_the_csv_text_column_goes_through_the_shared_pipeline(tmp_path):
    words = ["red fox", "blue fox runs", "red", "green fox fox", "blue sky"] * 4
    rows = "\n".join(f"{text},{'xy'[i % 2]}" for i, text in enumerate(words))
    path = tmp_path / "t.csv"
    path.write_text(f"text,label\n{rows}\n", encoding="utf-8")
    ds = from_csv(path, targets=["label"], text_column="text", seed=3)
    train_rows = ds.info["split_rows"]["train"]
    assert ds.vocab[:2] == [PAD_TOKEN, UNK_TOKEN] and len(ds.train) == train_rows
    # Re-derive the training sentences from the ids, then rebuild vocabulary and ids.
    sentences = [[ds.vocab[i] for i in row if i != PAD_ID] for row in ds.train.x.tolist()]
    # CSV defaults: min_freq 2, padded length from the training lengths (tasks.text).
    assert build_vocabulary(sentences, min_freq=2) == ds.vocab
    assert ds.info["max_len"] == default_max_len([len(s) for s in sentences]) == ds.train.x.shape[1]
    assert np.array_equal(token_ids(sentences, ds.vocab, ds.info["max_len"]), ds.train.x.numpy())
