"""Executors of a sweep: how its points (stored runs, `mtl_core.sweep`) get trained.

One interface, `run_sweep(sweep_id, executor=...)`, three ways:

- `local`: a pool of worker processes, at most `workers` at once (default: one per core).
  Each point is the same `python -m mtl_core.worker RUN_ID` as a single run, so cancel,
  `kill -9` and a dead process behave exactly as for one run: killing one worker marks only
  its point `interrupted` (the store's `mark_interrupted`), the others train on.
- `batched`: in this process. Points that differ only in their loss weights and seeds train
  together as one stacked ensemble (`mtl_core.ensemble.train_ensemble`, the execution of the
  baselines, issue 9): K models, one optimiser over the stack, one batched matrix product per
  layer. A point of `n_seeds` > 1 is n members (seed, seed + 1, ...), aggregated as
  `run_experiment` does; each member learns its own seed's draw of the data
  (`load_dataset(seed=...)`), as the engine would. Each member is the run `engine.train`
  would train, up to float rounding of the batched kernels (`torch.baddbmm` vs `nn.Linear`:
  ~1e-6 relative after hundreds of Adam steps, `tests/test_sweep.py`). Points the ensemble
  cannot hold (another sharing mode than `hard`, a gradient-based or adaptive weighting,
  dropout, token data, draws of different shapes) train one by one here, with a note in the
  result's `execution`.
- `ray` (the `[cluster]` extra, Moritz et al., 2018): each point is a Ray task, on a local
  Ray started on demand (`ray.init(num_cpus=workers)`) or a cluster (`address="ray://host:10001"`
  or `"auto"` on a cluster node). The task trains with an in-memory baseline cache filled
  from the store and sends back its result, every curve event and any baseline it trained;
  the driver alone writes the store. A Ray worker or node that dies marks only its points
  `interrupted`. Curves are live: a task sends its events at most every `LIVE_S` through a
  Ray queue (an actor, `ray.util.queue.Queue`) that the driver drains into the store while
  the point trains, so the Sweep page's grid and a point's curves fill in as on one machine.

Baselines are trained once per distinct (data, task, model, budget, seed) and reused
through the store's baseline cache (`experiment.baseline_key`): a point waits while another
point in flight is training a baseline it needs, so concurrent points never train the same one.

A sweep with a `search` (the `[tune]` extra, `mtl_core.tune`) runs in rounds: the executor
trains the study's queued round, the driver tells the study and stores the next round, until
the study's `trials` or a cancel of the sweep (which stops the asking).

The driver (`mtl-lab sweep`, or `start_sweep` in the background) records its pid on the
sweep: its queued points stay queued while it lives, and become `interrupted` if it dies.
`cancel_sweep` (`mtl-lab cancel SWEEP_ID`) stops a sweep as a whole. Cancelling one point
of a `batched` or `ray` sweep (`mtl-lab cancel RUN_ID`) stops the whole sweep too: its
points live in the driver's process, which that cancel signals; a `local` point is its own
process and is cancelled alone.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mtl_core import store as store_module
from mtl_core.errors import (
    ConfigError,
    MTLLabError,
    RunCancelled,
    StoreError,
    TrainingError,
)
from mtl_core.sink import MultiSink, RecordingSink, Sink
from mtl_core.store import TERMINAL_STATUSES, RunStore

log = logging.getLogger(__name__)

EXECUTOR_NAMES = ("local", "batched", "ray")
POLL_S = 0.3


def default_workers() -> int:
    """One point per usable core."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


