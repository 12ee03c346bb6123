"""The user's-own-CSV door: what a good file gives, and what every bad file is told."""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import mtl_core.tasks.csv_import as csv_import
from mtl_core.errors import ConfigError, DataError
from mtl_core.tasks.base import IGNORE_INDEX, MTLDataset, dataset_task_names, load_dataset, split_indices
from mtl_core.tasks.csv_import import CSVOptions, from_csv, read_header


def write(tmp_path: Path, text: str | bytes, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def table(header: list[str], rows: list[list[object]]) -> str:
    return "\n".join([",".join(header)] + [",".join("" if c is None else str(c) for c in r) for r in rows]) + "\n"


def tabular_csv(tmp_path: Path, n: int = 40, seed: int = 0) -> Path:
    """x1, x2 numeric (x2 with gaps), colour categorical; rid = row id (a regression tracer)."""
    rng = np.random.default_rng(seed)
    rows = [
        [
            round(float(rng.normal(3, 2)), 4),
            None if i % 7 == 0 else round(float(rng.normal(-1, 5)), 4),
            ["red", "green", "blue"][i % 3],
            "ab"[i % 2],
            i,
        ]
        for i in range(n)
    ]
    return write(tmp_path, table(["x1", "x2", "colour", "species", "rid"], rows))


def all_rows(ds: MTLDataset, task: str) -> torch.Tensor:
    return torch.cat([ds.train.y[task], ds.val.y[task], ds.test.y[task]])


def assert_valid(ds: MTLDataset, targets: list[str] | dict[str, str]) -> None:
    """Every property the engine relies on."""
    assert isinstance(ds, MTLDataset)
    assert ds.task_names == list(targets)
    if isinstance(targets, dict):
        assert {t: s.kind for t, s in ds.tasks.items()} == targets
    assert sum(len(s) for s in (ds.train, ds.val, ds.test)) == ds.info["rows"]
    for split in (ds.train, ds.val, ds.test):
        assert len(split) > 0
        if ds.input_kind == "vector":
            assert split.x.dtype == torch.float32 and split.x.shape[1] == ds.input_dim > 0
            assert torch.isfinite(split.x).all()
        else:
            assert split.x.dtype == torch.int64 and ds.vocab[:2] == ["<pad>", "<unk>"]
            assert ((split.x >= 0) & (split.x < ds.vocab_size)).all()
        for name, spec in ds.tasks.items():
            y = split.y[name]
            assert y.shape[0] == len(split)
            if spec.kind == "regression":
                assert y.dtype == torch.float32 and y.dim() == 1
                assert not torch.isinf(y).any()
            else:
                assert y.dtype == torch.int64
                assert y.dim() == (2 if spec.kind == "tagging" else 1)
                if spec.kind == "tagging":
                    assert y.shape[1] == split.x.shape[1]
                ok = (y == IGNORE_INDEX) | ((y >= 0) & (y < spec.num_classes))
                assert ok.all() and len(spec.class_names) == spec.num_classes


# --------------------------------------------------------------------------- good files


def test_mixed_inputs_standardise_numbers_and_one_hot_categories(tmp_path):
    ds = from_csv(tabular_csv(tmp_path), targets=["species", "rid"])
    assert ds.input_kind == "vector"
    assert ds.input_dim == 2 + 3  # x1, x2 + one column per colour
    assert ds.feature_names == ["x1", "x2", "colour_blue", "colour_green", "colour_red"]
    assert ds.info["inputs"] == {"numeric": ["x1", "x2"], "categorical": ["colour"]}
    one_hot = torch.cat([s.x[:, 2:] for s in (ds.train, ds.val, ds.test)])
    assert torch.equal(one_hot.sum(dim=1), torch.ones(40))


def test_standardisation_uses_training_statistics_only(tmp_path):
    path = tabular_csv(tmp_path)
    raw = np.genfromtxt(path, delimiter=",", skip_header=1, usecols=0)  # x1 by row id
    ds = from_csv(path, targets={"rid": "regression"}, inputs=["x1"], standardise_targets=False)  # rid: raw ids
    train_raw = raw[ds.train.y["rid"].long().numpy()]
    mean, std = train_raw.mean(), train_raw.std()
    assert not math.isclose(mean, raw.mean(), rel_tol=1e-4)  # the test can tell the two apart
    for split in (ds.train, ds.val, ds.test):
        expected = (raw[split.y["rid"].long().numpy()] - mean) / std
        np.testing.assert_allclose(split.x[:, 0].numpy(), expected, rtol=1e-4, atol=1e-5)


def test_missing_numeric_inputs_take_the_training_median_and_are_counted(tmp_path):
    path = tabular_csv(tmp_path)
    raw = np.genfromtxt(path, delimiter=",", skip_header=1, usecols=1)  # x2, NaN every 7th row
    ds = from_csv(path, targets={"rid": "regression"}, inputs=["x2"], standardise_targets=False)
    assert ds.info["imputed"] == {"x2": int(np.isnan(raw).sum())} == {"x2": 6}
    train_raw = raw[ds.train.y["rid"].long().numpy()]
    filled = np.where(np.isnan(train_raw), np.nanmedian(train_raw), train_raw)
    expected_gap = (np.nanmedian(train_raw) - filled.mean()) / filled.std()
    for split in (ds.train, ds.val, ds.test):
        gaps = np.isnan(raw[split.y["rid"].long().numpy()])
        np.testing.assert_allclose(split.x[gaps, 0].numpy(), expected_gap, rtol=1e-4, atol=1e-5)


def test_unseen_category_outside_training_gives_all_zero_one_hot(tmp_path):
    rows = [[i % 5, ["red", "blue"][i % 2] if i != 17 else "purple", "ab"[i % 2], i] for i in range(30)]
    path = write(tmp_path, table(["x", "colour", "label", "rid"], rows))
    for seed in range(10):
        ds = from_csv(path, targets={"label": "classification", "rid": "regression"}, seed=seed,
                      standardise_targets=False)
        in_train = 17 in ds.train.y["rid"].long().tolist()
        assert ("colour_purple" in ds.feature_names) == in_train
        if not in_train:
            split = ds.val if 17 in ds.val.y["rid"].long().tolist() else ds.test
            row = split.x[split.y["rid"].long() == 17][0]
            assert row[1:].abs().sum() == 0  # colour block: no known category
            return
    pytest.fail("row 17 was in the training split for every seed")


def test_empty_target_cells_become_ignore_or_nan_and_rows_are_kept(tmp_path):
    rows = [[i, "ab"[i % 2] if i % 4 else None, None if i % 5 == 0 else i / 2] for i in range(30)]
    ds = from_csv(write(tmp_path, table(["x", "label", "score"], rows)), targets=["label", "score"])
    assert ds.info["rows"] == 30 and sum(ds.info["split_rows"].values()) == 30
    assert int((all_rows(ds, "label") == IGNORE_INDEX).sum()) == 8  # i % 4 == 0
    assert int(torch.isnan(all_rows(ds, "score")).sum()) == 6  # i % 5 == 0
    assert sum(ds.info["labelled"]["label"].values()) == 22
    assert sum(ds.info["labelled"]["score"].values()) == 24


def test_missing_markers_count_as_empty_cells(tmp_path):
    rows = [[i, ["a", "b", "NA", "nan", "null", " "][i % 6]] for i in range(24)]
    ds = from_csv(write(tmp_path, table(["x", "label"], rows)), targets=["label"])
    assert ds.tasks["label"].class_names == ("a", "b")
    assert int((all_rows(ds, "label") == IGNORE_INDEX).sum()) == 16


def test_target_kinds_are_inferred_from_values(tmp_path):
    rows = [[i, "cat" if i % 2 else "dog", [1, 2, 10][i % 3], i * 0.37, i % 30] for i in range(60)]
    ds = from_csv(
        write(tmp_path, table(["x", "animal", "level", "size", "many"], rows)),
        targets=["animal", "level", "size", "many"],
    )
    kinds = {t: s.kind for t, s in ds.tasks.items()}
    assert kinds == {"animal": "classification", "level": "classification", "size": "regression", "many": "regression"}
    assert ds.tasks["animal"].class_names == ("cat", "dog")
    assert ds.tasks["level"].class_names == ("1", "2", "10")  # numeric labels sort as numbers
    assert all(ds.info["targets"][t]["inferred"] for t in kinds)
    ds = from_csv(
        write(tmp_path, table(["x", "animal", "level", "size", "many"], rows)),
        targets=["many"],
        max_classes=30,
    )
    assert ds.tasks["many"].kind == "classification" and ds.tasks["many"].num_classes == 30


def test_a_dict_of_kinds_overrides_inference(tmp_path):
    rows = [[i, [1, 2, 3][i % 3], i * 0.5] for i in range(30)]
    path = write(tmp_path, table(["x", "level", "size"], rows))
    ds = from_csv(path, targets={"level": "regression", "size": "classification"})
    assert ds.tasks["level"].kind == "regression" and ds.train.y["level"].dtype == torch.float32
    # Trained standardised (issue 12), the values are the file's once mapped back.
    level = ds.tasks["level"].to_original_units(all_rows(ds, "level"))
    assert set(level.round(decimals=4).tolist()) == {1.0, 2.0, 3.0}
    assert ds.tasks["size"].kind == "classification" and ds.tasks["size"].num_classes == 30
    assert ds.info["targets"]["level"] == {"kind": "regression", "inferred": False}


SENTENCES = [
    ("the cat sat", "D N V", "pos"),
    ("a dog ran far", "D N V R", "pos"),
    ("cats sleep", "N V", "neg"),
    ("the big dog barked", "D A N V", "neg"),
    ("dogs run", "N V", "pos"),
    ("a cat sat down", "D N V R", "neg"),
]


def text_csv(tmp_path: Path, repeats: int = 4) -> Path:
    rows = [[f'"{s}"', tags, mood, i] for i, (s, tags, mood) in enumerate(SENTENCES * repeats)]
    return write(tmp_path, table(["sentence", "pos", "mood", "rid"], rows))


def test_text_column_and_tagging_target_round_trip(tmp_path):
    data = SENTENCES * 4
    ds = from_csv(
        text_csv(tmp_path), text_column="sentence",
        targets={"pos": "tagging", "mood": "classification", "rid": "regression"}, standardise_targets=False,
    )
    assert_valid(ds, {"pos": "tagging", "mood": "classification", "rid": "regression"})
    assert ds.input_kind == "tokens" and ds.vocab[:2] == ["<pad>", "<unk>"]
    train_ids = ds.train.y["rid"].long().tolist()
    assert ds.info["max_len"] == ds.train.x.shape[1] == max(len(data[i][0].split()) for i in train_ids)
    tags = ds.tasks["pos"].class_names
    assert tags == ("A", "D", "N", "R", "V")
    for split in (ds.train, ds.val, ds.test):
        for row, rid in enumerate(split.y["rid"].long().tolist()):
            words, tag_text, _ = data[rid]
            ids = [i for i in split.x[row].tolist() if i != 0]
            decoded = [ds.vocab[i] for i in ids]
            expected = [w if w in ds.vocab else "<unk>" for w in words.split()][: ds.info["max_len"]]
            assert decoded == expected
            got = [tags[t] for t in split.y["pos"][row].tolist() if t != IGNORE_INDEX]
            assert got == tag_text.split()[: ds.info["max_len"]]


def test_long_sentences_are_cut_to_max_tokens(tmp_path):
    rows = [[" ".join(["w"] * (70 + i)), " ".join(["A", "B"] * 50)[: 2 * (70 + i) - 1], i % 2] for i in range(10)]
    ds = from_csv(write(tmp_path, table(["text", "tags", "label"], rows)), text_column="text", targets=["tags", "label"])
    assert ds.train.x.shape[1] == ds.train.y["tags"].shape[1] == csv_import.MAX_TOKENS == 64
    assert ds.info["truncated_rows"] == 10 and ds.vocab == ["<pad>", "<unk>", "w"]


def test_tagging_is_inferred_when_tags_match_words_on_every_row(tmp_path):
    ds = from_csv(text_csv(tmp_path), text_column="sentence", targets=["pos", "mood"])
    assert ds.tasks["pos"].kind == "tagging" and ds.tasks["mood"].kind == "classification"


def test_same_seed_same_dataset_other_seed_other_split(tmp_path):
    path = tabular_csv(tmp_path)
    a = from_csv(path, targets=["species", "rid"], seed=3)
    b = from_csv(path, targets=["species", "rid"], seed=3)
    c = from_csv(path, targets=["species", "rid"], seed=4)
    for s in ("train", "val", "test"):
        assert torch.equal(getattr(a, s).x, getattr(b, s).x)
        assert torch.equal(getattr(a, s).y["rid"], getattr(b, s).y["rid"])
    assert not torch.equal(a.train.y["rid"], c.train.y["rid"])


def test_info_records_provenance(tmp_path):
    path = tabular_csv(tmp_path)
    ds = from_csv(path, targets=["species"], seed=7, val_fraction=0.25, test_fraction=0.125)
    info = ds.info
    assert info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info["source"] == str(path.resolve()) and info["seed"] == 7
    assert (info["val_fraction"], info["test_fraction"]) == (0.25, 0.125)
    assert info["rows"] == 40 and info["split_rows"] == {"train": 25, "val": 10, "test": 5}
    assert info["warnings"] == []


def test_registered_as_csv_dataset_with_header_only_task_names(tmp_path):
    path = tabular_csv(tmp_path)
    opts = {"path": str(path), "targets": ["species", "rid"]}
    assert dataset_task_names("csv", opts) == ["species", "rid"]
    ds = load_dataset("csv", opts, seed=1)
    assert ds.task_names == ["species", "rid"] and ds.info["seed"] == 1
    # Task names read the header alone: a broken body does not slow or stop config checks.
    broken = write(tmp_path, "x,label\n1,a\n2,b,extra\n", "broken.csv")
    assert dataset_task_names("csv", {"path": str(broken), "targets": ["label"]}) == ["label"]
    with pytest.raises(DataError, match="'nope' is not in the file"):
        dataset_task_names("csv", {"path": str(broken), "targets": ["nope"]})
    with pytest.raises(ConfigError, match="dataset.options.targets"):
        load_dataset("csv", {"path": str(path), "targets": {"species": "clustering"}})
    with pytest.raises(ConfigError, match="dataset.options.colour: unknown option"):
        load_dataset("csv", {"path": str(path), "targets": ["species"], "colour": 1})
    assert CSVOptions(path="a.csv").max_bytes == csv_import.DEFAULT_MAX_BYTES == 50 * 2**20


def test_importer_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    good, bad = tabular_csv(tmp_path), write(tmp_path, "x,y\n1\n", "bad.csv")
    before = sorted(p.name for p in tmp_path.iterdir())
    from_csv(good, targets=["species"])
    with pytest.raises(DataError):
        from_csv(bad, targets=["y"])
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# --------------------------------------------------------------------------- bad files


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match=r"'.*nowhere\.csv' not found.*check the path"):
        from_csv(tmp_path / "nowhere.csv", targets=["y"])


