"""Your own CSV file as a multi-task dataset: name the target columns, get three splits.

One row is one example; each target column is one task. What the importer does:

- **Inputs.** Either tabular columns (default: every column that is neither a target nor
  the text column): numeric columns are standardised and categorical (non-numeric)
  columns one-hot encoded, both fitted on the *training* rows only so that no statistic
  of the validation or test rows leaks into the inputs; a missing numeric cell is
  imputed with the training median. Or one free-text column (`text_column`):
  whitespace-tokenised (optionally lower-cased), a vocabulary of the training rows' words
  seen at least `min_freq` (2) times (`<pad>` = 0, `<unk>` = 1, so `<unk>` is trained),
  optional word dropout to `<unk>` in training (`word_dropout`, off), padded to `max_len`
  words (default: the 99th percentile of the training lengths, at most `MAX_TOKENS`);
  rows cut are counted per split in `info["truncation"]` and warned about.
- **Targets.** Each task is classification, regression or tagging. Given as a list, a
  column's kind is inferred: text labels, or integer labels with at most `max_classes`
  distinct values, make a classification task; other numbers a regression task; a
  column whose cells are space-separated tags, one per word of the text column on every
  row (and more than one word on some row), a tagging task. Given as a dict
  (`{"price": "regression"}`), or with `kinds` beside a list, the kind is yours. Class names
  are the distinct labels as strings, sorted (numerically when every label is a number).
- **Multi-label targets** (never inferred): a column of kind `multilabel` lists each
  row's labels joined by `label_delimiter` (`;`: `joy;surprise`), the labels being those of
  the training rows; an empty cell means "none of the labels", NA "not labelled". Or
  `label_groups` (`{"emo": "emo_"}`): one task per group of 0/1 columns sharing a prefix,
  one label per column (the rest of its name); a row with the whole group empty is not
  labelled, and the group's columns are not inputs. Targets are float 0/1 `(N, K)`, scored
  by macro-F1 (primary) and micro-F1; `tune_thresholds` tunes each label's threshold on
  the validation split.
- **Missing labels.** An empty cell (or one of `MISSING_MARKERS`: NA, NaN, null, ...)
  in a target column means "no label for this task on this row": `IGNORE_INDEX` in a
  classification/tagging target, NaN in a regression one. The row is kept for the
  other tasks.
- **Regression scale.** A regression target is standardised, (y − mean) / std with the
  mean and std of its labelled *training* rows (validation and test rows use the same
  statistics), so that a price in the 100,000s trains with a loss of order 1 beside a
  cross-entropy instead of taking all the weight. The spec keeps `target_scale =
  (mean, std)` and every metric is reported in the column's own units
  (`metrics.task_metrics`). `standardise_targets=False` keeps the raw units. A column
  constant on the training rows is centred only (std 1) and a warning says so.
- **Splits.** The file's own (`split_column`: train / validation / test, see
  `split.SPLIT_NAMES`), or `split_indices` with the seed, not stratified, so that the
  same file and seed give the same rows whichever targets are chosen (`split`'s
  docstring says what that costs). A file too small for three non-empty random splits
  is refused, saying which split would be empty.

The file is UTF-8 (a byte-order mark is fine), comma-separated, with double-quoted fields
where a cell holds a comma, a quote or a line break; files over `DEFAULT_MAX_BYTES`
(50 MiB) are refused unless `max_bytes` is raised.

The importer is pure: it reads the file and writes nothing. Every problem a user can
cause raises `DataError` naming the file, the column and the first offending lines
(1-based, as a spreadsheet numbers them: the header is line 1), and saying how to fix it.

One module per reason to change: `reader` (file -> table of cells with line numbers),
`columns` (which column plays which part; target kinds), `targets` (labels, regression
scale), `inputs` (tabular features or word ids, fitted on the training rows), `split`
(train / val / test rows), `dataset` (`from_csv`, `CSVOptions` and the `csv` registration).
The text pipeline (`tokenise`, the vocabulary, word ids) is `mtl_core.tasks.text`, shared
with other importers.
"""

from mtl_core.tasks.csv_import.columns import TASK_KINDS, task_name_problem
from mtl_core.tasks.csv_import.dataset import CSVOptions, build_csv, from_csv
from mtl_core.tasks.csv_import.reader import DEFAULT_MAX_BYTES, MAX_FIELD_CHARS, MISSING_MARKERS, read_header
from mtl_core.tasks.text import MAX_TOKENS, PAD_TOKEN, UNK_TOKEN

__all__ = [
    "DEFAULT_MAX_BYTES",
    "MAX_FIELD_CHARS",
    "MAX_TOKENS",
    "MISSING_MARKERS",
    "PAD_TOKEN",
    "TASK_KINDS",
    "UNK_TOKEN",
    "CSVOptions",
    "build_csv",
    "from_csv",
    "read_header",
    "task_name_problem",
]