@dataclass
class SweepOutcome:
    """How a sweep's execution ended: its status and the status of each run."""

    sweep_id: str
    status: str
    runs: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def run_sweep(
    sweep_id: str, *, executor: str = "local", workers: int | None = None, address: str | None = None,
    store_path: str | Path | None = None, on_update: Callable[[dict[str, int]], None] | None = None,
    ray_task: Callable[..., dict[str, Any]] | None = None,
) -> SweepOutcome:
    """Train the queued points of sweep `sweep_id` here (this process is the driver); return
    when every point has ended. `on_update(counts)` is called when a point's status changes.
    `ray_task` replaces the Ray task's body (tests: a worker that dies)."""
    if executor not in EXECUTOR_NAMES:
        raise ConfigError(f"executor: {executor!r} is unknown; choose one of: {', '.join(EXECUTOR_NAMES)}")
    impl = {"local": LocalExecutor, "batched": BatchedExecutor, "ray": RayExecutor}[executor]
    kwargs: dict[str, Any] = {"address": address, "task": ray_task} if executor == "ray" else {}
    started = time.perf_counter()
    with RunStore(store_path) as store:
        store.set_sweep_driver(sweep_id, os.getpid())
        search = (store.get_sweep(sweep_id)["config"] or {}).get("search")
        previous = signal.getsignal(signal.SIGTERM)
        in_main = _in_main_thread()
        if in_main:  # SIGTERM to the driver (`mtl-lab cancel SWEEP_ID` on a dead-looking one) = cancel
            signal.signal(signal.SIGTERM, lambda signum, frame: _sigterm(store, sweep_id))
        try:
            if search:  # a study proposes the points: rounds of ask -> run -> tell (mtl_core.tune)
                from mtl_core.tune import run_study

                run_study(store, sweep_id,
                          lambda: impl(store, sweep_id, workers=workers, on_update=on_update, **kwargs).run(),
                          cancelled=lambda: sweep_id in _CANCEL_FLAG or store.sweep_cancel_requested(sweep_id))
            else:
                impl(store, sweep_id, workers=workers, on_update=on_update, **kwargs).run()
        finally:
            if in_main:
                signal.signal(signal.SIGTERM, previous)
        store.mark_interrupted()
        runs = store.sweep_runs(sweep_id)
        sweep = store.get_sweep(sweep_id)
    return SweepOutcome(sweep_id, sweep["status"], dict(zip(runs["id"], runs["status"])),
                        time.perf_counter() - started)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _sigterm(store: RunStore, sweep_id: str) -> None:
    store_module.request_stop()  # a batched ensemble training here stops at its next step
    _CANCEL_FLAG.add(sweep_id)


_CANCEL_FLAG: set[str] = set()  # sweeps whose driver got SIGTERM (a signal handler must not write SQLite)


# ---- baselines: trained once, reused ----------------------------------------------------------

def baseline_keys(config: dict[str, Any]) -> set[str]:
    """The baseline-cache keys a point needs (every task, every one of its seeds)."""
    from mtl_core.config import ExperimentConfig
    from mtl_core.experiment import baseline_key

    cfg = ExperimentConfig.parse(config)
    if not cfg.baselines:
        return set()
    keys = set()
    for k in range(cfg.n_seeds):
        c = cfg if k == 0 else cfg.model_copy(update={"seed": cfg.seed + k})
        keys.update(baseline_key(c, t) for t in c.task_list())
    return keys


class _Scheduler:
    """The queued points of a sweep, and which may start now without training a baseline twice."""

    def __init__(self, store: RunStore, sweep_id: str) -> None:
        self.store, self.sweep_id = store, sweep_id
        runs = store.sweep_runs(sweep_id)
        queued = runs[runs["status"] == "queued"]
        self.pending: list[tuple[str, dict[str, Any]]] = list(zip(queued["id"], queued["config"]))
        self.keys = {rid: baseline_keys(cfg) for rid, cfg in self.pending}
        self.in_flight: dict[str, set[str]] = {}
        self._cancelled, self._polled = False, float("-inf")

    def next_ready(self) -> tuple[str, dict[str, Any]] | None:
        """The first pending point whose missing baselines no point in flight is training."""
        busy = set().union(*self.in_flight.values()) if self.in_flight else set()
        for i, (rid, cfg) in enumerate(self.pending):
            missing = {k for k in self.keys[rid] if self.store.get_baseline(k) is None}
            if not (missing & busy):
                self.in_flight[rid] = missing
                return self.pending.pop(i)
        return None

    def done(self, rid: str) -> None:
        self.in_flight.pop(rid, None)

    def cancel_pending(self) -> None:
        for rid, _ in self.pending:
            try:
                self.store.cancel_run(rid)
            except StoreError as exc:
                log.warning("could not record the cancel of %s: %s", rid, exc)
        self.pending = []

    def cancelled(self) -> bool:
        """Whether the sweep was asked to stop (the store is read at most every POLL_S: a
        batched ensemble asks before every step)."""
        if self.sweep_id in _CANCEL_FLAG or self._cancelled:
            return True
        now = time.monotonic()
        if now - self._polled >= POLL_S:
            self._polled = now
            self._cancelled = self.store.sweep_cancel_requested(self.sweep_id)
        return self._cancelled


