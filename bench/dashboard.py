"""How fast the dashboard starts, and how much memory it holds: `python bench/dashboard.py`.

1. Time from `streamlit run dashboard/app.py` to a healthy server (`/_stcore/health`),
   and to the first rendered page in Chromium (the Train button visible: the page's
   script has run, mtl_core and torch imported).
2. The server's resident memory (VmRSS) after that first page, and after N small runs
   started from the Train page and watched to the end (`--runs N`, 0 to skip).

Needs /usr/bin/chromium and playwright, like tests/test_browser.py.
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
sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{url} not healthy after {timeout:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="small runs to train before measuring RSS again")
    parser.add_argument("--steps", type=int, default=100, help="steps of each small run")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    home = Path(tempfile.mkdtemp(prefix="mtl-lab-bench-"))
    port = free_port()
    env = {**os.environ, "MTL_LAB_HOME": str(home), "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port), "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base + "/_stcore/health", server)
        t_health = time.perf_counter() - t0
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.goto(base + f"/?steps={args.steps}&dataset.options.n_samples=1000")
            train = page.locator(".st-key-train button:visible")
            train.wait_for(timeout=120_000)
            t_page = time.perf_counter() - t0
            rss_first = rss_mib(server.pid)
            print(f"streamlit run -> healthy server:      {t_health:6.2f} s")
            print(f"streamlit run -> first rendered page: {t_page:6.2f} s")
            print(f"server RSS after the first page:      {rss_first:6.1f} MiB")

            t_runs = time.perf_counter()
            for i in range(args.runs):
                # A different seed each time, so no run reuses cached baselines.
                page.goto(base + f"/?steps={args.steps}&dataset.options.n_samples=1000&seed={i + 1}")
                train.wait_for(timeout=60_000)
                train.click()
                page.get_by_text("Finished. Δm =").wait_for(timeout=180_000)
            if args.runs:
                elapsed = time.perf_counter() - t_runs
                print(f"{args.runs} runs of {args.steps} steps from the page: {elapsed:6.1f} s "
                      f"({elapsed / args.runs:.1f} s per run incl. baselines)")
                print(f"server RSS after {args.runs} runs:             {rss_mib(server.pid):6.1f} MiB")
            browser.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        from mtl_core.store import ACTIVE_STATUSES, RunStore

        db = home / "mtl_lab.db"
        if db.exists():
            with RunStore(db) as store:
                for pid in store.runs(status=ACTIVE_STATUSES)["pid"].dropna():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except ProcessLookupError:
                        pass


if __name__ == "__main__":
    main()
