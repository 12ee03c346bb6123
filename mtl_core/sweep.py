"""A sweep: many runs from one base config and a few axes, stored and read as one thing.

A sweep config names a base experiment (a file or an inline mapping) and the axes to vary:

    base: quickstart.yaml          # or an inline ExperimentConfig mapping
    set: {steps: 300}              # fixed overrides of the base (dotted keys)
    axes:
      weights: {simplex: 8}        # 2-3 tasks: every w on the simplex grid of resolution 8
      weighting: [manual, uncertainty, pcgrad]
      sharing: [hard]
      seed: [0, 1]
      params: {optimizer.lr: [0.001, 0.003]}   # any dotted key, as `--set`

The points are the Cartesian product of the axes. The weights axis applies only to
strategies that read the manual weights (`uses_weights` of the strategy); a strategy that
sets the weights itself (uncertainty, pcgrad, ...) gets one point per combination of the
other axes, with no manual weights: the "where each balancing method lands" markers of the
Pareto plot (Sener & Koltun, 2018; Navon et al., 2022 draw the same picture).

Every point is validated by building its `ExperimentConfig`; an axis value that cannot be
is refused with a `ConfigError` naming the axis (`axes.weighting[1]: ...`) and the fix.

Instead of axes, a sweep may let a multi-objective study propose its points (the `[tune]`
extra, Optuna: Akiba et al., 2019; `mtl_core.tune`):

    search:
      kind: optuna
      trials: 12                   # points in all
      batch: 4                     # points per round (ask -> train the round -> tell)
      sampler: nsga2               # NSGA-II (Deb et al., 2002) or tpe (multi-objective TPE, Ozaki et al., 2020)
      seed: 0
      space:
        weights: simplex           # uniform on the weight simplex; or {y1: [0.1, 2], y2: [0.1, 2, log]}
        optimizer.lr: [0.0003, 0.01, log]   # [lo, hi] (whole numbers: an int), [lo, hi, log], {choices: [...]}

One objective per task: its primary metric on validation at the selected step, in the
metric's direction (never test: test only reports). Each trial is a stored run of the sweep.

`sweep_table(store, sweep_id)` is the view of a stored sweep: one row per point (its run,
status, weights, validation and test primary metric per task, Δm, Pareto membership) and
one row per task (metric, direction, single-task baseline).
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml
from pydantic import Field, field_validator

from mtl_core.config import (
    ConfigModel,
    ExperimentConfig,
    NamedSpec,
    _mapping,
    apply_overrides,
)
from mtl_core.errors import ConfigError
from mtl_core.spec import StrictModel

__all__ = [
    "EXECUTORS", "MAX_POINTS", "SAMPLERS", "SearchSpec", "SweepConfig", "SweepPoint", "SweepTable", "WeightAxis",
    "create_sweep", "expand", "mirror_line", "simplex_grid", "sweep_table",
]

EXECUTORS = ("local", "batched", "ray")
MAX_POINTS = 2000  # a sweep larger than this is a typo in a resolution, not a plan
MAX_SIMPLEX_TASKS = 3  # the simplex grid is for 2-3 tasks (issue 14); more tasks: explicit lists


class WeightAxis(StrictModel):
    """Loss weights to try: a simplex grid (`simplex: resolution`) or explicit `values`."""

    simplex: int | None = Field(
        None, ge=1, le=200,
        description="resolution n of the grid on the weight simplex: every w with w_t = total·k_t/n, "
        "k_t ≥ 0 whole, Σ k_t = n (n+1 points for 2 tasks, (n+1)(n+2)/2 for 3)",
    )
    values: list[dict[str, float]] | None = Field(None, description="explicit weightings, e.g. [{y1: 1, y2: 0.5}]")
    tasks: list[str] | None = Field(None, description="tasks of the simplex (default: all the run's tasks)")
    total: float | None = Field(
        None, gt=0, allow_inf_nan=False,
        description="Σ_t w_t on the simplex; default the number of tasks, so the centre is the default "
        "equal weights 1 (the same effective learning rate as an unswept run)",
    )


class SweepAxes(StrictModel):
    weights: WeightAxis | None = None
    weighting: list[str | NamedSpec] | None = Field(None, description="weighting strategies to compare")
    sharing: list[str | NamedSpec] | None = Field(None, description="sharing modes to compare")
    seed: list[int] | None = Field(None, description="seeds (each point trains with that seed)")
    params: dict[str, list[Any]] = Field(
        default_factory=dict, description="any dotted config key -> values, e.g. {optimizer.lr: [1e-3, 3e-3]}"
    )


SEARCH_KINDS = ("optuna",)
SAMPLERS = ("nsga2", "tpe")


class SearchSpec(StrictModel):
    """A study that proposes the points (instead of axes); see the module docstring and `mtl_core.tune`."""

    kind: Literal["optuna"] = Field(..., description="who proposes: optuna (the [tune] extra)")
    trials: int = Field(..., ge=1, le=MAX_POINTS, description="points in all")
    batch: int = Field(4, ge=1, le=256, description="points per round: asked together, trained together, told together")
    sampler: Literal["nsga2", "tpe"] = Field("nsga2", description="nsga2 (Deb et al., 2002) or tpe (Ozaki et al., 2020)")
    seed: int = Field(0, ge=0, description="the sampler's seed: the same seed and results propose the same points")
    space: dict[str, Any] = Field(..., description="what the study varies: weights: simplex | {task: [lo, hi]}, "
                                  "and dotted keys: [lo, hi], [lo, hi, log] or {choices: [...]}")

    @field_validator("space")
    @classmethod
    def _space(cls, v: dict[str, Any]) -> dict[str, Any]:
        if not v:
            raise ValueError("the space is empty; give what to vary, e.g. space: {weights: simplex}")
        return v


class SweepConfig(ConfigModel):
    """A sweep: a base experiment, fixed overrides and the axes to vary, or a `search` (a
    study that proposes the points: `search: {kind: optuna, trials, batch, sampler, seed, space}`)."""

    name: str | None = None
    base: str | dict[str, Any] = Field(
        default_factory=dict, description="the base experiment: a YAML/JSON file (relative to the sweep "
        "file) or an inline mapping"
    )
    set: dict[str, Any] = Field(default_factory=dict, description="fixed dotted-key overrides of the base")
    axes: SweepAxes = Field(default_factory=SweepAxes)
    executor: Literal["local", "batched", "ray"] = "local"
    workers: int | None = Field(None, ge=1, le=1024, description="points at once (default: one per core)")
    address: str | None = Field(None, description="ray: the cluster's address (default: a local Ray)")
    search: SearchSpec | None = Field(None, description="a study proposes the points instead of axes (mtl_core.tune)")

    @field_validator("base")
    @classmethod
    def _base(cls, v: Any) -> Any:
        if isinstance(v, str) and not v.strip():
            raise ValueError("give the base experiment's file or an inline mapping, e.g. base: quickstart.yaml")
        return v

    @classmethod
    def from_file(cls, path: str | Path, overrides: list[str] | None = None) -> "SweepConfig":
        """Read a sweep file; a `base:` file name is taken relative to the sweep file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"sweep file {path} does not exist; check the path") from None
        data = _mapping(text, where=f"sweep file {path}")
        config = cls.parse(apply_overrides(data, overrides or []))
        if isinstance(config.base, str) and not Path(config.base).is_absolute():
            config.base = str((path.parent / config.base).resolve())
        return config

    def base_dict(self) -> dict[str, Any]:
        """The base experiment as a plain dict, with `set` applied (not validated yet)."""
        if isinstance(self.base, str):
            path = Path(self.base).expanduser()
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                raise ConfigError(f"base: file {path} does not exist; give the path of an experiment "
                                  "YAML (relative to the sweep file) or an inline mapping") from None
            except OSError as exc:
                raise ConfigError(f"base: cannot read {path} ({exc.strerror or exc})") from None
            data = _mapping(text, where=f"base file {path}")
        else:
            data = dict(self.base)
        return apply_overrides(data, [_assignment(k, v) for k, v in self.set.items()])