class Executor:
    """What every executor has: the store, the sweep, a worker budget and a status callback."""

    def __init__(self, store: RunStore, sweep_id: str, *, workers: int | None = None,
                 on_update: Callable[[dict[str, int]], None] | None = None) -> None:
        self.store, self.sweep_id = store, sweep_id
        self.workers = workers or default_workers()
        self.on_update = on_update
        self._last: dict[str, int] | None = None

    def notify(self) -> None:
        if self.on_update is None:
            return
        counts = self.store.get_sweep(self.sweep_id)["counts"]
        if counts != self._last:
            self._last = counts
            self.on_update(counts)

    def run(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


# ---- local: a pool of worker processes ---------------------------------------------------------

def start_point(store: RunStore, run_id: str) -> int:
    """Start the worker of a queued run (as `jobs.start` does for a new one: forked from the
    fork server when one is kept, else `python -m mtl_core.worker RUN_ID`); return its pid."""
    from mtl_core import jobs

    return jobs.start_queued(store, run_id)


class LocalExecutor(Executor):
    """At most `workers` worker processes at once, each one point, forked from a fork server
    (`mtl_core.jobs.keep_warm`)."""

    def run(self) -> None:
        from mtl_core import jobs

        # The points' processes are forked from one server that imported torch once (a
        # caller that keeps one already, like the dashboard, keeps it afterwards too).
        kept = jobs.keeping_warm()
        if not kept and jobs.keep_warm():
            jobs.fork_server_ready(timeout=120.0)  # its imports, as one cold point's; then none
        try:
            self._run_points()
        finally:
            if not kept:
                jobs.keep_warm(False)

    def _run_points(self) -> None:
        from mtl_core import jobs

        sched = _Scheduler(self.store, self.sweep_id)
        signalled: set[str] = set()
        while sched.pending or sched.in_flight:
            self.store.mark_interrupted()
            if sched.cancelled():
                sched.cancel_pending()
                for rid in set(sched.in_flight) - signalled:
                    jobs.cancel(rid, store_path=self.store.path)
                    signalled.add(rid)
            for rid in list(sched.in_flight):
                if self.store.get_run(rid)["status"] in TERMINAL_STATUSES:
                    sched.done(rid)
            while len(sched.in_flight) < self.workers and not sched.cancelled():
                point = sched.next_ready()
                if point is None:
                    break
                try:
                    start_point(self.store, point[0])
                except StoreError as exc:
                    log.error("point %s could not start: %s", point[0], exc)
                    sched.done(point[0])
            self.notify()
            if sched.pending or sched.in_flight:
                time.sleep(POLL_S)
        self.notify()


# ---- batched: stacked ensembles in this process -------------------------------------------------

def ensemble_group_key(config: dict[str, Any]) -> str:
    """Points with the same key differ only in loss weights, seed (and name): one ensemble."""
    rest = {k: v for k, v in config.items() if k not in ("weights", "seed", "name")}
    return json.dumps(rest, sort_keys=True)


class _RouteSink(Sink):
    """Sends each ensemble member's events to its own run's sink, under its phase there
    ("mtl", or "mtl@<seed>" for a point's extra seed): `routes[member phase] = (sink, phase)`."""

    def __init__(self, routes: dict[str, tuple[Sink, str]], stop: Callable[[], bool]) -> None:
        self.routes, self.stop = routes, stop

    def on_start(self, phase, info):
        sink, to = self.routes[phase]
        sink.on_start(to, info)

    def on_train(self, phase, step, losses, total, weights, extra):
        sink, to = self.routes[phase]
        sink.on_train(to, step, losses, total, weights, extra)

    def on_eval(self, phase, step, split, metrics):
        sink, to = self.routes[phase]
        sink.on_eval(to, step, split, metrics)

    def on_interference(self, phase, step, snapshot):
        sink, to = self.routes[phase]
        sink.on_interference(to, step, snapshot)

    def on_progress(self, phase, step, total_steps, samples_per_s):
        sink, to = self.routes[phase]
        sink.on_progress(to, step, total_steps, samples_per_s)

    def on_end(self, phase, status, error=None):
        sink, to = self.routes[phase]
        sink.on_end(to, status, error)

    def should_stop(self) -> bool:
        return self.stop()


class BatchedExecutor(Executor):
    """Weight-only siblings as one stacked ensemble; everything else one by one, here."""

    def run(self) -> None:
        from mtl_core.worker import execute

        sched = _Scheduler(self.store, self.sweep_id)
        groups: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for rid, cfg in sched.pending:
            groups.setdefault(ensemble_group_key(cfg), []).append((rid, cfg))
        sched.pending = []
        for group in groups.values():
            if sched.cancelled():
                sched.pending = list(group)
                sched.cancel_pending()
                continue
            units = _seed_units(group)  # (run id, k, config of seed k): a member each
            reason, draws = self._ensemble_refusal(units)
            if reason is None:
                self._train_ensemble(units, draws, sched)
            else:
                for rid, _ in group:
                    if sched.cancelled():
                        sched.pending = [(rid, {})]
                        sched.cancel_pending()
                        continue
                    status = execute(self.store, rid)
                    if status == "cancelled":  # Ctrl-C, SIGTERM or a cancel: this process stops the sweep
                        _CANCEL_FLAG.add(self.sweep_id)
                    self._note(rid, status, {"executor": "batched", "ensemble_size": 1, "note": reason})
                    self.notify()
            self.notify()

    def _note(self, rid: str, status: str, execution: dict[str, Any]) -> None:
        if status != "finished":
            return
        result = self.store.result(rid)
        if result is not None:
            result["execution"] = execution
            self.store.save_result(rid, result)

    def _ensemble_refusal(self, units: list[tuple[str, int, Any]]) -> tuple[str | None, dict[int, Any]]:
        """Why this group's members (`_seed_units`) train one by one (None: as one ensemble), and
        each seed's draw of the data it loaded to check (for the ensemble to train on)."""
        from mtl_core.ensemble import check_supported

        cfg = units[0][2]
        if cfg.amp not in ("auto", "off") or cfg.compile:
            return "amp / compile are not supported by the stacked ensemble", {}
        draws = _draws(units)
        try:
            check_supported(cfg, [draws[c.seed] for _, _, c in units], _members(units),
                            sharing=cfg.sharing.name, baseline=False)
        except ConfigError as exc:
            return str(exc), {}
        if len(units) < 2:
            return "alone in its group (no other point differs only in its weights or seed)", {}
        return None, draws

    def _train_ensemble(self, units: list[tuple[str, int, Any]], draws: dict[int, Any], sched: _Scheduler) -> None:
        from mtl_core import threads as thread_budget
        from mtl_core.ensemble import train_ensemble
        from mtl_core.experiment import (
            _aggregate_seeds,
            _baselines,
            _finite,
            build_results,
            mtl_score,
        )
        from mtl_core.phases import Phase
        from mtl_core.worker import describe_exception

        cfg0 = units[0][2]
        configs = {rid: cfg for rid, k, cfg in units if k == 0}  # each point's own config
        ids = list(configs)
        thread_budget.apply_budget(cfg0, store=self.store, run_id=ids[0])
        threads_used = thread_budget.record_for(cfg0)
        pid = os.getpid()
        for rid in ids:
            self.store.set_status(rid, "running", pid=pid, device=cfg0.device)
        self.notify()
        sinks = {rid: store_module.StoreSink(self.store, rid) for rid in ids}
        recorders = {(rid, k): RecordingSink() for rid, k, _ in units}
        ended: set[str] = set()
        try:
            # As run_experiment: each seed's baselines (trained, or replayed from the cache when
            # another point of the sweep trained them), its extra seeds' phases tagged "@seed".
            baselines = {(rid, k): (_baselines(cfg, draws[cfg.seed], sinks[rid], self.store, cfg.seed if k else None)
                                    if cfg.baselines else {}) for rid, k, cfg in units}
            members = _members(units)
            routes = {m.phase: (MultiSink(sinks[rid], recorders[(rid, k)]), Phase.mtl(cfg.seed if k else None).format())
                      for m, (rid, k, cfg) in zip(members, units)}
            stop = lambda: sched.cancelled() or store_module.stop_requested()
            router = _RouteSink(routes, stop)
            er = train_ensemble(cfg0, [draws[cfg.seed] for _, _, cfg in units], members, router,
                                scores=[mtl_score(draws[cfg.seed], baselines[(rid, k)]) for rid, k, cfg in units])
            for rid in ids:
                runs, failure = [], None
                for m, (r, k, cfg) in zip(members, units):
                    if r != rid:
                        continue
                    try:
                        mtl = er.result(m.phase)
                    except TrainingError as exc:
                        failure = failure or str(exc)
                        continue
                    mtl.phase = routes[m.phase][1]
                    runs.append((draws[cfg.seed], mtl, baselines[(rid, k)], recorders[(rid, k)]))
                sinks[rid].flush()
                if failure is not None:
                    self.store.fail_run(rid, failure)
                    ended.add(rid)
                    continue
                ds, mtl, base, recorder = runs[0]
                result = build_results(configs[rid], ds, mtl, base, recorder, run_id=rid)
                result["threads"] = threads_used
                if base:
                    result = _finite(_aggregate_seeds(result, runs))
                result["execution"] = {"executor": "batched", "ensemble_size": len(members)}
                self.store.finish_run(rid, result)
                ended.add(rid)
        except (RunCancelled, KeyboardInterrupt):
            for rid in ids:
                if rid not in ended:
                    sinks[rid].flush()
                    self.store.cancel_run(rid)
            _CANCEL_FLAG.add(self.sweep_id)  # the rest of the sweep is not started
        except Exception as exc:  # one line per run, the traceback in the driver's log
            log.exception("ensemble of %s failed", ", ".join(ids))
            message = exc if isinstance(exc, MTLLabError) else describe_exception(exc)
            for rid in ids:
                if rid not in ended:
                    try:
                        sinks[rid].flush()
                    except StoreError:
                        pass
                    self.store.fail_run(rid, str(message))


def _seed_units(group: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, int, Any]]:
    """The ensemble members of a group of points: (run id, k, the config of its seed k) for
    k < n_seeds, as `run_experiment` trains them (seed, seed + 1, ...)."""
    from mtl_core.config import ExperimentConfig

    units = []
    for rid, raw in group:
        cfg = ExperimentConfig.parse(raw)
        for k in range(cfg.n_seeds):
            units.append((rid, k, cfg if k == 0 else cfg.model_copy(update={"seed": cfg.seed + k})))
    return units