def test_a_directory_is_not_a_file(tmp_path):
    with pytest.raises(DataError, match="is not a file"):
        from_csv(tmp_path, targets=["y"])


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_empty_file(tmp_path, text):
    with pytest.raises(DataError, match=r"data\.csv' is empty"):
        from_csv(write(tmp_path, text), targets=["y"])


def test_header_only(tmp_path):
    with pytest.raises(DataError, match="has a header but no data rows"):
        from_csv(write(tmp_path, "x,y\n"), targets=["y"])


def test_no_target_given_lists_the_columns(tmp_path):
    with pytest.raises(DataError, match=r"no target column given.*targets=\[\.\.\.\].*x, y"):
        from_csv(write(tmp_path, "x,y\n1,2\n"))


def test_target_not_in_file_suggests_a_close_name(tmp_path):
    with pytest.raises(DataError, match=r"target column 'specis' is not in the file; did you mean 'species'"):
        from_csv(write(tmp_path, "x,species\n1,a\n"), targets=["specis"])


def test_other_separator_is_hinted(tmp_path):
    with pytest.raises(DataError, match="seems to use ';' as separator"):
        from_csv(write(tmp_path, "x;y\n1;2\n"), targets=["y"])


def test_target_also_listed_as_input(tmp_path):
    with pytest.raises(DataError, match="column 'y' is both a target and an input"):
        from_csv(write(tmp_path, "x,y\n1,2\n"), targets=["y"], inputs=["x", "y"])


