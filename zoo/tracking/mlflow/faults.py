"""When the MLflow store itself fails: a full disk, a locked sqlite database, a URI that names no store,
a server that does not answer. Each becomes one zoo error that names the store and the fix.

* :func:`check_uri`: a tracking URI whose scheme names no MLflow store (``htp:/x``, ``foo://``) is
  refused before MLflow sees it; a server's address is probed once (a TCP connect, a few seconds),
  so an unreachable server is told at once rather than after MLflow's minutes of retries.
* :class:`GuardedClient`: an ``MlflowClient`` whose calls raise :class:`StoreFull` (a
  :class:`~zoo.errors.StorageError`) when the database or the artifact store has no space left, and
  :class:`StoreUnavailable` when the database stays locked by another process or the server cannot
  be reached; every other failure passes through unchanged (callers still see MLflow's own errors,
  such as a missing run).
* :func:`remove_partial_copies`: what a failed artifact copy left half-written in a local artifact
  store is removed, so no truncated ``weights.pt`` stays there as if it were the model.

Nothing here imports MLflow at module level.
"""
from __future__ import annotations

import errno
import functools
import os
import re
import socket
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

from ...errors import ConfigError, RunError, StorageError
from ...fsio import free_space, refuse_missing_root, shown
from ..credentials import redact_uri

PROBE_SECONDS = 5.0
"""How long the one reachability probe of a tracking server waits for a TCP connection."""
KNOWN_SCHEMES = ("sqlite", "file", "http", "https", "postgresql", "mysql", "mssql", "databricks", "databricks-uc",
                 "uc", "mlflow-artifacts")
"""Schemes of the tracking stores MLflow itself provides (``postgresql+psycopg2`` counts as ``postgresql``)."""
_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG)
_FIX_ELSEWHERE = "or point MLFLOW_TRACKING_URI (or ZOO_HOME) at a disk with room"


class StoreFull(StorageError):
    """The MLflow store (its database or its artifacts) has no space left."""


class StoreUnavailable(RunError):
    """The MLflow store cannot be used now: its database is locked by another process, or its server does not answer.

    Marking the run FAILED there would fail (or wait) the same way, so nobody tries: the run stays
    RUNNING in the store until the next ``zoo compare`` finds its process gone and ends it KILLED.
    """

    store_unavailable = True
    """Read by :func:`zoo.tracking.tracked_run` (which imports nothing of MLflow's): do not try to mark the run."""


def _schemes() -> set[str]:
    """MLflow's own schemes and those plugins register (entry points ``mlflow.tracking_store``)."""
    found = set(KNOWN_SCHEMES)
    try:
        from importlib.metadata import entry_points
        found.update(ep.name for ep in entry_points(group="mlflow.tracking_store"))
    except Exception:  # pragma: no cover - metadata unreadable: the built-in list stands
        pass
    return found


def check_uri(uri: str) -> None:
    """Refuse a tracking URI that names no store MLflow knows, and probe a server's address once.

    A URI without a scheme is a folder (MLflow's file store), as MLflow reads it.
    """
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    fix = ("use sqlite:///PATH/mlflow.db for a local store or http(s)://HOST:PORT for a server, or unset "
           "MLFLOW_TRACKING_URI to record runs in the zoo's own store (ZOO_HOME/mlflow/mlflow.db)")
    if not scheme or (len(scheme) == 1 and os.name == "nt"):  # a plain path (or a Windows drive letter)
        return
    if scheme.split("+", 1)[0] not in _schemes():
        raise ConfigError(f"the MLflow tracking URI '{redact_uri(uri)}' (MLFLOW_TRACKING_URI) names no store MLflow "
                          f"knows (scheme '{parts.scheme}'); {fix}")
    if scheme in ("http", "https"):
        if not parts.hostname:
            raise ConfigError(f"the MLflow tracking URI '{redact_uri(uri)}' (MLFLOW_TRACKING_URI) names no server "
                              f"(expected {scheme}://HOST:PORT); {fix}")
        _probe(uri, parts.hostname, parts.port or (443 if scheme == "https" else 80))
    elif scheme == "sqlite" and not uri.startswith("sqlite:///") and uri != "sqlite://":
        raise ConfigError(f"the MLflow tracking URI '{redact_uri(uri)}' (MLFLOW_TRACKING_URI) is not a sqlite "
                          f"store's (three slashes, then the path: sqlite:///PATH/mlflow.db, or "
                          f"sqlite:////abs/path/mlflow.db); {fix}")
    elif scheme == "sqlite" and (db := _sqlite_db(uri)) is not None:
        refuse_missing_root(db, "the MLflow store", "point MLFLOW_TRACKING_URI (or ZOO_HOME) at a "
                                                                 "folder that exists")


