"""Music Zoo: compose a backbone, features and tasks from plugins; train, track and predict.

The Python entry points are re-exported lazily so that ``import zoo`` stays cheap (no torch).
"""
from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "Registry": ("zoo.registry", "Registry"),
    "parse_spec": ("zoo.spec", "parse_spec"),
    "ZooError": ("zoo.errors", "ZooError"),
    "train": ("zoo.api", "train"),
    "resume": ("zoo.api", "resume"),
    "evaluate": ("zoo.api", "evaluate"),
    "load": ("zoo.api", "load"),
    "open_model": ("zoo.api", "open_model"),
    "RunRequest": ("zoo.engine.request", "RunRequest"),
    "DataRequest": ("zoo.engine.request", "DataRequest"),
    "SeedPlan": ("zoo.engine.request", "SeedPlan"),
    "TrainConfig": ("zoo.engine.trainconfig", "TrainConfig"),
    "Workspace": ("zoo.workspace", "Workspace"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
