"""A generated English-like corpus with token- and sentence-level tasks, fully offline.

Sentences come from a small grammar over our own lexicon (~150 words): determiners,
adjectives of positive or negative polarity, nouns of four topics (sports, tech, food,
travel), named entities (PER / LOC / ORG, some of several tokens) each tied to one topic,
participle verbs, prepositions, intensifiers, "not", question words and auxiliaries, and
the punctuation tokens "." and "?". Five tasks share one input, in the spirit of the
unified tagger-and-classifier of Collobert & Weston (ICML 2008) and of supervising
low-level tasks below high-level ones (Søgaard & Goldberg, ACL 2016):

- `pos` (tagging): one of 10 coarse part-of-speech tags per token (Universal
  Dependencies names: DET ADJ NOUN PROPN VERB AUX PART ADV ADP PUNCT);
- `ner` (tagging): BIO entity tags (Ramshaw & Marcus, 1995) B-/I- PER, LOC, ORG and O;
- `topic` (classification, 4 classes);
- `sentiment` (classification, negative / positive): the polarity of the sentence's
  adjective, flipped by "not" ("was not good" is negative, "is not awful" positive);
- `question` (classification): statement or question (word order, "why"/"when", "?").

The `relatedness` knob r moves which tokens carry the topic. For every sentence a
hidden topic t (the label) is drawn; then
- with probability r the named entity comes from topic t and the content nouns from a
  topic drawn uniformly at random (independent of t): the label sits on the tokens
  that `ner` tags, so tagging entities helps classifying the topic;
- otherwise the nouns come from t and the entity from a random topic: the label is a
  hidden variable shown only by the untagged nouns.
When entity and nouns disagree the reader cannot know which branch made the sentence,
so the best possible topic accuracy is 1/4 + 3/4 · max(r, 1 − r) (1.0 at r = 0 or 1,
0.85 at the default 0.8); it is recorded in `info["topic_bayes_accuracy"]`. Sentiment
and question are deterministic functions of the tokens whatever r is.

All random choices are drawn up front from one generator and in the same order whatever
the options, so two datasets that differ only in `relatedness` or `label_noise` have
the same sentence shapes, words and polarities (only the topic sources or labels move).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import torch
from pydantic import Field, field_validator

from mtl_core.spec import StrictModel
from mtl_core.tasks.base import (
    IGNORE_INDEX,
    PAD_ID,
    MTLDataset,
    Split,
    TaskSpec,
    register_dataset,
    split_indices,
)

TASKS = ("pos", "ner", "topic", "sentiment", "question")
SENTENCE_TASKS = ("topic", "sentiment", "question")

POS_TAGS = ("DET", "ADJ", "NOUN", "PROPN", "VERB", "AUX", "PART", "ADV", "ADP", "PUNCT")
NER_TAGS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG")
TOPICS = ("sports", "tech", "food", "travel")
SENTIMENTS = ("negative", "positive")
SENTENCE_TYPES = ("statement", "question")
CLASS_NAMES = {"topic": TOPICS, "sentiment": SENTIMENTS, "question": SENTENCE_TYPES}

# ---- lexicon -------------------------------------------------------------------------
DETERMINERS = ("the", "this", "that", "every", "our", "their")
# Before a predicate noun ("Kofi is not our great player") "every" and "that" read oddly.
PREDICATE_DETERMINERS = ("the", "our", "their")
INTENSIFIERS = ("very", "really", "quite", "truly")
WH_WORDS = ("why", "when")
AUXILIARIES = ("is", "was")
NEGATION = "not"
POSITIVE_ADJ = (
    "good", "great", "excellent", "wonderful", "superb",
    "brilliant", "lovely", "pleasant", "solid", "fantastic",
)
NEGATIVE_ADJ = (
    "bad", "terrible", "awful", "poor", "horrible",
    "dreadful", "weak", "boring", "disappointing", "mediocre",
)
VERBS = ("seen", "made", "reviewed", "described", "planned", "shown", "covered", "chosen")
NOUNS: dict[str, tuple[str, ...]] = {
    "sports": (
        "match", "team", "coach", "league", "season", "player", "stadium", "race", "goal", "tournament",
    ),
    "tech": ("phone", "laptop", "software", "app", "chip", "robot", "network", "update", "screen", "server"),
    "food": ("pizza", "soup", "bread", "cheese", "dish", "cake", "salad", "menu", "coffee", "dessert"),
    "travel": ("flight", "hotel", "trip", "beach", "train", "museum", "tour", "airport", "journey", "resort"),
}
# Invented names; every token belongs to one entity only, so a token names one topic.
ENTITIES: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "sports": (
        ("PER", ("Carla", "Mendez")), ("PER", ("Kofi",)), ("PER", ("Tom", "Reyes")),
        ("LOC", ("Riverside", "Arena")), ("LOC", ("Lakeford",)),
        ("ORG", ("Red", "Falcons")), ("ORG", ("Northside", "United", "FC")),
    ),
    "tech": (
        ("PER", ("Ada", "Lin")), ("PER", ("Priya",)), ("PER", ("Victor", "Chen")),
        ("LOC", ("Silicon", "Bay")), ("LOC", ("Techville",)),
        ("ORG", ("Quantix",)), ("ORG", ("Nova", "Labs")), ("ORG", ("Bytecraft", "Systems")),
    ),
    "food": (
        ("PER", ("Nina", "Basil")), ("PER", ("Marco",)), ("PER", ("Omar", "Sage")),
        ("LOC", ("Olive", "Coast")), ("LOC", ("Saffron", "Valley")), ("LOC", ("Crumbton",)),
        ("ORG", ("Golden", "Spoon")), ("ORG", ("Pasta", "House", "Group")),
    ),
    "travel": (
        ("PER", ("Maya", "Rivers")), ("PER", ("Sven",)), ("PER", ("Lena", "Voss")),
        ("LOC", ("Port", "Azure")), ("LOC", ("Snow", "Peak")), ("LOC", ("Lisbon",)),
        ("ORG", ("SkyJet",)), ("ORG", ("Blue", "Wave", "Tours")),
    ),
}
# Prepositions that read naturally before an entity of each type.
PREPOSITIONS = {"PER": ("by", "with"), "LOC": ("in", "at"), "ORG": ("from", "by")}
OF = "of"

_LEXICON: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("PUNCT", (".", "?")),
    ("PART", (NEGATION,)),
    ("DET", DETERMINERS + PREDICATE_DETERMINERS),
    ("ADV", INTENSIFIERS + WH_WORDS),
    ("AUX", AUXILIARIES),
    ("ADP", (OF, *(w for ps in PREPOSITIONS.values() for w in ps))),
    ("ADJ", POSITIVE_ADJ + NEGATIVE_ADJ),
    ("VERB", VERBS),
    ("NOUN", tuple(w for ns in NOUNS.values() for w in ns)),
    ("PROPN", tuple(w for es in ENTITIES.values() for _, ws in es for w in ws)),
)
# One tag per word (checked here), so the gold POS tags are never ambiguous.
_WORD_POS: dict[str, str] = {}
for _tag, _words in _LEXICON:
    for _w in _words:
        assert _WORD_POS.setdefault(_w, _tag) == _tag, f"{_w!r} has two parts of speech"
VOCAB: list[str] = ["<pad>", "<unk>", *_WORD_POS]
WORD_ID = {w: i for i, w in enumerate(VOCAB)}
_POS_ID = {t: i for i, t in enumerate(POS_TAGS)}
_NER_ID = {t: i for i, t in enumerate(NER_TAGS)}
_entity_tokens = _LEXICON[-1][1]
assert len(_entity_tokens) == len(set(_entity_tokens)), "an entity token is used twice"

# Sentence shapes. Slots: NP = DET NOUN [of DET NOUN] PREP ENT (entity phrase),
# ENT = bare entity, NEG = optional "not", ADV = optional intensifier, DNP = DET [ADV] ADJ NOUN.
STATEMENTS = (
    ("NP", "AUX", "NEG", "ADV", "ADJ", "."),  # the match at Lakeford was not very good .
    ("ENT", "AUX", "NEG", "DNP", "."),  # Kofi is not our really great player .
    ("DN", "VERB", "PREP", "ENT", "AUX", "NEG", "ADV", "ADJ", "."),  # the soup made by Marco was awful .
)
QUESTIONS = (
    ("AUX", "NP", "NEG", "ADV", "ADJ", "?"),  # was the hotel in Lisbon not very good ?
    ("AUX", "ENT", "NEG", "DNP", "?"),  # is Ada Lin not our great coach ?
    ("WH", "AUX", "NP", "NEG", "ADV", "ADJ", "?"),  # why was the match at Lakeford not good ?
    ("WH", "AUX", "DN", "VERB", "PREP", "ENT", "NEG", "ADJ", "?"),  # when was the app made by Quantix bad ?
)
_SLOT_MAX_LEN = {"NP": 5 + 1 + 3, "DN": 5, "ENT": 3, "DNP": 4}
MAX_SENTENCE_LEN = max(sum(_SLOT_MAX_LEN.get(s, 1) for s in t) for t in STATEMENTS + QUESTIONS)


class ToyLanguageOptions(StrictModel):
    n_samples: int = Field(3000, ge=100, le=500_000, description="sentences in all splits together")
    max_len: int = Field(
        16,
        ge=MAX_SENTENCE_LEN,
        le=512,
        description=f"L, the padded sequence length (at least {MAX_SENTENCE_LEN}, the longest sentence)",
    )
    relatedness: float = Field(
        0.8,
        ge=0.0,
        le=1.0,
        description="probability that the topic label is carried by the named entity (tagged by ner) "
        "rather than by the untagged nouns",
    )
    label_noise: float | dict[str, float] = Field(
        0.0,
        description="probability of replacing a sentence label (topic, sentiment, question) by a random "
        "class: one number for all, or a dict task -> probability",
    )

    @field_validator("label_noise")
    @classmethod
    def _check_noise(cls, v: float | dict[str, float]) -> float | dict[str, float]:
        values = v.values() if isinstance(v, dict) else [v]
        if isinstance(v, dict):
            unknown = [k for k in v if k not in SENTENCE_TASKS]
            if unknown:
                raise ValueError(
                    f"label_noise has no task {unknown[0]!r}; label noise applies to the sentence "
                    f"tasks {', '.join(SENTENCE_TASKS)}"
                )
        if any(not 0.0 <= p <= 1.0 for p in values):
            raise ValueError("every label_noise probability must lie in [0, 1]")
        return v

    def noise_for(self, task: str) -> float:
        if isinstance(self.label_noise, dict):
            return float(self.label_noise.get(task, 0.0))
        return float(self.label_noise)


def _task_names(opts: ToyLanguageOptions) -> list[str]:
    return list(TASKS)


def _realise(template: tuple[str, ...], d: dict[str, Any]) -> list[tuple[str, str]]:
    """Words and NER tags of one sentence; `d` holds this sentence's random choices."""
    kind, ent_words = d["entity"]
    ent = [(w, ("B-" if i == 0 else "I-") + kind) for i, w in enumerate(ent_words)]
    prep = PREPOSITIONS[kind][d["prep"] % len(PREPOSITIONS[kind])]
    dn = [(d["det1"], "O"), (d["noun1"], "O")]
    if d["of"]:
        dn += [(OF, "O"), (d["det2"], "O"), (d["noun2"], "O")]
    out: list[tuple[str, str]] = []
    for slot in template:
        if slot == "NP":
            out += dn + [(prep, "O")] + ent
        elif slot == "DN":
            out += dn
        elif slot == "ENT":
            out += ent
        elif slot == "PREP":
            out.append((prep, "O"))
        elif slot == "DNP":
            out.append((d["pred_det"], "O"))
            if d["adv"]:
                out.append((d["adv"], "O"))
            out += [(d["adj"], "O"), (d["noun1"], "O")]
        elif slot == "NEG":
            if d["neg"]:
                out.append((NEGATION, "O"))
        elif slot == "ADV":
            if d["adv"]:
                out.append((d["adv"], "O"))
        else:
            word = {"AUX": d["aux"], "ADJ": d["adj"], "VERB": d["verb"], "WH": d["wh"]}.get(slot, slot)
            out.append((word, "O"))
    return out


