"""``MlflowTracker``: the Tracker that logs runs, their data set and their pyfunc model to an MLflow store.

The data set is a run input (MLflow's data set view) and the pyfunc model an MLflow 3 logged model
of the run (its model view), as :mod:`~zoo.tracking.mlflow.pyfunc` logs it.

Every run records the process that runs it (:func:`~zoo.tracking.mlflow.reconcile.process_tags`)
and when that process was last seen, so a run whose process dies without ending it is found and
ended KILLED by :mod:`~zoo.tracking.mlflow.reconcile`.
"""
from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

from ...errors import ConfigError, RunError
from .. import DEFAULT_EXPERIMENT, MAX_TAG, PARENT_TAG
from .reconcile import SEEN_TAG, now_ms, process_tags
from .faults import StoreFull, StoreUnavailable
from .store import client, get_experiment
from ..credentials import redact_uri

MAX_PARAM = 6000
HEARTBEAT_SECONDS = 30.0
"""How often logging metrics also refreshes a run's last-seen time."""
DATA_SOURCE_TAG = "zoo.data.source"
"""The run tag that holds where its data came from (a folder, or "embedded"), set when the run starts."""
PYFUNC_ERROR_TAG = "zoo.pyfunc.error"
"""Set on a run whose pyfunc model could not be logged (the run and its ``model/`` are fine)."""


def _warn(message: str) -> None:
    warnings.warn(message, UserWarning, stacklevel=3)


INPUT_TRIES = 3
"""How often a run input is logged before a lost insert race (:func:`lost_insert_race`) fails the run."""


def lost_insert_race(exc: BaseException) -> bool:
    """Whether ``exc`` says another writer inserted the same row first.

    Two runs that log the same data set at once on one tracking server (two nodes of a team, a
    sweep's trials) each find the store's dataset row missing and insert it; the second insert
    breaks the row's unique key (PostgreSQL: UniqueViolation, "duplicate key value"; MySQL: "Duplicate
    entry"; sqlite: "UNIQUE constraint failed"), and the server answers BAD_REQUEST. Nothing of the
    call was kept (its transaction rolled back), and logging again finds the row and links it.
    """
    text = str(exc)
    return any(s in text for s in ("UniqueViolation", "duplicate key value", "Duplicate entry",
                                   "UNIQUE constraint failed"))


