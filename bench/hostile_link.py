"""What opening a hostile-size link costs the dashboard's server (issue 10).

Starts the dashboard with the launcher (`mtl_core.launcher`, as `mtl-lab dashboard` does)
on a free port in a temporary MTL_LAB_HOME, opens the default Train page in headless
Chromium, reads the server's memory (VmRSS now and VmHWM, the peak, of the Streamlit
process and its children from /proc), then opens

    /?dataset.options.n_samples=200000&dataset.options.input_dim=1024

(which took the server from 0.43 GB to 3.7 GB before the dashboard bounded sizes and
stopped building the data for the parameter caption) and reads them again.

    python bench/hostile_link.py [--link QUERY] [--settle 5]

Needs Linux (/proc), /usr/bin/chromium and the playwright package.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
HOSTILE = "dataset.options.n_samples=200000&dataset.options.input_dim=1024"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            kids.append(int(entry.name))
    return kids


def _memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (MB) of `pid` and every descendant, summed."""
    total = {"VmRSS": 0.0, "VmHWM": 0.0}
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                key = line.split(":", 1)[0]
                if key in total:
                    total[key] += int(line.split()[1]) / 1024.0
        except OSError:
            continue
        todo += _children(p)
    return total


def _open(page, url: str, settle: float) -> None:
    page.goto(url, timeout=120_000)
    page.get_by_text("Set up an experiment above").wait_for(timeout=120_000)
    time.sleep(settle)  # what the page does after its first draw (caption, fragments)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--link", default=HOSTILE, help="the query string of the hostile link")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds to wait after each page is drawn")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="mtl_lab_hostile_") as home:
        env = {**os.environ, "MTL_LAB_HOME": home, "OMP_NUM_THREADS": "1"}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        proc = subprocess.Popen([sys.executable, "-m", "mtl_core.launcher", "--port", str(port)], cwd=home,
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=5):
                        break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        print("the dashboard did not start", file=sys.stderr)
                        return 1
                    time.sleep(0.5)
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=CHROMIUM,
                    args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--disable-component-update", "--disable-sync", "--no-first-run"],
                )
                page = browser.new_page()
                _open(page, f"http://127.0.0.1:{port}/", args.settle)
                before = _memory_mb(proc.pid)
                page = browser.new_page()
                _open(page, f"http://127.0.0.1:{port}/?{args.link}", args.settle)
                after = _memory_mb(proc.pid)
                notes = page.get_by_text("the dashboard's bound").count()
                browser.close()
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
    print(f"link: ?{args.link}")
    print(f"{'':24}{'RSS MB':>10}{'peak (HWM) MB':>16}")
    print(f"{'default page':24}{before['VmRSS']:>10.0f}{before['VmHWM']:>16.0f}")
    print(f"{'after the hostile link':24}{after['VmRSS']:>10.0f}{after['VmHWM']:>16.0f}")
    print(f"{'difference':24}{after['VmRSS'] - before['VmRSS']:>+10.0f}{after['VmHWM'] - before['VmHWM']:>+16.0f}")
    print(f"bound notes shown on the page: {notes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
