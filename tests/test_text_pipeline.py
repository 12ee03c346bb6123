"""The text pipeline's training side: `<unk>` that learns (min_freq, word dropout),
lower-casing, a padded length taken from the data with its cuts reported, encoders that
ignore padding and apply `dropout` alike (issue 16, item 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mtl_core.errors import ConfigError
from mtl_core.models.encoders import TokenEncoder, build_encoder, word_dropout
from mtl_core.spec import ModelSpec
from mtl_core.tasks.base import PAD_ID, UNK_ID, load_dataset
from mtl_core.tasks.csv_import import from_csv
from mtl_core.tasks.text import MAX_TOKENS, default_max_len, tokenise, truncation

KINDS = ["gru", "cnn", "transformer"]


def write_csv(tmp_path: Path, texts: list[str], labels: list[str], parts: list[str] | None = None) -> Path:
    header = "text,label" + (",part" if parts else "")
    rows = [
        f"{t},{y}" + (f",{parts[i]}" if parts else "") for i, (t, y) in enumerate(zip(texts, labels))
    ]
    path = tmp_path / "t.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def rare_word_csv(tmp_path: Path) -> Path:
    """40 rows: frequent words plus one word per row seen nowhere else."""
    texts = [f"the {'red' if i % 2 else 'blue'} fox w{i}" for i in range(40)]
    return write_csv(tmp_path, texts, ["ab"[i % 2] for i in range(40)])


# --- text.py -------------------------------------------------------------------------------


def test_tokenise_lower_cases_only_when_asked():
    assert tokenise("The CAT sat") == ["The", "CAT", "sat"]
    assert tokenise("The CAT sat", lowercase=True) == ["the", "cat", "sat"]


def test_default_max_len_is_the_rounded_up_99th_percentile_capped():
    # 99 rows of 3 words and one of 50: numpy's 99th percentile is 3 + 0.01 * 47 = 3.47 -> 4.
    assert default_max_len([3] * 99 + [50]) == 4
    assert default_max_len(list(range(1, 201))) == MAX_TOKENS  # 198.01 -> 199, capped at 64
    assert default_max_len([0, 0]) == 1
    assert default_max_len([5, 7], cap=6) == 6
    with pytest.raises(ValueError, match="no training rows"):
        default_max_len([])


def test_truncation_counts_rows_and_words_cut_per_split():
    lengths = [2, 6, 9, 4, 4]
    cut = truncation(lengths, {"train": np.array([0, 1]), "val": np.array([2]), "test": np.array([3, 4])}, 4)
    assert cut == {
        "max_len": 4,
        "rows_cut": {"train": 1, "val": 1, "test": 0},
        "words_cut": {"train": 2, "val": 5, "test": 0},
        "longest": {"train": 6, "val": 9, "test": 4},
    }


# --- the CSV text column ---------------------------------------------------------------------


def test_csv_min_freq_defaults_to_two_so_rare_training_words_read_as_unk(tmp_path):
    path = rare_word_csv(tmp_path)
    ds = from_csv(path, targets=["label"], text_column="text", seed=0)
    assert not any(w.startswith("w") for w in ds.vocab)  # every w<i> is seen once
    assert ds.vocab[:4] == ["<pad>", "<unk>", "fox", "the"] and set(ds.vocab[4:]) == {"blue", "red"}
    train_rows = ds.info["split_rows"]["train"]
    assert ds.info["vocabulary"]["train_unk_words"] == train_rows == int((ds.train.x == UNK_ID).sum())
    assert ds.info["vocabulary"]["min_freq"] == 2 and ds.info["word_dropout"] == 0.0
    kept = from_csv(path, targets=["label"], text_column="text", seed=0, min_freq=1)
    assert len(kept.vocab) == 2 + 4 + train_rows and kept.info["vocabulary"]["train_unk_words"] == 0


def test_the_unk_embedding_receives_gradient(tmp_path):
    """With min_freq 2 `<unk>` occurs in training and its embedding learns; with every
    training word kept and no word dropout it never occurs and gets no gradient at all."""
    path = rare_word_csv(tmp_path)
    spec = ModelSpec(hidden=[8], embed_dim=4)

    def unk_grad(ds) -> float:
        torch.manual_seed(0)
        enc = build_encoder(ds, spec).train()
        enc(ds.train.x).pow(2).sum().backward()
        return float(enc.embed.weight.grad[UNK_ID].abs().sum())

    assert unk_grad(from_csv(path, targets=["label"], text_column="text", seed=0)) > 0
    assert unk_grad(from_csv(path, targets=["label"], text_column="text", seed=0, min_freq=1, word_dropout=0.0)) == 0.0
    # Word dropout alone also trains it (frequent words replaced at random).
    assert unk_grad(from_csv(path, targets=["label"], text_column="text", seed=0, min_freq=1, word_dropout=0.3)) > 0


def test_lowercase_gives_one_id_per_word_whatever_its_case(tmp_path):
    texts = ["The cat", "the Cat", "THE CAT", "the cat"] * 5
    path = write_csv(tmp_path, texts, ["ab"[i % 2] for i in range(20)])
    assert from_csv(path, targets=["label"], text_column="text", lowercase=True).vocab == ["<pad>", "<unk>", "cat", "the"]
    assert len(from_csv(path, targets=["label"], text_column="text").vocab) == 2 + 6


def test_truncation_is_reported_per_split_in_info_and_warnings(tmp_path):
    # The file's own split (split_column) fixes which rows are long.
    texts = ["a b c"] * 99 + ["a " * 40, "a b c", "a b c " * 3, "a b"]
    parts = ["train"] * 100 + ["val", "val", "test"]
    path = write_csv(tmp_path, texts, ["ab"[i % 2] for i in range(103)], parts)
    ds = from_csv(path, targets=["label"], text_column="text", split_column="part")
    expected = default_max_len([3] * 99 + [40])  # 3 + 0.01 * 37 -> 4
    assert expected == 4 and ds.info["max_len"] == 4 == ds.train.x.shape[1]
    cut = ds.info["truncation"]
    assert cut["rows_cut"] == {"train": 1, "val": 1, "test": 0}
    assert cut["words_cut"] == {"train": 36, "val": 5, "test": 0}
    assert cut["source"] == "99th percentile of training lengths" and ds.info["truncated_rows"] == 2
    assert any(
        "cut at 4 words" in w and "1 train row(s), 1 val row(s), 0 test row(s)" in w for w in ds.info["warnings"]
    )
    whole = from_csv(path, targets=["label"], text_column="text", split_column="part", max_len=40)
    assert whole.train.x.shape[1] == 40 and whole.info["truncated_rows"] == 0
    assert whole.info["truncation"]["source"] == "option max_len"
    assert not any("cut at" in w for w in whole.info["warnings"])


def long_text_csv(tmp_path: Path) -> Path:
    """103 rows in the file's own split; one long training row and one long validation row."""
    texts = ["a b c"] * 99 + ["a " * 40, "a b c", "a b c " * 3, "a b"]
    parts = ["train"] * 100 + ["val", "val", "test"]
    return write_csv(tmp_path, texts, ["ab"[i % 2] for i in range(103)], parts)


