"""`mtl-lab` / `python -m mtl_core`: the engine from a terminal.

    mtl-lab list datasets|sharing|weighting [--json]
    mtl-lab run --config FILE [--set key=value ...] [--json OUT] [--background]
    mtl-lab transfer --config FILE [--set key=value ...] [--json OUT] [--background]
    mtl-lab runs [--json]            mtl-lab show RUN_ID [--json]
    mtl-lab export RUN_ID --format csv|json [--out PATH]
    mtl-lab delete RUN_ID            mtl-lab cancel RUN_ID
    mtl-lab pause RUN_ID             mtl-lab resume RUN_ID         mtl-lab step RUN_ID [--steps N]
    mtl-lab sweep --config FILE [--executor local|batched|ray] [--workers N] [--background]
    mtl-lab sweeps [--json]          (show / export / cancel / delete take a sweep id too)
    mtl-lab dashboard [--port N] [--host H] [--data-dir DIR ...]

Every error a user can cause ends as one line `error: ...` on stderr (exit code 2; 1 for
a fault of the machine, such as an unreadable disk), never as a traceback.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import math
import os
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any, Callable

from mtl_core import launcher
from mtl_core.errors import ConfigError, MTLLabError, OutputError, StoreError

log = logging.getLogger("mtl_core")


def _registries() -> dict[str, Any]:
    from mtl_core.models import SHARING
    from mtl_core.tasks import DATASETS
    from mtl_core.weighting import WEIGHTING

    return {"datasets": DATASETS, "sharing": SHARING, "weighting": WEIGHTING}


def cmd_list(args: argparse.Namespace) -> int:
    registry = _registries()[args.what]
    entries = [e.describe() for e in registry.entries()]
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    for e in entries:
        print(f"{e['name']:<16} {e['description']}")
        if e.get("paper"):
            print(f"{'':<16} paper: {e['paper']}")
        for opt, info in e["options"].items():
            print(f"{'':<16}   {opt} = {info['default']!r}  {info['description']}")
    return 0


def check_config_file(path: str | Path) -> None:
    """Refuse a `--config` that is a folder, unreadable, or binary, naming the file
    (before `from_file` meets it as a decoding error)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder; give the path of a YAML or JSON file in it")
    if not path.exists():
        return  # from_file says it does not exist
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path} ({exc.strerror or exc}); check its permissions") from None
    if b"\0" in data[:65536]:
        raise ConfigError(f"config file {path} is a binary file, not YAML or JSON text; give the experiment's "
                          ".yaml or .json file")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start} cannot be read); save it "
                          "as UTF-8 YAML or JSON") from None


def load_config(args: argparse.Namespace):
    from mtl_core.config import ExperimentConfig, apply_overrides

    if args.config:
        check_config_file(args.config)
        return ExperimentConfig.from_file(args.config, args.set)
    return ExperimentConfig.parse(apply_overrides({}, args.set))


def _os_reason(exc: OSError) -> str:
    return "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))


def prepare_output(path: str | Path, *, what: str) -> Path:
    """Check, before any work, that `what` can be written to `path`; a missing folder is
    created. Raises OutputError naming the path."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise OutputError(f"{what} path {path} is a folder; give a file name, e.g. {path / 'results.json'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = next((p for p in (path.parent, *path.parent.parents) if p.exists()), None)
        reason = f"{blocker} is a file, not a folder" if blocker and not blocker.is_dir() else _os_reason(exc)
        raise OutputError(
            f"cannot create the folder {path.parent} for {what} ({reason}); choose another path"
        ) from None
    if not os.access(path.parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise OutputError(f"cannot write {what} to {path}: permission denied; choose a path you can write to")
    return path


def write_output(path: Path, text: str, *, what: str) -> None:
    """Write `text` to `path`, or raise OutputError naming it and why."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"cannot write {what} to {path} ({_os_reason(exc)})") from None


def cmd_run(args: argparse.Namespace) -> int:
    config = load_config(args)
    json_out = prepare_output(args.json, what="the results JSON") if args.json else None
    return _start(config, args, name=args.name, json_out=json_out, text=format_result)


