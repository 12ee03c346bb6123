"""Query parameters <-> experiment config, widget keys, and helpers the pages share.

The experiment being set up lives in the URL (`st.query_params`) as dotted config keys
that differ from the defaults, e.g. `?dataset.options.correlation=-0.5&weights.y2=2&steps=300`,
the same `key=value` overrides `mtl-lab run --set` takes (`mtl_core.config.apply_overrides`).
A link therefore reproduces an experiment, and `run=<id>` re-attaches to a run after a
refresh. Widgets hold the draft between reruns (session state, one per browser tab);
nothing per-user is kept in module globals, so two tabs never see each other's draft.

The functions without `st.` are pure and tested directly; the rest need a Streamlit run.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Mapping, MutableMapping, Sequence

import pandas as pd
import streamlit as st
import yaml
from pydantic import BaseModel

from mtl_core import phases as phase_plan
from mtl_core.config import ExperimentConfig, apply_overrides
from mtl_core.errors import ConfigError, DataError, MTLLabError, StoreError
# The env vars `mtl-lab dashboard` sets: the folders the operator allows (--data-dir) and
# whether it was asked to listen beyond loopback (--host).
from mtl_core.launcher import ALLOW_REMOTE_ENV, DATA_DIRS_ENV, is_loopback
from mtl_core.models import SHARING
from mtl_core.store import RunStore, default_store_path
from mtl_core.tasks import DATASETS, dataset_task_names
from mtl_core.threads import usable_cores
from mtl_core.weighting import WEIGHTING

RUN_PARAM = "run"
CONFIG_FIELDS = frozenset(ExperimentConfig.model_fields)

# Widget keys. Every key of the experiment form starts with "cfg." so a loaded config
# can clear the whole form at once; option keys name their registry entry, so switching
# dataset does not carry one dataset's options over to another.
K_DATASET = "cfg.dataset"
K_SHARING = "cfg.sharing"
K_WEIGHTING = "cfg.weighting"
K_BUDGET = "cfg.budget"  # "steps" or "epochs"
K_STEPS = "cfg.steps"
K_EPOCHS = "cfg.epochs"
K_BATCH = "cfg.batch_size"
K_LR = "cfg.lr"
K_SEED = "cfg.seed"
K_N_SEEDS = "cfg.n_seeds"
K_DEVICE = "cfg.device"
K_THREADS = "cfg.threads"
K_CSV_TARGETS = "cfg.csv.targets"
K_CSV_TEXT = "cfg.csv.text_column"
NO_TEXT_COLUMN = "(none: tabular inputs)"
CSV_SPECIAL = ("path", "targets", "inputs", "text_column")

SS_PARAMS = "_experiment_params"  # the config params this tab last wrote
# The last few it wrote: a rerun that the browser asked for before it had applied the
# newest URL still carries an older one, which is an echo of this tab, not a new link.
SS_WRITTEN = "_written_params"
WRITTEN_KEPT = 16
SS_PENDING = "_pending_params"  # a config to load into the form on the next run
SS_RUN = "_watched_run"


def k_ds_opt(dataset: str, option: str) -> str:
    return f"cfg.ds.{dataset}.{option}"


def k_sh_opt(sharing: str, option: str) -> str:
    return f"cfg.sh.{sharing}.{option}"


def k_wt_opt(weighting: str, option: str) -> str:
    return f"cfg.wt.{weighting}.{option}"


def k_task(task: str) -> str:
    return f"cfg.task.{task}"


def k_weight(task: str) -> str:
    return f"cfg.w.{task}"


# ---- options models -> widget specs -----------------------------------------------------
# Slider ranges for options whose model bounds them in a validator rather than a Field.
UI_RANGES: dict[str, tuple[float, float]] = {"label_noise": (0.0, 1.0)}

WidgetKind = Literal["slider", "float", "int", "bool", "choice", "text", "complex"]


@dataclass(frozen=True)
class OptionField:
    """How to render one option of a registry entry's options model."""

    name: str
    kind: WidgetKind
    default: Any
    description: str = ""
    min: float | None = None
    max: float | None = None
    step: float | None = None
    choices: tuple[Any, ...] = field(default_factory=tuple)
    required: bool = False
    limit: float | None = None  # the dashboard's bound (DASHBOARD_LIMITS) when it is below the model's


# ---- what a link may ask of this server -------------------------------------------------
# Anyone who can open a link can make the server generate data, build a model and train:
# these bounds keep one link within what a teaching/experimenting tool needs (a page with
# n_samples=200,000 × input_dim=1,024 took the server from 0.4 to 3.7 GB before). They
# apply to URL values, uploaded YAML files and the widgets alike; larger only through the
# CLI/config file (`mtl-lab run CONFIG`), where the operator is the user.
LIMIT_REASON = "the dashboard's bound; larger only through the CLI/config file"
DASHBOARD_LIMITS: dict[str, int] = {
    # dotted config key (options: of whichever entry the config names) -> the largest value
    "dataset.options.n_samples": 50_000,  # rows generated in memory, per run and seed
    "dataset.options.input_dim": 512,  # features per row
    "dataset.options.max_len": 256,  # tokens per sentence
    "dataset.options.max_bytes": 50 * 1024 * 1024,  # CSV file size (the upload limit)
    "sharing.options.n_experts": 16,
    "sharing.options.n_shared_experts": 8,
    "sharing.options.n_task_experts": 8,
    "sharing.options.levels": 4,
    "model.hidden": 1024,  # each encoder layer width
    "model.layers": 6,  # encoder layers (entries of model.hidden)
    "model.head_hidden": 1024,
    "model.embed_dim": 512,
    "steps": 100_000,
    "epochs": 1_000,
    "batch_size": 4_096,
    "n_seeds": 20,
    # threads of one run: at most this server's cores (a link asking for 1,000 would make
    # the training process start 1,000 threads)
    "threads": usable_cores(),
}


