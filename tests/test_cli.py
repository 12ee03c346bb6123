"""`mtl-lab` end to end on a tiny budget: in-process (`cli.main` with the output captured),
which skips the seconds each subprocess spends importing torch, and once as a real
subprocess (`python -m mtl_core`), the way a user runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mtl_core import cli as cli_module

ROOT = Path(__file__).resolve().parents[1]

TINY = {
    "name": "tiny",
    "dataset": {"name": "mmoe_synthetic", "options": {"n_samples": 300, "input_dim": 8}},
    "model": {"hidden": [16]},
    "steps": 40,
    "batch_size": 32,
    "eval_every": 20,
    "seed": 0,
}


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    """`cli("run", ...)` -> CompletedProcess(returncode, stdout, stderr) of `mtl-lab` run in
    this process, in `tmp_path`, with its own MTL_LAB_HOME."""
    monkeypatch.setenv("MTL_LAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        capsys.readouterr()  # what earlier calls printed is theirs
        sigterm = signal.getsignal(signal.SIGTERM)  # a foreground run installs its own
        try:
            code = cli_module.main(list(args))
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        finally:
            signal.signal(signal.SIGTERM, sigterm)
        out = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), code, out.out, out.err)

    run.config = str(config)  # type: ignore[attr-defined]
    run.tmp = tmp_path  # type: ignore[attr-defined]
    return run


@pytest.fixture
def cli_process(tmp_path):
    """The same, as a real `python -m mtl_core` subprocess."""
    env = {**os.environ, "MTL_LAB_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "mtl_core", *args], cwd=tmp_path, env=env, capture_output=True,
            text=True, timeout=timeout,
        )

    run.config = str(config)  # type: ignore[attr-defined]
    run.tmp = tmp_path  # type: ignore[attr-defined]
    return run


def test_list_shows_every_registry_entry_as_text_and_json(cli):
    out = cli("list", "datasets", "--json")
    assert out.returncode == 0, out.stderr
    names = {e["name"] for e in json.loads(out.stdout)}
    assert {"mmoe_synthetic", "toy_language", "penguins", "digits", "csv"} <= names
    sharing = cli("list", "sharing")
    assert sharing.returncode == 0 and "hard" in sharing.stdout and "soft" in sharing.stdout
    weighting = json.loads(cli("list", "weighting", "--json").stdout)
    assert "manual" in {e["name"] for e in weighting}


@pytest.mark.slow
def test_run_prints_the_comparison_table_and_writes_the_results_json(cli_process):
    cli = cli_process  # the one real subprocess, as a user runs it
    out = cli("run", "--config", cli.config, "--json", "result.json")
    assert out.returncode == 0, out.stderr
    assert "Δm" in out.stdout and "single-task" in out.stdout and "gradient cosine" in out.stdout
    assert "samples/s" in out.stderr  # the tqdm bar
    result = json.loads((cli.tmp / "result.json").read_text())
    for key in ("run_id", "status", "config", "device", "tasks", "delta_m", "interference", "throughput", "history"):
        assert key in result
    assert [t["name"] for t in result["tasks"]] == ["y1", "y2"]
    for t in result["tasks"]:
        assert t["metric"] == "mse" and t["higher_is_better"] is False
        assert t["stl"] > 0 and t["mtl"] > 0
    assert len(result["interference"]["grad_cosine"]) == 2
    assert result["throughput"]["samples_per_s"] > 0
    assert result["status"] == "finished"


def test_set_overrides_reach_the_stored_config(cli):
    out = cli("run", "--config", cli.config, "--set", "sharing=soft", "--set", "weights.y1=2.0",
              "--json", "soft.json", "-q")
    assert out.returncode == 0, out.stderr
    config = json.loads((cli.tmp / "soft.json").read_text())["config"]
    assert config["sharing"]["name"] == "soft" and config["weights"] == {"y1": 2.0}


def test_a_bad_config_value_is_an_error_naming_the_field(cli):
    out = cli("run", "--config", cli.config, "--set", "weights.y1=-1")
    assert out.returncode == 2
    assert "weights" in out.stderr and "≥ 0" in out.stderr
    assert "Traceback" not in out.stderr
    assert json.loads(cli("runs", "--json").stdout) == []  # nothing stored


def test_a_diverging_run_fails_with_task_and_step_and_is_stored_as_failed(cli):
    out = cli("run", "--config", cli.config, "--set", "optimizer.name=sgd", "--set", "optimizer.lr=1e30",
              "--set", "baselines=false")
    assert out.returncode == 1
    assert "diverged" in out.stderr and "at step" in out.stderr
    runs = json.loads(cli("runs", "--json").stdout)
    assert runs[0]["status"] == "failed"


def test_runs_show_export_delete_round_trip(cli):
    assert cli("run", "--config", cli.config, "-q").returncode == 0
    runs = json.loads(cli("runs", "--json").stdout)
    assert len(runs) == 1 and runs[0]["status"] == "finished"
    run_id = runs[0]["id"]

    shown = json.loads(cli("show", run_id, "--json").stdout)
    assert shown["run"]["id"] == run_id and shown["result"]["tasks"][0]["name"] == "y1"
    assert "Δm" in cli("show", run_id).stdout

    assert cli("export", run_id, "--format", "csv", "--out", "curves.csv").returncode == 0
    header = (cli.tmp / "curves.csv").read_text().splitlines()[0]
    assert header.split(",")[:6] == ["phase", "step", "task", "split", "metric", "value"]
    results = (cli.tmp / "curves_results.csv").read_text().splitlines()
    assert "y1" in results[1] and "trivial" in results[0].split(",")  # what `show` prints (test_export.py)
    assert cli("export", run_id, "--format", "json", "--out", "run.json").returncode == 0
    exported = json.loads((cli.tmp / "run.json").read_text())
    assert exported["curves"] and exported["result"]["run_id"] == run_id

    assert cli("delete", run_id).returncode == 0
    assert json.loads(cli("runs", "--json").stdout) == []
    gone = cli("show", run_id)
    assert gone.returncode == 2 and run_id in gone.stderr


@pytest.mark.slow
def test_background_run_can_be_cancelled_and_keeps_its_curves(cli):
    out = cli("run", "--config", cli.config, "--set", "steps=1000000", "--set", "baselines=false", "--background")
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.strip().splitlines()[-1]
    deadline = time.time() + 60
    while time.time() < deadline:
        shown = json.loads(cli("show", run_id, "--json").stdout)
        if shown["run"]["status"] == "running" and (shown["run"].get("step") or 0) > 0:
            break
        time.sleep(0.5)
    assert shown["run"]["status"] == "running"
    assert cli("cancel", run_id).returncode == 0
    while time.time() < deadline:
        status = json.loads(cli("show", run_id, "--json").stdout)["run"]["status"]
        if status != "running":
            break
        time.sleep(0.3)
    assert status == "cancelled"
    again = cli("cancel", run_id)
    assert again.returncode == 0 and "not running" in again.stdout
    curves = cli("export", run_id, "--format", "csv", "--out", "c.csv")
    assert curves.returncode == 0 and len((cli.tmp / "c.csv").read_text().splitlines()) > 1
