"""Where the zoo keeps things: data, feature caches and the MLflow store (all under ZOO_HOME)."""
from __future__ import annotations

import os
from pathlib import Path


def zoo_home() -> Path:
    """``$ZOO_HOME`` or ``~/.zoo``: the root of everything the zoo writes by default."""
    return Path(os.environ.get("ZOO_HOME") or Path.home() / ".zoo").expanduser()


def data_dir() -> Path:
    """Generated data sets (the embedded default set)."""
    return zoo_home() / "data"


def cache_dir() -> Path:
    """Feature cache, keyed by file content and feature settings."""
    return zoo_home() / "cache"


def tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` or a sqlite store ``ZOO_HOME/mlflow/mlflow.db``."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    folder = zoo_home() / "mlflow"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


def artifact_root() -> Path:
    """Where artifacts of runs in the default store go."""
    return zoo_home() / "mlflow" / "artifacts"