@dataclass(frozen=True)
class SweepPoint:
    """One run of a sweep: its position, label, axis values and validated config."""

    index: int
    label: str
    values: dict[str, Any]  # axis -> value ("weights" -> {task: w}, "weighting", "sharing", "seed", dotted keys)
    config: ExperimentConfig = field(compare=False)

    def meta(self) -> dict[str, Any]:
        """What the store keeps beside the run's config (JSON)."""
        return {"index": self.index, "label": self.label, "values": self.values}


def _assignment(key: str, value: Any) -> str:
    # JSON is YAML, so `apply_overrides` (the `--set` path, with its shorthands) reads it back exactly.
    return f"{key}={json.dumps(value)}"


def simplex_grid(tasks: list[str], resolution: int, total: float | None = None) -> list[dict[str, float]]:
    """Every weighting w with w_t = total·k_t/n, k_t ≥ 0 whole, Σ_t k_t = n (n = `resolution`).

    Ordered from the first task's largest weight down, so 2 tasks run from (total, 0) to (0, total).
    """
    if not 2 <= len(tasks) <= MAX_SIMPLEX_TASKS:
        raise ConfigError(
            f"axes.weights.simplex: a simplex grid is for 2 or 3 tasks, this run has {len(tasks)} "
            f"({', '.join(tasks)}); list weightings in axes.weights.values, or name 2-3 tasks in axes.weights.tasks"
        )
    total = float(len(tasks)) if total is None else float(total)
    out = []
    for ks in itertools.product(range(resolution, -1, -1), repeat=len(tasks) - 1):
        rest = resolution - sum(ks)
        if rest < 0:
            continue
        out.append({t: total * k / resolution for t, k in zip(tasks, (*ks, rest))})
    return out


