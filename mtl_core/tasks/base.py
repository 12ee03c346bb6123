"""What a dataset is to the engine: inputs, one target per task, three splits.

Conventions every dataset follows (the engine, metrics and importers rely on them):
- vector inputs are float32 `(N, D)`; token inputs are int64 `(N, L)` padded with
  `PAD_ID` (0), `UNK_ID` (1) for unknown words;
- classification targets are int64 `(N,)`, tagging targets int64 `(N, L)`, regression
  targets float32 `(N,)`, multi-label targets float32 `(N, K)` of 0/1 (K labels, each row
  any subset of them, the empty set included);
- a missing label is `IGNORE_INDEX` (-100) in an integer target and NaN in a float one
  (a whole NaN row in a multi-label target): its loss is masked, the row is kept for the
  other tasks;
- a regression target may be stored standardised, (y − mean) / std with the training
  rows' statistics, so that its loss sits on the scale of the other tasks' (a target in
  the 100,000s would otherwise dwarf every cross-entropy and take all the weight). The
  spec's `target_scale = (mean, std)` records it, and `metrics.task_metrics` maps
  predictions and targets back: metrics are always in the original units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, ClassVar, Literal, Sequence

import numpy as np
import torch
from pydantic import BaseModel, Field, model_validator

from mtl_core.errors import ConfigError
from mtl_core.registry import Registry
from mtl_core.spec import StrictModel

TaskKind = Literal["classification", "regression", "tagging", "multilabel"]
InputKind = Literal["vector", "tokens"]

PAD_ID = 0
UNK_ID = 1
IGNORE_INDEX = -100

# Primary metric and direction per task kind unless a dataset says otherwise.
DEFAULT_METRIC: dict[str, tuple[str, bool]] = {
    "classification": ("accuracy", True),
    "regression": ("mse", False),
    "tagging": ("token_accuracy", True),
    # Macro-F1 (each label's F1, averaged) rather than micro-F1: a rare label counts as much
    # as a frequent one, so predicting only the common labels does not look good.
    "multilabel": ("macro_f1", True),
}


# A classification task is imbalanced when its majority class holds more than
# max(IMBALANCE_FLOOR, IMBALANCE_RATIO / n_classes) of the labelled training rows.
IMBALANCE_RATIO = 1.5
IMBALANCE_FLOOR = 0.6


def majority_share(train_y: torch.Tensor, num_classes: int) -> float:
    """Share of the labelled training rows in the most frequent class (0 with none labelled)."""
    y = train_y[train_y != IGNORE_INDEX].long().cpu()
    if y.numel() == 0:
        return 0.0
    return float(torch.bincount(y, minlength=num_classes).max()) / y.numel()


def is_imbalanced(share: float, num_classes: int) -> bool:
    """Whether accuracy would flatter a constant guess: the majority class's share exceeds
    1.5× its balanced share 1/K and 60 %.

    Why these numbers: always answering the majority class scores accuracy = share, so above
    1.5/K a collapsed model already looks 50 % better than chance and a gain in accuracy can
    be a gain in majority answers (issue 16: a model that always said "no" read as +11 %).
    The 60 % floor keeps many-class tasks (1.5/10 = 15 %) on accuracy unless one class
    dominates; for two classes the rule is share > 75 %, for three or more > 60 %."""
    return share > max(IMBALANCE_FLOOR, IMBALANCE_RATIO / num_classes)


@dataclass(frozen=True)
class TaskSpec:
    """One task of a dataset: what it predicts and how it is scored."""

    name: str
    kind: TaskKind
    num_classes: int | None = None  # classification / tagging; multilabel: the number of labels
    class_names: tuple[str, ...] | None = None  # multilabel: the label names
    metric: str = ""  # primary metric; "" = the kind's default
    higher_is_better: bool | None = None
    description: str = ""
    # Regression only: (mean, std) the stored targets were standardised with (training rows);
    # None = the targets are in their original units.
    target_scale: tuple[float, float] | None = None
    # Why `metric` is the primary metric, in words for the results ("macro-F1 (majority class
    # 87 %)"); "" = the kind's default or the dataset's choice.
    metric_reason: str = ""
    # Whether the dataset named `metric` (filled in by __post_init__): only a defaulted metric
    # may be switched to macro-F1 for imbalance (`MTLDataset.__post_init__`).
    metric_explicit: bool | None = None
    # Multilabel only: tune one decision threshold per label on the validation split
    # (`metrics.tune_thresholds`) instead of 0.5; the test metrics then use those.
    tune_thresholds: bool = False

    def __post_init__(self) -> None:
        if self.metric_explicit is None:
            object.__setattr__(self, "metric_explicit", bool(self.metric))
        default_metric, default_hib = DEFAULT_METRIC[self.kind]
        if self.kind == "tagging" and any(c.startswith("B-") for c in self.class_names or ()):
            default_metric = "entity_f1"  # BIO tags are scored by entities, not tokens
        if not self.metric:
            object.__setattr__(self, "metric", default_metric)
        if self.higher_is_better is None:
            object.__setattr__(self, "higher_is_better", default_hib)
        if self.kind != "regression":
            assert self.num_classes and self.num_classes >= 2, f"{self.name}: num_classes"
            assert self.target_scale is None, f"{self.name}: only a regression target has a scale"
        elif self.target_scale is not None:
            mean, std = self.target_scale
            assert math.isfinite(mean) and math.isfinite(std) and std > 0, f"{self.name}: target_scale"
        assert not self.tune_thresholds or self.kind == "multilabel", f"{self.name}: only multilabel has thresholds"

    def to_original_units(self, values: torch.Tensor) -> torch.Tensor:
        """Regression values (targets or predictions) in the target's original units, float64."""
        values = values.detach().double()
        if self.target_scale is None:
            return values
        mean, std = self.target_scale
        return values * std + mean

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "num_classes": self.num_classes,
            "class_names": list(self.class_names) if self.class_names else None,
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "description": self.description,
            "target_scale": list(self.target_scale) if self.target_scale else None,
            "metric_reason": self.metric_reason,
            **({"tune_thresholds": True} if self.tune_thresholds else {}),
        }

    def for_train_labels(self, train_y: torch.Tensor) -> "TaskSpec":
        """This spec with its primary metric decided from the training labels: macro-F1 for an
        imbalanced classification task (`is_imbalanced`) whose metric the dataset did not name,
        with the reason; else unchanged. Training split only: the test split never chooses
        how it is scored."""
        if self.kind != "classification" or self.metric_explicit:
            return self
        share = majority_share(train_y, int(self.num_classes or 0))
        if not is_imbalanced(share, int(self.num_classes or 0)):
            return self
        return replace(self, metric="macro_f1", higher_is_better=True,
                       metric_reason=f"macro-F1 (majority class {share * 100:.0f} %)")


