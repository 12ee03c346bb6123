"""The plan of a run: which models it trains, in which order, and how many steps each.

A *phase* names one model of a run: the engine's sink events carry it, the run store
keeps it with every curve point and as "what is training now". Its string forms are
stored, so they never change:

    "stl:<task>"        a single-task baseline                     (an experiment)
    "mtl"               the multi-task model                       (an experiment)
    "stl:y1@1", "mtl@2" the same models for an extra seed (`n_seeds` > 1: seed + k, k ≥ 1)
    "pretrain"          the shared encoder on the source tasks     (a transfer run)
    "frozen@0.05"       an arm at a share of the target's labels   (a transfer run)

`Phase` is the one place that writes (`format`) and reads (`parse`) them; `plan(config)`
lists a run's phases with their step budgets in the order the run trains them, and
`position` says how far through its plan a run is. The experiment, the transfer run, the
terminal progress bar and the dashboard all go through here, so a new kind of run (a
sweep, a lesson) adds its phases once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ARMS: tuple[str, ...] = ("frozen", "finetune", "scratch")  # a transfer run's target models, in training order
ARM_LABELS: dict[str, str] = {"frozen": "frozen encoder", "finetune": "fine-tuned encoder", "scratch": "from scratch"}
KINDS: tuple[str, ...] = ("stl", "mtl", "pretrain", *ARMS)


@dataclass(frozen=True)
class Phase:
    """One model of a run.

    `kind`: "stl" (a single-task baseline of `task`), "mtl", "pretrain", or a transfer arm
    ("frozen", "finetune", "scratch") trained on `fraction` of the target's labels.
    `seed`: for an experiment's extra seeds only (None: the config's own seed, which the
    stored names leave out: "mtl", not "mtl@0").
    """

    kind: str
    task: str | None = None
    seed: int | None = None
    fraction: float | None = None

    def __post_init__(self) -> None:
        assert self.kind in KINDS, f"unknown phase kind {self.kind!r}"
        assert (self.task is not None) == (self.kind == "stl"), "a task belongs to an stl phase, and only to it"
        assert self.seed is None or self.kind in ("stl", "mtl"), "only experiment phases carry a seed"
        assert (self.fraction is not None) == (self.kind in ARMS), "a fraction belongs to an arm, and only to it"

    # ---- the kinds -------------------------------------------------------------------------------
    @classmethod
    def stl(cls, task: str, seed: int | None = None) -> Phase:
        return cls("stl", task=task, seed=seed)

    @classmethod
    def mtl(cls, seed: int | None = None) -> Phase:
        return cls("mtl", seed=seed)

    @classmethod
    def pretrain(cls) -> Phase:
        return cls("pretrain")

    @classmethod
    def arm(cls, arm: str, fraction: float) -> Phase:
        return cls(arm, fraction=float(fraction))

    # ---- text --------------------------------------------------------------------------------------
    def format(self) -> str:
        """The stored name: "stl:y1", "mtl@2", "pretrain", "frozen@0.05", ..."""
        if self.kind in ARMS:
            return f"{self.kind}@{self.fraction:g}"
        name = f"stl:{self.task}" if self.kind == "stl" else self.kind
        return name if self.seed is None else f"{name}@{self.seed}"

    __str__ = format

    @classmethod
    def parse(cls, text: str, *, tasks: Sequence[str] | None = None) -> Phase:
        """The phase a stored name stands for; ValueError for a name no run writes.

        A task name may itself hold '@' ("stl:a@1" is task "a" at seed 1, or task "a@1"):
        give the run's `tasks` to settle it; without them a trailing "@<integer>" is a seed.
        """
        if text in ("mtl", "pretrain"):
            return cls(text)
        if text.startswith("stl:") and len(text) > 4:
            rest = text[4:]
            if tasks is not None and rest in tasks:
                return cls.stl(rest)
            task, seed = _split_seed(rest)
            if seed is not None and task and (tasks is None or task in tasks):
                return cls.stl(task, seed)
            return cls.stl(rest)
        head, at, tail = text.partition("@")
        if at and head == "mtl":
            _, seed = _split_seed(text)
            if seed is not None:
                return cls.mtl(seed)
        if at and head in ARMS:
            try:
                fraction = float(tail)
            except ValueError:
                fraction = math.nan
            if 0.0 < fraction <= 1.0:
                return cls.arm(head, fraction)
        raise ValueError(
            f"{text!r} is not a phase name; phases are 'stl:<task>', 'mtl', 'pretrain' or "
            f"'<arm>@<fraction>' ({', '.join(ARMS)}), an extra seed adding '@<seed>'"
        )

    def label(self) -> str:
        """In words, for a progress bar: "single-task baseline y1", "multi-task model, seed 2", ..."""
        if self.kind in ARMS:
            return f"{ARM_LABELS[self.kind]} on {self.fraction * 100:g} % of the target's labels"
        if self.kind == "pretrain":
            return "pre-training on the source tasks"
        text = f"single-task baseline {self.task}" if self.kind == "stl" else "multi-task model"
        return text if self.seed is None else f"{text}, seed {self.seed}"


MTL: str = Phase.mtl().format()  # the multi-task model of the config's own seed: what the pages show


def _split_seed(text: str) -> tuple[str, int | None]:
    """("y1", 2) for "y1@2"; (text, None) when it does not end in "@<integer>"."""
    head, at, tail = text.rpartition("@")
    if at and tail.isdigit():
        return head, int(tail)
    return text, None


def label(name: str | None) -> str:
    """A stored phase name in words; "starting" for none yet, the name itself when unknown."""
    if not name:
        return "starting"
    try:
        return Phase.parse(name).label()
    except ValueError:
        return name


# ---- the plan ------------------------------------------------------------------------------------
Plan = list[tuple[Phase, int | None]]


def plan(config: Any, *, fractions: Sequence[float] | None = None) -> Plan:
    """The models `config` trains, in order, each with its step budget (None when the
    budget is in epochs: the steps follow from the dataset's size, the same for each).

    An experiment (ExperimentConfig, or its stored dict): for each of its `n_seeds` seeds,
    one single-task baseline per task (unless `baselines: false`), then the multi-task
    model — the order `experiment.run_experiment` trains them in.

    A transfer run (`mtl_core.transfer.TransferConfig`, or its stored dict): "pretrain",
    then every arm at every fraction, smallest fraction first. A run merges fractions that
    clamp to one example count (`transfer.fraction_plan`, known only once the dataset is
    built) and trains them once, under the largest: the plan of a config lists every
    fraction, and a run skips the merged ones (`position` reads a skipped phase as done).
    `fractions` gives the merged list, where known, for the run's exact plan.
    """
    if _field(config, "kind") == "transfer":
        return _transfer_plan(config, fractions)
    return _experiment_plan(config)


def phases(config: Any, **kwargs: Any) -> list[str]:
    """The stored names of `plan(config)`."""
    return [p.format() for p, _ in plan(config, **kwargs)]


def _field(config: Any, name: str, default: Any = None) -> Any:
    if isinstance(config, Mapping):
        return config.get(name, default)
    return getattr(config, name, default)


def _experiment_plan(config: Any) -> Plan:
    from mtl_core.errors import MTLLabError

    if isinstance(config, Mapping):  # a stored config: as the run read it, else its raw fields
        from mtl_core.config import ExperimentConfig

        try:
            config = ExperimentConfig.parse(dict(config))
        except MTLLabError:
            pass
    if isinstance(config, Mapping):
        tasks = [str(t) for t in config.get("tasks") or []]
    else:
        try:
            tasks = config.task_list()
        except MTLLabError:  # a dataset that can no longer be read: the tasks it named
            tasks = list(config.tasks or [])
    steps = _int_or_none(_field(config, "steps"))
    first = _int_or_none(_field(config, "seed")) or 0
    out: Plan = []
    # (a stored config that no longer validates is read as it is: bounded as ExperimentConfig.n_seeds is)
    for k in range(min(max(_int_or_none(_field(config, "n_seeds")) or 1, 1), 20)):
        seed = None if k == 0 else first + k
        if _field(config, "baselines", True):
            out += [(Phase.stl(t, seed), steps) for t in tasks]
        out.append((Phase.mtl(seed), steps))
    return out


def _transfer_plan(config: Any, fractions: Sequence[float] | None) -> Plan:
    arms = [a for a in ARMS if a in (_field(config, "arms") or ARMS)]
    shares = sorted(float(f) for f in (fractions if fractions is not None else _field(config, "fractions") or []))
    target = _int_or_none(_field(config, "target_steps"))
    pre = _int_or_none(_field(_field(config, "base") or {}, "steps"))
    return [(Phase.pretrain(), pre)] + [(Phase.arm(a, f), target) for f in shares for a in arms]


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


# ---- how far a run is ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Position:
    """Where a run is in its plan: phase `index` of `count`, `step` of that phase's
    `budget`, and `done` of `total` steps over the whole plan."""

    index: int
    count: int
    step: int
    budget: int | None
    done: float
    total: float

    @property
    def fraction(self) -> float:
        return min(self.done / self.total, 1.0) if self.total > 0 else 0.0


def position(
    names: Sequence[str], phase: str, step: int, *, budgets: Sequence[int | None] | None = None,
    total_steps: int | None = None,
) -> Position:
    """How far a run is that trains phase `phase` (at `step`, of its `total_steps` as the
    run reports them) of the plan `names` (`phases(config)`) with the step `budgets`.

    Phases before the current one count as done whether they trained or not (cached
    baselines, merged transfer fractions), so the position only moves forward while the
    run follows its plan. A budget not known in advance (epochs) is the current phase's
    reported `total_steps` (the models of an experiment share one budget), else 1 per phase.
    A phase missing from the plan reads as the first one.
    """
    n = max(len(names), 1)
    index = names.index(phase) if phase in names else 0
    known = list(budgets) if budgets is not None and len(budgets) == len(names) else [None] * len(names)
    fill = total_steps if total_steps else None
    sizes = [b if b else (fill or 1) for b in known] or [fill or 1]
    budget = known[index] if known and known[index] else fill
    within = min(max(int(step), 0), budget) if budget else 0
    done = sum(sizes[:index]) + (within / budget * sizes[index] if budget else 0.0)
    return Position(index=index, count=n, step=within, budget=budget, done=done, total=float(sum(sizes)))
