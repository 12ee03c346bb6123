"""The draft experiment from the form's widgets: widget keys, the draft, its check.

Widgets hold the draft between reruns (session state, one per browser tab); nothing
per-user is kept in module globals, so two tabs never see each other's draft. The
functions take the session state as a mapping, so they are tested without Streamlit.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping, MutableMapping, Sequence

from dashboard.state.access import check_dataset_access
from dashboard.state.fields import option_fields
from dashboard.state.links import default_name, section
from mtl_core.config import ExperimentConfig
from mtl_core.errors import ConfigError, DataError, MTLLabError
from mtl_core.models import SHARING
from mtl_core.tasks import DATASETS
from mtl_core.weighting import WEIGHTING

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


def k_ds_opt(dataset: str, option: str) -> str:
    return f"cfg.ds.{dataset}.{option}"


def k_sh_opt(sharing: str, option: str) -> str:
    return f"cfg.sh.{sharing}.{option}"


def k_wt_opt(weighting: str, option: str) -> str:
    return f"cfg.wt.{weighting}.{option}"


def k_csv_kind(column: str) -> str:
    """The kind chosen for CSV target column `column` in the form (the dataset option `kinds`;
    "auto": inferred from its values)."""
    return f"cfg.csv.kind.{column}"


def k_task(task: str) -> str:
    return f"cfg.task.{task}"


def k_weight(task: str) -> str:
    return f"cfg.w.{task}"


def error_text(exc: BaseException) -> str:
    """A user-facing message for an error (never a traceback)."""
    if isinstance(exc, MTLLabError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


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
            # The kind chosen for a target in the CSV form (auto: inferred from its values).
            kinds = {c: ss.get(k_csv_kind(c)) for c in targets}
            ds_opts["kinds"] = {c: k for c, k in kinds.items() if k and k != "auto"} or None
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
