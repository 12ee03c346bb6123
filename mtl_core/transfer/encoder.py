"""Encoder surgery: find the one shared encoder of a pre-trained model, and give each arm
its encoder: frozen (a fixed copy, a "linear probe"), fine-tuned (a trainable copy) or
scratch (fresh weights of the same size)."""

from __future__ import annotations

import copy
import types

import torch
from torch import nn

from mtl_core.config import ExperimentConfig
from mtl_core.errors import ConfigError
from mtl_core.phases import ARMS
from mtl_core.tasks.base import MTLDataset


def shared_encoder(model: nn.Module, sharing: str) -> nn.Module:
    """The one encoder every task of `model` reads, or a ConfigError naming the fix.

    A mode qualifies when its model has an `encoder` whose parameters are exactly the
    shared ones (hard sharing); modes with one encoder per task, experts or
    task-specific layers inside the encoder have nothing single to transfer.
    """
    encoder = getattr(model, "encoder", None)
    shared = {id(p) for p in model.shared_parameters()}  # type: ignore[operator]
    if not isinstance(encoder, nn.Module) or {id(p) for p in encoder.parameters()} != shared:
        raise ConfigError(
            f"sharing: {sharing!r} has no single shared encoder to transfer (its tasks do not all "
            "read one encoder); pre-train with sharing 'hard'"
        )
    return encoder


def _eval_mode_only(self: nn.Module, mode: bool = True) -> nn.Module:
    return nn.Module.train(self, False)


def is_frozen(module: nn.Module) -> bool:
    """True when no parameter of `module` is trainable."""
    return not any(p.requires_grad for p in module.parameters())


def frozen_copy(encoder: nn.Module) -> nn.Module:
    """A copy of `encoder` as a fixed feature extractor: no gradients, and eval mode for
    good (the engine's `model.train()` would otherwise switch its dropout back on)."""
    module = copy.deepcopy(encoder)
    module.requires_grad_(False)
    module.train = types.MethodType(_eval_mode_only, module)  # type: ignore[method-assign]
    module.eval()
    return module


def build_target_model(
    arm: str, dataset: MTLDataset, target: str, config: ExperimentConfig, encoder: nn.Module
) -> nn.Module:
    """A one-task hard-sharing model for `arm`, before training.

    - frozen: `encoder` as a fixed feature extractor. An encoder that is already frozen
      (`frozen_copy`, or a frozen MiniLM) is used as it is, so several frozen arms share
      one encoder and its feature cache; otherwise a frozen copy is made.
    - finetune: a trainable copy of `encoder` (its weights, nothing shared).
    - scratch: the new model's own freshly initialised encoder of the same size (an
      encoder that comes pretrained from its constructor, MiniLM, is re-initialised).
    Built right after seeding with `config.seed`, so every arm starts from the same head.
    """
    from mtl_core.models import build_model

    if arm not in ARMS:
        raise ConfigError(f"arms: unknown arm {arm!r}; choose from: {', '.join(ARMS)}")
    torch.manual_seed(config.seed)
    model = build_model("hard", dataset, [target], config.model)
    if arm == "scratch":
        reset = getattr(model.encoder, "reset_parameters", None)
        if callable(reset):
            reset()
        model.encoder.requires_grad_(True)
    elif arm == "frozen":
        model.encoder = encoder if is_frozen(encoder) else frozen_copy(encoder)
    else:
        model.encoder.load_state_dict(encoder.state_dict())
        model.encoder.requires_grad_(True)
    return model
