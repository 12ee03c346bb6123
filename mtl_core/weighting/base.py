"""The interface every loss-weighting / gradient-balancing strategy implements.

A strategy turns the per-task losses of a step (and, where it declares it needs them,
per-task gradients on the shared parameters) into one update: it runs the backward
pass itself and returns the effective per-task weights it applied, which the engine
logs so the dashboard can plot them over time.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from mtl_core.registry import Registry


class WeightingStrategy(nn.Module):
    """Base class. An `nn.Module` so strategies with learnable parameters
    (e.g. uncertainty weighting's log-variances) join the optimiser."""

    #: "losses" (loss-based) or "grads" (needs per-task gradients on shared parameters)
    requires: str = "losses"

    def __init__(self, tasks: list[str], options: Any, *, base_weights: torch.Tensor) -> None:
        super().__init__()
        self.tasks = list(tasks)
        self.options = options
        self.register_buffer("base_weights", base_weights.clone())

    def weights(self, losses: torch.Tensor, step: int) -> torch.Tensor:
        """Per-task weights (T,) for this step; loss-based strategies override this."""
        return self.base_weights

    def backward(
        self,
        losses: torch.Tensor,
        *,
        step: int,
        model: nn.Module,
        extra_loss: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Back-propagate the combined loss; return the weights applied (T,), detached.

        `losses` is (T,), with 0 for tasks not sampled this step; `extra_loss` is a
        regulariser added unweighted (soft sharing).
        """
        w = self.weights(losses, step)
        total = (w * losses).sum()
        if extra_loss is not None:
            total = total + extra_loss
        total.backward()
        return w.detach()


WEIGHTING: Registry[Callable[..., WeightingStrategy]] = Registry("weighting strategy")


def register_weighting(name: str, **kwargs: Any):
    """Register a strategy class (kwargs: description, paper, formula, options)."""
    return WEIGHTING.register(name, **kwargs)


def build_weighting(
    name: str, tasks: list[str], options: dict[str, Any] | None, *, base_weights: torch.Tensor
) -> WeightingStrategy:
    entry = WEIGHTING.get(name, field_name="weighting.name")
    opts = entry.parse_options(options, where="weighting")
    return entry.obj(tasks, opts, base_weights=base_weights)
