"""The run store: what goes in comes back out, across processes, versions and crashes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mtl_core.store as store_module
from mtl_core.errors import StoreError
from mtl_core.store import RunStore, StoreSink, default_store_path

REPO = Path(__file__).resolve().parent.parent

CONFIG = {
    "name": "demo",
    "dataset": {"name": "mmoe_synthetic", "options": {"n_samples": 300, "correlation": 0.5}},
    "tasks": ["y1", "y2"],
    "sharing": {"name": "hard", "options": {}},
    "weighting": {"name": "manual", "options": {}},
    "weights": {"y1": 1.0, "y2": 0.5},
    "steps": 30,
}


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MTL_LAB_HOME", str(tmp_path / "lab"))
    return tmp_path / "lab"


@pytest.fixture
def store(home):
    with RunStore() as s:
        yield s


def _log_step(sink: StoreSink, step: int, tasks=("y1", "y2"), phase: str = "mtl") -> None:
    losses = {t: 1.0 / step + i for i, t in enumerate(tasks)}
    sink.on_train(phase, step, losses, sum(losses.values()), {t: 1.0 for t in tasks}, {"reg": 0.01})
    sink.on_progress(phase, step, 100, 1234.5)


# ---- location ----------------------------------------------------------------------------
def test_default_path_follows_mtl_lab_home(home):
    assert default_store_path() == home / "mtl_lab.db"
    assert home.is_dir()


def test_default_path_is_runs_folder_of_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("MTL_LAB_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_store_path() == tmp_path / "runs" / "mtl_lab.db"


def test_store_uses_wal_journal(store):
    assert store._read("PRAGMA journal_mode")[0][0] == "wal"


# ---- runs --------------------------------------------------------------------------------
def test_config_round_trips_and_new_run_is_queued(store):
    run_id = store.create_run(CONFIG)
    run = store.get_run(run_id)
    assert run["config"] == CONFIG
    assert run["status"] == "queued"
    assert run["name"] == "demo"  # taken from the config when not given
    assert run["code_version"]
    assert run["cancel_requested"] is False
    assert len(run_id.split("-")) == 3 and len(run_id.split("-")[2]) == 6


def test_unknown_run_id_names_the_command_that_lists_runs(store):
    with pytest.raises(StoreError, match=r"no run 'nope'.*mtl-lab runs"):
        store.get_run("nope")


def test_status_changes_stamp_start_and_end_times(store):
    run_id = store.create_run(CONFIG)
    store.set_status(run_id, "running", device="cpu", pid=4242)
    run = store.get_run(run_id)
    assert run["started_at"] and run["finished_at"] is None
    assert (run["device"], run["pid"]) == ("cpu", 4242)
    store.set_status(run_id, "failed", error="boom")
    run = store.get_run(run_id)
    assert run["status"] == "failed" and run["error"] == "boom"
    assert run["finished_at"] >= run["started_at"]
    assert run["pid"] == 4242  # kept when not given


def test_unknown_status_is_rejected(store):
    run_id = store.create_run(CONFIG)
    with pytest.raises(StoreError, match="unknown run status 'done'"):
        store.set_status(run_id, "done")


def test_runs_table_is_newest_first_with_config_flattened(store):
    first = store.create_run(CONFIG, name="first")
    second = store.create_run({**CONFIG, "tasks": None, "sharing": {"name": "soft", "options": {}}})
    store.save_result(first, {"delta_m": -2.5, "tasks": []})
    df = store.runs()
    assert list(df["id"]) == [second, first]
    for column in ("id", "name", "status", "created_at", "dataset", "sharing", "weighting", "tasks", "delta_m"):
        assert column in df.columns
    row = df.set_index("id").loc[first]
    assert (row["dataset"], row["sharing"], row["weighting"]) == ("mmoe_synthetic", "hard", "manual")
    assert row["tasks"] == "y1, y2" and row["delta_m"] == -2.5 and row["name"] == "first"
    assert df.set_index("id").loc[second, "tasks"] == "all"
    assert np.isnan(df.set_index("id").loc[second, "delta_m"])
    assert isinstance(df["created_at"].dtype, pd.DatetimeTZDtype)


def test_runs_filters_by_status(store):
    a = store.create_run(CONFIG)
    b = store.create_run(CONFIG)
    store.set_status(b, "cancelled")
    assert list(store.runs(status="queued")["id"]) == [a]
    assert set(store.runs(status=["queued", "cancelled"])["id"]) == {a, b}
    assert store.runs(status="finished").empty


# ---- curves, interference, results ----------------------------------------------------------
def test_curves_round_trip_with_types_and_step_order(store):
    run_id = store.create_run(CONFIG)
    rows = [
        ("mtl", 20, "y1", "train", "loss", 0.5, 1.0),
        ("mtl", 10, "y1", "train", "loss", 0.9, 0.5),
        ("mtl", 10, "y1", "val", "r2", float("nan"), 0.6),
        ("stl:y1", 10, "y1", "train", "loss", 0.8, 0.7),
    ]
    store.log_metrics(run_id, rows)
    df = store.metrics(run_id)
    assert list(df.columns) == ["phase", "step", "task", "split", "metric", "value", "wall_time"]
    assert df["step"].dtype == np.int64 and df["value"].dtype == np.float64
    assert list(df["step"]) == [10, 10, 10, 20]
    assert np.isnan(df.loc[(df["split"] == "val"), "value"]).all()  # NaN survives as NaN
    train = store.metrics(run_id, phase="mtl", split="train", metric="loss")
    assert list(zip(train["step"], train["value"])) == [(10, 0.9), (20, 0.5)]
    assert list(store.metrics(run_id, after_step=10)["step"]) == [20]  # only what is new
    empty = store.metrics(run_id, phase="nope")
    assert empty.empty and empty["value"].dtype == np.float64


def test_interference_snapshots_round_trip_numpy_values(store):
    run_id = store.create_run(CONFIG)
    cos = np.array([[1.0, -0.25], [-0.25, 1.0]])
    store.log_interference(run_id, "mtl", 10, {"tasks": ["y1", "y2"], "grad_cosine": cos, "grad_norm": np.ones(2)})
    store.log_interference(run_id, "mtl", 20, {"tasks": ["y1", "y2"], "grad_cosine": cos.tolist(), "grad_norm": [1, 2]})
    snaps = store.interference(run_id)
    assert [s["step"] for s in snaps] == [10, 20]
    assert snaps[0] == {"phase": "mtl", "step": 10, "tasks": ["y1", "y2"],
                        "grad_cosine": [[1.0, -0.25], [-0.25, 1.0]], "grad_norm": [1.0, 1.0]}


def test_result_round_trips_and_is_none_before(store):
    run_id = store.create_run(CONFIG)
    assert store.result(run_id) is None
    result = {"delta_m": 3.25, "tasks": [{"name": "y1", "stl": 0.5, "mtl": 0.6}], "device": "cpu"}
    store.save_result(run_id, result)
    assert store.result(run_id) == result
    store.save_result(run_id, {**result, "delta_m": None})  # replaced, not duplicated
    assert store.result(run_id)["delta_m"] is None
    assert np.isnan(store.runs()["delta_m"].iloc[0])


# ---- how a run ends: finish_run / cancel_run / fail_run ---------------------------------------------
def test_finish_run_writes_the_result_and_the_status_in_one_transaction(store):
    run_id = store.create_run(CONFIG)
    store.set_status(run_id, "running", pid=os.getpid())
    with pytest.raises(TypeError):  # a result that cannot be stored leaves the run as it was
        store.finish_run(run_id, {"delta_m": 1.0, "model": object()})
    assert store.get_run(run_id)["status"] == "running" and store.result(run_id) is None
    result = {"delta_m": 2.5, "tasks": []}
    assert store.finish_run(run_id, result) == "finished"
    run = store.get_run(run_id)
    assert run["status"] == "finished" and run["error"] is None and run["finished_at"]
    assert store.result(run_id) == result
    assert store.runs().set_index("id").loc[run_id, "delta_m"] == 2.5


def test_cancel_run_keeps_the_partial_result_and_fail_run_the_error(store):
    cancelled, failed = store.create_run(CONFIG), store.create_run(CONFIG)
    partial = {"kind": "transfer", "status": "cancelled", "rows": [{"arm": "frozen", "fraction": 0.05}]}
    assert store.cancel_run(cancelled, result=partial) == "cancelled"
    assert store.get_run(cancelled)["status"] == "cancelled" and store.result(cancelled) == partial
    assert store.fail_run(failed, "TrainingError: task 'y1' diverged at step 7") == "failed"
    run = store.get_run(failed)
    assert run["status"] == "failed" and run["error"] == "TrainingError: task 'y1' diverged at step 7"
    assert store.result(failed) is None


def test_finish_run_on_a_full_disk_fails_the_run_and_says_the_result_was_lost(store):
    run_id = store.create_run(CONFIG)
    store.set_status(run_id, "running", pid=os.getpid())
    pages = store._read("PRAGMA page_count")[0][0]
    store._conn.execute(f"PRAGMA max_page_count = {pages}")  # not one page more: the disk is full
    big = {"delta_m": 1.0, "history": "x" * (4 * store_module.RESERVE_BYTES)}  # more than the reserve holds
    assert store.finish_run(run_id, big) == "failed"
    run = store.get_run(run_id)
    assert run["status"] == "failed" and store.result(run_id) is None
    assert run["error"].startswith("the run trained to the end, but its result could not be stored: disk full")


def test_no_module_outside_the_store_opens_its_transactions():
    """The store's lifecycle methods are the only way a run ends; `_transaction` stays its own."""
    offenders = [
        str(path.relative_to(REPO))
        for folder in ("mtl_core", "dashboard", "bench")
        for path in sorted((REPO / folder).rglob("*.py"))
        if path != REPO / "mtl_core" / "store.py" and "._transaction(" in path.read_text(encoding="utf-8")
    ]
    assert offenders == []


