"""Your own data end to end: a CSV becomes a multi-task dataset that trains and is stored."""

from __future__ import annotations

import csv

import pytest

from mtl_core.config import ExperimentConfig, apply_overrides
from mtl_core.errors import ConfigError
from mtl_core.experiment import run_experiment
from mtl_core.tasks import PAD_ID, from_csv, load_dataset
from mtl_core.tasks.base import IGNORE_INDEX


def write_toy_language_csv(path, n=240):
    """A toy_language sample written as a user's CSV: a text column, two tag columns, labels."""
    ds = load_dataset("toy_language", {"n_samples": n}, seed=0)
    vocab = ds.vocab
    specs = ds.tasks
    rows = []
    for split in (ds.train, ds.val, ds.test):
        for i in range(len(split)):
            ids = [int(t) for t in split.x[i] if int(t) != PAD_ID]
            words = [vocab[t] for t in ids]
            row = {"text": " ".join(words)}
            for task in ("pos", "ner"):
                tags = [specs[task].class_names[int(v)] for v in split.y[task][i][: len(ids)]]
                row[task] = " ".join(tags)
            for task in ("topic", "sentiment"):
                row[task] = specs[task].class_names[int(split.y[task][i])]
            rows.append(row)
    rows[3]["topic"] = ""  # a missing label: masked, the row is kept
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def test_a_toy_language_sample_round_trips_through_csv_and_trains(tmp_path):
    path = tmp_path / "toy.csv"
    rows = write_toy_language_csv(path)
    targets = {"pos": "tagging", "ner": "tagging", "topic": "classification", "sentiment": "classification"}
    ds = from_csv(path, targets=targets, text_column="text", seed=0)
    assert ds.input_kind == "tokens"
    assert len(ds.train) + len(ds.val) + len(ds.test) == len(rows)
    assert ds.tasks["ner"].kind == "tagging" and "B-PER" in ds.tasks["ner"].class_names
    topic = ds.train.y["topic"].tolist() + ds.val.y["topic"].tolist() + ds.test.y["topic"].tolist()
    assert topic.count(IGNORE_INDEX) == 1

    config = ExperimentConfig.parse(apply_overrides(
        {"steps": 6, "batch_size": 16, "eval_every": 3, "model": {"hidden": [16], "embed_dim": 8}},
        ["dataset=csv", f"dataset.path={path}", "dataset.text_column=text",
         "dataset.targets={pos: tagging, ner: tagging, topic: classification, sentiment: classification}"],
    ))
    assert config.task_list() == ["pos", "ner", "topic", "sentiment"]
    result = run_experiment(config)
    by_task = {t["name"]: t for t in result["tasks"]}
    assert by_task["ner"]["metric"] == "entity_f1" and by_task["pos"]["metric"] == "token_accuracy"
    assert all(t["mtl"] is not None and t["stl"] is not None for t in result["tasks"])


def test_a_csv_with_fewer_rows_than_the_batch_size_is_refused_before_training(tmp_path):
    path = tmp_path / "small.csv"
    path.write_text("a,b,y\n" + "".join(f"{i},{i % 3},{i * 0.5}\n" for i in range(10)))
    config = ExperimentConfig.parse({"dataset": {"name": "csv", "options": {"path": str(path), "targets": ["y"]}},
                                     "batch_size": 32, "steps": 5})
    with pytest.raises(Exception) as info:
        run_experiment(config)
    assert "batch size 32" in str(info.value) and "small.csv" in str(info.value)


def test_a_csv_target_that_is_not_in_the_file_is_a_config_error(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,y\n1,2\n3,4\n5,6\n7,8\n")
    with pytest.raises(ConfigError, match="nope"):
        ExperimentConfig.parse({"dataset": {"name": "csv", "options": {"path": str(path), "targets": ["nope"]}}})
