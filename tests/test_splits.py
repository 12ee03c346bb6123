"""Splits a user controls (issue 16, item 5): the file's own train / validation / test
column, and a random split that does not move when the list of targets changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mtl_core.errors import DataError
from mtl_core.tasks.base import dataset_task_names, load_dataset, split_indices
from mtl_core.tasks.csv_import import from_csv


def write(tmp_path: Path, header: list[str], rows: list[list[object]]) -> Path:
    path = tmp_path / "data.csv"
    body = "\n".join(",".join("" if v is None else str(v) for v in row) for row in rows)
    path.write_text(",".join(header) + "\n" + body + "\n", encoding="utf-8")
    return path


def rows_of(ds, split: str) -> list[int]:
    """The file rows of a split, read back from the `rid` regression target (raw units)."""
    return sorted(int(v) for v in getattr(ds, split).y["rid"].tolist())


def test_random_split_is_the_same_whichever_targets_are_chosen(tmp_path):
    # Two imbalanced classification targets: stratifying by the first one would move rows.
    rows = [[i % 7, "rare" if i % 6 == 0 else "common", "xyz"[i % 3] if i % 4 else "w", i] for i in range(120)]
    path = write(tmp_path, ["x", "a", "b", "rid"], rows)
    kw = {"inputs": ["x"], "seed": 3, "standardise_targets": False}
    one = from_csv(path, targets={"rid": "regression", "a": "classification"}, **kw)
    two = from_csv(path, targets={"rid": "regression", "b": "classification"}, **kw)
    three = from_csv(path, targets={"b": "classification", "a": "classification", "rid": "regression"}, **kw)
    for split in ("train", "val", "test"):
        assert rows_of(one, split) == rows_of(two, split) == rows_of(three, split)
    # ... and they are exactly `split_indices` of the row count and seed.
    assert rows_of(one, "test") == split_indices(120, seed=3)[2].tolist()
    assert one.info["split"] == {"method": "random"}
    other_seed = from_csv(path, targets={"rid": "regression", "a": "classification"}, **{**kw, "seed": 4})
    assert rows_of(other_seed, "test") != rows_of(one, "test")


def test_split_column_is_honoured_whatever_the_case(tmp_path):
    names = ["train", "Train", "TRAINING", "dev", "Val", " validation ", "valid", "test", "TEST", "testing"]
    rows = [[i, "ab"[i % 2], names[i % 10], i] for i in range(40)]
    path = write(tmp_path, ["x", "label", "part", "rid"], rows)
    ds = from_csv(path, targets={"label": "classification", "rid": "regression"}, split_column="part",
                  standardise_targets=False, seed=5, val_fraction=0.4, test_fraction=0.1)
    assert rows_of(ds, "train") == [i for i in range(40) if i % 10 in (0, 1, 2)]
    assert rows_of(ds, "val") == [i for i in range(40) if i % 10 in (3, 4, 5, 6)]
    assert rows_of(ds, "test") == [i for i in range(40) if i % 10 in (7, 8, 9)]
    assert ds.info["split_rows"] == {"train": 12, "val": 16, "test": 12}
    assert ds.info["split"] == {"method": "column", "column": "part"}
    assert ds.feature_names == ["x"]  # the split column is not an input
    # The seed does not move a fixed split.
    again = from_csv(path, targets={"label": "classification", "rid": "regression"}, split_column="part",
                     standardise_targets=False, seed=9)
    assert all(rows_of(again, s) == rows_of(ds, s) for s in ("train", "val", "test"))


def test_split_column_through_the_registry(tmp_path):
    rows = [[i, "ab"[i % 2], ["train", "train", "dev", "test"][i % 4]] for i in range(20)]
    path = write(tmp_path, ["x", "label", "part"], rows)
    options = {"path": str(path), "targets": ["label"], "split_column": "part"}
    assert dataset_task_names("csv", options) == ["label"]
    ds = load_dataset("csv", options, seed=0)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (10, 5, 5)
    assert ds.info["split"] == {"method": "column", "column": "part"}


def test_unknown_split_values_are_named_with_their_lines(tmp_path):
    rows = [[i, "ab"[i % 2], "train" if i % 3 else "test"] for i in range(12)]
    rows[4][2], rows[7][2] = "holdout", "Dev2"
    path = write(tmp_path, ["x", "label", "part"], rows)
    with pytest.raises(
        DataError,
        match=r"split column 'part' has unknown value\(s\) 'Dev2', 'holdout' on lines 6 \('holdout'\), "
        r"9 \('Dev2'\); use train, validation \(or val, dev\) or test",
    ):
        from_csv(path, targets=["label"], split_column="part")


def test_empty_split_cells_and_empty_splits_are_refused(tmp_path):
    rows = [[i, "ab"[i % 2], "train" if i % 3 else "test"] for i in range(12)]
    with pytest.raises(DataError, match=r"puts no row in the validation split; mark some rows validation"):
        from_csv(write(tmp_path, ["x", "label", "part"], rows), targets=["label"], split_column="part")
    rows[2][2] = None
    with pytest.raises(DataError, match=r"split column 'part' is empty on line 4; give every row"):
        from_csv(write(tmp_path, ["x", "label", "part"], rows), targets=["label"], split_column="part")


@pytest.mark.parametrize(
    "kwargs, message",
    [({"split_column": "nope"}, r"split column 'nope' is not in the file"),
     ({"split_column": "label"}, r"column 'label' is both the split column and a target"),
     ({"split_column": "x", "inputs": ["x"]}, r"column 'x' is both the split column and an input")],
)
def test_split_column_that_cannot_be_used_is_refused(tmp_path, kwargs, message):
    rows = [[i, "ab"[i % 2]] for i in range(12)]
    with pytest.raises(DataError, match=message):
        from_csv(write(tmp_path, ["x", "label"], rows), targets=["label"], **kwargs)


def test_a_small_file_with_its_own_split_skips_the_fraction_check(tmp_path):
    # 3 rows cannot be split 70/15/15 at random, but a file that says where each row goes can.
    path = write(tmp_path, ["x", "label", "part"], [[0, "a", "train"], [1, "b", "dev"], [2, "a", "test"]])
    ds = from_csv(path, targets=["label"], split_column="part")
    assert ds.info["split_rows"] == {"train": 1, "val": 1, "test": 1}
    assert np.array_equal(ds.test.y["label"].numpy(), [0])