def test_the_transfer_run_and_the_worker_do_not_import_each_other():
    import ast

    def imports(module: str) -> set[str]:
        """What a module (or every module of a package, e.g. `transfer/`) imports."""
        path = REPO / "mtl_core" / module
        files = sorted(path.glob("*.py")) if path.is_dir() else [path.with_suffix(".py")]
        assert files, f"no source for mtl_core.{module}"
        nodes = [n for f in files for n in ast.walk(ast.parse(f.read_text(encoding="utf-8")))]
        names = set()
        for node in nodes:
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        return names

    assert "mtl_core.worker" not in imports("transfer")  # one direction only: the worker trains transfer runs
    assert "mtl_core.transfer" in imports("worker")


def test_baseline_cache_round_trip(store):
    assert store.get_baseline("k1") is None
    store.put_baseline("k1", {"test": {"r2": 0.75}, "steps": 30})
    assert store.get_baseline("k1") == {"test": {"r2": 0.75}, "steps": 30}
    store.put_baseline("k1", {"test": {"r2": 0.5}, "steps": 30})
    assert store.get_baseline("k1")["test"]["r2"] == 0.5


# ---- delete and cancel ----------------------------------------------------------------------
def test_delete_removes_every_row_of_the_run_only(store):
    gone, kept = store.create_run(CONFIG), store.create_run(CONFIG)
    for run_id in (gone, kept):
        store.log_metrics(run_id, [("mtl", 1, "y1", "train", "loss", 1.0, 0.0)])
        store.log_interference(run_id, "mtl", 1, {"tasks": ["y1"]})
        store.save_result(run_id, {"delta_m": 1.0})
    store.delete_run(gone)
    with pytest.raises(StoreError):
        store.get_run(gone)
    for table in ("metrics", "interference", "results"):
        assert store._read(f"SELECT count(*) FROM {table} WHERE run_id=?", (gone,))[0][0] == 0
        assert store._read(f"SELECT count(*) FROM {table} WHERE run_id=?", (kept,))[0][0] == 1


