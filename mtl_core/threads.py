"""The thread budget of a training process: how many intra-op CPU threads torch may use.

Why not torch's default (one thread per core)? Our models are small: a step of the
quickstart MLP is a few matrix products of 64 × 64, far below the size at which splitting
an operation across threads pays. Split anyway, every parallel region waits for its
slowest thread, and on a machine that also runs the dashboard, a browser, a second run or
a class's worth of runs, that thread is often descheduled. Measured on a 2-core machine
(issue 11): beside two single-thread torch processes the quickstart took 14.9 s with
torch's default 2 threads vs 8.4 s with 1 (5.2 s alone); under heavier load 100.9 s vs 5.0 s.

`threads` in the config (`ExperimentConfig.threads`):

- `auto` (default): `choose_threads` decides, see there;
- `N`: exactly N threads, whatever the machine (an explicit setting always wins);
- `torch`: leave torch's own setting alone (its default, or what the caller set); the
  contention benchmark (bench/contention.py) uses it to measure the default.

Where the budget is applied: the worker process (`mtl_core.worker.execute`) and the
foreground `mtl-lab run` / `mtl-lab transfer`, right after reading the config, before the
dataset or the model is built (`apply_budget`). `run_experiment` / `run_transfer` called
from Python apply only an explicit `threads: N`: `auto` there would silently overwrite a
notebook user's own `torch.set_num_threads`; call `apply_budget(config)` first to have the
engine decide. Whatever happened, the results JSON says it under "threads"
(`record_for`), e.g. "1 (auto: small model, 1 other run active)".
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# Above this many dense parameters (weights that cost a multiply-add per example) a model
# alone on an idle machine may use more than one thread. Why 1M: intra-op parallelism only
# splits an operation larger than torch's grain size (32,768 elements); at batch 64 a layer
# of a ~1M-parameter MLP (width ≥ 1024) has ≥ 65k outputs, so its products can be split
# with work left for each thread. Below that the split costs more than it saves. Measured
# (bench: a 3-layer MLP step, batch 64, Adam; time.perf_counter, median of 30 steps) on the
# 2-core development machine under other load, 2 threads were slower at every size:
# 0.36× at 132k parameters, 0.40× at 526k, 0.17× at 2.1M, 0.55× at 8.4M (the speed-up of
# 2 threads over 1), which is why anything short of a large model alone gets 1 thread.
LARGE_MODEL_PARAMS = 1_000_000
# A very large model (MiniLM, 22.7M) alone may use up to HUGE_MAX threads, a large one up
# to LARGE_MAX: small-batch CPU training stops scaling long before 16 or 64 cores.
HUGE_MODEL_PARAMS = 16_000_000
LARGE_MAX_THREADS = 4
HUGE_MAX_THREADS = 8
MINILM_PARAMS = 22_700_000  # all-MiniLM-L6-v2 (the `text` extra's encoder)


@dataclass(frozen=True)
class ThreadChoice:
    """The threads a run uses and why. `count` None: torch's own setting, not touched."""

    count: int | None
    setting: str  # "auto", "explicit" or "torch"
    reason: str

    def label(self) -> str:
        """'1 (auto: small model, 1 other run active)': what the results and logs show."""
        count = "torch's default" if self.count is None else str(self.count)
        return f"{count} ({self.reason})"

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "setting": self.setting, "reason": self.reason, "label": self.label()}


def _setting(config_or_threads: Any) -> int | str:
    """`threads` of an ExperimentConfig / TransferConfig (its `base`), or the value itself."""
    if hasattr(config_or_threads, "base"):  # a TransferConfig: the budget is its base experiment's
        config_or_threads = config_or_threads.base
    value = getattr(config_or_threads, "threads", config_or_threads)
    if isinstance(value, bool) or not (value in ("auto", "torch") or (isinstance(value, int) and value >= 1)):
        raise ValueError(f"threads must be 'auto', 'torch' or an integer ≥ 1, not {value!r}")
    return value


def _count(n: float) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else str(int(n))


