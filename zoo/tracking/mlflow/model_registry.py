"""The MLflow model registry: register a run's pyfunc model by name (``zoo register``, ``zoo run --register``)."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ...errors import ConfigError, RunError
from .pyfunc import PYFUNC_PATH, log_pyfunc_model
from .store import client
from ..credentials import redact_uri


def register_model(run_id: str, name: str, *, alias: str | None = None, uri: str | None = None) -> Any:
    """Register run ``run_id``'s pyfunc model under ``name`` in the MLflow model registry.

    A run that has a packaged model (``model/``) but no pyfunc model yet gets one logged first.
    Returns the new ``ModelVersion``; ``alias`` (e.g. "champion") is pointed at it.
    """
    c = client(uri)
    if not name or any(ch in name for ch in "/:@") or name != name.strip():
        raise ConfigError(f"model name {name!r}: use letters, digits, '-', '_' or '.' (no '/', ':' or '@')")
    try:
        run = c.get_run(run_id)
    except Exception as exc:
        raise ConfigError(f"no run '{run_id}' in the MLflow store {redact_uri(c.tracking_uri)} ({type(exc).__name__}); "
                          f"pick a run id from `zoo compare`") from exc
    if not _has_artifact(c, run_id, PYFUNC_PATH):
        if not _has_artifact(c, run_id, "model"):
            raise RunError(_no_model(c, run))
        with tempfile.TemporaryDirectory(prefix="zoo-register-") as tmp:
            log_pyfunc_model(run_id, Path(c.download_artifacts(run_id, "model", tmp)), uri=c.tracking_uri)
    try:
        c.get_registered_model(name)
    except Exception:
        c.create_registered_model(name, description="a Music Zoo model (zoo predict NAME)")
    tags = {k: v for k, v in run.data.tags.items() if k in ("zoo.spec", "zoo.recipe", "zoo.dataset", "zoo.seed")}
    version = c.create_model_version(name, source=f"{run.info.artifact_uri}/{PYFUNC_PATH}", run_id=run_id, tags=tags)
    if alias:
        c.set_registered_model_alias(name, alias, version.version)
    return version


def _has_artifact(c: Any, run_id: str, path: str) -> bool:
    """Whether run ``run_id`` has the top-level artifact ``path``. Its folder is listed, not the path:
    listing ``pyfunc_model`` makes MLflow open the logged model of that name through a client on the
    process's default store, which creates ``./mlflow.db`` in the working folder."""
    try:
        return any(f.path == path for f in c.list_artifacts(run_id))
    except Exception:
        return False


def _no_model(c: Any, run: Any) -> str:
    run_id = run.info.run_id
    kind = run.data.tags.get("zoo.kind", "")
    if kind == "seeds":
        children = c.search_runs([run.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{run_id}'")
        ids = ", ".join(r.info.run_id for r in children) or "none"
        return (f"run {run_id} is the parent of several seeds and holds no model; register one of its seeds' "
                f"runs: {ids}")
    if kind == "overfit":
        return f"run {run_id} is an overfit check: it saves no model; register a training run"
    return (f"run {run_id} has no packaged model (no model/ artifacts; status {run.info.status}); only a "
            f"finished training run has one")

