"""How fast the dashboard starts, and how much memory it holds: `python bench/dashboard.py`.

1. Time from `streamlit run dashboard/app.py` to a healthy server (`/_stcore/health`),
   and to the first rendered page in Chromium (the Train button visible: the page's
   script has run, mtl_core and torch imported).
2. The server's resident memory (VmRSS) after that first page, and after N small runs
   started from the Train page and watched to the end (`--runs N`, 0 to skip).
3. `--watch`: how much a watching browser slows training down. The same run (mmoe_synthetic
   defaults, `--watch-steps` steps on the CPU, one seed so the baselines are cached after a
   first warm-up run and every measured run trains only the multi-task model) alternately
   with no page open (`mtl_core.jobs.start` from this process, with the clicked run's stored
   config) and watched as a user watches it (`--watch-mode click`, the default: the Train
   page, already loaded, clicks Train and its live panel polls the run to its end). The old
   method (`--watch-mode link`: the run started from here, then a new page opened at
   `?run=<id>`) also charges the page's own load to the run. Prints the median samples/s of
   each condition (from the runs' stored results, i.e. the training window), the slow-down
   in %, and the CPU seconds the server and Chromium spent meanwhile. The workers get
   OMP_NUM_THREADS=1, and the server no fork server (its import of torch is not watching). `--watch-mode interleaved` compares within ONE long run
   instead (the drift of the machine between runs cancels): the clicked page is live and
   halted (DevTools `Debugger.pause`: no timer, no message to the server) in turns, in
   ABBA blocks (`--blocks`, `--block-s`, `--batch-size`); each block's step rate is the slope
   of the run's own logged (wall_time, step) points.
4. `--click N`: what a user waits for. N times: open the Train page with the default
   experiment (a new seed each time, so no baseline is cached), wait until the server's
   fork server is warm (`mtl_core.jobs.keep_warm`: its process idle for 1 s; `--cold`
   turns it off and measures a fresh process instead), click Train, and time
   click → first curve point drawn on the page and click → the finish banner. Prints
   each, then the median and range.

Needs /usr/bin/chromium and playwright, like tests/test_browser.py.
"""

from __future__ import annotations