def _start(config: Any, args: argparse.Namespace, *, name: str | None, json_out: Path | None,
           text: Callable[[dict[str, Any]], str]) -> int:
    """Train a validated config (an experiment or a transfer run) as a stored run: in a
    background process (`--background`: print its id) or here, through the lifecycle every
    run has (`store.create_run` + `worker.execute`), then print `text(result)`."""
    from mtl_core import jobs
    from mtl_core.phases import phases
    from mtl_core.progress import TqdmSink
    from mtl_core.store import RunStore, request_stop
    from mtl_core.worker import execute

    if args.background:
        print(jobs.start(config, name=name))
        return 0
    # `mtl-lab cancel` (SIGTERM) stops this foreground run cleanly between two steps.
    signal.signal(signal.SIGTERM, lambda signum, frame: request_stop())
    with RunStore() as store:
        run_id = store.create_run(config.to_dict(), name=name)
        print(f"run {run_id}", file=sys.stderr)
        status = execute(store, run_id, extra_sink=TqdmSink(disable=args.quiet, phases=phases(config)))
        run = store.get_run(run_id)
        result = store.result(run_id)
    if result is not None and json_out is not None:
        _write_run_json(json_out, result, run_id, status)
    if status != "finished":
        print(f"run {run_id} {status}: {run.get('error') or ''}", file=sys.stderr)
        return 1 if status == "failed" else 130
    print(text(result))
    if json_out is not None:
        print(f"results written to {json_out}", file=sys.stderr)
    return 0


def _write_run_json(path: Path, result: dict[str, Any], run_id: str, status: str) -> None:
    """The results JSON of a stored run; if it cannot be written, say that the run is safe."""
    try:
        write_output(path, json.dumps(result, indent=2), what="the results JSON")
    except OutputError as exc:
        raise OutputError(
            f"{exc}. Run {run_id} ({status}) is stored all the same; export it with "
            f"`mtl-lab export {run_id} --format json --out FILE`"
        ) from None


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _seeds(result: dict[str, Any]) -> list[Any]:
    """The seeds a result averages over: its `seeds` list, else as many as its rows say."""
    seeds = result.get("seeds")
    if isinstance(seeds, list) and seeds:
        return seeds
    n = max((int(r.get("n_seeds") or 1) for r in result.get("tasks") or [] if isinstance(r, dict)), default=1)
    first = result.get("seed") if isinstance(result.get("seed"), int) else 0
    return [first + k for k in range(n)]


def _pm(mean: Any, std: Any) -> str:
    """"mean ± std" over seeds ("mean" alone where the std is missing)."""
    if std is None or (isinstance(std, float) and math.isnan(std)) or _fmt(mean) == "—":
        return _fmt(mean)
    return f"{_fmt(mean)} ± {std:.2g}"


def _span(low: Any, high: Any, fmt: str = "+.3g", unit: str = "") -> str:
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (low, high)):
        return "—"
    return f"{low:{fmt}}{unit} to {high:{fmt}}{unit}"


