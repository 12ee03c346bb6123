"""Palmer penguins: three classification tasks and one regression from four measurements.

Data: 344 penguins of three species on three islands of the Palmer Archipelago,
Antarctica, 2007-2009 (Gorman, Williams & Fraser, PLoS ONE 2014), as shipped by the
`palmerpenguins` package (Horst, Hill & Gorman, 2020; CC0) inside its wheel, so no
download is needed.

Inputs: bill length, bill depth, flipper length (mm) and the study year, standardised
with the mean and standard deviation of the *training* split only (statistics of the
held-out rows must not leak into training). Tasks: `species` (3 classes), `sex`
(2), `island` (3) and `body_mass` (regression, in kilograms = body_mass_g / 1000, so
that a mean squared error reads in kg²). The tasks are related (body mass and sex both
follow size; island and species are confounded: Gentoo live only on Biscoe) but not
one function of another.

Rows without an input measurement are dropped (`info["dropped_rows_missing_inputs"]`);
a row whose sex is unknown is kept for the other tasks with sex = IGNORE_INDEX
(`info["missing_labels"]["sex"]`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from mtl_core.errors import DataError
from mtl_core.tasks.base import (
    IGNORE_INDEX, MTLDataset, Split, SplitOptions, TaskSpec, register_dataset, split_indices,
)

FEATURES = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "year")
CLASS_TASKS = {"species": "species", "sex": "sex", "island": "island"}  # task -> column
REGRESSION_TASK, REGRESSION_COLUMN = "body_mass", "body_mass_g"
TASKS = ("species", "sex", "island", "body_mass")


class PenguinsOptions(SplitOptions):
    """Only the split fractions."""


def _task_names(opts: PenguinsOptions) -> list[str]:
    return list(TASKS)


def _load_frame() -> pd.DataFrame:
    try:
        from palmerpenguins import load_penguins
    except ImportError:
        raise DataError(
            "dataset 'penguins' needs the palmerpenguins package; install it with "
            "`pip install palmerpenguins`"
        ) from None
    return load_penguins()


@register_dataset(
    "penguins",
    description="Palmer penguins: species, sex and island classification and body mass regression "
    "from bill and flipper measurements.",
    paper="Gorman, Williams & Fraser, PLoS ONE 2014; palmerpenguins (Horst, Hill & Gorman, 2020)",
    options=PenguinsOptions,
    task_names=_task_names,
)
def build_penguins(opts: PenguinsOptions, seed: int) -> MTLDataset:
    raw = _load_frame()
    missing_input = raw[list(FEATURES)].isna().any(axis=1)
    df = raw.loc[~missing_input].reset_index(drop=True)

    targets: dict[str, torch.Tensor] = {}
    classes: dict[str, tuple[str, ...]] = {}
    for task, column in CLASS_TASKS.items():
        codes, uniques = pd.factorize(df[column], sort=True)  # NaN -> -1
        classes[task] = tuple(str(u) for u in uniques)
        targets[task] = torch.as_tensor(np.where(codes < 0, IGNORE_INDEX, codes), dtype=torch.int64)
    # Kilograms keep the MSE near 0.1-1 instead of ~10^5 in grams; a missing mass is NaN.
    targets[REGRESSION_TASK] = torch.as_tensor(df[REGRESSION_COLUMN].to_numpy() / 1000.0, dtype=torch.float32)

    train_idx, val_idx, test_idx = split_indices(
        len(df),
        seed=seed,
        val_fraction=opts.val_fraction,
        test_fraction=opts.test_fraction,
        stratify=df["species"].to_numpy(),
    )
    from sklearn.preprocessing import StandardScaler

    features = df[list(FEATURES)].to_numpy(dtype=np.float64)
    scaler = StandardScaler().fit(features[train_idx])  # training rows only: no leak
    x = torch.as_tensor(scaler.transform(features), dtype=torch.float32)
    train, val, test = (
        Split(x[i], {t: v[i] for t, v in targets.items()}) for i in (train_idx, val_idx, test_idx)
    )

    tasks = {
        "species": TaskSpec(
            "species", "classification", num_classes=len(classes["species"]),
            class_names=classes["species"], description="penguin species",
        ),
        "sex": TaskSpec(
            "sex", "classification", num_classes=len(classes["sex"]), class_names=classes["sex"],
            description="sex of the penguin (unknown for a few birds: those rows are masked)",
        ),
        "island": TaskSpec(
            "island", "classification", num_classes=len(classes["island"]),
            class_names=classes["island"], description="island where the penguin was measured",
        ),
        "body_mass": TaskSpec(
            "body_mass", "regression",
            description="body mass in kilograms (body_mass_g / 1000), not standardised "
            "(mean about 4.2 kg, std about 0.8 kg); MSE is in kg²",
        ),
    }
    return MTLDataset(
        name="penguins",
        input_kind="vector",
        tasks=tasks,
        train=train,
        val=val,
        test=test,
        input_dim=len(FEATURES),
        feature_names=list(FEATURES),
        info={
            "source": "palmerpenguins.load_penguins() (Horst, Hill & Gorman, 2020), licence CC0",
            "raw_rows": len(raw),
            "rows": len(df),
            "dropped_rows_missing_inputs": int(missing_input.sum()),
            "missing_labels": {
                **{t: int((targets[t] == IGNORE_INDEX).sum()) for t in CLASS_TASKS},
                REGRESSION_TASK: int(torch.isnan(targets[REGRESSION_TASK]).sum()),
            },
            "standardisation": {
                "fitted_on": "train",
                "mean": dict(zip(FEATURES, np.round(scaler.mean_, 4).tolist())),
                "std": dict(zip(FEATURES, np.round(scaler.scale_, 4).tolist())),
            },
            "body_mass_unit": "kg",
        },
    )