def generate_corpus(opts: ToyLanguageOptions, seed: int) -> dict[str, Any]:
    """Sentences (lists of words), their tags and their sentence labels before label noise."""
    rng = np.random.default_rng(seed)
    n, r = opts.n_samples, opts.relatedness
    # Every draw is made for every sentence, whatever the options (see module docstring).
    topic = rng.integers(0, len(TOPICS), n)
    entity_branch = rng.random(n) < r
    random_topic = rng.integers(0, len(TOPICS), n)
    ent_topic = np.where(entity_branch, topic, random_topic)
    noun_topic = np.where(entity_branch, random_topic, topic)
    is_question = rng.random(n) < 0.5
    template_u = rng.random(n)
    ent_u = rng.random(n)
    noun_idx = rng.integers(0, 10, (n, 2))
    has_of = rng.random(n) < 0.3
    det_idx = rng.integers(0, len(DETERMINERS), (n, 2))
    neg = rng.random(n) < 0.5
    adv_idx = np.where(rng.random(n) < 0.3, rng.integers(0, len(INTENSIFIERS), n), -1)
    positive = rng.random(n) < 0.5
    adj_idx = rng.integers(0, len(POSITIVE_ADJ), n)
    prep_idx = rng.integers(0, 2, n)
    verb_idx = rng.integers(0, len(VERBS), n)
    wh_idx = rng.integers(0, len(WH_WORDS), n)
    aux_idx = rng.integers(0, len(AUXILIARIES), n)

    sentences: list[list[tuple[str, str]]] = []
    for i in range(n):
        templates = QUESTIONS if is_question[i] else STATEMENTS
        entities = ENTITIES[TOPICS[ent_topic[i]]]
        nouns = NOUNS[TOPICS[noun_topic[i]]]
        d = {
            "entity": entities[int(ent_u[i] * len(entities))],
            "noun1": nouns[noun_idx[i, 0]],
            "noun2": nouns[noun_idx[i, 1]],
            "of": has_of[i],
            "det1": DETERMINERS[det_idx[i, 0]],
            "det2": DETERMINERS[det_idx[i, 1]],
            "pred_det": PREDICATE_DETERMINERS[det_idx[i, 0] % len(PREDICATE_DETERMINERS)],
            "neg": neg[i],
            "adv": INTENSIFIERS[adv_idx[i]] if adv_idx[i] >= 0 else None,
            "adj": (POSITIVE_ADJ if positive[i] else NEGATIVE_ADJ)[adj_idx[i]],
            "prep": prep_idx[i],
            "verb": VERBS[verb_idx[i]],
            "wh": WH_WORDS[wh_idx[i]],
            "aux": AUXILIARIES[aux_idx[i]],
        }
        sentences.append(_realise(templates[int(template_u[i] * len(templates))], d))
    return {
        "sentences": sentences,
        "labels": {
            "topic": topic.astype(np.int64),
            # Negation flips the adjective's polarity: positive XOR not.
            "sentiment": (positive ^ neg).astype(np.int64),
            "question": is_question.astype(np.int64),
        },
        "entity_topic": ent_topic,
        "noun_topic": noun_topic,
        "noise_u": rng.random((len(SENTENCE_TASKS), n)),
        "noise_class": np.stack([rng.integers(0, len(CLASS_NAMES[t]), n) for t in SENTENCE_TASKS]),
    }