def format_result(result: dict[str, Any]) -> str:
    """The single-task vs multi-task table, Δm and the gradient cosine, as text.

    Over several seeds (`n_seeds` > 1) each model's metric is its mean ± standard deviation
    over the seeds, and each task and Δm carry the stored 95 % interval of the gain and its
    verdict (helped / hurt / no clear difference, decided by `metrics.transfer_verdict` and
    `significance.combine` when the run finished; shown here, never recomputed). One seed:
    the plain table, as before. The "trivial baseline" column is the input-blind model (majority
    class / most frequent tag / training mean, `metrics.trivial_baseline`)."""
    import pandas as pd

    from mtl_core.tasks.text import truncation_text

    seeds = _seeds(result)
    multi = len(seeds) > 1
    trivial = any(isinstance(r.get("trivial"), dict) for r in result["tasks"])  # results before issue 16: none
    rows = []
    for r in result["tasks"]:
        row = {"task": r["name"], "metric": r["metric"] + (" ↑" if r["higher_is_better"] else " ↓")}
        if trivial:  # the input-blind model first: the trained models are read against it
            row["trivial baseline"] = _fmt((r.get("trivial") or {}).get("value"))
        if multi:
            row.update({
                "single-task": _pm(r["stl"], r.get("stl_std")),
                "multi-task": _pm(r["mtl"], r.get("mtl_std")),
                "Δ %": _fmt(r["delta_pct"]),
                "gain, 95 % interval": _span(r.get("low"), r.get("high")),
                "verdict": r.get("verdict") or "—",
            })
        else:
            row.update({"single-task": _fmt(r["stl"]), "multi-task": _fmt(r["mtl"]), "Δ %": _fmt(r["delta_pct"])})
        rows.append(row)
    lines = [pd.DataFrame(rows).to_string(index=False), ""]
    if trivial:
        how = ", ".join(dict.fromkeys(str(r["trivial"]["name"]) for r in result["tasks"]
                                      if isinstance(r.get("trivial"), dict) and r["trivial"].get("name")))
        lines.append(f"trivial baseline: the test metric of a model that ignores its input ({how}, from the "
                     "training split); a model no better than it has collapsed to the prior")
    for r in result["tasks"]:
        if r.get("metric_reason"):
            lines.append(f"primary metric of {r['name']}: {r['metric_reason']}; accuracy is in the results too")
    cut = truncation_text((result.get("dataset") or {}).get("truncation"))
    if cut:
        lines.append(cut)
    dm = result.get("delta_m")
    if dm is None:
        lines.append("Δm: no baselines")
    elif multi:
        dmi = result.get("delta_m_interval") or {}
        span = _span(dmi.get("low"), dmi.get("high"), "+.2f", " %")
        judged = "" if span == "—" else f"95 % interval {span}; "
        lines.append(f"Δm = {_fmt(dm)} %  ({judged}verdict: {result.get('delta_m_verdict') or '—'}; "
                     "mean signed change vs single-task; > 0: multi-task helps)")
    else:
        lines.append(f"Δm = {_fmt(dm)} %  (mean signed change vs single-task; > 0: multi-task helps)")
    if multi:
        lines += [
            f"seeds: {', '.join(str(s) for s in seeds)} ({len(seeds)} seeds; ± is the standard deviation over seeds)",
            "gain: multi-task − single-task in the metric's units, signed so that > 0 means multi-task is better;",
            "verdict: helped / hurt only when the 95 % interval excludes 0, else no clear difference",
        ]
    inter = result.get("interference") or {}
    if inter.get("grad_cosine"):
        cos = pd.DataFrame(inter["grad_cosine"], index=inter["tasks"], columns=inter["tasks"])
        lines += ["", "gradient cosine between tasks (shared parameters, last evaluation):",
                  cos.round(3).to_string()]
    thr = result.get("throughput") or {}
    if thr.get("samples_per_s"):
        lines.append(f"\nthroughput: {thr['samples_per_s']:,.0f} samples/s on {result.get('device')}")
    threads = result.get("threads")
    if isinstance(threads, dict) and threads.get("label"):
        lines.append(f"threads: {threads['label']}")
    return "\n".join(lines)