def option_limit(section_name: str, option: str) -> int | None:
    """The dashboard's bound of option `option` of a dataset/sharing/weighting entry."""
    return DASHBOARD_LIMITS.get(f"{section_name}.options.{option}")


def _section_of(model: type[BaseModel]) -> str | None:
    for name, registry in (("dataset", DATASETS), ("sharing", SHARING), ("weighting", WEIGHTING)):
        if any(registry.get(n).options is model for n in registry.names()):
            return name
    return None


def _bounds(metadata: Sequence[Any]) -> tuple[float | None, float | None, bool, bool]:
    lo = hi = None
    lo_open = hi_open = False
    for m in metadata:
        if getattr(m, "ge", None) is not None:
            lo = float(m.ge)
        if getattr(m, "gt", None) is not None:
            lo, lo_open = float(m.gt), True
        if getattr(m, "le", None) is not None:
            hi = float(m.le)
        if getattr(m, "lt", None) is not None:
            hi, hi_open = float(m.lt), True
    return lo, hi, lo_open, hi_open


# Streamlit number inputs are JavaScript numbers: integer bounds beyond 2^53 - 1 are refused.
JS_MAX_INT = 2**53 - 1


def _nice_step(span: float) -> float:
    if span <= 2.0:
        return 0.01
    return 10.0 ** (math.floor(math.log10(span)) - 2)


def _union_args(annotation: Any) -> tuple[Any, ...] | None:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return typing.get_args(annotation)
    return None


def option_fields(model: type[BaseModel]) -> list[OptionField]:
    """Widget specs from a pydantic options model: bounded floats become sliders (bounds
    from the Field constraints), ints number inputs, Literals selects, bools checkboxes;
    lists and dicts are "complex" (kept from the config, not edited). A number the
    dashboard bounds (DASHBOARD_LIMITS) gets that bound as its maximum."""
    sec = _section_of(model)
    return [_limited(spec, option_limit(sec, spec.name) if sec else None) for spec in _option_fields(model)]


def _limited(spec: OptionField, limit: int | None) -> OptionField:
    if limit is None or spec.kind not in ("int", "float", "slider") or (spec.max is not None and spec.max <= limit):
        return spec
    default = spec.default if spec.default is None or spec.default <= limit else limit
    return replace(spec, max=limit, limit=limit, default=default)


def _option_fields(model: type[BaseModel]) -> list[OptionField]:
    out: list[OptionField] = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        required = info.is_required()
        default = None if required else info.default
        desc = info.description or ""
        lo, hi, lo_open, hi_open = _bounds(info.metadata)
        union = _union_args(ann)
        if union is not None:
            non_none = [a for a in union if a is not type(None)]
            # `float | dict[...]` (e.g. one label-noise level or one per task): edit the number.
            if float in non_none and isinstance(default, (int, float)) and not isinstance(default, bool):
                ann = float
            elif len(non_none) == 1 and non_none[0] in (int, float, str):
                ann = non_none[0]
            else:
                out.append(OptionField(name, "complex", default, desc, required=required))
                continue
        if ann is bool:
            out.append(OptionField(name, "bool", bool(default), desc, required=required))
        elif typing.get_origin(ann) is Literal:
            choices = typing.get_args(ann)
            out.append(OptionField(name, "choice", default if default in choices else choices[0], desc,
                                   choices=choices, required=required))
        elif ann is int:
            step = 1 if default is None or abs(int(default)) < 100 else 10 ** (len(str(abs(int(default)))) - 2)
            out.append(OptionField(
                name, "int", default, desc,
                min=None if lo is None else max(int(math.floor(lo)) + (1 if lo_open else 0), -JS_MAX_INT),
                max=None if hi is None else min(int(math.ceil(hi)) - (1 if hi_open else 0), JS_MAX_INT),
                step=step, required=required,
            ))
        elif ann is float:
            if (lo is None or hi is None) and name in UI_RANGES:
                lo, hi = UI_RANGES[name]
            step = _nice_step(hi - lo) if lo is not None and hi is not None else 0.0
            # A slider for a bounded knob on a short range whose default sits on the slider's
            # grid (correlation, a probability); a number input otherwise, so that a default
            # such as 0.025 on a 0..10 range is neither rounded nor clamped.
            on_grid = isinstance(default, (int, float)) and step > 0 and (
                abs(default / step - round(default / step)) < 1e-6
            )
            if lo is not None and hi is not None and hi - lo <= 2.0 and on_grid:
                out.append(OptionField(
                    name, "slider", default, desc,
                    min=lo + step if lo_open else lo, max=hi - step if hi_open else hi, step=step,
                    required=required,
                ))
            else:
                d = abs(float(default)) if isinstance(default, (int, float)) and default else 1.0
                step = 10.0 ** (math.floor(math.log10(d)) - 1)
                # An open lower bound (gt 0) cannot be a number input's minimum; the config
                # check rejects 0 with a message instead.
                out.append(OptionField(name, "float", default, desc,
                                       min=None if lo_open else lo, max=None if hi_open else hi,
                                       step=step, required=required))
        elif ann is str:
            out.append(OptionField(name, "text", default, desc, required=required))
        else:
            out.append(OptionField(name, "complex", default, desc, required=required))
    return out


def coerce(spec: OptionField, value: Any) -> Any:
    """`value` (from a URL or a YAML file) made safe for the widget of `spec`:
    the right type, inside the widget's range; the default when it cannot be."""
    return coerce_noted(spec, value)[0]