def mirror_line(weights: dict[str, float], points: int = 9) -> list[dict[str, float]]:
    """`points` weightings evenly spaced from `weights` to its mirror (the same values in reverse
    task order: (a, b) -> (b, a)): the Train page's one-click "sweep these weights", for
    `axes.weights.values`. Equal weights are their own mirror: then the line runs between
    (Σw, 0, ..., 0) and (0, ..., 0, Σw)."""
    if points < 2:
        raise ConfigError(f"points: give at least 2 points on the line, not {points}")
    tasks = list(weights)
    start = [float(weights[t]) for t in tasks]
    end = start[::-1]
    if start == end:
        total = sum(start)
        start = [total] + [0.0] * (len(tasks) - 1)
        end = start[::-1]
    return [{t: a + (b - a) * k / (points - 1) for t, a, b in zip(tasks, start, end)} for k in range(points)]


def _spec(entry: str | NamedSpec) -> dict[str, Any]:
    return {"name": entry, "options": {}} if isinstance(entry, str) else entry.model_dump(mode="json")


def _parse_point(data: dict[str, Any], where: str) -> ExperimentConfig:
    try:
        return ExperimentConfig.parse(data)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}".replace("\n", f"\n{where}: ")) from None


def expand(config: SweepConfig) -> list[SweepPoint]:
    """The sweep's points, each a validated ExperimentConfig (ConfigError naming the axis).

    A `search` sweep has no fixed list of points (its study proposes them while it runs):
    ConfigError; `mtl_core.tune.propose` gives its next points."""
    if config.search is not None:
        raise ConfigError(f"search: a study proposes its {config.search.trials} points while the sweep runs, "
                          "so they cannot be listed in advance; create the sweep (create_sweep) to get its first round")
    base_data = config.base_dict()
    base = _parse_point(base_data, "base")
    base_data = base.to_dict()
    tasks = base.task_list()
    axes = config.axes

    # One axis value at a time on the base: an error then names the axis that caused it.
    def check(axis: str, items: list[tuple[str, Any]]) -> None:
        for i, (key, value) in enumerate(items):
            _parse_point(apply_overrides(base_data, [_assignment(key, value)]), f"axes.{axis}[{i}]")

    weightings = [_spec(w) for w in axes.weighting] if axes.weighting is not None else [base_data["weighting"]]
    sharings = [_spec(s) for s in axes.sharing] if axes.sharing is not None else [base_data["sharing"]]
    for axis, specs in (("weighting", weightings), ("sharing", sharings)):
        if not specs:
            raise ConfigError(f"axes.{axis}: the list is empty; give at least one name or remove the axis")
        keys = [json.dumps(s, sort_keys=True) for s in specs]
        dup = next((specs[i]["name"] for i, k in enumerate(keys) if keys.index(k) != i), None)
        if dup is not None:
            raise ConfigError(f"axes.{axis}: {dup!r} is listed twice with the same options; list each once")
    for i, s in enumerate(sharings if axes.sharing is not None else []):
        _parse_point(apply_overrides(base_data, [_assignment("sharing", s)]), f"axes.sharing[{i}]")
    for i, s in enumerate(weightings if axes.weighting is not None else []):
        where = f"axes.weighting[{i}]"
        data = apply_overrides(base_data, [_assignment("weighting", s)])
        if _uses_weights(s["name"], where):
            _parse_point(data, where)
        else:  # it sets the weights itself: checked (and run) without the base's manual weights
            _parse_point({**data, "weights": {}}, where)

    weight_sets: list[dict[str, float]] | None = None
    if axes.weights is not None:
        wa = axes.weights
        if (wa.simplex is None) == (wa.values is None):
            raise ConfigError("axes.weights: give either simplex (a resolution, e.g. simplex: 8) or values "
                              "(a list of {task: weight}), not both and not neither")
        if wa.simplex is not None:
            grid_tasks = list(wa.tasks) if wa.tasks is not None else tasks
            unknown = [t for t in grid_tasks if t not in tasks]
            if unknown:
                raise ConfigError(f"axes.weights.tasks: {unknown[0]!r} is not a task of the base run; "
                                  f"choose from: {', '.join(tasks)}")
            weight_sets = [{**{t: base.weights.get(t, 1.0) for t in tasks}, **w}
                           for w in simplex_grid(grid_tasks, wa.simplex, wa.total)]
        else:
            if wa.tasks is not None or wa.total is not None:
                raise ConfigError("axes.weights: tasks and total belong to a simplex grid; remove them "
                                  "when you list values")
            if not wa.values:
                raise ConfigError("axes.weights.values: the list is empty; give at least one {task: weight}")
            weight_sets = [dict(w) for w in wa.values]
        if not any(_uses_weights(s["name"], "weighting") for s in weightings):
            names = ", ".join(s["name"] for s in weightings)
            raise ConfigError(
                f"axes.weights: weighting {names} sets every task weight itself, so no point would train these "
                "weights; add manual to axes.weighting (e.g. weighting: [manual, " + weightings[0]["name"] + "]) "
                "or set the base's weighting to manual"
            )
        for i, w in enumerate(weight_sets):
            data = apply_overrides(base_data, [_assignment("weighting", {"name": "manual", "options": {}})])
            data["weights"] = w
            _parse_point(data, f"axes.weights[{i}]")

    seeds = axes.seed
    if seeds is not None:
        if not seeds:
            raise ConfigError("axes.seed: the list is empty; give at least one seed, e.g. seed: [0, 1, 2]")
        check("seed", [("seed", s) for s in seeds])
    params = axes.params
    for key, values in params.items():
        if key.split(".")[0] in ("weights", "weighting", "sharing", "seed"):
            raise ConfigError(f"axes.params: {key!r} has its own axis; use axes.{key.split('.')[0]} instead")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"axes.params.{key}: give a non-empty list of values, e.g. {key}: [1, 2]")
        check(f"params.{key}", [(key, v) for v in values])

    combos = itertools.product(
        weightings, sharings, seeds if seeds is not None else [None],
        *[[(k, v) for v in vs] for k, vs in params.items()],
    )
    points: list[SweepPoint] = []
    for weighting, sharing, seed, *param_values in combos:
        uses = _uses_weights(weighting["name"], "weighting")
        for w in (weight_sets if (weight_sets is not None and uses) else [None]):
            if len(points) >= MAX_POINTS:
                raise ConfigError(f"axes: the sweep has more than {MAX_POINTS} points; lower the simplex "
                                  "resolution or shorten a list")
            overrides = [_assignment("weighting", weighting), _assignment("sharing", sharing)]
            overrides += [_assignment(k, v) for k, v in param_values]
            if seed is not None:
                overrides.append(_assignment("seed", seed))
            data = apply_overrides(base_data, overrides)
            if w is not None:
                data["weights"] = w
            elif not uses:
                data["weights"] = {}
            values: dict[str, Any] = {"weighting": weighting["name"], "sharing": sharing["name"]}
            if w is not None:
                values["weights"] = {t: float(x) for t, x in w.items()}
            if seed is not None:
                values["seed"] = seed
            values.update(dict(param_values))
            index = len(points)
            cfg = _parse_point(data, f"sweep point {index} ({_label(values, tasks)})")
            if config.name:
                cfg.name = f"{config.name} #{index}"
            points.append(SweepPoint(index, _label(values, tasks), values, cfg))
    return points