def cmd_runs(args: argparse.Namespace) -> int:
    """The stored runs, newest first; a held run's status reads "paused" (`paused` in --json)."""
    from mtl_core.store import ACTIVE_STATUSES, RunStore

    with RunStore() as store:
        df = store.runs()
        # Only a queued or running run can be held; its flag is one read per active run.
        df["paused"] = [store.run_controls(r)[1] if s in ACTIVE_STATUSES else False
                        for r, s in zip(df["id"], df["status"])]
    if args.json:  # `status` stays the lifecycle state; `paused` says whether it is held
        print(json.dumps(json.loads(df.to_json(orient="records", date_format="iso")), indent=2))
    elif df.empty:
        print("no runs yet: start one with `mtl-lab run --config examples/quickstart.yaml`")
    else:
        df["status"] = df["status"].where(~df["paused"].astype(bool), "paused")  # as the Train page says it
        cols = [c for c in ("id", "name", "status", "dataset", "sharing", "weighting", "tasks", "delta_m",
                            "created_at") if c in df.columns]
        print(df[cols].to_string(index=False))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from mtl_core.store import ACTIVE_STATUSES, RunStore

    if is_sweep_id(args.run_id):
        return _show_sweep(args)
    with RunStore() as store:
        run = store.get_run(args.run_id)
        result = store.result(args.run_id)
    if args.json:
        print(json.dumps({"run": run, "result": result}, indent=2, default=str))
        return 0
    status = run["status"]
    if run.get("paused") and status in ACTIVE_STATUSES:
        status = (f"paused ({status}, at step {run.get('step') or 0}; `mtl-lab step {run['id']}` takes "
                  f"{_default_steps(run)} step(s), `mtl-lab resume {run['id']}` lets it go on)")
    print(f"run {run['id']}  status: {status}  device: {run.get('device') or '—'}")
    if run.get("error"):
        print(f"error: {run['error']}")
    if result:
        try:
            table = format_result(result)
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(
                f"run {args.run_id!r} has a damaged result (field {exc} missing or of the wrong type); "
                f"`mtl-lab show {args.run_id} --json` shows what is stored, `mtl-lab delete {args.run_id}` removes it"
            ) from None
        print(table)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """A run's curves and its results table (`export.results_frame`: what `show` prints, with
    the trivial baseline and why the metric is what it is) as CSV files or one JSON file."""
    from mtl_core.store import RunStore

    if is_sweep_id(args.run_id):
        return _export_sweep(args)
    from mtl_core.export import results_frame, to_safe_csv

    default_name = f"{args.run_id}.{args.format}"
    out = Path(args.out).expanduser() if args.out else Path(default_name)
    if out.is_dir():
        out = out / default_name  # a folder: the file goes in it under its default name
    out = prepare_output(out, what="the export")
    with RunStore() as store:
        run = store.get_run(args.run_id)
        result = store.result(args.run_id)
        curves = store.metrics(args.run_id)
    table = results_frame(result, run) if result else None
    if args.format == "json":
        text = json.dumps(
            {"run": run, "result": result,
             "results_table": json.loads(table.to_json(orient="records")) if table is not None else [],
             "curves": curves.to_dict(orient="records")}, indent=2, default=str
        )
        write_output(out, text, what="the export")
    else:
        # Task and run names are text strangers may have written: no cell may start a formula.
        write_output(out, to_safe_csv(curves), what="the export")
        if table is not None:
            results_out = out.with_name(out.stem + "_results.csv")
            write_output(results_out, to_safe_csv(table), what="the results export")
    print(out)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from mtl_core.store import RunStore

    if is_sweep_id(args.run_id):
        with RunStore() as store:
            n = store.delete_sweep(args.run_id)
        print(f"deleted {args.run_id} and its {n} run(s)")
        return 0
    with RunStore() as store:
        store.delete_run(args.run_id)  # works on a damaged run too: its rows are not parsed
    print(f"deleted {args.run_id}")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from mtl_core import jobs

    if is_sweep_id(args.run_id):
        from mtl_core.executors import cancel_sweep

        n = cancel_sweep(args.run_id)
        print(f"cancel requested for {args.run_id} ({n} queued or running run(s))" if n
              else f"{args.run_id} has no queued or running run; nothing to cancel")
        return 0
    if jobs.cancel(args.run_id):
        print(f"cancel requested for {args.run_id}")
    else:
        print(f"{args.run_id} is not running; nothing to cancel")
    return 0


# ---- pause / resume / step (issue 15) -----------------------------------------------------------
def _held_run(run_id: str, verb: str) -> dict[str, Any]:
    """The stored run `run_id` for `mtl-lab pause|resume|step`; a sweep id is refused with the
    command that does serve a sweep."""
    from mtl_core.store import RunStore

    if is_sweep_id(run_id):
        raise StoreError(f"{run_id} is a sweep; {verb} works on one run of it (`mtl-lab show {run_id}` lists "
                         f"its runs), or stop the whole sweep with `mtl-lab cancel {run_id}`")
    with RunStore() as store:  # opening it marks runs whose process died as interrupted
        return store.get_run(run_id)


def _ended(run: dict[str, Any], what: str) -> StoreError:
    return StoreError(f"run {run['id']} is {run['status']}; only a {what}")


def _default_steps(run: dict[str, Any]) -> int:
    """Steps a Step takes when none are given: the run's log interval, one new logged point
    per task (as the Train page's Step button)."""
    return int(run["config"].get("log_every") or 10)


def cmd_pause(args: argparse.Namespace) -> int:
    """Hold a queued or running run before its next step (its curves so far are kept)."""
    from mtl_core import jobs
    from mtl_core.store import ACTIVE_STATUSES

    run = _held_run(args.run_id, "pause")
    if run["paused"] and run["status"] in ACTIVE_STATUSES:
        print(f"run {args.run_id} is already paused at step {run.get('step') or 0}")
        return 0
    if not jobs.pause(args.run_id):
        raise _ended(_current_run(args.run_id), "queued or running run can be paused")
    print(f"run {args.run_id} paused (it waits before its next step); `mtl-lab step {args.run_id}` takes "
          f"{_default_steps(run)} step(s), `mtl-lab resume {args.run_id}` lets it go on")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    """Let a paused run go on from the step where it waits."""
    from mtl_core import jobs
    from mtl_core.store import ACTIVE_STATUSES

    run = _held_run(args.run_id, "resume")
    if run["status"] in ACTIVE_STATUSES and not run["paused"]:
        print(f"run {args.run_id} is {run['status']}, not paused; nothing to resume")
        return 0
    if not jobs.resume(args.run_id):
        raise _ended(_current_run(args.run_id), "paused run can be resumed")
    print(f"run {args.run_id} resumed")
    return 0