def decide_threads(
    config_or_threads: Any, *, n_params: int, active_runs: int, cpu_count: int, load: float = 0.0
) -> ThreadChoice:
    """`choose_threads` with its reason; see there."""
    setting = _setting(config_or_threads)
    if setting == "torch":
        return ThreadChoice(None, "torch", "torch's default, left untouched")
    if isinstance(setting, int):
        over = f"; more than the {cpu_count} usable cores" if setting > cpu_count else ""
        return ThreadChoice(setting, "explicit", f"explicit: set in the config{over}")
    cpu_count = max(1, int(cpu_count))
    busy = max(0, int(load))  # cores other processes keep busy (1-minute load average)
    spare = cpu_count - 1 - busy  # one core left for the dashboard server / the terminal
    size = f"~{_count(n_params)} dense parameters"
    why: list[str] = []
    if n_params < LARGE_MODEL_PARAMS:
        why.append(f"small model, {size}")
    if active_runs > 0:
        why.append(f"{active_runs} other run{'s' if active_runs > 1 else ''} active")
    if cpu_count <= 2:
        why.append(f"{cpu_count} usable core{'s' if cpu_count > 1 else ''}")
    elif spare <= 1:
        why.append(f"machine busy (load {load:.1f} on {cpu_count} cores)")
    if why:
        return ThreadChoice(1, "auto", "auto: " + ", ".join(why))
    cap = HUGE_MAX_THREADS if n_params >= HUGE_MODEL_PARAMS else LARGE_MAX_THREADS
    count = max(1, min(spare, cap))
    return ThreadChoice(count, "auto", f"auto: large model, {size}, alone on {cpu_count} usable cores")


def choose_threads(
    config_or_threads: Any, *, n_params: int, active_runs: int, cpu_count: int, load: float = 0.0
) -> int | None:
    """The intra-op threads for one training process; None for `threads: torch` (leave it).

    `config_or_threads`: an ExperimentConfig, a TransferConfig, or the `threads` value.
    An explicit N wins. `auto` gives 1 thread when the model is small (< LARGE_MODEL_PARAMS
    dense parameters), when any other run is queued or running (`active_runs`), when the
    machine has ≤ 2 usable cores, or when it is busy (`load`, the 1-minute load average,
    leaves ≤ 1 spare core). Only a large model alone on a machine with spare cores gets
    more: min(cores − 1 − load, 4), or 8 from HUGE_MODEL_PARAMS on, one core always left
    for the dashboard server. Pure: the caller measures the machine (`budget_for`).
    """
    return decide_threads(
        config_or_threads, n_params=n_params, active_runs=active_runs, cpu_count=cpu_count, load=load
    ).count


# ---- the inputs, measured -------------------------------------------------------------
def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: a container's or taskset's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def load_average() -> float:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def other_active_runs(store: Any, run_id: str | None = None) -> int:
    """Runs queued or running in `store` (a RunStore), not counting `run_id` itself."""
    return store.count_runs(status=("queued", "running"), exclude=run_id)


