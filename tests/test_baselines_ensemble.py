"""The single-task baselines of an experiment train as one ensemble where their shapes
allow: the same results as training them one by one, the old path for configs the
ensemble refuses, cached baselines replayed rather than retrained, and events that reach
the run store in task order, so the dashboard's progress bar never moves backwards.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import pytest

import mtl_core.experiment as experiment
from dashboard.state import progress_summary, run_phases
from mtl_core.config import ExperimentConfig
from mtl_core.ensemble import train_ensemble
from mtl_core.errors import RunCancelled, TrainingError
from mtl_core.experiment import MemoryBaselineCache, _baselines, baseline_key, run_experiment
from mtl_core.sink import Sink
from mtl_core.store import RunStore, StoreSink
from mtl_core.tasks import MTLDataset, load_dataset

# The quickstart's dataset and model, shrunk: two regression tasks y1, y2.
TINY = {
    "dataset": {"name": "mmoe_synthetic", "options": {"n_samples": 400, "input_dim": 8, "n_tasks": 2}},
    "model": {"hidden": [16, 16]}, "steps": 40, "batch_size": 32, "eval_every": 20,
    "optimizer": {"name": "adam", "lr": 0.003},
}


def make_config(**fields: Any) -> ExperimentConfig:
    return ExperimentConfig.parse({**TINY, **fields})


@lru_cache(maxsize=None)
def dataset() -> MTLDataset:
    return load_dataset("mmoe_synthetic", TINY["dataset"]["options"], seed=0)


class EventLog(Sink):
    """Every event, in the order the sink received it: (event, phase, step or split, info)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, Any]] = []
        self.starts: dict[str, dict[str, Any]] = {}

    def on_start(self, phase, info):
        self.events.append(("start", phase, None))
        self.starts[phase] = info

    def on_train(self, phase, step, losses, total, weights, extra):
        self.events.append(("train", phase, step))

    def on_eval(self, phase, step, split, metrics):
        self.events.append(("eval", phase, (step, split)))

    def on_progress(self, phase, step, total_steps, samples_per_s):
        self.events.append(("progress", phase, step))

    def on_end(self, phase, status, error=None):
        self.events.append(("end", phase, status))


def assert_same_baselines(batched: dict[str, dict], solo: dict[str, dict], *, tol: float = 1e-5) -> None:
    assert batched.keys() == solo.keys()
    for task, b in solo.items():
        e = batched[task]
        assert e["key"] == b["key"] and e["steps"] == b["steps"]
        assert e["parameter_count"] == b["parameter_count"]
        for split in ("test", "val"):
            assert e[split].keys() == b[split].keys()
            for name, value in b[split].items():
                assert e[split][name] == pytest.approx(value, abs=tol), (task, split, name)
        assert [p["step"] for p in e["curve"]] == [p["step"] for p in b["curve"]]
        for p, q in zip(e["curve"], b["curve"]):
            assert p.get("train_loss") == pytest.approx(q.get("train_loss"), abs=tol)


