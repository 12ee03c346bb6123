"""One home for how a verdict looks: its word, colour, icon and alert box.

The engine decides (a 95 % interval of the paired difference between the multi-task and
single-task predictions on the same test examples, and the same discipline for Δm and the
gradient cosines, issue 12); the dashboard only shows what it decided. The rule every page
follows: green only for a clear gain ("helped", "agree"), red only for a clear loss ("hurt",
"conflict"), grey for "no clear difference" / "no clear sign", and no colour at all where a
run has no verdict (runs stored before verdicts knew their noise).

Nothing here imports Streamlit: pages and `charts` read these tables and functions. The
texts it writes come from the catalogues (`dashboard.i18n`, keys `common.*` and `verdict.*`)
in the language the caller passes.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

from dashboard.i18n import text

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


def words_caption(lang: str = "en") -> str:
    """What helped / hurt / no clear difference mean, for the caption under a verdict table."""
    return text("common.words_caption", lang)


WORDS_CAPTION = words_caption("en")


def word(verdict: str | None, lang: str = "en") -> str:
    """A verdict as the reader's language writes it ("helped" stays "helped" in English; in
    中文 the Chinese word with the English one beside it); "" for no verdict."""
    if not verdict:
        return ""
    return verdict if lang == "en" else text(f"verdict.{verdict}", lang)


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


def interval_text(interval: Any, *, fmt: str = "+.3g", unit: str = "", label: bool = True,
                  lang: str = "en") -> str:
    """`95 % interval -2.10 to +1.30 %` ("" where there is no interval)."""
    bounds = interval_bounds(interval)
    if bounds is None:
        return ""
    low, high, level = bounds
    span = text("common.span", lang, low=f"{low:{fmt}}", high=f"{high:{fmt}}", unit=unit)
    return text("common.interval", lang, level=f"{level * 100:g}", span=span) if label else span


# The interval methods the engine names (mtl_core.significance), as patterns of their English
# words: key `common.method.<name>` rewrites one in the reader's language with the same numbers.
# The English catalogue texts are the engine's templates (a test formats both and compares).
_NUM = r"([0-9.]+)"
METHOD_PATTERNS: dict[str, str] = {
    "example_bootstrap_mcnemar": (rf"paired bootstrap over {_NUM} test examples \({_NUM} resamples, {_NUM} % "
                                  r"percentile interval; Efron & Tibshirani, 1993\); McNemar's exact test "
                                  r"\(McNemar, 1947\) as a cross-check"),
    "example_bootstrap": (rf"paired bootstrap over {_NUM} test examples \({_NUM} resamples, {_NUM} % percentile "
                          r"interval; Efron & Tibshirani, 1993\)"),
    "delta_m_bootstrap": (rf"bootstrap over {_NUM} shared test rows \({_NUM} resamples, {_NUM} % percentile "
                          r"interval; Efron & Tibshirani, 1993\) of Δm \(Maninis et al., 2019\)"),
    "one_seed_bootstrap": r"paired bootstrap over test examples, one seed",
    "one_seed": r"one seed, no interval",
    "seeds_and_examples": (rf"Student t interval over {_NUM} seeds and the pooled paired bootstrap over test "
                           r"examples; a difference only when both exclude 0"),
    "seeds": rf"Student t interval over {_NUM} seeds",
    "no_test_example": r"no labelled test example",
    "cosine": (rf"Student t interval \({_NUM} %\) of the mean cosine over {_NUM} snapshots, effective size "
               rf"{_NUM} after lag-1 autocorrelation (-?[0-9.]+|nan) \(Zwiers & von Storch, 1995\); \|mean\| < "
               rf"{_NUM} counts as no clear sign"),
}


def method_in(method: str, lang: str = "en") -> str:
    """One engine-named interval method in `lang`: English is the engine's own text; another
    language rewrites a known method from its catalogue with the engine's numbers (an unknown
    one stays as the engine wrote it)."""
    if lang == "en":
        return method
    for name, pattern in METHOD_PATTERNS.items():
        found = re.fullmatch(pattern, method)
        if found:
            fields = {f"v{i}": v for i, v in enumerate(found.groups())}
            return text(f"common.method.{name}", lang, **fields)
    return method


def trivial_name(name: Any, lang: str = "en") -> str:
    """The engine's name of an input-blind baseline (`metrics.TRIVIAL_NAME`) in `lang`; an
    unknown one as the engine wrote it."""
    from mtl_core.metrics import TRIVIAL_NAME

    name = str(name or "")
    kind = next((k for k, v in TRIVIAL_NAME.items() if v == name), None)
    return text(f"common.trivial.{kind}", lang) if kind and lang != "en" else name


_METRIC_REASON = re.compile(r"macro-F1 \(majority class ([0-9.]+) %\)")


def metric_reason_text(reason: Any, lang: str = "en") -> str:
    """Why a task is scored by macro-F1 (`TaskSpec.for_train_labels`' reason) in `lang`."""
    reason = str(reason or "")
    found = _METRIC_REASON.fullmatch(reason)
    return text("common.metric_reason_imbalanced", lang, share=found.group(1)) if found and lang != "en" else reason


def method_text(intervals: list[Any], lang: str = "en") -> str:
    """The methods the engine named for these intervals, in `lang`, comma-joined (our text, not
    user data)."""
    methods = [str(i["method"]) for i in intervals if isinstance(i, Mapping) and i.get("method")]
    sep = "，" if lang == "zh" else ", "
    return sep.join(method_in(m, lang) for m in dict.fromkeys(methods))


def finite_number(value: Any) -> float | None:
    """`value` as a float, or None where it is missing, not a number, NaN or infinite."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def task_sentence(row: Mapping[str, Any], lang: str = "en") -> str:
    """A task's verdict in plain words. English: the engine's own sentence (`verdict_text`,
    `mtl_core.metrics.transfer_verdict`). Other languages: the same sentence rebuilt from the
    row's numbers (means, standard deviations, the mean gain and its interval), following the
    engine's cases; a row without them (stored before issue 12) keeps the engine's words."""
    said = str(row.get("verdict_text") or "")
    return said if lang == "en" else (rebuilt_sentence(row, lang) or said)


def rebuilt_sentence(row: Mapping[str, Any], lang: str) -> str | None:
    """`task_sentence` from the row's numbers (None where the row lacks them). In English it
    reads exactly as the engine's `verdict_text` (a test holds the two together)."""
    said = str(row.get("verdict_text") or "")
    verdict = row.get("verdict")
    mtl, stl = finite_number(row.get("mtl_mean", row.get("mtl"))), finite_number(row.get("stl_mean", row.get("stl")))
    if verdict not in TASK_VERDICTS or mtl is None or stl is None:
        return None
    n, diff = _n_seeds(row), finite_number(row.get("diff"))
    low, high = finite_number(row.get("low")), finite_number(row.get("high"))
    f = lambda v, spec: format(v, spec) if v is not None else "—"  # noqa: E731
    trivial = row.get("trivial") if isinstance(row.get("trivial"), Mapping) else {}
    if verdict == NO_CLEAR and said.startswith("no clear difference: the multi-task model ("):
        # the engine's downgrade of a gain that does not beat the input-blind baseline (issue 16)
        return text("common.task.below_trivial", lang, word=word(NO_CLEAR, lang), mtl=f(mtl, ".4g"),
                    trivial=f(finite_number(trivial.get("value")), ".4g"))
    gain = text("common.task.gain", lang, diff=f(diff, "+.3g"))
    if low is not None and high is not None:
        gain += text("common.task.gain_interval", lang, low=f"{low:+.3g}", high=f"{high:+.3g}")
    how = text("common.task.helps" if verdict == HELPED else "common.task.hurts", lang)
    if n < 2:
        summary = text("common.task.summary_one", lang, mtl=f(mtl, ".4g"), stl=f(stl, ".4g"))
        if low is None:
            return text("common.task.one_no_noise", lang, word=word(NO_CLEAR, lang), summary=summary)
        if verdict == NO_CLEAR:
            return text("common.task.one_no_clear", lang, word=word(NO_CLEAR, lang), summary=summary, gain=gain)
        return text("common.task.one_clear", lang, word=word(verdict, lang), how=how, summary=summary, gain=gain)
    summary = text("common.task.summary_seeds", lang, mtl=f(mtl, ".4g"),
                   mtl_std=f(finite_number(row.get("mtl_std")), ".2g"), stl=f(stl, ".4g"),
                   stl_std=f(finite_number(row.get("stl_std")), ".2g"), n=n, gain=gain)
    if verdict == NO_CLEAR:
        return text("common.task.seeds_no_clear", lang, word=word(NO_CLEAR, lang), summary=summary)
    return text("common.task.seeds_clear", lang, word=word(verdict, lang), how=how, summary=summary)


def delta_m_sentence(result: Mapping[str, Any], lang: str = "en") -> tuple[str, str]:
    """(alert, text) of the finish banner: `Δm = -0.43 % (95 % interval -2.10 to +1.30 %): no clear
    difference …`. The colour follows the verdict, never the sign alone."""
    dm = result.get("delta_m")
    if not isinstance(dm, (int, float)) or not math.isfinite(dm):
        return "info", text("common.dm_no_baselines", lang)
    verdict = delta_m_verdict(result)
    span = interval_text(result.get("delta_m_interval"), fmt="+.2f", unit=" %", lang=lang)
    head = text("common.dm_head", lang, dm=f"{dm:+.2f}")
    head = text("common.with_span", lang, text=head, span=span) if span else head
    if verdict == HELPED:
        words = text("common.dm_helped", lang)
    elif verdict == HURT:
        words = text("common.dm_hurt", lang)
    elif verdict == NO_CLEAR:
        words = text("common.dm_no_clear", lang)
    else:
        words = text("common.dm_no_interval", lang)
    return alert(verdict), text("common.dm_sentence", lang, head=head, words=words)


def delta_m_badge(where: Any, result: Mapping[str, Any], lang: str = "en") -> None:
    """Under a Δm metric: the Δm verdict as a badge of its colour, with its interval (nothing
    for a run without a verdict). `where` is `st` or a column."""
    dm_verdict = delta_m_verdict(result)
    if result.get("delta_m") is None or not dm_verdict:
        return
    span = interval_text(result.get("delta_m_interval"), fmt="+.2f", unit=" %", lang=lang)
    label = text("common.with_span", lang, text=word(dm_verdict, lang), span=span) if span else word(dm_verdict, lang)
    where.badge(label, color=BADGE_COLOR[tone(dm_verdict)], icon=alert_icon(dm_verdict))
