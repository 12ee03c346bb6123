"""`LayerStack`: an encoder that can be read level by level, for modes that act between layers.

A stack is a stem (nothing for vectors;
the token embedding for token inputs, plus projection and learned positions for the
transformer) followed by one module per entry of `model.hidden`. The modes that act
between layers (hierarchical, cross-stitch, MTAN) and the expert modes build on it:

- vectors: one Linear-ReLU(-Dropout) layer per width, exactly the layers of `MLPEncoder`
  (same parameters in the same order, so weights copy across);
- tokens, text_encoder="gru": one single-layer BiGRU per width (w/2 units per direction),
  where `TokenEncoder` runs one multi-layer `nn.GRU` whose levels cannot be read;
- tokens, text_encoder="cnn": one width-3 Conv1d-ReLU per width, as `TokenEncoder`;
- tokens, text_encoder="transformer": one pre-norm transformer layer per entry of
  `hidden`, all of width hidden[-1], as `TokenEncoder`.
For tokens, dropout (model.dropout) is applied on the word embeddings and between
layers, not after the last one, as `nn.GRU` does; word dropout (the dataset's
`info["word_dropout"]`) in training mode; and padding is ignored (packed GRU, padding
zeroed before each convolution, padding keys masked, h = 0 at padding): all as
`encoders.TokenEncoder`, so a layer-wise mode and its single-task baselines see the same.
"""

from __future__ import annotations

import torch
from torch import nn

from mtl_core.errors import ConfigError
from mtl_core.models.encoders import word_dropout
from mtl_core.models.heads import masked_mean
from mtl_core.spec import ModelSpec
from mtl_core.tasks.base import PAD_ID, MTLDataset


