"""How to read the Transfer page's data-efficiency chart, in words that follow the metric,
and the note on fractions that were merged into one data size.

"Above the scratch line = the sources helped" is right for accuracy and backwards for an
error such as MSE, where lower is better; the sentence is built from the metric's
direction so that it is right for both, in the page's language (`transfer.reading_*`).
"""

from __future__ import annotations

from typing import Any

from dashboard.i18n import text


def reading_text(metric: str, higher_is_better: bool | None, lang: str = "en") -> str:
    """One sentence: which side of the dashed scratch line means the pre-training helped."""
    if higher_is_better is None:
        return text("transfer.reading_unknown", lang, metric=metric)
    return text("transfer.reading_up" if higher_is_better else "transfer.reading_down", lang, metric=metric)


def merged_text(result: dict[str, Any], lang: str = "en") -> str:
    """Which requested fractions gave one data size and were trained once, rebuilt from the
    result's numbers in the page's language (in English word for word the engine's
    `describe_merged` sentence, `result["merged_text"]`); a result without the numbers it
    needs keeps the engine's English sentence."""
    merged = result.get("merged_fractions") or []
    config = result.get("config") or {}
    n_pool = result.get("n_target_train")
    min_rows = config.get("target_batch_size") or (config.get("base") or {}).get("batch_size")
    if not merged or n_pool is None or min_rows is None:
        return str(result.get("merged_text") or "")
    notes = []
    for entry in merged:
        shares = [f"{float(f) * 100:g} %" for f in entry["fractions"]]
        listed = text("transfer.merged.sep", lang).join(shares[:-1]) + text("transfer.merged.and", lang) + shares[-1]
        n = int(entry["n_labelled"])
        why = (text("transfer.merged.why_all", lang) if n == n_pool
               else text("transfer.merged.why_batch", lang, min_rows=min_rows) if n == min_rows
               else text("transfer.merged.why_rounding", lang))
        key = "transfer.merged.two" if len(shares) == 2 else "transfer.merged.more"
        notes.append(text(key, lang, listed=listed, n=f"{n:,}", why=why, shown=f"{float(entry['fraction']) * 100:g}"))
    return " ".join(notes)