def _draws(units: list[tuple[str, int, Any]]) -> dict[int, Any]:
    """Each seed's draw of the data (the engine draws a run's data from its seed), its tasks selected."""
    from mtl_core.tasks import load_dataset

    draws = {}
    for _, _, cfg in units:
        if cfg.seed not in draws:
            ds = load_dataset(cfg.dataset.name, cfg.dataset.options, seed=cfg.seed)
            draws[cfg.seed] = ds.select_tasks(cfg.task_list(ds.task_names))
    return draws


def _members(units: list[tuple[str, int, Any]]) -> list[Any]:
    """One ensemble member per unit: its seed, the point's tasks and loss weights."""
    from mtl_core.ensemble import Member

    members = []
    for i, (_, _, cfg) in enumerate(units):
        tasks = tuple(cfg.task_list())
        members.append(Member(f"mtl#{i}", cfg.seed, tasks, tuple(cfg.task_weights()[t] for t in tasks)))
    return members


# ---- ray: each point a Ray task ------------------------------------------------------------------

LIVE_S = 1.0  # a Ray task sends its new events to the driver at most this often


class _EventLog(Sink):
    """Every sink event, kept to be replayed by the driver into the run's StoreSink.

    With `live = (queue, run_id)` the events are sent on as they come, at most every
    `every_s` (at a progress, evaluation or end event), as one `(run_id, events)` item of
    the Ray queue; `events` keeps only those not sent yet, which the task returns.
    """

    def __init__(self, live: tuple[Any, str] | None = None, every_s: float = LIVE_S) -> None:
        self.events: list[tuple[str, tuple[Any, ...]]] = []
        self.live, self.every_s = live, every_s
        self._sent = time.monotonic()

    def _send(self, force: bool = False) -> None:
        if self.live is None or not self.events or (not force and time.monotonic() - self._sent < self.every_s):
            return
        queue, run_id = self.live
        try:
            queue.put((run_id, self.events), timeout=10)
        except Exception:  # the driver's queue is gone or full: the events go back with the result
            log.warning("could not send %d live events of %s to the driver", len(self.events), run_id, exc_info=True)
            self.live = None
            return
        self.events, self._sent = [], time.monotonic()

    def on_start(self, *args):
        self.events.append(("on_start", args))

    def on_train(self, *args):
        self.events.append(("on_train", args))

    def on_eval(self, *args):
        self.events.append(("on_eval", args))
        self._send()

    def on_interference(self, *args):
        self.events.append(("on_interference", args))

    def on_progress(self, *args):
        self.events.append(("on_progress", args))
        self._send()

    def on_end(self, *args):
        self.events.append(("on_end", args))
        self._send(force=True)