def cmd_step(args: argparse.Namespace) -> int:
    """Let a paused run take N more steps (default: its log interval), then wait again."""
    from mtl_core import jobs
    from mtl_core.store import ACTIVE_STATUSES

    if args.steps is not None and args.steps < 1:
        raise ConfigError(f"--steps {args.steps}: give at least 1 (the steps the paused run may take), or "
                          "leave it out for the run's log interval")
    run = _held_run(args.run_id, "step")
    n = args.steps if args.steps is not None else _default_steps(run)
    if not jobs.step(args.run_id, n):
        run = _current_run(args.run_id)
        if run["status"] in ACTIVE_STATUSES:
            raise StoreError(f"run {args.run_id} is {run['status']}, not paused; pause it first "
                             f"(`mtl-lab pause {args.run_id}`), then step it")
        raise _ended(run, "paused run can take steps")
    print(f"run {args.run_id} takes {n} step(s) from step {run.get('step') or 0}, then waits again")
    return 0


def _current_run(run_id: str) -> dict[str, Any]:
    """The run's row as it is now (after `jobs` answered that it could not act on it)."""
    from mtl_core.store import RunStore

    with RunStore() as store:
        return store.get_run(run_id)


def cmd_transfer(args: argparse.Namespace) -> int:
    """Pre-train on the source tasks, transfer to the target; print the data-efficiency table."""
    from mtl_core.transfer import TransferConfig, format_transfer

    check_config_file(args.config)
    config = TransferConfig.from_file(args.config, args.set)
    json_out = prepare_output(args.json, what="the results JSON") if args.json else None
    if args.name:
        config.name = args.name
    return _start(config, args, name=config.name or "transfer", json_out=json_out, text=format_transfer)


# ---- sweeps (issue 14) ----------------------------------------------------------------------
SWEEP_PREFIX = "sweep-"


def is_sweep_id(ident: str) -> bool:
    """Sweep ids start with `sweep-`; run ids with their date."""
    return ident.startswith(SWEEP_PREFIX)


def cmd_sweep(args: argparse.Namespace) -> int:
    """Expand and validate a sweep, store it, and train its points (here, or `--background`)."""
    from mtl_core.executors import record_sweep, run_sweep, start_sweep
    from mtl_core.store import RunStore
    from mtl_core.sweep import SweepConfig

    check_config_file(args.config)
    config = SweepConfig.from_file(args.config, args.set)
    executor = args.executor or config.executor
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers {args.workers}: give at least 1 (points trained at once), or leave it out "
                          "for one per core")
    workers = args.workers or config.workers
    if args.background:
        print(start_sweep(config, executor=executor, workers=workers))
        return 0
    with RunStore() as store:
        sweep_id = record_sweep(store, config, executor=executor)
        # A study stores its points round by round: its total is the trials it will ask for.
        points = config.search.trials if config.search is not None else store.get_sweep(sweep_id)["points"]
    print(f"sweep {sweep_id}: {points} point(s), executor {executor}", file=sys.stderr)

    def progress(counts: dict[str, int]) -> None:
        if not args.quiet:
            done = sum(counts.get(s, 0) for s in ("finished", "failed", "cancelled", "interrupted"))
            print(f"  {done}/{points} done  " + "  ".join(f"{k} {v}" for k, v in sorted(counts.items())),
                  file=sys.stderr)

    # `mtl-lab cancel SWEEP_ID` from another terminal, or Ctrl-C here, stops the sweep as a whole.
    try:
        outcome = run_sweep(sweep_id, executor=executor, workers=workers, address=config.address,
                            on_update=progress)
    except KeyboardInterrupt:
        from mtl_core.executors import cancel_sweep

        cancel_sweep(sweep_id)
        print(f"sweep {sweep_id} cancelled", file=sys.stderr)
        return 130
    print(f"sweep {sweep_id} {outcome.status} in {outcome.seconds:.1f} s", file=sys.stderr)
    print(format_sweep(sweep_id))
    return 0 if outcome.status == "finished" else (130 if outcome.status == "cancelled" else 1)