@register_dataset(
    "toy_language",
    description="Generated English-like sentences: POS and NER tagging plus topic, sentiment and "
    "question classification; relatedness moves the topic onto the tagged entities.",
    paper="Collobert & Weston, ICML 2008 (one network, many NLP tasks); Søgaard & Goldberg, ACL 2016",
    options=ToyLanguageOptions,
    task_names=_task_names,
    input_kind="tokens",
)
def build_toy_language(opts: ToyLanguageOptions, seed: int) -> MTLDataset:
    corpus = generate_corpus(opts, seed)
    sentences = corpus["sentences"]
    n, L = opts.n_samples, opts.max_len

    x = np.full((n, L), PAD_ID, dtype=np.int64)
    pos = np.full((n, L), IGNORE_INDEX, dtype=np.int64)
    ner = np.full((n, L), IGNORE_INDEX, dtype=np.int64)
    for i, sent in enumerate(sentences):
        k = len(sent)
        x[i, :k] = [WORD_ID[w] for w, _ in sent]
        pos[i, :k] = [_POS_ID[_WORD_POS[w]] for w, _ in sent]
        ner[i, :k] = [_NER_ID[t] for _, t in sent]

    labels = {t: v.copy() for t, v in corpus["labels"].items()}
    replaced: dict[str, int] = {}
    for j, task in enumerate(SENTENCE_TASKS):
        hit = corpus["noise_u"][j] < opts.noise_for(task)
        labels[task][hit] = corpus["noise_class"][j][hit]
        replaced[task] = int(hit.sum())

    targets = {"pos": pos, "ner": ner, **labels}
    tasks = {
        "pos": TaskSpec(
            "pos", "tagging", num_classes=len(POS_TAGS), class_names=POS_TAGS,
            metric="token_accuracy", higher_is_better=True,
            description="coarse part-of-speech tag of every token (Universal Dependencies names)",
        ),
        "ner": TaskSpec(
            "ner", "tagging", num_classes=len(NER_TAGS), class_names=NER_TAGS,
            metric="entity_f1", higher_is_better=True,
            description="BIO tags of person, location and organisation names, scored by entity F1",
        ),
        "topic": TaskSpec(
            "topic", "classification", num_classes=len(TOPICS), class_names=TOPICS,
            description=f"topic of the sentence; carried by the named entity with probability "
            f"{opts.relatedness:g}, otherwise by the other nouns",
        ),
        "sentiment": TaskSpec(
            "sentiment", "classification", num_classes=2, class_names=SENTIMENTS,
            description="polarity of the adjective, flipped by 'not'",
        ),
        "question": TaskSpec(
            "question", "classification", num_classes=2, class_names=SENTENCE_TYPES,
            description="statement or question",
        ),
    }

    x_t = torch.as_tensor(x)
    y_t = {t: torch.as_tensor(v) for t, v in targets.items()}
    train, val, test = (
        Split(x_t[i], {t: v[i] for t, v in y_t.items()})
        for i in split_indices(n, seed=seed, stratify=labels["topic"])
    )

    r = opts.relatedness
    lengths = np.array([len(s) for s in sentences])
    pos_counts = Counter(_WORD_POS[w] for s in sentences for w, _ in s)
    ner_counts = Counter(t for s in sentences for _, t in s)
    return MTLDataset(
        name="toy_language",
        input_kind="tokens",
        tasks=tasks,
        train=train,
        val=val,
        test=test,
        vocab=list(VOCAB),
        info={
            "source": "generated by mtl_core.tasks.toy_language (own grammar and lexicon)",
            "examples": [_example(sentences[i], labels, i) for i in range(min(5, n))],
            "n_sentences": n,
            "max_len": L,
            "longest_sentence": int(lengths.max()),
            "mean_sentence_length": round(float(lengths.mean()), 2),
            "relatedness": r,
            "topic_bayes_accuracy": round(0.25 + 0.75 * max(r, 1.0 - r), 4),
            "entity_topic_agrees_with_label": _agreement(corpus["entity_topic"], corpus["labels"]["topic"]),
            "noun_topic_agrees_with_label": _agreement(corpus["noun_topic"], corpus["labels"]["topic"]),
            "labels_replaced_by_noise": replaced,
            "class_counts": {
                t: {c: int((labels[t] == k).sum()) for k, c in enumerate(CLASS_NAMES[t])}
                for t in SENTENCE_TASKS
            },
            "tag_counts": {
                "pos": {tag: pos_counts[tag] for tag in POS_TAGS},
                "ner": {tag: ner_counts[tag] for tag in NER_TAGS},
            },
        },
    )


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return round(float((a == b).mean()), 4)


def _example(sent: list[tuple[str, str]], labels: dict[str, np.ndarray], i: int) -> dict[str, str]:
    return {
        "text": " ".join(w for w, _ in sent),
        "pos": " ".join(_WORD_POS[w] for w, _ in sent),
        "ner": " ".join(t for _, t in sent),
        **{t: CLASS_NAMES[t][labels[t][i]] for t in SENTENCE_TASKS},
    }
