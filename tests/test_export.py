"""`mtl-lab export RUN` carries what `mtl-lab show` prints (issue 16, item 4): the trivial
baseline of each task and why its primary metric is macro-F1, so an exported table cannot
hide a collapse to the majority class; results stored before those fields export as before,
with those cells empty. Stored results written by hand, `cli.main` in this process."""

from __future__ import annotations

import csv
import json

import pytest
from test_cli import cli  # noqa: F401  (test_cli's in-process `mtl-lab`, its own MTL_LAB_HOME)

from mtl_core.export import RESULT_COLUMNS, results_frame
from mtl_core.store import RunStore

CONFIG = {"dataset": {"name": "mmoe_synthetic", "options": {"n_samples": 300, "input_dim": 8}}, "steps": 40}
REASON = "macro-F1 (majority class 91 %)"
# A classifier that collapsed to the majority class: its macro-F1 is the trivial baseline's,
# and its accuracy (0.91) would look fine on its own.
COLLAPSED = {"name": "churn", "kind": "classification", "metric": "macro_f1", "higher_is_better": True,
             "metric_reason": REASON, "trivial": {"name": "predict the majority class", "value": 0.4764,
                                                  "metrics": {"accuracy": 0.91, "macro_f1": 0.4764}},
             "stl": 0.62, "mtl": 0.4764, "delta_pct": -23.16, "verdict": "hurt", "stl_std": 0.01,
             "mtl_std": 0.0, "low": -0.16, "high": -0.13}
PRICE = {"name": "price", "kind": "regression", "metric": "mse", "higher_is_better": False, "metric_reason": "",
         "trivial": {"name": "predict the training mean", "value": 1.02}, "stl": 0.5, "mtl": 0.45,
         "delta_pct": 10.0}
OLD = {"name": "y1", "kind": "regression", "metric": "mse", "higher_is_better": False,  # before issue 16
       "stl": 0.5, "mtl": 0.25, "delta_pct": 50.0}


def _stored(lab, tasks: list[dict], **extra) -> str:
    with RunStore(lab.tmp / "home" / "mtl_lab.db") as store:
        run_id = store.create_run(CONFIG, name="exported")
        store.log_metrics(run_id, [("mtl", 10, t["name"], "train", "loss", 0.5, 1.0) for t in tasks])
        store.save_result(run_id, {"tasks": tasks, "delta_m": -6.58, **extra})
        store.set_status(run_id, "finished")
    return run_id


def _export(lab, run_id: str) -> tuple[list[dict[str, str]], dict]:
    assert lab("export", run_id, "--format", "csv", "--out", "e.csv").returncode == 0
    assert lab("export", run_id, "--format", "json", "--out", "e.json").returncode == 0
    rows = list(csv.DictReader((lab.tmp / "e_results.csv").open(encoding="utf-8")))
    return rows, json.loads((lab.tmp / "e.json").read_text())


def test_export_carries_the_trivial_baseline_and_the_metric_reason(cli):  # noqa: F811 - the fixture
    run_id = _stored(cli, [COLLAPSED, PRICE], delta_m_verdict="hurt")
    rows, exported = _export(cli, run_id)
    assert list(rows[0]) == ["run_id", "run_name", *RESULT_COLUMNS, "delta_m", "delta_m_verdict"]
    churn, price = rows
    assert churn["trivial_baseline"] == "predict the majority class"
    assert float(churn["trivial"]) == pytest.approx(0.4764) == float(churn["mtl"])  # the collapse, in plain view
    assert churn["metric_reason"] == REASON and churn["metric"] == "macro_f1"
    assert (churn["verdict"], churn["low"], churn["high"], churn["stl_std"]) == ("hurt", "-0.16", "-0.13", "0.01")
    assert price["trivial_baseline"] == "predict the training mean" and float(price["trivial"]) == 1.02
    assert price["metric_reason"] == "" and price["verdict"] == ""  # one seed: no verdict to export
    assert [r["delta_m"] for r in rows] == ["-6.58", "-6.58"] and churn["delta_m_verdict"] == "hurt"

    table = exported["results_table"]  # the JSON export holds the same table
    assert [r["name"] for r in table] == ["churn", "price"]
    assert table[0]["trivial"] == pytest.approx(0.4764) and table[0]["metric_reason"] == REASON
    assert table[1]["verdict"] is None and exported["result"]["tasks"][0]["trivial"]["metrics"]["accuracy"] == 0.91

    # `show` prints the same two facts the export now carries.
    shown = cli("show", run_id).stdout
    assert "predict the majority class" in shown and f"primary metric of churn: {REASON}" in shown


def test_results_stored_before_the_trivial_baseline_export_as_before_with_empty_cells(cli):  # noqa: F811 - the fixture
    run_id = _stored(cli, [OLD])
    rows, exported = _export(cli, run_id)
    (row,) = rows
    assert (row["name"], row["kind"], row["metric"], row["higher_is_better"]) == ("y1", "regression", "mse", "False")
    assert (float(row["stl"]), float(row["mtl"]), float(row["delta_pct"])) == (0.5, 0.25, 50.0)
    for empty in ("trivial_baseline", "trivial", "metric_reason", "verdict", "stl_std", "low", "delta_m_verdict"):
        assert row[empty] == "", empty
    (record,) = exported["results_table"]
    assert record["trivial"] is None and record["metric_reason"] is None and record["stl"] == 0.5


def test_results_frame_skips_damaged_rows_and_keeps_an_empty_table_shaped():
    run = {"id": "r1", "name": None}
    frame = results_frame({"tasks": [OLD, "not a task", {**PRICE, "trivial": 3.0}]}, run)
    assert list(frame["name"]) == ["y1", "price"]
    assert frame["trivial"].isna().all()  # a trivial that is not a {name, value} mapping: empty, not a crash
    empty = results_frame({"tasks": "damaged"}, run)
    assert empty.empty and list(empty.columns) == ["run_id", "run_name", *RESULT_COLUMNS, "delta_m", "delta_m_verdict"]