@dataclass
class Split:
    """Inputs and per-task targets of one split (train, val or test)."""

    x: torch.Tensor
    y: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def to(self, device: torch.device | str) -> "Split":
        return Split(self.x.to(device), {t: v.to(device) for t, v in self.y.items()})

    def subset(self, index: torch.Tensor | np.ndarray | Sequence[int]) -> "Split":
        index = torch.as_tensor(np.asarray(index), dtype=torch.long, device=self.x.device)
        return Split(self.x[index], {t: v[index] for t, v in self.y.items()})

    def labelled_count(self, task: str) -> int:
        y = self.y[task]
        if y.is_floating_point() and y.dim() > 1:  # multilabel: a row counts unless all NaN
            return int((~torch.isnan(y)).any(dim=1).sum())
        if y.is_floating_point():
            return int((~torch.isnan(y)).sum())
        if y.dim() > 1:  # tagging: a row counts when any token is labelled
            return int((y != IGNORE_INDEX).any(dim=1).sum())
        return int((y != IGNORE_INDEX).sum())


@dataclass
class MTLDataset:
    """A multi-task dataset: one input per row, one target per task, three splits."""

    name: str
    input_kind: InputKind
    tasks: dict[str, TaskSpec]
    train: Split
    val: Split
    test: Split
    input_dim: int = 0  # vector inputs: number of features
    vocab: list[str] | None = None  # token inputs: id -> word
    feature_names: list[str] | None = None
    info: dict[str, Any] = field(default_factory=dict)  # provenance, counts, notes

    def __post_init__(self) -> None:
        # The one place a task's primary metric is decided from data (imbalance -> macro-F1):
        # selection, Δm, significance, sweeps and the dashboard all read `tasks[t].metric`.
        self.tasks = {n: s.for_train_labels(self.train.y[n]) if n in self.train.y else s
                      for n, s in self.tasks.items()}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab) if self.vocab else 0

    @property
    def task_names(self) -> list[str]:
        return list(self.tasks)

    def select_tasks(self, names: Sequence[str]) -> "MTLDataset":
        """The same data restricted to `names` (in that order)."""
        unknown = [n for n in names if n not in self.tasks]
        if unknown:
            raise ConfigError(
                f"tasks: unknown task {unknown[0]!r} for dataset {self.name!r}; "
                f"choose from: {', '.join(self.tasks)}"
            )

        def pick(split: Split) -> Split:
            return Split(split.x, {n: split.y[n] for n in names})

        return MTLDataset(
            name=self.name,
            input_kind=self.input_kind,
            tasks={n: self.tasks[n] for n in names},
            train=pick(self.train),
            val=pick(self.val),
            test=pick(self.test),
            input_dim=self.input_dim,
            vocab=self.vocab,
            feature_names=self.feature_names,
            info=self.info,
        )

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input_kind": self.input_kind,
            "input_dim": self.input_dim,
            "vocab_size": self.vocab_size,
            "tasks": [t.as_dict() for t in self.tasks.values()],
            "splits": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},
            "info": self.info,
        }