def test_target_is_the_text_column(tmp_path):
    with pytest.raises(DataError, match="column 'text' is both a target and the text column"):
        from_csv(write(tmp_path, "text,y\na b,2\n"), targets=["text", "y"], text_column="text")


def test_duplicate_column_names_are_found_in_the_raw_header(tmp_path):
    with pytest.raises(DataError, match=r"column 'a' appears 2 times in the header \(line 1, columns 1, 3\)"):
        from_csv(write(tmp_path, "a,y,a\n1,2,3\n"), targets=["y"])


def test_unnamed_column(tmp_path):
    with pytest.raises(DataError, match=r"column 1 of the header \(line 1\) has no name.*index=False"):
        from_csv(write(tmp_path, ",x,y\n0,1,2\n"), targets=["y"])


def test_non_numeric_regression_values_name_the_rows(tmp_path):
    rows = [[i, i * 1.5] for i in range(20)]
    rows[3][1], rows[9][1] = "abc", "1,5"
    text = table(["x", "price"], rows).replace("1,5", '"1,5"')
    with pytest.raises(DataError, match=r"'price' has non-numeric values on lines 5 \('abc'\), 11 \('1,5'\).*decimal mark"):
        from_csv(write(tmp_path, text), targets={"price": "regression"})


def test_a_mostly_numeric_target_with_stray_text_is_refused_when_inferred(tmp_path):
    rows = [[i, i * 1.5] for i in range(30)]
    rows[6][1] = "n.a."
    with pytest.raises(DataError, match=r"'price' looks numeric but has non-numbers on line 8 \('n\.a\.'\)"):
        from_csv(write(tmp_path, table(["x", "price"], rows)), targets=["price"])


