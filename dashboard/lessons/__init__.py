"""The Learn page's lessons, as data: one YAML file per lesson in this folder.

A teacher adds a lesson by adding a file (`NN_some_name.yaml`), no Python: its texts in
every language of `dashboard.i18n.LANGUAGES`, the experiment (an `ExperimentConfig`
mapping with a small budget), the outcome the lesson claims (which verdict of the run
answers the question, and the word it should say), the charts that show the answer, and
one "try this" knob (a dotted config key and its other value). A lesson of `kind:
transfer` runs a transfer experiment (`mtl_core.transfer.TransferConfig`: pre-train a
shared encoder on source tasks, then frozen / fine-tuned / scratch on a held-out task) and
reads its verdict from the run's own paired comparison with scratch (`vs_scratch`). A
lesson that `needs: [text]` is listed greyed, with the install command, until the
MiniLM extra is installed. `load_lessons` validates
every file with pydantic and raises `LessonError` naming the file, the lesson and the
field, so a typo is found when the page loads, not when a student presses Run.

Nothing here imports Streamlit: the page, the tests and `bench/lessons.py` share it.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from dashboard.i18n import LANGUAGES  # every text of a lesson is given in each
from dashboard.verdicts import finite_number as _num  # a number, or None for missing / NaN
from mtl_core.config import ExperimentConfig, apply_overrides

if TYPE_CHECKING:  # mtl_core.transfer imports torch: only where a transfer lesson is run
    from mtl_core.transfer import TransferConfig
from mtl_core.errors import ConfigError, DataError, MTLLabError
from mtl_core.registry import format_validation_error
from mtl_core.spec import StrictModel

LESSON_DIR = Path(__file__).resolve().parent
DATA_DIR = LESSON_DIR / "data"  # data files the lessons ship (small CSVs)

# What a lesson's verdict is read from, and the words each can say (mtl_core.significance).
TASK_WORDS = ("helped", "hurt", "no clear difference")
PAIR_WORDS = ("agree", "conflict", "no clear sign")
GATED = ("mmoe", "cgc", "ple")  # sharing modes whose runs record gate weights (mtl_core.models.experts)
CHARTS = ("comparison", "loss_curves", "cosine_heatmap", "cosine_history", "weights", "gates", "transfer")
TRANSFER_CHARTS = ("transfer",)  # what a transfer run's result can draw: its data-efficiency curve and vs-scratch table
PRETRAINED_ARMS = ("frozen", "finetune")  # the arms a transfer result compares with scratch (mtl_core.phases.ARMS)
EXTRAS = {"text": "mtl_core.models.pretrained"}  # an optional extra a lesson may need -> where its check lives


class LessonError(MTLLabError, ValueError):
    """A lesson file is invalid (names the file, the lesson and the field)."""


class Text(StrictModel):
    """One text in every language; Markdown, `$…$` for inline formulas."""

    en: str = Field(min_length=1)
    zh: str = Field(min_length=1)

    def get(self, lang: str) -> str:
        return getattr(self, lang if lang in LANGUAGES else "en")


class Expect(StrictModel):
    """The outcome the lesson claims: which verdict of the run answers its question.

    `measure`: `delta_m` (Δm vs the single-task baselines, Maninis et al., 2019), `task`
    (one task's multi- vs single-task verdict; name it in `task`), `pair` (the gradient
    cosine of the first task pair: agree / conflict / no clear sign) or `vs_scratch` (a
    transfer lesson: the pre-trained `arm` against scratch at the data size `fraction`,
    default the run's smallest, from the run's paired bootstrap interval)."""

    measure: Literal["delta_m", "task", "pair", "vs_scratch"] = "delta_m"
    task: str | None = None
    arm: Literal["frozen", "finetune"] | None = Field(None, description="vs_scratch: the pre-trained arm read")
    fraction: float | None = Field(None, gt=0, le=1, description="vs_scratch: the data size read (default: smallest)")
    verdict: str

    @model_validator(mode="after")
    def _consistent(self) -> Expect:
        words = PAIR_WORDS if self.measure == "pair" else TASK_WORDS
        if self.verdict not in words:
            raise ValueError(f"verdict {self.verdict!r} is not a word of measure {self.measure!r}; "
                             f"use one of {', '.join(words)}")
        if self.measure == "task" and not self.task:
            raise ValueError("measure 'task' needs `task:` naming the task whose verdict answers the question")
        if self.measure == "vs_scratch" and self.arm is None:
            raise ValueError(f"measure 'vs_scratch' needs `arm:` naming the pre-trained arm compared with scratch "
                             f"({', '.join(PRETRAINED_ARMS)})")
        if self.measure != "vs_scratch" and (self.arm is not None or self.fraction is not None):
            raise ValueError("`arm` and `fraction` belong to measure 'vs_scratch' (a transfer lesson); remove them")
        return self

    @property
    def words(self) -> tuple[str, ...]:
        return PAIR_WORDS if self.measure == "pair" else TASK_WORDS


class TryKnob(StrictModel):
    """One thing to change and re-run: `key` a dotted config key (as `mtl-lab run --set`),
    `value` its other value; `expect` what the changed run should then say (optional)."""

    key: str = Field(min_length=1)
    value: Any
    label: Text
    expect: str | None = None

    @field_validator("key")
    @classmethod
    def _dotted(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*", v):
            raise ValueError(f"{v!r} is not a dotted config key; write e.g. dataset.options.correlation")
        return v

    @property
    def override(self) -> str:
        return f"{self.key}={yaml.safe_dump(self.value, default_flow_style=True).strip().removesuffix('...').strip()}"


class Lesson(StrictModel):
    """One lesson: predict → run → see → explain → try."""

    number: int = Field(ge=1, le=99, description="its place in the list and `?lesson=N`")
    kind: Literal["experiment", "transfer"] = Field(
        "experiment", description="what `experiment` holds: an ExperimentConfig, or a TransferConfig (transfer)")
    needs: list[Literal["text"]] = Field(
        default_factory=list, description="optional extras the lesson's run needs (text: the MiniLM encoder)")
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", description="a short slug, e.g. why-share")
    title: Text
    question: Text
    choices: dict[str, Text] = Field(description="verdict word -> the answer a student can pick")
    explanation: Text
    formula: str | None = Field(None, description="LaTeX shown with the explanation")
    paper: str | None = Field(None, description="the paper behind the idea (authors, year)")
    experiment: dict[str, Any]
    expect: Expect
    charts: list[Literal["comparison", "loss_curves", "cosine_heatmap", "cosine_history", "weights", "gates",
                         "transfer"]] = Field(min_length=1, max_length=3)
    try_this: TryKnob
    budget_s: float = Field(10.0, gt=0, le=120, description="the time from click to answer it should take on a laptop")

    @model_validator(mode="after")
    def _checked(self) -> Lesson:
        missing = [w for w in self.expect.words if w not in self.choices]
        extra = [w for w in self.choices if w not in self.expect.words]
        if missing or extra:
            raise ValueError(
                f"choices must be exactly the verdict words of measure {self.expect.measure!r} "
                f"({', '.join(self.expect.words)}); missing: {missing or 'none'}, unknown: {extra or 'none'}")
        if self.try_this.expect is not None and self.try_this.expect not in self.expect.words:
            raise ValueError(f"try_this.expect {self.try_this.expect!r} is not one of {', '.join(self.expect.words)}")
        config = self.config()  # raises ConfigError naming the experiment's field
        if self.kind == "transfer":
            self._check_transfer(config)
            return self
        if self.expect.measure == "vs_scratch":
            raise ValueError("expect: measure 'vs_scratch' reads a transfer experiment; set `kind: transfer` "
                             "(experiment: a TransferConfig) or measure delta_m / task / pair")
        if "transfer" in self.charts:
            raise ValueError("charts: 'transfer' draws a transfer experiment; set `kind: transfer` or pick "
                             f"from {', '.join(c for c in CHARTS if c not in TRANSFER_CHARTS)}")
        if "gates" in self.charts and config.sharing.name not in GATED:
            raise ValueError(f"charts: 'gates' needs a sharing mode with gates ({', '.join(GATED)}), "
                             f"not {config.sharing.name!r}")
        try_config = self.config(try_this=True)
        tasks = config.task_list(_task_names(config))
        if self.expect.measure == "task" and self.expect.task not in tasks:
            raise ValueError(f"expect.task {self.expect.task!r} is not a task of the experiment ({', '.join(tasks)})")
        if self.expect.measure == "pair" and (len(tasks) < 2 or not config.interference):
            raise ValueError("measure 'pair' needs two tasks and `interference: true` in the experiment")
        if try_config.model_copy(update={"name": config.name}) == config:
            raise ValueError(f"try_this ({self.try_this.override}) does not change the experiment")
        return self

    def _check_transfer(self, config: TransferConfig) -> None:
        """A transfer lesson reads `vs_scratch` of an arm the run trains, beside scratch."""
        if self.expect.measure != "vs_scratch":
            raise ValueError(f"expect: a transfer lesson answers with measure 'vs_scratch' (arm vs scratch), "
                             f"not {self.expect.measure!r}")
        wrong = [c for c in self.charts if c not in TRANSFER_CHARTS]
        if wrong:
            raise ValueError(f"charts: {', '.join(map(repr, wrong))} cannot be drawn from a transfer experiment; "
                             f"use {', '.join(TRANSFER_CHARTS)}")
        try_config = self.config(try_this=True)
        for where, cfg in (("experiment", config), ("try_this", try_config)):
            if "scratch" not in cfg.arms or self.expect.arm not in cfg.arms:
                raise ValueError(f"{where}.arms: the verdict compares {self.expect.arm!r} with 'scratch'; "
                                 f"train both (arms: [{self.expect.arm}, scratch]), not {cfg.arms}")
        fraction = self.expect.fraction
        if fraction is not None:
            checked = [("experiment", config)] + ([("try_this", try_config)] if self.try_this.expect else [])
            for where, cfg in checked:
                if not any(math.isclose(fraction, f) for f in cfg.fractions):
                    raise ValueError(f"expect.fraction {fraction:g} is not a data size of the {where} "
                                     f"(fractions {cfg.fractions}); name one of them or leave it out "
                                     f"(the smallest is read)")
        if try_config.model_copy(update={"name": config.name}) == config:
            raise ValueError(f"try_this ({self.try_this.override}) does not change the experiment")

    def available(self) -> bool:
        """Whether every extra the lesson needs is installed (looked up, not imported)."""
        if not self.needs:
            return True
        from mtl_core.models import pretrained

        return all(pretrained.minilm_available() for need in self.needs if need == "text")

    @property
    def install_hint(self) -> str:
        """The command that installs what the lesson needs ('' when it needs nothing)."""
        if not self.needs:
            return ""
        from mtl_core.models import pretrained

        return pretrained.INSTALL_HINT if "text" in self.needs else ""

    def config(self, *, try_this: bool = False,
               place: Callable[[str, bytes], Path] | None = None) -> ExperimentConfig | TransferConfig:
        """The run this lesson starts (`try_this`: with the knob turned): an ExperimentConfig,
        or a TransferConfig for `kind: transfer`. Its name marks it as this lesson's, so the
        cache finds it among the store's runs.

        A data file the lesson ships (`dataset.options.path: houses.csv`, a file of
        `dashboard/lessons/data/`) is named by its full path, or by where `place(name,
        content)` put a copy (the dashboard reads only its uploads folder)."""
        raw = copy.deepcopy(self.experiment)
        raw["name"] = f"lesson {self.number}" + (" (try)" if try_this else "")
        if self.kind == "transfer":
            raw.setdefault("kind", "transfer")
        elif {"base", "sources", "target"} <= set(raw):
            raise ValueError("experiment: it has base, sources and target, a transfer experiment; "
                             "add `kind: transfer` to the lesson")
        holder = raw.get("base") if self.kind == "transfer" else raw
        options = ((holder if isinstance(holder, dict) else {}).get("dataset") or {}).get("options") or {}
        if isinstance(options.get("path"), str):
            shipped = lesson_data(options["path"])
            options["path"] = str(place(shipped.name, shipped.read_bytes()) if place else shipped)
        if try_this:
            raw = apply_overrides(raw, [self.try_this.override])
        try:
            if self.kind == "transfer":
                from mtl_core.transfer import TransferConfig

                return TransferConfig.parse(raw)
            return ExperimentConfig.parse(raw)
        except (ConfigError, DataError) as exc:
            where = "try_this" if try_this else "experiment"
            raise ValueError(f"{where}: " + str(exc).replace("\n", f"; {where}: ")) from None


def lesson_data(name: str) -> Path:
    """A data file shipped with the lessons (a plain file name in `dashboard/lessons/data/`)."""
    path = DATA_DIR / name
    if Path(name).name != name or not path.is_file():
        raise ValueError(f"dataset.options.path {name!r}: name a file of dashboard/lessons/data/ "
                         f"({', '.join(sorted(p.name for p in DATA_DIR.glob('*'))) or 'none there'})")
    return path


def run_dataset(config: ExperimentConfig | TransferConfig) -> Any:
    """The dataset spec a lesson's run reads (a transfer experiment's is its `base`'s)."""
    return config.base.dataset if getattr(config, "kind", None) == "transfer" else config.dataset


