"""Universal Dependencies treebanks (CoNLL-U files) as multi-task datasets.

CoNLL-U is the file format of Universal Dependencies (UD; de Marneffe, Manning, Nivre &
Zeman, Computational Linguistics 2021): one word per line with ten tab-separated columns
(ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC), a blank line after each sentence,
`# key = value` comments before it. One treebank annotates every word several ways, which
makes it the classic multi-task setting for language (Collobert & Weston, ICML 2008;
Søgaard & Goldberg, ACL 2016: low-level tags supervised below higher-level ones).

**What the model sees.** The *syntactic words* of each sentence, in order: their FORM
column, optionally lower-cased. A multiword token (a `3-4` line, e.g. Spanish "al" =
"a" + "el") is not seen as such: the model sees its words "a el", each with its own tags,
because UD annotates the words, not the surface token. An empty node (an `8.1` line,
part of the enhanced graph only) carries no basic annotation and is dropped. Words are
ids over a vocabulary of the *training* sentences (`tasks.text`: `<pad>` = 0, `<unk>` = 1,
words seen at least `min_freq` times), any script alike: the importer splits nothing
inside a FORM.

**Tasks** (the `tasks` option, one string each; the engine's task name in brackets):
- `upos`, `xpos`, `deprel` (same names): tagging, one label per word; a `_` cell is a
  missing label. DEPREL is cut to its universal part (`nmod:poss` -> `nmod`) unless
  `deprel_subtypes`.
- `feats.<Key>` (`feats_<Key>`): tagging, the word's value of that morphological feature,
  or `_` where the word has none (absence is a label: "no Number" is what a preposition has).
- `meta.<key>` (`meta_<key>`): sentence classification by a comment `# key = value`; a
  sentence without it is unlabelled.
- `sentence_type`: sentence classification from the final punctuation (question `?`,
  exclamation `!`, statement `.`, and their forms in other scripts: `？ ؟ ; ！ 。 । ۔ ።` …);
  a sentence without final punctuation is unlabelled.
- `clause_type`: question / command / statement / fragment, derived from the tree (the
  clause types of Sadock & Zwicky, 1985): a question opens with an interrogative word
  (PronType=Int) or with a finite verb or auxiliary before the root's subject (inversion,
  "is there a flight …"); a statement has a subject; a command is a subjectless verb root
  ("show me flights"); anything else is a fragment ("flights from denver"). A heuristic
  for languages with English-like word order; use `meta.<key>` for others.

**Splits.** Given `train`, `dev` and `test` files, the treebank's own split (without `dev`,
the validation sentences are `val_fraction` of the training file, chosen by the seed).
Given one `path`, a split from the sentence order and the seed only
(`base.split_indices`, not stratified), so the same file and seed give the same split
whatever tasks are chosen.

Reading is ours, line by line, so that every error names the file and the line; each
line's fields are parsed by the `conllu` package (`parse_id_value`, `parse_dict_value`,
`parse_int_value`, `parse_comment_line`). Files may be gzip-compressed (`.gz`). Parsed
files are kept in memory (keyed by path, size and modification time), so a second
load of the same treebank costs only the encoding.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import re
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Iterator, Sequence

import numpy as np
import torch
from pydantic import Field, field_validator, model_validator

from mtl_core.errors import ConfigError, DataError
from mtl_core.spec import StrictModel
from mtl_core.tasks.base import (
    IGNORE_INDEX,
    MTLDataset,
    Split,
    SplitOptions,
    TaskSpec,
    register_dataset,
    split_indices,
)
from mtl_core.tasks.text import SOURCE_LONGEST, SOURCE_OPTION, build_vocabulary, token_ids, truncation

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 200 * 1024 * 1024  # 200 MiB of (uncompressed) text: larger files are refused
MAX_LEN_AUTO = 128  # max_len = 0: the longest training sentence, at most this many words
MAX_META_CLASSES = 50  # a comment key with more distinct values is an identifier, not a label
COLUMNS = ("ID", "FORM", "LEMMA", "UPOS", "XPOS", "FEATS", "HEAD", "DEPREL", "DEPS", "MISC")
WORD_COLUMNS = ("upos", "xpos", "deprel")
DERIVED_TASKS = ("sentence_type", "clause_type")
TASK_FORMS = "upos, xpos, deprel, feats.<Key> (e.g. feats.Number), meta.<key> (a '# key = value' comment), " \
    "sentence_type, clause_type"
NO_FEATURE = "_"  # the label of a word without the feature (CoNLL-U writes '_')

QUESTION_MARKS = "?？؟\u037e፧⸮"  # Latin, fullwidth (CJK), Arabic, Greek, Ethiopic, reversed
EXCLAMATION_MARKS = "!！"
STATEMENT_MARKS = ".。．।॥۔።…"  # Latin, CJK, fullwidth, Devanagari dandas, Urdu, Ethiopic
CLOSERS = "\"'”’»›)]}」』）】"  # closing quotes and brackets after the final mark
_SUBJECTS = frozenset({"nsubj", "csubj", "expl"})
_NOT_LEADING = frozenset({"discourse", "vocative", "reparandum", "punct", "cc"})

_FEATS_KEY = re.compile(r"[A-Za-z0-9]+(\[[a-z0-9]+\])?")  # UD feature names, layered: Number[psor]
_META_KEY = re.compile(r"[^\s=]+")


# --------------------------------------------------------------------------- task requests


@dataclass(frozen=True)
class TaskRequest:
    """One entry of the `tasks` option: what to read and the engine's task name."""

    spec: str  # as written: "feats.Number"
    name: str  # the task name: "feats_Number" ('.' cannot be in a task name)
    source: str  # upos / xpos / deprel / feats / meta / sentence_type / clause_type
    key: str = ""  # the FEATS or comment key

    @property
    def kind(self) -> str:
        return "tagging" if self.source in (*WORD_COLUMNS, "feats") else "classification"