def test_baselines_trained_as_an_ensemble_equal_the_ones_trained_one_by_one():
    cfg = make_config()
    log_batched, log_solo = EventLog(), EventLog()
    batched = _baselines(cfg, dataset(), log_batched, MemoryBaselineCache())
    solo = _baselines(cfg, dataset(), log_solo, MemoryBaselineCache(), batched=False)

    assert log_batched.starts["stl:y1"].get("ensemble_size") == 2, "y1 and y2 should train as one ensemble"
    assert "ensemble_size" not in log_solo.starts["stl:y1"]
    assert_same_baselines(batched, solo)
    assert all(not b["cached"] for b in batched.values())
    # The sink sees the same events in the same order: y1's whole run, then y2's.
    assert log_batched.events == log_solo.events
    assert [p for _, p, _ in log_batched.events] == ["stl:y1"] * (len(log_batched.events) // 2) + [
        "stl:y2"] * (len(log_batched.events) // 2)


def test_a_config_the_ensemble_refuses_trains_its_baselines_one_by_one():
    cfg = make_config(model={"hidden": [16, 16], "dropout": 0.2})
    log = EventLog()
    baselines = _baselines(cfg, dataset(), log, MemoryBaselineCache())

    assert set(baselines) == {"y1", "y2"}
    assert all("ensemble_size" not in info for info in log.starts.values()), "dropout cannot train as an ensemble"
    assert_same_baselines(baselines, _baselines(cfg, dataset(), Sink(), MemoryBaselineCache(), batched=False), tol=0)


def test_token_data_baselines_train_one_by_one():
    cfg = ExperimentConfig.parse({
        "dataset": {"name": "toy_language"}, "steps": 4, "batch_size": 16, "eval_every": 4,
    })
    ds = load_dataset("toy_language", {}, seed=0)
    ds = ds.select_tasks(cfg.task_list(ds.task_names))
    log = EventLog()
    baselines = _baselines(cfg, ds, log, MemoryBaselineCache())

    assert set(baselines) == set(ds.task_names)
    assert all(b["steps"] == 4 and not b["cached"] for b in baselines.values())
    assert all("ensemble_size" not in info for info in log.starts.values())


def test_cached_baselines_are_replayed_not_retrained(monkeypatch):
    cfg = make_config()
    cache = MemoryBaselineCache()
    first = _baselines(cfg, dataset(), Sink(), cache)
    assert set(cache.data) == {baseline_key(cfg, "y1"), baseline_key(cfg, "y2")}

    def no_training(*args, **kwargs):
        raise AssertionError("a cached baseline was retrained")

    monkeypatch.setattr(experiment, "train_ensemble", no_training)
    monkeypatch.setattr(experiment, "train", no_training)
    log = EventLog()
    again = _baselines(cfg, dataset(), log, cache)

    assert all(b["cached"] for b in again.values())
    assert {t: b["test"] for t, b in again.items()} == {t: b["test"] for t, b in first.items()}
    assert set(log.starts) == {"stl:y1", "stl:y2"}
    assert all(info["cached"] for info in log.starts.values())


def test_with_one_baseline_cached_the_other_trains_alone(monkeypatch):
    cfg = make_config()
    cache = MemoryBaselineCache()
    solo = _baselines(cfg, dataset(), Sink(), MemoryBaselineCache(), batched=False)
    cache.put_baseline(baseline_key(cfg, "y1"), {k: v for k, v in solo["y1"].items() if k != "cached"})

    def no_ensemble(*args, **kwargs):
        raise AssertionError("a group of one task needs no ensemble")

    monkeypatch.setattr(experiment, "train_ensemble", no_ensemble)
    log = EventLog()
    out = _baselines(cfg, dataset(), log, cache)

    assert out["y1"]["cached"] and not out["y2"]["cached"]
    assert out["y2"]["test"] == solo["y2"]["test"]
    assert [e for e in log.events if e[0] == "start"] == [("start", "stl:y1", None), ("start", "stl:y2", None)]


def test_a_diverged_baseline_fails_the_run_with_the_engines_message():
    cfg = make_config(optimizer={"name": "sgd", "lr": 1e12})
    with pytest.raises(TrainingError) as batched:
        _baselines(cfg, dataset(), Sink(), MemoryBaselineCache())
    with pytest.raises(TrainingError) as solo:
        _baselines(cfg, dataset(), Sink(), MemoryBaselineCache(), batched=False)
    assert str(batched.value) == str(solo.value)


class ProgressWatcher(StoreSink):
    """A StoreSink that reads the run's row after every commit, as the dashboard polls it."""

    def __init__(self, store: RunStore, run_id: str, phases: list[str], batch_size: int) -> None:
        super().__init__(store, run_id)
        self.phases, self.batch_size = phases, batch_size
        self.seen: list[tuple[float, str | None, int]] = []

    def flush(self) -> None:
        super().flush()
        run = self.store.get_run(self.run_id)
        p = progress_summary(run, self.phases, batch_size=self.batch_size)
        self.seen.append((p["fraction"], run.get("phase"), run.get("step")))


def test_the_progress_bar_never_moves_backwards_while_baselines_train_together(tmp_path):
    cfg = make_config()
    phases = run_phases(cfg.to_dict())
    assert phases == ["stl:y1", "stl:y2", "mtl"]
    with RunStore(tmp_path / "runs.db") as store:
        run_id = store.create_run(cfg.to_dict())
        store.set_status(run_id, "running")
        watcher = ProgressWatcher(store, run_id, phases, cfg.batch_size)
        run_experiment(cfg, sink=watcher, dataset=dataset())

        fractions = [f for f, _, _ in watcher.seen]
        assert fractions == sorted(fractions), f"the progress went backwards: {watcher.seen}"
        assert [ph for _, ph, _ in watcher.seen][-1] == "mtl"
        assert {ph for _, ph, _ in watcher.seen} == {"stl:y1", "stl:y2", "mtl"}

        # What the ordering prevents: the ensemble's own, interleaved events swing the row
        # between y1 and y2.
        raw_id = store.create_run(cfg.to_dict())
        store.set_status(raw_id, "running")
        raw = ProgressWatcher(store, raw_id, phases, cfg.batch_size)
        train_ensemble(cfg, dataset(), experiment.baseline_members(cfg, ["y1", "y2"]), raw, sharing="hard")
        raw_fractions = [f for f, _, _ in raw.seen]
        assert raw_fractions != sorted(raw_fractions)


def test_cancelling_while_baselines_train_together_stops_the_run_and_caches_nothing():
    class CancelAfter(EventLog):
        def __init__(self, polls: int) -> None:
            super().__init__()
            self.polls = polls

        def should_stop(self) -> bool:
            self.polls -= 1
            return self.polls < 0

    cfg = make_config()
    cache = MemoryBaselineCache()
    sink = CancelAfter(polls=10)
    with pytest.raises(RunCancelled, match="cancelled at step 10 of 40"):
        _baselines(cfg, dataset(), sink, cache)
    assert cache.data == {}
    assert sink.starts["stl:y1"].get("ensemble_size") == 2
    assert ("end", "stl:y1", "cancelled") in sink.events
    assert all(phase == "stl:y1" for _, phase, _ in sink.events), "y2's events are not sent after a cancel"
