"""Every boundary answers with a message, never a traceback; cancel never signals a stranger.

Faults are made for real where the machine allows it: a full disk is SQLite's own
SQLITE_FULL (`PRAGMA max_page_count`) or /dev/full, a reused pid is a live `sleep`
process, a damaged store is bytes written over the file.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import mtl_core.store as store_module
from mtl_core import cli, jobs, worker
from mtl_core.errors import ConfigError, DiskFullError, StoreError
from mtl_core.store import RunStore, process_start_time
from test_cli import TINY  # the same tiny experiment the CLI tests train

ROOT = Path(__file__).resolve().parents[1]
EVIL = '=HYPERLINK("http://x")'
TIMEOUT_S = 120.0


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MTL_LAB_HOME", str(tmp_path / "lab"))
    return tmp_path / "lab"


@pytest.fixture
def config_file(tmp_path) -> str:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return str(path)


@pytest.fixture
def keep_sigterm():
    """`mtl-lab run` installs a SIGTERM handler; give pytest its own back."""
    before = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, before)
    store_module.reset_stop()


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "MTL_LAB_HOME": str(home), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _state(pid: int) -> str | None:
    """The state letter of process `pid` (`Z`: a zombie), None once it is gone (reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2]


def _limit_pages(monkeypatch, extra_pages: int) -> None:
    """Every RunStore opened from now on may grow by `extra_pages` pages only: its
    writes then fail with SQLite's own SQLITE_FULL, "database or disk is full"."""
    init = RunStore.__init__

    def limited(self, *args, **kwargs):
        init(self, *args, **kwargs)
        pages = self._read("PRAGMA page_count")[0][0]
        self._conn.execute(f"PRAGMA max_page_count = {pages + extra_pages}")

    monkeypatch.setattr(RunStore, "__init__", limited)