def test_delete_refuses_a_running_run(store):
    run_id = store.create_run(CONFIG)
    store.set_status(run_id, "running", pid=os.getpid())
    with pytest.raises(StoreError, match="cancel it first"):
        store.delete_run(run_id)
    assert store.get_run(run_id)["status"] == "running"


def test_delete_accepts_a_run_whose_process_died(store):
    run_id = store.create_run(CONFIG)
    store.set_status(run_id, "running", pid=_dead_pid())
    store.delete_run(run_id)
    assert store.runs().empty


def test_cancel_request_is_recorded(store):
    run_id = store.create_run(CONFIG)
    assert store.cancel_requested(run_id) is False
    store.request_cancel(run_id)
    assert store.cancel_requested(run_id) is True
    assert store.get_run(run_id)["cancel_requested"] is True


# ---- schema versions -------------------------------------------------------------------------
def test_schema_version_is_recorded(store):
    assert store.schema_version() == store_module.SCHEMA_VERSION == 4
    assert store._read("SELECT value FROM meta WHERE key='schema_version'") == [("4",)]


def test_version_1_store_gains_the_process_start_time_column(home):
    path = home / "mtl_lab.db"
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as conn:  # a store as version 1 left it
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        store_module._migrate_to_1(conn)
        conn.execute("INSERT INTO meta VALUES('schema_version', '1')")
        conn.execute("INSERT INTO runs(id, config, status, created_at) VALUES('old', '{}', 'finished', 'x')")
    with RunStore(path) as s:
        assert s.schema_version() == store_module.SCHEMA_VERSION
        assert s.get_run("old")["pid_start"] is None
        assert s.get_run("old")["paused"] is False and s.run_controls("old") == (False, False, 0)  # version 4
        assert s._read("SELECT length(pad) FROM reserve") == [(store_module.RESERVE_BYTES,)]