@pytest.mark.parametrize("kind", ["regression", "classification", None])
def test_a_target_with_every_cell_empty(tmp_path, kind):
    rows = [[i, None if i % 2 else "NaN"] for i in range(10)]
    targets = {"y": kind} if kind else ["y"]
    with pytest.raises(DataError, match=r"target column 'y' has no labels \(its cells on lines 2-11 are all empty\)"):
        from_csv(write(tmp_path, table(["x", "y"], rows)), targets=targets)


def test_infinite_regression_values_name_the_rows(tmp_path):
    rows = [[i, i] for i in range(20)]
    rows[4][1] = "1e400"
    with pytest.raises(DataError, match=r"'y' has infinite or too large values.*line 6"):
        from_csv(write(tmp_path, table(["x", "y"], rows)), targets={"y": "regression"})


def test_single_example_class_splits_without_a_warning(tmp_path):
    # The split is never stratified (tests/test_splits.py), so a rare class needs no fallback.
    rows = [[i, "c" if i == 5 else "ab"[i % 2]] for i in range(30)]
    ds = from_csv(write(tmp_path, table(["x", "label"], rows)), targets=["label"])
    assert ds.info["split"] == {"method": "random"}
    assert not any("stratified" in w for w in ds.info["warnings"])
    assert sorted(ds.tasks["label"].class_names) == ["a", "b", "c"]


