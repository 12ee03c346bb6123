"""What the dashboard reads of a dataset without training on it: its task names, the
order task colours follow, a stored run's tasks, and a small stand-in with the model's
shape (for the parameter count). Every read of a user's file is checked first
(`dashboard.state.access.check_dataset_access`)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from dashboard.state.access import check_dataset_access
from dashboard.state.fields import _bounds
from dashboard.state.links import section
from mtl_core.config import ExperimentConfig
from mtl_core.errors import ConfigError, DataError, MTLLabError
from mtl_core.tasks import DATASETS, dataset_task_names


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
