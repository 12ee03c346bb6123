"""How to read the Transfer page's data-efficiency chart, in words that follow the metric.

"Above the scratch line = the sources helped" is right for accuracy and backwards for an
error such as MSE, where lower is better; the sentence is built from the metric's
direction so that it is right for both.
"""

from __future__ import annotations


def reading_text(metric: str, higher_is_better: bool | None) -> str:
    """One sentence: which side of the dashed scratch line means the pre-training helped."""
    if higher_is_better is None:
        return (f"Compare each pre-trained line with the dashed scratch line (the control): the better "
                f"test {metric} at the same number of labelled examples is what the sources bought.")
    better, side, other = ("Higher", "above", "below") if higher_is_better else ("Lower", "below", "above")
    return (f"{better} test {metric} is better: where a pre-trained line (frozen or fine-tuned encoder) lies "
            f"{side} the dashed scratch line, the sources helped the target at that number of labelled "
            f"examples; {other} it, they hurt.")