def test_a_class_missing_from_the_training_split_is_fine(tmp_path):
    rows = [[i, "c" if i == 5 else "ab"[i % 2]] for i in range(30)]
    path = write(tmp_path, table(["x", "label"], rows))
    # The split is unstratified: find a seed that leaves row 5 out of training.
    seed = next(s for s in range(50) if 5 not in split_indices(30, seed=s)[0])
    ds = from_csv(path, targets=["label"], seed=seed)
    c = ds.tasks["label"].class_names.index("c")
    assert c not in ds.train.y["label"].tolist()
    assert c in torch.cat([ds.val.y["label"], ds.test.y["label"]]).tolist()


def test_a_classification_target_with_one_class(tmp_path):
    rows = [[i, "only"] for i in range(10)]
    with pytest.raises(DataError, match=r"'y' has a single class \('only'\)"):
        from_csv(write(tmp_path, table(["x", "y"], rows)), targets={"y": "classification"})


def test_tag_count_not_word_count_names_the_rows(tmp_path):
    rows = [[f'"{s}"', t] for s, t, _ in SENTENCES * 2]
    rows[2][1] = "N"  # 'cats sleep' has two words
    with pytest.raises(DataError, match=r"'pos' needs one tag per word.*line 4 \(1 tags for 2 words\)"):
        from_csv(write(tmp_path, table(["text", "pos"], rows)), text_column="text", targets={"pos": "tagging"})


def test_tagging_without_a_text_column(tmp_path):
    with pytest.raises(DataError, match="'pos' is a tagging task.*text_column"):
        from_csv(write(tmp_path, "x,pos\n1,A B\n"), targets={"pos": "tagging"})


