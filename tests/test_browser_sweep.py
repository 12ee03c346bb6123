"""One real browser on the Sweep page (issue 14): launch a small weight sweep, click a point
of the Pareto plot, land on that run.

The server, Chromium and the skips are tests/test_browser.py's (`server` fixture: a
`streamlit run` on a free port with its own MTL_LAB_HOME). The click is a mouse click at the
point's pixel, computed from plotly's own axes on the drawn chart, so it goes through
plotly's click-to-select and Streamlit's `on_select` exactly as a person's click does.
"""

from __future__ import annotations

import re

import pytest
from test_browser import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_S, lab_server, server, wait_for_url_text  # noqa: F401 - fixtures

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - the server fixture skips first
    sync_playwright = None

pytestmark = [pytest.mark.browser, pytest.mark.slow]

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


def test_a_sweep_launched_from_the_page_opens_the_run_of_a_clicked_pareto_point(server):  # noqa: F811
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 2400})
            page.set_default_timeout(90_000)
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
        finally:
            browser.close()
