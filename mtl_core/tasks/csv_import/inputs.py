"""The inputs of a CSV dataset, fitted on the *training* rows only so that no statistic of
the validation or test rows leaks into them.

Tabular columns: numeric ones standardised (a missing cell imputed with the training
median), categorical (non-numeric) ones one-hot encoded, with scikit-learn's
`ColumnTransformer`. Or one free-text column: words -> ids over the training rows'
vocabulary (`mtl_core.tasks.text`, words seen fewer than `min_freq` times read as
`<unk>`), padded to `max_len` words (default: the 99th percentile of the training
lengths, at most `MAX_TOKENS`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mtl_core.errors import DataError
from mtl_core.tasks.csv_import.reader import FLOAT32_MAX, offending_lines
from mtl_core.tasks.text import build_vocabulary, default_max_len, token_ids

_MISSING_CATEGORY = "<missing>"  # a missing categorical input is a category of its own
_MANY_CATEGORIES = 50  # a categorical input wider than this is probably an identifier


def vector_inputs(
    frame: pd.DataFrame,
    columns: list[str],
    train: np.ndarray,
    lines: np.ndarray,
    file: Path,
    warnings: list[str],
) -> tuple[np.ndarray, list[str], dict]:
    """Standardised numeric + one-hot categorical features, fitted on the training rows."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric: dict[str, np.ndarray] = {}
    categorical: dict[str, np.ndarray] = {}
    imputed: dict[str, int] = {}
    for col in columns:
        cells = frame[col]
        present = cells.notna().to_numpy()
        if not present.any():
            warnings.append(f"input column '{col}' is empty on every row; it is ignored")
            continue
        numbers = pd.to_numeric(cells, errors="coerce").to_numpy(dtype=float)
        not_numbers = present & np.isnan(numbers)
        if not not_numbers.any():
            huge = present & ~(np.abs(numbers) <= FLOAT32_MAX)
            if huge.any():
                raise DataError(
                    f"CSV file '{file}': input column '{col}' has infinite or too large values "
                    f"(beyond ±3.4e38) on {offending_lines(lines[huge], cells[huge].tolist())}; fix them "
                    "or clear those cells (an empty cell is filled with the training median)"
                )
            numeric[col] = numbers
            if (~present).any():
                imputed[col] = int((~present).sum())
            continue
        if not_numbers.sum() <= 0.1 * present.sum():
            warnings.append(
                f"input column '{col}' is treated as categorical because "
                f"{offending_lines(lines[not_numbers], cells[not_numbers].tolist())} "
                "are not numbers; fix them if the column is numeric"
            )
        values = cells.fillna(_MISSING_CATEGORY).astype(str).to_numpy()
        categorical[col] = values
        width = len(np.unique(values[train]))
        if width > _MANY_CATEGORIES:
            warnings.append(
                f"input column '{col}' has {width} distinct values in the training rows, one "
                "feature each; if it is an identifier, leave it out with inputs=[...]"
            )
    if not numeric and not categorical:
        raise DataError(
            f"CSV file '{file}' has no usable input column (every input column is empty); "
            "fill the feature columns or name a text column with text_column=..."
        )

    table = pd.DataFrame({**{c: v for c, v in numeric.items()}, **{c: v for c, v in categorical.items()}})
    parts = []
    if numeric:
        # keep_empty_features: a column missing on every training row becomes 0, not dropped,
        # so the feature width does not depend on the split.
        parts.append((
            "num",
            make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()),
            list(numeric),
        ))
    if categorical:
        parts.append((
            "cat",
            OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float64),
            list(categorical),
        ))
    transform = ColumnTransformer(parts, sparse_threshold=0.0)
    transform.fit(table.iloc[train])
    x = np.asarray(transform.transform(table), dtype=np.float64)
    names = [n.split("__", 1)[1] for n in transform.get_feature_names_out()]
    if numeric:  # its features come first, in column order
        # A column whose training rows hardly vary (a spread of 4e-39 beside a 2.0 elsewhere)
        # would be divided into overflow: centre it only, as a constant one.
        scaler = transform.named_transformers_["num"][-1]
        overflow = [j for j in range(len(numeric)) if not (np.abs(x[:, j]) <= FLOAT32_MAX).all()]
        for j in overflow:
            warnings.append(
                f"input column '{names[j]}' hardly varies on the training rows (std {scaler.scale_[j]:.3g}) "
                "beside its values on other rows, so standardising it would overflow: it is centred only "
                "(std 1); check the column, or leave it out with inputs=[...]"
            )
            scaler.scale_[j] = 1.0
        if overflow:
            x = np.asarray(transform.transform(table), dtype=np.float64)
    unusable = ~np.isfinite(x).all(axis=0) | (np.abs(x) > FLOAT32_MAX).any(axis=0)
    broken = [names[j] for j in np.flatnonzero(unusable)]
    if broken:
        raise DataError(
            f"CSV file '{file}': input column '{broken[0]}' cannot be standardised (its values "
            "are too large for its spread); rescale the column, e.g. to other units"
        )
    details = {"numeric": list(numeric), "categorical": list(categorical), "imputed": imputed}
    return x.astype(np.float32), names, details


def token_inputs(
    tokens: list[list[str]], train: np.ndarray, text_column: str, file: Path, *,
    min_freq: int = 2, max_len: int | None = None,
) -> tuple[np.ndarray, list[str], int]:
    """Word ids over a vocabulary of the training rows' words seen at least `min_freq`
    times, padded (and cut) to `max_len` words; None: `default_max_len` of the training rows."""
    lengths = [len(tokens[i]) for i in train]
    if max(lengths, default=0) == 0:
        raise DataError(
            f"CSV file '{file}': text column '{text_column}' has no words on any training row; "
            "fill the text column"
        )
    vocab = build_vocabulary((tokens[i] for i in train), min_freq=min_freq)
    seq_len = default_max_len(lengths) if max_len is None else max_len
    return token_ids(tokens, vocab, seq_len), vocab, seq_len