def test_non_utf8_file_is_named_with_the_line(tmp_path):
    path = write(tmp_path, "x,y\n1,a\n2,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"data\.csv' is not UTF-8 text \(byte 0xe9 on line 3\); re-save it as 'CSV UTF-8'"):
        from_csv(path, targets=["y"])


def test_non_utf8_header_is_caught_by_task_names(tmp_path):
    path = write(tmp_path, "caf\xe9,y\n1,2\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8 text"):
        read_header(path)


def test_file_over_max_bytes_says_size_limit_and_fix(tmp_path):
    path = write(tmp_path, "x,y\n" + "1,2\n" * 100)
    with pytest.raises(DataError, match=r"is 404 bytes .* over the limit of 100 bytes.*raise max_bytes"):
        from_csv(path, targets=["y"], max_bytes=100)


def test_fewer_rows_than_the_batch_size(tmp_path):
    path = write(tmp_path, table(["x", "y"], [[i, i % 2] for i in range(10)]))
    with pytest.raises(DataError, match=r"has 10 data rows, fewer than the batch size 32.*lower the batch size"):
        from_csv(path, targets=["y"], min_rows=32)


def test_ragged_rows_name_the_lines(tmp_path):
    path = write(tmp_path, "x,y\n1,2\n3,4,5\n6,7\n8\n")
    with pytest.raises(DataError, match=r"header \(line 1\) has 2 columns but lines 3 \(3 fields\), 5 \(1 field\) do not"):
        from_csv(path, targets=["y"])


@pytest.mark.parametrize(
    ("text", "line"), [('x,y\n1,2\n3,"4\n5,6\n', 3), ('x,y\n1,2\n"3"x,4\n', 3)], ids=["unclosed", "stray"]
)
def test_malformed_quotes_are_refused_with_the_parser_reason(tmp_path, text, line):
    with pytest.raises(DataError, match=rf"cannot be parsed at line {line} \(.+\).*quote"):
        from_csv(write(tmp_path, text), targets=["y"])


def test_fewer_than_three_labelled_rows(tmp_path):
    rows = [[i, "ab"[i % 2] if i < 2 else None] for i in range(20)]
    with pytest.raises(DataError, match=r"has 2 labelled row\(s\) in its target columns \(y\).*at least 3"):
        from_csv(write(tmp_path, table(["x", "y"], rows)), targets=["y"])


def test_too_few_rows_for_three_splits(tmp_path):
    path = write(tmp_path, table(["x", "y"], [[i, i % 2] for i in range(3)]))
    with pytest.raises(DataError, match=r"has 3 data rows, too few to split.*at least 4"):
        from_csv(path, targets=["y"])


def test_labels_that_all_miss_the_training_split(tmp_path):
    labels = np.arange(40) % 2
    _, val, test = split_indices(40, seed=0)  # the importer's own split
    held_out = sorted(np.concatenate([val, test])[:3].tolist())
    rows = [[i, "ab"[labels[i]], i if i in held_out else None] for i in range(40)]
    path = write(tmp_path, table(["x", "label", "score"], rows))
    lines = ", ".join(str(i + 2) for i in held_out)
    with pytest.raises(DataError, match=rf"'score' has 3 labelled row\(s\) \(lines {lines}\), none of them in the training split \(seed 0\)"):
        from_csv(path, targets={"label": "classification", "score": "regression"}, seed=0)


def test_bad_arguments_are_config_errors(tmp_path):
    path = tabular_csv(tmp_path)
    with pytest.raises(ConfigError, match="kind 'clustering' of column 'species'"):
        from_csv(path, targets={"species": "clustering"})
    with pytest.raises(ConfigError, match="val_fraction"):
        from_csv(path, targets=["species"], val_fraction=0.6, test_fraction=0.5)
    with pytest.raises(ConfigError, match="give one of them"):
        from_csv(path, targets=["species"], inputs=["x1"], text_column="colour")


# --------------------------------------------------------------------------- properties

NEWLINES = ["\n", "\n", "\r\n", "\r"]


def with_gaps(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(values, values, values, values, st.sampled_from(["", "NA", " "]))


# One kind of column each, so that a fair share of files reaches the typed checks.
COLUMN_KINDS = [
    with_gaps(st.integers(-3, 3).map(str)),
    with_gaps(st.floats(-1e3, 1e3).map(lambda v: f"{v:.3f}")),
    with_gaps(st.sampled_from(["cat", "dog", "eel"])),
    with_gaps(st.sampled_from(["a b", "x y z", "the cat sat", "w"])),
    with_gaps(st.sampled_from(["N V", "D N V", "N", "A"])),
    st.sampled_from(["", "1", "2", "-3.5", "7", "abc", "a b", "N V", "cat", "nan", '"q"', '"x,y"', "é"]),
]
DAMAGED_CELLS = st.one_of(
    st.sampled_from(["1e400", "inf", "-nan", '"', '""', 'a"b', "1,5", "\x00", "\ufeff"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=5),
)
DAMAGE = ["none"] * 4 + ["cells", "ragged", "bytes", "separator", "header"]


@st.composite
def csv_files(draw):
    """CSV text with at most one kind of damage: odd cells, ragged rows, bad bytes, separators, header."""
    damage = draw(st.sampled_from(DAMAGE))
    header = draw(st.lists(st.sampled_from(["y", "z", "x", "t", "w"]), min_size=1, max_size=5, unique=True))
    kinds = [draw(st.sampled_from(COLUMN_KINDS)) for _ in header]
    if damage == "header":  # a blank, repeated or space-padded repeated name
        header.append(draw(st.sampled_from(["", header[0], f" {header[0]}"])))
        kinds.append(kinds[0])
    if damage == "cells":
        kinds = [st.one_of(k, DAMAGED_CELLS) for k in kinds]
    sep = draw(st.sampled_from([";", "\t", "|"])) if damage == "separator" else ","
    nl = draw(st.sampled_from(NEWLINES))
    lines = [sep.join(header)]
    for _ in range(draw(st.integers(0, 30))):
        row = [draw(k) for k in kinds]
        if damage == "ragged" and draw(st.integers(0, 4)) == 0:
            row = row[: draw(st.integers(0, len(row)))] + draw(st.lists(kinds[0], max_size=2))
        lines.append(sep.join(row))
    data = nl.join(lines).encode("utf-8")
    if damage == "bytes":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\xe9", b"\x80\x80", b"\xc3"])) + data[at:]
    columns = list(dict.fromkeys(h for h in header if h))
    chosen = draw(st.lists(st.sampled_from(columns + ["missing"]), min_size=1, max_size=3, unique=True))
    if draw(st.integers(0, 4)):  # mostly columns that exist
        chosen = [c for c in chosen if c != "missing"] or [columns[-1]]
    others = [c for c in columns if c not in chosen]
    text_column = draw(st.sampled_from([None, None, *others, *chosen[:1]]))
    inputs = draw(st.sampled_from([None, None, None, others[-1:] or None]))
    kinds = ["classification", "regression"] + (["tagging"] * 2 if text_column else [])
    targets: list[str] | dict[str, str] | None = chosen
    if draw(st.booleans()):
        targets = {c: draw(st.sampled_from(kinds)) for c in chosen}
    if draw(st.sampled_from([False] * 19 + [True])):
        targets = None
    return data, {"targets": targets, "text_column": text_column, "inputs": inputs}


def import_or_refuse(path: Path, **kwargs) -> MTLDataset | None:
    """The only acceptable outcomes: a valid dataset, or our error with a message."""
    try:
        ds = from_csv(path, **kwargs)
    except (DataError, ConfigError) as exc:
        assert str(exc).strip()
        return None
    assert kwargs["targets"]  # no targets is always refused
    assert_valid(ds, kwargs["targets"])
    return ds


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=300), target=st.sampled_from(["y", "x", "\ufeffy"]))
def test_random_bytes_import_or_raise_data_error(tmp_path_factory, data, target):
    path = tmp_path_factory.getbasetemp() / "random_bytes.csv"
    path.write_bytes(data)
    import_or_refuse(path, targets=[target])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=csv_files(), seed=st.integers(0, 3))
def test_random_csv_text_imports_or_raises_our_errors(tmp_path_factory, case, seed):
    data, kwargs = case
    path = tmp_path_factory.getbasetemp() / "random_text.csv"
    path.write_bytes(data)
    import_or_refuse(path, seed=seed, **kwargs)