@functools.lru_cache(maxsize=None)
def _probe(uri: str, host: str, port: int) -> None:
    """One TCP connection to the server (cached per process: a server that answered once is not asked again)."""
    try:
        with socket.create_connection((host, port), timeout=PROBE_SECONDS):
            return
    except OSError as exc:
        reason = (f"no answer in {PROBE_SECONDS:.0f} s" if isinstance(exc, socket.timeout)
                  else (exc.strerror or str(exc) or type(exc).__name__))
    _probe.cache_clear()  # not remembered: the next call probes again
    raise StoreUnavailable(
        f"cannot reach the MLflow server {redact_uri(uri)} ({host}:{port}: {reason}); start it or check the "
        f"address in MLFLOW_TRACKING_URI, unset it to record runs in the zoo's own store, or pass --no-track")


def _chain(exc: BaseException | None):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _sqlite_db(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def store_problem(exc: BaseException, uri: str) -> Exception | None:
    """The zoo's one-line error for ``exc`` raised by an MLflow call on the store ``uri``, or None when
    it is none of the store faults this module knows (full, locked, unreachable)."""
    where = redact_uri(uri)
    db = _sqlite_db(uri)
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in _FULL:
            written = e.filename2 or e.filename  # a copy's OSError names its source first, its destination second
            path = written or db or where
            return StoreFull(f"cannot write to the MLflow store {where}: no space left on the device at "
                             f"{shown(path)} ({free_space(path) if written or db else 'unknown'} free there); "
                             f"free some space, {_FIX_ELSEWHERE}")
    text = " ".join(str(e) for e in _chain(exc)).lower()
    if "database or disk is full" in text or "disk full" in text:
        path = db or where
        return StoreFull(f"cannot write to the MLflow store {where}: its database has no space left "
                         f"({free_space(path) if db else 'unknown'} free at {shown(path)}); free some space, "
                         f"{_FIX_ELSEWHERE}")
    if "database is locked" in text:
        return StoreUnavailable(
            f"the MLflow store {where} stayed locked by another process for as long as MLflow waits for a "
            f"lock; let that process finish or stop it ({'fuser ' + shown(db) if db else 'see who holds it'} "
            f"names it), then run again, or pass --no-track")
    answered = re.search(r"api request to endpoint (\S+) failed with error code (\d+) != 200", text)
    if answered and uri.startswith(("http://", "https://")):  # not MLflow's JSON: another service, or a proxy
        return StoreUnavailable(
            f"the server at {where} answered HTTP {answered.group(2)} to {answered.group(1)}, not as an MLflow "
            f"tracking server does: check the host and port in MLFLOW_TRACKING_URI (zoo server, or mlflow server, "
            f"listens there?), unset it to record runs in the zoo's own store, or pass --no-track")
    try:
        import requests
        unreachable: tuple[type[BaseException], ...] = (requests.exceptions.ConnectionError,
                                                         requests.exceptions.Timeout)
    except ImportError:  # pragma: no cover - MLflow depends on requests
        unreachable = ()
    if any(isinstance(e, unreachable) for e in _chain(exc)) or (
            uri.startswith(("http://", "https://")) and ("max retries exceeded" in text
                                                         or "connection refused" in text)):
        return StoreUnavailable(f"lost the MLflow server {where} (it stopped answering); check that it runs and "
                                f"is reachable, then run again (zoo run --resume goes on from the last epoch), "
                                f"or pass --no-track")
    return None


def guarded(uri: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``call(*args, **kwargs)``, its store faults raised as :func:`store_problem` words them."""
    try:
        return call(*args, **kwargs)
    except Exception as exc:
        problem = store_problem(exc, uri)
        if problem is None:
            raise
        raise problem from exc


class GuardedClient:
    """An ``MlflowClient`` (everything it has) whose methods raise the zoo's errors for store faults."""

    def __init__(self, inner: Any, uri: str):
        self._inner = inner
        self._uri = uri

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name.startswith("_") or not callable(value):
            return value
        return functools.partial(guarded, self._uri, value)


def local_path(artifact_uri: str | None) -> Path | None:
    """The folder of a local artifact URI (``file:///...`` or a plain path); None for remote stores."""
    if not artifact_uri:
        return None
    parts = urlsplit(artifact_uri)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if not parts.scheme and os.path.isabs(artifact_uri):
        return Path(artifact_uri)
    return None


def remove_partial_copies(source: Path, dest: Path | None) -> list[Path]:
    """Remove from the artifact folder ``dest`` every copy of a file under ``source`` whose size differs
    from the original (a copy cut short); returns what was removed. Complete copies stay."""
    removed: list[Path] = []
    if dest is None or not dest.is_dir():
        return removed
    for original in source.rglob("*"):
        if not original.is_file():
            continue
        copy = dest / original.relative_to(source)
        try:
            if copy.is_file() and copy.stat().st_size != original.stat().st_size:
                copy.unlink()
                removed.append(copy)
        except OSError:
            continue
    return removed


def remove_tree(folder: Path | None) -> None:
    """Remove a local artifact folder that holds only an incomplete copy (best effort)."""
    import shutil
    if folder is not None and folder.is_dir():
        shutil.rmtree(folder, ignore_errors=True)
