"""The `csv` dataset: `from_csv` reads, plans, encodes and splits a user's file, in that
order (`reader`, `columns`, `targets`, `split`, `inputs`), and `CSVOptions` is its config.

See the package docstring (`mtl_core.tasks.csv_import`) for what the importer does.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from pydantic import Field, field_validator

from mtl_core.errors import ConfigError, DataError
from mtl_core.tasks.base import UNK_ID, MTLDataset, Split, SplitOptions, TaskKind, register_dataset
from mtl_core.tasks.csv_import.columns import check_settings, infer_kind, plan_columns
from mtl_core.tasks.csv_import.inputs import token_inputs, vector_inputs
from mtl_core.tasks.csv_import.reader import DEFAULT_MAX_BYTES, read_header, read_table
from mtl_core.tasks.csv_import.split import check_split_sizes, column_split, random_split
from mtl_core.tasks.csv_import.targets import (
    encode_targets,
    labelled_counts,
    multilabel_present,
    standardise_regression,
)
from mtl_core.tasks.text import (
    LENGTH_PERCENTILE,
    MAX_TOKENS,
    MAX_TOKENS_ALLOWED,
    SOURCE_OPTION,
    SOURCE_PERCENTILE,
    tokenise,
    truncation,
)

log = logging.getLogger(__name__)


class CSVOptions(SplitOptions):
    """Options of the `csv` dataset (see `from_csv`)."""

    max_holdout: ClassVar[float] = 1.0  # a user's file may hold out what it likes

    path: str = Field(..., description="path of the CSV file (UTF-8, comma-separated, header on line 1)")
    targets: list[str] | dict[str, TaskKind] | None = Field(
        None,
        description="target columns, one task each; a list infers each kind, "
        "a dict maps column -> classification / regression / tagging / multilabel",
    )
    kinds: dict[str, TaskKind] | None = Field(
        None,
        description="the kind of some target columns given as a list, overriding the inference "
        "(e.g. {tags: multilabel}); the others are inferred",
    )
    label_delimiter: str = Field(
        ";",
        description="multilabel column: the character(s) between a row's labels ('a;b'); an empty cell "
        "means no label, NA means unlabelled",
    )
    label_groups: dict[str, str] | None = Field(
        None,
        description="multilabel tasks from groups of 0/1 columns: task -> column prefix (e.g. {emo: emo_} "
        "makes task emo with one label per column emo_*)",
    )
    tune_thresholds: bool = Field(
        False,
        description="multilabel: tune one decision threshold per label on the validation split "
        "(the one maximising that label's F1) instead of 0.5; the test metrics use them",
    )
    inputs: list[str] | None = Field(
        None, description="input columns (default: every column that is not a target or the text column)"
    )
    text_column: str | None = Field(
        None, description="one free-text column as token input instead of tabular inputs"
    )
    split_column: str | None = Field(
        None,
        description="a column saying which rows are train / validation (val, dev) / test, any "
        "case; the fractions are then ignored (default: a random split from the seed)",
    )
    min_freq: int = Field(
        2, ge=1, description="text column: words seen fewer times in the training rows read as <unk>"
    )
    word_dropout: float = Field(
        0.0, ge=0.0, lt=1.0,
        description="text column: share of training words replaced by <unk> at each step (default 0: off)",
    )
    lowercase: bool = Field(False, description="text column: lower-case the words before the vocabulary")
    max_len: int | None = Field(
        None, ge=1, le=MAX_TOKENS_ALLOWED,
        description=f"text column: words kept per row (default: the {LENGTH_PERCENTILE:g}th percentile "
        f"of the training rows' lengths, at most {MAX_TOKENS}); longer rows are cut and counted",
    )
    max_bytes: int = Field(
        DEFAULT_MAX_BYTES, ge=1, description="largest file accepted, in bytes (default 50 MiB)"
    )
    max_classes: int = Field(
        20, ge=2, description="most distinct values a target may have to be inferred as classification"
    )
    min_rows: int = Field(
        1, ge=1, description="fewest data rows accepted (the engine passes its batch size)"
    )
    standardise_targets: bool = Field(
        True,
        description="train regression targets standardised with the training rows' mean and std "
        "(losses of order 1 beside the other tasks'); metrics stay in the column's units",
    )

    @field_validator("label_delimiter")
    @classmethod
    def _delimiter(cls, v: str) -> str:
        if not v or not v.strip() or v != v.strip() or "\n" in v:
            raise ValueError(f"{v!r} cannot separate labels; give one or more visible characters, e.g. ';' or '|'")
        return v


def from_csv(
    path: str | Path,
    *,
    targets: Sequence[str] | Mapping[str, str] | None = None,
    inputs: Sequence[str] | None = None,
    text_column: str | None = None,
    split_column: str | None = None,
    seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    max_bytes: int = DEFAULT_MAX_BYTES,
    min_rows: int = 1,
    max_classes: int = 20,
    standardise_targets: bool = True,
    min_freq: int = 2,
    word_dropout: float = 0.0,
    lowercase: bool = False,
    max_len: int | None = None,
    kinds: Mapping[str, str] | None = None,
    label_delimiter: str = ";",
    label_groups: Mapping[str, str] | None = None,
    tune_thresholds: bool = False,
) -> MTLDataset:
    """Build a multi-task dataset from a CSV file; deterministic for a given seed.

    Args:
        path: a UTF-8, comma-separated file with the column names on its first line.
        targets: the columns to predict, one task each: a list (kinds inferred, see the
            module docstring) or a dict column -> "classification" | "regression" | "tagging".
        inputs: tabular input columns (default: every column that is neither a target nor
            the text column). Other columns are ignored.
        text_column: use this free-text column as the (token) input instead.
        split_column: a column assigning each row to train / validation / test (values in
            `split.SPLIT_NAMES`, any case); the seed and fractions then do not split.
        seed: seeds the random train/val/test split (not stratified: the same rows
            whichever targets are chosen, see `csv_import.split`).
        val_fraction, test_fraction: shares of the rows held out for validation and test.
        max_bytes: larger files are refused (default `DEFAULT_MAX_BYTES`, 50 MiB).
        min_rows: fewest data rows accepted (the engine passes its batch size).
        max_classes: most distinct integer (or text) values for a target inferred as
            classification; an integer column with more is a regression target.
        standardise_targets: store regression targets as (y − mean) / std with the
            training rows' statistics (see the module docstring); False keeps raw units.
        min_freq: text column: training words seen fewer times read as `<unk>`, so that
            `<unk>` is trained (`tasks.text`).
        word_dropout: text column: probability that a training word is read as `<unk>`
            at a training step (recorded in `info`; the token encoder applies it). Off by
            default: on a tagging benchmark (`bench/unk_words.py`) 0.1 on top of
            min_freq 2 lowered unseen-word accuracy (0.751 vs 0.771, 20 epochs).
        lowercase: text column: lower-case words (the tags of a tagging target are kept).
        max_len: text column: words kept per row; None takes the 99th percentile of the
            training rows' lengths, at most `MAX_TOKENS`. `info["truncation"]` counts the
            rows and words cut per split.
        kinds: column -> kind for some of the targets given as a list (the rest inferred);
            "multilabel" is never inferred, it is asked for here or in a targets dict.
        label_delimiter: what separates the labels in a multilabel column's cell ("a;b").
            An empty cell means the row has none of the labels; NA (or another missing
            marker) means the row is not labelled for that task (masked).
        label_groups: task -> prefix: one multilabel task per group of 0/1 columns whose
            names start with the prefix (labels: the rest of each name). A row with the
            whole group empty is unlabelled; the group's columns are not inputs.
        tune_thresholds: multilabel tasks tune one decision threshold per label on the
            validation split (`metrics.tune_thresholds`) instead of 0.5.

    Raises:
        DataError: the file cannot be used (message names file, column, lines and the fix).
        ConfigError: an argument is invalid whatever the file (an unknown kind, fractions).
    """
    check_settings(val_fraction, test_fraction, max_bytes, min_rows, max_classes)
    _check_text_settings(min_freq, word_dropout, max_len)
    if not label_delimiter or not label_delimiter.strip():
        raise ConfigError(f"label_delimiter: {label_delimiter!r} cannot separate labels; give e.g. ';' or '|'")
    file = Path(path).expanduser()
    table = read_table(file, max_bytes)
    plan = plan_columns(table.header, file, targets, inputs, text_column, split_column,
                        kinds=kinds, label_groups=label_groups)
    frame, lines = table.frame, table.lines
    n = len(frame)
    if n == 0:
        raise DataError(f"CSV file '{file}' has a header but no data rows; add one row per example")
    if n < min_rows:
        raise DataError(
            f"CSV file '{file}' has {n} data rows, fewer than the batch size {min_rows} "
            "(min_rows); add rows or lower the batch size"
        )

    tokens: list[list[str]] | None = None
    text_counts = None
    if plan.text_column is not None:
        text = frame[plan.text_column]
        tokens = [tokenise(str(c), lowercase=lowercase) if ok else [] for c, ok in zip(text.tolist(), text.notna().tolist())]
        text_counts = np.array([len(t) for t in tokens])

    task_kinds: dict[str, str] = {}
    labelled = np.zeros(n, dtype=bool)
    for name, declared in plan.targets.items():
        present = (multilabel_present(frame[name], table.blank[name] if table.blank is not None else None)
                   if declared == "multilabel" else frame[name].notna().to_numpy())
        if not present.any():
            raise DataError(
                f"CSV file '{file}': target column '{name}' has no labels (its cells on lines "
                f"{lines[0]}-{lines[-1]} are all empty); fill it or drop it from targets"
            )
        labelled |= present
        task_kinds[name] = declared or infer_kind(name, frame[name], lines, text_counts, max_classes, file,
                                                  delimiter=label_delimiter)
    for task, members in plan.groups.items():
        labelled |= frame[list(members.values())].notna().any(axis=1).to_numpy()
        task_kinds[task] = "multilabel"
    if labelled.sum() < 3:
        raise DataError(
            f"CSV file '{file}' has {int(labelled.sum())} labelled row(s) in its target columns "
            f"({', '.join(plan.task_names)}); train, validation and test need at least one each: "
            "label at least 3 rows (more for a useful model)"
        )
    if plan.split_column is not None:
        splits = column_split(frame[plan.split_column], lines, column=plan.split_column, file=file)
    else:
        check_split_sizes(n, val_fraction=val_fraction, test_fraction=test_fraction, file=file)
        splits = random_split(n, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)

    warnings: list[str] = []
    y, specs = encode_targets(
        task_kinds, {**plan.targets, **{g: "multilabel" for g in plan.groups}}, frame, lines, text_counts, file,
        max_tokens=max_len or MAX_TOKENS, train=splits["train"], blank=table.blank, delimiter=label_delimiter,
        groups=plan.groups, tune_thresholds=tune_thresholds, warnings=warnings,
    )
    labelled_per_split = labelled_counts(y, splits, lines, seed=seed, file=file, warnings=warnings)
    # After the split and its checks (every task has a labelled training row), before tensors.
    scales = (
        standardise_regression(y, specs, splits["train"], warnings=warnings) if standardise_targets else {}
    )
    info: dict = {
        "source": str(file.resolve()),
        "file_name": file.name,
        "sha256": table.sha256,
        "bytes": table.n_bytes,
        "seed": seed,
        "val_fraction": val_fraction,
        "test_fraction": test_fraction,
        "rows": n,
        "split_rows": {s: len(idx) for s, idx in splits.items()},
        "labelled": labelled_per_split,
        "targets": {t: {"kind": k, "inferred": plan.targets.get(t, "multilabel") is None}
                    for t, k in task_kinds.items()},
        # "random" (seed, fractions; not stratified) or "column" (the file's split_column)
        "split": {"method": "column", "column": plan.split_column} if plan.split_column else {"method": "random"},
        # multilabel tasks from 0/1 columns: task -> {label: column}
        **({"label_groups": plan.groups} if plan.groups else {}),
        "standardise_targets": standardise_targets,
        # task -> {mean, std} of the training rows, in the column's units (empty: raw units)
        "target_scale": scales,
    }

    # Inputs last: their statistics (scaler, medians, categories, vocabulary) come from train rows.
    if tokens is not None:
        x, vocab, seq_len = token_inputs(
            tokens, splits["train"], plan.text_column, file, min_freq=min_freq, max_len=max_len
        )
        for name, kind in task_kinds.items():
            if kind == "tagging":
                y[name] = y[name][:, :seq_len]
        empty = int((text_counts == 0).sum())
        if empty:
            warnings.append(
                f"text column '{plan.text_column}' is empty on {empty} row(s); they are all padding"
            )
        cut = truncation(text_counts, splits, seq_len)
        cut["source"] = SOURCE_OPTION if max_len else SOURCE_PERCENTILE
        if sum(cut["rows_cut"].values()):
            warnings.append(
                f"text column '{plan.text_column}' is cut at {seq_len} words ({cut['source']}): "
                + ", ".join(f"{cut['rows_cut'][s]} {s} row(s)" for s in ("train", "val", "test"))
                + " lose words; raise max_len to keep them"
            )
        unk = x[splits["train"]] == UNK_ID
        info.update(
            text_column=plan.text_column, max_len=seq_len,
            truncated_rows=int(sum(cut["rows_cut"].values())), truncation=cut,
            vocabulary={
                "size": len(vocab), "min_freq": min_freq, "lowercase": lowercase,
                "train_unk_words": int(unk.sum()),
            },
            word_dropout=word_dropout,
        )
        input_kind, input_dim, feature_names = "tokens", 0, None
    else:
        x, feature_names, details = vector_inputs(
            frame, plan.inputs, splits["train"], lines, file, warnings
        )
        info["inputs"] = {"numeric": details["numeric"], "categorical": details["categorical"]}
        info["imputed"] = details["imputed"]
        input_kind, input_dim, vocab = "vector", x.shape[1], None
    info["warnings"] = warnings
    for w in warnings:
        log.warning("%s: %s", file, w)

    rows = Split(torch.as_tensor(x), {t: torch.as_tensor(v) for t, v in y.items()})  # every row; split below

    return MTLDataset(
        name="csv",
        input_kind=input_kind,
        tasks=specs,
        train=rows.subset(splits["train"]),
        val=rows.subset(splits["val"]),
        test=rows.subset(splits["test"]),
        input_dim=input_dim,
        vocab=vocab,
        feature_names=feature_names,
        info=info,
    )


def _check_text_settings(min_freq: int, word_dropout: float, max_len: int | None) -> None:
    """Refuse text options that are wrong whatever the file."""
    if min_freq < 1:
        raise ConfigError(f"min_freq: {min_freq!r} must be at least 1 (1 keeps every training word)")
    if not 0.0 <= word_dropout < 1.0:
        raise ConfigError(f"word_dropout: {word_dropout!r} must be in [0, 1) (0 turns it off)")
    if max_len is not None and not 1 <= max_len <= MAX_TOKENS_ALLOWED:
        raise ConfigError(
            f"max_len: {max_len!r} must be between 1 and {MAX_TOKENS_ALLOWED} words, or left out "
            "to take it from the training rows"
        )


def _task_names(opts: CSVOptions) -> list[str]:
    """Task names from the header alone (config validation), by the rules of `from_csv`."""
    file = Path(opts.path).expanduser()
    header = read_header(file, max_bytes=opts.max_bytes)
    plan = plan_columns(header, file, opts.targets, opts.inputs, opts.text_column, opts.split_column,
                        kinds=opts.kinds, label_groups=opts.label_groups)
    return plan.task_names


@register_dataset(
    "csv",
    description="Your own CSV file: one row per example, one target column per task.",
    options=CSVOptions,
    task_names=_task_names,
)
def build_csv(opts: CSVOptions, seed: int) -> MTLDataset:
    return from_csv(
        opts.path,
        targets=opts.targets,
        inputs=opts.inputs,
        text_column=opts.text_column,
        split_column=opts.split_column,
        seed=seed,
        val_fraction=opts.val_fraction,
        test_fraction=opts.test_fraction,
        max_bytes=opts.max_bytes,
        min_rows=opts.min_rows,
        max_classes=opts.max_classes,
        standardise_targets=opts.standardise_targets,
        min_freq=opts.min_freq,
        word_dropout=opts.word_dropout,
        lowercase=opts.lowercase,
        max_len=opts.max_len,
        kinds=opts.kinds,
        label_delimiter=opts.label_delimiter,
        label_groups=opts.label_groups,
        tune_thresholds=opts.tune_thresholds,
    )
