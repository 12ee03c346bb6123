"""A multi-objective study that proposes a sweep's points (the `[tune]` extra).

`search: {kind: optuna, ...}` in a sweep config (`mtl_core.sweep`) replaces its axes: an
Optuna study (Akiba et al., 2019) with NSGA-II (Deb et al., 2002) or multi-objective TPE
(Ozaki et al., 2020) proposes loss weights and any dotted config key, one objective per
task: the task's primary metric on validation at the selected step, minimised or maximised
as the metric says. Test metrics never reach the study (validation selects, test reports).

Trials run in rounds through the sweep's executor: ask `batch` points, store them as
queued runs of the sweep, train them (local, batched or ray, exactly as axis points), tell
the study their validation metrics, ask again, until `trials` points or a cancel of the
sweep (then nothing more is asked). Each trial is a normal stored run; its point meta holds
the trial (number, params, the sampler's system attributes).

Where the study lives: it is re-built from the stored runs before each ask, not kept in an
Optuna RDB file. The run store is then the only record (DESIGN: the store is the only
channel), so a deleted, exported or copied sweep carries its study with it, the trials and
the runs cannot drift apart, and neither SQLAlchemy nor a second database is needed. The
re-build is exact: each trial is added back with its params, distributions, values and the
sampler's system attributes (NSGA-II's generation), and the sampler is seeded with
`seed + number of trials so far`, so the same seed and the same results propose the same points.

The weights on the simplex use the stick-breaking map of a uniform Dirichlet (Betancourt,
2012): K-1 numbers u_i in [0, 1] give b_i = 1 - u_i^(1/(K-i)), w_i = b_i · (what is left),
so a uniform u is a uniform point of the simplex {w ≥ 0, Σ w = K} (K = the number of tasks,
centre (1, ..., 1) as the default equal weights).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mtl_core.config import ExperimentConfig, apply_overrides
from mtl_core.errors import ConfigError
from mtl_core.sweep import (
    SearchSpec,
    SweepConfig,
    SweepPoint,
    _assignment,
    _label,
    _parse_point,
    _uses_weights,
)

__all__ = [
    "Dim", "add_points", "first_round", "import_optuna", "objectives", "parse_space", "propose", "run_study",
    "simplex_point", "stored_trials",
]


def import_optuna():
    """Optuna, or a ConfigError that says how to install it (the core never needs it)."""
    try:
        import optuna
    except ImportError:
        raise ConfigError(
            "search.kind: optuna needs Optuna: pip install 'mtl-lab[tune]' (or pip install 'optuna>=3'); "
            "or list the points with axes instead of search"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


@dataclass(frozen=True)
class Dim:
    """One dimension of the space: a config key and how values are drawn for it.

    kind "simplex" (key "weights", `tasks`), "float", "int" (lo, hi, log) or "choice" (choices).
    """

    key: str
    kind: str
    lo: float = 0.0
    hi: float = 1.0
    log: bool = False
    choices: tuple[Any, ...] = ()
    tasks: tuple[str, ...] = ()

    def params(self) -> dict[str, Any]:
        """The Optuna distributions of this dimension, by parameter name."""
        optuna = import_optuna()
        d = optuna.distributions
        if self.kind == "simplex":
            return {f"simplex:{i}": d.FloatDistribution(0.0, 1.0) for i in range(1, len(self.tasks))}
        if self.kind == "float":
            return {self.key: d.FloatDistribution(self.lo, self.hi, log=self.log)}
        if self.kind == "int":
            return {self.key: d.IntDistribution(int(self.lo), int(self.hi), log=self.log)}
        return {self.key: d.CategoricalDistribution(list(self.choices))}


def simplex_point(u: list[float], tasks: tuple[str, ...]) -> dict[str, float]:
    """Stick-breaking of a uniform Dirichlet (Betancourt, 2012): u in [0, 1]^(K-1) -> w, Σ w = K."""
    k = len(tasks)
    left, w = float(k), []
    for i, ui in enumerate(u, start=1):
        b = 1.0 - ui ** (1.0 / (k - i))
        w.append(b * left)
        left -= b * left
    w.append(max(left, 0.0))
    return dict(zip(tasks, w))


def _range(value: Any, where: str) -> tuple[float, float, bool, bool]:
    """[lo, hi] or [lo, hi, log] -> (lo, hi, log, whole numbers)."""
    fix = f"give [lo, hi] or [lo, hi, log], e.g. {where.split('.', 2)[-1]}: [0.0003, 0.01, log]"
    if not isinstance(value, list) or len(value) not in (2, 3):
        raise ConfigError(f"{where}: {value!r} is not a range; {fix}")
    lo, hi, *rest = value
    if rest and rest[0] != "log":
        raise ConfigError(f"{where}: the third entry must be the word log, not {rest[0]!r}; {fix}")
    if any(isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) for x in (lo, hi)):
        raise ConfigError(f"{where}: lo and hi must be finite numbers, not {lo!r} and {hi!r}; {fix}")
    if not lo < hi:
        raise ConfigError(f"{where}: lo ({lo}) must be below hi ({hi}); {fix}")
    if rest and lo <= 0:
        raise ConfigError(f"{where}: a log range needs lo > 0, not {lo}; raise lo or drop log")
    return float(lo), float(hi), bool(rest), isinstance(lo, int) and isinstance(hi, int)


def parse_space(config: SweepConfig) -> tuple[ExperimentConfig, list[Dim]]:
    """The validated base and the search space's dimensions (ConfigError naming `search.space.<key>`)."""
    search = config.search
    assert search is not None
    axes = config.axes
    if axes.weights or axes.weighting or axes.sharing or axes.seed or axes.params:
        raise ConfigError("search and axes: a study proposes the points itself; remove axes (put fixed values "
                          "in set:) or remove search")
    base = _parse_point(config.base_dict(), "base")
    base_data = base.to_dict()
    tasks = base.task_list()
    dims: list[Dim] = []
    for key, value in search.space.items():
        where = f"search.space.{key}"
        if key == "weights":
            if not _uses_weights(base.weighting.name, "weighting"):
                raise ConfigError(f"{where}: the base's weighting {base.weighting.name} sets the weights itself, "
                                  "so no trial would train them; set weighting: manual in base or set:")
            if value == "simplex":
                if len(tasks) < 2:
                    raise ConfigError(f"{where}: a simplex needs 2 or more tasks, the base has {len(tasks)}")
                dims.append(Dim("weights", "simplex", tasks=tuple(tasks)))
                continue
            if not isinstance(value, dict) or not value:
                raise ConfigError(f"{where}: give simplex or a range per task, e.g. weights: "
                                  f"{{{tasks[0]}: [0.1, 2]}}")
            for task, r in value.items():
                if task not in tasks:
                    raise ConfigError(f"{where}.{task}: not a task of the base run; choose from: {', '.join(tasks)}")
                lo, hi, log, _ = _range(r, f"{where}.{task}")
                if lo < 0:
                    raise ConfigError(f"{where}.{task}: a loss weight cannot be negative; give lo ≥ 0, not {lo}")
                dims.append(Dim(f"weights.{task}", "float", lo, hi, log))
            continue
        if key.split(".")[0] == "weights":
            raise ConfigError(f"{where}: put per-task weight ranges under weights, e.g. weights: {{task: [lo, hi]}}")
        if isinstance(value, dict):
            if set(value) != {"choices"} or not isinstance(value["choices"], list) or not value["choices"]:
                raise ConfigError(f"{where}: give {{choices: [a, b, ...]}} (a non-empty list) or a range [lo, hi]")
            choices = value["choices"]
            if any(not (c is None or isinstance(c, (bool, int, float, str))) for c in choices):
                raise ConfigError(f"{where}.choices: each choice must be a number, a word or true/false")
            dim = Dim(key, "choice", choices=tuple(choices))
            probes = list(choices)
        else:
            lo, hi, log, whole = _range(value, where)
            dim = Dim(key, "int" if whole else "float", lo, hi, log)
            probes = [int(lo), int(hi)] if whole else [lo, hi]
        for v in probes:  # each end of the range (each choice) must make a valid run
            _parse_point(apply_overrides(base_data, [_assignment(key, v)]), f"{where} = {v!r}")
        dims.append(dim)
    return base, dims


