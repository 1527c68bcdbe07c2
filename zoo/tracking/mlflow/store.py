"""The connection to an MLflow store: a quiet client, experiments and where their artifacts go.

Below everything else in :mod:`zoo.tracking.mlflow` (it imports none of its siblings), so the
tracker, the pyfunc model, the registry and the look-ups can all use it without an import cycle.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ...errors import ConfigError


def artifact_location(uri: str, experiment: str) -> str | None:
    """Where a new experiment's artifacts go: beside a sqlite store, ``<db folder>/artifacts/<name>``.

    For the default store (``ZOO_HOME/mlflow/mlflow.db``) that is ``zoo.paths.artifact_root()/<name>``.
    Other stores (a server, a file store) choose for themselves (None).
    """
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(uri[len("sqlite:///"):])
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", experiment).strip("-") or "experiment"
    return (db.parent.resolve() / "artifacts" / slug).as_uri()


def quiet_mlflow_logs() -> None:
    """MLflow and alembic announce database migrations at INFO on first use: keep stderr for the zoo."""
    import logging
    for name in ("alembic", "mlflow.store.db.utils", "mlflow.tracking.fluent", "mlflow.store"):
        logging.getLogger(name).setLevel(logging.WARNING)


def client(uri: str | None = None):
    """An ``MlflowClient`` on ``uri`` (default: :func:`zoo.paths.tracking_uri`)."""
    from mlflow.tracking import MlflowClient

    from ...paths import tracking_uri
    quiet_mlflow_logs()
    return MlflowClient(tracking_uri=uri or tracking_uri())


def get_experiment(mlflow_client: Any, name: str, *, create: bool):
    """The experiment ``name`` (created with a predictable artifact folder when ``create``)."""
    exp = mlflow_client.get_experiment_by_name(name)
    if exp is not None and exp.lifecycle_stage == "deleted":
        raise ConfigError(
            f"experiment '{name}' exists in {mlflow_client.tracking_uri} but is deleted; restore it "
            f"(mlflow experiments restore --experiment-id {exp.experiment_id}) or pass another --experiment"
        )
    if exp is None and create:
        location = artifact_location(mlflow_client.tracking_uri, name)
        mlflow_client.create_experiment(name, artifact_location=location)
        exp = mlflow_client.get_experiment_by_name(name)
    return exp
