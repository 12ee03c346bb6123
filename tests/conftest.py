"""Fixtures every test gets: one CPU thread, a private MTL_LAB_HOME, runs forked from a fork server.

One thread keeps training tests fast and their timings stable on a small machine
(intra-op threading only pays off for large tensors). A temporary MTL_LAB_HOME keeps
every run store a test opens out of the developer's `./runs/` and `$MTL_LAB_HOME`.

Under pytest-xdist (`-n logical`; pyproject adds `--dist loadfile`) each test file runs
whole in one process, so a module-wide fixture (test_jobs' four workers, a pretrained
encoder, a Ray cluster) is built once. xdist hands the files out most tests first (its
`loadscopereorder`), so the few-test browser file runs last; handing the slow files out
first (`--no-loadscope-reorder` with them collected first) was measured no faster (352 s vs
340 s, one run each, when the browser tests were two files: they then ran at once).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest
import torch

from mtl_core import jobs


def _scan_installed_components_once() -> None:
    """Each new `AppTest` makes Streamlit scan the metadata of every installed package for
    custom components (`scan_component_manifests`: ~0.9 s of 1.2 s for a Train page's first
    run here, 377 packages); the installed packages cannot change during a test session, so
    the scan is done once per process and its result reused. What the app sees is the same."""
    try:
        from streamlit.components.v2 import manifest_scanner
    except ImportError:  # another Streamlit: nothing to spare
        return
    if not hasattr(manifest_scanner.scan_component_manifests, "cache_info"):
        manifest_scanner.scan_component_manifests = functools.lru_cache(maxsize=None)(
            manifest_scanner.scan_component_manifests)


_scan_installed_components_once()


def _compile_page_scripts_once() -> None:
    """Every `AppTest.run()` makes a new `ScriptCache`, so the app's script and its page are
    read, rewritten for Streamlit's "magic" and compiled again at each run (~0.1 s each here,
    a third of a typical page run), where a real server compiles each script once and keeps
    it until the file changes. The compiled code is kept here the same way: per process, by
    path, invalidated when the file's mtime or size changes. What runs is the same code."""
    try:
        from streamlit import config as st_config
        from streamlit.runtime.scriptrunner.script_cache import ScriptCache
    except ImportError:  # another Streamlit: nothing to spare
        return
    if getattr(ScriptCache.get_bytecode, "_mtl_lab_cached", False):
        return
    compiled: dict[tuple, object] = {}
    uncached = ScriptCache.get_bytecode

    def get_bytecode(self, script_path: str):
        path = os.path.abspath(script_path)
        try:
            stat = os.stat(path)
        except OSError:
            return uncached(self, script_path)  # its own error, as Streamlit reports it
        key = (path, stat.st_mtime_ns, stat.st_size, st_config.get_option("runner.magicEnabled"))
        code = compiled.get(key)
        if code is None:
            code = compiled[key] = uncached(self, script_path)
        return code

    get_bytecode._mtl_lab_cached = True
    ScriptCache.get_bytecode = get_bytecode


_compile_page_scripts_once()

# Workers start with one OpenMP thread (a run chooses its own threads after that); set once for
# the whole process, so that the fork server's start-up environment stays the same across tests.
os.environ["OMP_NUM_THREADS"] = "1"


@pytest.fixture(autouse=True)
def _one_thread_and_private_home(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    # A wider-scoped fixture (e.g. test_jobs' module-wide lab) may already have pointed
    # MTL_LAB_HOME at a temporary folder its workers write to: keep that one. Any other
    # value (the developer's own home) is replaced.
    current = os.environ.get("MTL_LAB_HOME")
    base = tmp_path_factory.getbasetemp().resolve()
    if current is None or not Path(current).resolve().is_relative_to(base):
        monkeypatch.setenv("MTL_LAB_HOME", str(tmp_path / "mtl_lab_home"))
    # Runs this test process starts are forked from one fork server (`jobs.keep_warm`), as the
    # dashboard's are: started with the process's first run, it imports torch once instead of
    # once per worker (~8 CPU-s each here). The cold start is tested where a CLI starts runs.
    jobs.keep_warm(start_now=False)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fresh lab folder for a dashboard test (MTL_LAB_HOME, caches cleared); every training
    process or sweep driver started meanwhile is stopped at the end. A module that needs
    another kind of lab defines its own `lab`, which wins over this one."""
    import subprocess

    import streamlit as st

    from mtl_core import jobs

    monkeypatch.setenv("MTL_LAB_HOME", str(tmp_path))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    st.cache_resource.clear()
    st.cache_data.clear()
    before = set(jobs._CHILDREN)
    yield tmp_path
    for run_id, proc in list(jobs._CHILDREN.items()):
        if run_id in before or proc.poll() is not None:
            continue
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            # A worker whose run has ended ignores SIGTERM while it writes how it ended;
            # one still alive 5 s later is killed (the lab is a temporary folder).
            import warnings

            warnings.warn(f"{proc.args} (run {run_id}) was still alive 5 s after SIGTERM: killed")
            proc.kill()
            proc.wait(timeout=10)
    st.cache_resource.clear()


def _store_finished_run(home: Path, config: dict) -> str:
    """Train `config` in this process and store it in `home`'s run store as a finished run
    (curves, snapshots, result), as a worker would; its id."""
    from mtl_core.config import ExperimentConfig
    from mtl_core.experiment import run_experiment
    from mtl_core.store import RunStore, StoreSink

    cfg = ExperimentConfig.parse(config)
    with RunStore(home / "mtl_lab.db") as store:
        run_id = store.create_run(cfg.to_dict())
        store.set_status(run_id, "running")
        sink = StoreSink(store, run_id)
        result = run_experiment(cfg, sink=sink, run_id=run_id)
        sink.flush()
        store.save_result(run_id, result)
        store.set_status(run_id, "finished")
    return run_id


@pytest.fixture(scope="session")
def store_finished_run():
    """`store_finished_run(home, config) -> run_id`: a finished run trained in this process
    (a page's stored run without a worker process)."""
    return _store_finished_run


@pytest.fixture
def jobs_in_process(monkeypatch: pytest.MonkeyPatch):
    """`jobs.start` trains the run in a thread of this process (`worker.execute`, the one
    lifecycle every worker runs) instead of a worker process: a page's flow from its button
    to its table without the seconds a fresh process spends importing torch. The process
    itself is tested by test_jobs, test_warm_worker and the browser test. Not for a test
    that cancels: a cancel signals the run's pid, here the test's own process."""
    import threading

    from mtl_core import jobs, worker
    from mtl_core.store import RunStore

    threads: list[threading.Thread] = []

    def start(config, *, name=None, store_path=None):
        config = jobs._validated(config)
        with RunStore(store_path) as store:
            run_id = store.create_run(config.model_dump(mode="json"), name=name)
            path = store.path

        def train() -> None:
            with RunStore(path) as store:
                worker.execute(store, run_id)

        thread = threading.Thread(target=train, name=f"run-{run_id}", daemon=True)
        thread.start()
        threads.append(thread)
        return run_id

    monkeypatch.setattr(jobs, "start", start)
    yield
    for thread in threads:
        thread.join(timeout=120)