def _task_names(config: ExperimentConfig) -> list[str]:
    from mtl_core.tasks import dataset_task_names

    return list(dataset_task_names(config.dataset.name, config.dataset.options))


def parse_lesson(data: Any, *, source: str = "<lesson>") -> Lesson:
    """Validate one lesson mapping; LessonError names the file, the lesson and the field."""
    if not isinstance(data, Mapping):
        raise LessonError(f"{source}: a lesson file holds a mapping (number, id, title, …), "
                          f"not a {type(data).__name__}")
    label = f"{source} (lesson {data.get('number', '?')}, {data.get('id', 'no id')})"
    try:
        return Lesson.model_validate(dict(data))
    except ValidationError as exc:
        raise LessonError(f"{label}: " + format_validation_error(exc).replace("\n", f"\n{label}: ")) from None


def load_lesson_file(path: Path) -> Lesson:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise LessonError(f"{path.name}: cannot read it as YAML ({exc})") from None
    return parse_lesson(data, source=path.name)


def load_lessons(folder: Path | str | None = None) -> list[Lesson]:
    """Every `*.yaml` lesson of `folder` (default: this package's), ordered by number."""
    folder = Path(folder) if folder is not None else LESSON_DIR
    lessons = [load_lesson_file(p) for p in sorted(folder.glob("*.yaml"))]
    seen: dict[int, str] = {}
    for lesson in lessons:
        if lesson.number in seen:
            raise LessonError(f"lesson number {lesson.number} is used twice ({seen[lesson.number]} and "
                              f"{lesson.id}); give each lesson its own number")
        seen[lesson.number] = lesson.id
    return sorted(lessons, key=lambda l: l.number)


