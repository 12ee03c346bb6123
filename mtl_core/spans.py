"""Entity spans of BIO tag sequences: what entity-level F1 (metrics) and its bootstrap
(significance) both count, in a module of its own so that neither imports the other for it."""

from __future__ import annotations

from typing import Iterable


def bio_spans(tags: Iterable[str]) -> set[tuple[int, int, str]]:
    """Entity spans (start, end, type) of one BIO sequence (CoNLL-2000 convention).

    An I-X that does not continue an X span starts a new one, as conlleval does.
    """
    spans: set[tuple[int, int, str]] = set()
    start, kind = None, None
    tags = list(tags) + ["O"]
    for i, tag in enumerate(tags):
        prefix, _, typ = tag.partition("-")
        continues = prefix == "I" and kind == typ and start is not None
        if start is not None and not continues:
            spans.add((start, i, kind))
            start, kind = None, None
        if prefix in ("B", "I") and not continues:
            start, kind = i, typ
    return spans
