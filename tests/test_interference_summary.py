"""One assembly of a run's interference (`interference.interference_summary`): what a
finished run stores, and what the Interference page shows of a run still training from
the snapshots read so far, are the same function of the snapshots."""

from __future__ import annotations

import torch

from mtl_core.config import ExperimentConfig
from mtl_core.experiment import _finite
from mtl_core.grouping import all_groupings
from mtl_core.interference import interference_summary, snapshot
from mtl_core.store import RunStore
from mtl_core.worker import execute

TINY = {
    "dataset": {"name": "mmoe_synthetic", "options": {"n_samples": 300, "input_dim": 8, "n_tasks": 3}},
    "model": {"hidden": [16]}, "steps": 12, "batch_size": 32, "eval_every": 3, "affinity_every": 1,
    "optimizer": {"name": "adam", "lr": 0.003},
}


def test_the_stored_summary_is_the_summary_of_the_stored_snapshots(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    run_id = store.create_run(ExperimentConfig.parse(TINY).to_dict())
    assert execute(store, run_id) == "finished"
    # What the page reads from the store, as it does while a run trains.
    snaps = [s for s in store.interference(run_id) if s.get("phase", "mtl") == "mtl"]
    assert len(snaps) == 4
    stored = store.result(run_id)["interference"]
    assert _finite(interference_summary(snaps)) == stored
    assert stored["tasks"] == ["y1", "y2", "y3"] and len(stored["pairs"]) == 3
    assert stored["grouping"] and stored["affinity"] is not None


def _snapshots(n: int) -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    return [{"phase": "mtl", "step": 10 * (k + 1),
             **snapshot(torch.randn(3, 5, generator=gen), ["a", "b", "c"],
                        torch.randn(3, 3, generator=gen) * 1e-3)}
            for k in range(n)]


def test_a_running_runs_summary_covers_the_snapshots_so_far():
    snaps = _snapshots(5)
    early = interference_summary(snaps[:2])
    assert early["tasks"] == ["a", "b", "c"]
    assert early["grad_cosine"] == snaps[1]["grad_cosine"]  # the latest snapshot's matrices
    assert [p["evaluations"] for p in early["pairs"]] == [2, 2, 2]
    mean = torch.tensor([s["affinity"] for s in snaps[:2]], dtype=torch.float64).mean(0).tolist()
    assert early["affinity"] == mean and early["grouping"] == all_groupings(mean, ["a", "b", "c"])
    assert [h["step"] for h in early["history"]] == [10, 20] and "phase" not in early["history"][0]
    cos = [s["grad_cosine"][0][1] for s in snaps]
    assert interference_summary(snaps)["conflict_rate"]["a|b"] == sum(c < 0 for c in cos) / 5


def test_no_snapshot_gives_an_empty_summary():
    empty = interference_summary([], ["a", "b"])
    assert empty["pairs"] == [] and empty["affinity"] is None and empty["grouping"] == []
    assert empty["grad_cosine"] is None and empty["tasks"] == ["a", "b"]
