"""What one redraw of a live chart costs the browser: `python bench/redraw.py [MODE[:POINTS] ...]`.

Serves bench/redraw_app.py (a live panel polling every second) with Streamlit, opens it in
headless Chromium once per mode, and prints the CPU seconds Chromium (all its processes) and
the server spend per poll over `--seconds` of polling. Modes: `none` (progress bar and caption
only), `same` (the same figure every poll: Streamlit keeps the element), `new` (new points
every poll: a new element, plotted from scratch), `static` (`new` with plotly's staticPlot);
`new:200` draws 200 points per curve instead of 500. Default: none same new static new:200.
The figures behind dashboard/live_pace.py. CPU time (from /proc), not wall time, so a busy
machine inflates them less than timings; still, say the `uptime` load beside them.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# bench/dashboard.py's helpers (its name is the dashboard package's, hence by path)
_spec = importlib.util.spec_from_file_location("bench_dashboard", ROOT / "bench" / "dashboard.py")
bench_dashboard = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_dashboard)
CHROMIUM, CHROMIUM_ARGS = bench_dashboard.CHROMIUM, bench_dashboard.CHROMIUM_ARGS
browser_cpu_seconds, cpu_seconds = bench_dashboard.browser_cpu_seconds, bench_dashboard.cpu_seconds
free_port, wait_healthy = bench_dashboard.free_port, bench_dashboard.wait_healthy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modes", nargs="*", default=["none", "same", "new", "static", "new:200"])
    parser.add_argument("--seconds", type=float, default=20.0, help="polling measured per mode")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "bench" / "redraw_app.py"), "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port), "--server.fileWatcherType", "none",
         "--runner.postScriptGC", "false"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    print(f"load (uptime): {os.getloadavg()[0]:.1f}; clock: /proc CPU seconds; {args.seconds:.0f} s per mode")
    try:
        wait_healthy(base + "/_stcore/health", server)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for mode in args.modes:
                name, _, points = mode.partition(":")
                page = browser.new_page(viewport={"width": 1400, "height": 1600})
                page.goto(base + f"/?mode={name}&n={points or 500}")

                def polls(page=page) -> int:
                    found = re.findall(r"polls=(\d+)", page.content())
                    return int(found[0]) if found else 0

                while polls() < 5:  # the page loaded and its chart drawn once
                    time.sleep(0.2)
                k0, b0, s0 = polls(), browser_cpu_seconds(), cpu_seconds(server.pid)
                time.sleep(args.seconds)
                k1, b1, s1 = polls(), browser_cpu_seconds(), cpu_seconds(server.pid)
                n = max(k1 - k0, 1)
                print(f"  {mode:9s} {n:3d} polls: browser {1000 * (b1 - b0) / n:5.0f} ms/poll, "
                      f"server {1000 * (s1 - s0) / n:4.0f} ms/poll", flush=True)
                page.close()
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=15)


if __name__ == "__main__":
    main()
