"""The plan of a run (`mtl_core.phases`): phase names that stored runs hold parse and format
back unchanged, the plan lists the models in the order a run trains them, and progress
through it only moves forward — over every seed of a run, to 100 %."""

from __future__ import annotations

import io

import pytest

from dashboard.state import phase_label, progress_summary, run_budgets, run_phases
from mtl_core.config import ExperimentConfig
from mtl_core.phases import Phase, label, phases, plan, position
from mtl_core.progress import TqdmSink
from mtl_core.store import RunStore, StoreSink

TINY = {
    "dataset": {"name": "mmoe_synthetic", "options": {"n_samples": 300, "input_dim": 8, "n_tasks": 2}},
    "model": {"hidden": [16]}, "steps": 20, "batch_size": 32, "eval_every": 10,
    "optimizer": {"name": "adam", "lr": 0.003}, "interference": False,
}


# ---- names -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [
    "mtl", "mtl@1", "mtl@12", "stl:y1", "stl:y1@2", "stl:house price", "stl:a:b", "pretrain",
    "frozen@0.05", "finetune@1", "scratch@0.125", "frozen@1e-05",
])
def test_every_name_a_run_writes_parses_and_formats_back_unchanged(name):
    assert Phase.parse(name).format() == name
    assert str(Phase.parse(name)) == name


def test_a_name_parses_to_its_kind_task_seed_and_fraction():
    assert Phase.parse("mtl") == Phase("mtl")
    assert Phase.parse("mtl@3") == Phase("mtl", seed=3)
    assert Phase.parse("stl:y1@2") == Phase("stl", task="y1", seed=2)
    assert Phase.parse("stl:y1") == Phase.stl("y1")
    assert Phase.parse("frozen@0.05") == Phase("frozen", fraction=0.05)
    assert Phase.parse("scratch@1") == Phase.arm("scratch", 1.0)
    assert Phase.parse("pretrain") == Phase.pretrain()


def test_a_task_name_holding_an_at_sign_is_read_with_the_run_tasks():
    assert Phase.parse("stl:a@1") == Phase.stl("a", 1)  # without the tasks: a trailing @<integer> is a seed
    assert Phase.parse("stl:a@1", tasks=["a@1", "b"]) == Phase.stl("a@1")
    assert Phase.parse("stl:a@1@2", tasks=["a@1", "b"]) == Phase.stl("a@1", 2)
    assert Phase.parse("stl:a@b") == Phase.stl("a@b")
    assert Phase.stl("a@1", 2).format() == "stl:a@1@2"


@pytest.mark.parametrize("name", ["", "stl:", "mtl@x", "mtl@", "frozen@0", "frozen@2", "frozen@nan", "warmup",
                                  "scratch", "pretrain@1"])
def test_a_name_no_run_writes_is_refused_and_labelled_as_it_is(name):
    with pytest.raises(ValueError, match="is not a phase name"):
        Phase.parse(name)
    assert label(name) == (name or "starting")


def test_labels_say_which_model_in_words():
    assert label("stl:y1") == phase_label("stl:y1") == "single-task baseline y1"
    assert label("mtl") == "multi-task model"
    assert label("mtl@2") == "multi-task model, seed 2"
    assert label("stl:y2@1") == "single-task baseline y2, seed 1"
    assert label("pretrain") == "pre-training on the source tasks"
    assert label("finetune@0.05") == "fine-tuned encoder on 5 % of the target's labels"
    assert label(None) == "starting"


# ---- the plan ----------------------------------------------------------------------------------------
def test_a_three_seed_experiment_trains_the_baselines_then_the_model_for_each_seed():
    config = ExperimentConfig.parse({**TINY, "n_seeds": 3, "seed": 5})
    expected = ["stl:y1", "stl:y2", "mtl", "stl:y1@6", "stl:y2@6", "mtl@6", "stl:y1@7", "stl:y2@7", "mtl@7"]
    assert phases(config) == expected
    assert run_phases(config.to_dict()) == expected  # the dashboard reads the stored config
    assert [steps for _, steps in plan(config)] == [20] * 9
    assert run_budgets(config.to_dict()) is None  # one budget for every model
    assert phases(config.model_copy(update={"baselines": False})) == ["mtl", "mtl@6", "mtl@7"]
    by_epochs = ExperimentConfig.parse({**TINY, "steps": None, "epochs": 2})
    assert [steps for _, steps in plan(by_epochs)] == [None, None, None]  # known once the data is


def test_a_stored_config_that_no_longer_validates_still_has_a_plan():
    stored = {**TINY, "tasks": ["y1", "y2"], "n_seeds": 2, "sharing": {"name": "a mode since removed"}}
    assert run_phases(stored) == ["stl:y1", "stl:y2", "mtl", "stl:y1@1", "stl:y2@1", "mtl@1"]