@lru_cache(maxsize=1)
def shipped_lessons() -> tuple[Lesson, ...]:
    """The lessons shipped in this folder (read and validated once per process)."""
    return tuple(load_lessons())


# ---- the verdict that answers a lesson's question, read from the run's result ------------------
def measured(lesson: Lesson, result: Mapping[str, Any] | None, *, expect: Expect | None = None) -> dict[str, Any]:
    """What the run says about the lesson's question, from its stored result: `verdict`
    (a word of the measure, None where the result has none), `value`, `low`, `high` (the
    95 % interval), `unit` and what was measured. Never a canned sentence: the engine's
    verdict with its noise (`mtl_core.significance`)."""
    expect = expect or lesson.expect
    out: dict[str, Any] = {"measure": expect.measure, "verdict": None, "value": None, "low": None,
                           "high": None, "task": expect.task}
    if not result:
        return out
    if expect.measure == "delta_m":
        interval = result.get("delta_m_interval") or {}
        verdict = result.get("delta_m_verdict")
        out.update(value=_num(result.get("delta_m")), low=_num(interval.get("low")),
                   high=_num(interval.get("high")), verdict=verdict if verdict in TASK_WORDS else None)
    elif expect.measure == "task":
        row = next((r for r in result.get("tasks") or [] if r.get("name") == expect.task), None)
        if row:
            verdict = row.get("verdict")
            out.update(value=_num(row.get("delta_pct")), low=_num(row.get("low")), high=_num(row.get("high")),
                       stl=_num(row.get("stl")), mtl=_num(row.get("mtl")), metric=row.get("metric"),
                       diff=_num(row.get("diff")), verdict=verdict if verdict in TASK_WORDS else None)
    elif expect.measure == "vs_scratch":
        out.update(_vs_scratch(result, expect))
    else:
        pairs = ((result.get("interference") or {}).get("pairs")) or []
        if pairs:
            pair = pairs[0]
            verdict = pair.get("verdict")
            out.update(value=_num(pair.get("mean_cosine")), low=_num(pair.get("low")), high=_num(pair.get("high")),
                       pair=list(pair.get("pair") or []), evaluations=pair.get("evaluations"),
                       verdict=verdict if verdict in PAIR_WORDS else None)
    return out


