"""Real browsers: the quickstart trained from the Train page as a person sees it; a shared
link to a hostile run; lesson 1 walked from the landing page; a sweep's Pareto point clicked.

A `streamlit run` server on a free port with its own MTL_LAB_HOME, driven by Chromium
through Playwright: set a loss weight with the keyboard, press Train, watch the live
curve grow, then read the Results table. Needs /usr/bin/chromium (Debian's `chromium`
package) and the playwright Python package; skipped with the reason when either is
missing. The module's tests share one server and one Chromium (each test opens its own
browser context: no cookies, storage or page shared), as a class would share them.
`MTL_LAB_SCREENSHOT=1` also saves the Train page to docs/train.png.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
# The quickstart experiment (all defaults) on a smaller budget, so the test stays fast. The
# live curve is seen growing whatever the machine's pace: the test pauses the worker
# (SIGSTOP) once it has logged a step, reads the frozen curve, then lets it go on.
QUICKSTART_QUERY = "?steps=600&dataset.options.n_samples=3000"
TIMEOUT_S = 150

pytestmark = [pytest.mark.browser, pytest.mark.slow]

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None


def wait_for_url_text(page, *parts: str, timeout_s: float = 30.0) -> None:
    """Wait until the address holds every one of `parts`. Streamlit rewrites the query
    string with history.replaceState, which is no navigation for `page.wait_for_url`, so
    the check runs in the page itself."""
    page.wait_for_function(
        "parts => parts.every(p => decodeURIComponent(window.location.href).includes(p))",
        arg=list(parts), timeout=timeout_s * 1000,
    )


def _skip_reason() -> str | None:
    if sync_playwright is None:
        return "playwright is not installed (pip install playwright)"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"streamlit exited with {proc.returncode} before it was healthy")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} not healthy after {timeout:.0f} s")


def start_server(home: Path, port: int) -> subprocess.Popen:
    """`streamlit run dashboard/app.py` bound to 127.0.0.1:port, with MTL_LAB_HOME=home; as a
    user gets it, runs are forked from its fork server."""
    env = {**os.environ, "MTL_LAB_HOME": str(home), "OMP_NUM_THREADS": "1",
           "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false", "MTL_LAB_WARM_WORKER": "1"}
    log = open(home / "streamlit.log", "wb")
    return subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port), "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )


def stop_server(proc: subprocess.Popen, home: Path) -> None:
    """Stop the server by its PID, then the training processes it started (they run in
    their own sessions and would outlive it)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    db = home / "mtl_lab.db"
    if db.exists():
        from mtl_core.store import ACTIVE_STATUSES, RunStore

        with RunStore(db) as store:
            for pid in store.runs(status=ACTIVE_STATUSES)["pid"].dropna():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory):
    """One dashboard server (with its fork server, as a user gets it) on one lab for this
    module's tests, as a class shares one server: its start and first page render (~12 s
    here) are paid once. Each test checks only the runs it started itself."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    home = tmp_path_factory.mktemp("browser_lab")
    port = _free_port()
    proc = start_server(home, port)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/_stcore/health", proc)
        yield f"http://127.0.0.1:{port}", home
    finally:
        stop_server(proc, home)


@pytest.fixture
def server(lab_server):
    """The module's dashboard address."""
    return lab_server[0]


@pytest.fixture
def lab(lab_server) -> Path:
    """The module's lab folder (its run store: lab / "mtl_lab.db")."""
    return lab_server[1]


@pytest.fixture(scope="module")
def chromium(lab_server):
    """One headless Chromium for the module (its start is ~6 CPU-s here: browser, GPU and
    driver processes); `page_for` gives each test a fresh context of its own."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page_for(chromium):
    """`page_for(height, timeout_s)`: a page 1500 px wide in a new browser context, closed
    after the test; `timeout_s` is its default wait."""
    contexts = []

    def make(height: int, timeout_s: float):
        context = chromium.new_context(viewport={"width": 1500, "height": height})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(timeout_s * 1000)
        return page

    yield make
    for context in contexts:
        context.close()


def run_ids(db: Path) -> set[str]:
    from mtl_core.store import RunStore

    if not db.exists():
        return set()
    with RunStore(db) as store:
        return set(store.runs()["id"])


def plotted_points(page) -> int:
    """Points in the live curves (not the sharing diagram). Plotly keeps the traces it drew
    on the chart's div; `_length` is a trace's point count (its x may be a base64 typed array)."""
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('.st-key-live_curves .js-plotly-plot'))
                 .flatMap(el => el._fullData || [])
                 .reduce((n, trace) => n + (trace._length || 0), 0)"""
    )