import argparse
import os
import re
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat fields 14 and 15)."""
    # The command name (field 2) may hold spaces; the fields after its ")" do not.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def browser_cpu_seconds() -> float:
    """CPU seconds used so far by every Chromium process on the machine (the bench's browser)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if b"chromium" in (entry / "cmdline").read_bytes():
                total += cpu_seconds(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return total


def watch_config(steps: int) -> dict:
    """The run both --watch conditions train: the quickstart defaults, no baselines (they
    would be cached after the first run and make the runs unequal), on the CPU."""
    return {"dataset": {"name": "mmoe_synthetic"}, "steps": steps, "baselines": False, "device": "cpu"}


def watch_link(steps: int) -> str:
    """The Train page set to the --watch run (the form's values come from the link)."""
    return f"/?dataset.name=mmoe_synthetic&steps={steps}&device=cpu&seed=7"


def click_and_watch(browser, base: str, db: Path, steps: int) -> str:
    """Open the Train page on the --watch run, let it settle, click Train and watch the run
    to its end; the run's id."""
    from mtl_core.store import RunStore

    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    page.goto(base + watch_link(steps))
    page.locator(".st-key-train button:visible").wait_for(timeout=120_000)
    time.sleep(2.0)  # the page settled (its diagram drawn), as a user's page is before a click
    with RunStore(db) as store:
        before = set(store.runs()["id"])
    page.locator(".st-key-train button:visible").click()
    page.get_by_text(re.compile(r"^Finished[.:]")).first.wait_for(timeout=600_000)
    page.close()
    with RunStore(db) as store:
        (run_id,) = set(store.runs()["id"]) - before
    return run_id


def measure_watch(browser, base: str, home: Path, server_pid: int, *, steps: int, repeats: int,
                  mode: str = "click") -> None:
    """Alternate unwatched and watched runs of one config; print medians and the slow-down."""
    import statistics

    from mtl_core import jobs
    from mtl_core.store import RunStore

    db = home / "mtl_lab.db"
    timeout = 600.0
    speeds: dict[bool, list[float]] = {False: [], True: []}
    server_cpu: dict[bool, list[float]] = {False: [], True: []}
    browser_cpu: dict[bool, list[float]] = {False: [], True: []}
    config = watch_config(steps)
    if mode == "click":  # warm-up: trains and caches the baselines; its config is the one to repeat
        with RunStore(db) as store:
            config = store.get_run(click_and_watch(browser, base, db, steps))["config"]
    for i in range(repeats):
        for watched in (False, True):
            cpu0, bcpu0 = cpu_seconds(server_pid), browser_cpu_seconds()
            if watched and mode == "click":
                run_id = click_and_watch(browser, base, db, steps)
                status = jobs.status(run_id, store_path=db)
            else:
                run_id = jobs.start(config, name=f"watch-bench-{i}-{int(watched)}", store_path=db)
                page = None
                if watched:
                    page = browser.new_page(viewport={"width": 1400, "height": 1600})
                    page.goto(base + f"/?run={run_id}")
                    page.get_by_text(f"Run {run_id}").wait_for(timeout=120_000)
                status = jobs.wait(run_id, timeout, store_path=db, poll_s=1.0)
                if page is not None:
                    # The live fragment saw the end: it polled the run all along.
                    page.get_by_text(re.compile(r"^Finished[.:]")).wait_for(timeout=30_000)
                    page.close()
            if status != "finished":
                raise SystemExit(f"run {run_id} ended {status}; see {jobs.log_path(run_id, store_path=db)}")
            with RunStore(db) as store:
                speed = store.result(run_id)["throughput"]["samples_per_s"]
            speeds[watched].append(speed)
            server_cpu[watched].append(cpu_seconds(server_pid) - cpu0)
            browser_cpu[watched].append(browser_cpu_seconds() - bcpu0)
            label = "watched  " if watched else "unwatched"
            print(f"  {label} run {i + 1}/{repeats}: {speed:8,.0f} samples/s "
                  f"(server CPU {server_cpu[watched][-1]:5.1f} s, browser CPU {browser_cpu[watched][-1]:5.1f} s)", flush=True)
    alone, watched_ = statistics.median(speeds[False]), statistics.median(speeds[True])
    print(f"{steps} steps, median of {repeats} runs each (OMP_NUM_THREADS=1, watched by {mode}):")
    print(f"  no page open:          {alone:8,.0f} samples/s  (server CPU {statistics.median(server_cpu[False]):5.1f} s/run)")
    print(f"  Train page watching:   {watched_:8,.0f} samples/s  (server CPU {statistics.median(server_cpu[True]):5.1f} s/run, "
          f"browser CPU {statistics.median(browser_cpu[True]):5.1f} s/run)")
    print(f"  slow-down from watching: {100 * (1 - watched_ / alone):+.1f} %")


def block_rate(points, t0: float, t1: float) -> float | None:
    """Steps per second of the multi-task model between unix times t0 and t1: the slope of a
    least-squares line through its logged (wall_time, step) points in that window."""
    import numpy as np

    inside = points[(points["wall_time"] >= t0) & (points["wall_time"] <= t1)]
    if len(inside) < 3:
        return None
    return float(np.polyfit(inside["wall_time"].to_numpy(), inside["step"].to_numpy(), 1)[0])


def measure_interleaved(browser, base: str, home: Path, server_pid: int, *, steps: int, blocks: int,
                        block_s: float, batch_size: int) -> tuple[list[float], list[float]]:
    """Watched vs not watched within ONE run, so the machine's drift between runs cancels.

    The Train page clicks Train on a long run; once the multi-task model trains, the page is
    alternately live (its fragment polls, redraws at the live pace) and frozen through the
    DevTools protocol (`Debugger.pause`: the page's JavaScript halts, so no timer fires, no
    rerun is asked of the server, nothing is drawn: what a closed tab costs; the count of
    messages the page sent per block shows it), in `block_s` blocks ordered ABBA ABBA, so a
    linear drift cancels too. Each block's step rate is the slope of the run's own logged
    (wall_time, step) points; each watched block is compared with the mean of its
    neighbouring frozen blocks. Prints every block and the median slow-down with its range.
    """
    import statistics

    from mtl_core import jobs
    from mtl_core.store import RunStore

    db = home / "mtl_lab.db"
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    sent = [0]  # messages the page sent the server (its reruns): a frozen page must send none
    received = [0]  # bytes the server sent the page (what a watched page has to take in)

    def on_socket(ws) -> None:
        ws.on("framesent", lambda _frame: sent.__setitem__(0, sent[0] + 1))
        ws.on("framereceived", lambda frame: received.__setitem__(0, received[0] + len(frame)))

    page.on("websocket", on_socket)
    # The whole run is the multi-task model; a larger batch makes each step longer, so the
    # dashboard's step bound (100,000) lasts the blocks asked for.
    page.goto(base + watch_link(steps) + f"&baselines=false&batch_size={batch_size}")
    page.locator(".st-key-train button:visible").wait_for(timeout=120_000)
    time.sleep(2.0)
    with RunStore(db) as store:
        before = set(store.runs()["id"])
    page.locator(".st-key-train button:visible").click()
    run_id = None
    deadline = time.time() + 300
    while time.time() < deadline:  # wait for the multi-task model's own points
        with RunStore(db) as store:
            new = set(store.runs()["id"]) - before
            if new:
                run_id = next(iter(new))
                m = store.metrics(run_id)
                if (m["phase"] == "mtl").sum() >= 3:
                    break
        time.sleep(0.5)
    else:
        raise SystemExit("the multi-task model logged no point within 300 s")
    cdp = page.context.new_cdp_session(page)
    cdp.send("Debugger.enable")
    pattern = "ABBA" * (blocks // 4 + 1)
    spans: list[tuple[bool, float, float, float, float, int, int]] = []  # watched, t0, t1, server/browser CPU, sent, received
    guard = 1.0  # after a switch: the thawed page's catch-up poll belongs to its block, not the last
    for b in range(blocks):
        watched = pattern[b] == "A"
        if watched and b > 0 and not spans[-1][0]:
            cdp.send("Debugger.resume")
        elif not watched and (b == 0 or spans[-1][0]):
            cdp.send("Debugger.pause")  # halts the page's JavaScript at its next event: no timer, no rerun
        time.sleep(guard)
        cpu0, bcpu0, t0, sent0, got0 = (cpu_seconds(server_pid), browser_cpu_seconds(), time.time(), sent[0],
                                         received[0])
        page.wait_for_timeout(block_s * 1000)  # (playwright's own wait: its event handlers keep counting)
        spans.append((watched, t0, time.time(), cpu_seconds(server_pid) - cpu0, browser_cpu_seconds() - bcpu0,
                      sent[0] - sent0, received[0] - got0))
        if jobs.status(run_id, store_path=db) not in ("running", "queued"):
            print(f"  the run ended after block {b + 1}; give more --watch-steps for {blocks} blocks")
            break
    if not spans[-1][0]:
        cdp.send("Debugger.resume")
    jobs.cancel(run_id, store_path=db)
    jobs.wait(run_id, 60, store_path=db, poll_s=0.5)
    page.close()
    with RunStore(db) as store:
        m = store.metrics(run_id)
    points = (m[(m["phase"] == "mtl") & (m["split"] == "train")]
              .drop_duplicates("step").sort_values("step")[["step", "wall_time"]])
    rates = [block_rate(points, t0, t1) for _, t0, t1, *_ in spans]
    for (watched, t0, t1, scpu, bcpu, n_sent, n_got), rate in zip(spans, rates):
        shown = f"{rate:7.1f} steps/s" if rate is not None else "   (too few points)"
        print(f"  block {'watched' if watched else 'frozen '} {t1 - t0:4.1f} s: {shown}  "
              f"(server CPU {scpu:4.2f} s, Chromium CPU {bcpu:4.2f} s, {n_sent} messages sent, "
              f"{n_got / 1024:6.1f} KiB received)", flush=True)
    slow = []
    for i, ((watched, *_), rate) in enumerate(zip(spans, rates)):
        if not watched or rate is None:
            continue
        near = [rates[j] for j in (i - 1, i + 1) if 0 <= j < len(spans) and not spans[j][0] and rates[j]]
        if near:
            slow.append(100 * (1 - rate / statistics.mean(near)))
    if not slow:
        raise SystemExit("no watched block with a frozen neighbour")
    cpu_w = [s[3] / (s[2] - s[1]) for s in spans if s[0]]
    cpu_b = [s[4] / (s[2] - s[1]) for s in spans if s[0]]
    print(f"one run of {steps} steps (batch {batch_size}), {len(spans)} blocks of {block_s:.0f} s (clock: the run's logged wall_time; "
          f"load before {os.getloadavg()[0]:.2f}):")
    print_slow_down(slow)
    print(f"  while watched: server {statistics.median(cpu_w):.3f} CPU-s/s, Chromium {statistics.median(cpu_b):.3f} CPU-s/s")
    return slow, cpu_b


def print_slow_down(slow: list[float]) -> None:
    """Median and range of the watched blocks' slow-downs, and their mean with its 95 %
    Student-t interval (the blocks as independent samples)."""
    import statistics

    print(f"  slow-down of a watched block vs its frozen neighbours: median {statistics.median(slow):+.1f} % "
          f"(range {min(slow):+.1f} to {max(slow):+.1f} %, {len(slow)} blocks)")
    if len(slow) > 1:
        from scipy.stats import t as student_t

        half = student_t.ppf(0.975, len(slow) - 1) * statistics.stdev(slow) / len(slow) ** 0.5
        mean = statistics.mean(slow)
        print(f"  mean {mean:+.1f} %, 95 % interval {mean - half:+.1f} to {mean + half:+.1f} % (Student t over the blocks)")


def fork_server_pids(server_pid: int) -> list[int]:
    """Children of the server that run `mtl_core.worker --fork-server` (from /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == server_pid and b"--fork-server" in cmd:
            pids.append(int(entry.name))
    return pids


def wait_warm(server_pid: int, timeout: float = 120.0) -> float:
    """Seconds until a fork server exists and has used no CPU for 1 s (warmed up)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        pids = fork_server_pids(server_pid)
        if pids:
            try:
                before = cpu_seconds(pids[0])
                time.sleep(1.0)
                if cpu_seconds(pids[0]) - before < 0.02:
                    return time.perf_counter() - t0
            except OSError:
                pass
        else:
            time.sleep(0.2)
    raise SystemExit(f"no warm fork server after {timeout:.0f} s")


def measure_clicks(page, base: str, server_pid: int, *, n: int, cold: bool, db: Path) -> None:
    """Click → first point and click → result on the Train page's default experiment, with
    where the first point's time went (from the store's wall-clock stamps): click → run
    created (the page's rerun), → first point logged (worker start-up and the first steps),
    → drawn (the page's poll and the browser)."""
    import statistics

    from mtl_core.store import RunStore

    first, done = [], []
    for i in range(n):
        page.goto(base + f"/?seed={100 + i}")
        train = page.locator(".st-key-train button:visible")
        train.wait_for(timeout=120_000)
        if not cold:
            wait_warm(server_pid)
        else:
            time.sleep(2.0)  # the page settled, as when warm
        browser0, server0 = browser_cpu_seconds(), cpu_seconds(server_pid)
        t0, wall0 = time.perf_counter(), time.time()
        train.click()
        page.get_by_text(re.compile(r"^Run ")).first.wait_for(timeout=300_000)
        heading = time.perf_counter() - t0
        page.locator(".st-key-live_curves .js-plotly-plot").first.wait_for(timeout=300_000)
        first.append(time.perf_counter() - t0)
        cpu = f"CPU until then: Chromium {browser_cpu_seconds() - browser0:.2f} s, server {cpu_seconds(server_pid) - server0:.2f} s"
        page.get_by_text(re.compile(r"^Finished\. Δm =")).first.wait_for(timeout=300_000)
        done.append(time.perf_counter() - t0)
        with RunStore(db) as store:
            run = store.runs().iloc[0]
            logged = store.metrics(run["id"])["wall_time"].min()
        created = run["created_at"].timestamp() - wall0
        print(f"  click {i + 1}/{n}: first point {first[-1]:5.2f} s (run created +{created:.2f} s, first point "
              f"logged +{logged - wall0:.2f} s, run's heading drawn +{heading:.2f} s; {cpu}), "
              f"result {done[-1]:5.2f} s", flush=True)
    label = "fresh process (no fork server)" if cold else "forked from the fork server"
    print(f"{label}, default experiment, {n} clicks (clock: time.perf_counter in the bench process):")
    for name, values in (("click -> first point", first), ("click -> result     ", done)):
        print(f"  {name}: median {statistics.median(values):5.2f} s  (range {min(values):.2f}-{max(values):.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=None,
                        help="small runs to train before measuring RSS again (default 3, or 0 with --watch)")
    parser.add_argument("--steps", type=int, default=100, help="steps of each small run")
    parser.add_argument("--watch", action="store_true", help="measure the slow-down a watching page causes")
    parser.add_argument("--watch-steps", type=int, default=6000, help="steps of each --watch run (~15-20 s)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="--watch runs per condition (default 3), or long runs whose blocks are pooled "
                        "with --watch-mode interleaved (default 1)")
    parser.add_argument("--watch-mode", choices=("click", "link", "interleaved"), default="click",
                        help="--watch: click Train on a loaded page (what a user does), or open ?run=ID after the "
                        "start, or one long run watched and frozen in turns (--blocks, --block-s)")
    parser.add_argument("--blocks", type=int, default=16, help="--watch-mode interleaved: blocks (ABBA order)")
    parser.add_argument("--block-s", type=float, default=15.0, help="--watch-mode interleaved: seconds per block")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="--watch-mode interleaved: the run's batch size (larger: slower steps, longer run)")
    parser.add_argument("--click", type=int, default=0, help="clicks to time (click -> first point, -> result)")
    parser.add_argument("--cold", action="store_true", help="--click without the fork server")
    args = parser.parse_args()
    if args.runs is None:
        args.runs = 0 if (args.watch or args.click) else 3
    if args.repeats is None:
        args.repeats = 1 if args.watch_mode == "interleaved" else 3

    from playwright.sync_api import sync_playwright

    home = Path(tempfile.mkdtemp(prefix="mtl-lab-bench-"))
    port = free_port()
    env = {**os.environ, "MTL_LAB_HOME": str(home),
           "MTL_LAB_WARM_WORKER": "0" if (args.cold or args.watch) else "1"}
    if not args.click:  # --click measures what a user gets: the engine's own thread budget
        env["OMP_NUM_THREADS"] = "1"
    # Workers started from here (--watch) inherit this process's environment.
    os.environ.update(MTL_LAB_HOME=str(home), OMP_NUM_THREADS="1")
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

            if args.watch:
                page.close()  # the unwatched runs train with no page open
                if args.watch_mode == "interleaved":
                    pooled, chromium = [], []
                    for _ in range(args.repeats):  # long runs one after another, their blocks pooled
                        slow, cpu_b = measure_interleaved(browser, base, home, server.pid, steps=args.watch_steps,
                                                          blocks=args.blocks, block_s=args.block_s,
                                                          batch_size=args.batch_size)
                        pooled += slow
                        chromium += cpu_b
                    if args.repeats > 1:
                        import statistics

                        print(f"{args.repeats} runs pooled:")
                        print_slow_down(pooled)
                        print(f"  while watched: Chromium median {statistics.median(chromium):.3f} CPU-s/s "
                              f"(range {min(chromium):.3f}-{max(chromium):.3f})")
                else:
                    measure_watch(browser, base, home, server.pid, steps=args.watch_steps, repeats=args.repeats,
                                  mode=args.watch_mode)
                page = browser.new_page(viewport={"width": 1400, "height": 1600})
                train = page.locator(".st-key-train button:visible")

            if args.click:
                measure_clicks(page, base, server.pid, n=args.click, cold=args.cold, db=home / "mtl_lab.db")

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
