"""The connection to an MLflow store: a quiet client, the store created once, experiments and where their artifacts go.

Below everything else in :mod:`zoo.tracking.mlflow` (it imports none of its siblings), so the
tracker, the pyfunc model, the registry and the look-ups can all use it without an import cycle.

A sqlite store is created (tables made, migrations run) by the first client that opens it. Two
processes doing that at once race and one dies half-way, so creation, migration and the creation
of experiments run under an exclusive lock on ``<db>.lock`` beside the database (``filelock``, an OS
lock: the kernel releases it when its holder dies, so a killed process never leaves it held).
"""
from __future__ import annotations

import contextlib
import functools
import os
import re
from pathlib import Path
from typing import Any, Iterator

from ...errors import ConfigError, RunError
from ..credentials import redact_uri

LOCK_TIMEOUT = 600.0
"""Seconds to wait for another process creating the same store (migrating a large one takes minutes)."""


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///PATH`` store; None for other stores and in-memory sqlite."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


@contextlib.contextmanager
def store_lock(uri: str, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the exclusive lock of the sqlite store ``uri`` (``<db>.lock``); other stores need none.

    Where the lock file cannot be opened (a read-only folder holding an existing store) this runs
    unlocked: there is nothing to create there.
    """
    from filelock import FileLock, Timeout

    db = sqlite_path(uri)
    if db is None:
        yield
        return
    lock = db.with_name(db.name + ".lock")
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        held = FileLock(lock, timeout=timeout).acquire()
    except Timeout:
        raise RunError(
            f"the MLflow store {db} has been locked by another process for {timeout:.0f} s "
            f"({lock}); wait for the other zoo command to finish, or stop it"
        ) from None
    except OSError as exc:
        if db.exists():
            yield
            return
        raise ConfigError(
            f"cannot create the MLflow store {db}: {exc.strerror or exc} ({exc.filename or db.parent}); "
            f"make that folder writable, or point ZOO_HOME (or MLFLOW_TRACKING_URI) elsewhere"
        ) from exc
    with held:  # released (the descriptor closed) on the way out, also when the body raises
        yield


def artifact_location(uri: str, experiment: str) -> str | None:
    """Where a new experiment's artifacts go: beside a sqlite store, ``<db folder>/artifacts/<name>``.

    For the default store (``ZOO_HOME/mlflow/mlflow.db``) that is ``Workspace.artifact_root/<name>``.
    Other stores (a server, a file store) choose for themselves (None).
    """
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(uri[len("sqlite:///"):])
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", experiment).strip("-") or "experiment"
    return (db.parent.resolve() / "artifacts" / slug).as_uri()


def quiet_mlflow_logs() -> None:
    """MLflow and alembic announce database migrations at INFO on first use: keep stderr for the zoo.

    With a tracking server, MLflow also writes "View run ... at: URL" to stdout as each run ends: the
    zoo prints its own line (and ``--json`` owns stdout), so that is switched off unless the user set it.
    """
    import logging
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    for name in ("alembic", "mlflow.store.db.utils", "mlflow.tracking.fluent", "mlflow.store"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # It logs a full traceback for every database error it then raises (a locked or full store): the
    # zoo words those errors itself (zoo.tracking.mlflow.faults), once.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)


def client(uri: str | None):
    """An ``MlflowClient`` on the store ``uri`` (the workspace's ``tracking_uri``); a sqlite store is
    created on first use, once, under :func:`store_lock`."""
    from mlflow.tracking import MlflowClient

    if not uri:
        raise ConfigError("no MLflow tracking URI given: pass the workspace's (zoo.workspace.Workspace.from_env()"
                          ".tracking_uri), or a store such as 'sqlite:///PATH/mlflow.db'")
    from .faults import GuardedClient, check_uri
    check_uri(uri)  # a URI that names no store, or a server that does not answer: one clear error, at once
    quiet_mlflow_logs()
    if sqlite_path(uri) is not None:
        _created(uri)
    return GuardedClient(MlflowClient(tracking_uri=uri), uri)


@functools.lru_cache(maxsize=None)
def _created(uri: str) -> None:
    """Open (so create or migrate) the sqlite store ``uri`` under its lock, once per process.

    MLflow keeps the opened store for the process, so later clients never create it again.
    """
    from mlflow.tracking import MlflowClient
    db = sqlite_path(uri)
    with store_lock(uri):
        try:
            MlflowClient(tracking_uri=uri)
        except Exception as exc:
            from .faults import store_problem
            problem = store_problem(exc, uri)
            if problem is not None:
                raise problem from exc
            raise ConfigError(
                f"cannot create or open the MLflow store {db}: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else exc!r}; check that the folder is writable and the "
                f"file is an MLflow database, or point ZOO_HOME (or MLFLOW_TRACKING_URI) elsewhere"
            ) from exc


def get_experiment(mlflow_client: Any, name: str, *, create: bool):
    """The experiment ``name`` (created with a predictable artifact folder when ``create``)."""
    exp = mlflow_client.get_experiment_by_name(name)
    if exp is not None and exp.lifecycle_stage == "deleted":
        raise ConfigError(
            f"experiment '{name}' exists in {redact_uri(mlflow_client.tracking_uri)} but is deleted; restore it "
            f"(mlflow experiments restore --experiment-id {exp.experiment_id}) or pass another --experiment"
        )
    if exp is None and create:
        with store_lock(mlflow_client.tracking_uri):
            exp = mlflow_client.get_experiment_by_name(name)  # another process may have made it meanwhile
            if exp is None:
                _create_experiment(mlflow_client, name)
                exp = mlflow_client.get_experiment_by_name(name)
    return exp


def _create_experiment(mlflow_client: Any, name: str) -> None:
    from mlflow.exceptions import MlflowException
    try:
        mlflow_client.create_experiment(name, artifact_location=artifact_location(mlflow_client.tracking_uri, name))
    except MlflowException as exc:
        # A store no lock guards (a server): another client created it first, which is as good.
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
