"""Handwritten digits (8x8) from scikit-learn, as two multi-task problems.

Source: `sklearn.datasets.load_digits`, 1,797 greyscale 8x8 images of the digits 0-9
(UCI "Optical Recognition of Handwritten Digits", Alpaydin & Kaynak, 1998), shipped
inside scikit-learn, so no download is needed. Pixels (0-16) are scaled to [0, 1].

- `variant="pair"` (MultiMNIST-style, Sener & Koltun, NeurIPS 2018): two digit images
  side by side form one 8x16 input (128 features, row-major); the tasks `left` and
  `right` name the digit in each half (10 classes each). The two tasks share a way of
  reading digits but look at different pixels, so they compete for a shared model's
  capacity. To keep held-out scores honest the *source images* are split into
  train/val/test first (stratified by digit) and pairs are drawn within each split, so
  no image seen in training appears in a validation or test pair
  (`info["source_indices"]`). The `n_samples` pairs are shared out by the split fractions.
- `variant="attributes"`: one image (64 features) with the tasks `digit` (10 classes),
  `parity` (even / odd) and `ge5` (digit < 5 / digit ≥ 5). All three are functions of
  the same digit, so they are maximally related: the upper end of task relatedness.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from mtl_core.tasks.base import MTLDataset, Split, SplitOptions, TaskSpec, register_dataset, split_indices

DIGITS = tuple(str(d) for d in range(10))
PAIR_TASKS = ("left", "right")
ATTRIBUTE_TASKS = ("digit", "parity", "ge5")


class DigitsOptions(SplitOptions):

    variant: Literal["pair", "attributes"] = Field(
        "pair",
        description="'pair': two digits side by side, tasks left and right (MultiMNIST-style); "
        "'attributes': one digit, tasks digit, parity and ge5",
    )
    n_samples: int = Field(
        4000,
        ge=100,
        le=1_000_000,
        description="number of image pairs in all splits (variant 'pair'; 'attributes' uses each "
        "of the 1,797 images once and ignores it)",
    )


def _task_names(opts: DigitsOptions) -> list[str]:
    return list(PAIR_TASKS if opts.variant == "pair" else ATTRIBUTE_TASKS)


@register_dataset(
    "digits",
    description="Handwritten 8x8 digits: two digits side by side (left/right, MultiMNIST-style) "
    "or one digit with digit, parity and ≥5 tasks.",
    paper="Sener & Koltun, NeurIPS 2018 (MultiMNIST); Alpaydin & Kaynak, 1998 (UCI digits)",
    options=DigitsOptions,
    task_names=_task_names,
)
def build_digits(opts: DigitsOptions, seed: int) -> MTLDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)  # (1797, 8, 8) in [0, 1]
    digit = bunch.target.astype(np.int64)
    source_splits = split_indices(
        len(digit),
        seed=seed,
        val_fraction=opts.val_fraction,
        test_fraction=opts.test_fraction,
        stratify=digit,
    )
    info: dict[str, Any] = {
        "source": "sklearn.datasets.load_digits (UCI optical recognition of handwritten digits)",
        "variant": opts.variant,
        "source_images": {name: len(idx) for name, idx in zip(("train", "val", "test"), source_splits)},
        # Which of the 1,797 images each split draws from (disjoint by construction).
        "source_indices": {
            name: idx.tolist() for name, idx in zip(("train", "val", "test"), source_splits)
        },
    }
    if opts.variant == "pair":
        return _build_pairs(opts, seed, images, digit, source_splits, info)
    return _build_attributes(images, digit, source_splits, info)


def _build_pairs(
    opts: DigitsOptions,
    seed: int,
    images: np.ndarray,
    digit: np.ndarray,
    source_splits: tuple[np.ndarray, ...],
    info: dict[str, Any],
) -> MTLDataset:
    rng = np.random.default_rng(seed)
    n_val = round(opts.n_samples * opts.val_fraction)
    n_test = round(opts.n_samples * opts.test_fraction)
    sizes = (opts.n_samples - n_val - n_test, n_val, n_test)
    splits = []
    for src, size in zip(source_splits, sizes):
        left = rng.integers(0, len(src), size)
        # The right image is another image of the same split, uniformly among the rest.
        right = (left + rng.integers(1, len(src), size)) % len(src)
        left, right = src[left], src[right]
        x = np.concatenate([images[left], images[right]], axis=2).reshape(size, -1)  # (size, 8*16)
        splits.append(
            Split(
                torch.as_tensor(x),
                {"left": torch.as_tensor(digit[left]), "right": torch.as_tensor(digit[right])},
            )
        )
    tasks = {
        side: TaskSpec(
            side, "classification", num_classes=10, class_names=DIGITS,
            description=f"the digit in the {side} half of the 8x16 image",
        )
        for side in PAIR_TASKS
    }
    info["pairs"] = dict(zip(("train", "val", "test"), sizes))
    return MTLDataset(
        name="digits",
        input_kind="vector",
        tasks=tasks,
        train=splits[0],
        val=splits[1],
        test=splits[2],
        input_dim=8 * 16,
        feature_names=[f"px_r{r}_c{c}" for r in range(8) for c in range(16)],
        info=info,
    )


def _build_attributes(
    images: np.ndarray, digit: np.ndarray, source_splits: tuple[np.ndarray, ...], info: dict[str, Any]
) -> MTLDataset:
    x = torch.as_tensor(images.reshape(len(digit), -1))
    y = {
        "digit": torch.as_tensor(digit),
        "parity": torch.as_tensor(digit % 2),
        "ge5": torch.as_tensor((digit >= 5).astype(np.int64)),
    }
    related = "; a function of the same digit as the other tasks (maximally related)"
    tasks = {
        "digit": TaskSpec(
            "digit", "classification", num_classes=10, class_names=DIGITS,
            description="the digit 0-9" + related,
        ),
        "parity": TaskSpec(
            "parity", "classification", num_classes=2, class_names=("even", "odd"),
            description="whether the digit is even or odd" + related,
        ),
        "ge5": TaskSpec(
            "ge5", "classification", num_classes=2, class_names=("<5", ">=5"),
            description="whether the digit is at least 5" + related,
        ),
    }
    train, val, test = (Split(x[i], {t: v[i] for t, v in y.items()}) for i in source_splits)
    return MTLDataset(
        name="digits",
        input_kind="vector",
        tasks=tasks,
        train=train,
        val=val,
        test=test,
        input_dim=64,
        feature_names=[f"px_r{r}_c{c}" for r in range(8) for c in range(8)],
        info=info,
    )