def _safe(key: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]+", "_", key).strip("_")


def parse_task(spec: str) -> TaskRequest:
    """The request behind one `tasks` entry; ValueError saying the accepted forms."""
    spec = spec.strip()
    if spec in WORD_COLUMNS or spec in DERIVED_TASKS:
        return TaskRequest(spec, spec, spec)
    prefix, _, key = spec.partition(".")
    if prefix == "feats" and _FEATS_KEY.fullmatch(key):
        return TaskRequest(spec, f"feats_{_safe(key)}", "feats", key)
    if prefix == "meta" and _META_KEY.fullmatch(key) and _safe(key):
        return TaskRequest(spec, f"meta_{_safe(key)}", "meta", key)
    hint = f"; choose from {TASK_FORMS}"
    if prefix in ("feats", "meta"):
        raise ValueError(f"task {spec!r} names no {prefix} key after '{prefix}.'{hint}")
    raise ValueError(f"unknown task {spec!r}{hint}")


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True, slots=True)
class Word:
    """One syntactic word: its columns as read (None for '_') and its line in the file."""

    form: str
    upos: str | None
    xpos: str | None
    feats: dict[str, str]
    head: int | None
    deprel: str | None
    line: int


@dataclass(frozen=True)
class Sentence:
    """One sentence: its syntactic words and its `# key = value` comments."""

    words: tuple[Word, ...]
    metadata: dict[str, str]
    line: int  # first line (its first comment or word)

    # Derived once per parsed sentence (parsed files are kept in memory, see read_conllu).
    @cached_property
    def sentence_type(self) -> str | None:
        return sentence_type(self.words)

    @cached_property
    def clause_type(self) -> str:
        return clause_type(self.words)


@dataclass
class ConlluFile:
    """A parsed CoNLL-U file: its sentences and what was skipped."""

    path: Path
    sentences: list[Sentence]
    sha256: str
    n_bytes: int  # size on disk (compressed for .gz)
    multiword_tokens: int = 0
    empty_nodes: int = 0
    feats_keys: set[str] = field(default_factory=set)
    meta_values: dict[str, Counter] = field(default_factory=dict)  # comment key -> its values' counts
    final_marks: int = 0  # sentences with a final punctuation mark (sentence_type)
    has_xpos: bool = False


def _where(file: Path, line: int) -> str:
    return f"CoNLL-U file '{file}', line {line}"


def _lines(file: Path, max_bytes: int, digest: "hashlib._Hash") -> Iterator[tuple[int, str]]:
    """(line number, text) of a UTF-8 file, plain or gzip; refused past `max_bytes` of text."""
    opener = gzip.open if file.suffix == ".gz" else open
    total = 0
    try:
        with opener(file, "rb") as fh:
            for n, raw in enumerate(fh, 1):
                total += len(raw)
                if total > max_bytes:
                    raise DataError(
                        f"CoNLL-U file '{file}' holds more than {max_bytes:,} bytes of text (max_bytes); "
                        "raise max_bytes or use a smaller file"
                    )
                digest.update(raw)
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DataError(
                        f"{_where(file, n)} is not UTF-8 text ({exc.reason} at byte {exc.start} of the "
                        "line); CoNLL-U files are UTF-8: save it as UTF-8"
                    ) from None
                if n == 1:
                    text = text.removeprefix("\ufeff")
                yield n, text.rstrip("\r\n")
    except (EOFError, OSError) as exc:  # gzip.BadGzipFile is an OSError
        how = "a gzip file" if opener is gzip.open else "a file"
        raise DataError(f"CoNLL-U file '{file}' cannot be read as {how} ({exc}); check that the file is "
                        "complete and readable") from None