def coerce_noted(spec: OptionField, value: Any) -> tuple[Any, str | None]:
    """`coerce`, and why the value was replaced (None when it was kept as given)."""
    if value is None and spec.default is None and spec.kind in ("int", "float"):
        return None, None  # an optional number left empty (e.g. a seed that defaults to the run's)
    fallback = spec.default if spec.default is not None or spec.kind != "text" else ""
    if spec.kind in ("slider", "float", "int"):
        if isinstance(value, bool):
            return fallback, "not a number"
        try:
            v = float(value)
        except (TypeError, ValueError, OverflowError):
            return fallback, "not a number"
        if not math.isfinite(v):
            return fallback, "not a finite number"
        if spec.kind == "int":
            if v != math.floor(v):
                return fallback, "not a whole number"
            v = value if isinstance(value, int) else int(v)  # an int keeps every digit
        if spec.min is not None and v < spec.min:
            return type(v)(spec.min), f"below the minimum {spec.min:g}"
        if spec.max is not None and v > spec.max:
            if spec.limit is not None and spec.max == spec.limit:
                return type(v)(spec.max), f"above {spec.max:,g}, {LIMIT_REASON}"
            return type(v)(spec.max), f"above the maximum {spec.max:g}"
        return v, None
    if spec.kind == "bool":
        if isinstance(value, bool):
            return value, None
        return fallback, "not true or false"
    if spec.kind == "choice":
        if value in spec.choices:
            return value, None
        return spec.default, f"not one of {', '.join(map(str, spec.choices))}"
    if spec.kind == "text":
        return ("" if value is None else str(value)), None
    return value, None


# The Training section's fields: what the widgets accept (and the bounds of DASHBOARD_LIMITS).
TRAINING_FIELDS: dict[str, OptionField] = {
    "steps": OptionField("steps", "int", 600, min=1, max=DASHBOARD_LIMITS["steps"], limit=DASHBOARD_LIMITS["steps"]),
    "epochs": OptionField("epochs", "float", 1.0, min=0.01, max=DASHBOARD_LIMITS["epochs"],
                          limit=DASHBOARD_LIMITS["epochs"]),
    "batch_size": OptionField("batch_size", "int", 64, min=1, max=DASHBOARD_LIMITS["batch_size"],
                              limit=DASHBOARD_LIMITS["batch_size"]),
    "seed": OptionField("seed", "int", 0, min=0, max=2**31 - 1),
    "n_seeds": OptionField("n_seeds", "int", 1, min=1, max=DASHBOARD_LIMITS["n_seeds"]),
    "optimizer.lr": OptionField("optimizer.lr", "float", 3e-3, min=1e-7, max=10.0),
}
WEIGHT_FIELD = OptionField("weight", "float", 1.0, min=0.0, max=5.0)  # the task weight sliders
THREAD_SETTINGS = ("auto", "torch")  # besides a count (mtl_core.threads)


def thread_choices() -> list[Any]:
    """The threads widget's options: auto, 1 … this server's cores, torch."""
    return ["auto", *range(1, DASHBOARD_LIMITS["threads"] + 1), "torch"]


def threads_noted(value: Any) -> tuple[Any, str | None]:
    """`threads` from a link or a YAML file made one of `thread_choices()`, and why it was
    changed (None when kept)."""
    if isinstance(value, str) and value.strip().lower() in THREAD_SETTINGS:
        return value.strip().lower(), None
    number, why = coerce_noted(OptionField("threads", "int", 1, min=1), value)
    if why:
        return "auto", why.replace("not a number", "not auto, torch or a number")
    bound = DASHBOARD_LIMITS["threads"]
    if number > bound:
        return bound, f"above {bound:,} (this server's cores), {LIMIT_REASON}"
    return number, None


def _shown(value: Any) -> str:
    text = f"'{value}'" if isinstance(value, str) else yaml_scalar(value)
    return text if len(text) <= 60 else text[:57] + "…"


def review_config(raw: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """`raw` (a config dict from a link, a YAML file or the form) with every value the
    dashboard's widgets cannot hold replaced or brought within its bound, and one note
    per change: "steps: 'abc' is not a number; using 600".

    The config check still reports what is wrong with the values kept (an unknown
    dataset, a task that does not exist); this makes visible what would otherwise be
    silently replaced by the widgets.
    """
    out = copy.deepcopy(dict(raw))
    notes: list[str] = []

    def note(name: str, given: Any, used: Any, why: str) -> None:
        notes.append(f"{name}: {_shown(given)} is {why}; using {_shown(used)}")

    for name, spec in TRAINING_FIELDS.items():
        sec, _, key = name.rpartition(".")
        holder = out.get(sec) if sec else out
        if not isinstance(holder, dict) or key not in holder or holder[key] is None:
            continue
        used, why = coerce_noted(spec, holder[key])
        if why:
            note(name, holder[key], used, why)
            holder[key] = used
    if out.get("threads") is not None:
        used, why = threads_noted(out["threads"])
        if why:
            note("threads", out["threads"], used, why)
        out["threads"] = used
    if isinstance(out.get("weights"), dict):
        weights = {}
        for task, given in out["weights"].items():
            used, why = coerce_noted(WEIGHT_FIELD, given)
            if why:
                note(f"weights.{task}", given, used, why.replace("the maximum 5", "the sliders' maximum 5"))
            weights[task] = used
        out["weights"] = weights
    for sec, registry in (("dataset", DATASETS), ("sharing", SHARING), ("weighting", WEIGHTING)):
        spec_section = out.get(sec)
        if not isinstance(spec_section, dict) or not isinstance(spec_section.get("options"), dict):
            continue
        if spec_section.get("name") not in registry:
            continue
        options = spec_section["options"]
        for spec in option_fields(registry.get(spec_section["name"]).options):
            if spec.kind == "complex" or spec.name not in options:
                continue
            used, why = coerce_noted(spec, options[spec.name])
            if why:
                note(f"{sec}.options.{spec.name}", options[spec.name], used, why)
                options[spec.name] = used
        if sec == "dataset":  # options without a widget (e.g. a CSV file's max_bytes)
            for key, value in list(options.items()):
                bound = option_limit(sec, key)
                if bound is not None and isinstance(value, (int, float)) and not isinstance(value, bool) \
                        and value > bound:
                    note(f"dataset.options.{key}", value, bound, f"above {bound:,}, {LIMIT_REASON}")
                    options[key] = bound
    model = out.get("model")
    if isinstance(model, dict):
        for key in ("head_hidden", "embed_dim"):
            value, bound = model.get(key), DASHBOARD_LIMITS[f"model.{key}"]
            if isinstance(value, int) and not isinstance(value, bool) and value > bound:
                note(f"model.{key}", value, bound, f"above {bound:,}, {LIMIT_REASON}")
                model[key] = bound
        hidden = model.get("hidden")
        if isinstance(hidden, list) and all(isinstance(h, int) and not isinstance(h, bool) for h in hidden):
            widest, layers = DASHBOARD_LIMITS["model.hidden"], DASHBOARD_LIMITS["model.layers"]
            used = [min(h, widest) for h in hidden[:layers]]
            if used != hidden:
                why = (f"more than {layers} layers or a layer wider than {widest:,}, {LIMIT_REASON}")
                note("model.hidden", hidden, used, why)
                model["hidden"] = used
    return out, notes


# ---- query parameters <-> config ------------------------------------------------------
def yaml_scalar(value: Any) -> str:
    """One config value as the YAML text `apply_overrides` parses back to the same value."""
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10_000).strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")]
    elif text.endswith("..."):
        text = text[:-3].strip()
    return text


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def _option_defaults(registry: Any, name: str) -> dict[str, Any]:
    if name not in registry:
        return {}
    model = registry.get(name).options
    return {
        k: (f.default.model_dump(mode="json") if isinstance(f.default, BaseModel) else f.default)
        for k, f in model.model_fields.items()
        if not f.is_required() and f.default_factory is None
    }


