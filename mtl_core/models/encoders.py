"""Encoders g(x; θ): inputs to a shared representation z.

Vectors: an MLP, z of shape (B, H). Token sequences: an embedding followed by a small
BiGRU, 1-D CNN or transformer encoder trained from scratch, z of shape (B, L, H).

Token encoders ignore padding (id 0, right-padded rows): the GRU runs on packed
sequences, the CNN zeroes padding positions before every convolution, the transformer
masks padding keys; z is 0 at padding positions. So appending `<pad>` to a row leaves
its z unchanged (in eval mode), and the heads' masked pooling sees the same vectors.
`dropout` (model.dropout) acts the same way in every encoder: after every hidden layer
of the MLP; in every token encoder on the word embeddings and between layers (not after
the last, as `nn.GRU` does; inside the transformer's layers), the convention of the
layer-wise encoders of `models.stack`, so a mode and its baselines drop alike.
"""

from __future__ import annotations

import torch
from torch import nn

from mtl_core.spec import ModelSpec
from mtl_core.tasks.base import PAD_ID, UNK_ID, MTLDataset


def word_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Token ids with each non-padding word replaced by `<unk>` with probability `p`
    (Iyyer et al., 2015, "word dropout"; Kiperwasser & Goldberg, 2016, for taggers), so
    that `<unk>` is trained on real contexts and the model does not lean on any one word.
    Draws from torch's global generator, which the engine seeds: the same seed gives the
    same replacements."""
    if p <= 0.0:
        return x
    drop = (torch.rand(x.shape, device=x.device) < p) & (x != PAD_ID)
    return x.masked_fill(drop, UNK_ID)


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

    kind="gru": bidirectional GRU (H/2 per direction, one layer per width in `hidden`),
    run on packed sequences so padding never enters the recurrence;
    kind="cnn": 1-D convolutions of width 3 with ReLU (Kim, 2014 style, no pooling),
    padding positions zeroed before each convolution;
    kind="transformer": pre-norm transformer layers with learned positions
    (Vaswani et al., 2017), 4 heads when H allows it, padding keys masked.
    `word_dropout`: in training mode only, see `word_dropout`. Rows are right-padded
    (`tasks.text.token_ids`): a row's length is its count of non-padding ids.
    """

    def __init__(
        self, vocab_size: int, *, embed_dim: int, hidden: list[int], kind: str, max_len: int,
        dropout: float = 0.0, word_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= word_dropout < 1.0:
            raise ValueError(f"word_dropout: {word_dropout!r} must be in [0, 1)")
        self.kind = kind
        self.word_dropout = word_dropout
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
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
                convs.append(nn.Conv1d(in_ch, width, kernel_size=3, padding=1))
                in_ch = width
            self.convs = nn.ModuleList(convs)
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
        if self.training:
            x = word_dropout(x, self.word_dropout)
        pad = x == PAD_ID
        at_pad = pad.unsqueeze(-1)  # (B, L, 1)
        e = self.drop(self.embed(x))
        if self.kind == "gru":
            from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

            # An all-padding row is given length 1 (packing refuses 0); it is zeroed below.
            lengths = (~pad).sum(dim=1).clamp(min=1).cpu()
            packed = pack_padded_sequence(e, lengths, batch_first=True, enforce_sorted=False)
            z, _ = self.rnn(packed)
            z, _ = pad_packed_sequence(z, batch_first=True, total_length=x.shape[1])
        elif self.kind == "cnn":
            # Zeroing padding before each convolution makes a padding position read exactly
            # like the convolution's own zero border, so trailing `<pad>` changes nothing.
            # The same operations, in the same order, as `models.stack.ConvLayer`, so that
            # weights copied between the two give bit-identical outputs.
            h = e
            for i, conv in enumerate(self.convs):
                h = torch.relu(conv(h.masked_fill(at_pad, 0.0).transpose(1, 2))).transpose(1, 2)
                if i < len(self.convs) - 1:
                    h = self.drop(h)
                h = h.masked_fill(at_pad, 0.0)
            z = h
        else:
            z = self.tf(self.inp(e) + self.pos[:, : x.shape[1]], src_key_padding_mask=pad)
            z = torch.nan_to_num(z)  # all-padding rows give NaN attention; zeroed below
        return z.masked_fill(at_pad, 0.0)


def build_encoder(dataset: MTLDataset, spec: ModelSpec) -> nn.Module:
    """The encoder fitting the dataset's input kind, sized by `spec`."""
    if dataset.input_kind == "vector":
        return MLPEncoder(dataset.input_dim, spec.hidden, spec.dropout)
    if spec.text_encoder in ("minilm", "minilm_frozen"):
        # The pretrained encoder of the `text` extra, imported only when asked for; it
        # raises the install hint when the extra is missing. embed_dim/hidden do not apply.
        from mtl_core.models.pretrained import MiniLMEncoder

        return MiniLMEncoder(dataset.vocab or [], frozen=spec.text_encoder == "minilm_frozen", dropout=spec.dropout)
    max_len = int(dataset.train.x.shape[1])
    # Word dropout is a property of the text pipeline the importer chose (e.g. the CSV
    # option `word_dropout`), recorded in the dataset's info; 0 where none says otherwise.
    return TokenEncoder(
        dataset.vocab_size, embed_dim=spec.embed_dim, hidden=spec.hidden, kind=spec.text_encoder,
        max_len=max_len, dropout=spec.dropout,
        word_dropout=float(dataset.info.get("word_dropout", 0.0)),
    )
