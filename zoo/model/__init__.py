"""The model: specs become components (building), components become one ``ZooModel``, shared layers.

The public names of :mod:`zoo.model.model` and :mod:`zoo.model.building` are re-exported here,
lazily: building is torch-free, so ``zoo.api`` (and ``import zoo``) must not load torch through
this package; ``zoo.model.ZooModel`` imports it on first use.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .building import Built, ObjectBuilt, build_components, build_from_objects, check_rates, resolved_configs
    from .model import Batch, Head, ZooModel, build_model

_LAZY = {
    "Batch": "model",
    "Head": "model",
    "ZooModel": "model",
    "build_model": "model",
    "Built": "building",
    "ObjectBuilt": "building",
    "build_components": "building",
    "build_from_objects": "building",
    "check_rates": "building",
    "resolved_configs": "building",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