def wait_for_points(page, more_than: int, timeout_s: float) -> int:
    """Wait until the live curves hold more than `more_than` points; return how many."""
    page.wait_for_function(
        """n => Array.from(document.querySelectorAll('.st-key-live_curves .js-plotly-plot'))
                .flatMap(el => el._fullData || [])
                .reduce((m, trace) => m + (trace._length || 0), 0) > n""",
        arg=more_than, timeout=timeout_s * 1000,
    )
    return plotted_points(page)


def pause_after_first_logged_step(db: Path, run_id: str, timeout_s: float) -> int:
    """SIGSTOP the run's worker once it is running and has logged a step; its pid. The run
    cannot end while paused, so what the page shows meanwhile is a run in the middle."""
    from mtl_core.store import RunStore

    deadline = time.monotonic() + timeout_s
    with RunStore(db) as store:
        while time.monotonic() < deadline:
            run = store.get_run(run_id)
            if run["status"] == "running" and run["pid"] and store.has_metrics(run_id):
                pid = int(run["pid"])
                os.kill(pid, signal.SIGSTOP)
                paused = store.get_run(run_id)["status"]
                if paused != "running":
                    os.kill(pid, signal.SIGCONT)  # never leave a stopped process behind
                    raise AssertionError(f"the run ended before it was paused: {paused}")
                return pid
            time.sleep(0.02)
    raise AssertionError(f"run {run_id} logged no step within {timeout_s:.0f} s")


def test_quickstart_trains_from_the_train_page_and_shows_results(server, lab, page_for):
    page = page_for(1800, 90)  # generous: CI machines are slow and shared
    page.goto(server + "/" + QUICKSTART_QUERY)
    train = page.locator(".st-key-train button:visible")  # Streamlit's class for key="train"
    train.wait_for()

    # A loss weight, set with the keyboard as a person would: 1.0 -> 1.5.
    slider = page.get_by_role("slider", name="weight of y2")
    slider.focus()
    for _ in range(5):
        slider.press("ArrowRight")
    expect(slider).to_have_value("1.5")
    page.get_by_text("y2 0.60").wait_for()  # the normalised weights follow
    wait_for_url_text(page, "weights.y2=1.5")

    train.click()
    wait_for_url_text(page, "run=")
    run_id = re.search(r"run=([0-9a-f-]+)", page.evaluate("window.location.href")).group(1)

    # The live curve appears while the run is paused in the middle, and grows once it
    # goes on: waits on the store and the page, never on how fast the run trains.
    pid = pause_after_first_logged_step(lab / "mtl_lab.db", run_id, TIMEOUT_S)
    try:
        first = wait_for_points(page, 0, TIMEOUT_S)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    grown = wait_for_points(page, first, TIMEOUT_S)
    assert grown > first > 0, f"the live curve did not grow ({first} -> {grown} points)"

    page.get_by_text("Finished. Δm =").wait_for(timeout=TIMEOUT_S * 1000)
    # The page reruns once the run has ended: Cancel goes, the final curves stay.
    page.locator(".st-key-cancel").wait_for(state="detached")
    page.get_by_role("link", name=re.compile("See the results")).wait_for()
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('.js-plotly-plot'))"
        ".some(el => (el._fullData || []).length > 0)"
    )
    if os.environ.get("MTL_LAB_SCREENSHOT") == "1":
        page.mouse.move(0, 0)  # no tooltip in the picture
        page.wait_for_timeout(1000)  # let plotly finish drawing before the screenshot
        docs = ROOT / "docs"
        docs.mkdir(exist_ok=True)
        page.screenshot(path=str(docs / "train.png"), full_page=True)

    page.get_by_role("link", name=re.compile("See the results")).click()
    wait_for_url_text(page, "/results", run_id)
    rows = page.locator('[data-testid="stTable"] tbody tr')
    rows.first.wait_for()
    assert rows.count() == 2, "one row per task"
    table_text = page.locator('[data-testid="stTable"]').inner_text()
    assert "y1" in table_text and "y2" in table_text
    metric = page.locator('[data-testid="stMetric"]').first.inner_text()
    assert "Δm" in metric and re.search(r"[+-]\d+\.\d\d %", metric), metric