def test_a_runs_result_and_show_say_what_cutting_the_texts_cost(tmp_path):
    from mtl_core.cli import format_result
    from mtl_core.config import ExperimentConfig
    from mtl_core.experiment import run_experiment

    path = long_text_csv(tmp_path)
    options = {"path": str(path), "targets": ["label"], "text_column": "text", "split_column": "part"}
    config = ExperimentConfig.parse({"dataset": {"name": "csv", "options": options}, "steps": 4, "batch_size": 16,
                                     "eval_every": 2, "log_every": 2, "interference": False})
    result = run_experiment(config)
    cut = result["dataset"]["truncation"]
    assert cut == from_csv(path, targets=["label"], text_column="text", split_column="part").info["truncation"]
    assert cut["rows_cut"] == {"train": 1, "val": 1, "test": 0}
    said = format_result(result)
    assert ("texts cut at 4 words (99th percentile of training lengths): 1 train, 1 val, 0 test row(s) lose "
            "36, 5, 0 words") in said
    # A run without a text input says nothing of it.
    assert "texts" not in format_result({**result, "dataset": {"name": "x"}})


def test_the_results_page_says_what_cutting_the_texts_cost_in_both_languages(tmp_path, lab, store_finished_run):
    from streamlit.testing.v1 import AppTest

    path = long_text_csv(tmp_path)
    options = {"path": str(path), "targets": ["label"], "text_column": "text", "split_column": "part"}
    run_id = store_finished_run(lab, {"dataset": {"name": "csv", "options": options}, "steps": 4,
                                      "batch_size": 16, "eval_every": 2, "log_every": 2})
    app = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
    for lang, expected in (
        ("en", "Texts cut at 4 words (99th percentile of training lengths): 1 train row(s), 1 val row(s), "
               "0 test row(s) lose 36, 5, 0 words"),
        ("zh", "文本在 4 个词处截断（训练集长度的第 99 百分位数）：训练集 1 行、验证集 1 行、测试集 0 行分别丢失 36、5、0 个词"),
    ):
        at = AppTest.from_file(app, default_timeout=60)
        at.query_params.update({"run": run_id, "lang": lang})
        at = at.switch_page("app_pages/results.py").run()
        assert not at.exception, at.exception
        assert any(expected in c.value for c in at.caption), [c.value for c in at.caption]


def test_a_max_len_above_the_default_cap_keeps_tags(tmp_path):
    words = " ".join(f"w{i % 3}" for i in range(80))
    tags = " ".join("NV"[i % 2] for i in range(80))
    rows = "\n".join(f"{words},{tags}" for _ in range(12))
    path = tmp_path / "long.csv"
    path.write_text(f"text,tags\n{rows}\n", encoding="utf-8")
    ds = from_csv(path, targets={"tags": "tagging"}, text_column="text", max_len=100)
    assert ds.train.x.shape[1] == ds.train.y["tags"].shape[1] == 100
    assert int((ds.train.y["tags"][0] >= 0).sum()) == 80 and ds.info["truncated_rows"] == 0


