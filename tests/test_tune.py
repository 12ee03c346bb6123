"""The `[tune]` extra (issue 14): an Optuna study proposes a sweep's points in rounds."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from mtl_core.errors import ConfigError
from mtl_core.executors import record_sweep, run_sweep
from mtl_core.store import RunStore
from mtl_core.sweep import SweepConfig, expand, sweep_table

# The small two-task regression of tests/test_sweep.py (Ma et al., 2018), a little shorter.
BASE = {
    "dataset": {"name": "mmoe_synthetic", "options": {"n_tasks": 2, "n_samples": 300, "input_dim": 8}},
    "model": {"hidden": [16]}, "steps": 30, "eval_every": 10, "log_every": 10, "batch_size": 32,
    "affinity_every": 0, "seed": 0, "device": "cpu",
}
LR = (0.001, 0.01)

needs_optuna = pytest.mark.skipif(
    importlib.util.find_spec("optuna") is None, reason="the [tune] extra (optuna) is not installed"
)


def search_config(space: dict | None = None, base: dict | None = None, **search) -> SweepConfig:
    spec = {"kind": "optuna", "trials": 4, "batch": 2, "sampler": "nsga2", "seed": 0,
            "space": space if space is not None else {"weights": "simplex", "optimizer.lr": [*LR, "log"]}}
    return SweepConfig.parse({"base": base or BASE, "search": {**spec, **search}})


@pytest.fixture(scope="module")
def study_sweep(tmp_path_factory):
    """A 4-trial NSGA-II study over the weight simplex and the learning rate, 2 per round, trained."""
    pytest.importorskip("optuna")
    path = tmp_path_factory.mktemp("tune") / "lab" / "mtl_lab.db"
    with RunStore(path) as store:
        sid = record_sweep(store, search_config(), executor="batched")
        first = list(store.sweep_runs(sid)["id"])
    outcome = run_sweep(sid, executor="batched", store_path=path)
    with RunStore(path) as store:
        yield {"path": path, "sid": sid, "first": first, "outcome": outcome,
               "runs": store.sweep_runs(sid), "table": sweep_table(store, sid)}


@needs_optuna
def test_a_study_stores_its_first_round_then_asks_in_rounds_until_its_trials(study_sweep):
    assert len(study_sweep["first"]) == 2  # create_sweep stores only the first round
    runs = study_sweep["runs"]
    assert study_sweep["outcome"].status == "finished"
    assert len(runs) == 4 and (runs["status"] == "finished").all()
    assert list(runs["id"][:2]) == study_sweep["first"]
    trials = [p["trial"] for p in runs["point"]]
    assert [t["number"] for t in trials] == [0, 1, 2, 3]
    assert [p["index"] for p in runs["point"]] == [0, 1, 2, 3]
    # NSGA-II (Deb et al., 2002): one generation per round of population_size = batch
    assert [t["system_attrs"]["NSGAIISampler:generation"] for t in trials] == [0, 0, 1, 1]


@needs_optuna
def test_proposals_respect_the_space_and_are_what_each_run_trains(study_sweep):
    for _, run in study_sweep["runs"].iterrows():
        point, cfg = run["point"], run["config"]
        w, lr = point["values"]["weights"], point["values"]["optimizer.lr"]
        assert set(w) == {"y1", "y2"} and all(0.0 <= x <= 2.0 for x in w.values())
        assert sum(w.values()) == pytest.approx(2.0)  # the simplex of 2 tasks sums to their number
        assert LR[0] <= lr <= LR[1]
        assert cfg["weights"] == pytest.approx(w) and cfg["optimizer"]["lr"] == lr
        u = point["trial"]["params"]["simplex:1"]
        assert w["y1"] == pytest.approx(2.0 * (1.0 - u))  # stick-breaking of 2 tasks: w1 = K·(1 - u)
        assert point["label"].startswith(f"trial {point['trial']['number']} manual w=(")
    table = study_sweep["table"].points  # the sweep's table reads the trials as any points
    assert table[["w:y1", "w:y2"]].notna().all().all() and table["is_front"].any()


@needs_optuna
def test_the_objectives_are_the_validation_metrics_not_test(study_sweep):
    from mtl_core.tune import build_study, parse_space, stored_trials

    config = search_config()
    base, dims = parse_space(config)
    with RunStore(study_sweep["path"]) as store:
        trials = stored_trials(store, study_sweep["sid"], base)
    study, _ = build_study(config, base, dims, trials)
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"]  # mse: lower is better
    table = study_sweep["table"].points
    values = [t.values for t in study.trials]
    assert values == [pytest.approx(v) for v in table[["val:y1", "val:y2"]].to_numpy().tolist()]
    assert values != [pytest.approx(v) for v in table[["test:y1", "test:y2"]].to_numpy().tolist()]
    assert {n.number for n in study.best_trials} == set(table.index[table["is_front"]])


@needs_optuna
def test_the_same_seed_and_results_propose_the_same_points_and_tpe_works_too():
    from mtl_core.tune import propose

    done = [({"number": 0, "params": {"simplex:1": 0.3, "optimizer.lr": 0.002}, "system_attrs": {}}, [1.0, 2.0]),
            ({"number": 1, "params": {"simplex:1": 0.7, "optimizer.lr": 0.005}, "system_attrs": {}}, None)]
    for sampler in ("nsga2", "tpe"):
        config = search_config(sampler=sampler, trials=6)
        a = [p.values for p, _ in propose(config, done, 3, start_index=2)]
        b = [p.values for p, _ in propose(config, done, 3, start_index=2)]
        assert a == b and len(a) == 3
        assert all(LR[0] <= v["optimizer.lr"] <= LR[1] for v in a)
    other = [p.values for p, _ in propose(search_config(seed=1, trials=6), done, 3, start_index=2)]
    assert other != a


@needs_optuna
def test_ranges_per_task_whole_numbers_and_choices():
    from mtl_core.tune import propose

    config = search_config({"weights": {"y2": [0.1, 3.0, "log"]}, "batch_size": [16, 64],
                            "sharing.name": {"choices": ["hard", "soft"]}}, trials=8, batch=8)
    points = [p for p, _ in propose(config, [], 8, start_index=0)]
    for p in points:
        assert p.values["weights"]["y1"] == 1.0 and 0.1 <= p.values["weights"]["y2"] <= 3.0
        assert isinstance(p.values["batch_size"], int) and 16 <= p.config.batch_size <= 64
        assert p.config.sharing.name == p.values["sharing.name"] == p.values["sharing"] in ("hard", "soft")
    assert {p.config.sharing.name for p in points} == {"hard", "soft"}


@needs_optuna
def test_cancel_of_the_sweep_stops_the_asking(tmp_path):
    path = tmp_path / "lab" / "mtl_lab.db"
    with RunStore(path) as store:
        sid = record_sweep(store, search_config(trials=6), executor="batched")

    def cancel_after_first(counts):
        if counts.get("finished"):
            with RunStore(path) as store:
                store.request_cancel_sweep(sid)

    outcome = run_sweep(sid, executor="batched", store_path=path, on_update=cancel_after_first)
    assert outcome.status == "cancelled"
    assert len(outcome.runs) == 2  # the first round only: nothing more was asked
    assert sorted(outcome.runs.values()) == ["cancelled", "finished"]  # the second point never started


@needs_optuna
@pytest.mark.parametrize("space, extra, message", [
    ({"weights": {"y9": [0, 1]}}, {}, "search.space.weights.y9: not a task of the base run; choose from: y1, y2"),
    ({"weights": {"y1": [-1, 1]}}, {}, "search.space.weights.y1: a loss weight cannot be negative"),
    ({"weights": "grid"}, {}, "search.space.weights: give simplex or a range per task"),
    ({"optimizer.lr": [0.01, 0.001]}, {}, "search.space.optimizer.lr: lo (0.01) must be below hi (0.001)"),
    ({"optimizer.lr": [0, 0.1, "log"]}, {}, "search.space.optimizer.lr: a log range needs lo > 0"),
    ({"optimizer.lr": [0.001, 0.1, "lin"]}, {}, "the third entry must be the word log, not 'lin'"),
    ({"optimizer.lr": 0.01}, {}, "search.space.optimizer.lr: 0.01 is not a range; give [lo, hi] or [lo, hi, log]"),
    ({"optimizer.nope": [1, 2]}, {}, "search.space.optimizer.nope = 1"),
    ({"sharing.name": {"choices": ["hard", "nope"]}}, {}, "search.space.sharing.name = 'nope'"),
    ({"model.hidden": {"choices": []}}, {}, "search.space.model.hidden: give {choices: [a, b, ...]}"),
    ({"weights.y1": [0, 1]}, {}, "search.space.weights.y1: put per-task weight ranges under weights"),
    ({"weights": "simplex"}, {"weighting": {"name": "uncertainty"}}, "sets the weights itself"),
])
def test_a_bad_space_is_refused_with_a_message_naming_the_key(space, extra, message):
    with pytest.raises(ConfigError) as err:
        record_sweep(None, search_config(space, base={**BASE, **extra}))
    assert message in str(err.value)


@needs_optuna
def test_search_and_axes_or_a_bad_sampler_are_refused():
    with pytest.raises(ConfigError, match="search and axes: a study proposes the points itself"):
        record_sweep(None, SweepConfig.parse({"base": BASE, "axes": {"seed": [0, 1]},
                                              "search": {"kind": "optuna", "trials": 2, "space": {"weights": "simplex"}}}))
    with pytest.raises(ConfigError, match="search.sampler"):
        search_config(sampler="random")
    with pytest.raises(ConfigError, match="search.space"):
        search_config({})
    with pytest.raises(ConfigError, match="search: a study proposes its 4 points while the sweep runs"):
        expand(search_config())


def test_without_optuna_a_search_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` now raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'mtl-lab\[tune\]'"):
        record_sweep(None, search_config())


@needs_optuna
def test_the_example_study_is_valid():
    from pathlib import Path

    from mtl_core.tune import first_round

    config = SweepConfig.from_file(Path(__file__).resolve().parent.parent / "examples" / "tune.yaml")
    points = first_round(config)
    assert len(points) == 4 and config.search.trials == 12
    for point, meta in points:
        assert point.config.steps == 300 and 0.0003 <= point.config.optimizer.lr <= 0.01
        assert sum(point.values["weights"].values()) == pytest.approx(2.0)
        assert meta["trial"]["number"] == point.index


@needs_optuna
def test_a_study_between_two_rounds_is_running_until_its_trials_are_asked_or_it_is_cancelled(tmp_path):
    import os

    with RunStore(tmp_path / "lab.db") as store:
        sid = record_sweep(store, search_config(trials=6), executor="batched")  # first round: 2 of 6 points
        for run_id in store.sweep_runs(sid)["id"]:
            store.set_status(run_id, "finished")  # the round has ended; the next is not asked yet
        assert store.get_sweep(sid)["status"] == "finished"  # no driver: nobody will ask
        store.set_sweep_driver(sid, os.getpid())  # this test is the driver, between two rounds
        assert store.get_sweep(sid)["status"] == "running"
        assert store.sweeps().set_index("id").loc[sid, "status"] == "running"  # `mtl-lab sweeps` agrees
        store.request_cancel_sweep(sid)
        assert store.get_sweep(sid)["status"] == "cancelled"