def _uses_weights(name: str, where: str) -> bool:
    """Whether weighting `name` reads the manual weights (ConfigError naming `where` if unknown)."""
    from mtl_core.weighting import WEIGHTING

    return WEIGHTING.get(name, field_name=f"{where}.name").extra["uses_weights"] != "none"


def _label(values: dict[str, Any], tasks: list[str]) -> str:
    parts = [values["weighting"]]
    if "weights" in values:
        parts.append("w=(" + ", ".join(f"{values['weights'].get(t, 1.0):.3g}" for t in tasks) + ")")
    parts.append(values["sharing"])
    if "seed" in values:
        parts.append(f"seed {values['seed']}")
    parts += [f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"  # a study's 0.0036835616... reads 0.00368
              for k, v in values.items() if k not in ("weighting", "weights", "sharing", "seed")]
    return " ".join(parts)


def create_sweep(store, config: SweepConfig, *, executor: str | None = None,
                 points: list[tuple[dict[str, Any], dict[str, Any]]] | None = None) -> str:
    """Expand and validate `config`, record the sweep and its runs (all `queued`); the sweep id.

    Nothing is stored when a point is invalid. Execution is `mtl_core.executors.run_sweep`.
    A `search` sweep's points come from its study: `points` is its first round (config dict,
    point meta) as `mtl_core.executors.record_sweep` passes it; the driver asks for the rest.
    """
    if points is not None:
        pairs = list(points)
    elif config.search is not None:
        raise ConfigError("search: a study proposes this sweep's points; record it with "
                          "mtl_core.executors.record_sweep (as `mtl-lab sweep` does), which asks it for the first round")
    else:
        pairs = [(p.config.to_dict(), p.meta()) for p in expand(config)]
    executor = executor or config.executor
    if executor not in EXECUTORS:
        raise ConfigError(f"executor: {executor!r} is unknown; choose one of: {', '.join(EXECUTORS)}")
    data = config.to_dict()
    data["executor"] = executor
    return store.create_sweep(data, pairs, name=config.name, executor=executor)