def _point(config: SweepConfig, base: ExperimentConfig, dims: list[Dim], params: dict[str, Any],
           index: int, trial: dict[str, Any]) -> SweepPoint:
    """The sweep point (a validated run config) of one trial's params."""
    base_data = base.to_dict()
    tasks = base.task_list()
    values: dict[str, Any] = {"weighting": base.weighting.name, "sharing": base.sharing.name}
    overrides, weights = [], None
    for dim in dims:
        if dim.kind == "simplex":
            weights = simplex_point([params[f"simplex:{i}"] for i in range(1, len(dim.tasks))], dim.tasks)
        elif dim.key.startswith("weights."):
            weights = {**(weights or {}), dim.key.split(".", 1)[1]: float(params[dim.key])}
        else:
            values[dim.key] = params[dim.key]
            overrides.append(_assignment(dim.key, params[dim.key]))
    data = apply_overrides(base_data, overrides)
    if weights is not None:
        weights = {t: float(weights.get(t, base.weights.get(t, 1.0))) for t in tasks}
        data["weights"] = weights
        values["weights"] = weights
    cfg = _parse_point(data, f"search trial {trial['number']}")
    values["weighting"], values["sharing"] = cfg.weighting.name, cfg.sharing.name  # a key of the space may set them
    label = f"trial {trial['number']} " + _label(values, tasks)
    if config.name:
        cfg.name = f"{config.name} #{index}"
    return SweepPoint(index, label, values, cfg)


