"""Test-wide isolation: every test session gets its own ZOO_HOME and MLflow store."""
from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("zoo-home")
    old = {k: os.environ.get(k) for k in ("ZOO_HOME", "MLFLOW_TRACKING_URI")}
    os.environ["ZOO_HOME"] = str(home)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{home / 'mlflow.db'}"
    yield home
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
