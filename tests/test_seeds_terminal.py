"""Seeds in the terminal (issue 16, item 8): with `n_seeds` > 1, `mtl-lab run` and `show`
print each model's mean ± std over the seeds, the stored interval and verdict of each task
and of Δm, and the seeds; the results JSON keeps every seed's numbers (`stl_all_seeds`,
`mtl_all_seeds`) and `stl_all` / `mtl_all` hold the means. One seed: the output as before.
Real tiny runs through `cli.main` in this process."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from test_cli import cli  # noqa: F401  (test_cli's in-process `mtl-lab`, with its tiny.yaml)

from mtl_core import cli as cli_module

VERDICTS = ("helped", "hurt", "no clear difference")
OLD_COLUMNS = ["task", "metric", "single-task", "multi-task", "Δ", "%"]  # the one-seed header, split


def _line(stdout: str, task: str) -> str:
    return next(line for line in stdout.splitlines() if line.split()[:1] == [task])


def test_three_seeds_print_mean_std_interval_verdict_and_keep_every_seed(cli):
    out = cli("run", "--config", "tiny.yaml", "--set", "n_seeds=3", "--json", "three.json", "-q")
    assert out.returncode == 0, out.stderr
    result = json.loads((cli.tmp / "three.json").read_text())
    assert result["seeds"] == [0, 1, 2]
    assert [t["name"] for t in result["tasks"]] == ["y1", "y2"]

    header = out.stdout.splitlines()[0]
    assert "gain, 95 % interval" in header and "verdict" in header
    for t in result["tasks"]:
        metric = t["metric"]
        # The JSON keeps every seed: 3 values per metric for each model; *_all are their means.
        for model in ("stl", "mtl"):
            seeds = t[f"{model}_all_seeds"]
            assert set(seeds) == set(t[f"{model}_all"]) and metric in seeds
            for name, values in seeds.items():
                assert len(values) == 3
                assert t[f"{model}_all"][name] == pytest.approx(float(np.mean(values)), rel=1e-12)
            assert len(set(seeds[metric])) == 3  # three trainings, three different values
            assert t[model] == pytest.approx(t[f"{model}_all"][metric], rel=1e-12)
            assert t[f"{model}_std"] == pytest.approx(float(np.std(seeds[metric], ddof=1)), rel=1e-9)
        # The printed row: mean ± std of each model, Δ, the stored interval and verdict word.
        line = _line(out.stdout, t["name"])
        assert f"{t['stl']:.4g} ± {t['stl_std']:.2g}" in line
        assert f"{t['mtl']:.4g} ± {t['mtl_std']:.2g}" in line
        assert f"{t['delta_pct']:.4g}" in line
        assert f"{t['low']:+.3g} to {t['high']:+.3g}" in line
        assert t["verdict"] in VERDICTS and line.rstrip().endswith(t["verdict"])
    dm_line = next(line for line in out.stdout.splitlines() if line.startswith("Δm = "))
    dmi = result["delta_m_interval"]
    assert result["delta_m_verdict"] in VERDICTS
    assert f"95 % interval {dmi['low']:+.2f} % to {dmi['high']:+.2f} %" in dm_line
    assert f"verdict: {result['delta_m_verdict']};" in dm_line
    assert "seeds: 0, 1, 2 (3 seeds; ± is the standard deviation over seeds)" in out.stdout

    # `show` of the stored run prints the same table.
    run_id = json.loads(cli("runs", "--json").stdout)[0]["id"]
    shown = cli("show", run_id)
    assert shown.returncode == 0, shown.stderr
    assert out.stdout.strip() in shown.stdout

    # Seed 0 of the three is the one-seed run of the same config: its numbers come first,
    # and the one-seed output is the plain table it always was.
    one = cli("run", "--config", "tiny.yaml", "--json", "one.json", "-q")
    assert one.returncode == 0, one.stderr
    single = json.loads((cli.tmp / "one.json").read_text())
    assert single["seeds"] == [0]
    # issue 16 item 4: a new result adds the trivial baseline's column after the metric
    assert one.stdout.splitlines()[0].split() == OLD_COLUMNS[:2] + ["trivial", "baseline"] + OLD_COLUMNS[2:]
    assert "±" not in one.stdout and "seeds:" not in one.stdout and "verdict" not in one.stdout
    assert any(line.startswith("Δm = ") and line.endswith("(mean signed change vs single-task; > 0: "
                                                          "multi-task helps)") for line in one.stdout.splitlines())
    for t1, t3 in zip(single["tasks"], result["tasks"]):
        assert "stl_all_seeds" not in t1 and "mtl_all_seeds" not in t1
        for model in ("stl", "mtl"):
            for name, value in t1[f"{model}_all"].items():
                assert t3[f"{model}_all_seeds"][name][0] == pytest.approx(value, rel=1e-6)


def _row(name: str, **extra) -> dict:
    return {"name": name, "kind": "regression", "metric": "mse", "higher_is_better": False,
            "stl": 0.5, "mtl": 0.4, "delta_pct": 20.0, "stl_all": {"mse": 0.5}, "mtl_all": {"mse": 0.4}, **extra}


def test_an_old_multi_seed_result_without_std_or_interval_still_prints():
    """A run stored before the intervals: means without ±, "—" where nothing is stored."""
    old = {"seed": 3, "tasks": [_row("y1", n_seeds=2, verdict="positive transfer")], "delta_m": 20.0}
    text = cli_module.format_result(old)
    line = _line(text, "y1")
    assert "0.5" in line and "±" not in line and "—" in line and line.rstrip().endswith("positive transfer")
    assert "Δm = 20 %  (verdict: —;" in text
    assert "seeds: 3, 4 (2 seeds" in text


def test_one_seed_result_prints_the_plain_table():
    res = {"seed": 0, "seeds": [0], "tasks": [_row("y1", n_seeds=1, verdict="helped", low=0.01, high=0.2,
                                                    stl_std=None, mtl_std=None)],
           "delta_m": 20.0, "delta_m_verdict": "helped", "delta_m_interval": {"low": 1.0, "high": 30.0}}
    lines = cli_module.format_result(res).splitlines()
    assert lines[0].split() == OLD_COLUMNS
    assert lines[1].split() == ["y1", "mse", "↓", "0.5", "0.4", "20"]
    assert lines[3] == "Δm = 20 %  (mean signed change vs single-task; > 0: multi-task helps)"


def test_per_seed_metrics_mean_and_missing_values():
    """`_all_metrics`: means over seeds, values in seed order, a None (a NaN stored as null)
    kept as NaN; one seed, or a seed without the model: seed 0's metrics, no lists."""
    from mtl_core.experiment import _all_metrics

    out = _all_metrics("stl", [{"mse": 1.0, "mae": 2.0}, {"mse": 3.0, "mae": None}], {"mse": 1.0}, 2)
    assert out["stl_all_seeds"]["mse"] == [1.0, 3.0] and out["stl_all"]["mse"] == 2.0
    assert math.isnan(out["stl_all_seeds"]["mae"][1]) and math.isnan(out["stl_all"]["mae"])
    assert _all_metrics("mtl", [{"mse": 1.0}], {"mse": 1.0}, 1) == {"mtl_all": {"mse": 1.0}}
    assert _all_metrics("stl", [{"mse": 1.0}], {"mse": 1.0}, 2) == {"stl_all": {"mse": 1.0}}