def _vs_scratch(result: Mapping[str, Any], expect: Expect) -> dict[str, Any]:
    """The arm's comparison with scratch that the transfer run stored (`vs_scratch` of its
    row: the paired bootstrap interval of arm − scratch on the same test rows, as the
    Transfer page shows it), at `expect.fraction` or the run's smallest data size."""
    rows = [r for r in result.get("rows") or [] if isinstance(r, Mapping)]
    fraction = expect.fraction
    if fraction is not None:  # a requested fraction merged into another data size is shown under that one
        merged = next((p for p in result.get("merged_fractions") or []
                       if any(math.isclose(fraction, f) for f in p.get("fractions") or [])), None)
        fraction = merged["fraction"] if merged else fraction
    sizes = sorted({r["fraction"] for r in rows if _num(r.get("fraction")) is not None})
    if fraction is None and sizes:
        fraction = sizes[0]
    at = [r for r in rows if _num(r.get("fraction")) is not None and fraction is not None
          and math.isclose(r["fraction"], fraction)]
    arm = next((r for r in at if r.get("arm") == expect.arm), None)
    scratch = next((r for r in at if r.get("arm") == "scratch"), None)
    versus = arm.get("vs_scratch") if arm else None
    if not isinstance(versus, Mapping):
        return {}
    verdict = versus.get("verdict")
    return {"value": _num(versus.get("diff")), "low": _num(versus.get("low")), "high": _num(versus.get("high")),
            "verdict": verdict if verdict in TASK_WORDS else None, "arm": expect.arm, "fraction": fraction,
            "n_labelled": arm.get("n_labelled"), "arm_value": _num(arm.get("metric_value")),
            "scratch_value": _num(scratch.get("metric_value")) if scratch else None,
            "metric": result.get("metric"), "higher_is_better": result.get("higher_is_better")}


