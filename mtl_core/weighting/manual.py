"""Fixed loss weights: L = Σ_t w_t·L_t."""

from __future__ import annotations

from mtl_core.registry import NoOptions
from mtl_core.weighting.base import WeightingStrategy, register_weighting


@register_weighting(
    "manual",
    description="Fixed loss weights you set per task (default: all 1, i.e. equal weighting).",
    paper="the classic weighted sum of task losses (e.g. Caruana, 1997; Ruder, 2017 survey)",
    formula=r"L=\sum_t w_t\,L_t",
    options=NoOptions,
)
class ManualWeighting(WeightingStrategy):
    """w_t from the config's `weights` (missing tasks get 1)."""
    uses_weights = "all"


@register_weighting(
    "equal",
    description="Every task weighs 1: L = Σ_t L_t (manual weights are not used).",
    paper="uniform scalarisation, the usual MTL default (Ruder, 2017 survey)",
    formula=r"L=\sum_t L_t",
    options=NoOptions,
)
class EqualWeighting(WeightingStrategy):
    uses_weights = "none"  # base_weights replaced by ones

    def __init__(self, tasks, options, *, base_weights):
        super().__init__(tasks, options, base_weights=base_weights.new_ones(len(tasks)))