def test_a_shared_link_to_a_hostile_run_runs_no_script_and_loads_nothing(server, lab, page_for):
    """Issue 10: a run whose task names are `<iframe srcdoc="<script>…">` and whose name is
    `![t](http://127.0.0.1:9/x.png)`, opened from links on every page that shows it: the
    page title stays ours, no iframe is injected, and nothing is fetched from the URL."""
    from urllib.parse import quote

    from test_dashboard_security import RUN_NAME, store_hostile_runs

    ids = store_hostile_runs(lab / "mtl_lab.db")
    links = [
        (f"/train?run={ids['mtl']}", f"Run {ids['mtl']}"),
        (f"/results?run={ids['mtl']}", "Single-task vs multi-task"),
        (f"/interference?run={ids['mtl']}", "In one sentence"),
        (f"/transfer?transfer={ids['transfer']}", "Transfer runs"),
        (f"/results?run={quote(RUN_NAME)}", "There is no run"),  # the attack in the link itself
        ("/runs", "Compare runs"),
    ]
    page = page_for(1800, 60)
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))

    def settle() -> None:
        page.wait_for_timeout(1500)  # an injected iframe's script or image would have run by now
        assert "pwned" not in page.title(), page.url
        assert page.locator("iframe[srcdoc]").count() == 0, page.url
        assert not [u for u in fetched if "127.0.0.1:9" in u], (page.url, fetched)

    for link, shown in links:
        page.goto(server + link)
        page.get_by_text(shown).first.wait_for()
        settle()
    # The run's name reaches Markdown once it is compared: its results header.
    picker = page.locator(".st-key-runs_selected input")
    picker.click()
    picker.fill(ids["mtl"])
    picker.press("Enter")
    page.get_by_text("Results side by side").wait_for()
    page.locator('[data-testid="stMarkdownContainer"]', has_text=RUN_NAME).first.wait_for()  # as text
    settle()
    assert page.title() and "pwned" not in page.title()


def test_lesson_one_walked_from_the_landing_page(server, lab, page_for):
    """Issue 15: a visitor opens the bare address and lands on Learn; opens lesson 1; Run is
    refused until a prediction is picked; the run's verdict (the engine's, with its noise)
    shows beside the prediction with the lesson's charts; 中文 from the sidebar switch
    redraws the same answer from the store, without training again.

    The lesson runs as shipped (600 steps on 1,500 rows, its budget ≤ 10 s): the server is
    another process, so nothing can shrink it, and `?steps=` would make the bare address a
    Train link (dashboard/app.py: only Learn's own keys keep the landing on Learn)."""
    from dashboard import i18n
    from dashboard.lessons import TASK_WORDS, measured, shipped_lessons
    from mtl_core.store import ACTIVE_STATUSES, RunStore

    lesson = next(l for l in shipped_lessons() if l.number == 1)
    assert lesson.expect.measure == "delta_m", "this walk reads lesson 1's Δm sentence"
    prediction = lesson.choices[lesson.expect.verdict].en
    db = lab / "mtl_lab.db"
    before = run_ids(db)  # the module's other tests share this lab
    page = page_for(1800, 60)
    page.goto(server + "/")  # no query string: the landing page
    page.get_by_role("heading", name=i18n.text("learn.title", "en")).first.wait_for()
    opener = page.get_by_role("button", name=f"1. {lesson.title.en}")
    opener.wait_for()
    assert page.get_by_role("button", name=re.compile(r"^2\. ")).count() == 1, "the lesson list"

    opener.click()
    page.get_by_role("heading", name=i18n.text("learn.lesson_title", "en", number=1,
                                              title=lesson.title.en)).wait_for()
    wait_for_url_text(page, "lesson=1")
    page.get_by_text(re.findall(r"\*\*(.+?)\*\*", lesson.question.en)[-1]).wait_for()  # its question
    run = page.locator(f".st-key-learn-run-{lesson.id} button:visible")
    expect(run).to_be_disabled()  # no answer before a prediction
    page.get_by_text(i18n.text("learn.predict_first", "en")).wait_for()
    assert run_ids(db) == before, "nothing trains before Run"

    page.locator('[data-testid="stRadio"] label', has_text=prediction).click()
    expect(run).to_be_enabled()
    run.click()

    # The answer: prediction and verdict side by side, once the run has ended.
    says = page.locator('[data-testid="stColumn"]', has_text=i18n.text("learn.the_run_says", "en"))
    says.wait_for(timeout=TIMEOUT_S * 1000)
    mine = page.locator('[data-testid="stColumn"]', has_text=i18n.text("learn.your_prediction", "en"))
    assert prediction in mine.inner_text()
    with RunStore(db) as store:
        runs = store.runs()
        runs = runs[~runs["id"].isin(before)]
        assert len(runs) == 1 and runs.iloc[0]["status"] == "finished", runs[["id", "status"]]
        run_id = str(runs.iloc[0]["id"])
        assert store.get_run(run_id)["config"] == lesson.config().to_dict()
        m = measured(lesson, store.result(run_id))
    assert m["verdict"] in TASK_WORDS and m["value"] is not None, m
    span = "" if m["low"] is None else i18n.text("learn.interval_pct", "en", low=m["low"], high=m["high"])
    sentence = i18n.text("learn.sentence_delta_m", "en", value=m["value"], span=span,
                         word=i18n.text(f"verdict.{m['verdict']}", "en")).replace("**", "")
    assert sentence in " ".join(says.inner_text().split()), (sentence, says.inner_text())
    page.get_by_text(f"Run {run_id}").wait_for()
    drawn = """n => Array.from(document.querySelectorAll('[data-testid="stMain"] .js-plotly-plot'))
                    .filter(el => (el._fullData || []).length > 0).length >= n"""
    page.wait_for_function(drawn, arg=len(lesson.charts))
    wait_for_url_text(page, "lesson=1")

    # 中文 from the sidebar: the lesson in Chinese, the same answer, no second training.
    page.locator('[data-testid="stSidebar"]').get_by_role("radio", name="中文").click()
    page.get_by_role("heading", name=i18n.text("learn.lesson_title", "zh", number=1,
                                              title=lesson.title.zh)).wait_for()
    wait_for_url_text(page, "lesson=1", "lang=zh")
    zh_says = page.locator('[data-testid="stColumn"]', has_text=i18n.text("learn.the_run_says", "zh"))
    zh_says.wait_for()
    assert i18n.text(f"verdict.{m['verdict']}", "zh") in zh_says.inner_text()
    assert f"Δm = {m['value']:+.2f} %" in zh_says.inner_text()
    assert lesson.choices[lesson.expect.verdict].zh in page.locator(
        '[data-testid="stColumn"]', has_text=i18n.text("learn.your_prediction", "zh")).inner_text()
    page.wait_for_function(drawn, arg=len(lesson.charts))
    with RunStore(db) as store:
        runs = store.runs()
        runs = runs[~runs["id"].isin(before)]
        assert list(runs["id"]) == [run_id], "the answer came from the store, not a second run"
        assert not runs["status"].isin(ACTIVE_STATUSES).any()


