"""CoNLL-U import (`conllu` dataset) and the built-in treebank `ud_english_atis`.

Specifies what a user relies on: the model reads the syntactic words (multiword tokens
split, empty nodes dropped) in any script; each requested annotation becomes a task;
errors name the file and the line; a treebank's own split is kept, and a single file is
split from the sentence order and the seed alone, whatever tasks are chosen; the shipped
treebank loads offline with its declared tasks.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from mtl_core.config import ExperimentConfig
from mtl_core.errors import ConfigError, DataError
from mtl_core.tasks import IGNORE_INDEX, PAD_ID, UNK_ID, dataset_task_names, load_dataset
from mtl_core.tasks import conllu_import as cu

ROOT = Path(__file__).resolve().parent.parent
HEADER = "# sent_id = {sid}\n"

# Our own sentences. Spanish "Vámonos al mar." has two multiword tokens (vámonos =
# vamos + nos, al = a + el) and an empty node (5.1) after "mar".
SPANISH = """# sent_id = es1
# genre = news
# text = Vámonos al mar.
1-2	Vámonos	_	_	_	_	_	_	_	_
1	Vamos	ir	VERB	_	Mood=Imp|Number=Plur|Person=1	0	root	_	_
2	nos	nosotros	PRON	_	Case=Acc|Number=Plur|Person=1	1	obj	_	_
3-4	al	_	_	_	_	_	_	_	_
3	a	a	ADP	_	_	5	case	_	_
4	el	el	DET	_	Definite=Def|Number=Sing	5	det	_	_
5	mar	mar	NOUN	_	Number=Sing	1	obl	_	_
5.1	ir	ir	VERB	_	_	_	_	1:conj	_
6	.	.	PUNCT	_	_	1	punct	_	_

"""

# Chinese: "I like cats." / "Do you like dogs?" / "They work in Beijing."
CHINESE = """# sent_id = zh1
# genre = chat
1	我	我	PRON	_	Person=1	2	nsubj	_	_
2	喜欢	喜欢	VERB	_	_	0	root	_	_
3	猫	猫	NOUN	_	_	2	obj	_	_
4	。	。	PUNCT	_	_	2	punct	_	_

# sent_id = zh2
# genre = chat
1	你	你	PRON	_	Person=2	2	nsubj	_	_
2	喜欢	喜欢	VERB	_	_	0	root	_	_
3	狗	狗	NOUN	_	_	2	obj	_	_
4	吗	吗	PART	_	_	2	discourse:sp	_	_
5	？	？	PUNCT	_	_	2	punct	_	_

# sent_id = zh3
# genre = news
1	他们	他们	PRON	_	Number=Plur|Person=3	4	nsubj	_	_
2	在	在	ADP	_	_	3	case	_	_
3	北京	北京	PROPN	_	_	4	obl	_	_
4	工作	工作	VERB	_	_	0	root	_	_
5	。	。	PUNCT	_	_	4	punct	_	_

"""

# Hindi (Devanagari): "I go home." / "Will you come?"
HINDI = """# sent_id = hi1
# genre = news
1	मैं	मैं	PRON	_	Number=Sing|Person=1	3	nsubj	_	_
2	घर	घर	NOUN	_	Number=Sing	3	obl	_	_
3	जाता	जा	VERB	_	Number=Sing	0	root	_	_
4	हूँ	है	AUX	_	Number=Sing|Person=1	3	aux	_	_
5	।	।	PUNCT	_	_	3	punct	_	_

# sent_id = hi2
# genre = chat
1	क्या	क्या	PART	_	PronType=Int	3	discourse	_	_
2	तुम	तुम	PRON	_	Number=Sing|Person=2	3	nsubj	_	_
3	आओगे	आ	VERB	_	Number=Sing	0	root	_	_
4	?	?	PUNCT	_	_	3	punct	_	_