def test_a_transfer_plan_pretrains_then_trains_every_arm_at_every_fraction():
    from mtl_core.transfer import TransferConfig

    config = TransferConfig.parse({
        "base": {**TINY, "dataset": {**TINY["dataset"], "options": {**TINY["dataset"]["options"], "n_tasks": 3}},
                 "steps": 400},
        "sources": ["y1", "y2"], "target": "y3", "arms": ["scratch", "frozen"], "fractions": [1.0, 0.05],
        "target_steps": 100,
    })
    assert plan(config) == [
        (Phase.pretrain(), 400), (Phase.arm("frozen", 0.05), 100), (Phase.arm("scratch", 0.05), 100),
        (Phase.arm("frozen", 1.0), 100), (Phase.arm("scratch", 1.0), 100),
    ]
    assert run_phases(config.to_dict()) == phases(config)
    assert run_budgets(config.to_dict()) == [400, 100, 100, 100, 100]
    # Once the run knows that 5 % and 100 % give one example count, its exact plan:
    assert phases(config, fractions=[1.0]) == ["pretrain", "frozen@1", "scratch@1"]


def test_a_phase_the_run_skipped_counts_as_done():
    names = ["pretrain", "scratch@0.01", "scratch@0.02", "scratch@1"]  # 1 % and 2 % merged: trained as 2 %
    budgets = [300, 100, 100, 100]
    at = position(names, "scratch@0.02", 50, budgets=budgets)
    assert (at.index, at.count, at.step, at.budget) == (2, 4, 50, 100)
    assert at.done == 300 + 100 + 50 and at.fraction == pytest.approx(450 / 600)
    assert position(names, "scratch@1", 100, budgets=budgets).fraction == 1.0


def test_the_first_multi_task_model_of_three_seeds_is_a_third_of_the_way_not_five_sixths():
    config = ExperimentConfig.parse({**TINY, "n_seeds": 3}).to_dict()
    run = {"status": "running", "phase": "mtl", "step": 10, "total_steps": 20, "samples_per_s": 320.0}
    progress = progress_summary(run, run_phases(config), batch_size=32)
    assert progress["fraction"] == pytest.approx(2.5 / 9)  # was (2 + 0.5) / 3 ≈ 83 %
    assert "multi-task model (3/9)" in progress["text"] and "step 10/20" in progress["text"]
    assert progress["eta_s"] == pytest.approx((9 * 20 - 50) / 10)  # 130 steps left at 10 steps/s
    later = progress_summary({**run, "phase": "stl:y1@1", "step": 0}, run_phases(config), batch_size=32)
    assert later["fraction"] == pytest.approx(3 / 9)  # was 0 / 3: the bar fell back
    assert "single-task baseline y1, seed 1 (4/9)" in later["text"]


class ProgressWatcher(StoreSink):
    """A StoreSink that reads its run's row after every commit and turns it into the
    dashboard's progress, as a browser polling the run would see it."""

    def __init__(self, store: RunStore, run_id: str) -> None:
        super().__init__(store, run_id)
        self.config = store.get_run(run_id)["config"]
        self.seen: list[tuple[float, str | None, int]] = []

    def look(self) -> float:
        run = self.store.get_run(self.run_id)
        p = progress_summary(run, run_phases(self.config), batch_size=32, budgets=run_budgets(self.config))
        self.seen.append((p["fraction"], run.get("phase"), run.get("step")))
        return p["fraction"]

    def flush(self) -> None:
        super().flush()
        self.look()


def test_progress_over_a_three_seed_run_only_grows_and_ends_at_100_percent(tmp_path):
    from mtl_core.experiment import run_experiment

    config = ExperimentConfig.parse({**TINY, "n_seeds": 3})
    with RunStore(tmp_path / "runs.db") as store:
        run_id = store.create_run(config.to_dict())
        store.set_status(run_id, "running")
        watcher = ProgressWatcher(store, run_id)
        result = run_experiment(config, sink=watcher, run_id=run_id)
        assert store.finish_run(run_id, result) == "finished"
        last = watcher.look()

    fractions = [f for f, _, _ in watcher.seen]
    assert fractions == sorted(fractions), f"the progress went backwards: {watcher.seen}"
    assert last == 1.0  # finished: the whole bar
    assert {ph for _, ph, _ in watcher.seen} == set(phases(config))  # every model of every seed was seen
    first_mtl = [f for f, ph, _ in watcher.seen if ph == "mtl"]
    assert max(first_mtl) <= 3 / 9 + 1e-9  # the first seed's multi-task model is the third of nine models


def test_the_terminal_bar_names_the_model_and_its_place_in_the_plan():
    names = phases(ExperimentConfig.parse({**TINY, "n_seeds": 2}))
    out = io.StringIO()
    bar = TqdmSink(file=out, phases=names)
    assert bar.describe("stl:y1") == "single-task baseline y1 (1/6)"
    assert bar.describe("mtl@1") == "multi-task model, seed 1 (6/6)"
    assert TqdmSink(file=out).describe("mtl") == "multi-task model"
    bar.on_start("stl:y2@1", {"total_steps": 20, "cached": True})
    assert out.getvalue() == "single-task baseline y2, seed 1 (5/6): from the cache\n"