# The quickstart on a tiny budget, a 3-point weight grid (2, 0), (1, 1), (0, 2), one stacked ensemble.
SWEEP_QUERY = ("/sweep?steps=60&dataset.options.n_samples=400&ax.weights=grid&ax.resolution=2"
               "&ax.strategies=manual&executor=batched")
PLOT = ".st-key-sweep_pareto .js-plotly-plot"
# The pixel of point 0 of the plot's front trace (trace 1) in the page, and its run id (customdata).
FRONT_POINT_JS = """sel => {
    const el = document.querySelector(sel);
    const trace = el && el._fullData && el._fullData[1];
    const calc = el && el.calcdata && el.calcdata[1];
    if (!trace || !calc || !calc.length || !trace.customdata) return null;
    const xa = el._fullLayout.xaxis, ya = el._fullLayout.yaxis, box = el.getBoundingClientRect();
    return {x: box.left + xa._offset + xa.c2p(calc[0].x), y: box.top + ya._offset + ya.c2p(calc[0].y),
            run: String(trace.customdata[0])};
}"""


def test_a_sweep_launched_from_the_page_opens_the_run_of_a_clicked_pareto_point(server, page_for):
    """Issue 14: launch a small weight sweep from the Sweep page, click a point of its Pareto
    plot, land on that run. The click is a mouse click at the point's pixel, computed from
    plotly's own axes on the drawn chart, so it goes through plotly's click-to-select and
    Streamlit's `on_select` exactly as a person's click does."""
    page = page_for(2400, 90)
    page.goto(server + SWEEP_QUERY)
    page.get_by_text("3 runs").wait_for()
    page.locator(".st-key-sweep_launch button").click()
    wait_for_url_text(page, "sweep=sweep-")

    # The sweep ends (every point, then the page's one rerun that drops Cancel) and its plot is drawn.
    page.get_by_text(re.compile(r"finished · 3 of 3 points ended")).wait_for(timeout=TIMEOUT_S * 1000)
    page.locator(".st-key-sweep_cancel").wait_for(state="detached")
    page.locator(PLOT).scroll_into_view_if_needed()
    page.wait_for_function(f"sel => ({FRONT_POINT_JS})(sel) !== null", arg=PLOT)
    page.mouse.move(0, 0)
    point = page.evaluate(FRONT_POINT_JS, PLOT)
    assert re.fullmatch(r"[0-9a-f-]+", point["run"]), point

    page.mouse.click(point["x"], point["y"])
    link = page.get_by_role("link", name=f"Open run {point['run']} in Results")
    link.wait_for()
    page.get_by_role("link", name="Open its setup in Train").wait_for()
    link.click()
    wait_for_url_text(page, "/results", f"run={point['run']}")
    rows = page.locator('[data-testid="stTable"] tbody tr')
    rows.first.wait_for()
    assert rows.count() == 2, "the clicked run's results: one row per task"