def objectives(base: ExperimentConfig) -> list[tuple[str, str, bool]]:
    """(task, primary metric, higher is better) per task of the base: the study's objectives."""
    from mtl_core.tasks import load_dataset

    ds = load_dataset(base.dataset.name, base.dataset.options, seed=base.seed)
    ds = ds.select_tasks(base.task_list(ds.task_names))
    return [(t, spec.metric, bool(spec.higher_is_better)) for t, spec in ds.tasks.items()]


def _sampler(optuna, search: SearchSpec, n_done: int):
    seed = search.seed + n_done  # a fresh sampler per round: seeded by where the study is
    if search.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=max(2, search.batch), seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=search.batch, multivariate=True,
                                      constant_liar=True)


def build_study(config: SweepConfig, base: ExperimentConfig, dims: list[Dim],
                trials: list[tuple[dict[str, Any], list[float] | None]]):
    """The study re-built from stored trials: (trial meta, validation values or None for a failed run)."""
    optuna = import_optuna()
    search = config.search
    assert search is not None
    directions = ["maximize" if hib else "minimize" for _, _, hib in objectives(base)]
    study = optuna.create_study(directions=directions, sampler=_sampler(optuna, search, len(trials)))
    dists: dict[str, Any] = {}
    for dim in dims:
        dists.update(dim.params())
    for meta, values in trials:
        params = meta.get("params") or {}
        if set(params) != set(dists):
            continue  # not a trial of this space (cannot happen unless the store was edited)
        state = optuna.trial.TrialState.COMPLETE if values is not None else optuna.trial.TrialState.FAIL
        study.add_trial(optuna.trial.create_trial(
            state=state, values=values, params=params, distributions=dists,
            system_attrs=meta.get("system_attrs") or {},
        ))
    return study, dists


def propose(config: SweepConfig, trials: list[tuple[dict[str, Any], list[float] | None]], n: int,
            start_index: int) -> list[tuple[SweepPoint, dict[str, Any]]]:
    """The study's next `n` points after `trials` (see `build_study`), indexed from
    `start_index`, each with what the store keeps beside its run (the point's meta and its trial)."""
    base, dims = parse_space(config)
    study, dists = build_study(config, base, dims, trials)
    out = []
    for k in range(n):
        trial = study.ask(dists)
        asked = study.get_trials(deepcopy=False)[trial.number]  # the sampler's attributes (NSGA-II's generation)
        meta = {"number": trial.number, "params": dict(trial.params), "system_attrs": _jsonable(asked.system_attrs)}
        point = _point(config, base, dims, trial.params, start_index + k, meta)
        out.append((point, {**point.meta(), "trial": meta}))
    return out


def _jsonable(attrs: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(attrs, default=str))


def first_round(config: SweepConfig) -> list[tuple[SweepPoint, dict[str, Any]]]:
    """The first `batch` points of a new study, with their store meta (`create_sweep`)."""
    import_optuna()
    assert config.search is not None
    return propose(config, [], min(config.search.batch, config.search.trials), 0)


def stored_trials(store, sweep_id: str, base: ExperimentConfig) -> list[tuple[dict[str, Any], list[float] | None]]:
    """Each stored trial of the sweep and its validation values (None: the run failed, was
    cancelled or interrupted, or a metric is not finite)."""
    from mtl_core.sweep import sweep_table

    names = [t for t, _, _ in objectives(base)]
    table = sweep_table(store, sweep_id)
    runs = store.sweep_runs(sweep_id)
    by_run = {r["run_id"]: r for _, r in table.points.iterrows()} if not table.points.empty else {}
    out = []
    for _, run in runs.iterrows():
        trial = (run["point"] or {}).get("trial")
        if not trial:
            continue
        row = by_run.get(run["id"])
        values = None
        if row is not None and row["status"] == "finished":
            vals = [float(row.get(f"val:{t}", math.nan)) for t in names]
            values = vals if all(math.isfinite(v) for v in vals) else None
        out.append((trial, values))
    return out


def add_points(store, sweep_id: str, points: list[tuple[SweepPoint, dict[str, Any]]]) -> list[str]:
    """Record `points` as new queued runs of sweep `sweep_id`; their ids."""
    return store.add_sweep_runs(sweep_id, [(p.config.to_dict(), meta) for p, meta in points])


def run_study(store, sweep_id: str, run_round: Callable[[], None], cancelled: Callable[[], bool]) -> int:
    """Drive a `search` sweep: train the queued round (`run_round`), tell, ask the next round,
    until `trials` points or `cancelled()`; the number of rounds run."""
    config = SweepConfig.parse(store.get_sweep(sweep_id)["config"])
    search = config.search
    assert search is not None
    base, _ = parse_space(config)
    rounds = 0
    while True:
        run_round()
        rounds += 1
        if cancelled():
            return rounds
        n = len(store.sweep_runs(sweep_id))
        if n >= search.trials:
            return rounds
        trials = stored_trials(store, sweep_id, base)
        add_points(store, sweep_id, propose(config, trials, min(search.batch, search.trials - n), n))
