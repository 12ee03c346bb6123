"""The experiment in the URL: query parameters <-> config dict.

The experiment being set up lives in the URL (`st.query_params`) as dotted config keys
that differ from the defaults, e.g. `?dataset.options.correlation=-0.5&weights.y2=2&steps=300`,
the same `key=value` overrides `mtl-lab run --set` takes (`mtl_core.config.apply_overrides`),
so a link reproduces an experiment. `review_config` brings what a link or a YAML file asks
within what the widgets hold (`dashboard.state.fields`) and the server's bounds
(`dashboard.state.limits`), with one note per value it changed. Pure: no Streamlit.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

import yaml
from pydantic import BaseModel

from dashboard.state.fields import TRAINING_FIELDS, WEIGHT_FIELD, coerce_noted, option_fields, threads_noted
from dashboard.state.limits import DASHBOARD_LIMITS, LIMIT_REASON, option_limit
from mtl_core.config import ExperimentConfig, apply_overrides
from mtl_core.errors import ConfigError
from mtl_core.models import SHARING
from mtl_core.tasks import DATASETS
from mtl_core.weighting import WEIGHTING

CONFIG_FIELDS = frozenset(ExperimentConfig.model_fields)

# Session-state keys of the link <-> form sync (one browser tab each).
SS_PARAMS = "_experiment_params"  # the config params this tab last wrote
# The last few it wrote: a rerun that the browser asked for before it had applied the
# newest URL still carries an older one, which is an echo of this tab, not a new link.
SS_WRITTEN = "_written_params"
WRITTEN_KEPT = 16
SS_PENDING = "_pending_params"  # a config to load into the form on the next run


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
