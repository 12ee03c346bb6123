"""How to read the Transfer page's data-efficiency chart, in words that follow the metric.

"Above the scratch line = the sources helped" is right for accuracy and backwards for an
error such as MSE, where lower is better; the sentence is built from the metric's
direction so that it is right for both, in the page's language (`transfer.reading_*`).
"""

from __future__ import annotations

from dashboard.i18n import text


def reading_text(metric: str, higher_is_better: bool | None, lang: str = "en") -> str:
    """One sentence: which side of the dashed scratch line means the pre-training helped."""
    if higher_is_better is None:
        return text("transfer.reading_unknown", lang, metric=metric)
    return text("transfer.reading_up" if higher_is_better else "transfer.reading_down", lang, metric=metric)
