"""The dataset catalogue: every built-in dataset registers itself on import."""

from mtl_core.tasks.base import (
    DATASETS,
    IGNORE_INDEX,
    PAD_ID,
    UNK_ID,
    MTLDataset,
    Split,
    TaskSpec,
    dataset_task_names,
    load_dataset,
    register_dataset,
)
from mtl_core.tasks import csv_import, digits, mmoe_synthetic, penguins, toy_language  # noqa: F401  (registers)
from mtl_core.tasks import conllu_import  # noqa: F401,I001  (registers; listed after the others)
from mtl_core.tasks.csv_import import from_csv

__all__ = [
    "DATASETS",
    "IGNORE_INDEX",
    "PAD_ID",
    "UNK_ID",
    "MTLDataset",
    "Split",
    "TaskSpec",
    "dataset_task_names",
    "from_csv",
    "load_dataset",
    "register_dataset",
]