def format_sweep(sweep_id: str) -> str:
    """The sweep's points as a text table: label, status, each task's val/test metric, Δm, front (*)."""
    from mtl_core.store import RunStore
    from mtl_core.sweep import sweep_table

    with RunStore() as store:
        table = sweep_table(store, sweep_id)
    points, tasks = table.points, table.tasks
    if points.empty:
        return "no points"
    cols = {"index": "#", "label": "point", "status": "status"}
    for _, t in tasks.iterrows():
        arrow = "↑" if t["higher_is_better"] else "↓"
        cols[f"val:{t['task']}"] = f"val {t['task']} {t['metric']} {arrow}"
        cols[f"test:{t['task']}"] = f"test {t['task']}"
    cols["delta_m"] = "Δm %"
    view = points[[c for c in cols if c in points.columns]].rename(columns=cols)
    view.insert(1, "front", ["*" if f else "" for f in points.get("is_front", [False] * len(points))])
    lines = [view.to_string(index=False, float_format=lambda v: f"{v:.4g}")]
    if not tasks.empty:
        lines.append("")
        lines.append("single-task baselines: " + ", ".join(
            f"{t['task']} {t['metric']} val {_fmt(t['baseline_val'])} test {_fmt(t['baseline_test'])}"
            for _, t in tasks.iterrows()))
        lines.append("front (*): Pareto-optimal by the validation metrics (validation selects, test reports)")
    return "\n".join(lines)


def cmd_sweeps(args: argparse.Namespace) -> int:
    from mtl_core.store import RunStore

    with RunStore() as store:
        df = store.sweeps()
    if args.json:
        print(json.dumps(json.loads(df.to_json(orient="records", date_format="iso")), indent=2))
    elif df.empty:
        print("no sweeps yet: start one with `mtl-lab sweep --config examples/sweep.yaml`")
    else:
        print(df[["id", "name", "status", "executor", "points", "finished", "running", "queued", "failed",
                  "interrupted", "cancelled", "created_at"]].to_string(index=False))
    return 0


def _show_sweep(args: argparse.Namespace) -> int:
    from mtl_core.store import RunStore
    from mtl_core.sweep import sweep_table

    with RunStore() as store:
        store.mark_interrupted()
        sweep = store.get_sweep(args.run_id)
        table = sweep_table(store, args.run_id) if args.json else None
    if args.json:
        print(json.dumps({"sweep": sweep, "points": json.loads(table.points.to_json(orient="records")),
                          "tasks": json.loads(table.tasks.to_json(orient="records"))}, indent=2, default=str))
        return 0
    counts = ", ".join(f"{k} {v}" for k, v in sorted(sweep["counts"].items()))
    print(f"sweep {sweep['id']}  status: {sweep['status']}  executor: {sweep['executor']}  points: "
          f"{sweep['points']} ({counts})")
    print(format_sweep(args.run_id))
    return 0