def ray_point(config: dict[str, Any], cached: dict[str, dict[str, Any]],
              live: tuple[Any, str] | None = None) -> dict[str, Any]:
    """The body of one Ray task: train `config` with the baselines in `cached`; return the
    result (or the error), the events not yet sent, the baselines it trained, and where it
    ran. `live = (queue, run_id)`: send the events to the driver as they come (`_EventLog`)."""
    import socket

    from mtl_core import threads as thread_budget
    from mtl_core.config import ExperimentConfig
    from mtl_core.experiment import MemoryBaselineCache, run_experiment
    from mtl_core.worker import describe_exception

    events = _EventLog(live)
    cache = MemoryBaselineCache()
    cache.data.update(cached)
    where = {"pid": os.getpid(), "host": socket.gethostname()}
    try:
        cfg = ExperimentConfig.parse(config)
        thread_budget.apply_budget(cfg)
        result = run_experiment(cfg, sink=events, baseline_cache=cache)
    except MTLLabError as exc:
        return {"error": str(exc), "events": events.events, "baselines": {}, **where}
    except Exception as exc:
        return {"error": describe_exception(exc), "events": events.events, "baselines": {}, **where}
    trained = {k: v for k, v in cache.data.items() if k not in cached}
    return {"result": result, "events": events.events, "baselines": trained, **where}


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "executor 'ray' needs Ray: pip install 'mtl-lab[cluster]' (or pip install 'ray>=2.9'); "
            "or choose --executor local"
        ) from None
    return ray