class MlflowTracker:
    """Logs to the MLflow tracking store ``uri`` (the workspace's ``tracking_uri``).

    ``warn`` receives what goes wrong without failing the run (a pyfunc model that could not be
    logged); default: a Python ``UserWarning``.
    """

    durable = True

    def __init__(self, experiment: str = DEFAULT_EXPERIMENT, uri: str | None = None, *,
                 warn: Callable[[str], None] | None = None):
        self.experiment = experiment
        self.warn = warn or _warn
        self._uri = uri
        self._client = None
        self._experiment_id: str | None = None
        self._seen: dict[str, float] = {}

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
                    f"cannot open experiment '{self.experiment}' in the MLflow store {redact_uri(self.uri)}: "
                    f"{type(exc).__name__}: {exc}; check MLFLOW_TRACKING_URI, or pass --no-track"
                ) from exc
        return self._experiment_id

    def start_run(self, name, tags=None, parent=None) -> str:
        tags = {k: str(v)[:MAX_TAG] for k, v in (tags or {}).items()}
        if parent:
            tags[PARENT_TAG] = parent
        tags.update(process_tags())
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        self._seen[run.info.run_id] = time.monotonic()
        return run.info.run_id

    def reopen_run(self, run_id) -> str:
        """RUNNING again, with this process recorded (so it is not taken for a ghost) and the last
        failure reason dropped; ``zoo.resumed`` counts the resumptions."""
        from .. import FAILURE_TAG
        run = self.client.get_run(run_id)
        self.client.update_run(run_id, status="RUNNING")
        if FAILURE_TAG in run.data.tags:
            self.client.delete_tag(run_id, FAILURE_TAG)
        resumed = int(run.data.tags.get("zoo.resumed", "0") or 0) + 1
        self.set_tags(run_id, {**process_tags(), "zoo.resumed": str(resumed)})
        self._seen[run_id] = time.monotonic()
        return run_id

    def log_params(self, run_id, params) -> None:
        from mlflow.entities import Param
        items = [Param(k[:250], str(v)[:MAX_PARAM]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i: i + 100])

    def log_metrics(self, run_id, metrics, step=None) -> None:
        from mlflow.entities import Metric
        now = now_ms()
        items = [Metric(k, float(v), now, int(step or 0)) for k, v in metrics.items()]
        seen = self._heartbeat(run_id, now)
        for i in range(0, len(items), 1000):
            self.client.log_batch(run_id, metrics=items[i: i + 1000], tags=seen if i == 0 else [])

    def _heartbeat(self, run_id: str, now: int) -> list:
        """The last-seen tag, when it is older than HEARTBEAT_SECONDS (it rides on a metrics batch)."""
        from mlflow.entities import RunTag
        if time.monotonic() - self._seen.get(run_id, float("-inf")) < HEARTBEAT_SECONDS:
            return []
        self._seen[run_id] = time.monotonic()
        return [RunTag(SEEN_TAG, str(now))]

    def set_tags(self, run_id, tags) -> None:
        from mlflow.entities import RunTag
        items = [RunTag(k, str(v)[:MAX_TAG]) for k, v in tags.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, tags=items[i: i + 100])

    def log_inputs(self, run_id, data) -> None:
        """The data set as ``data.*`` params and as an MLflow run input (the UI's data set view).

        The input is a dataset named by the data description, with the data fingerprint (its first
        36 characters) as its digest and the data folder (the run's ``zoo.data.source`` tag; "embedded" for the set the
        zoo synthesises) as its source, tagged with its split sizes.
        """
        # `zoo compare`, the lab and people filtering runs in the UI read the params.
        self.log_params(run_id, data.params())
        from mlflow.entities import Dataset, DatasetInput, InputTag
        source = self.client.get_run(run_id).data.tags.get(DATA_SOURCE_TAG) or "unknown"
        # MLflow's stores keep at most 36 characters of a digest; the full fingerprint is the param.
        dataset = Dataset(name=data.description[:500], digest=data.fingerprint[:36], source_type="local",
                          source=json.dumps({"uri": source}),
                          profile=json.dumps({"clips": data.clips, "skipped": data.skipped, **dict(data.counts)}))
        tags = [InputTag("mlflow.data.context", "training")]
        tags += [InputTag(f"zoo.{split}", str(n)) for split, n in data.counts.items()]
        for attempt in range(1, INPUT_TRIES + 1):
            try:
                self.client.log_inputs(run_id, datasets=[DatasetInput(dataset, tags)])
                return
            except Exception as exc:
                if attempt == INPUT_TRIES or not lost_insert_race(exc):
                    raise
                time.sleep(0.2 * attempt)  # the other run's insert has committed: the row is found now

    def log_artifacts(self, run_id, folder, path=None) -> None:
        """Copy ``folder`` into the run's artifacts; a copy that fails half-way (a full disk) leaves no
        file cut short in a local artifact store (the run folder keeps the originals)."""
        try:
            self.client.log_artifacts(run_id, str(folder), artifact_path=path)
        except BaseException:
            from .faults import local_path, remove_partial_copies
            try:
                root = local_path(self.client.get_run(run_id).info.artifact_uri)
            except Exception:  # the store cannot even be read: nothing more to do
                root = None
            remove_partial_copies(Path(folder), root / path if root is not None and path else root)
            raise

    def log_files(self, run_id: str, files: Iterable[Path], path: str | None = None) -> None:
        """Attach each file of ``files`` to run ``run_id`` (finished or not) below ``path``."""
        for f in files:
            self.client.log_artifact(run_id, str(f), artifact_path=path)

    def delete_tag(self, run_id: str, key: str) -> None:
        self.client.delete_tag(run_id, key)

    def run(self, run_id: str) -> Any:
        """Run ``run_id`` as the store holds it now (info: status, times; data: params, metrics, tags)."""
        return self.client.get_run(run_id)

    def child_runs(self, parent_id: str) -> list[Any]:
        """Every run nested under run ``parent_id`` (its tag ``mlflow.parentRunId``), in the parent's experiment."""
        parent = self.run(parent_id)
        return self.client.search_runs([parent.info.experiment_id],
                                       filter_string=f"tags.`{PARENT_TAG}` = '{parent_id}'", max_results=5000)

    def log_model(self, run_id, model_dir) -> None:
        """The ``model/`` artifacts, then the pyfunc model (for ``mlflow.pyfunc.load_model``).

        A pyfunc failure does not fail the trained run: it is reported through ``warn`` and the
        run's tag ``zoo.pyfunc.error`` (``zoo register`` logs the pyfunc model again when it is missing).
        """
        self.log_artifacts(run_id, model_dir, "model")
        from .pyfunc import log_pyfunc_model
        try:
            log_pyfunc_model(run_id, model_dir, uri=self.uri)
        except (StoreFull, StoreUnavailable):  # the store itself failed: the run fails, with the store's reason
            raise
        except Exception as exc:  # the run and its model/ are fine; only the pyfunc wrapper is missing
            message = (f"the pyfunc model could not be logged ({type(exc).__name__}: {exc}); `zoo predict` still "
                       f"works from model/, and `zoo register` logs it again")
            self.set_tags(run_id, {PYFUNC_ERROR_TAG: message})
            self.warn(message)

    def end_run(self, run_id, status="FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)
        self._seen.pop(run_id, None)

    def where(self, run_id) -> str:
        return f"run {run_id} in experiment '{self.experiment}' of {redact_uri(self.uri)}"