def _export_sweep(args: argparse.Namespace) -> int:
    from mtl_core.export import to_safe_csv
    from mtl_core.store import RunStore
    from mtl_core.sweep import sweep_table

    default_name = f"{args.run_id}.{args.format}"
    out = Path(args.out).expanduser() if args.out else Path(default_name)
    if out.is_dir():
        out = out / default_name
    out = prepare_output(out, what="the export")
    with RunStore() as store:
        sweep = store.get_sweep(args.run_id)
        table = sweep_table(store, args.run_id)
    if args.format == "json":
        text = json.dumps({"sweep": sweep, "points": json.loads(table.points.to_json(orient="records")),
                           "tasks": json.loads(table.tasks.to_json(orient="records"))}, indent=2, default=str)
        write_output(out, text, what="the export")
    else:  # labels hold user text (task names, dotted values): spreadsheet-safe
        write_output(out, to_safe_csv(table.points), what="the export")
        tasks_out = out.with_name(out.stem + "_tasks.csv")
        write_output(tasks_out, to_safe_csv(table.tasks), what="the export")
    print(out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mtl-lab", description="MTL Lab: multi-task learning experiments.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("list", help="list datasets, sharing modes or weighting strategies")
    s.add_argument("what", choices=["datasets", "sharing", "weighting"])
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("run", help="train a multi-task model and its single-task baselines")
    s.add_argument("--config", "-c", help="YAML or JSON experiment config")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set sharing=soft --set weights.y1=2.0")
    s.add_argument("--json", metavar="OUT", help="write the results JSON here")
    s.add_argument("--name", help="a name for the run")
    s.add_argument("--background", action="store_true", help="start in a background process, print the run id")
    s.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("transfer", help="pre-train a shared encoder on source tasks, transfer it to a held-out "
                       "target (frozen / fine-tuned / from scratch × data sizes)")
    s.add_argument("--config", "-c", required=True, help="YAML or JSON transfer config (examples/transfer.yaml)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set target_steps=100 --set base.steps=200")
    s.add_argument("--json", metavar="OUT", help="write the results JSON here")
    s.add_argument("--name", help="a name for the run")
    s.add_argument("--background", action="store_true", help="start in a background process, print the run id")
    s.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    s.set_defaults(func=cmd_transfer)

    s = sub.add_parser("runs", help="table of stored runs")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_runs)

    s = sub.add_parser("show", help="one stored run and its results, or a sweep (id sweep-...) and its points")
    s.add_argument("run_id")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_show)

    s = sub.add_parser("export", help="write a run's curves and results (or a sweep's points) to CSV or JSON")
    s.add_argument("run_id")
    s.add_argument("--format", choices=["csv", "json"], default="csv")
    s.add_argument("--out", help="output file (default: RUN_ID.csv / RUN_ID.json in the working folder); "
                   "a folder puts RUN_ID.csv / RUN_ID.json in it; missing folders are created. CSV also "
                   "writes <name>_results.csv next to it; cells that could start a spreadsheet formula get a "
                   "leading '")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("delete", help="delete a stored run, or a sweep with all its runs")
    s.add_argument("run_id")
    s.set_defaults(func=cmd_delete)

    s = sub.add_parser("cancel", help="cancel a running run, or a sweep as a whole")
    s.add_argument("run_id")
    s.set_defaults(func=cmd_cancel)

    s = sub.add_parser("pause", help="hold a running run before its next step (its curves so far are kept)")
    s.add_argument("run_id")
    s.set_defaults(func=cmd_pause)

    s = sub.add_parser("resume", help="let a paused run go on from the step where it waits")
    s.add_argument("run_id")
    s.set_defaults(func=cmd_resume)

    s = sub.add_parser("step", help="let a paused run take a few more steps, then wait again")
    s.add_argument("run_id")
    s.add_argument("--steps", "-n", type=int, metavar="N",
                   help="steps to take (default: the run's log interval, log_every: one new logged point per task)")
    s.set_defaults(func=cmd_step)

    s = sub.add_parser("sweep", help="train a sweep: one base config and axes (weights, strategies, sharing "
                       "modes, seeds, any dotted key); prints the points and the Pareto front")
    s.add_argument("--config", "-c", required=True, help="YAML or JSON sweep config (examples/sweep.yaml)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of the sweep file, e.g. --set set.steps=200 --set axes.weights.simplex=4")
    s.add_argument("--executor", choices=["local", "batched", "ray"],
                   help="local: a pool of worker processes (default); batched: weight-only siblings as one "
                   "stacked ensemble in this process; ray: each point a Ray task (pip install 'mtl-lab[cluster]')")
    s.add_argument("--workers", type=int, help="points at once (default: one per core)")
    s.add_argument("--background", action="store_true", help="start the sweep's driver in the background, print its id")
    s.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    s.set_defaults(func=cmd_sweep)

    s = sub.add_parser("sweeps", help="table of stored sweeps")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_sweeps)

    launcher.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not as a stray message at exit
        return code
    except BrokenPipeError:
        # `mtl-lab runs | head -1`: the reader left; stop quietly, as `yes | head` does.
        # Python would flush stdout again at exit and complain: point it at /dev/null.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE
    except MTLLabError as exc:
        _error(str(exc))
        return 2
    except (OSError, sqlite3.Error) as exc:
        # A safety net: every case we know has its own message above.
        log.debug("unexpected error", exc_info=True)
        _error(f"{type(exc).__name__}: {exc} (run with -v for details)")
        return 1


def _error(message: str) -> None:
    try:
        print(f"error: {message}", file=sys.stderr)
    except OSError:
        pass  # stderr itself is gone (a closed pipe, a full disk): the exit code still says it


if __name__ == "__main__":
    sys.exit(main())
