"""Every lesson tells the truth (issue 15, item 3): over several seeds the outcome a
lesson states holds in a strict majority, and every other seed's verdict is "no clear
difference", never the opposite. The same for the outcome its "try this" knob states.

Slow (a few minutes on two cores): each lesson's experiment trains at seeds 0-4 with
fresh single-task baselines (a transfer lesson: pre-training and every arm, each seed).
A lesson whose extra is not installed (`needs: [text]`) is skipped. `bench/lessons.py`
prints the same table with timings.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboard.lessons import (  # noqa: E402
    claim_holds,
    measured,
    shipped_lessons,
    train_in_process,
    with_seed,
)

SEEDS = 5
CASES = [(lesson.number, variant) for lesson in shipped_lessons() for variant in ("main", "try")]


@pytest.mark.slow
@pytest.mark.truth
@pytest.mark.parametrize("number, variant", CASES, ids=[f"lesson{n}-{v}" for n, v in CASES])
def test_the_lessons_stated_outcome_holds_over_seeds(number, variant):
    lesson = next(l for l in shipped_lessons() if l.number == number)
    if not lesson.available():
        pytest.skip(f"lesson {number} needs an extra that is not installed: {lesson.install_hint}")
    expect = lesson.expect
    if variant == "try":
        if lesson.try_this.expect is None:
            pytest.skip("this lesson's knob states no outcome")
        expect = expect.model_copy(update={"verdict": lesson.try_this.expect})
    outcomes = []
    for seed in range(SEEDS):
        result = train_in_process(with_seed(lesson.config(try_this=variant == "try"), seed))
        outcomes.append(measured(lesson, result, expect=expect)["verdict"])
    assert claim_holds(expect.verdict, outcomes), (
        f"lesson {number} ({variant}) claims {expect.verdict!r} ({expect.measure}); seeds 0-{SEEDS - 1} say {outcomes}")
