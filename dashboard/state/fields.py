"""Widget specs from the registries' pydantic options models, and values made to fit them.

`option_fields(model)` turns an options model into one `OptionField` per option (a slider,
a number input, a select, a checkbox, a text box, or "complex": kept from the config, not
edited); `coerce` / `coerce_noted` make a value from a link or a YAML file safe for its
widget. The Training section's fields (`TRAINING_FIELDS`), the task weight sliders
(`WEIGHT_FIELD`) and the threads select are specified here too. Pure: no Streamlit.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Sequence

from pydantic import BaseModel

from dashboard import i18n
from dashboard.state.limits import DASHBOARD_LIMITS, LIMIT_REASON, option_limit
from mtl_core.models import SHARING
from mtl_core.tasks import DATASETS
from mtl_core.weighting import WEIGHTING

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


# ---- the texts a field shows, in the page's language ----------------------------------------------
SECTION_OF_KIND = {"dataset": "dataset", "sharing mode": "sharing", "weighting strategy": "weighting"}


def _catalogued(keys: Sequence[str], lang: str) -> str | None:
    texts = i18n.catalogue(lang if lang in i18n.LANGUAGES else i18n.DEFAULT)
    return next((texts[k] for k in keys if k in texts), None)


def field_label(name: str, lang: str = "en") -> str:
    """The widget label of option `name` (key `train.option.<name>`); English: the name
    with spaces, which is also the fallback. The Chinese label keeps the config key beside it."""
    return _catalogued([f"train.option.{name}"], lang) or name.replace("_", " ")


def field_help(section: str, entry: str, spec: OptionField, lang: str = "en") -> str:
    """The help of an option of registry entry `entry` (`section`: dataset, sharing or
    weighting): `train.help.<section>.<entry>.<option>` where the entries' descriptions of that
    option differ, else `train.help.<section>.<option>`; the pydantic description where the
    catalogue has neither (a new option shows its English text until it is translated)."""
    keys = [f"train.help.{section}.{entry}.{spec.name}", f"train.help.{section}.{spec.name}"]
    return _catalogued(keys, lang) or spec.description


def entry_description(section: str, entry: str, description: str, lang: str = "en") -> str:
    """The one-line description of a registry entry (`train.entry.<section>.<entry>`), else
    the registry's own."""
    return _catalogued([f"train.entry.{section}.{entry}"], lang) or description


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
