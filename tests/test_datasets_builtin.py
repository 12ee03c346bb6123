"""The built-in datasets toy_language, penguins and digits: shapes, determinism, labels."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

import mtl_core.tasks.digits  # noqa: F401  (registers)
import mtl_core.tasks.penguins  # noqa: F401  (registers)
import mtl_core.tasks.toy_language as toy
from mtl_core.errors import ConfigError
from mtl_core.tasks.base import (
    IGNORE_INDEX,
    PAD_ID,
    MTLDataset,
    Split,
    dataset_task_names,
    load_dataset,
)

# (name, options, expected rows in train/val/test, input width or sequence length)
CASES = [
    ("toy_language", {"n_samples": 400}, (280, 60, 60), 16),
    ("penguins", {}, None, 4),
    ("digits", {"variant": "pair", "n_samples": 1000}, (700, 150, 150), 128),
    ("digits", {"variant": "attributes"}, (1257, 270, 270), 64),
]
CASE_IDS = ["toy_language", "penguins", "digits-pair", "digits-attributes"]


def splits(ds: MTLDataset) -> dict[str, Split]:
    return {"train": ds.train, "val": ds.val, "test": ds.test}


def words(ds: MTLDataset, row: torch.Tensor) -> list[str]:
    assert ds.vocab is not None
    return [ds.vocab[int(i)] for i in row if int(i) != PAD_ID]


@pytest.mark.parametrize(("name", "options", "sizes", "width"), CASES, ids=CASE_IDS)
def test_builtin_dataset_has_declared_shapes_dtypes_and_splits(name, options, sizes, width):
    ds = load_dataset(name, options, seed=0)
    if sizes is not None:
        assert (len(ds.train), len(ds.val), len(ds.test)) == sizes
    for split in splits(ds).values():
        n = len(split)
        if ds.input_kind == "tokens":
            assert split.x.dtype == torch.int64 and split.x.shape == (n, width)
            assert ds.vocab is not None and ds.vocab[0] == "<pad>" and ds.vocab[1] == "<unk>"
            assert int(split.x.max()) < ds.vocab_size
        else:
            assert split.x.dtype == torch.float32 and split.x.shape == (n, width) == (n, ds.input_dim)
            assert ds.feature_names is not None and len(ds.feature_names) == width
            assert torch.isfinite(split.x).all()
        for task, spec in ds.tasks.items():
            y = split.y[task]
            if spec.kind == "regression":
                assert y.dtype == torch.float32 and y.shape == (n,)
                continue
            assert y.dtype == torch.int64
            assert y.shape == ((n, split.x.shape[1]) if spec.kind == "tagging" else (n,))
            labelled = y[y != IGNORE_INDEX]
            assert labelled.min() >= 0 and labelled.max() < spec.num_classes
            assert spec.class_names is not None and len(spec.class_names) == spec.num_classes


@pytest.mark.parametrize(("name", "options", "sizes", "width"), CASES, ids=CASE_IDS)
def test_task_names_match_the_built_dataset(name, options, sizes, width):
    assert dataset_task_names(name, options) == load_dataset(name, options, seed=0).task_names


@pytest.mark.parametrize(("name", "options", "sizes", "width"), CASES, ids=CASE_IDS)
def test_same_seed_gives_identical_tensors_and_another_seed_another_split(name, options, sizes, width):
    a, b, c = (load_dataset(name, options, seed=s) for s in (3, 3, 4))
    for split_a, split_b in zip(splits(a).values(), splits(b).values()):
        assert torch.equal(split_a.x, split_b.x)
        for task in a.tasks:
            torch.testing.assert_close(split_a.y[task], split_b.y[task], rtol=0, atol=0, equal_nan=True)
    assert a.info == b.info
    assert len(a.test) != len(c.test) or not torch.equal(a.test.x, c.test.x)


@pytest.mark.parametrize(
    ("name", "options", "field"),
    [
        ("toy_language", {"bogus": 1}, "bogus"),
        ("toy_language", {"relatedness": 2}, "relatedness"),
        ("toy_language", {"max_len": 4}, "max_len"),
        ("toy_language", {"label_noise": {"pos": 0.1}}, "label_noise"),
        ("toy_language", {"label_noise": 1.5}, "label_noise"),
        ("penguins", {"val_fraction": 0.0}, "val_fraction"),
        ("penguins", {"val_fraction": 0.3, "test_fraction": 0.3}, "val_fraction + test_fraction"),
        ("penguins", {"n_samples": 10}, "n_samples"),
        ("digits", {"variant": "triplet"}, "variant"),
        ("digits", {"n_samples": 5}, "n_samples"),
    ],
)
def test_bad_options_raise_config_error_naming_the_field(name, options, field):
    with pytest.raises(ConfigError, match=field.replace("+", r"\+")):
        load_dataset(name, options)


# ---- toy_language -------------------------------------------------------------------


@pytest.fixture(scope="module")
def toy_ds() -> MTLDataset:
    return load_dataset("toy_language", {"n_samples": 1500}, seed=0)


def all_rows(ds: MTLDataset) -> Split:
    return Split(
        torch.cat([s.x for s in splits(ds).values()]),
        {t: torch.cat([s.y[t] for s in splits(ds).values()]) for t in ds.tasks},
    )


def test_toy_language_tags_align_with_tokens_and_ignore_only_padding(toy_ds):
    rows = all_rows(toy_ds)
    padding = rows.x == PAD_ID
    for task in ("pos", "ner"):
        assert torch.equal(rows.y[task] == IGNORE_INDEX, padding)
    # Padding only at the end: a sentence is one unbroken run of tokens.
    lengths = (~padding).sum(dim=1)
    assert torch.equal(~padding, torch.arange(rows.x.shape[1]) < lengths[:, None])
    assert int(lengths.max()) <= toy.MAX_SENTENCE_LEN


def test_toy_language_pos_tags_are_those_of_the_lexicon(toy_ds):
    pos_names = toy_ds.tasks["pos"].class_names
    rows = all_rows(toy_ds)
    for x_row, tag_row in zip(rows.x[:200], rows.y["pos"][:200]):
        tags = [pos_names[int(t)] for t in tag_row if int(t) != IGNORE_INDEX]
        assert tags == [toy._WORD_POS[w] for w in words(toy_ds, x_row)]
        assert tags[-1] == "PUNCT"


def test_toy_language_ner_tags_are_valid_bio_with_multi_token_entities(toy_ds):
    names = toy_ds.tasks["ner"].class_names
    rows = all_rows(toy_ds)
    inside_tags = 0
    for tag_row in rows.y["ner"]:
        prev = "O"
        for t in tag_row[tag_row != IGNORE_INDEX].tolist():
            tag = names[t]
            if tag.startswith("I-"):
                # I-X continues an entity of the same type X, never follows O or another type.
                assert prev in (f"B-{tag[2:]}", tag), f"{prev} -> {tag}"
                inside_tags += 1
            prev = tag
    assert inside_tags > 0


def test_toy_language_negation_flips_sentiment(toy_ds):
    rows = all_rows(toy_ds)
    positive_id = toy_ds.tasks["sentiment"].class_names.index("positive")
    seen = set()
    for x_row, label in zip(rows.x, rows.y["sentiment"]):
        ws = words(toy_ds, x_row)
        adjectives = [w for w in ws if w in toy.POSITIVE_ADJ + toy.NEGATIVE_ADJ]
        assert len(adjectives) == 1
        adjective_positive = adjectives[0] in toy.POSITIVE_ADJ
        negated = "not" in ws
        assert (int(label) == positive_id) == (adjective_positive != negated), " ".join(ws)
        seen.add((adjective_positive, negated))
    # Every case occurs: "not good" is negative and "not awful" positive somewhere.
    assert seen == {(True, True), (True, False), (False, True), (False, False)}


def test_toy_language_question_label_follows_the_question_mark(toy_ds):
    rows = all_rows(toy_ds)
    question_id = toy_ds.tasks["question"].class_names.index("question")
    for x_row, label in zip(rows.x, rows.y["question"]):
        assert (int(label) == question_id) == (words(toy_ds, x_row)[-1] == "?")


def entity_and_noun_topics(ds: MTLDataset, x_row: torch.Tensor) -> tuple[int, set[int]]:
    token_topic = {
        w: k for k, topic in enumerate(toy.TOPICS) for _, ent in toy.ENTITIES[topic] for w in ent
    }
    noun_topic = {w: k for k, topic in enumerate(toy.TOPICS) for w in toy.NOUNS[topic]}
    ws = words(ds, x_row)
    entity = {token_topic[w] for w in ws if w in token_topic}
    assert len(entity) == 1
    return entity.pop(), {noun_topic[w] for w in ws if w in noun_topic}


@pytest.mark.parametrize("relatedness", [1.0, 0.0])
def test_toy_language_relatedness_moves_the_topic_between_entity_and_nouns(relatedness):
    ds = load_dataset("toy_language", {"n_samples": 800, "relatedness": relatedness}, seed=1)
    rows = all_rows(ds)
    entity_agrees, nouns_agree = [], []
    for x_row, label in zip(rows.x, rows.y["topic"]):
        entity, nouns = entity_and_noun_topics(ds, x_row)
        assert len(nouns) == 1  # all content nouns of a sentence share one topic
        entity_agrees.append(entity == int(label))
        nouns_agree.append(nouns == {int(label)})
    carrier, other = (entity_agrees, nouns_agree) if relatedness == 1.0 else (nouns_agree, entity_agrees)
    assert all(carrier)
    # The other tokens come from an independent random topic: right about 1 time in 4.
    assert 0.18 < np.mean(other) < 0.32
    assert ds.info["topic_bayes_accuracy"] == 1.0


def test_toy_language_label_noise_replaces_only_the_chosen_sentence_labels():
    clean = load_dataset("toy_language", {"n_samples": 600}, seed=2)
    noisy = load_dataset("toy_language", {"n_samples": 600, "label_noise": {"sentiment": 1.0}}, seed=2)
    assert torch.equal(all_rows(clean).x, all_rows(noisy).x)
    for task in ("pos", "ner", "question"):
        assert torch.equal(all_rows(clean).y[task], all_rows(noisy).y[task])
    agreement = (all_rows(clean).y["sentiment"] == all_rows(noisy).y["sentiment"]).float().mean()
    assert 0.4 < float(agreement) < 0.6  # a random class is right half the time
    assert noisy.info["labels_replaced_by_noise"] == {"topic": 0, "sentiment": 600, "question": 0}


def test_toy_language_splits_are_stratified_by_topic(toy_ds):
    shares = [
        torch.bincount(s.y["topic"], minlength=4).float() / len(s) for s in splits(toy_ds).values()
    ]
    assert all(torch.allclose(shares[0], share, atol=0.02) for share in shares[1:])


def test_toy_language_info_shows_examples_and_counts(toy_ds):
    example = toy_ds.info["examples"][0]
    assert set(example) == {"text", "pos", "ner", "topic", "sentiment", "question"}
    assert len(example["text"].split()) == len(example["pos"].split()) == len(example["ner"].split())
    assert toy_ds.info["n_sentences"] == 1500
    assert sum(toy_ds.info["class_counts"]["topic"].values()) == 1500


def test_toy_language_generates_3000_sentences_in_under_a_second():
    load_dataset("toy_language", {"n_samples": 100}, seed=0)  # warm imports
    start = time.perf_counter()
    load_dataset("toy_language", {"n_samples": 3000}, seed=5)
    assert time.perf_counter() - start < 1.0


# ---- penguins -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def penguins_ds() -> MTLDataset:
    return load_dataset("penguins", {}, seed=0)


@pytest.fixture(scope="module")
def raw_penguins():
    from palmerpenguins import load_penguins

    return load_penguins()


def test_penguins_counts_in_info_match_the_raw_data(penguins_ds, raw_penguins):
    inputs = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "year"]
    missing_input = raw_penguins[inputs].isna().any(axis=1)
    kept = raw_penguins[~missing_input]
    assert penguins_ds.info["dropped_rows_missing_inputs"] == int(missing_input.sum()) > 0
    assert penguins_ds.info["missing_labels"]["sex"] == int(kept["sex"].isna().sum()) > 0
    assert sum(len(s) for s in splits(penguins_ds).values()) == len(kept)


def test_penguins_missing_sex_is_ignore_index(penguins_ds):
    missing = sum(int((s.y["sex"] == IGNORE_INDEX).sum()) for s in splits(penguins_ds).values())
    assert missing == penguins_ds.info["missing_labels"]["sex"]
    for split in splits(penguins_ds).values():
        assert (split.y["species"] != IGNORE_INDEX).all()
        assert split.labelled_count("sex") == len(split) - int((split.y["sex"] == IGNORE_INDEX).sum())


def test_penguins_standardises_with_training_statistics_only(penguins_ds, raw_penguins):
    x = penguins_ds.train.x.double()
    assert torch.allclose(x.mean(dim=0), torch.zeros(4, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(x.std(dim=0, unbiased=False), torch.ones(4, dtype=torch.float64), atol=1e-5)
    # The recorded statistics are not those of all rows, so held-out rows did not leak in.
    all_means = raw_penguins["flipper_length_mm"].mean()
    assert penguins_ds.info["standardisation"]["fitted_on"] == "train"
    assert penguins_ds.info["standardisation"]["mean"]["flipper_length_mm"] != round(all_means, 4)


def test_penguins_body_mass_is_in_kilograms(penguins_ds, raw_penguins):
    mass = torch.cat([s.y["body_mass"] for s in splits(penguins_ds).values()])
    assert mass.min() == pytest.approx(raw_penguins["body_mass_g"].min() / 1000)
    assert mass.max() == pytest.approx(raw_penguins["body_mass_g"].max() / 1000)
    assert "kilogram" in penguins_ds.tasks["body_mass"].description


def test_penguins_splits_are_stratified_by_species(penguins_ds):
    shares = [
        torch.bincount(s.y["species"], minlength=3).float() / len(s) for s in splits(penguins_ds).values()
    ]
    assert all(torch.allclose(shares[0], share, atol=0.03) for share in shares[1:])


# ---- digits -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digit_images():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return (bunch.images / 16.0).astype(np.float32), bunch.target


def test_digits_pair_source_images_never_cross_splits(digit_images):
    ds = load_dataset("digits", {"variant": "pair", "n_samples": 1000}, seed=0)
    images, target = digit_images
    sources = {k: set(v) for k, v in ds.info["source_indices"].items()}
    assert not sources["train"] & sources["val"]
    assert not sources["train"] & sources["test"]
    assert not sources["val"] & sources["test"]
    assert len(set().union(*sources.values())) == len(target)
    # Every half of every pair is an image of its own split's sources, with its own label.
    for name, split in splits(ds).items():
        label_of = {images[i].tobytes(): int(target[i]) for i in sources[name]}
        pixels = split.x.numpy().reshape(-1, 8, 16)
        for k in range(len(split)):
            assert label_of[pixels[k, :, :8].tobytes()] == int(split.y["left"][k])
            assert label_of[pixels[k, :, 8:].tobytes()] == int(split.y["right"][k])


def test_digits_pixels_lie_in_unit_interval():
    ds = load_dataset("digits", {"variant": "pair", "n_samples": 200}, seed=0)
    assert float(ds.train.x.min()) == 0.0 and float(ds.train.x.max()) == 1.0


def test_digits_attribute_labels_are_functions_of_the_digit():
    ds = load_dataset("digits", {"variant": "attributes"}, seed=0)
    for split in splits(ds).values():
        digit = split.y["digit"]
        assert torch.equal(split.y["parity"], digit % 2)
        assert torch.equal(split.y["ge5"], (digit >= 5).long())
    assert ds.tasks["parity"].class_names == ("even", "odd")
    assert all("related" in spec.description for spec in ds.tasks.values())