class SplitOptions(StrictModel):
    """Options shared by datasets that split their rows: the held-out fractions."""

    max_holdout: ClassVar[float] = 0.6  # val + test must stay below this

    val_fraction: float = Field(0.15, gt=0.0, lt=1.0, description="share of rows in the validation split")
    test_fraction: float = Field(0.15, gt=0.0, lt=1.0, description="share of rows in the test split")

    @model_validator(mode="after")
    def _check_fractions(self) -> "SplitOptions":
        total = self.val_fraction + self.test_fraction
        if total >= self.max_holdout:
            raise ValueError(
                f"val_fraction + test_fraction is {total:g}; keep it below {self.max_holdout:g} "
                "so that the training split holds enough rows"
            )
        return self


def balanced_class_weights(train_y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Cross-entropy class weights n_samples / (n_classes · count_c) from the labelled
    training rows (scikit-learn's `compute_class_weight("balanced")`; King & Zeng, 2001),
    float32 `(num_classes,)`. A class absent from the training split keeps weight 1: it is
    never a target, so its weight never enters the loss."""
    from sklearn.utils.class_weight import compute_class_weight

    y = train_y[train_y != IGNORE_INDEX].long().cpu().numpy()
    weights = np.ones(num_classes, dtype=np.float64)
    present = np.unique(y)
    if present.size:
        weights[present] = compute_class_weight("balanced", classes=present, y=y)
    return torch.tensor(weights, dtype=torch.float32)


def balanced_label_weights(train_y: torch.Tensor) -> torch.Tensor:
    """Per label of a multilabel task, the balanced weights of its two classes, "absent" and
    "present": n / (2 · count) over the labelled training rows, as
    `balanced_class_weights` gives a binary classification task (King & Zeng, 2001), float32
    `(2, n_labels)` (row 0 absent, row 1 present). A label that is always or never present in
    the training split keeps weights 1: there is nothing to balance."""
    y = train_y.detach().cpu().double()
    labelled = ~torch.isnan(y)
    n = labelled.sum(dim=0).double()
    present = ((y == 1) & labelled).sum(dim=0).double()
    absent = n - present
    weights = torch.ones(2, y.shape[1], dtype=torch.float64)
    both = (present > 0) & (absent > 0)
    weights[0, both] = n[both] / (2 * absent[both])
    weights[1, both] = n[both] / (2 * present[both])
    return weights.float()


def fit_target_scale(train_values: torch.Tensor | np.ndarray) -> tuple[float, float, bool]:
    """(mean, std, constant) of a regression target's labelled *training* values.

    The validation and test rows are standardised with these same statistics, so nothing
    of them leaks into training. Population std (ddof = 0), as scikit-learn's
    StandardScaler. A constant target (std 0, e.g. one labelled training row) cannot be
    divided by its spread: it is centred only (std 1) and `constant` is True so that the
    caller can warn.
    """
    values = np.asarray(train_values, dtype=np.float64)
    values = values[~np.isnan(values)]
    assert values.size, "a regression task has at least one labelled training row (checked by the importer)"
    mean, std = float(values.mean()), float(values.std())
    constant = std == 0.0
    return mean, (1.0 if constant else std), constant


def split_indices(
    n: int,
    *,
    seed: int,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    stratify: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic train/val/test row indices (stratified when `stratify` is given)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    holdout = val_fraction + test_fraction
    train, rest = train_test_split(
        idx, test_size=holdout, random_state=seed, stratify=stratify
    )
    strat_rest = stratify[rest] if stratify is not None else None
    val, test = train_test_split(
        rest, test_size=test_fraction / holdout, random_state=seed + 1, stratify=strat_rest
    )
    return np.sort(train), np.sort(val), np.sort(test)


# A dataset builder: (validated options, seed) -> MTLDataset.
Builder = Callable[[Any, int], MTLDataset]
# Task names without building the data (config validation): options -> names.
TaskLister = Callable[[Any], list[str]]

DATASETS: Registry[Builder] = Registry("dataset")


def register_dataset(
    name: str,
    *,
    description: str,
    options: type[BaseModel],
    task_names: TaskLister,
    paper: str = "",
    input_kind: InputKind = "vector",
) -> Callable[[Builder], Builder]:
    """Register a dataset builder under `name` (see the module docstring for its contract)."""
    return DATASETS.register(
        name,
        description=description,
        paper=paper,
        options=options,
        task_names=task_names,
        input_kind=input_kind,
    )


def dataset_task_names(name: str, options: dict[str, Any] | None = None) -> list[str]:
    entry = DATASETS.get(name, field_name="dataset.name")
    opts = entry.parse_options(options, where="dataset")
    return list(entry.extra["task_names"](opts))


def load_dataset(name: str, options: dict[str, Any] | None = None, *, seed: int = 0) -> MTLDataset:
    """Build dataset `name` with `options`; deterministic for a given seed."""
    entry = DATASETS.get(name, field_name="dataset.name")
    opts = entry.parse_options(options, where="dataset")
    return entry.obj(opts, seed)