def test_store_written_by_a_newer_version_is_refused(home):
    path = home / "mtl_lab.db"
    RunStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(StoreError, match="schema version 99.*upgrade MTL Lab"):
        RunStore(path)


def test_older_store_is_migrated_step_by_step(home, monkeypatch):
    path = home / "mtl_lab.db"
    with RunStore(path) as old:
        run_id = old.create_run(CONFIG)
    calls = []

    current = store_module.SCHEMA_VERSION

    def migrate_to_next(conn: sqlite3.Connection) -> None:
        calls.append(conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0])
        conn.execute("ALTER TABLE runs ADD COLUMN notes TEXT")

    monkeypatch.setitem(store_module.MIGRATIONS, current + 1, migrate_to_next)
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", current + 1)
    with RunStore(path) as new:
        assert calls == [str(current)]  # ran once, on a file of the current version
        assert new.schema_version() == current + 1
        assert "notes" in new.get_run(run_id)  # old rows kept, new column there
    with RunStore(path):
        assert calls == [str(current)]  # not again


def test_failed_migration_leaves_the_store_untouched(home, monkeypatch):
    path = home / "mtl_lab.db"
    RunStore(path).close()

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE runs ADD COLUMN notes TEXT")
        raise RuntimeError("disk on fire")

    current = store_module.SCHEMA_VERSION
    monkeypatch.setitem(store_module.MIGRATIONS, current + 1, broken)
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", current + 1)
    with pytest.raises(RuntimeError):
        RunStore(path)
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", current)
    with RunStore(path) as s:
        assert s.schema_version() == current
        assert "notes" not in [r[1] for r in s._read("PRAGMA table_info(runs)")]


# ---- StoreSink -------------------------------------------------------------------------------
def test_sink_writes_train_rows_weights_total_and_extras(store):
    run_id = store.create_run(CONFIG)
    sink = StoreSink(store, run_id)
    sink.on_start("mtl", {"total_steps": 100, "device": "cpu"})
    sink.on_train("mtl", 10, {"y1": 0.5, "y2": 0.25}, 0.625, {"y1": 1.0, "y2": 0.5}, {"reg": 0.1})
    df = store.metrics(run_id)
    got = {(r.task, r.split, r.metric): r.value for r in df.itertuples()}
    assert got == {
        ("y1", "train", "loss"): 0.5, ("y2", "train", "loss"): 0.25,
        ("y1", "train", "weight"): 1.0, ("y2", "train", "weight"): 0.5,
        ("total", "train", "loss"): 0.625, ("total", "train", "reg"): 0.1,
    }
    assert set(df["step"]) == {10} and set(df["phase"]) == {"mtl"}
    sink.on_eval("mtl", 10, "val", {"y1": {"loss": 0.4, "r2": 0.7}, "y2": {"loss": 0.3, "r2": 0.6}})
    val = store.metrics(run_id, split="val")
    assert len(val) == 4 and set(val["metric"]) == {"loss", "r2"}
    run = store.get_run(run_id)
    assert (run["phase"], run["step"], run["total_steps"], run["device"]) == ("mtl", 10, 100, "cpu")


def test_sink_commits_once_per_logging_step(store, home):
    run_id = store.create_run(CONFIG)
    sink = StoreSink(store, run_id)
    sink.on_start("mtl", {"total_steps": 100})
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)
    with RunStore(home / "mtl_lab.db") as reader:
        for step in (10, 20, 30):
            _log_step(sink, step)
            # visible to another connection as soon as on_train returns: 2 losses, 2
            # weights, the total and one extra per step
            assert len(reader.metrics(run_id)) == 6 * step // 10
    store._conn.set_trace_callback(None)
    assert sum(s.strip().upper() == "COMMIT" for s in statements) == 3
    # the progress that on_progress reported rides along with the next step's rows
    assert store.get_run(run_id)["samples_per_s"] == 1234.5


def test_sink_polls_the_cancel_flag_sparingly(store):
    run_id = store.create_run(CONFIG)
    sink = StoreSink(store, run_id, poll_interval_s=60.0)
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)
    assert not any(sink.should_stop() for _ in range(1000))
    store._conn.set_trace_callback(None)
    assert sum("cancel_requested" in s for s in statements) == 1  # not once per step

    eager = StoreSink(store, run_id, poll_interval_s=0.0)
    assert eager.should_stop() is False
    store.request_cancel(run_id)
    assert eager.should_stop() is True