class DenseLayer(nn.Module):
    """(B, D) -> (B, W): Linear, ReLU and optional dropout (one layer of `MLPEncoder`)."""

    def __init__(self, in_dim: int, width: int, dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(in_dim, width), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        self.net = nn.Sequential(*layers)
        self.out_dim = width

    def forward(self, h: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(h)


class BiGRULayer(nn.Module):
    """(B, L, D) -> (B, L, 2·⌊W/2⌋): one bidirectional GRU layer."""

    def __init__(self, in_dim: int, width: int, dropout: float = 0.0) -> None:
        super().__init__()
        half = max(1, width // 2)
        self.rnn = nn.GRU(in_dim, half, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.out_dim = 2 * half

    def forward(self, h: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        if pad is None:
            return self.drop(self.rnn(h)[0])
        from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

        lengths = (~pad).sum(dim=1).clamp(min=1).cpu()  # an all-padding row: length 1, zeroed below
        packed = pack_padded_sequence(h, lengths, batch_first=True, enforce_sorted=False)
        z, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=h.shape[1])
        return self.drop(z).masked_fill(pad.unsqueeze(-1), 0.0)


class ConvLayer(nn.Module):
    """(B, L, D) -> (B, L, W): width-3 convolution over positions and ReLU (Kim, 2014)."""

    def __init__(self, in_dim: int, width: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_dim, width, kernel_size=3, padding=1)
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.out_dim = width

    def forward(self, h: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        if pad is not None:  # padding reads as the convolution's zero border
            h = h.masked_fill(pad.unsqueeze(-1), 0.0)
        z = self.drop(torch.relu(self.conv(h.transpose(1, 2))).transpose(1, 2))
        return z if pad is None else z.masked_fill(pad.unsqueeze(-1), 0.0)


class TransformerLayer(nn.Module):
    """(B, L, H) -> (B, L, H): one pre-norm transformer layer (Vaswani et al., 2017)."""

    def __init__(self, width: int, dropout: float = 0.0) -> None:
        super().__init__()
        heads = 4 if width % 4 == 0 else 1
        self.layer = nn.TransformerEncoderLayer(
            width, heads, dim_feedforward=2 * width, dropout=dropout, batch_first=True, norm_first=True
        )
        self.out_dim = width

    def forward(self, h: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        # All-padding rows give NaN attention; zeroed with every padding position.
        z = torch.nan_to_num(self.layer(h, src_key_padding_mask=pad))
        return z if pad is None else z.masked_fill(pad.unsqueeze(-1), 0.0)


class Stem(nn.Module):
    """What comes before the first layer: nothing (vectors) or the token embedding."""

    def __init__(self, dataset: MTLDataset, spec: ModelSpec) -> None:
        super().__init__()
        self.token_input = dataset.input_kind == "tokens"
        self.kind = spec.text_encoder if self.token_input else "mlp"
        if self.kind in ("minilm", "minilm_frozen"):
            raise ConfigError(
                "model.text_encoder: MiniLM is one pretrained block, not a stack of our layers, so this "
                "sharing mode cannot act between its layers; use text_encoder gru, cnn or transformer, "
                "or sharing hard, soft or single_task with MiniLM"
            )
        if not self.token_input:
            self.out_dim = dataset.input_dim
            return
        self.embed = nn.Embedding(dataset.vocab_size, spec.embed_dim, padding_idx=PAD_ID)
        self.drop = nn.Dropout(spec.dropout) if spec.dropout else nn.Identity()
        self.word_dropout = float(dataset.info.get("word_dropout", 0.0))
        self.out_dim = spec.embed_dim
        if self.kind == "transformer":
            h = spec.hidden[-1]
            self.inp = nn.Linear(spec.embed_dim, h)
            self.pos = nn.Parameter(torch.zeros(1, int(dataset.train.x.shape[1]), h))
            self.out_dim = h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.token_input:
            return x
        if self.training:
            x = word_dropout(x, self.word_dropout)
        e = self.drop(self.embed(x))
        if self.kind == "transformer":
            e = self.inp(e) + self.pos[:, : x.shape[1]]
        return e

    def pad_mask(self, x: torch.Tensor) -> torch.Tensor | None:
        """True at padding positions (token inputs), None for vectors."""
        return (x == PAD_ID) if self.token_input else None


def build_layers(kind: str, in_dim: int, spec: ModelSpec) -> nn.ModuleList:
    """One layer per width of `spec.hidden` of the given kind ("mlp", "gru", "cnn", "transformer")."""
    layers = nn.ModuleList()
    last = len(spec.hidden) - 1
    for i, width in enumerate(spec.hidden):
        # Vectors: dropout after every layer, as MLPEncoder; tokens: between layers only.
        drop = spec.dropout if (kind == "mlp" or i < last) else 0.0
        if kind == "mlp":
            layer: nn.Module = DenseLayer(in_dim, width, drop)
        elif kind == "gru":
            layer = BiGRULayer(in_dim, width, drop)
        elif kind == "cnn":
            layer = ConvLayer(in_dim, width, drop)
        elif kind == "transformer":
            layer = TransformerLayer(spec.hidden[-1], spec.dropout)
        else:  # validated by ModelSpec
            raise AssertionError(kind)
        layers.append(layer)
        in_dim = layer.out_dim
    return layers


def run_layers(layers: nn.ModuleList, h: torch.Tensor, pad: torch.Tensor | None) -> torch.Tensor:
    for layer in layers:
        h = layer(h, pad)
    return h


def pool(h: torch.Tensor, pad: torch.Tensor | None) -> torch.Tensor:
    """One vector per example: h itself (vectors) or its mean over real tokens (tokens)."""
    if h.dim() == 2:
        return h
    return masked_mean(h, ~pad) if pad is not None else h.mean(1)


class LayerStack(nn.Module):
    """An encoder read level by level: x -> [h_1, ..., h_K] (see the module docstring)."""

    def __init__(self, dataset: MTLDataset, spec: ModelSpec, *, depth: int | None = None) -> None:
        super().__init__()
        self.stem = Stem(dataset, spec)
        layers = build_layers(self.stem.kind, self.stem.out_dim, spec)
        self.layers = nn.ModuleList(list(layers)[: depth or len(layers)])
        self.widths = [layer.out_dim for layer in self.layers]
        self.out_dim = self.widths[-1]

    def forward(self, x: torch.Tensor, *, depth: int | None = None) -> list[torch.Tensor]:
        pad = self.stem.pad_mask(x)
        h = self.stem(x)
        levels = []
        for layer in self.layers[: depth or len(self.layers)]:
            h = layer(h, pad)
            levels.append(h)
        return levels
