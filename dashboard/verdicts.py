"""One home for how a verdict looks: its word, colour, icon and alert box.

The engine decides (a 95 % interval of the paired difference between the multi-task and
single-task predictions on the same test examples, and the same discipline for Δm and the
gradient cosines, issue 12); the dashboard only shows what it decided. The rule every page
follows: green only for a clear gain ("helped", "agree"), red only for a clear loss ("hurt",
"conflict"), grey for "no clear difference" / "no clear sign", and no colour at all where a
run has no verdict (runs stored before verdicts knew their noise).

Nothing here imports Streamlit: pages and `charts` read these tables and functions.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

HELPED, HURT, NO_CLEAR = "helped", "hurt", "no clear difference"
AGREE, CONFLICT, NO_SIGN = "agree", "conflict", "no clear sign"
TASK_VERDICTS = (HELPED, HURT, NO_CLEAR)
PAIR_VERDICTS = (AGREE, CONFLICT, NO_SIGN)

GOOD, BAD, NEUTRAL = "good", "bad", "neutral"
_TONE = {HELPED: GOOD, AGREE: GOOD, HURT: BAD, CONFLICT: BAD, NO_CLEAR: NEUTRAL, NO_SIGN: NEUTRAL}

GOOD_BG = "#d9f2d9"
BAD_BG = "#f8d7d7"
NEUTRAL_BG = "#ececec"
BACKGROUND = {GOOD: GOOD_BG, BAD: BAD_BG, NEUTRAL: NEUTRAL_BG}
# Material icons in Streamlit's colour directives (they render without a colour-emoji font).
ICON = {GOOD: ":green[:material/trending_up:]", BAD: ":red[:material/trending_down:]",
        NEUTRAL: ":gray[:material/trending_flat:]"}
ALERT_ICON = {GOOD: ":material/trending_up:", BAD: ":material/trending_down:", NEUTRAL: ":material/trending_flat:"}
BADGE_COLOR = {GOOD: "green", BAD: "red", NEUTRAL: "gray"}
ALERT = {GOOD: "success", BAD: "error", NEUTRAL: "info"}  # st.success / st.error / st.info

# Results stored before issue 12 spoke of transfer; with n_seeds ≥ 2 their verdict already
# weighed the seed-to-seed noise. With one seed it was the sign of one difference — no verdict.
_OLD_WORDS = {"positive transfer": HELPED, "negative transfer": HURT,
              "no clear difference": NO_CLEAR, "no difference": NO_CLEAR}

WORDS_CAPTION = (
    "**helped** / **hurt**: the 95 % interval of the paired difference on the same test examples "
    "(multi-task − single-task, signed so that > 0 means the multi-task model is better) lies wholly "
    "above / below 0; **no clear difference**: it contains 0, so the gap may be luck. Green and red "
    "mark only clear differences.")


def task_verdict(row: Mapping[str, Any]) -> str | None:
    """A task row's verdict as "helped" / "hurt" / "no clear difference", or None where the
    run has none (an old one-seed run's sign-only verdict counts as none)."""
    verdict = row.get("verdict")
    if verdict in TASK_VERDICTS:
        return verdict
    if verdict in _OLD_WORDS and _n_seeds(row) >= 2:
        return _OLD_WORDS[verdict]
    return None


def _n_seeds(row: Mapping[str, Any]) -> int:
    try:
        return int(row.get("n_seeds") or 1)
    except (TypeError, ValueError):
        return 1


def delta_m_verdict(result: Mapping[str, Any]) -> str | None:
    """The run's Δm verdict, or None where the result has none."""
    verdict = result.get("delta_m_verdict")
    return verdict if verdict in TASK_VERDICTS else None


def pair_verdict(pair: Mapping[str, Any]) -> str | None:
    """A task pair's interference verdict ("agree" / "conflict" / "no clear sign"), or None."""
    verdict = pair.get("verdict")
    return verdict if verdict in PAIR_VERDICTS else None


def tone(verdict: str | None) -> str | None:
    """GOOD, BAD or NEUTRAL for a verdict word; None for no verdict."""
    return _TONE.get(verdict) if isinstance(verdict, str) else None


def background(verdict: str | None) -> str:
    """CSS background colour of a table cell holding this verdict ("" for none)."""
    t = tone(verdict)
    return BACKGROUND[t] if t else ""


def icon(verdict: str | None) -> str:
    """The coloured icon before a verdict sentence (grey where there is no verdict)."""
    return ICON[tone(verdict) or NEUTRAL]


def alert_icon(verdict: str | None) -> str:
    """The Material icon of the alert or badge that carries a verdict (none: the flat one)."""
    return ALERT_ICON[tone(verdict) or NEUTRAL]


def alert(verdict: str | None) -> str:
    """The Streamlit alert that carries a verdict: "success", "error" or "info" (none: info)."""
    return ALERT[tone(verdict) or NEUTRAL]


def interval_bounds(interval: Any) -> tuple[float, float, float] | None:
    """(low, high, level) of an interval dict, or None where it is missing or not finite."""
    if not isinstance(interval, Mapping):
        return None
    try:
        low, high = float(interval["low"]), float(interval["high"])
        level = float(interval.get("level") or 0.95)
    except (KeyError, TypeError, ValueError):
        return None
    if not (math.isfinite(low) and math.isfinite(high) and 0 < level < 1):
        return None
    return low, high, level


def interval_text(interval: Any, *, fmt: str = "+.3g", unit: str = "", label: bool = True) -> str:
    """`95 % interval -2.10 to +1.30 %` ("" where there is no interval)."""
    bounds = interval_bounds(interval)
    if bounds is None:
        return ""
    low, high, level = bounds
    span = f"{low:{fmt}} to {high:{fmt}}{unit}"
    return f"{level * 100:g} % interval {span}" if label else span


def method_text(intervals: list[Any]) -> str:
    """The methods the engine named for these intervals, comma-joined (our text, not user data)."""
    methods = [str(i["method"]) for i in intervals if isinstance(i, Mapping) and i.get("method")]
    return ", ".join(dict.fromkeys(methods))


def delta_m_sentence(result: Mapping[str, Any]) -> tuple[str, str]:
    """(alert, text) of the finish banner: `Δm = -0.43 % (95 % interval -2.10 to +1.30 %): no clear
    difference …`. The colour follows the verdict, never the sign alone."""
    dm = result.get("delta_m")
    if not isinstance(dm, (int, float)) or not math.isfinite(dm):
        return "info", "Finished: no single-task baselines to compare with."
    verdict = delta_m_verdict(result)
    span = interval_text(result.get("delta_m_interval"), fmt="+.2f", unit=" %")
    head = f"Finished. Δm = {dm:+.2f} %" + (f" ({span})" if span else "")
    if verdict == HELPED:
        words = "helped: the multi-task model beats its single-task baselines on average."
    elif verdict == HURT:
        words = "hurt: the multi-task model is worse than its single-task baselines on average."
    elif verdict == NO_CLEAR:
        words = ("no clear difference: the interval contains 0, so the gap between the multi-task model "
                 "and its single-task baselines may be luck.")
    else:
        words = ("this run has no interval (it was stored before verdicts knew their noise), "
                 "so its sign alone may be luck.")
    return alert(verdict), f"{head}: {words}"


def delta_m_badge(where: Any, result: Mapping[str, Any]) -> None:
    """Under a Δm metric: the Δm verdict as a badge of its colour, with its interval (nothing
    for a run without a verdict). `where` is `st` or a column."""
    dm_verdict = delta_m_verdict(result)
    if result.get("delta_m") is None or not dm_verdict:
        return
    span = interval_text(result.get("delta_m_interval"), fmt="+.2f", unit=" %")
    where.badge(dm_verdict + (f" ({span})" if span else ""), color=BADGE_COLOR[tone(dm_verdict)],
                icon=alert_icon(dm_verdict))
