"""Loss-weighting and gradient-balancing strategies (one file per family)."""

from mtl_core.weighting.base import WEIGHTING, WeightingStrategy, build_weighting, register_weighting
from mtl_core.weighting import manual  # noqa: F401  (registers)

__all__ = ["WEIGHTING", "WeightingStrategy", "build_weighting", "register_weighting"]