# ---- the view of a stored sweep ---------------------------------------------------------------------

@dataclass
class SweepTable:
    """A stored sweep as tables (what the Sweep page and `mtl-lab show SWEEP_ID` draw).

    `points`: one row per run: run_id, index, status, label, strategy, sharing, seed,
    `w:<task>` (the weights it trained with; NaN for a strategy that sets them itself),
    `val:<task>` and `test:<task>` (the primary metric on validation at the selected step and
    on test), delta_m (test Δm %, Maninis et al., 2019), is_front (Pareto-optimal among the
    finished points by the validation metrics: validation selects) and is_front_test (by test).
    `tasks`: one row per task: task, metric, higher_is_better, baseline_val, baseline_test
    (the single-task baseline, mean over the points that report it; they share it).
    """

    sweep: dict[str, Any]
    points: pd.DataFrame
    tasks: pd.DataFrame


def _val_at(history_val: list[dict[str, Any]], step: int | None, task: str, metric: str) -> float:
    if step is None:
        return math.nan
    for ev in history_val:
        if ev.get("step") == step:
            value = (ev.get("metrics") or {}).get(task, {}).get(metric)
            return float(value) if value is not None else math.nan
    return math.nan


def sweep_table(store, sweep_id: str) -> SweepTable:
    """The points and tasks of sweep `sweep_id` as DataFrames (see `SweepTable`)."""
    from mtl_core.pareto import pareto_mask

    sweep = store.get_sweep(sweep_id)
    runs = store.sweep_runs(sweep_id)
    rows, task_info, base_val, base_test = [], {}, {}, {}
    for _, run in runs.iterrows():
        point = run["point"] or {}
        values = point.get("values") or {}
        cfg = run["config"] or {}
        row: dict[str, Any] = {
            "run_id": run["id"], "index": point.get("index"), "status": run["status"],
            "label": point.get("label"), "strategy": values.get("weighting") or (cfg.get("weighting") or {}).get("name"),
            "sharing": values.get("sharing") or (cfg.get("sharing") or {}).get("name"),
            "seed": cfg.get("seed"), "delta_m": math.nan, "error": run["error"],
        }
        weights = values.get("weights")
        result = store.result(run["id"]) if run["status"] == "finished" else None
        tasks_rows = (result or {}).get("tasks") or []
        for r in tasks_rows:
            task_info.setdefault(r["name"], (r["metric"], bool(r["higher_is_better"])))
        names = [r["name"] for r in tasks_rows] or list(cfg.get("tasks") or (weights or {}).keys())
        for t in names:
            row[f"w:{t}"] = float(weights.get(t, 1.0)) if weights else math.nan
        if result:
            sel = result.get("selection") or {}
            hist = (result.get("history") or {}).get("val") or []
            for r in tasks_rows:
                t, metric = r["name"], r["metric"]
                row[f"val:{t}"] = _val_at(hist, sel.get("mtl_step"), t, metric)
                row[f"test:{t}"] = float(r["mtl"]) if r.get("mtl") is not None else math.nan
                if r.get("stl") is not None:
                    base_test.setdefault(t, []).append(float(r["stl"]))
                b = (result.get("baselines") or {}).get(t) or {}
                bstep = (sel.get("baseline_steps") or {}).get(t)
                for point_ in b.get("curve") or []:
                    if point_.get("step") == bstep and isinstance(point_.get("val"), dict):
                        v = point_["val"].get(metric)
                        if v is not None:
                            base_val.setdefault(t, []).append(float(v))
            dm = result.get("delta_m")
            row["delta_m"] = float(dm) if dm is not None else math.nan
        rows.append(row)
    points = pd.DataFrame(rows)
    names = list(task_info)
    for t in names:
        for col in (f"w:{t}", f"val:{t}", f"test:{t}"):
            if col not in points.columns:
                points[col] = math.nan
    if not points.empty:
        points = points.sort_values("index", kind="stable").reset_index(drop=True)
        directions = [task_info[t][1] for t in names]
        for flag, split in (("is_front", "val"), ("is_front_test", "test")):
            if names:
                values = points[[f"{split}:{t}" for t in names]].to_numpy(dtype=float)
                points[flag] = pareto_mask(values, directions) & (points["status"] == "finished").to_numpy()
            else:
                points[flag] = False
    tasks = pd.DataFrame(
        [{"task": t, "metric": task_info[t][0], "higher_is_better": task_info[t][1],
          "baseline_val": _mean(base_val.get(t)), "baseline_test": _mean(base_test.get(t))} for t in names],
        columns=["task", "metric", "higher_is_better", "baseline_val", "baseline_test"],
    )
    return SweepTable(sweep=sweep, points=points, tasks=tasks)


def _mean(values: list[float] | None) -> float:
    return float(sum(values) / len(values)) if values else math.nan


def load_sweep_yaml(text: str) -> SweepConfig:
    """A sweep config from YAML text (the dashboard's URL state)."""
    return SweepConfig.parse(_mapping(text, where="the sweep config"))


def dump_sweep_yaml(config: SweepConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False, allow_unicode=True)