def test_text_options_reach_the_csv_dataset_through_the_registry(tmp_path):
    path = rare_word_csv(tmp_path)
    ds = load_dataset("csv", {
        "path": str(path), "targets": ["label"], "text_column": "text", "min_freq": 1,
        "word_dropout": 0.2, "lowercase": True, "max_len": 7,
    })
    assert ds.info["vocabulary"] == {"size": len(ds.vocab), "min_freq": 1, "lowercase": True,
                                     "train_unk_words": 0}
    assert ds.info["word_dropout"] == 0.2 and ds.train.x.shape[1] == 7


@pytest.mark.parametrize(
    "options, message",
    [({"word_dropout": 1.0}, r"word_dropout: 1.0 must be in \[0, 1\)"),
     ({"max_len": 0}, "max_len: 0 must be between 1 and 512"),
     ({"min_freq": 0}, "min_freq: 0 must be at least 1")],
)
def test_bad_text_options_are_config_errors(tmp_path, options, message):
    with pytest.raises(ConfigError, match=message):
        from_csv(rare_word_csv(tmp_path), targets=["label"], text_column="text", **options)


# --- encoders --------------------------------------------------------------------------------


def test_word_dropout_replaces_words_not_padding_at_its_rate():
    x = torch.tensor([[5, 6, 7, 8, 0, 0]] * 2000)
    torch.manual_seed(0)
    out = word_dropout(x, 0.25)
    assert bool((out[:, 4:] == PAD_ID).all())
    replaced = float((out[:, :4] == UNK_ID).float().mean())
    assert abs(replaced - 0.25) < 0.02, replaced
    torch.manual_seed(0)
    assert torch.equal(word_dropout(x, 0.25), out)  # the seed decides
    assert word_dropout(x, 0.0) is x


@pytest.mark.parametrize("kind", KINDS)
def test_word_dropout_acts_in_training_mode_only(kind):
    torch.manual_seed(0)
    enc = TokenEncoder(20, embed_dim=8, hidden=[8], kind=kind, max_len=6, word_dropout=0.5)
    x = torch.tensor([[3, 4, 5, 6, 0, 0], [7, 8, 9, 0, 0, 0]])
    enc.eval()
    plain = enc(x)
    enc.word_dropout = 0.0
    assert torch.equal(enc(x), plain)  # eval: no word dropout
    enc.word_dropout = 0.5
    enc.train()
    torch.manual_seed(1)
    a = enc(x)
    torch.manual_seed(1)
    assert torch.equal(enc(x), a)  # deterministic under the seed
    torch.manual_seed(2)
    assert not torch.allclose(enc(x), a)


@pytest.mark.parametrize("kind", KINDS)
def test_appending_padding_does_not_change_the_encoder_output(kind):
    torch.manual_seed(0)
    enc = TokenEncoder(30, embed_dim=8, hidden=[8, 8], kind=kind, max_len=12, dropout=0.3).eval()
    x = torch.tensor([[3, 4, 5, 6, 7], [8, 9, 10, 0, 0], [11, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
    padded = torch.cat([x, torch.zeros(4, 6, dtype=torch.long)], dim=1)
    z, zp = enc(x), enc(padded)
    assert zp.shape == (4, 11, enc.out_dim)
    torch.testing.assert_close(zp[:, :5], z, atol=1e-6, rtol=1e-5)
    assert bool((zp[:, 5:] == 0).all()) and bool((z[x == PAD_ID] == 0).all())


@pytest.mark.parametrize("hidden", [[8], [8, 8]])
@pytest.mark.parametrize("kind", KINDS)
def test_dropout_changes_every_token_encoder_output_in_training_mode(kind, hidden):
    # One layer too: dropout acts on the word embeddings, not only between layers.
    torch.manual_seed(0)
    x = torch.tensor([[3, 4, 5, 6, 7], [8, 9, 10, 0, 0]])
    enc = TokenEncoder(30, embed_dim=8, hidden=hidden, kind=kind, max_len=5, dropout=0.5)
    enc.train()
    assert not torch.allclose(enc(x), enc(x))
    enc.eval()
    assert torch.equal(enc(x), enc(x))
    still = TokenEncoder(30, embed_dim=8, hidden=hidden, kind=kind, max_len=5, dropout=0.0).train()
    assert torch.equal(still(x), still(x))


def test_build_encoder_passes_model_dropout_to_the_cnn(tmp_path):
    ds = from_csv(rare_word_csv(tmp_path), targets=["label"], text_column="text", word_dropout=0.0)
    enc = build_encoder(ds, ModelSpec(hidden=[8], embed_dim=4, text_encoder="cnn", dropout=0.5)).train()
    assert enc.drop.p == 0.5 and enc.word_dropout == 0.0
    assert not torch.allclose(enc(ds.train.x), enc(ds.train.x))