@st.composite
def valid_tables(draw):
    """Well-formed tables whose every target has two classes / numbers and enough labels."""
    n = draw(st.integers(8, 40))
    floats = st.floats(-1e6, 1e6, allow_nan=False)
    x = draw(st.lists(floats, min_size=n, max_size=n))
    colour = draw(st.lists(st.sampled_from(["red", "green", "blue", ""]), min_size=n, max_size=n))
    label = ["cat", "dog"] + draw(st.lists(st.sampled_from(["cat", "dog", "eel", ""]), min_size=n - 2, max_size=n - 2))
    score = draw(st.lists(floats, min_size=n, max_size=n))
    # At most half the regression cells empty: more labels than the held-out rows.
    for i in draw(st.lists(st.integers(0, n - 1), max_size=n // 2, unique=True)):
        score[i] = None
    if label.count("") > n // 2:
        label = [c or "cat" for c in label]
    rows = [[repr(a), c, lab, "" if s is None else repr(s)] for a, c, lab, s in zip(x, colour, label, score)]
    return table(["x", "colour", "label", "score"], rows), sum(s is None for s in score)


# Found by Hypothesis in CI: training rows that hardly vary (0 and 1.2e-38) beside a 2.0 on a
# held-out row, in an input column and in a regression target; both import, centred only.
_NEAR_CONSTANT = [(0.0, 0.0), (0.0, 0.0), (0.0, 0.0), (0.0, 0.0), (0.0, 0.0), (0.0, 0.0),
                  (1.1754943508222875e-38, 0.0), (2.0, 0.0)]


def _near_constant_table(column: int) -> str:
    rows = [[repr(v[column]), "red", "dog" if i == 1 else "cat", repr(v[1 - column])]
            for i, v in enumerate(_NEAR_CONSTANT)]
    return table(["x", "colour", "label", "score"], rows)


@pytest.mark.parametrize("column, name", [(0, "input column 'x'"), (1, "regression target 'score'")])
def test_a_column_whose_training_rows_hardly_vary_is_centred_only_and_said(tmp_path, column, name):
    path = tmp_path / "near_constant.csv"
    path.write_text(_near_constant_table(column), encoding="utf-8")
    ds = from_csv(path, targets={"label": "classification", "score": "regression"}, seed=1)
    assert_valid(ds, {"label": "classification", "score": "regression"})
    said = [w for w in ds.info["warnings"] if name in w]
    assert said and "hardly varies on the" in said[0] and "centred only (std 1)" in said[0]
    values = all_rows(ds, "score") if column else torch.cat([s.x[:, 0] for s in (ds.train, ds.val, ds.test)])
    assert float(values.abs().max()) == pytest.approx(2.0, rel=1e-3)  # the 2.0, centred, not divided


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=valid_tables(), seed=st.integers(0, 100))
@example(case=(_near_constant_table(0), 0), seed=1)
@example(case=(_near_constant_table(1), 0), seed=1)
def test_valid_tables_always_import(tmp_path_factory, case, seed):
    text, empty_scores = case
    path = tmp_path_factory.getbasetemp() / "valid.csv"
    path.write_text(text, encoding="utf-8")
    targets = {"label": "classification", "score": "regression"}
    ds = from_csv(path, targets=targets, seed=seed)
    assert_valid(ds, targets)
    assert int(torch.isnan(all_rows(ds, "score")).sum()) == empty_scores
    assert ds.feature_names[0] == "x" and all(f.startswith("colour_") for f in ds.feature_names[1:])


@st.composite
def valid_text_tables(draw):
    """Sentences with one tag per word and a sentence label: always a valid tagging dataset."""
    n = draw(st.integers(8, 30))
    word_tag = st.sampled_from([("the", "D"), ("a", "D"), ("cat", "N"), ("dog", "N"), ("sat", "V"), ("é", "N")])
    sentences = draw(st.lists(st.lists(word_tag, min_size=1, max_size=8), min_size=n, max_size=n))
    sentences[0] = [("the", "D"), ("cat", "N")] + sentences[0]  # two tags, and a row of two words
    mood = ["pos", "neg"] + draw(st.lists(st.sampled_from(["pos", "neg", ""]), min_size=n - 2, max_size=n - 2))
    rows = [[" ".join(w for w, _ in s), " ".join(t for _, t in s), m] for s, m in zip(sentences, mood)]
    return table(["text", "tags", "mood"], rows), sentences


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=valid_text_tables(), seed=st.integers(0, 100))
def test_valid_text_tables_always_import(tmp_path_factory, case, seed):
    text, sentences = case
    path = tmp_path_factory.getbasetemp() / "valid_text.csv"
    path.write_text(text, encoding="utf-8")
    ds = from_csv(path, text_column="text", targets=["tags", "mood"], seed=seed)
    assert_valid(ds, {"tags": "tagging", "mood": "classification"})
    assert (ds.train.x[:, 0] != 0).all()  # every sentence has a first word
    # Each word's tag sits where the word does: padding has no tag, words all have one.
    for split in (ds.train, ds.val, ds.test):
        assert torch.equal(split.x != 0, split.y["tags"] != IGNORE_INDEX)