class RayExecutor(Executor):
    """Each point a Ray task (`num_cpus=1`, no retries); the driver writes the store."""

    def __init__(self, store: RunStore, sweep_id: str, *, workers: int | None = None,
                 on_update: Callable[[dict[str, int]], None] | None = None, address: str | None = None,
                 task: Callable[..., dict[str, Any]] | None = None) -> None:
        super().__init__(store, sweep_id, workers=workers, on_update=on_update)
        self.address = address
        self.task = task or ray_point

    def _init(self):
        ray = _import_ray()
        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=False)
        return ray

    def run(self) -> None:
        ray = self._init()
        if self.address:  # a cluster: as many points at once as it has CPUs
            self.workers = max(1, int(ray.cluster_resources().get("CPU", self.workers)))
        from ray.util.queue import Queue

        remote = ray.remote(num_cpus=1, max_retries=0)(self.task)
        sched = _Scheduler(self.store, self.sweep_id)
        in_flight: dict[Any, str] = {}
        self._sinks: dict[str, store_module.StoreSink] = {}
        queue = Queue(actor_options={"num_cpus": 0})  # the tasks' live events, drained here
        pid = os.getpid()
        try:
            while sched.pending or in_flight:
                if sched.cancelled():
                    sched.cancel_pending()
                    for ref in in_flight:
                        ray.cancel(ref, force=True)
                while len(in_flight) < self.workers and not sched.cancelled():
                    point = sched.next_ready()
                    if point is None:
                        break
                    rid, cfg = point
                    cached = {k: v for k in baseline_keys(cfg) if (v := self.store.get_baseline(k)) is not None}
                    # The run lives with the driver: if the driver dies, its points end interrupted.
                    self.store.set_status(rid, "running", pid=pid, device=str(cfg.get("device") or "auto"))
                    self._sinks[rid] = store_module.StoreSink(self.store, rid)
                    in_flight[remote.remote(cfg, cached, (queue, rid))] = rid
                self.notify()
                if not in_flight:
                    if sched.pending:
                        time.sleep(POLL_S)
                    continue
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=POLL_S)
                self._drain(queue)  # before a ready task's own events: they come after these
                for ref in ready:
                    rid = in_flight.pop(ref)
                    self._collect(ray, ref, rid)
                    self._sinks.pop(rid, None)
                    sched.done(rid)
            self.notify()
        finally:
            ray.kill(queue.actor)

    def _drain(self, queue) -> None:
        """Write the live events the tasks sent since the last look into their runs."""
        while not queue.empty():
            for rid, events in queue.get_nowait_batch(queue.qsize()):
                sink = self._sinks.get(rid)
                if sink is None:  # a run already collected (cannot happen: a task sends before it returns)
                    continue
                for name, args in events:
                    getattr(sink, name)(*args)
                sink.flush()

    def _collect(self, ray, ref, rid: str) -> None:
        """Write one finished task's remaining events, baselines and end into the store."""
        sink = self._sinks.get(rid) or store_module.StoreSink(self.store, rid)
        try:
            out = ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            sink.flush()
            self.store.cancel_run(rid)
            return
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                ray.exceptions.ObjectLostError, ray.exceptions.RaySystemError) as exc:
            self._interrupted(rid, f"its Ray worker or node died ({type(exc).__name__}: {str(exc).splitlines()[0]})")
            return
        except ray.exceptions.RayError as exc:
            if self.store.sweep_cancel_requested(self.sweep_id):
                self.store.cancel_run(rid)
            else:
                self._interrupted(rid, f"its Ray task ended without a result ({type(exc).__name__}: "
                                       f"{str(exc).splitlines()[0] if str(exc) else ''})")
            return
        for name, args in out.get("events", []):
            getattr(sink, name)(*args)
        sink.flush()
        for key, value in (out.get("baselines") or {}).items():
            self.store.put_baseline(key, value)
        if "result" in out:
            result = out["result"]
            result["run_id"] = rid
            result["execution"] = {"executor": "ray", "host": out.get("host"), "pid": out.get("pid")}
            self.store.finish_run(rid, result)
        else:
            self.store.fail_run(rid, out.get("error") or "the Ray task failed without a message")

    def _interrupted(self, rid: str, why: str) -> None:
        self.store.interrupt_run(rid, why)