def train_in_process(config: ExperimentConfig | TransferConfig) -> dict[str, Any]:
    """Train a lesson's run in this process and return its result, as the worker would
    store it: `run_experiment` with fresh single-task baselines, or `run_transfer` for a
    transfer experiment (the truth test and `bench/lessons.py`)."""
    if getattr(config, "kind", None) == "transfer":
        from mtl_core.transfer import run_transfer

        return run_transfer(config)
    from mtl_core.experiment import MemoryBaselineCache, run_experiment

    return run_experiment(config, baseline_cache=MemoryBaselineCache())


def with_seed(config: ExperimentConfig | TransferConfig, seed: int) -> ExperimentConfig | TransferConfig:
    """The same run at another seed (a transfer experiment's seed is its base's)."""
    if getattr(config, "kind", None) == "transfer":
        return config.model_copy(update={"base": config.base.model_copy(update={"seed": seed})})
    return config.model_copy(update={"seed": seed})


# ---- one training per experiment: the stored run of the same config -------------------------
def find_run(store: Any, config: ExperimentConfig) -> str | None:
    """The newest stored run of exactly this config that finished, else one still queued or
    running (a second student's click joins it), else None. Lesson runs carry the lesson's
    name in their config, so only runs of that name are opened and compared."""
    from mtl_core.store import ACTIVE_STATUSES

    wanted = config.to_dict()
    runs = store.runs()
    runs = runs[(runs["name"] == config.name) & runs["status"].isin(("finished", *ACTIVE_STATUSES))]
    found: dict[str, str] = {}
    for row in runs.itertuples():  # newest first
        key = "finished" if row.status == "finished" else "active"
        if key in found:
            continue
        try:
            stored = store.get_run(row.id)["config"]
        except MTLLabError:
            continue  # deleted meanwhile, or a damaged record: not a cache hit
        if stored == wanted:
            found[key] = row.id
    return found.get("finished") or found.get("active")


# ---- does a lesson tell the truth? -------------------------------------------------------------
NEUTRAL_WORDS = ("no clear difference", "no clear sign")


def claim_holds(expected: str, outcomes: list[str | None]) -> bool:
    """A lesson's claim over several seeds (issue 15): the expected verdict in a strict
    majority of seeds, and every other seed "no clear difference" (never the opposite
    verdict). A claim of no clear difference needs only the majority."""
    hits = sum(o == expected for o in outcomes)
    if 2 * hits <= len(outcomes):
        return False
    if expected in NEUTRAL_WORDS:
        return True
    return all(o == expected or o in NEUTRAL_WORDS for o in outcomes)