# ---- task names every door can address; cells larger than the reader's limit (issue 10) ----
@pytest.mark.parametrize(
    "column, fix",
    [("price.usd", "'price_usd'"), ("a=b", "'a_b'"), ("keys", "'keys_'"), ("training", "'training_'")],
)
def test_a_target_column_torch_or_set_cannot_address_is_refused_at_config_time(tmp_path, column, fix):
    path = write(tmp_path, table(["x", column], [[i, i % 2] for i in range(12)]))
    # The header alone (config validation, before any baseline trains) already says how.
    with pytest.raises(DataError, match=f"target column '{re.escape(column)}'.*rename the column.*{re.escape(fix)}"):
        dataset_task_names("csv", {"path": str(path), "targets": [column]})
    with pytest.raises(DataError, match="rename the column"):
        from_csv(path, targets=[column])


@pytest.mark.parametrize("column", ["price usd", "ünïcode", "x-y", "1", "true", "null", "#c", "a,b", "Keys"])
def test_every_target_name_the_importer_accepts_is_addressable_by_set_weights(tmp_path, column):
    from mtl_core.config import ExperimentConfig, apply_overrides

    quoted = f'"{column}"' if "," in column else column
    path = write(tmp_path, table(["x", quoted], [[i, i % 2] for i in range(12)]))
    assert dataset_task_names("csv", {"path": str(path), "targets": [column]}) == [column]
    raw = apply_overrides({"dataset": {"name": "csv", "options": {"path": str(path), "targets": [column]}}},
                          [f"weights.{column}=2"])
    assert ExperimentConfig.parse(raw).task_weights() == {column: 2.0}
    # ... and the model's containers take it.
    from mtl_core.config import ModelSpec
    from mtl_core.models.sharing import build_model

    model = build_model("mmoe", from_csv(path, targets=[column]), [column], ModelSpec(), {})
    assert set(model.parameter_counts()) >= {f"task:{column}"}


def test_a_20_mb_cell_is_named_by_column_and_line_not_blamed_on_a_quote(tmp_path):
    huge = "w" * (20 * 1024 * 1024)
    path = write(tmp_path, f"x,text,label\n1,short,a\n2,{huge},b\n3,c,a\n")
    assert read_header(path) == ["x", "text", "label"]  # the header itself is fine
    with pytest.raises(DataError) as err:
        from_csv(path, targets=["label"], text_column="text")
    message = str(err.value)
    assert "the field in column 'text' on line 3" in message
    assert "20,971,520 characters" in message and f"{csv_import.MAX_FIELD_CHARS:,}" in message
    assert "quote" not in message


def test_a_long_cell_under_the_limit_imports(tmp_path):
    long_text = " ".join(["word"] * 40_000)  # 200,000 characters: over the csv module's 131,072
    rows = "\n".join(f"{i},{long_text if i == 0 else 'a b'},{'xy'[i % 2]}" for i in range(12))
    ds = from_csv(write(tmp_path, f"n,text,label\n{rows}\n"), targets=["label"], text_column="text")
    assert len(ds.train) + len(ds.val) + len(ds.test) == 12


@pytest.mark.parametrize(
    ("n", "val_fraction", "test_fraction", "empty", "fewest"),
    [(3, 0.15, 0.15, "validation", 4), (9, 0.45, 0.45, "training", 10), (50, 0.01, 0.02, "validation", 67)],
)
def test_too_few_rows_say_which_split_would_be_empty_and_how_many_rows_are_needed(
    tmp_path, n, val_fraction, test_fraction, empty, fewest
):
    path = write(tmp_path, table(["x", "y"], [[i, i % 2] for i in range(n)]))
    with pytest.raises(DataError, match=(
        rf"has {n} data rows, too few to split into train/val/test with val_fraction={val_fraction:g} and "
        rf"test_fraction={test_fraction:g} \(the {empty} split would be empty\); it needs at least {fewest}: "
        "add rows or change the fractions"
    )):
        from_csv(path, targets=["y"], val_fraction=val_fraction, test_fraction=test_fraction)


@pytest.mark.parametrize(("val_fraction", "test_fraction"), [(0.15, 0.15), (0.1, 0.05), (0.3, 0.3), (0.05, 0.4)])
def test_the_fewest_rows_named_are_the_fewest_scikit_learn_splits(val_fraction, test_fraction):
    from mtl_core.tasks.csv_import.split import check_split_sizes

    with pytest.raises(DataError, match=r"at least (\d+)") as err:
        check_split_sizes(2, val_fraction=val_fraction, test_fraction=test_fraction, file=Path("f.csv"))
    fewest = int(re.search(r"at least (\d+)", str(err.value)).group(1))
    sizes = [len(s) for s in split_indices(fewest, seed=0, val_fraction=val_fraction, test_fraction=test_fraction)]
    assert min(sizes) == 1  # the split that was empty now has one row
    check_split_sizes(fewest, val_fraction=val_fraction, test_fraction=test_fraction, file=Path("f.csv"))
    with pytest.raises(DataError, match="too few to split"):
        check_split_sizes(fewest - 1, val_fraction=val_fraction, test_fraction=test_fraction, file=Path("f.csv"))