# ---- a sweep in the background, and cancelling one ---------------------------------------------

def record_sweep(store: RunStore | None, config: Any, *, executor: str | None = None) -> str:
    """Store sweep `config` and its points (`sweep.create_sweep`): a grid's every point, or a
    study's first round (`mtl_core.tune`, whose driver asks for the rest); the sweep id."""
    from mtl_core.sweep import create_sweep

    if config.search is not None:
        from mtl_core.tune import first_round

        points = [(p.config.to_dict(), meta) for p, meta in first_round(config)]
        return create_sweep(store, config, executor=executor, points=points)
    return create_sweep(store, config, executor=executor)


def start_sweep(
    config: Any, *, executor: str | None = None, workers: int | None = None,
    store_path: str | Path | None = None,
) -> str:
    """Validate and record a sweep (`mtl_core.sweep.SweepConfig`), start its driver in a
    background process (`python -m mtl_core.executors SWEEP_ID`), return the sweep id at once.

    The driver outlives its caller (a new session, as `jobs.start`); its log is
    `<store folder>/logs/<sweep_id>.log`.
    """
    from mtl_core import jobs
    from mtl_core.sweep import SweepConfig

    if not isinstance(config, SweepConfig):
        config = SweepConfig.parse(dict(config))
    executor = executor or config.executor
    workers = workers or config.workers
    with RunStore(store_path) as store:
        sweep_id = record_sweep(store, config, executor=executor)
        argv = [sys.executable, "-m", "mtl_core.executors", sweep_id, "--executor", executor]
        if workers:
            argv += ["--workers", str(workers)]
        if config.address:
            argv += ["--address", config.address]
        try:
            proc = jobs.spawn(sweep_id, argv, store_path=store.path)
        except OSError as exc:
            store.request_cancel_sweep(sweep_id)
            for rid in store.sweep_runs(sweep_id)["id"]:
                store.fail_run(rid, f"the sweep's driver could not start: {exc}")
            raise StoreError(f"could not start the driver of sweep {sweep_id}: {exc}") from None
        store.set_sweep_driver(sweep_id, proc.pid)
    return sweep_id


