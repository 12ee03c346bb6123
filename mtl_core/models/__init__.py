"""Encoders, heads and the registry of sharing modes."""

from mtl_core.models.sharing import SHARING, MultiTaskModel, build_model, register_sharing

__all__ = ["SHARING", "MultiTaskModel", "build_model", "register_sharing"]
