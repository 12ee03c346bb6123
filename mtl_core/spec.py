"""The pydantic shapes that the config and the parts it configures both read.

`StrictModel` is the base of every options and spec model: an unknown field is an error
(`extra="forbid"`), so a misspelt option in a config file is refused, not ignored.
`ModelSpec` (the network's sizes) lives here, not in `config`, because the models read
it and `config` reads the models' registry: both import this module, neither the other.
This module imports nothing of MTL Lab, so anything may import it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class StrictModel(BaseModel):
    """A pydantic model that refuses unknown fields (the base of every options model)."""

    model_config = ConfigDict(extra="forbid")


class NoOptions(StrictModel):
    """Options model of an entry that takes no options."""


class ModelSpec(StrictModel):
    """The sizes of the network every sharing mode builds (the config's `model` section)."""

    hidden: list[int] = Field(
        default_factory=lambda: [64, 64], description="encoder layer widths (MLP) / [hidden] (text)"
    )
    head_hidden: int = Field(0, ge=0, description="hidden width of each task head; 0 = linear head")
    # minilm*: the text extra; minilm_frozen puts a trainable shared layer on the fixed features
    text_encoder: Literal["gru", "cnn", "transformer", "minilm", "minilm_frozen"] = "gru"
    embed_dim: int = Field(32, ge=1, le=4096)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)

    @field_validator("hidden")
    @classmethod
    def _hidden(cls, v: list[int]) -> list[int]:
        if not v or any(h < 1 for h in v):
            raise ValueError("give at least one layer width, each ≥ 1, e.g. [64, 64]")
        return v
