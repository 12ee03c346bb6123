"""How often a watched run is redrawn in the browser, and why not at every poll.

A live panel polls its run every `POLL_S` seconds (progress, status, the finish banner). Its
chart is redrawn less often as the run goes on. The reason is the browser: Streamlit names a
plotly chart by a hash of its figure, so every new figure reaches the page as a new element,
which Chromium plots from scratch (purge + newPlot), while an unchanged figure keeps its
element and costs nearly nothing. Measured on this project's 2-core machine with headless
Chromium (bench/redraw.py, the loss chart of 2 tasks with baselines, 500 points per
curve): a poll without a chart ~0.1 s of browser CPU, with the same figure ~0.13 s, with a new
figure ~0.48 s. On a small machine that CPU comes out of the run being watched.

So the chart is redrawn at every poll while its curves are young (a learner sees the first
points move), then every `age / CHART_AGE_DIVISOR` seconds (age: time since the chart was first
drawn), at most every `CHART_MAX_S` seconds; at once when a setting of the chart changes (a
toggle, the smoothing slider) and when the run ends.

The panel's poll itself slows too, from POLL_S to PANEL_MAX_S once the chart is redrawn no
more often than that (`ChartPace.poll`). Each poll is a rerun of the fragment, which the
browser pays for whatever it carries: profiled while watching (Chromium's CPU profiler,
20 s), plotly's redraws were ~0.9 s of the ~5.7 s the page's main thread worked and the rest
was React, styles and layout redone at every rerun. A fragment's poll is fixed when the page
draws it, so the panel asks for one whole-page rerun when its pace changes.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

POLL_S = 2.0  # the live panel's poll while a run trains
# Until the first point arrives the panel is only a progress bar and a caption (cheap to
# redraw): polled faster, so the first point shows within a moment of its logging.
STARTING_POLL_S = 0.25
CHART_MAX_S = 10.0  # the longest a training chart waits for its next redraw
PANEL_MAX_S = 5.0  # the live panel's longest poll (its progress line), once the chart is that slow
CHART_AGE_DIVISOR = 6.0  # ~6 redraws per doubling of a long run's age

SS_PACE = "_live_chart_pace"


def now() -> float:
    """The pace's clock (monotonic seconds; a test may replace it)."""
    return time.monotonic()


def chart_interval(age_s: float) -> float:
    """Seconds between two redraws of a live chart drawn first `age_s` seconds ago."""
    return min(CHART_MAX_S, max(POLL_S, age_s / CHART_AGE_DIVISOR))


@dataclass
class ChartPace:
    """When one live panel last drew its chart, with which settings."""

    key: Hashable = None
    first_drawn: float | None = None
    last_drawn: float | None = None
    settings: Any = field(default=None)

    def due(self, now: float, settings: Any, *, final: bool = False) -> bool:
        """Whether to draw a new figure now (else the previous one is shown again, unchanged).

        Polls come every POLL_S seconds, give or take the time a rerun takes, so a redraw is
        due half a poll before its interval has fully passed (else a 2 s interval would
        become 4 s whenever a poll came a few ms early).
        """
        if final or self.last_drawn is None or settings != self.settings:
            return True
        age = now - (self.first_drawn if self.first_drawn is not None else now)
        return now - self.last_drawn >= chart_interval(age) - POLL_S / 2

    def poll(self, now: float) -> float:
        """Seconds between two polls of the live panel: POLL_S, or PANEL_MAX_S once the chart
        is redrawn no more often than that (one change of poll in a run's life)."""
        if self.first_drawn is None:
            return POLL_S
        return PANEL_MAX_S if chart_interval(now - self.first_drawn) >= PANEL_MAX_S else POLL_S

    def drawn(self, now: float, settings: Any) -> None:
        if self.first_drawn is None:
            self.first_drawn = now
        self.last_drawn, self.settings = now, settings


def panel_poll(ss: MutableMapping[str, Any], key: Hashable, *, paused: bool = False) -> float:
    """Seconds between two polls of the live panel of `key` (a run that has logged its first
    point): its chart's `ChartPace.poll`, or POLL_S while the run is held, so a Step's new
    points show within a poll."""
    return POLL_S if paused else chart_pace(ss, key).poll(now())


def chart_pace(ss: MutableMapping[str, Any], key: Hashable) -> ChartPace:
    """The pace of the live chart of `key` (e.g. the run id) in this browser session; a new
    one for another run."""
    pace = ss.get(SS_PACE)
    if not isinstance(pace, ChartPace) or pace.key != key:
        pace = ChartPace(key=key)
        ss[SS_PACE] = pace
    return pace
