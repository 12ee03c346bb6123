"""Fixtures every test gets: one CPU thread, a private MTL_LAB_HOME, no standby worker.

One thread keeps training tests fast and their timings stable on a small machine
(intra-op threading only pays off for large tensors). A temporary MTL_LAB_HOME keeps
every run store a test opens out of the developer's `./runs/` and `$MTL_LAB_HOME`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch


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
    # No standby worker importing torch beside every page test (tests of it turn it on).
    monkeypatch.setenv("MTL_LAB_WARM_WORKER", "0")
    yield
    torch.set_num_threads(threads)