"""


def write(tmp_path: Path, text: str, name: str = "t.conllu") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def many_sentences(n: int) -> str:
    """`n` small English sentences, every third a question, genre alternating."""
    out = []
    for i in range(n):
        noun = f"city{i % 7}"
        if i % 3 == 0:
            rows = [("is", "AUX", "VerbForm=Fin", 3, "cop"), ("there", "PRON", "_", 3, "expl"),
                    (noun, "NOUN", "Number=Sing", 0, "root"), ("?", "PUNCT", "_", 3, "punct")]
        else:
            rows = [("show", "VERB", "VerbForm=Inf", 0, "root"), ("me", "PRON", "Case=Acc", 1, "iobj"),
                    (noun + "s", "NOUN", "Number=Plur", 1, "obj"), (".", "PUNCT", "_", 1, "punct")]
        lines = [f"# sent_id = s{i}", f"# genre = {'a' if i % 2 else 'b'}"]
        lines += [f"{k}\t{f}\t{f}\t{u}\t_\t{feats}\t{h}\t{d}\t_\t_" for k, (f, u, feats, h, d) in enumerate(rows, 1)]
        out.append("\n".join(lines) + "\n")
    return "\n".join(out) + "\n"


def words_of(ds, split, row: int) -> list[str]:
    return [ds.vocab[int(i)] for i in split.x[row] if int(i) != PAD_ID]


def tags_of(ds, split, task: str, row: int) -> list[str]:
    return [ds.tasks[task].class_names[int(v)] for v in split.y[task][row] if int(v) != IGNORE_INDEX]


# ---- what the model sees -------------------------------------------------------------------
def test_multiword_tokens_give_their_syntactic_words_and_empty_nodes_are_dropped(tmp_path):
    path = write(tmp_path, SPANISH + SPANISH.replace("genre = news", "genre = chat") + SPANISH)
    ds = cu.from_conllu(path, tasks=["upos", "deprel", "feats.Number", "meta.genre"], min_freq=1,
                        val_fraction=1 / 3, test_fraction=1 / 3)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (1, 1, 1)
    assert words_of(ds, ds.train, 0) == ["Vamos", "nos", "a", "el", "mar", "."]  # not "Vámonos", "al", "ir"
    assert tags_of(ds, ds.train, "upos", 0) == ["VERB", "PRON", "ADP", "DET", "NOUN", "PUNCT"]
    assert tags_of(ds, ds.train, "deprel", 0) == ["root", "obj", "case", "det", "obl", "punct"]
    assert tags_of(ds, ds.train, "feats_Number", 0) == ["Plur", "Plur", "_", "Sing", "Sing", "_"]
    assert ds.info["multiword_tokens"] == 6 and ds.info["empty_nodes_dropped"] == 3
    assert ds.tasks["meta_genre"].kind == "classification"
    assert "multiword tokens split" in ds.info["what_the_model_sees"]


def test_chinese_and_hindi_keep_their_words_tags_and_sentence_types(tmp_path):
    train = write(tmp_path, CHINESE + HINDI, "train.conllu")
    dev = write(tmp_path, CHINESE, "dev.conllu")
    test = write(tmp_path, HINDI, "test.conllu")
    ds = cu.from_conllu(train=train, dev=dev, test=test, min_freq=1,
                        tasks=["upos", "sentence_type", "meta.genre", "feats.Person"])
    assert ds.info["split_from"] == "files"
    assert (len(ds.train), len(ds.val), len(ds.test)) == (5, 3, 2)
    for w in ("我", "喜欢", "猫", "。", "？", "मैं", "जाता", "हूँ", "।", "क्या"):
        assert w in ds.vocab
    assert words_of(ds, ds.test, 0) == ["मैं", "घर", "जाता", "हूँ", "।"]
    assert tags_of(ds, ds.test, "upos", 0) == ["PRON", "NOUN", "VERB", "AUX", "PUNCT"]
    assert tags_of(ds, ds.test, "feats_Person", 0) == ["1", "_", "_", "1", "_"]
    types = ds.tasks["sentence_type"].class_names
    assert types == ("question", "statement")
    assert [types[int(v)] for v in ds.test.y["sentence_type"]] == ["statement", "question"]  # । and ?
    assert ds.info["class_counts"]["sentence_type"] == {"statement": 6, "question": 4}  # 。 ？ । ?
    assert ds.info["class_counts"]["meta_genre"] == {"chat": 6, "news": 4}


@pytest.mark.parametrize(("forms", "expected"), [
    (["猫", "。"], "statement"), (["吗", "？"], "question"), (["جاء", "؟"], "question"),
    (["घर", "।"], "statement"), (["Ти", "дома", ";"], None), (["Είσαι", "εδώ", "\u037e"], "question"),
    (["he", "said", "no", "!", "»"], "exclamation"), (["ok", "?", "\""], "question"), (["flights", "today"], None),
])
def test_sentence_type_reads_the_final_mark_of_any_script(forms, expected):
    words = [cu.Word(f, None, None, {}, None, None, i + 1) for i, f in enumerate(forms)]
    assert cu.sentence_type(words) == expected


def _tree(rows: list[tuple[str, str, str, int, str]]) -> list[cu.Word]:
    out = []
    for i, (form, upos, feats, head, deprel) in enumerate(rows, 1):
        fd = dict(kv.split("=") for kv in feats.split("|")) if feats != "_" else {}
        out.append(cu.Word(form, upos, None, fd, head, deprel, i))
    return out


def test_clause_type_of_hand_made_trees():
    question_wh = _tree([("what", "PRON", "PronType=Int,Rel", 0, "root"), ("is", "AUX", "VerbForm=Fin", 1, "cop"),
                         ("fare", "NOUN", "_", 1, "nsubj")])
    question_inv = _tree([("is", "VERB", "VerbForm=Fin", 0, "root"), ("there", "PRON", "_", 1, "expl"),
                          ("a", "DET", "_", 4, "det"), ("flight", "NOUN", "_", 1, "nsubj")])
    command = _tree([("please", "INTJ", "_", 2, "discourse"), ("show", "VERB", "VerbForm=Inf", 0, "root"),
                     ("me", "PRON", "_", 2, "iobj"), ("flights", "NOUN", "_", 2, "obj")])
    statement = _tree([("i", "PRON", "_", 2, "nsubj"), ("need", "VERB", "VerbForm=Fin", 0, "root"),
                       ("flights", "NOUN", "_", 2, "obj")])
    fragment = _tree([("flights", "NOUN", "_", 0, "root"), ("from", "ADP", "_", 3, "case"),
                      ("denver", "PROPN", "_", 1, "nmod")])
    assert [cu.clause_type(t) for t in (question_wh, question_inv, command, statement, fragment)] == [
        "question", "question", "command", "statement", "fragment"]


# ---- errors name the file and the line ----------------------------------------------------
GOOD = "1\tgo\tgo\tVERB\t_\t_\t0\troot\t_\t_\n2\thome\thome\tNOUN\t_\t_\t1\tobj\t_\t_\n\n"


@pytest.mark.parametrize(("bad_line", "message"), [
    ("3\tnow\tnow\tADV\t_\t_\t1\tadvmod\t_", r"line 8: 9 tab-separated column\(s\), a word line needs 10"),
    ("x\tnow\tnow\tADV\t_\t_\t1\tadvmod\t_\t_", r"line 8: the ID column holds 'x', not a word id"),
    ("3\tnow\tnow\tADV\t_\tDegree\t1\tadvmod\t_\t_", r"line 8: FEATS 'Degree' gives feature 'Degree' no value"),
    ("3\tnow\tnow\tADV\t_\t_\tone\tadvmod\t_\t_", r"line 8: HEAD 'one' is not a word number"),
    ("3\tnow\tnow\tADV\t_\t_\t9\tadvmod\t_\t_", r"line 8: HEAD 9 names no word of this 3-word sentence"),
    ("5\tnow\tnow\tADV\t_\t_\t1\tadvmod\t_\t_", r"line 8: word 5 comes after word 2"),
    ("1\tnow\tnow\tADV\t_\t_\t0\troot\t_\t_", r"line 8: word 1 starts again at 1: a blank line must end each sentence"),
])
def test_a_malformed_line_is_named_with_its_file_and_line(tmp_path, bad_line, message):
    # lines: 1 comment, 2-3 words, 4 blank, 5 comment, 6-7 words, 8 the bad line
    path = write(tmp_path, "# text = go home\n" + GOOD + "# x = y\n" + GOOD.rstrip("\n") + "\n" + bad_line + "\n\n")
    with pytest.raises(DataError) as exc:
        cu.read_conllu(path)
    text = str(exc.value)
    assert f"'{path}'" in text
    assert re.search(message, text), text


def test_not_utf8_a_cut_gzip_and_a_missing_file_are_named(tmp_path):
    path = tmp_path / "latin1.conllu"
    path.write_bytes(GOOD.encode() + "1\tcafé\tcafé\tNOUN\t_\t_\t0\troot\t_\t_\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.conllu', line 4 is not UTF-8 text"):
        cu.read_conllu(path)
    broken = tmp_path / "cut.conllu.gz"
    broken.write_bytes(gzip.compress(GOOD.encode() * 50)[:-20])
    with pytest.raises(DataError, match=r"cut.conllu.gz' cannot be read as a gzip file"):
        cu.read_conllu(broken)
    with pytest.raises(DataError, match=r"'.*nowhere.conllu' does not exist"):
        load_dataset("conllu", {"path": str(tmp_path / "nowhere.conllu")})


def test_an_unknown_task_lists_what_is_available(tmp_path):
    path = write(tmp_path, many_sentences(20))
    with pytest.raises(ConfigError, match=r"unknown task 'lemma'; choose from upos, xpos, deprel, feats.<Key>"):
        load_dataset("conllu", {"path": str(path), "tasks": ["upos", "lemma"]})
    with pytest.raises(DataError) as exc:
        load_dataset("conllu", {"path": str(path), "tasks": ["upos", "feats.Tense"]})
    assert "task 'feats.Tense' names a feature no word has" in str(exc.value)
    assert "available: upos, deprel, feats.Case, feats.Number, feats.VerbForm, meta.genre, sentence_type, " \
           "clause_type" in str(exc.value)
    with pytest.raises(DataError, match=r"task 'xpos' has no value in these files"):
        load_dataset("conllu", {"path": str(path), "tasks": ["xpos"]})
    with pytest.raises(ConfigError, match=r"'feats.Number' and 'feats.Number' both make the task 'feats_Number'"):
        load_dataset("conllu", {"path": str(path), "tasks": ["feats.Number", "feats.Number"]})
    with pytest.raises(ConfigError, match=r"either one file \(path\) or the split files"):
        load_dataset("conllu", {"path": str(path), "train": str(path), "test": str(path)})


# ---- splits -----------------------------------------------------------------------------
def test_one_file_is_split_by_order_and_seed_whatever_the_tasks(tmp_path):
    path = str(write(tmp_path, many_sentences(60)))
    a = load_dataset("conllu", {"path": path, "tasks": ["upos"]}, seed=3)
    b = load_dataset("conllu", {"path": path, "tasks": ["meta.genre", "deprel", "sentence_type"]}, seed=3)
    c = load_dataset("conllu", {"path": path, "tasks": ["upos"]}, seed=4)
    assert a.info["split_from"] == "seed"
    for s in ("train", "val", "test"):
        assert torch.equal(getattr(a, s).x, getattr(b, s).x)
    assert (len(a.train), len(a.val), len(a.test)) == (42, 9, 9)
    assert not torch.equal(a.test.x, c.test.x)  # another seed, another split
    assert dataset_task_names("conllu", {"path": path, "tasks": ["feats.Number", "meta.genre"]}) == [
        "feats_Number", "meta_genre"]


def test_a_treebanks_own_files_are_its_splits_and_dev_may_be_held_out_of_train(tmp_path):
    text = many_sentences(30)
    train, dev, test = (write(tmp_path, text, f"{s}.conllu") for s in ("train", "dev", "test"))
    ds = load_dataset("conllu", {"train": str(train), "dev": str(dev), "test": str(test)}, seed=5)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (30, 30, 30)
    no_dev = load_dataset("conllu", {"train": str(train), "test": str(test), "val_fraction": 0.2}, seed=5)
    assert (len(no_dev.train), len(no_dev.val), len(no_dev.test)) == (24, 6, 30)
    assert torch.equal(no_dev.test.y["upos"], ds.test.y["upos"])  # the test file, untouched


def test_gzip_reads_like_the_plain_file(tmp_path):
    text = many_sentences(20)
    plain = write(tmp_path, text)
    packed = tmp_path / "t.conllu.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    a = cu.from_conllu(plain, tasks=["upos", "feats.Number"])
    b = cu.from_conllu(packed, tasks=["upos", "feats.Number"])
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y["feats_Number"], b.test.y["feats_Number"])
    assert a.info["source"]["all"]["sha256"] == b.info["source"]["all"]["sha256"] == hashlib.sha256(
        text.encode()).hexdigest()


def test_rare_training_words_read_as_unk_and_a_cut_is_reported(tmp_path):
    path = write(tmp_path, many_sentences(60))
    ds = cu.from_conllu(path, tasks=["upos"], min_freq=4, max_len=3, lowercase=True)
    counts = {}
    for row in ds.train.x.tolist():
        for i in row:
            counts[i] = counts.get(i, 0) + 1
    assert UNK_ID in counts  # city words seen fewer than 4 times in training are <unk>
    assert all(w == w.lower() for w in ds.vocab)
    assert ds.train.x.shape[1] == 3 and ds.train.y["upos"].shape == (42, 3)
    assert ds.info["truncated"]["train"] == {"sentences": 42, "words": 42}
    assert ds.info["max_len"] == 3 and not ds.info["max_len_from_data"]
    # The same cut in the CSV importer's terms, which a run's result and the pages read.
    cut = ds.info["truncation"]
    assert cut["max_len"] == 3 and cut["source"] == "option max_len"
    for split, counted in ds.info["truncated"].items():
        assert (cut["rows_cut"][split], cut["words_cut"][split]) == (counted["sentences"], counted["words"])
    longest = cu.from_conllu(path, tasks=["upos"]).info["truncation"]
    assert longest["source"] == "longest training sentence" and longest["rows_cut"]["train"] == 0


# ---- the built-in treebank --------------------------------------------------------------
def test_builtin_treebank_loads_offline_with_its_declared_tasks():
    ds = load_dataset("ud_english_atis", seed=0)
    assert dataset_task_names("ud_english_atis") == ["upos", "deprel", "feats_Number", "clause_type"]
    assert list(ds.tasks) == ["upos", "deprel", "feats_Number", "clause_type"]
    assert (len(ds.train), len(ds.val), len(ds.test)) == (4274, 572, 586)
    assert ds.info["words"] == {"train": 48655, "val": 6644, "test": 6580}
    assert {t: s.num_classes for t, s in ds.tasks.items()} == {
        "upos": 14, "deprel": 32, "feats_Number": 3, "clause_type": 4}
    assert ds.tasks["clause_type"].class_names == ("command", "fragment", "question", "statement")
    assert ds.train.x.shape == (4274, 46) and ds.train.y["upos"].shape == (4274, 46)
    assert ds.info["truncated"]["test"]["words"] == 0
    assert ds.info["unknown_word_rate"]["test"] < 0.05
    readme = (ROOT / "data" / "ud_english_atis" / "README.md").read_text(encoding="utf-8")
    for split in ("train", "dev", "test"):
        assert ds.info["source"][split]["sha256"] in readme  # the shipped files are the released ones
    # Every word of the test split is tagged; the sentence label covers every sentence.
    labelled = (ds.test.y["upos"] != IGNORE_INDEX).sum().item()
    assert labelled == 6580 and (ds.test.y["clause_type"] != IGNORE_INDEX).all()
    assert np.isclose(sum(ds.info["class_counts"]["clause_type"].values()), 5432)


def test_builtin_treebank_in_a_config_offers_other_annotations():
    config = ExperimentConfig.parse({"dataset": {"name": "ud_english_atis"}, "tasks": ["upos", "clause_type"]})
    assert config.task_list() == ["upos", "clause_type"]
    with pytest.raises(ConfigError, match=r"unknown task 'pos'.*choose from: upos, deprel, feats_Number, clause_type"):
        ExperimentConfig.parse({"dataset": {"name": "ud_english_atis"}, "tasks": ["pos"]})
    other = load_dataset("ud_english_atis", {"tasks": ["feats.Tense", "deprel"], "deprel_subtypes": True})
    assert list(other.tasks) == ["feats_Tense", "deprel"]
    assert "nmod:tmod" in other.tasks["deprel"].class_names


@pytest.mark.slow
def test_a_short_run_trains_tagging_and_sentence_tasks_from_conllu(tmp_path):
    from mtl_core.experiment import run_experiment

    path = write(tmp_path, many_sentences(60))
    config = ExperimentConfig.parse({
        "dataset": {"name": "conllu", "options": {"path": str(path), "tasks": ["upos", "sentence_type"]}},
        "steps": 20, "batch_size": 16, "eval_every": 10,
    })
    result = run_experiment(config)
    table = {row["name"]: row for row in result["tasks"]}
    assert set(table) == {"upos", "sentence_type"}
    assert all(0.0 <= row["mtl"] <= 1.0 for row in table.values())


@pytest.mark.slow
def test_train_page_loads_with_the_builtin_treebank_selected(tmp_path, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from dashboard import state

    monkeypatch.setenv("MTL_LAB_HOME", str(tmp_path))
    st.cache_data.clear()
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120)
    at.query_params["dataset.name"] = "ud_english_atis"
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key=state.K_DATASET).value == "ud_english_atis"
    for task in ("upos", "deprel", "feats_Number", "clause_type"):
        assert at.checkbox(key=state.k_task(task)).value
    at.checkbox(key=state.k_task("deprel")).uncheck().run()
    assert not at.exception, at.exception
    config = ExperimentConfig.parse(state.params_to_raw(at.query_params))
    assert config.dataset.name == "ud_english_atis"
    assert config.task_list() == ["upos", "feats_Number", "clause_type"]
    assert not [e.value for e in at.error]