def test_sigterm_flag_stops_every_sink(store):
    run_id = store.create_run(CONFIG)
    sink = StoreSink(store, run_id)
    try:
        store_module.request_stop()
        assert sink.should_stop() is True
    finally:
        store_module.reset_stop()
    assert StoreSink(store, run_id).should_stop() is False


# ---- several processes --------------------------------------------------------------------------
WRITER = """
import sys
from mtl_core.store import RunStore, StoreSink
path, run_id, tag = sys.argv[1:4]
store = RunStore(path)
sink = StoreSink(store, run_id)
sink.on_start("mtl", {"total_steps": 500})
tasks = [tag + "_a", tag + "_b"]
for step in range(1, 501):
    sink.on_train("mtl", step, {t: 1.0 / step for t in tasks}, 2.0 / step, {t: 1.0 for t in tasks}, {})
    sink.on_progress("mtl", step, 500, 100.0)
    if step % 50 == 0:
        sink.on_eval("mtl", step, "val", {t: {"loss": 0.5, "r2": 0.5} for t in tasks})
sink.on_end("mtl", "finished")
store.close()
"""


@pytest.mark.slow
def test_two_writer_processes_and_a_polling_reader(store):
    runs = {tag: store.create_run(CONFIG) for tag in ("p", "q")}
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(store.path), run_id, tag], env=env,
                         stderr=subprocess.PIPE, text=True)
        for tag, run_id in runs.items()
    ]
    seen = {tag: 0 for tag in runs}
    reads = 0
    deadline = time.monotonic() + 60
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        for tag, run_id in runs.items():
            train = store.metrics(run_id, split="train")  # a `database is locked` would raise here
            # 5 rows per step, committed together: a reader never sees half a step
            assert len(train) % 5 == 0
            assert len(train) >= seen[tag]
            seen[tag] = len(train)
            reads += 1
    errors = [p.communicate()[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    assert reads > 0
    for tag, run_id in runs.items():
        df = store.metrics(run_id)
        assert len(df) == 500 * 5 + 10 * 2 * 2  # nothing lost
        assert set(df["task"]) == {f"{tag}_a", f"{tag}_b", "total"}  # only its own rows
        assert sorted(set(df.loc[df["split"] == "train", "step"])) == list(range(1, 501))
        assert store.get_run(run_id)["step"] == 500


# ---- dead processes ---------------------------------------------------------------------------------
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_run_of_a_dead_process_is_marked_interrupted_with_its_last_step(store, home):
    dead = store.create_run(CONFIG)
    store.set_status(dead, "running", pid=_dead_pid())
    store.update_progress(dead, phase="mtl", step=120, total_steps=500, samples_per_s=10.0)
    alive = store.create_run(CONFIG)
    store.set_status(alive, "running", pid=os.getpid())
    never_started = store.create_run(CONFIG)  # queued, no process yet: left alone

    assert store.mark_interrupted() == [dead]
    run = store.get_run(dead)
    assert run["status"] == "interrupted" and run["finished_at"]
    assert f"pid {run['pid']}" in run["error"] and "up to step 120" in run["error"]
    assert store.get_run(alive)["status"] == "running"
    assert store.get_run(never_started)["status"] == "queued"
    assert store.mark_interrupted() == []


def test_opening_the_store_marks_dead_runs(home):
    with RunStore() as s:
        run_id = s.create_run(CONFIG)
        s.set_status(run_id, "running", pid=_dead_pid())
    with RunStore() as s:
        assert s.get_run(run_id)["status"] == "interrupted"


def test_dead_run_whose_cancel_was_requested_ends_cancelled(store):
    run_id = store.create_run(CONFIG)
    store.set_pid(run_id, _dead_pid())
    store.request_cancel(run_id)
    store.mark_interrupted()
    run = store.get_run(run_id)
    assert run["status"] == "cancelled" and run["error"] is None


def test_unreaped_child_counts_as_dead():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 30
        while store_module.pid_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store_module.pid_alive(proc.pid) is False
        os.kill(proc.pid, 0)  # no error: it exited but, not yet waited for, is still a zombie
    finally:
        proc.wait()
    assert store_module.pid_alive(os.getpid()) is True


def test_a_file_that_is_not_a_store_is_refused_with_advice(home):
    home.mkdir(parents=True, exist_ok=True)
    (home / "mtl_lab.db").write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(StoreError, match="cannot be used as a run store.*MTL_LAB_HOME"):
        RunStore()
