"""The interface every loss-weighting / gradient-balancing strategy implements.

A strategy turns the per-task losses of a step (and, where it declares it needs them,
per-task gradients on the shared parameters) into one update: it runs the backward
pass itself and returns the effective per-task weights it applied, which the engine
logs so the dashboard can plot them over time.

Two families share this interface:
- loss-based strategies (`requires = "losses"`) build one scalar objective from the
  losses (`objective`) and back-propagate it once;
- gradient-based strategies (`requires = "grads"`, see `mtl_core.weighting.jacobian`)
  compute the per-task gradient matrix G (T × P) on the shared parameters (or on the
  shared representation) and write an aggregated direction into the shared gradients.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Literal

import torch
from torch import nn

from mtl_core.errors import ConfigError
from mtl_core.registry import Registry

#: What a strategy may need from the model besides the losses.
ModelNeed = Literal["shared_parameters", "shared_rep"]

#: How far the manual weights w_t reach under a strategy (its `uses_weights`).
WeightUse = Literal["all", "heads", "none"]
WEIGHT_USES: dict[str, str] = {
    "all": "the shared update and each task's own parameters (its head) both depend on w_t",
    "heads": "only each task's own parameters (its head) are scaled by w_t; the shared update ignores them",
    "none": "w_t are ignored: the strategy sets every task weight itself",
}


class WeightingStrategy(nn.Module):
    """Base class. An `nn.Module` so strategies with learnable parameters
    (e.g. uncertainty weighting's log-variances) join the optimiser."""

    #: "losses" (loss-based) or "grads" (needs per-task gradients on shared parameters)
    requires: ClassVar[str] = "losses"
    #: Whether the strategy is meaningful when one task is drawn per step (the others
    #: then have a zero loss and no gradient). Gradient methods are not: a zero row of G
    #: turns e.g. MGDA's min-norm point into 0. The config can refuse the pair with this.
    supports_task_sampling: ClassVar[bool] = True
    #: Registry name, set by `register_weighting` (used in error messages).
    registry_name: ClassVar[str] = ""
    #: Which parameters the config's manual weights w_t (`base_weights`) reach: "all",
    #: "heads" or "none" (see `WEIGHT_USES`). Every registered strategy states it, so the
    #: dashboard can disable the weight sliders and the config refuse ignored weights.
    uses_weights: ClassVar[WeightUse | None] = None

    def __init__(self, tasks: list[str], options: Any, *, base_weights: torch.Tensor) -> None:
        super().__init__()
        self.tasks = list(tasks)
        self.options = options
        self.register_buffer("base_weights", base_weights.clone())

    # ---- what the strategy needs ---------------------------------------------------------
    @classmethod
    def model_needs(cls, options: Any) -> frozenset[ModelNeed]:
        """What the model must provide for these options (checked by `check_model`).

        "shared_parameters": `model.shared_parameters()` must not be empty;
        "shared_rep": `model.shared_rep` must be set by the forward pass.
        """
        return frozenset()

    def check_model(self, model: nn.Module) -> None:
        """Raise ConfigError when `model`'s sharing mode cannot serve this strategy.

        Called by gradient strategies at their first step (the shared representation only
        exists after a forward pass); callers may also call it right after building.
        """
        needs = self.model_needs(self.options)
        name = self.registry_name or type(self).__name__
        mode = sharing_name(model)
        if "shared_parameters" in needs and not [p for p in model.shared_parameters() if p.requires_grad]:
            raise ConfigError(
                f"weighting: {name!r} balances the tasks' gradients on the shared parameters, but "
                f"sharing mode {mode!r} shares no parameters between tasks here (one encoder per task, "
                "or a run with a single task). Choose sharing 'hard' with at least two tasks, or a "
                "loss-based weighting (equal, manual, uncertainty, dwa, gls, rlw, famo, stch)"
            )
        if "shared_rep" in needs and getattr(model, "shared_rep", None) is None:
            raise ConfigError(
                f"weighting: {name!r} with mode 'rep' balances gradients with respect to the shared "
                f"representation, but sharing mode {mode!r} has no single representation that every "
                "task head reads. Set weighting.options.mode to 'params', or choose sharing 'hard'"
            )

    # ---- loss-based update ---------------------------------------------------------------
    def weights(self, losses: torch.Tensor, step: int) -> torch.Tensor:
        """Per-task weights (T,) for this step; loss-based strategies override this."""
        return self.base_weights

    def objective(self, losses: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(scalar objective to back-propagate, effective weights ∂objective/∂L_t).

        The default is the weighted sum Σ_t w_t L_t with `weights`; strategies whose
        objective is not a weighted sum (uncertainty's +log σ², GLS's geometric mean)
        override this and report the gradient of their objective w.r.t. each loss.
        """
        w = self.weights(losses, step)
        return (w * losses).sum(), w

    def backward(
        self,
        losses: torch.Tensor,
        *,
        step: int,
        model: nn.Module,
        extra_loss: torch.Tensor | None = None,
        grad_scale: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Back-propagate the combined loss; return the weights applied (T,), detached.

        `losses` is (T,) float32, with 0 for tasks not sampled this step; `extra_loss` is
        a regulariser added unweighted (soft sharing). `grad_scale` (a scalar tensor, fp16
        training): the gradients left in `.grad` must be this multiple of the true ones, as
        a GradScaler expects (it divides them back and skips steps with inf/NaN). The
        engine keeps the returned tensor until its next logging step: do not modify it in
        place afterwards (return a new tensor or a buffer you replace, not one you update).
        """
        total, w = self.objective(losses, step)
        if extra_loss is not None:
            total = total + extra_loss
        if grad_scale is not None:
            total = total * grad_scale
        total.backward()
        return w.detach()


def sharing_name(model: nn.Module) -> str:
    """The registry name of `model`'s sharing mode (for messages), which `register_sharing`
    records on the class itself: an unregistered subclass goes by its class name."""
    return vars(type(model)).get("registry_name") or type(model).__name__


def active_tasks(losses: torch.Tensor) -> torch.Tensor:
    """Boolean mask (T,) of the tasks that have a loss this step.

    The engine passes 0 for tasks not drawn under one-task-per-step sampling; a drawn
    task's mean loss is exactly 0 only for a perfect fit, where treating it as absent
    changes nothing. Computed on the device: no host sync.
    """
    return losses.detach() != 0


def seed_from_torch(seed: int | None) -> int:
    """A strategy's random seed: the option's value, or one drawn from torch's global
    generator, which the engine seeds with the run's seed before building the strategy
    (so runs stay reproducible and different run seeds give different streams)."""
    return int(seed) if seed is not None else int(torch.randint(0, 2**62, (1,)).item())


WEIGHTING: Registry[Callable[..., WeightingStrategy]] = Registry("weighting strategy")


def register_weighting(name: str, **kwargs: Any):
    """Register a strategy class (kwargs: description, paper, formula, options).

    The entry also records the class's `requires` ("losses" / "grads"), so the CLI and
    the dashboard can say which strategies need per-task gradients, and its
    `uses_weights`, so they can say whether the manual weights do anything.
    """

    def decorate(cls: type[WeightingStrategy]) -> type[WeightingStrategy]:
        assert cls.uses_weights in WEIGHT_USES, f"weighting {name!r}: set uses_weights to one of {list(WEIGHT_USES)}"
        cls.registry_name = name
        return WEIGHTING.register(name, requires=cls.requires, uses_weights=cls.uses_weights, **kwargs)(cls)

    return decorate


def weights_note(name: str) -> str:
    """What the manual weights do under strategy `name`, as one sentence for a person; ""
    when they simply scale each task's loss (manual)."""
    cls = WEIGHTING.get(name, field_name="weighting.name").obj
    if cls.uses_weights == "none":
        return f"{name} sets every task weight itself, so the manual weights w_t are not used."
    if cls.uses_weights == "heads":
        return (f"{name} uses the weights w_t only for each task's own head; it sets the update of the "
                "shared parameters itself.")
    if cls.requires == "grads":
        return (f"{name} uses the weights w_t as its preference between the tasks in the shared update, "
                "and to scale each task's head.")
    return ""


def strategies_using_weights() -> dict[str, list[str]]:
    """{"all": [...], "heads": [...]}: the strategies that read the manual weights, by reach."""
    out: dict[str, list[str]] = {"all": [], "heads": []}
    for entry in WEIGHTING.entries():
        if entry.extra["uses_weights"] in out:
            out[entry.extra["uses_weights"]].append(entry.name)
    return out


def build_weighting(
    name: str, tasks: list[str], options: dict[str, Any] | None, *, base_weights: torch.Tensor
) -> WeightingStrategy:
    entry = WEIGHTING.get(name, field_name="weighting.name")
    opts = entry.parse_options(options, where="weighting")
    return entry.obj(tasks, opts, base_weights=base_weights)