# ---- process identity ------------------------------------------------------------------------------
@pytest.fixture
def stranger():
    """A live process that is not ours to stop: the pid a dead worker's row may now name."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def test_cancel_never_signals_a_process_that_took_over_a_dead_workers_pid(home, stranger):
    real_start = process_start_time(stranger.pid)
    assert real_start is not None
    with RunStore() as store:
        run_id = store.create_run(TINY)
        # The worker that had this pid died; `sleep` was given its pid afterwards.
        store.set_status(run_id, "running", pid=stranger.pid, pid_start=real_start - 1)
    assert store_module.pid_alive(stranger.pid, real_start) is True
    assert store_module.pid_alive(stranger.pid, real_start - 1) is False

    assert jobs.cancel(run_id) is False  # nothing of ours was running
    time.sleep(0.2)
    assert stranger.poll() is None  # not signalled
    with RunStore() as store:
        run = store.get_run(run_id)
        assert run["status"] == "interrupted"
        assert "ended without recording why" in run["error"]
        store.delete_run(run_id)  # not refused as "running"
    assert stranger.poll() is None
    assert run_id not in set(jobs.active()["id"])


def test_a_live_worker_is_recognised_by_pid_and_start_time(home):
    with RunStore() as store:
        run_id = store.create_run(TINY)
        store.set_status(run_id, "running", pid=os.getpid())
        run = store.get_run(run_id)
        assert run["pid_start"] == process_start_time(os.getpid())
        assert store.mark_interrupted() == []
        with pytest.raises(StoreError, match="cancel it first"):
            store.delete_run(run_id)


def test_a_process_of_another_user_is_never_signalled(home, monkeypatch):
    calls = []

    def refused(*args):
        calls.append(args)
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "kill", refused)
    if hasattr(signal, "pidfd_send_signal"):
        monkeypatch.setattr(signal, "pidfd_send_signal", refused)
    assert store_module.pid_alive(1) is False  # exists, but nothing says it is one of ours
    started = process_start_time(os.getpid())
    assert jobs._terminate(os.getpid(), started - 1) is False  # not the recorded process:
    assert all(sig == 0 for *_, sig in calls)  # only asked whether it exists, never signalled
    # The recorded process itself, run by another user: the kernel refuses, cancel goes on.
    assert jobs._terminate(os.getpid(), started) is False


def test_a_queued_run_whose_launcher_died_is_interrupted_after_the_grace_period(home, monkeypatch):
    with RunStore() as store:
        run_id = store.create_run(TINY)  # no process was ever started for it
        assert store.mark_interrupted() == []  # within the grace period: still starting
        monkeypatch.setattr(store_module, "QUEUED_GRACE_S", -1.0)
        assert store.mark_interrupted() == [run_id]
        run = store.get_run(run_id)
    assert run["status"] == "interrupted"
    assert "never started" in run["error"] and "start the run again" in run["error"]


@pytest.mark.slow
def test_a_finished_worker_is_reaped_without_any_call_into_jobs(home, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    run_id = jobs.start({**TINY, "steps": 5, "eval_every": 5, "baselines": False, "interference": False})
    proc = jobs._CHILDREN[run_id]
    pid = proc.pid
    try:
        deadline = time.monotonic() + TIMEOUT_S
        with RunStore() as store:
            while store.get_run(run_id)["status"] in ("queued", "running") and time.monotonic() < deadline:
                time.sleep(0.2)
            assert store.get_run(run_id)["status"] == "finished"
        while _state(pid) not in (None, "Z") and time.monotonic() < deadline:
            time.sleep(0.1)  # the worker is writing its last lines and exiting
        end = time.monotonic() + 10
        while _state(pid) == "Z" and time.monotonic() < end:
            time.sleep(0.1)
        assert _state(pid) is None  # reaped: no <defunct> child left behind
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


# ---- CSV exports --------------------------------------------------------------------------------------
def test_csv_export_cannot_start_a_spreadsheet_formula(home, tmp_path, capsys):
    with RunStore() as store:
        run_id = store.create_run(TINY, name=EVIL)
        store.log_metrics(run_id, [("mtl", 10, EVIL, "train", "loss", -0.5, 1.0)])
        store.save_result(run_id, {"tasks": [{
            "name": EVIL, "kind": "regression", "metric": "mse", "higher_is_better": False,
            "stl": 0.5, "mtl": 0.25, "delta_pct": -50.0,
        }], "delta_m": -50.0})
    code, out, err = _cli(capsys, "export", run_id, "--format", "csv", "--out", str(tmp_path / "e.csv"))
    assert code == 0, err
    curves = list(csv.DictReader((tmp_path / "e.csv").open()))
    assert curves[0]["task"] == "'" + EVIL
    assert curves[0]["value"] == "-0.5"  # a number stays a number
    results = list(csv.DictReader((tmp_path / "e_results.csv").open()))
    assert results[0]["name"] == "'" + EVIL and results[0]["run_name"] == "'" + EVIL
    assert results[0]["delta_pct"] == "-50.0"
    for path in (tmp_path / "e.csv", tmp_path / "e_results.csv"):
        for row in csv.reader(path.open()):
            assert not any(cell.startswith(("=", "+", "@", "\t", "\r")) for cell in row)


# ---- a full disk --------------------------------------------------------------------------------------
def test_disk_full_during_a_foreground_run_fails_it_with_a_message(home, config_file, monkeypatch, capsys,
                                                                   keep_sigterm):
    _limit_pages(monkeypatch, 0)  # the run's row fits; its curves soon do not
    code, out, err = _cli(capsys, "run", "--config", config_file, "-q", "--set", "steps=400")
    assert code == 1
    assert "disk full" in err and str(home) in err
    assert "Traceback" not in err
    with RunStore() as store:  # (reading needs no new page)
        run = store.runs().iloc[0]
        assert run["status"] == "failed"
        assert "disk full" in run["error"] and str(home) in run["error"]


def test_starting_a_run_on_a_full_disk_says_so(home, config_file, monkeypatch, capsys, keep_sigterm):
    _limit_pages(monkeypatch, 0)
    with RunStore() as store, pytest.raises(DiskFullError):
        for _ in range(1000):  # fill the last free bytes of the file
            store.create_run(TINY, name="x" * 1500)
    code, out, err = _cli(capsys, "run", "--config", config_file, "-q")
    assert code == 2
    assert err.startswith("error: disk full") and str(home) in err and "MTL_LAB_HOME" in err


def test_the_end_of_a_run_is_recorded_from_the_reserve_when_the_store_is_full(home, monkeypatch):
    _limit_pages(monkeypatch, 0)
    with RunStore() as store:
        run_id = store.create_run(TINY)
        with pytest.raises(DiskFullError):
            for _ in range(1000):
                store.create_run(TINY, name="x" * 1500)
        with pytest.raises(DiskFullError):  # a long message needs a page the file no longer has
            store.set_status(run_id, "failed", error="disk full " * 500)
        store.record_end(run_id, "failed", error="disk full " * 500)
        assert store.get_run(run_id)["status"] == "failed"


BACKGROUND_WORKER = """
import sys
from mtl_core import store as store_module, worker