def default_config_dict(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The defaults `raw` is compared with: the default experiment, with the option
    defaults of the dataset, sharing mode and weighting strategy `raw` names."""
    base = ExperimentConfig.parse({}).to_dict()
    for section, registry in (("dataset", DATASETS), ("sharing", SHARING), ("weighting", WEIGHTING)):
        spec = raw.get(section) if isinstance(raw.get(section), Mapping) else {}
        name = spec.get("name", base[section]["name"])
        # The default name stays (a different name must show in the link); the options
        # are compared with the defaults of the entry the config names.
        base[section] = {"name": base[section]["name"], "options": _option_defaults(registry, name)}
    return base


def config_to_params(config: ExperimentConfig | Mapping[str, Any]) -> dict[str, str]:
    """The config as query parameters: one dotted key per value that is not the default."""
    raw = config.to_dict() if isinstance(config, ExperimentConfig) else dict(config)
    defaults = _flatten(default_config_dict(raw))
    params: dict[str, str] = {}
    for key, value in _flatten(raw).items():
        if key in defaults and defaults[key] == value:
            continue
        if key not in defaults and (value is None or value == {} or value == []) and not key.endswith("tasks"):
            continue
        params[key] = yaml_scalar(value)
    # Defaults go missing in the diff; a section's name must stay with its options.
    for section in ("dataset", "sharing", "weighting"):
        if any(k.startswith(f"{section}.options.") for k in params) and f"{section}.name" not in params:
            params[f"{section}.name"] = yaml_scalar(raw[section]["name"])
    return dict(sorted(params.items()))


def config_params(query: Mapping[str, Any]) -> dict[str, str]:
    """The experiment's keys among the query parameters (`run` and strangers left out)."""
    out = {}
    for key, value in query.items():
        if key.split(".", 1)[0] in CONFIG_FIELDS:
            out[key] = value[-1] if isinstance(value, list) else str(value)
    return dict(sorted(out.items()))


def params_to_raw(params: Mapping[str, str]) -> dict[str, Any]:
    """Query parameters -> a (not yet validated) config dict; ConfigError if malformed."""
    raw = apply_overrides({}, [f"{k}={v}" for k, v in config_params(params).items()])
    if isinstance(raw.get("tasks"), str):  # `tasks=y1,y2` is easier to type than `[y1, y2]`
        raw["tasks"] = [t.strip() for t in raw["tasks"].split(",") if t.strip()]
    for name in ("dataset", "sharing", "weighting", "optimizer"):
        if name in raw and not isinstance(raw[name], dict):
            raise ConfigError(f"{name}: give a name, e.g. {name}.name=...")
        if name in raw and not isinstance(raw[name].get("options", {}), dict):
            raise ConfigError(f"{name}.options: give single options, e.g. {name}.options.KEY=VALUE")
    if "weights" in raw and not isinstance(raw["weights"], dict):
        raise ConfigError("weights: give one weight per task, e.g. weights.y1=2")
    # `dataset.options.correlation=-0.5` alone means the default dataset's option.
    for name in ("dataset", "sharing", "weighting"):
        if name in raw and "name" not in raw[name]:
            raw[name]["name"] = default_name(name)
    return raw


def default_name(section_name: str) -> str:
    """The registry entry a config uses when it names none (dataset, sharing, weighting)."""
    return ExperimentConfig.model_fields[section_name].default_factory().name


def section(raw: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = raw.get(name)
    return dict(value) if isinstance(value, Mapping) else {}


def error_text(exc: BaseException) -> str:
    """A user-facing message for an error (never a traceback)."""
    if isinstance(exc, MTLLabError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


# ---- the draft experiment from the form's widgets -------------------------------------
def seed(ss: MutableMapping[str, Any], key: str, value: Any, *, force: bool = False) -> None:
    """Give a widget its starting value (from the URL or a loaded config) unless the user
    has already set it in this tab."""
    if force or key not in ss:
        ss[key] = value


def clear_form(ss: MutableMapping[str, Any]) -> None:
    for key in [k for k in list(ss.keys()) if str(k).startswith("cfg.")]:
        del ss[key]


def read_options(
    ss: Mapping[str, Any], registry: Any, name: str, raw_section: Mapping[str, Any], key_of: Any
) -> dict[str, Any]:
    """An entry's options: the widgets' values over what the config already had for it."""
    opts = dict(raw_section.get("options") or {}) if raw_section.get("name") == name else {}
    if name not in registry:
        return opts
    for spec in option_fields(registry.get(name).options):
        key = key_of(name, spec.name)
        if spec.kind != "complex" and key in ss:
            value = ss[key]
            if spec.kind == "text" and value == "" and not spec.required:
                value = spec.default
            opts[spec.name] = value
    return opts


def dataset_from_session(ss: Mapping[str, Any], raw: Mapping[str, Any]) -> dict[str, Any]:
    """{"name", "options"} of the dataset the form describes (needed before its tasks)."""
    ds = ss.get(K_DATASET, section(raw, "dataset").get("name", default_name("dataset")))
    ds_opts = read_options(ss, DATASETS, ds, section(raw, "dataset"), k_ds_opt)
    if ds == "csv":
        targets = ss.get(K_CSV_TARGETS)
        if targets is not None:
            ds_opts["targets"] = list(targets) or None
        text = ss.get(K_CSV_TEXT)
        if text is not None:
            ds_opts["text_column"] = None if text == NO_TEXT_COLUMN else text
    return {"name": ds, "options": ds_opts}


def weighting_from_session(ss: Mapping[str, Any], raw: Mapping[str, Any]) -> str:
    """The weighting strategy the form describes: its select box, else the loaded config's."""
    return ss.get(K_WEIGHTING, section(raw, "weighting").get("name", default_name("weighting")))


def weights_used(weighting: str) -> bool:
    """Whether strategy `weighting` reads the manual weights (the sliders). An unknown name
    counts as yes: the form then shows the default strategy, and the config check names it."""
    return weighting not in WEIGHTING or WEIGHTING.get(weighting).extra["uses_weights"] != "none"


def draft_from_session(
    ss: Mapping[str, Any], raw: Mapping[str, Any], task_names: Sequence[str]
) -> dict[str, Any]:
    """The config dict the form describes: what the widgets say, over `raw` (the loaded
    config), so fields without a widget (model sizes, eval interval, ...) are kept."""
    draft = copy.deepcopy(dict(raw))
    draft["dataset"] = dataset_from_session(ss, raw)

    ticked = [t for t in task_names if bool(ss.get(k_task(t), True))]
    draft["tasks"] = None if list(ticked) == list(task_names) else ticked
    weights = {}
    # A strategy that ignores the manual weights gets none (the sliders are disabled and
    # keep their values for when a strategy that reads them is chosen again).
    for t in ticked if weights_used(weighting_from_session(ss, raw)) else []:
        w = float(ss.get(k_weight(t), 1.0))
        if w != 1.0:
            weights[t] = w
    draft["weights"] = weights

    for sec, key, registry, key_of in (
        ("sharing", K_SHARING, SHARING, k_sh_opt),
        ("weighting", K_WEIGHTING, WEIGHTING, k_wt_opt),
    ):
        name = ss.get(key, section(raw, sec).get("name", default_name(sec)))
        draft[sec] = {"name": name, "options": read_options(ss, registry, name, section(raw, sec), key_of)}

    # Fields whose widget has not been drawn yet keep the config's value as it is (the
    # config check then names anything wrong with it).
    if ss.get(K_BUDGET) == "epochs" and K_EPOCHS in ss:
        draft["epochs"] = float(ss[K_EPOCHS])
        draft["steps"] = None
    elif ss.get(K_BUDGET) == "steps" and K_STEPS in ss:
        draft["steps"] = int(ss[K_STEPS])
        draft.pop("epochs", None)
    for key, name in ((K_BATCH, "batch_size"), (K_SEED, "seed"), (K_N_SEEDS, "n_seeds"), (K_DEVICE, "device"),
                      (K_THREADS, "threads")):
        if key in ss:
            draft[name] = ss[key]
    if K_LR in ss:
        draft["optimizer"] = {**section(raw, "optimizer"), "lr": float(ss[K_LR])}
    return draft


def validate(draft: Mapping[str, Any]) -> tuple[ExperimentConfig | None, str | None]:
    """(config, None) if the draft is a valid experiment, else (None, the message).

    A CSV path outside the folders the dashboard may read is refused before the config
    check opens it (`check_dataset_access`).
    """
    try:
        ds = section(draft, "dataset")
        check_dataset_access(ds.get("name"), ds.get("options"))
        return ExperimentConfig.parse(dict(draft)), None
    except (ConfigError, DataError) as exc:
        return None, str(exc)


def normalised_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """w_t / Σ w: each task's share of the total loss weight (display only)."""
    total = sum(max(w, 0.0) for w in weights.values())
    return {t: (max(w, 0.0) / total if total > 0 else 0.0) for t, w in weights.items()}


def safe_task_names(dataset: str, options: Mapping[str, Any]) -> tuple[list[str], str | None]:
    try:
        check_dataset_access(dataset, options)
        return dataset_task_names(dataset, dict(options)), None
    except (ConfigError, DataError) as exc:
        return [], str(exc)


def color_tasks(config: Mapping[str, Any] | None, fallback: Sequence[str]) -> list[str]:
    """The task order colours are keyed by: the dataset's full task list when it can be
    read, so a task keeps its colour in runs that leave other tasks out."""
    if config:
        ds = section(config, "dataset")
        names, err = safe_task_names(ds.get("name", ""), ds.get("options") or {})
        if not err and set(fallback) <= set(names):
            return names
    return list(fallback)


# ---- progress -------------------------------------------------------------------------
def is_transfer(config: Mapping[str, Any] | None) -> bool:
    """True for a transfer experiment's stored config (`mtl_core.transfer.TransferConfig`)."""
    return bool(config) and config.get("kind") == "transfer"


def run_budgets(config: Mapping[str, Any]) -> list[int] | None:
    """Steps per model of `run_phases(config)` when they differ (a transfer run's
    pre-training vs its target models); None when every model has the same budget.
    A pre-training budget in epochs counts as one target model's."""
    if not is_transfer(config):
        return None
    steps = [s for _, s in phase_plan.plan(config)]
    target = int(config.get("target_steps") or 0)
    return [target if s is None else s for s in steps]


def run_batch_size(config: Mapping[str, Any]) -> int:
    """The batch size a run's speed (samples/s) is counted in."""
    if is_transfer(config):
        return int(section(config, "base").get("batch_size") or 64)
    return int(config.get("batch_size") or 64)


def run_phases(config: Mapping[str, Any]) -> list[str]:
    """The models a run trains, in order (`mtl_core.phases.plan`): for each seed, one
    single-task baseline per task, then the multi-task model ("stl:y1", "mtl", then
    "stl:y1@1", "mtl@1", ...); a transfer run: "pretrain", then each arm at each fraction."""
    return phase_plan.phases(config)


def phase_label(phase: str | None) -> str:
    """A phase in words ("single-task baseline y1", "multi-task model, seed 2", ...)."""
    return phase_plan.label(phase)


def progress_summary(
    run: Mapping[str, Any], phases: Sequence[str], *, batch_size: int, budgets: Sequence[int] | None = None
) -> dict[str, Any]:
    """Overall fraction done, a one-line description and the ETA in seconds (or None).

    The work done is every model before the current one in the run's plan (`phases`) plus
    the steps of the current one (`mtl_core.phases.position`); the work left, at the current
    speed, gives the ETA (cached baselines take no time, so it errs on the long side).
    `budgets` gives each phase's steps when they differ (a transfer run); otherwise every
    model has the budget the current one reports.
    """
    status, phase = run.get("status"), _phase(run)
    if status == "finished":
        return {"fraction": 1.0, "text": "finished", "eta_s": 0.0}
    if status == "queued" or not phase:
        return {"fraction": 0.0, "text": "starting the training process…", "eta_s": None}
    total = run.get("total_steps")
    total = int(total) if total is not None and not _isnan(total) else None
    at = phase_plan.position(list(phases), phase, _count(run.get("step")), budgets=budgets, total_steps=total)
    parts = [f"{phase_label(phase)} ({at.index + 1}/{at.count})"]
    if at.budget:
        parts.append(f"step {at.step:,}/{at.budget:,}")
    sps = run.get("samples_per_s")
    sps = float(sps) if sps is not None and not _isnan(sps) else None
    eta = None
    if sps and status == "running":  # an ended run has no speed and no ETA
        parts.append(f"{sps:,.0f} samples/s")
        if at.budget:
            eta = (at.total - at.done) / (sps / float(max(int(batch_size), 1)))
            parts.append(f"ETA {format_seconds(eta)}")
    return {"fraction": at.fraction, "text": " · ".join(parts), "eta_s": eta}


def _phase(run: Mapping[str, Any]) -> str | None:
    """The run's phase, None when it has none yet: a table of several runs (pandas) holds
    NaN, not None, for a run that has not reported one."""
    phase = run.get("phase")
    return phase if isinstance(phase, str) and phase else None


def _count(value: Any) -> int:
    """A step count from a run row; 0 for None or NaN (no step reported yet)."""
    return 0 if value is None or _isnan(value) else int(value)


def format_seconds(seconds: float) -> str:
    seconds = max(float(seconds), 0.0)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def _isnan(value: Any) -> bool:
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return False


# ---- uploads ----------------------------------------------------------------------------
def uploads_dir() -> Path:
    """`$MTL_LAB_HOME/uploads` (next to the run store): uploaded CSV files are kept here."""
    folder = default_store_path().parent / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


UPLOAD_STEM_CHARS = 80  # of the original name; with the hash prefix well under a file system's 255 bytes


def save_upload(filename: str, data: bytes) -> Path:
    """Save an uploaded file under a name made of its content hash and a cleaned-up,
    shortened original name (the same file uploaded twice is stored once).

    Only ASCII letters, digits, `.`, `_` and `-` are kept, so any name a browser sends
    (250 characters, emoji, `../`) makes a valid file name in the uploads folder.
    """
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(str(filename).replace("\\", "/")).name).strip("._-")
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem or len(suffix) > 10:
        stem, suffix = name, ""
    stem = stem[:UPLOAD_STEM_CHARS].rstrip("._-") or "upload"
    suffix = suffix or "csv"
    digest = hashlib.sha256(data).hexdigest()[:12]
    path = uploads_dir() / f"{digest}-{stem}.{suffix}"
    if not path.exists():
        path.write_bytes(data)
    return path


# ---- which files the dashboard may read -----------------------------------------------------


def allowed_data_dirs() -> list[Path]:
    """The folders whose files the dashboard may read: `$MTL_LAB_HOME/uploads` (what the
    uploader writes) and every folder in MTL_LAB_DATA_DIRS, real paths (symlinks resolved)."""
    dirs = [default_store_path().parent / "uploads"]
    dirs += [Path(d) for d in os.environ.get(DATA_DIRS_ENV, "").split(os.pathsep) if d.strip()]
    return [Path(os.path.realpath(os.path.expanduser(d))) for d in dirs]


def check_data_path(path: Any) -> Path:
    """The real path of a data file a link, a config file or the form names, if the
    dashboard may read it; DataError otherwise.

    Anyone who can open a link chooses the path, so the dashboard reads only files it was
    given: uploads and the operator's --data-dir folders. The real path is compared (so
    `..`, `~` and symlinks lead nowhere else), nothing is opened or stat'ed before the
    check, and the message is the same whether a refused file exists or not. The CLI and
    the Python API read any path: there the user is the operator.
    """
    text = str(path or "")
    try:
        real = Path(os.path.realpath(os.path.expanduser(text)))
    except (ValueError, OSError):  # e.g. a NUL byte in the path
        real = None
    if text.strip() and real is not None:
        for folder in allowed_data_dirs():
            if real != folder and real.is_relative_to(folder):
                return real
    raise DataError(
        f"CSV path '{text}' is refused: this dashboard reads only files uploaded here "
        "($MTL_LAB_HOME/uploads) or inside a folder its operator allowed. Upload the file "
        "with the CSV uploader, or start the dashboard with `mtl-lab dashboard --data-dir "
        "FOLDER` to allow the files in FOLDER."
    )


def check_dataset_access(name: Any, options: Mapping[str, Any] | None) -> None:
    """DataError when a dataset's options name a file the dashboard may not read
    (`check_data_path`); every read of a user's file in the dashboard passes here."""
    options = options if isinstance(options, Mapping) else {}
    if name == "csv" or "path" in options:
        check_data_path(options.get("path"))


def read_csv_header(path: str) -> list[str]:
    """The column names of a CSV file the dashboard may read (`check_data_path`)."""
    from mtl_core.tasks.csv_import import read_header

    check_data_path(path)
    return read_header(path)


# ---- the server's exposure ----------------------------------------------------------------------
def exposure_message(address: Any, environ: Mapping[str, str] | None = None) -> str | None:
    """Why the dashboard refuses to run bound to `address`, or None when it may.

    It starts training processes and reads uploads: anyone who reaches it can use this
    machine. Beyond loopback only when the operator said so (`--host`, or the env var).
    """
    environ = os.environ if environ is None else environ
    if is_loopback(address) or environ.get(ALLOW_REMOTE_ENV, "").strip() not in ("", "0"):
        return None
    where = f"address {address}" if address else "every network interface"
    return (
        f"This dashboard is listening on {where}, so anyone on the network can start "
        "training runs and upload files on this machine. Start it with `mtl-lab dashboard` "
        "(which binds to 127.0.0.1 from any folder). To share it on a network knowingly, "
        f"start it with `mtl-lab dashboard --host ADDRESS`, or set {ALLOW_REMOTE_ENV}=1."
    )


# ---- starting a run once per submission --------------------------------------------------------
SS_STARTED = "_started_submissions"  # config fingerprint -> run id (or "" while starting)


def config_fingerprint(config: ExperimentConfig) -> str:
    """One submission's identity: the same experiment, pressed Train twice, is one run."""
    text = json.dumps(config.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def started_run(ss: Mapping[str, Any], config: ExperimentConfig | None, store: RunStore | None = None) -> str | None:
    """The run this tab already started for this very config and that is still queued or
    running ("" while it is being started), else None: Train is then disabled."""
    if config is None:
        return None
    run_id = (ss.get(SS_STARTED) or {}).get(config_fingerprint(config))
    if run_id is None or run_id == "":
        return run_id
    from mtl_core.store import ACTIVE_STATUSES

    try:
        status = (store or get_store()).get_run(run_id)["status"]
    except StoreError:
        return None
    return run_id if status in ACTIVE_STATUSES else None


# ---- the model's shape without the data --------------------------------------------------------
def dataset_stand_in(name: str, options: Mapping[str, Any]) -> Any:
    """A dataset with the same inputs and tasks as `name` with `options` (input kind and
    width, each task's kind and classes) but as few rows as the dataset allows, for what
    needs only the model's shape (the parameter count): a link asking for 50,000 rows
    costs the page no more than one asking for 30."""
    from mtl_core.tasks import load_dataset

    check_dataset_access(name, options)
    entry = DATASETS.get(name, field_name="dataset.name")
    small = dict(options)
    for key, info in entry.options.model_fields.items():
        if key == "n_samples":
            lo, _, lo_open, _ = _bounds(info.metadata)
            small[key] = int(lo) + int(lo_open) if lo is not None else 100
    return load_dataset(name, small)


# ---- things that need a Streamlit session -----------------------------------------------
def store_path() -> Path:
    return default_store_path()


@st.cache_resource(show_spinner=False)
def _open_store(path: str) -> RunStore:
    return RunStore(path)


def get_store() -> RunStore:
    """The run store of $MTL_LAB_HOME: one shared handle per store file (cache_resource).

    Keyed by path, so a test that points MTL_LAB_HOME elsewhere gets its own store.
    RunStore serialises its calls with a lock, so sessions may share it.
    """
    return _open_store(str(store_path()))


def current_run_id() -> str | None:
    """The watched run: `?run=` in the URL, else the one this tab last watched."""
    rid = st.query_params.get(RUN_PARAM)
    if rid:
        return str(rid)
    return st.session_state.get(SS_RUN)


def set_run_id(run_id: str | None) -> None:
    if run_id:
        st.session_state[SS_RUN] = run_id
        if st.query_params.get(RUN_PARAM) != run_id:
            st.query_params[RUN_PARAM] = run_id
    else:
        st.session_state.pop(SS_RUN, None)
        if RUN_PARAM in st.query_params:
            del st.query_params[RUN_PARAM]


def get_run_safe(run_id: str) -> tuple[dict[str, Any] | None, str | None]:
    """(run row, None) or (None, a readable message) for a run id from a link."""
    try:
        return get_store().get_run(run_id), None
    except StoreError as exc:
        return None, f"{exc}. It may have been deleted; pick another run."


SS_LIVE = "_live_curves"  # the watched run's curves read so far, and the figure drawn from them


def live_metrics(ss: MutableMapping[str, Any], run_id: str, *, metric: str = "loss") -> pd.DataFrame:
    """The run's `metric` rows, read incrementally: each poll of a live panel reads only the
    rows logged since its previous poll (`RunStore.metrics_since`) and appends them to what
    this browser session already holds."""
    store = get_store()
    key = (str(store.path), run_id, metric)
    cache = ss.get(SS_LIVE)
    if not isinstance(cache, dict) or cache.get("key") != key:
        cache = {"key": key, "rowid": 0, "frame": None, "figure": None}
    new, cache["rowid"] = store.metrics_since(run_id, cache["rowid"], metric=metric)
    frame = cache["frame"]
    if frame is None or frame.empty:
        cache["frame"] = new
    elif not new.empty:
        cache["frame"] = pd.concat([frame, new], ignore_index=True)
    ss[SS_LIVE] = cache
    return cache["frame"]


def live_figure(ss: MutableMapping[str, Any]) -> Any:
    """The figure the live panel drew at its previous poll (for `charts.loss_curves(reuse=)`)."""
    cache = ss.get(SS_LIVE)
    return cache.get("figure") if isinstance(cache, dict) else None


def keep_live_figure(ss: MutableMapping[str, Any], figure: Any) -> None:
    cache = ss.get(SS_LIVE)
    if isinstance(cache, dict):
        cache["figure"] = figure


def get_live_run(run_id: str, *, refresh: bool = True) -> tuple[dict[str, Any] | None, str | None]:
    """(run row, None) or (None, a readable message) for a live panel's poll.

    `refresh` first marks runs whose process died as interrupted, so a panel watching a
    killed run sees it end.
    """
    store = get_store()
    try:
        if refresh:
            store.mark_interrupted()
        return store.get_run(run_id), None
    except StoreError as exc:
        return None, f"{exc}. It may have been deleted."


def run_label(row: Mapping[str, Any]) -> str:
    """`20261124-235959-ab12cd · name · mmoe_synthetic/hard · Δm +3.2 %` for pickers."""
    parts = [str(row.get("id"))]
    if isinstance(row.get("name"), str) and row["name"]:
        parts.append(row["name"])
    dataset = row.get("dataset")
    if dataset is None or _isnan(dataset):  # a transfer run nests its dataset under `base`
        parts.append("transfer")
    else:
        parts.append(f"{dataset}/{row.get('sharing')}")
    dm = row.get("delta_m")
    if dm is not None and not _isnan(dm):
        parts.append(f"Δm {float(dm):+.2f} %")
    if row.get("status") != "finished":
        parts.append(str(row.get("status")))
    return " · ".join(parts)


@st.cache_resource(show_spinner=False)
def device_name() -> str:
    """The accelerator the engine would use: the CUDA device's name, or "CPU"."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return "CPU"


def cuda_available() -> bool:
    return device_name() != "CPU"


def run_tasks(config: Mapping[str, Any]) -> list[str]:
    """A run's tasks in order, from its stored config."""
    try:
        return ExperimentConfig.parse(dict(config)).task_list()
    except MTLLabError:
        tasks = config.get("tasks")
        if tasks:
            return list(tasks)
        ds = section(config, "dataset")
        names, _ = safe_task_names(ds.get("name", ""), ds.get("options") or {})
        return names


# ---- transfer experiments ---------------------------------------------------------------------
TRANSFER_PARAM = "transfer"  # ?transfer=<run id>: the transfer run the Transfer page shows
FRACTION_CHOICES = ("1 %", "2 %", "5 %", "10 %", "20 %", "50 %", "100 %")


def parse_fractions(labels: Sequence[Any]) -> tuple[list[float], str | None]:
    """Percentages as typed or picked ("5 %", "5%", "12.5") -> sorted fractions (0.05, ...).

    Every entry is read as a percentage of the target's labelled training rows, so "0.5"
    is half a percent. Returns (fractions, None) or ([], a message naming the bad entry).
    """
    out: list[float] = []
    for label in labels:
        text = str(label).strip().removesuffix("%").strip().replace(",", ".")
        try:
            pct = float(text)
        except ValueError:
            return [], (f"fractions: {label!r} is not a percentage; type a number such as 30 "
                        "(for 30 % of the target's labelled rows)")
        if not (math.isfinite(pct) and 0.0 < pct <= 100.0):
            return [], f"fractions: {label!r} is outside 0 … 100 %; give a share such as 5 or 100"
        out.append(pct / 100.0)
    return sorted(set(out)), None


def transfer_draft(
    *,
    dataset: str,
    options: Mapping[str, Any],
    sources: Sequence[str],
    target: str | None,
    arms: Sequence[str],
    fractions: Sequence[float],
    pretrain_steps: int,
    target_steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    text_encoder: str | None = None,
) -> dict[str, Any]:
    """The transfer config (`mtl_core.transfer.TransferConfig` as a dict) the Transfer
    page describes. Pre-training records no interference: it would only slow it down."""
    base: dict[str, Any] = {
        "dataset": {"name": dataset, "options": dict(options)},
        "steps": int(pretrain_steps),
        "eval_every": max(int(pretrain_steps) // 4, 1),
        "batch_size": int(batch_size),
        "optimizer": {"lr": float(lr)},
        "seed": int(seed),
        "interference": False,
    }
    if text_encoder:
        base["model"] = {"text_encoder": text_encoder}
    return {
        "kind": "transfer",
        "name": f"transfer {', '.join(sources)} → {target}",
        "base": base,
        "sources": list(sources),
        "target": target or "",
        "arms": list(arms),
        "fractions": list(fractions),
        "target_steps": int(target_steps),
    }


def transfer_runs(store: RunStore) -> list[dict[str, Any]]:
    """The stored transfer runs, newest first (rows of `RunStore.runs`).

    A transfer config nests its dataset under `base`, so its runs have no dataset column;
    only those are opened to read their kind.
    """
    runs = store.runs()
    out = []
    for row in runs[runs["dataset"].isna()].to_dict("records"):
        try:
            if is_transfer(store.get_run(row["id"])["config"]):
                out.append(row)
        except StoreError:
            continue  # deleted meanwhile
    return out


def transfer_run_label(row: Mapping[str, Any]) -> str:
    """`20261124-235959-ab12cd · transfer pos, ner → topic · finished` for the picker."""
    return " · ".join(str(p) for p in (row.get("id"), row.get("name") or "transfer", row.get("status")))