def _conllu() -> Any:
    """The `conllu` package's line parser module (a dependency; imported when first needed)."""
    try:
        import conllu.parser
    except ImportError as exc:  # pragma: no cover - conllu is in requirements.txt
        raise ImportError("reading CoNLL-U files needs the conllu package: pip install conllu") from exc
    return conllu.parser


def _int_cell(cell: str, parse: Any) -> Any:
    # Plain word numbers (nearly every cell) skip the package's regular expressions.
    return int(cell) if cell.isascii() and cell.isdigit() and (cell == "0" or cell[0] != "0") else parse(cell)


def _parse_word(
    cols: list[str], n: int, file: Path, cp: Any, feats_of: dict[str, dict], cells: dict[str, str]
) -> tuple[int | tuple, Word | None]:
    """(ID, the word) of one word line; the word is None for a multiword token or empty node.
    `feats_of` and `cells` hold one object per distinct FEATS or label string of the file: a
    treebank repeats a few hundred of them over its words (memory, and parsing once each)."""
    try:
        wid = _int_cell(cols[0], cp.parse_id_value)
    except cp.ParseException:
        wid = None
    if wid is None or wid == 0:
        raise DataError(
            f"{_where(file, n)}: the ID column holds {cols[0]!r}, not a word id; write 1, 2, … for a "
            "word, 3-4 for a multiword token, 5.1 for an empty node"
        )
    if isinstance(wid, tuple):
        return wid, None
    form = cols[1]
    if not form:
        raise DataError(f"{_where(file, n)}: word {wid} has an empty FORM column; write the word (or '_')")
    feats = feats_of.get(cols[5])
    if feats is None:
        feats = cp.parse_dict_value(cols[5]) or {}
        bare = [k for k, v in feats.items() if not v]
        if bare:
            raise DataError(
                f"{_where(file, n)}: FEATS {cols[5]!r} gives feature {bare[0]!r} no value; write Key=Value "
                "pairs separated by '|', or '_' for none"
            )
        feats_of[cols[5]] = feats
    try:
        head = _int_cell(cols[6], cp.parse_int_value)
    except cp.ParseException:
        raise DataError(
            f"{_where(file, n)}: HEAD {cols[6]!r} is not a word number; write the id of the word's head, "
            "0 for the root, or '_'"
        ) from None

    def cell(i: int) -> str | None:
        return None if cols[i] in ("", "_") else cells.setdefault(cols[i], cols[i])

    return wid, Word(form, cell(3), cell(4), feats, head, cell(7), n)


def _check_heads(words: list[Word], file: Path) -> None:
    for w in words:
        if w.head is not None and not 0 <= w.head <= len(words):
            raise DataError(
                f"{_where(file, w.line)}: HEAD {w.head} names no word of this {len(words)}-word sentence; "
                "write the id of a word of the same sentence, or 0 for the root"
            )


def _parse_file(file: Path, max_bytes: int) -> ConlluFile:
    cp = _conllu()
    digest = hashlib.sha256()
    out = ConlluFile(file, [], "", 0)
    feats_of: dict[str, dict] = {}
    cells: dict[str, str] = {}
    words: list[Word] = []
    metadata: dict[str, str] = {}
    start = 0
    last = 0

    def flush() -> None:
        nonlocal words, metadata, start
        if words:
            _check_heads(words, file)
            out.sentences.append(Sentence(tuple(words), metadata, start))
            for k, v in metadata.items():
                out.meta_values.setdefault(k, Counter())[v] += 1
            out.final_marks += out.sentences[-1].sentence_type is not None
            out.feats_keys.update(k for w in words for k in w.feats)
        words, metadata, start = [], {}, 0

    for n, line in _lines(file, max_bytes, digest):
        last = n
        if not line.strip():
            flush()
            continue
        start = start or n
        if line.startswith("#"):
            if words:
                raise DataError(
                    f"{_where(file, n)}: a comment after the words of a sentence (its first word is on "
                    f"line {words[0].line}); end the sentence with a blank line before the next comments"
                )
            metadata.update((k, v) for k, v in cp.parse_comment_line(line) if k and v is not None)
            continue
        cols = line.split("\t")
        if len(cols) != len(COLUMNS):
            raise DataError(
                f"{_where(file, n)}: {len(cols)} tab-separated column(s), a word line needs {len(COLUMNS)} "
                f"({' '.join(COLUMNS)}); separate the columns by tabs and write '_' in an empty one"
            )
        wid, word = _parse_word(cols, n, file, cp, feats_of, cells)
        if word is None:
            if wid[1] == "-":  # type: ignore[index]
                out.multiword_tokens += 1
            else:
                out.empty_nodes += 1
            continue
        if wid != len(words) + 1:
            why = (
                "starts again at 1: a blank line must end each sentence" if wid == 1
                else f"comes after word {len(words)}: number the words of a sentence 1, 2, 3, … in order"
            )
            raise DataError(f"{_where(file, n)}: word {wid} {why}")
        words.append(word)
        out.has_xpos = out.has_xpos or word.xpos is not None
    flush()
    if not out.sentences:
        raise DataError(
            f"CoNLL-U file '{file}' has no word lines ({last} line(s) read); a CoNLL-U file holds one "
            "word per line with 10 tab-separated columns"
        )
    out.sha256 = digest.hexdigest()
    return out


