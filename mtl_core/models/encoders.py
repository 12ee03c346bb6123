"""Encoders g(x; θ): inputs to a shared representation z.

Vectors: an MLP, z of shape (B, H). Token sequences: an embedding followed by a small
BiGRU, 1-D CNN or transformer encoder trained from scratch, z of shape (B, L, H);
padding positions (id 0) are masked by the heads.
"""

from __future__ import annotations

import torch
from torch import nn

from mtl_core.spec import ModelSpec
from mtl_core.tasks.base import PAD_ID, MTLDataset


class MLPEncoder(nn.Module):
    """x (B, D) -> z (B, H): Linear-ReLU blocks of widths `hidden`."""

    def __init__(self, in_dim: int, hidden: list[int], dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for width in hidden:
            layers += [nn.Linear(in_dim, width), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            in_dim = width
        self.net = nn.Sequential(*layers)
        self.out_dim = in_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TokenEncoder(nn.Module):
    """token ids (B, L) -> z (B, L, H) with H = hidden[-1].

    kind="gru": bidirectional GRU (H/2 per direction, one layer per width in `hidden`);
    kind="cnn": 1-D convolutions of width 3 with ReLU (Kim, 2014 style, no pooling);
    kind="transformer": pre-norm transformer layers with learned positions
    (Vaswani et al., 2017), 4 heads when H allows it.
    """

    def __init__(
        self, vocab_size: int, *, embed_dim: int, hidden: list[int], kind: str, max_len: int,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        h = hidden[-1]
        if kind == "gru":
            self.rnn = nn.GRU(
                embed_dim, max(1, h // 2), num_layers=len(hidden), batch_first=True,
                bidirectional=True, dropout=dropout if len(hidden) > 1 else 0.0,
            )
            self.out_dim = 2 * max(1, h // 2)
        elif kind == "cnn":
            convs: list[nn.Module] = []
            in_ch = embed_dim
            for width in hidden:
                convs += [nn.Conv1d(in_ch, width, kernel_size=3, padding=1), nn.ReLU()]
                in_ch = width
            self.cnn = nn.Sequential(*convs)
            self.out_dim = in_ch
        elif kind == "transformer":
            self.inp = nn.Linear(embed_dim, h)
            self.pos = nn.Parameter(torch.zeros(1, max_len, h))
            heads = 4 if h % 4 == 0 else 1
            layer = nn.TransformerEncoderLayer(
                h, heads, dim_feedforward=2 * h, dropout=dropout, batch_first=True, norm_first=True
            )
            self.tf = nn.TransformerEncoder(layer, num_layers=len(hidden), enable_nested_tensor=False)
            self.out_dim = h
        else:  # validated by ModelSpec
            raise AssertionError(kind)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.embed(x)
        if self.kind == "gru":
            z, _ = self.rnn(e)
        elif self.kind == "cnn":
            z = self.cnn(e.transpose(1, 2)).transpose(1, 2)
        else:
            pad = x == PAD_ID
            z = self.tf(self.inp(e) + self.pos[:, : x.shape[1]], src_key_padding_mask=pad)
            z = torch.nan_to_num(z)  # all-padding rows give NaN attention; heads mask them anyway
        return z


def build_encoder(dataset: MTLDataset, spec: ModelSpec) -> nn.Module:
    """The encoder fitting the dataset's input kind, sized by `spec`."""
    if dataset.input_kind == "vector":
        return MLPEncoder(dataset.input_dim, spec.hidden, spec.dropout)
    if spec.text_encoder in ("minilm", "minilm_frozen"):
        # The pretrained encoder of the `text` extra, imported only when asked for; it
        # raises the install hint when the extra is missing. embed_dim/hidden do not apply.
        from mtl_core.models.pretrained import MiniLMEncoder

        return MiniLMEncoder(dataset.vocab or [], frozen=spec.text_encoder == "minilm_frozen")
    max_len = int(dataset.train.x.shape[1])
    return TokenEncoder(
        dataset.vocab_size, embed_dim=spec.embed_dim, hidden=spec.hidden, kind=spec.text_encoder,
        max_len=max_len, dropout=spec.dropout,
    )