init = store_module.RunStore.__init__

def limited(self, *args, **kwargs):  # the disk fills up a few pages after the worker starts
    init(self, *args, **kwargs)
    pages = self._read("PRAGMA page_count")[0][0]
    self._conn.execute(f"PRAGMA max_page_count = {pages + 3}")

store_module.RunStore.__init__ = limited

def train(store, run_id, config, sink):  # logs curves until the disk is full
    sink.on_start("mtl", {"total_steps": 10**6, "device": "cpu"})
    for step in range(1, 10**6):
        sink.on_train("mtl", step, {"y1": 0.5, "y2": 0.25}, 0.75, {"y1": 1.0, "y2": 1.0}, {})

worker._train = train
sys.exit(worker.main([sys.argv[1]]))
"""


@pytest.mark.slow
def test_disk_full_in_a_background_worker_fails_the_run_with_a_message(home):
    with RunStore() as store:
        run_id = store.create_run(TINY)
    with open("/dev/full", "w") as full:  # its log file is on the full disk too
        done = subprocess.run(
            [sys.executable, "-c", BACKGROUND_WORKER, run_id], env={**_env(home), "MTL_LAB_DB": str(store.path)},
            stdout=full, stderr=full, timeout=TIMEOUT_S,
        )
    assert done.returncode == 1
    with RunStore() as store:
        run = store.get_run(run_id)
    assert run["status"] == "failed"
    assert run["error"].startswith("disk full") and str(home) in run["error"]


def test_a_run_whose_end_cannot_be_written_says_so_in_the_log_and_in_show(home, monkeypatch, caplog, capsys):
    import mtl_core.experiment as experiment

    def fails(config, **kwargs):
        raise DiskFullError("disk full: the run store folder /x has no space left")

    def unwritable(*args, **kwargs):
        raise DiskFullError("disk full: the run store folder /x has no space left")

    monkeypatch.setattr(experiment, "run_experiment", fails)
    with RunStore() as store:
        run_id = store.create_run(TINY)
        monkeypatch.setattr(store, "record_end", unwritable)
        assert worker.execute(store, run_id) == "failed"
    assert "could not be written to the run store" in caplog.text and run_id in caplog.text
    with RunStore() as store:  # the worker's process is gone by the time someone looks
        store.set_status(run_id, "running", pid=_dead_pid())
    code, out, err = _cli(capsys, "show", run_id)
    assert code == 0
    assert "status: interrupted" in out and "ended without recording why" in out


def test_a_full_disk_for_the_log_file_refuses_to_start_a_background_run(home, monkeypatch):
    def no_space(path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(jobs, "_open_log", no_space)
    with pytest.raises(DiskFullError, match="disk full.*log"):
        jobs.start(TINY)
    with RunStore() as store:
        run = store.runs().iloc[0]
    assert run["status"] == "failed" and run["error"].startswith("disk full")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---- a damaged store ------------------------------------------------------------------------------------
@pytest.fixture
def two_runs(home):
    with RunStore() as store:
        damaged, fine = store.create_run(TINY, name="damaged"), store.create_run(TINY, name="fine")
        for run_id in (damaged, fine):
            store.log_metrics(run_id, [("mtl", 1, "y1", "train", "loss", 1.0, 0.0)])
            store.save_result(run_id, {"tasks": [], "delta_m": 1.0})
        path = store.path
    return path, damaged, fine


@pytest.mark.parametrize(
    ("damage", "what"),
    [
        ("UPDATE runs SET config='{not json' WHERE id=?", "its config is not valid JSON"),
        ("UPDATE results SET payload='{\"tasks\": [' WHERE run_id=?", "its result is not valid JSON"),
        ("UPDATE metrics SET value='garbage' WHERE run_id=?", "a stored curve value is not a number"),
    ],
)
def test_a_damaged_run_is_named_and_the_others_stay_readable(two_runs, capsys, tmp_path, damage, what):
    path, damaged, fine = two_runs
    with sqlite3.connect(path) as conn:
        conn.execute(damage, (damaged,))
    with RunStore(path) as store:
        with pytest.raises(StoreError, match=f"run '{damaged}' is damaged.*{what}.*mtl-lab delete {damaged}"):
            store.get_run(damaged), store.result(damaged), store.metrics(damaged)
        assert set(store.runs()["id"]) == {damaged, fine}
        assert store.get_run(fine)["name"] == "fine"
        assert store.result(fine) == {"tasks": [], "delta_m": 1.0}
        assert len(store.metrics(fine)) == 1
    assert set(jobs.active()["id"]) == {damaged, fine}  # the dashboard's sidebar still works

    commands = [["export", damaged, "--out", str(tmp_path / "d.csv")]]
    if "curve" not in what:  # `show` reads no curves
        commands.append(["show", damaged])
    for command in commands:
        code, out, err = _cli(capsys, *command)
        assert code == 2 and err.startswith("error: ") and what in err and "Traceback" not in err
    assert _cli(capsys, "export", fine, "--out", str(tmp_path / "f.csv"))[0] == 0
    code, out, err = _cli(capsys, "delete", damaged)
    assert code == 0 and f"deleted {damaged}" in out
    with RunStore(path) as store:
        assert list(store.runs()["id"]) == [fine]


def test_a_store_file_overwritten_with_garbage_or_truncated_is_named(home, tmp_path):
    with RunStore() as store:
        for _ in range(60):
            store.log_metrics(store.create_run(TINY, name="x" * 2000), [("mtl", 1, "y1", "train", "loss", 1.0, 0.0)])
        path = store.path
    intact = path.read_bytes()
    path.write_bytes(intact[: len(intact) // 2])
    with pytest.raises(StoreError, match=f"{path}.*move it away"):
        RunStore(path)
    path.write_bytes(os.urandom(len(intact)))
    with pytest.raises(StoreError, match=f"{path} cannot be used as a run store"):
        RunStore(path)


def test_a_schema_version_that_is_not_a_number_is_named(home):
    with RunStore() as store:
        path = store.path
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value='two' WHERE key='schema_version'")
    with pytest.raises(StoreError, match=r"schema_version 'two'.*not a whole number.*move it away"):
        RunStore(path)


# ---- where things are written ------------------------------------------------------------------------
@pytest.fixture
def stored_run(home) -> str:
    with RunStore() as store:
        run_id = store.create_run(TINY)
        store.log_metrics(run_id, [("mtl", 1, "y1", "train", "loss", 1.0, 0.0)])
    return run_id


def test_export_creates_missing_folders_and_fills_a_folder_given_as_out(stored_run, tmp_path, capsys):
    code, out, err = _cli(capsys, "export", stored_run, "--out", str(tmp_path / "new" / "deeper" / "c.csv"))
    assert code == 0 and (tmp_path / "new" / "deeper" / "c.csv").exists()
    code, out, err = _cli(capsys, "export", stored_run, "--format", "json", "--out", str(tmp_path))
    assert code == 0 and out.strip() == str(tmp_path / f"{stored_run}.json")
    assert json.loads((tmp_path / f"{stored_run}.json").read_text())["run"]["id"] == stored_run


@pytest.mark.parametrize(
    ("out", "says"),
    [("notes.txt/c.csv", "cannot create the folder"), ("/dev/full", "the disk is full")],
)
def test_export_to_a_path_that_cannot_be_written_says_why(stored_run, tmp_path, capsys, out, says):
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    target = str(tmp_path / out) if not out.startswith("/") else out
    code, stdout, err = _cli(capsys, "export", stored_run, "--out", target)
    assert code == 2 and err.startswith("error: ") and says in err and "Traceback" not in err


def test_run_json_to_an_unwritable_path_is_refused_before_training(home, config_file, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    code, out, err = _cli(capsys, "run", "--config", config_file, "--json", str(tmp_path / "notes.txt" / "r.json"))
    assert code == 2 and "cannot create the folder" in err
    code, out, err = _cli(capsys, "run", "--config", config_file, "--json", str(tmp_path))
    assert code == 2 and "is a folder" in err
    with RunStore() as store:
        assert store.runs().empty  # nothing trained, nothing stored


def test_run_json_failing_after_training_says_the_run_is_stored(home, config_file, capsys, keep_sigterm):
    code, out, err = _cli(capsys, "run", "--config", config_file, "-q", "--set", "baselines=false",
                          "--json", "/dev/full")
    with RunStore() as store:
        run = store.runs().iloc[0]
    assert run["status"] == "finished"
    assert code == 2 and "the disk is full" in err
    assert f"Run {run['id']} (finished) is stored" in err
    assert f"mtl-lab export {run['id']} --format json" in err


# ---- terminals, environment, files -----------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("command", [["runs"], ["list", "datasets"], ["show", "RUN"]])
def test_output_into_a_closed_pipe_ends_quietly(home, command):
    with RunStore() as store:
        run_id = store.create_run(TINY)
    command = [run_id if c == "RUN" else c for c in command]
    proc = subprocess.Popen([sys.executable, "-m", "mtl_core", *command], env=_env(home),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # `| head -0`: the reader is gone before anything is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=TIMEOUT_S) in (0, 141)
    assert err == ""


def test_mtl_lab_home_that_is_a_file_is_named_with_the_fix(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    home.write_text("not a folder")
    monkeypatch.setenv("MTL_LAB_HOME", str(home))
    with pytest.raises(StoreError, match=f"MTL_LAB_HOME={home} is a file, not a folder; point MTL_LAB_HOME"):
        store_module.default_store_path()
    code, out, err = _cli(capsys, "runs")
    assert code == 2 and err == f"error: MTL_LAB_HOME={home} is a file, not a folder; point MTL_LAB_HOME at a " \
        "folder you can write to, e.g. `export MTL_LAB_HOME=~/mtl-lab`\n"


def _without_root_powers() -> list[str]:
    """A command prefix under which a read-only folder is read-only (root ignores modes)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot make a folder read-only for the test")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner"]