_CACHE: "OrderedDict[tuple, ConlluFile]" = OrderedDict()
_CACHE_SIZE = 8


def read_conllu(path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> ConlluFile:
    """Parse a CoNLL-U file (plain or `.gz`); kept in memory for the next call on the same
    unchanged file. DataError names the file and line of the first problem."""
    file = Path(path).expanduser()
    if not file.exists():
        raise DataError(f"CoNLL-U file '{file}' does not exist; check the path")
    if not file.is_file():
        raise DataError(f"CoNLL-U file '{file}' is not a file; give the path of a .conllu (or .conllu.gz) file")
    stat = file.stat()
    key = (str(file.resolve()), stat.st_size, stat.st_mtime_ns, max_bytes)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    parsed = _parse_file(file, max_bytes)
    parsed.n_bytes = stat.st_size
    _CACHE[key] = parsed
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return parsed


# --------------------------------------------------------------------------- labels


def _base(deprel: str | None) -> str:
    return (deprel or "").split(":")[0]


def sentence_type(words: Sequence[Word]) -> str | None:
    """question / exclamation / statement from the last punctuation mark, None without one.
    Closing quotes and brackets after the mark are skipped ("… ok?»")."""
    for w in reversed(words):
        text = w.form.strip().rstrip(CLOSERS)
        if not text:
            continue
        mark = text[-1]
        if mark in QUESTION_MARKS:
            return "question"
        if mark in EXCLAMATION_MARKS:
            return "exclamation"
        if mark in STATEMENT_MARKS:
            return "statement"
        return None
    return None


def clause_type(words: Sequence[Word]) -> str:
    """question / command / statement / fragment from the tree (see the module docstring)."""
    root = next((i for i, w in enumerate(words) if w.head == 0), None)
    if root is None:
        return "fragment"
    subjects = [i for i, w in enumerate(words) if w.head == root + 1 and _base(w.deprel) in _SUBJECTS]
    lead = next(
        (i for i, w in enumerate(words) if _base(w.deprel) not in _NOT_LEADING and w.upos not in ("INTJ", "PUNCT")),
        None,
    )
    if lead is not None:
        if any("Int" in words[i].feats.get("PronType", "").split(",") for i in range(lead, root + 1)):
            return "question"
        first = words[lead]
        finite = first.upos == "AUX" or (first.upos == "VERB" and first.feats.get("VerbForm") == "Fin")
        if finite and any(s > lead for s in subjects):
            return "question"
    if subjects:
        return "statement"
    return "command" if words[root].upos == "VERB" else "fragment"


def _word_labels(words: Sequence[Word], req: TaskRequest, deprel_subtypes: bool) -> list[str | None]:
    if req.source == "upos":
        return [w.upos for w in words]
    if req.source == "xpos":
        return [w.xpos for w in words]
    if req.source == "deprel":
        return [w.deprel if deprel_subtypes or w.deprel is None else _base(w.deprel) for w in words]
    return [w.feats.get(req.key, NO_FEATURE) for w in words]


def _sentence_label(sent: Sentence, req: TaskRequest) -> str | None:
    if req.source == "meta":
        return sent.metadata.get(req.key)
    if req.source == "sentence_type":
        return sent.sentence_type
    return sent.clause_type


def available_tasks(files: Sequence[ConlluFile]) -> list[str]:
    """The `tasks` entries these files can give: FEATS keys as found, comment keys whose
    values repeat (2 to `MAX_META_CLASSES` classes, one of them on two sentences: not `text` or an id)."""
    feats = sorted(set().union(*(f.feats_keys for f in files)))
    values: dict[str, Counter] = {}
    for f in files:
        for k, c in f.meta_values.items():
            values.setdefault(k, Counter()).update(c)
    meta = sorted(k for k, c in values.items() if 2 <= len(c) <= MAX_META_CLASSES and c.most_common(1)[0][1] > 1)
    has_xpos = any(f.has_xpos for f in files)
    has_punct = any(f.final_marks for f in files)
    return [
        "upos", *(["xpos"] if has_xpos else []), "deprel",
        *(f"feats.{k}" for k in feats), *(f"meta.{k}" for k in meta),
        *(["sentence_type"] if has_punct else []), "clause_type",
    ]


# --------------------------------------------------------------------------- the importer


def _unavailable(req: TaskRequest, files: Sequence[ConlluFile], why: str) -> DataError:
    names = ", ".join(f"'{f.path}'" for f in files)
    return DataError(
        f"CoNLL-U {'file' if len(files) == 1 else 'files'} {names}: task {req.spec!r} {why}; "
        f"available: {', '.join(available_tasks(files))}"
    )


def _encode(
    req: TaskRequest, sentences: Sequence[Sentence], files: Sequence[ConlluFile], max_len: int,
    deprel_subtypes: bool,
) -> tuple[np.ndarray, list[str], Counter]:
    """The target of one task over all sentences, its class names (sorted) and their counts
    (every word, before any cut at `max_len`)."""
    if req.kind == "tagging":
        labels = [_word_labels(s.words, req, deprel_subtypes) for s in sentences]
        if req.source == "feats" and not any(req.key in f.feats_keys for f in files):
            raise _unavailable(req, files, f"names a feature no word has (FEATS key {req.key!r})")
    else:
        labels = [_sentence_label(s, req) for s in sentences]
    flat = (lab for row in labels for lab in row) if req.kind == "tagging" else iter(labels)
    counts = Counter(lab for lab in flat if lab is not None)
    if req.source == "meta" and len(counts) > MAX_META_CLASSES:
        raise _unavailable(
            req, files, f"has {len(counts)} distinct values, more than {MAX_META_CLASSES}: an identifier, not a "
            "label to learn"
        )
    if len(counts) < 2:
        found = f"only {next(iter(counts))!r}" if counts else "no value"
        raise _unavailable(req, files, f"has {found} in these files; a task needs at least two classes")
    classes = sorted(counts)
    index = {c: i for i, c in enumerate(classes)}
    if req.kind == "tagging":
        y = np.full((len(sentences), max_len), IGNORE_INDEX, dtype=np.int64)
        for r, row in enumerate(labels):
            cut = row[:max_len]
            y[r, : len(cut)] = [IGNORE_INDEX if lab is None else index[lab] for lab in cut]
    else:
        y = np.array([IGNORE_INDEX if lab is None else index[lab] for lab in labels], dtype=np.int64)
    return y, classes, counts


def _description(req: TaskRequest, n_classes: int, deprel_subtypes: bool) -> str:
    if req.source == "upos":
        return f"universal part-of-speech tag of every word ({n_classes} tags)"
    if req.source == "xpos":
        return f"language-specific part-of-speech tag of every word ({n_classes} tags)"
    if req.source == "deprel":
        part = "with subtypes" if deprel_subtypes else "universal part, subtypes cut"
        return f"dependency relation of every word to its head ({n_classes} relations, {part})"
    if req.source == "feats":
        return f"value of the feature {req.key} of every word, '{NO_FEATURE}' where it has none ({n_classes} values)"
    if req.source == "meta":
        return f"the sentence's '# {req.key} = …' comment ({n_classes} classes)"
    if req.source == "sentence_type":
        return "question / exclamation / statement from the final punctuation mark"
    return "question / command / statement / fragment, derived from the dependency tree (Sadock & Zwicky, 1985)"


def from_conllu(
    path: str | Path | None = None,
    *,
    train: str | Path | None = None,
    dev: str | Path | None = None,
    test: str | Path | None = None,
    tasks: Sequence[str] = ("upos", "deprel"),
    seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    lowercase: bool = False,
    min_freq: int = 2,
    max_len: int = 0,
    deprel_subtypes: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
    name: str = "conllu",
) -> MTLDataset:
    """Build a multi-task dataset from one CoNLL-U file (`path`, split by the seed) or from
    a treebank's own split (`train` and `test`, optional `dev`); see the module docstring.

    Args:
        tasks: `tasks` entries (upos, xpos, deprel, feats.<Key>, meta.<key>, sentence_type,
            clause_type), in the order the tasks get.
        lowercase: lower-case the words before the vocabulary (labels are untouched).
        min_freq: a training word seen fewer times reads as `<unk>`, so that `<unk>` is
            trained on rare words and means something for unseen ones.
        max_len: words per sentence the model sees; 0 = the longest training sentence, at
            most `MAX_LEN_AUTO`. Longer sentences are cut, their cut words unscored, and
            the cut is counted in `info["truncated"]` (and `info["truncation"]`, as the
            CSV importer counts it).
        deprel_subtypes: keep `nmod:poss` rather than `nmod`.

    Raises:
        ConfigError: the arguments contradict each other (both `path` and split files).
        DataError: a file cannot be used (file and line named) or a task is not in it.
    """
    try:
        requests = _requests(tasks)
    except ValueError as exc:
        raise ConfigError(f"tasks: {exc}") from None
    files, split_of = _read_files(path, train, dev, test, max_bytes)
    sentences = [s for f in files.values() for s in f.sentences]
    n = len(sentences)
    splits = _split(split_of, files, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
    for s, idx in splits.items():
        if len(idx) == 0:
            raise DataError(
                f"CoNLL-U data of {', '.join(repr(str(f.path)) for f in files.values())} leaves the {s} split "
                f"empty ({n} sentences); add sentences or change val_fraction / test_fraction"
            )

    words = [[w.form.lower() if lowercase else w.form for w in s.words] for s in sentences]
    lengths = np.array([len(w) for w in words])
    longest_train = int(lengths[splits["train"]].max())
    seq_len = max_len or min(longest_train, MAX_LEN_AUTO)
    vocab = build_vocabulary((words[i] for i in splits["train"]), min_freq=min_freq)
    x = token_ids(words, vocab, seq_len)

    file_list = list(files.values())
    y: dict[str, np.ndarray] = {}
    specs: dict[str, TaskSpec] = {}
    class_counts: dict[str, dict[str, int]] = {}
    for req in requests:
        y[req.name], classes, counts = _encode(req, sentences, file_list, seq_len, deprel_subtypes)
        class_counts[req.name] = {c: counts[c] for c in classes}
        specs[req.name] = TaskSpec(
            req.name, req.kind, num_classes=len(classes), class_names=tuple(classes),  # type: ignore[arg-type]
            description=_description(req, len(classes), deprel_subtypes),
        )

    labelled: dict[str, dict[str, int]] = {}
    warnings: list[str] = []
    for req in requests:
        target = y[req.name]
        has = (target != IGNORE_INDEX).any(axis=1) if target.ndim > 1 else target != IGNORE_INDEX
        labelled[req.name] = {s: int(has[idx].sum()) for s, idx in splits.items()}
        if labelled[req.name]["train"] == 0:
            raise _unavailable(req, file_list, "labels no training sentence")
        for s in ("val", "test"):
            if labelled[req.name][s] == 0:
                warnings.append(f"task '{req.name}' has no labelled sentence in the {s} split; its {s} metrics are empty")
        unlabelled = int((~has).sum())
        if req.kind == "classification" and unlabelled:
            warnings.append(f"task '{req.name}' leaves {unlabelled} of {n} sentences unlabelled")

    known = set(vocab[2:])
    info = {
        "source": {s: {"file": str(f.path.resolve()), "sha256": f.sha256, "bytes": f.n_bytes} for s, f in files.items()},
        "split_from": "files" if "test" in files else "seed",
        "seed": seed,
        "sentences": {s: len(idx) for s, idx in splits.items()},
        "words": {s: int(lengths[idx].sum()) for s, idx in splits.items()},
        "what_the_model_sees": "the syntactic words (multiword tokens split into their words, empty nodes dropped)"
        + (", lower-cased" if lowercase else ""),
        "multiword_tokens": sum(f.multiword_tokens for f in file_list),
        "empty_nodes_dropped": sum(f.empty_nodes for f in file_list),
        "max_len": seq_len,
        "max_len_from_data": not max_len,
        "truncated": {
            s: {"sentences": int((lengths[idx] > seq_len).sum()),
                "words": int(np.clip(lengths[idx] - seq_len, 0, None).sum())}
            for s, idx in splits.items()
        },
        # The same cut in the CSV importer's terms, which the results and the pages read.
        "truncation": {**truncation(lengths, splits, seq_len),
                       "source": SOURCE_OPTION if max_len else SOURCE_LONGEST},
        "vocab_size": len(vocab),
        "min_freq": min_freq,
        "lowercase": lowercase,
        "unknown_word_rate": {
            s: round(sum(w not in known for i in idx for w in words[i]) / max(1, int(lengths[idx].sum())), 4)
            for s, idx in splits.items()
        },
        "tasks": {r.name: r.spec for r in requests},
        "available_tasks": available_tasks(file_list),
        "labelled": labelled,
        "class_counts": class_counts,  # every sentence / word of every split
        "examples": [
            {"text": " ".join(words[i]),
             **{r.name: (" ".join(specs[r.name].class_names[v] for v in y[r.name][i] if v != IGNORE_INDEX)
                         if r.kind == "tagging" else
                         (specs[r.name].class_names[y[r.name][i]] if y[r.name][i] != IGNORE_INDEX else None))
                for r in requests}}
            for i in range(min(3, n))
        ],
        "warnings": warnings,
    }
    for w in warnings:
        log.warning("%s: %s", name, w)

    rows = Split(torch.as_tensor(x), {t: torch.as_tensor(v) for t, v in y.items()})  # every row; split below

    return MTLDataset(
        name=name, input_kind="tokens", tasks=specs,
        train=rows.subset(splits["train"]), val=rows.subset(splits["val"]), test=rows.subset(splits["test"]),
        vocab=vocab, info=info,
    )


def _requests(tasks: Sequence[str]) -> list[TaskRequest]:
    if isinstance(tasks, str) or not tasks:
        raise ValueError(f"give a list of one or more tasks, e.g. ['upos', 'deprel']; forms: {TASK_FORMS}")
    requests = [parse_task(t) for t in tasks]
    seen: dict[str, str] = {}
    for r in requests:
        if r.name in seen:
            raise ValueError(
                f"{seen[r.name]!r} and {r.spec!r} both make the task {r.name!r}; list each task once"
            )
        seen[r.name] = r.spec
    return requests


def _read_files(
    path: str | Path | None, train: str | Path | None, dev: str | Path | None, test: str | Path | None,
    max_bytes: int,
) -> tuple[dict[str, ConlluFile], list[str]]:
    """The files by split name ("all" for one file) and each sentence's split name."""
    if path is not None and any(p is not None for p in (train, dev, test)):
        raise ConfigError("path: give either one file (path) or the split files (train, dev, test), not both")
    if path is not None:
        named = {"all": path}
    elif train is not None and test is not None:
        named = {"train": train, **({"dev": dev} if dev is not None else {}), "test": test}
    else:
        raise ConfigError(
            "path: give one CoNLL-U file (path), or the treebank's own split files: train and test (dev optional)"
        )
    files = {s: read_conllu(p, max_bytes=max_bytes) for s, p in named.items()}
    split_of = [s for s, f in files.items() for _ in f.sentences]
    return files, split_of


def _split(
    split_of: list[str], files: dict[str, ConlluFile], *, seed: int, val_fraction: float, test_fraction: float,
) -> dict[str, np.ndarray]:
    """Sentence indices per split: the files' own, else from the order and the seed alone."""
    where = np.array(split_of)
    n = len(where)
    if "all" in files:
        try:
            train, val, test = split_indices(n, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
        except ValueError as exc:
            raise DataError(
                f"CoNLL-U file '{files['all'].path}' has {n} sentence(s), too few to split into train/val/test "
                f"with val_fraction={val_fraction:g} and test_fraction={test_fraction:g} ({exc}); add sentences"
            ) from None
        return {"train": train, "val": val, "test": test}
    train = np.flatnonzero(where == "train")
    test = np.flatnonzero(where == "test")
    if "dev" in files:
        val = np.flatnonzero(where == "dev")
    else:
        from sklearn.model_selection import train_test_split

        try:
            train, val = train_test_split(train, test_size=val_fraction, random_state=seed)
        except ValueError as exc:
            raise DataError(
                f"CoNLL-U file '{files['train'].path}' has {len(train)} sentence(s), too few to hold out "
                f"val_fraction={val_fraction:g} of them for validation ({exc}); give a dev file or add sentences"
            ) from None
        train, val = np.sort(train), np.sort(val)
    return {"train": train, "val": val, "test": test}


# --------------------------------------------------------------------------- registration


class TreebankOptions(StrictModel):
    """Options every treebank dataset has: which tasks, and how words become ids."""

    tasks: list[str] = Field(
        default_factory=lambda: ["upos", "deprel"],
        description=f"tasks, one entry each: {TASK_FORMS}",
    )
    lowercase: bool = Field(False, description="lower-case the words the model reads (labels untouched)")
    min_freq: int = Field(
        2, ge=1, le=1000,
        description="fewest times a training word is seen to get its own id; rarer words read as <unk>, "
        "so that <unk> is trained",
    )
    max_len: int = Field(
        0, ge=0, le=1024,
        description=f"words per sentence the model reads; 0 = the longest training sentence (at most {MAX_LEN_AUTO})",
    )
    deprel_subtypes: bool = Field(False, description="keep dependency subtypes (nmod:poss) rather than nmod")

    @field_validator("tasks")
    @classmethod
    def _check_tasks(cls, v: list[str]) -> list[str]:
        return [r.spec for r in _requests(v)]


class ConlluOptions(TreebankOptions, SplitOptions):
    """Options of the `conllu` dataset: one file, or a treebank's train/dev/test files."""

    max_holdout: ClassVar[float] = 1.0

    path: str | None = Field(None, description="one CoNLL-U file (.conllu or .conllu.gz), split by the seed")
    train: str | None = Field(None, description="the treebank's training file (with test; dev optional)")
    dev: str | None = Field(None, description="the treebank's development file (validation split)")
    test: str | None = Field(None, description="the treebank's test file")
    max_bytes: int = Field(DEFAULT_MAX_BYTES, ge=1, description="largest file accepted, in bytes of text")

    @model_validator(mode="after")
    def _check_files(self) -> "ConlluOptions":
        split_files = {"train": self.train, "dev": self.dev, "test": self.test}
        if self.path is not None and any(split_files.values()):
            raise ValueError("give either one file (path) or the split files (train, dev, test), not both")
        if self.path is None and (self.train is None or self.test is None):
            raise ValueError("give one CoNLL-U file (path), or the treebank's split files train and test (dev optional)")
        return self


def _task_names(opts: TreebankOptions) -> list[str]:
    return [parse_task(t).name for t in opts.tasks]


@register_dataset(
    "conllu",
    description="Your own CoNLL-U treebank (Universal Dependencies): word tags (UPOS, XPOS, DEPREL, "
    "FEATS keys) and sentence labels (comments, punctuation, clause type) as tasks.",
    paper="de Marneffe, Manning, Nivre & Zeman, Computational Linguistics 2021 (Universal Dependencies)",
    options=ConlluOptions,
    task_names=_task_names,
    input_kind="tokens",
)
def build_conllu(opts: ConlluOptions, seed: int) -> MTLDataset:
    return from_conllu(
        opts.path, train=opts.train, dev=opts.dev, test=opts.test, tasks=opts.tasks, seed=seed,
        val_fraction=opts.val_fraction, test_fraction=opts.test_fraction, lowercase=opts.lowercase,
        min_freq=opts.min_freq, max_len=opts.max_len, deprel_subtypes=opts.deprel_subtypes,
        max_bytes=opts.max_bytes,
    )


ATIS_DIR = Path(__file__).resolve().parents[2] / "data" / "ud_english_atis"
ATIS_TASKS = ["upos", "deprel", "feats.Number", "clause_type"]


class AtisOptions(TreebankOptions):
    """Options of the built-in `ud_english_atis` treebank (its own train/dev/test split)."""

    tasks: list[str] = Field(
        default_factory=lambda: list(ATIS_TASKS),
        description=f"tasks, one entry each: {TASK_FORMS}",
    )


def atis_files() -> dict[str, Path]:
    """The shipped UD English-Atis files (gzip), by split."""
    return {s: ATIS_DIR / f"en_atis-ud-{s}.conllu.gz" for s in ("train", "dev", "test")}


@register_dataset(
    "ud_english_atis",
    description="UD English-Atis: 5,432 real spoken flight queries, annotated in Universal Dependencies "
    "(CC BY-SA 4.0); word tags and a sentence label as tasks.",
    paper="Kuzgun, Cesur & Yıldız, UD English-Atis (UD v2.9, 2021); Hemphill, Godfrey & Doddington, 1990 (ATIS)",
    options=AtisOptions,
    task_names=_task_names,
    input_kind="tokens",
)
def build_ud_english_atis(opts: AtisOptions, seed: int) -> MTLDataset:
    files = atis_files()
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise DataError(
            f"the built-in treebank ud_english_atis is missing its file(s) {', '.join(missing)}; they ship in the "
            "project's data/ud_english_atis/ folder: restore them from the repository"
        )
    return from_conllu(
        train=files["train"], dev=files["dev"], test=files["test"], tasks=opts.tasks, seed=seed,
        lowercase=opts.lowercase, min_freq=opts.min_freq, max_len=opts.max_len,
        deprel_subtypes=opts.deprel_subtypes, name="ud_english_atis",
    )
