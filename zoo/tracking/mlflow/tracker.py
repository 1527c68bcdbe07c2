"""``MlflowTracker``: the Tracker that logs runs, their data set and their pyfunc model to an MLflow store."""
from __future__ import annotations

import time
import warnings
from typing import Callable

from ...errors import ConfigError, RunError
from .. import DEFAULT_EXPERIMENT, MAX_TAG, PARENT_TAG
from .store import client, get_experiment

MAX_PARAM = 6000
PYFUNC_ERROR_TAG = "zoo.pyfunc.error"
"""Set on a run whose pyfunc model could not be logged (the run and its ``model/`` are fine)."""


def _warn(message: str) -> None:
    warnings.warn(message, UserWarning, stacklevel=3)


class MlflowTracker:
    """Logs to an MLflow tracking store (default: :func:`zoo.paths.tracking_uri`).

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

    def log_inputs(self, run_id, data) -> None:
        # As ``data.*`` params: `zoo compare`, the lab and people filtering runs in the UI read them there.
        self.log_params(run_id, data.params())

    def log_artifacts(self, run_id, folder, path=None) -> None:
        self.client.log_artifacts(run_id, str(folder), artifact_path=path)

    def log_model(self, run_id, model_dir) -> None:
        """The ``model/`` artifacts, then the pyfunc model (for ``mlflow.pyfunc.load_model``).

        A pyfunc failure does not fail the trained run: it is reported through ``warn`` and the
        run's tag ``zoo.pyfunc.error`` (``zoo register`` logs the pyfunc model again when it is missing).
        """
        self.log_artifacts(run_id, model_dir, "model")
        from .pyfunc import log_pyfunc_model
        try:
            log_pyfunc_model(run_id, model_dir, uri=self.uri)
        except Exception as exc:  # the run and its model/ are fine; only the pyfunc wrapper is missing
            message = (f"the pyfunc model could not be logged ({type(exc).__name__}: {exc}); `zoo predict` still "
                       f"works from model/, and `zoo register` logs it again")
            self.set_tags(run_id, {PYFUNC_ERROR_TAG: message})
            self.warn(message)

    def end_run(self, run_id, status="FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)

    def where(self, run_id) -> str:
        return f"run {run_id} in experiment '{self.experiment}' of {self.uri}"
