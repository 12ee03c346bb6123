"""Encoders, heads and the registry of sharing modes."""

from mtl_core.models.sharing import SHARING, MultiTaskModel, build_model, register_sharing
from mtl_core.models import cross_stitch, mtan, experts, hierarchical  # noqa: F401  (registers)

__all__ = ["SHARING", "MultiTaskModel", "build_model", "register_sharing"]
