"""The Ray executor (the `[cluster]` extra) end to end on a real local Ray runtime, not mocked.

Skipped when Ray is not installed (pip install 'mtl-lab[cluster]').
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest

ray = pytest.importorskip("ray", reason="the Ray executor needs the cluster extra: pip install 'mtl-lab[cluster]'")

from mtl_core.executors import ray_point, run_sweep
from mtl_core.experiment import run_experiment
from mtl_core.store import RunStore
from mtl_core.sweep import SweepConfig, create_sweep, expand

pytestmark = pytest.mark.slow

BASE = {
    "dataset": {"name": "mmoe_synthetic", "options": {"n_tasks": 2, "n_samples": 400, "input_dim": 8}},
    "model": {"hidden": [16]}, "steps": 40, "eval_every": 20, "log_every": 10, "batch_size": 32,
    "affinity_every": 0, "seed": 0, "device": "cpu",
}
WEIGHTS = [{"y1": 1.5, "y2": 0.5}, {"y1": 1.0, "y2": 1.0}, {"y1": 0.5, "y2": 1.5}]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    # Ray workers pickle this module's functions by value: they cannot import the test file.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _sweep(path) -> str:
    config = SweepConfig.parse({"base": BASE, "axes": {"weights": {"values": WEIGHTS}}})
    with RunStore(path) as store:
        return create_sweep(store, config, executor="ray")


def test_ray_executor_trains_every_point_like_a_single_run(tmp_path):
    path = tmp_path / "lab" / "mtl_lab.db"
    sid = _sweep(path)
    outcome = run_sweep(sid, executor="ray", workers=2, store_path=path)
    assert outcome.status == "finished", outcome.runs
    points = expand(SweepConfig.parse({"base": BASE, "axes": {"weights": {"values": WEIGHTS}}}))
    with RunStore(path) as store:
        runs = store.sweep_runs(sid)
        trained = {"y1": 0, "y2": 0}
        for _, run in runs.iterrows():
            result = store.result(run["id"])
            expected = run_experiment(points[run["point"]["index"]].config)
            for got, want in zip(result["tasks"], expected["tasks"]):
                assert got["mtl"] == pytest.approx(want["mtl"], rel=1e-6)  # the same execution, elsewhere
                assert got["stl"] == pytest.approx(want["stl"], rel=1e-6)
            assert result["execution"]["executor"] == "ray" and result["execution"]["pid"] != os.getpid()
            assert result["run_id"] == run["id"]
            for task, b in result["baselines"].items():
                trained[task] += not b["cached"]
            # the curves came back to the driver, which wrote them
            curves = store.metrics(run["id"])
            assert set(curves["phase"]) == {"stl:y1", "stl:y2", "mtl"}
            assert curves[(curves["phase"] == "mtl") & (curves["split"] == "val")]["step"].max() == 40
            assert run["pid"] == os.getpid()  # the run lives with its driver
        assert trained == {"y1": 1, "y2": 1}  # each baseline once, then the store's cache


def die_on_the_middle_point(config, cached, live=None):
    """A Ray task whose worker process dies (SIGKILL) on the weight-(1, 1) point."""
    if config["weights"] == {"y1": 1.0, "y2": 1.0}:
        os.kill(os.getpid(), signal.SIGKILL)
    return ray_point(config, cached, live)


def test_a_dead_ray_worker_marks_only_its_point_interrupted(tmp_path):
    path = tmp_path / "lab" / "mtl_lab.db"
    sid = _sweep(path)
    outcome = run_sweep(sid, executor="ray", workers=2, store_path=path, ray_task=die_on_the_middle_point)
    with RunStore(path) as store:
        runs = store.sweep_runs(sid)
    by_index = {r["point"]["index"]: (r["status"], r["error"]) for _, r in runs.iterrows()}
    assert by_index[0][0] == "finished" and by_index[2][0] == "finished"
    assert by_index[1][0] == "interrupted"
    assert "its Ray worker or node died" in by_index[1][1]
    assert outcome.status == "partial"


def test_curves_of_a_ray_point_reach_the_store_while_it_trains(tmp_path):
    """Live curves: the driver writes a Ray point's training curve and progress while the
    task still runs (points far too long to finish here), then a cancel of the sweep ends
    them `cancelled` with the curves kept."""
    path = tmp_path / "lab" / "mtl_lab.db"
    long = {**BASE, "steps": 200_000, "eval_every": 100_000, "baselines": False}
    config = SweepConfig.parse({"base": long, "axes": {"weights": {"values": WEIGHTS[:2]}}})
    with RunStore(path) as store:
        sid = create_sweep(store, config, executor="ray")
    outcome = {}
    driver = threading.Thread(target=lambda: outcome.update(o=run_sweep(sid, executor="ray", workers=2, store_path=path)))
    driver.start()
    seen: dict[str, tuple[int, int]] = {}
    try:
        with RunStore(path) as store:
            deadline = time.monotonic() + 120
            while len(seen) < 2 and time.monotonic() < deadline:  # until both points show a curve
                for _, run in store.sweep_runs(sid).iterrows():
                    curve = store.metrics(run["id"], phase="mtl", split="train")
                    if run["status"] == "running" and not curve.empty:
                        seen[run["id"]] = (int(curve["step"].max()), int(store.get_run(run["id"])["step"] or 0))
                time.sleep(0.2)
            assert len(seen) == 2, f"no live curve within 120 s: {seen}"
            for step, progress in seen.values():
                assert 0 < step < 200_000 and progress > 0  # mid-run: the curve and the progress bar
            store.request_cancel_sweep(sid)
    finally:
        driver.join(timeout=120)
    assert not driver.is_alive()
    assert outcome["o"].status == "cancelled"
    with RunStore(path) as store:
        for rid, (step, _) in seen.items():
            assert store.get_run(rid)["status"] == "cancelled"
            assert store.metrics(rid, phase="mtl", split="train")["step"].max() >= step  # kept
