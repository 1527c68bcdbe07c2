"""Run tracking behind a small interface: ``MlflowTracker`` (the real one) and ``NullTracker``.

Calls name their run explicitly (no hidden "active run"), so nested runs (one per seed under a
parent) need no global state. :func:`tracked_run` ends a run FINISHED, or FAILED with the tag
``zoo.failure`` = the reason when anything (Ctrl-C included) escapes, then re-raises.
"""
from __future__ import annotations

import contextlib
import itertools
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Protocol

from ..errors import ConfigError, RunError

DEFAULT_EXPERIMENT = "music-zoo"
FAILURE_TAG = "zoo.failure"
PARENT_TAG = "mlflow.parentRunId"
MAX_PARAM = 6000
MAX_TAG = 5000


class Tracker(Protocol):
    """Where a run's parameters, metrics, tags and files go."""

    def start_run(self, name: str, tags: Mapping[str, str] | None = None, parent: str | None = None) -> str:
        """Open a run (nested under ``parent`` if given) and return its id."""

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int | None = None) -> None: ...

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None: ...

    def log_artifacts(self, run_id: str, folder: Path, path: str | None = None) -> None:
        """Copy every file under ``folder`` into the run's artifacts, below ``path``."""

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        """``status``: FINISHED, FAILED or KILLED."""

    def where(self, run_id: str) -> str:
        """Where a person finds the run (one line)."""


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"backbone": {"hidden": 128}}`` -> ``{"backbone.hidden": 128}`` (any depth)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def failure_reason(exc: BaseException) -> str:
    """One line for the ``zoo.failure`` tag."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted by the user (Ctrl-C / SIGINT)"
    text = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text}"[:MAX_TAG]


@contextlib.contextmanager
def tracked_run(tracker: Tracker, name: str, tags: Mapping[str, str] | None = None,
                parent: str | None = None) -> Iterator[str]:
    """Open a run; end it FINISHED, or FAILED with ``zoo.failure`` if anything escapes (re-raised)."""
    run_id = tracker.start_run(name, tags, parent)
    try:
        yield run_id
    except BaseException as exc:
        try:
            tracker.set_tags(run_id, {FAILURE_TAG: failure_reason(exc)})
            tracker.end_run(run_id, "FAILED")
        except Exception as log_exc:  # the original error matters more; keep both visible
            exc.add_note(f"(also: could not mark run {run_id} FAILED: {log_exc})")
        raise
    tracker.end_run(run_id, "FINISHED")


@dataclass
class RunRecord:
    """Everything logged to one run of a :class:`NullTracker`."""

    name: str
    parent: str | None
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: list[tuple[str, float, int | None]] = field(default_factory=list)
    artifacts: list[tuple[Path, str | None]] = field(default_factory=list)
    status: str = "RUNNING"


class NullTracker:
    """Tracks nothing durable (``--no-track``): keeps the calls in memory, for tests and inspection."""

    def __init__(self) -> None:
        self.runs: dict[str, RunRecord] = {}
        self._ids = itertools.count(1)

    def start_run(self, name, tags=None, parent=None) -> str:
        run_id = f"untracked-{next(self._ids)}"
        self.runs[run_id] = RunRecord(name, parent, {k: str(v) for k, v in (tags or {}).items()})
        return run_id

    def log_params(self, run_id, params) -> None:
        self.runs[run_id].params.update({k: str(v) for k, v in params.items()})

    def log_metrics(self, run_id, metrics, step=None) -> None:
        self.runs[run_id].metrics.extend((k, float(v), step) for k, v in metrics.items())

    def set_tags(self, run_id, tags) -> None:
        self.runs[run_id].tags.update({k: str(v) for k, v in tags.items()})

    def log_artifacts(self, run_id, folder, path=None) -> None:
        self.runs[run_id].artifacts.append((Path(folder), path))

    def end_run(self, run_id, status="FINISHED") -> None:
        self.runs[run_id].status = status

    def where(self, run_id) -> str:
        return "not tracked (--no-track): nothing was written to MLflow"


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

    from ..paths import tracking_uri
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


class MlflowTracker:
    """Logs to an MLflow tracking store (default: :func:`zoo.paths.tracking_uri`)."""

    def __init__(self, experiment: str = DEFAULT_EXPERIMENT, uri: str | None = None):
        self.experiment = experiment
        self._uri = uri
        self._client = None
        self._experiment_id: str | None = None

    @property
    def client(self):
        if self._client is None:
            self._client = client(self._uri)
        return self._client

    @property
    def uri(self) -> str:
        return self.client.tracking_uri

    @property
    def experiment_id(self) -> str:
        if self._experiment_id is None:
            try:
                self._experiment_id = get_experiment(self.client, self.experiment, create=True).experiment_id
            except ConfigError:
                raise
            except Exception as exc:
                raise RunError(
                    f"cannot open experiment '{self.experiment}' in the MLflow store {self.uri}: "
                    f"{type(exc).__name__}: {exc}; check MLFLOW_TRACKING_URI, or pass --no-track"
                ) from exc
        return self._experiment_id

    def start_run(self, name, tags=None, parent=None) -> str:
        tags = {k: str(v)[:MAX_TAG] for k, v in (tags or {}).items()}
        if parent:
            tags[PARENT_TAG] = parent
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        return run.info.run_id

    def log_params(self, run_id, params) -> None:
        from mlflow.entities import Param
        items = [Param(k[:250], str(v)[:MAX_PARAM]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i: i + 100])

    def log_metrics(self, run_id, metrics, step=None) -> None:
        from mlflow.entities import Metric
        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, int(step or 0)) for k, v in metrics.items()]
        for i in range(0, len(items), 1000):
            self.client.log_batch(run_id, metrics=items[i: i + 1000])

    def set_tags(self, run_id, tags) -> None:
        from mlflow.entities import RunTag
        items = [RunTag(k, str(v)[:MAX_TAG]) for k, v in tags.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, tags=items[i: i + 100])

    def log_artifacts(self, run_id, folder, path=None) -> None:
        self.client.log_artifacts(run_id, str(folder), artifact_path=path)

    def end_run(self, run_id, status="FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)

    def where(self, run_id) -> str:
        return f"run {run_id} in experiment '{self.experiment}' of {self.uri}"


def download_model(run_id: str, dst: Path, uri: str | None = None) -> Path:
    """Copy the ``model/`` artifact folder of run ``run_id`` into ``dst``; return the local folder."""
    c = client(uri)
    try:
        c.get_run(run_id)
    except Exception as exc:
        raise ConfigError(
            f"'{run_id}' is neither a model folder nor a run id in the MLflow store {c.tracking_uri} "
            f"({type(exc).__name__}); give a folder holding zoo_model.json, or a run id from `zoo compare`"
        ) from exc
    dst.mkdir(parents=True, exist_ok=True)
    try:
        local = c.download_artifacts(run_id, "model", str(dst))
    except Exception as exc:
        raise RunError(
            f"run {run_id} has no packaged model (artifact folder model/): {type(exc).__name__}: {exc}; "
            f"only finished training runs have one (not the parent of several seeds, nor an overfit check)"
        ) from exc
    return Path(local)


def latest_run(experiment: str, tags: Mapping[str, str], uri: str | None = None) -> Any | None:
    """The most recent FINISHED run of ``experiment`` carrying all ``tags`` (None if there is none)."""
    c = client(uri)
    exp = get_experiment(c, experiment, create=False)
    if exp is None:
        return None
    clauses = ["attributes.status = 'FINISHED'"] + [f"tags.`{k}` = '{v}'" for k, v in tags.items()]
    runs = c.search_runs([exp.experiment_id], filter_string=" and ".join(clauses),
                         order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None