def cancel_sweep(sweep_id: str, *, store_path: str | Path | None = None) -> int:
    """Ask sweep `sweep_id` to stop as a whole: nothing more is launched, running points end
    `cancelled` at their next step, queued ones at once. Returns how many runs were active."""
    from mtl_core import jobs

    with RunStore(store_path) as store:
        store.mark_interrupted()
        active = store.request_cancel_sweep(sweep_id)
        sweep = store.get_sweep(sweep_id)
        for rid in active:
            run = store.get_run(rid)
            own_process = run["pid"] is not None and run["pid"] != sweep["driver_pid"]
            if own_process:  # a local worker: as `mtl-lab cancel RUN_ID`
                jobs.cancel(rid, store_path=store.path)
            elif run["status"] == "queued" and (not sweep["driver_alive"] or sweep["driver_pid"] == os.getpid()):
                store.cancel_run(rid)  # no driver will ever start it (or the driver is us, stopping)
        store.mark_interrupted()
    return len(active)


def main(argv: list[str] | None = None) -> int:
    """`python -m mtl_core.executors SWEEP_ID [--executor E] [--workers N] [--address A]`: the driver."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m mtl_core.executors")
    p.add_argument("sweep_id")
    p.add_argument("--executor", choices=EXECUTOR_NAMES, default="local")
    p.add_argument("--workers", type=int)
    p.add_argument("--address")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        outcome = run_sweep(args.sweep_id, executor=args.executor, workers=args.workers, address=args.address,
                            store_path=os.environ.get("MTL_LAB_DB") or None)
    except MTLLabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log.info("sweep %s %s in %.1f s", outcome.sweep_id, outcome.status, outcome.seconds)
    return 0 if outcome.status in ("finished", "cancelled") else 1


if __name__ == "__main__":
    sys.exit(main())
