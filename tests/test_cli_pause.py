"""`mtl-lab pause | resume | step RUN` (issue 15): the Train page's hold controls from a
terminal, through `jobs.pause / resume / step`; `runs` and `show` say "paused". In-process
(`cli.main`, test_cli's fixture) against run rows; that a held worker waits, steps and
resumes is tests/test_pause.py's."""

from __future__ import annotations

import json
import os

from test_cli import cli  # noqa: F401  (test_cli's in-process `mtl-lab`, its own MTL_LAB_HOME)

from mtl_core.store import RunStore

CONFIG = {"dataset": {"name": "mmoe_synthetic", "options": {"n_samples": 300, "input_dim": 8}},
          "steps": 40, "batch_size": 32, "eval_every": 20, "log_every": 5, "baselines": False,
          "interference": False, "seed": 0}


def _store(lab) -> RunStore:
    return RunStore(lab.tmp / "home" / "mtl_lab.db")


def _runs_line(lab, run_id: str) -> list[str]:
    """The words of the run's line in `mtl-lab runs`: id, name, status, ..."""
    out = lab("runs")
    assert out.returncode == 0, out.stderr
    return next(line.split() for line in out.stdout.splitlines() if line.startswith(run_id))


def test_unknown_ended_and_sweep_runs_and_bad_step_counts_get_a_message(cli):  # noqa: F811 - the fixture
    for verb in ("pause", "resume", "step"):
        out = cli(verb, "20200101-000000-abcdef")
        assert out.returncode == 2 and "no run '20200101-000000-abcdef'" in out.stderr and "mtl-lab runs" in out.stderr
        out = cli(verb, "sweep-20200101-000000-abcdef")
        assert out.returncode == 2 and "is a sweep" in out.stderr and "mtl-lab cancel sweep-" in out.stderr
    with _store(cli) as store:
        run_id = store.create_run(CONFIG)
        store.set_status(run_id, "finished")
    expected = {"pause": "only a queued or running run can be paused",
                "resume": "only a paused run can be resumed",
                "step": "only a paused run can take steps"}
    for verb, why in expected.items():
        out = cli(verb, run_id)
        assert out.returncode == 2, out
        assert out.stderr.strip() == f"error: run {run_id} is finished; {why}"
    for bad in ("0", "-3"):
        out = cli("step", run_id, "--steps", bad)
        assert out.returncode == 2
        assert f"--steps {bad}: give at least 1" in out.stderr and "Traceback" not in out.stderr
    with _store(cli) as store:
        assert store.run_controls(run_id) == (False, False, 0)  # nothing was recorded


def test_pause_step_resume_a_running_run_and_runs_and_show_say_paused(cli):  # noqa: F811 - the fixture
    with _store(cli) as store:
        run_id = store.create_run(CONFIG, name="held")
        store.set_status(run_id, "running", pid=os.getpid())  # "trained" by this living process
    out = cli("step", run_id)
    assert out.returncode == 2 and "is running, not paused; pause it first" in out.stderr
    out = cli("resume", run_id)
    assert out.returncode == 0 and "not paused; nothing to resume" in out.stdout
    assert _runs_line(cli, run_id)[2] == "running"

    out = cli("pause", run_id)
    assert out.returncode == 0, out.stderr
    assert f"run {run_id} paused" in out.stdout and "takes 5 step(s)" in out.stdout
    with _store(cli) as store:
        assert store.run_controls(run_id) == (False, True, 0)
    assert "already paused at step 0" in cli("pause", run_id).stdout
    assert _runs_line(cli, run_id)[2] == "paused"
    listed = next(r for r in json.loads(cli("runs", "--json").stdout) if r["id"] == run_id)
    assert listed["status"] == "running" and listed["paused"] is True  # JSON keeps the lifecycle state
    shown = cli("show", run_id).stdout.splitlines()[0]
    assert shown.startswith(f"run {run_id}  status: paused (running, at step 0;")

    out = cli("step", run_id)  # default: the run's log interval, as the Train page's Step button
    assert out.returncode == 0 and f"run {run_id} takes 5 step(s)" in out.stdout
    assert cli("step", run_id, "--steps", "3").returncode == 0
    with _store(cli) as store:
        assert store.run_controls(run_id) == (False, True, 8)

    out = cli("resume", run_id)
    assert out.returncode == 0 and out.stdout.strip() == f"run {run_id} resumed"
    with _store(cli) as store:
        assert store.run_controls(run_id) == (False, False, 0)
    assert _runs_line(cli, run_id)[2] == "running"
