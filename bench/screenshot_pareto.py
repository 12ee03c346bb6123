"""The README's picture of the Pareto plot (issue 14): docs/pareto.png, made from a real sweep.

1. Trains a 2-task loss-weight sweep on the quickstart (600 steps, as examples/quickstart.yaml):
   7 weightings on the line w_y1 + w_y2 = 2 (w_y1 from 0.2 to 1.8) plus two adaptive strategies (uncertainty,
   Kendall et al., 2018; MGDA, Sener & Koltun, 2018: they set the weights themselves, so train
   once each), 9 points, with `mtl-lab sweep --executor batched` in a temporary store
   (MTL_LAB_HOME).
2. Starts the dashboard headless on 127.0.0.1 on a free port against that store, opens the Sweep
   page on the sweep in Debian's Chromium through Playwright (never `playwright install`), waits
   for the Pareto plot and saves it with its heading and caption, 1200 px wide (about 620 high).
3. Stops the server by its PID and removes the temporary store (`--keep` keeps it).

    python bench/screenshot_pareto.py [--out docs/pareto.png] [--keep]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SWEEP = {
    "name": "quickstart weights",
    "base": str(ROOT / "examples" / "quickstart.yaml"),
    # w_y1 + w_y2 = 2 from (0.2, 1.8) to (1.8, 0.2): the ends of the full simplex give one task
    # weight 0, leave it untrained and stretch the axes ~7x past the trade-off worth seeing.
    "axes": {"weights": {"values": [{"y1": w, "y2": round(2 - w, 2)} for w in (0.2, 0.5, 0.75, 1.0, 1.25, 1.5, 1.8)]},
             "weighting": ["manual", "uncertainty", "mgda"]},
    "executor": "batched",
}
PLOT = ".st-key-sweep_pareto .js-plotly-plot"
HEADING = "Trade-off between the tasks"
WIDTH, MAX_BYTES = 1200, 300_000
PAD = 8  # px around the heading and the plot
# Pixel (in the page) of point 0 of the plot's front trace (trace 1), as tests/test_browser.py (the sweep test):
# the plot is drawn once this is not null.
FRONT_POINT_JS = """sel => {
    const el = document.querySelector(sel);
    const trace = el && el._fullData && el._fullData[1];
    const calc = el && el.calcdata && el.calcdata[1];
    if (!trace || !calc || !calc.length) return null;
    const xa = el._fullLayout.xaxis, ya = el._fullLayout.yaxis, box = el.getBoundingClientRect();
    return {x: box.left + xa._offset + xa.c2p(calc[0].x), y: box.top + ya._offset + ya.c2p(calc[0].y)};
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_sweep(home: Path) -> str:
    """Train SWEEP with the CLI, as a user would; its id."""
    from mtl_core.store import RunStore

    config = home / "sweep.yaml"
    config.write_text(yaml.safe_dump(SWEEP))
    env = {**os.environ, "MTL_LAB_HOME": str(home), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mtl_core", "sweep", "--config", str(config), "-q"],
                   cwd=ROOT, env=env, check=True)
    print(f"sweep trained in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    with RunStore(home / "mtl_lab.db") as store:
        return str(store.sweeps()["id"].iloc[0])


def start_server(home: Path, port: int) -> subprocess.Popen:
    """`streamlit run dashboard/app.py` on 127.0.0.1:port with MTL_LAB_HOME=home, healthy."""
    env = {**os.environ, "MTL_LAB_HOME": str(home), "OMP_NUM_THREADS": "1", "MTL_LAB_WARM_WORKER": "0",
           "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    with open(home / "streamlit.log", "wb") as log:  # the server writes to its own copy of the handle
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port), "--server.fileWatcherType", "none"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}; see {home / 'streamlit.log'}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as response:
                if response.status == 200:
                    return proc
        except OSError:
            time.sleep(0.3)
    stop_server(proc)
    raise RuntimeError("the dashboard was not healthy after 60 s")


def stop_server(proc: subprocess.Popen) -> None:
    """Stop the server this script started, by its PID."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _boxes(page) -> tuple[dict, dict]:
    heading = page.get_by_role("heading", name=HEADING).bounding_box()
    plot = page.locator(PLOT).bounding_box()
    assert heading and plot, "the Pareto plot and its heading are drawn"
    return heading, plot


def screenshot(url: str, sweep_id: str) -> bytes:
    """PNG of the Pareto plot and its heading on the Sweep page of `sweep_id`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 2400})
            page.set_default_timeout(90_000)
            page.goto(f"{url}/sweep?sweep={sweep_id}")
            page.wait_for_function(f"sel => ({FRONT_POINT_JS})(sel) !== null", arg=PLOT)
            # Streamlit scrolls its main block, not the window: make the page tall enough to hold
            # the plot unscrolled, and wide enough that the plot is WIDTH px, then let plotly redraw.
            heading, plot = _boxes(page)
            page.set_viewport_size({"width": int(1500 + WIDTH - 2 * PAD - plot["width"]),
                                    "height": int(plot["y"] + plot["height"] + 200)})
            page.wait_for_timeout(1500)
            heading, plot = _boxes(page)
            page.add_style_tag(content=".modebar-container { display: none !important; }")  # plotly's toolbar
            page.mouse.move(0, 0)  # no hover label: it would cover points
            top = heading["y"] - PAD
            return page.screenshot(clip={"x": plot["x"] - PAD, "y": top, "width": plot["width"] + 2 * PAD,
                                         "height": plot["y"] + plot["height"] + PAD - top})
        finally:
            browser.close()


def fit(png: bytes) -> bytes:
    """`png` as is when under MAX_BYTES; else with its colours cut to a 256-entry palette."""
    if len(png) <= MAX_BYTES:
        return png
    from PIL import Image

    out = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").quantize(256).save(out, format="PNG", optimize=True)
    return out.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "pareto.png"))
    parser.add_argument("--keep", action="store_true", help="keep the temporary store (its path is printed)")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is missing (apt-get install chromium)", file=sys.stderr)
        return 1
    home = Path(tempfile.mkdtemp(prefix="mtl_pareto_"))
    proc = None
    try:
        sweep_id = train_sweep(home)
        port = free_port()
        proc = start_server(home, port)
        png = fit(screenshot(f"http://127.0.0.1:{port}", sweep_id))
    finally:
        if proc is not None:
            stop_server(proc)
        if args.keep:
            print(f"store kept in {home}", file=sys.stderr)
        else:
            shutil.rmtree(home, ignore_errors=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(png)
    from PIL import Image

    width, height = Image.open(out).size
    print(f"{out}: {width} × {height} px, {len(png) / 1000:.0f} kB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