@pytest.mark.slow
@pytest.mark.parametrize("existing_store", [False, True])
def test_a_read_only_mtl_lab_home_is_named_with_the_fix(tmp_path, existing_store):
    home = tmp_path / "readonly"
    home.mkdir()
    if existing_store:
        RunStore(home / "mtl_lab.db").close()
    home.chmod(0o555)
    try:
        done = subprocess.run([*_without_root_powers(), sys.executable, "-m", "mtl_core", "runs"],
                              env=_env(home), capture_output=True, text=True, timeout=TIMEOUT_S)
    finally:
        home.chmod(0o755)
    assert done.returncode == 2
    assert done.stderr == f"error: MTL_LAB_HOME={home} is a read-only folder; point MTL_LAB_HOME at a folder " \
        "you can write to, e.g. `export MTL_LAB_HOME=~/mtl-lab`\n"


@pytest.mark.slow
def test_worker_with_an_unknown_run_id_says_so_in_one_line(home):
    RunStore().close()
    done = subprocess.run([sys.executable, "-m", "mtl_core.worker", "no-such-run"], env=_env(home),
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 2
    assert done.stderr.startswith("error: no run 'no-such-run'") and done.stderr.count("\n") == 1


@pytest.mark.parametrize("kind", ["binary", "folder"])
def test_a_config_that_is_binary_or_a_folder_is_named(home, tmp_path, capsys, kind):
    path = tmp_path / "config.yaml"
    if kind == "binary":
        path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + os.urandom(256))
        says = "is a binary file"
    else:
        path.mkdir()
        says = "is a folder"
    with pytest.raises(ConfigError, match=f"config file {path} {says}"):
        cli.check_config_file(path)
    for command in ("run", "transfer"):
        code, out, err = _cli(capsys, command, "--config", str(path))
        assert code == 2 and err == f"error: config file {path} {says}" + err.split(says, 1)[1]
        assert "Traceback" not in err


def test_config_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=f"config file {path} is not UTF-8 text"):
        cli.check_config_file(path)


def test_any_other_os_or_sqlite_error_in_the_cli_is_one_line(home, monkeypatch, capsys):
    def broken(args):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(cli, "cmd_runs", broken)
    code, out, err = _cli(capsys, "runs")
    assert code == 1 and err == "error: OperationalError: disk I/O error (run with -v for details)\n"
