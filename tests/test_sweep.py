"""Sweeps (issue 14): config and expansion, the store's sweeps, the local and batched executors, the CLI."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from mtl_core import store as store_module
from mtl_core.cli import main
from mtl_core.config import ExperimentConfig
from mtl_core.errors import ConfigError, StoreError
from mtl_core.executors import cancel_sweep, run_sweep, start_sweep
from mtl_core.experiment import run_experiment
from mtl_core.pareto import pareto_mask
from mtl_core.store import RunStore, sweep_status
from mtl_core.sweep import (
    SweepConfig,
    create_sweep,
    expand,
    mirror_line,
    simplex_grid,
    sweep_table,
)

ROOT = Path(__file__).resolve().parent.parent

# A small two-task regression (Ma et al., 2018) that trains in about a second.
BASE = {
    "dataset": {"name": "mmoe_synthetic", "options": {"n_tasks": 2, "n_samples": 400, "input_dim": 8}},
    "model": {"hidden": [16]}, "steps": 40, "eval_every": 20, "log_every": 10, "batch_size": 32,
    "affinity_every": 0, "seed": 0, "device": "cpu",
}


def sweep(axes: dict, **extra) -> SweepConfig:
    return SweepConfig.parse({"base": BASE, "axes": axes, **extra})


# ---- expansion and validation ----------------------------------------------------------------
def test_simplex_grid_of_two_tasks_runs_from_one_task_to_the_other():
    grid = simplex_grid(["y1", "y2"], 4)
    assert grid == [{"y1": 2.0, "y2": 0.0}, {"y1": 1.5, "y2": 0.5}, {"y1": 1.0, "y2": 1.0},
                    {"y1": 0.5, "y2": 1.5}, {"y1": 0.0, "y2": 2.0}]
    assert simplex_grid(["a", "b"], 2, total=1.0) == [{"a": 1.0, "b": 0.0}, {"a": 0.5, "b": 0.5}, {"a": 0.0, "b": 1.0}]


def test_three_task_simplex_of_resolution_5_has_21_distinct_points_summing_to_3():
    grid = simplex_grid(["y1", "y2", "y3"], 5)
    assert len(grid) == 21
    assert all(math.isclose(sum(w.values()), 3.0) for w in grid)
    assert len({tuple(w.values()) for w in grid}) == 21
    assert {"y1": 1.2, "y2": 1.2, "y3": 0.6} in [{k: round(v, 9) for k, v in w.items()} for w in grid]


def test_mirror_line_runs_from_the_weights_to_their_mirror():
    line = mirror_line({"y1": 1.5, "y2": 0.5}, 5)
    assert line == [{"y1": 1.5, "y2": 0.5}, {"y1": 1.25, "y2": 0.75}, {"y1": 1.0, "y2": 1.0},
                    {"y1": 0.75, "y2": 1.25}, {"y1": 0.5, "y2": 1.5}]
    assert mirror_line({"y1": 1.0, "y2": 1.0}, 3) == [{"y1": 2.0, "y2": 0.0}, {"y1": 1.0, "y2": 1.0}, {"y1": 0.0, "y2": 2.0}]
    assert len(expand(sweep({"weights": {"values": mirror_line({"y1": 2.0, "y2": 1.0})}}))) == 9
    with pytest.raises(ConfigError, match="at least 2 points"):
        mirror_line({"y1": 1.0}, 1)


def test_weight_grid_strategies_and_dotted_keys_expand_into_validated_configs():
    points = expand(sweep({"weights": {"simplex": 4}, "weighting": ["manual", "uncertainty"],
                           "params": {"optimizer.lr": [0.001, 0.01]}}, name="grid"))
    # 5 weightings × manual + 1 × uncertainty (it sets the weights itself), × 2 learning rates
    assert len(points) == 12
    assert [p.index for p in points] == list(range(12))
    manual = [p for p in points if p.values["weighting"] == "manual"]
    assert [p.config.weights for p in manual[:5]] == simplex_grid(["y1", "y2"], 4)
    assert {p.config.optimizer.lr for p in manual} == {0.001, 0.01}
    adaptive = [p for p in points if p.values["weighting"] == "uncertainty"]
    assert len(adaptive) == 2 and all(p.config.weights == {} and "weights" not in p.values for p in adaptive)
    assert manual[1].label == "manual w=(1.5, 0.5) hard optimizer.lr=0.001"
    assert points[0].config.name == "grid #0"
    assert all(isinstance(p.config, ExperimentConfig) for p in points)


def test_sharing_and_seed_axes_multiply():
    points = expand(sweep({"sharing": ["hard", "soft"], "seed": [0, 1, 2]}))
    assert [(p.config.sharing.name, p.config.seed) for p in points] == [
        ("hard", 0), ("hard", 1), ("hard", 2), ("soft", 0), ("soft", 1), ("soft", 2)]


@pytest.mark.parametrize("axes, message", [
    ({"weighting": ["manual", "nope"]}, r"axes\.weighting\[1\]\.name: unknown weighting strategy 'nope'; choose one of: manual"),
    ({"sharing": ["hard", "bogus"]}, r"axes\.sharing\[1\]: sharing\.name: unknown sharing mode 'bogus'"),
    ({"weights": {"simplex": 4, "values": [{"y1": 1}]}}, r"axes\.weights: give either simplex .* or values"),
    ({"weights": {}}, r"axes\.weights: give either simplex"),
    ({"weights": {"values": [{"y1": 1, "y2": 1}, {"y1": -1, "y2": 1}]}}, r"axes\.weights\[1\]: weights: weight of task 'y1' is -1\.0; loss weights must be ≥ 0"),
    ({"weights": {"values": [{"y1": 0, "y2": 0}]}}, r"axes\.weights\[0\]: weights: all task weights are zero"),
    ({"weights": {"values": [{"y9": 1}]}}, r"axes\.weights\[0\]: weights: 'y9' is not a task of this run"),
    ({"weights": {"simplex": 4, "tasks": ["y1", "y7"]}}, r"axes\.weights\.tasks: 'y7' is not a task of the base run; choose from: y1, y2"),
    ({"weights": {"values": []}}, r"axes\.weights\.values: the list is empty"),
    ({"seed": []}, r"axes\.seed: the list is empty"),
    ({"seed": [0, -3]}, r"axes\.seed\[1\]: seed: Input should be greater than or equal to 0"),
    ({"params": {"optimizer.lrr": [0.1]}}, r"axes\.params\.optimizer\.lrr\[0\]: optimizer\.lrr: unknown field; remove it or check its spelling"),
    ({"params": {"optimizer.lr": [0.1, 0]}}, r"axes\.params\.optimizer\.lr\[1\]: optimizer\.lr: Input should be greater than 0"),
    ({"params": {"dataset.options.correlation": [2.0]}}, r"axes\.params\.dataset\.options\.correlation\[0\]: dataset\.options\.correlation"),
    ({"params": {"optimizer.lr": []}}, r"axes\.params\.optimizer\.lr: give a non-empty list"),
    ({"params": {"weights.y1": [1, 2]}}, r"axes\.params: 'weights\.y1' has its own axis; use axes\.weights"),
    ({"weighting": ["manual", "manual"]}, r"axes\.weighting: 'manual' is listed twice"),
    ({"bogus": [1]}, r"axes\.bogus: unknown field"),
    ({"weights": {"simplex": 2}, "weighting": ["uncertainty"]},
     r"axes\.weights: weighting uncertainty sets every task weight itself.*add manual to axes\.weighting"),
])
def test_each_bad_axis_is_refused_with_a_message_naming_it(axes, message):
    with pytest.raises(ConfigError, match=message):
        expand(sweep(axes))


def test_a_simplex_over_four_tasks_says_to_list_values():
    base = {**BASE, "dataset": {"name": "mmoe_synthetic", "options": {"n_tasks": 4, "n_samples": 400}}}
    with pytest.raises(ConfigError, match=r"simplex grid is for 2 or 3 tasks, this run has 4 .*axes\.weights\.values"):
        expand(SweepConfig.parse({"base": base, "axes": {"weights": {"simplex": 3}}}))


def test_sweep_file_reads_its_base_relative_to_itself(tmp_path):
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "base.yaml").write_text(json.dumps(BASE))
    (tmp_path / "exp" / "sweep.yaml").write_text("base: base.yaml\nset: {steps: 30}\naxes: {weights: {simplex: 2}}\n")
    points = expand(SweepConfig.from_file(tmp_path / "exp" / "sweep.yaml"))
    assert len(points) == 3 and all(p.config.steps == 30 for p in points)
    (tmp_path / "exp" / "bad.yaml").write_text("base: missing.yaml\n")
    with pytest.raises(ConfigError, match=r"base: file .*missing\.yaml does not exist"):
        expand(SweepConfig.from_file(tmp_path / "exp" / "bad.yaml"))
    with pytest.raises(ConfigError, match=r"executor: Input should be 'local', 'batched' or 'ray'"):
        SweepConfig.parse({"base": BASE, "executor": "slurm"})


def test_the_example_sweep_is_valid():
    points = expand(SweepConfig.from_file(ROOT / "examples" / "sweep.yaml"))
    assert len(points) == 11  # 9 weightings + uncertainty + nash_mtl
    assert [p.values["weighting"] for p in points[-2:]] == ["uncertainty", "nash_mtl"]


# ---- the store ------------------------------------------------------------------------------
@pytest.fixture
def store(tmp_path):
    with RunStore(tmp_path / "lab" / "mtl_lab.db") as s:
        yield s


def test_a_stored_sweep_has_one_queued_run_per_point(store):
    sid = create_sweep(store, sweep({"weights": {"simplex": 2}}, name="s"))
    assert sid.startswith("sweep-")
    info = store.get_sweep(sid)
    assert info["points"] == 3 and info["counts"] == {"queued": 3} and info["status"] == "running"
    runs = store.sweep_runs(sid)
    assert [p["index"] for p in runs["point"]] == [0, 1, 2]
    assert [c["weights"] for c in runs["config"]] == simplex_grid(["y1", "y2"], 2)
    assert store.get_run(runs["id"][0])["sweep_id"] == sid
    listed = store.sweeps()
    assert listed.loc[0, "id"] == sid and listed.loc[0, "queued"] == 3 and listed.loc[0, "points"] == 3
    with pytest.raises(StoreError, match="no sweep 'sweep-nope'; `mtl-lab sweeps` lists"):
        store.get_sweep("sweep-nope")


def test_sweep_status_is_derived_from_its_runs():
    assert sweep_status({"queued": 2, "finished": 1}) == "running"
    assert sweep_status({"finished": 3}) == "finished"
    assert sweep_status({"finished": 2, "interrupted": 1}) == "partial"
    assert sweep_status({"failed": 3}) == "failed"
    assert sweep_status({"finished": 1, "cancelled": 2}, cancel_requested=True) == "cancelled"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_queued_points_wait_while_their_driver_lives_and_are_interrupted_when_it_dies(store, monkeypatch):
    monkeypatch.setattr(store_module, "QUEUED_GRACE_S", -1.0)  # a lone queued run would be interrupted at once
    sid = create_sweep(store, sweep({"weights": {"simplex": 1}}))
    store.set_sweep_driver(sid, os.getpid())
    assert store.mark_interrupted() == []
    assert store.get_sweep(sid)["counts"] == {"queued": 2}
    dead = _dead_pid()
    store.set_sweep_driver(sid, dead)
    assert len(store.mark_interrupted()) == 2
    runs = store.sweep_runs(sid)
    assert set(runs["status"]) == {"interrupted"}
    assert f"driver (pid {dead}) ended before starting it" in runs["error"][0]
    assert store.get_sweep(sid)["status"] == "failed"


def test_interrupt_run_ends_only_an_active_run(store):
    rid = store.create_run(BASE)
    assert store.interrupt_run(rid, "its Ray worker or node died")
    run = store.get_run(rid)
    assert run["status"] == "interrupted" and run["error"] == "its Ray worker or node died"
    assert not store.interrupt_run(rid, "again")  # already ended: left as it is
    assert store.get_run(rid)["error"] == "its Ray worker or node died"


def test_a_sweep_is_cancelled_and_deleted_as_a_whole(store):
    sid = create_sweep(store, sweep({"weights": {"simplex": 2}}))
    driver = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        store.set_sweep_driver(sid, driver.pid)  # a live driver (another process): its points stay queued
        with pytest.raises(StoreError, match=r"still has 3 queued or running run\(s\).*mtl-lab cancel " + sid):
            store.delete_sweep(sid)
        assert cancel_sweep(sid, store_path=store.path) == 3
        info = store.get_sweep(sid)
        assert info["cancel_requested"] and info["status"] == "running"  # until its driver sees it
        outcome = run_sweep(sid, executor="local", store_path=store.path)  # a driver: launches nothing, cancels
        assert outcome.status == "cancelled"
    finally:
        driver.kill()
        driver.wait()
    info = store.get_sweep(sid)
    assert info["counts"] == {"cancelled": 3} and info["status"] == "cancelled"
    other = store.create_run(BASE)
    assert store.delete_sweep(sid) == 3
    assert store.sweeps().empty
    assert list(store.runs()["id"]) == [other]  # the runs outside the sweep stay


# ---- executors ----------------------------------------------------------------------------------
def _metrics(store: RunStore, sid: str) -> dict[int, dict[str, float]]:
    out = {}
    for _, run in store.sweep_runs(sid).iterrows():
        result = store.result(run["id"])
        out[run["point"]["index"]] = {r["name"]: r["mtl"] for r in result["tasks"]}
    return out


def _trained_baselines(store: RunStore, sid: str) -> dict[str, int]:
    trained: dict[str, int] = {}
    for rid in store.sweep_runs(sid)["id"]:
        for task, b in store.result(rid)["baselines"].items():
            trained[task] = trained.get(task, 0) + (not b["cached"])
    return trained


def test_local_and_batched_executors_give_the_same_metrics_and_train_each_baseline_once(tmp_path):
    config = sweep({"weights": {"values": [{"y1": 1.5, "y2": 0.5}, {"y1": 1, "y2": 1}, {"y1": 0.5, "y2": 1.5}]}})
    expected = {i: {r["name"]: r["mtl"] for r in run_experiment(p.config)["tasks"]}
                for i, p in enumerate(expand(config))}
    metrics = {}
    for executor in ("local", "batched"):
        path = tmp_path / executor / "mtl_lab.db"
        with RunStore(path) as store:
            sid = create_sweep(store, config, executor=executor)
        outcome = run_sweep(sid, executor=executor, workers=2, store_path=path)
        assert outcome.status == "finished", outcome.runs
        with RunStore(path) as store:
            metrics[executor] = _metrics(store, sid)
            assert _trained_baselines(store, sid) == {"y1": 1, "y2": 1}  # once each, then the cache
            execution = [store.result(r)["execution"] for r in store.sweep_runs(sid)["id"]] if executor == "batched" else []
        assert all(e == {"executor": "batched", "ensemble_size": 3} for e in execution)
    for i, tasks in expected.items():
        for t, value in tasks.items():
            # local: the very same worker as a single run
            assert metrics["local"][i][t] == pytest.approx(value, rel=1e-6)
            # batched: a stacked ensemble, equal up to float rounding of the batched kernels
            assert metrics["batched"][i][t] == pytest.approx(value, rel=1e-3)


def test_batched_points_of_other_seeds_and_of_several_seeds_train_as_one_ensemble(tmp_path):
    """Points that differ in seed share an ensemble, each member on its own seed's draw of
    the data; a point of n_seeds = 2 is two members, aggregated as run_experiment does."""
    config = SweepConfig.parse({"base": {**BASE, "n_seeds": 2}, "axes": {
        "weights": {"values": [{"y1": 1.5, "y2": 0.5}, {"y1": 0.5, "y2": 1.5}]}, "seed": [0, 3]}})
    points = expand(config)
    assert len(points) == 4
    expected = [run_experiment(p.config) for p in points]
    path = tmp_path / "lab" / "mtl_lab.db"
    with RunStore(path) as store:
        sid = create_sweep(store, config, executor="batched")
    assert run_sweep(sid, executor="batched", store_path=path).status == "finished"
    with RunStore(path) as store:
        runs = store.sweep_runs(sid)
        results = [store.result(r) for r in runs["id"]]
        phases = set(store.metrics(runs["id"].iloc[0])["phase"])
    assert all(r["execution"] == {"executor": "batched", "ensemble_size": 8} for r in results)  # 4 points × 2 seeds
    assert {"mtl", "mtl@1", "stl:y1", "stl:y1@1"} <= phases  # the extra seed's curves under their own names
    for mine, theirs in zip(results, expected):
        assert mine["seeds"] == theirs["seeds"]
        for a, b in zip(mine["tasks"], theirs["tasks"]):
            assert a["n_seeds"] == b["n_seeds"] == 2
            assert a["stl"] == pytest.approx(b["stl"], rel=1e-6)  # the baselines: the same training
            assert a["mtl"] == pytest.approx(b["mtl"], rel=1e-3)  # the mean over both seeds' members
            assert a["mtl_std"] == pytest.approx(b["mtl_std"], rel=1e-2, abs=1e-6)
            assert a["verdict"] == b["verdict"]
    # seed 3's points learned another draw of the data than seed 0's
    assert results[0]["tasks"][0]["mtl"] != pytest.approx(results[1]["tasks"][0]["mtl"], rel=1e-3)


def test_sweep_table_gives_points_weights_metrics_and_the_front(tmp_path):
    path = tmp_path / "lab" / "mtl_lab.db"
    with RunStore(path) as store:
        sid = create_sweep(store, sweep({"weights": {"simplex": 2}, "weighting": ["manual", "equal"]}))
    assert run_sweep(sid, executor="batched", store_path=path).status == "finished"
    with RunStore(path) as store:
        table = sweep_table(store, sid)
    p = table.points
    assert list(p["index"]) == [0, 1, 2, 3]
    assert list(p["strategy"]) == ["manual", "manual", "manual", "equal"]
    assert p[["w:y1", "w:y2"]].iloc[:3].values.tolist() == [[2.0, 0.0], [1.0, 1.0], [0.0, 2.0]]
    assert p[["w:y1", "w:y2"]].iloc[3].isna().all()  # equal sets the weights itself: no manual weights
    for col in ("val:y1", "val:y2", "test:y1", "test:y2", "delta_m"):
        assert p[col].notna().all() and (p[col].abs() < 1e4).all()
    assert list(p["is_front"]) == pareto_mask(p[["val:y1", "val:y2"]].to_numpy(), [False, False]).tolist()
    assert p["is_front"].any()
    # the weight-(2, 0) point learns y2 not at all: far worse on y2 than (1, 1)
    assert p.loc[0, "test:y2"] > p.loc[1, "test:y2"]
    t = table.tasks
    assert list(t["task"]) == ["y1", "y2"] and list(t["metric"]) == ["mse", "mse"]
    assert not t["higher_is_better"].any() and t["baseline_val"].notna().all() and t["baseline_test"].notna().all()
    # equal weighting is the manual (1, 1) point, here trained on its own (alone in its ensemble group)
    assert p.loc[3, "test:y1"] == pytest.approx(p.loc[1, "test:y1"], rel=1e-3)


@pytest.mark.slow
def test_killing_one_local_worker_marks_only_its_point_interrupted(tmp_path):
    path = tmp_path / "lab" / "mtl_lab.db"
    config = SweepConfig.parse({"base": {**BASE, "steps": 1500, "eval_every": 250},
                                "axes": {"weights": {"simplex": 2}}})
    with RunStore(path) as store:
        sid = create_sweep(store, config)
    outcome: dict = {}
    driver = threading.Thread(target=lambda: outcome.update(o=run_sweep(sid, executor="local", workers=3,
                                                                         store_path=path)))
    driver.start()
    victim = None
    deadline = time.monotonic() + 120
    with RunStore(path) as store:
        while victim is None and time.monotonic() < deadline:
            runs = store.sweep_runs(sid)
            training = runs[(runs["status"] == "running") & (runs["phase"] == "mtl") & (runs["step"] > 0)]
            if len(training):
                victim = training.iloc[0]
            else:
                time.sleep(0.1)
    assert victim is not None, "no point reached its multi-task phase in time"
    os.kill(int(victim["pid"]), signal.SIGKILL)
    driver.join(timeout=300)
    assert not driver.is_alive()
    statuses = outcome["o"].runs
    assert statuses[victim["id"]] == "interrupted"
    assert sorted(s for r, s in statuses.items() if r != victim["id"]) == ["finished", "finished"]
    assert outcome["o"].status == "partial"
    with RunStore(path) as store:
        assert "ended without recording why" in store.get_run(victim["id"])["error"]


def _wait_sweep(store: RunStore, sid: str, until, timeout: float = 240.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        store.mark_interrupted()
        info = store.get_sweep(sid)
        if until(info):
            return info
        time.sleep(0.2)
    raise AssertionError(f"sweep {sid} did not get there in {timeout} s: {store.get_sweep(sid)}")


@pytest.mark.slow
def test_a_background_sweep_runs_in_its_own_driver_and_is_cancelled_as_a_whole(tmp_path):
    path = tmp_path / "lab" / "mtl_lab.db"
    config = SweepConfig.parse({"base": {**BASE, "steps": 3000, "eval_every": 500},
                                "axes": {"weights": {"simplex": 2}}})
    sid = start_sweep(config, executor="local", workers=1, store_path=path)
    with RunStore(path) as store:
        info = store.get_sweep(sid)
        assert info["driver_pid"] not in (None, os.getpid()) and info["driver_alive"]
        _wait_sweep(store, sid, lambda i: i["counts"].get("running", 0) == 1)
        assert cancel_sweep(sid, store_path=path) == 3
        info = _wait_sweep(store, sid, lambda i: i["status"] != "running")
        assert info["status"] == "cancelled" and info["counts"] == {"cancelled": 3}
        deadline = time.monotonic() + 30
        while store.get_sweep(sid)["driver_alive"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not store.get_sweep(sid)["driver_alive"]  # the driver ended once nothing was left


# ---- the CLI --------------------------------------------------------------------------------
def test_cli_sweep_then_show_export_and_delete_it(tmp_path, capsys):
    f = tmp_path / "sweep.yaml"
    f.write_text(json.dumps({"name": "cli", "base": BASE,
                             "axes": {"weights": {"simplex": 2}, "weighting": ["manual", "uncertainty"]}}))
    assert main(["sweep", "--config", str(f), "--executor", "batched", "-q"]) == 0
    out, err = capsys.readouterr()
    sid = next(w for w in err.split() if w.startswith("sweep-")).rstrip(":")
    assert "manual w=(2, 0) hard" in out and "uncertainty hard" in out and "val y1 mse ↓" in out
    assert "single-task baselines: y1 mse val" in out
    with RunStore() as store:
        runs = store.sweep_runs(sid)
        note = store.result(runs["id"].iloc[-1])["execution"]
    assert note["ensemble_size"] == 1 and "weighting 'uncertainty' is not supported" in note["note"]

    assert main(["sweeps"]) == 0
    assert sid in capsys.readouterr().out
    assert main(["show", sid]) == 0
    assert "status: finished" in capsys.readouterr().out
    assert main(["show", sid, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert len(shown["points"]) == 4 and shown["tasks"][0]["task"] == "y1"
    assert main(["export", sid, "--format", "csv", "--out", str(tmp_path / "pts.csv")]) == 0
    exported = pd.read_csv(tmp_path / "pts.csv")
    assert len(exported) == 4 and {"w:y1", "val:y2", "test:y1", "is_front"} <= set(exported.columns)
    assert (tmp_path / "pts_tasks.csv").exists()
    assert main(["cancel", sid]) == 0
    assert "nothing to cancel" in capsys.readouterr().out
    assert main(["delete", sid]) == 0
    assert "and its 4 run(s)" in capsys.readouterr().out
    assert main(["show", sid]) == 2
    assert f"no sweep {sid!r}" in capsys.readouterr().err


def test_cli_sweep_refuses_a_bad_file_and_bad_workers(tmp_path, capsys):
    f = tmp_path / "sweep.yaml"
    f.write_text(json.dumps({"base": BASE, "axes": {"weighting": ["nope"]}}))
    assert main(["sweep", "--config", str(f)]) == 2
    assert "axes.weighting[0].name: unknown weighting strategy 'nope'" in capsys.readouterr().err
    f.write_text(json.dumps({"base": BASE}))
    assert main(["sweep", "--config", str(f), "--workers", "0"]) == 2
    assert "--workers 0: give at least 1" in capsys.readouterr().err
    with RunStore() as store:
        assert store.sweeps().empty  # nothing stored for a refused sweep