def estimate_params(config: Any) -> int:
    """Dense parameters of the model `config` builds, from the config alone (nothing is
    built): the encoder's weight matrices. Embedding tables are left out (a lookup costs
    no multiply-add per parameter), and so are the small task heads. An estimate for a
    threshold, not a count: an input width the config does not give is taken as the first
    layer's width.
    """
    config = getattr(config, "base", config)
    from mtl_core.tasks import DATASETS

    spec = config.model
    options = config.dataset.options or {}
    entry = DATASETS.get(config.dataset.name) if config.dataset.name in DATASETS else None
    tokens = (entry is not None and entry.extra.get("input_kind") == "tokens") or bool(options.get("text_column"))
    hidden = list(spec.hidden)
    if not tokens:
        inputs = options.get("inputs")
        widths = [int(options.get("input_dim") or (len(inputs) if isinstance(inputs, list) and inputs else hidden[0]))]
        widths += hidden
        return sum(a * b + b for a, b in zip(widths, widths[1:]))
    if spec.text_encoder in ("minilm", "minilm_frozen"):
        return MINILM_PARAMS
    h, e = hidden[-1], spec.embed_dim
    if spec.text_encoder == "gru":  # bidirectional, h/2 per direction, 3 gates
        half, total, width = max(1, h // 2), 0, e
        for _ in hidden:
            total += 2 * 3 * (width * half + half * half + 2 * half)
            width = 2 * half
        return total
    if spec.text_encoder == "cnn":  # kernel width 3
        widths = [e, *hidden]
        return sum(3 * a * b + b for a, b in zip(widths, widths[1:]))
    # transformer: input projection, then per layer 4 h² (attention) + 4 h² (feed-forward 2h)
    return e * h + len(hidden) * 8 * h * h


# ---- applying it ------------------------------------------------------------------------
_applied: ThreadChoice | None = None  # the last budget applied in this process
_interop_set = False


def budget_for(config: Any, *, store: Any = None, run_id: str | None = None) -> ThreadChoice:
    """Decide the budget of `config` on this machine now (other runs counted in `store`)."""
    setting = _setting(config)
    if setting == "auto":
        active = 0
        if store is not None:
            try:
                active = other_active_runs(store, run_id)
            except Exception as exc:  # an unreadable store must not stop the run; the model size still counts
                log.warning("could not count the other active runs (%s); assuming none", exc)
        return decide_threads(
            setting, n_params=estimate_params(config), active_runs=active, cpu_count=usable_cores(),
            load=load_average(),
        )
    return decide_threads(setting, n_params=0, active_runs=0, cpu_count=usable_cores())


def apply_threads(choice: ThreadChoice | int | None) -> ThreadChoice:
    """Set torch's intra-op threads to `choice` and remember it for the results.

    The inter-op pool (used by `torch.jit.fork` and a few ops) is sized once, before any
    parallel work: torch raises if it is set later, so a second call leaves it as it is.
    """
    global _applied, _interop_set
    import torch

    if not isinstance(choice, ThreadChoice):
        choice = ThreadChoice(choice, "explicit" if choice is not None else "torch",
                              "set by the caller" if choice is not None else "torch's default, left untouched")
    assert choice.count is None or choice.count >= 1, choice
    if choice.count is not None:
        torch.set_num_threads(choice.count)
        if not _interop_set:
            try:
                torch.set_num_interop_threads(choice.count)
            except RuntimeError:  # parallel work already ran in this process: keep torch's pool
                pass
            _interop_set = True
    else:  # the count torch has, so that results say it
        choice = ThreadChoice(torch.get_num_threads(), choice.setting, choice.reason)
    _applied = choice
    log.info("threads: %s", choice.label())
    return choice


def apply_budget(config: Any, *, store: Any = None, run_id: str | None = None) -> ThreadChoice:
    """Decide (`budget_for`) and apply (`apply_threads`) the budget of `config`; the
    worker and the CLI call this before building anything."""
    return apply_threads(budget_for(config, store=store, run_id=run_id))


def record_for(config: Any) -> dict[str, Any]:
    """The "threads" entry of a run's results: what was applied for it, and why.

    An explicit `threads: N` is applied here if it was not yet (the Python API). For
    `auto` / `torch` without a budget applied for that setting (`run_experiment` from a
    notebook), torch's current setting is reported and left as it is.
    """
    import torch

    setting = _setting(config)
    if isinstance(setting, int):
        if _applied is None or _applied.count != setting or torch.get_num_threads() != setting:
            apply_threads(decide_threads(setting, n_params=0, active_runs=0, cpu_count=usable_cores()))
    elif _applied is None or _applied.setting != setting:
        return ThreadChoice(
            torch.get_num_threads(), "caller",
            f"threads: {setting} is applied by the worker and the CLI; from Python torch's own setting is "
            "kept (mtl_core.threads.apply_budget(config) applies the engine's choice)",
        ).to_dict()
    assert _applied is not None
    # The count torch really has now (what the run trains with), with the reason it was chosen.
    return ThreadChoice(torch.get_num_threads(), _applied.setting, _applied.reason).to_dict()
