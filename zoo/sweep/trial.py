"""One trial of a sweep, as Ray Tune runs it in a worker: a normal ``zoo.train`` run, nested under the sweep's run.

The trial trains through the Python API like ``zoo run`` does, so its MLflow run holds what any
run holds (parameters, per-epoch metrics, reports, the packaged model). Its tracker is the
zoo's MLflow tracker wrapped in a :class:`TrialTracker`, which nests the trial's run under the
sweep's parent run and hands each epoch's metrics to Tune (what the scheduler stops bad trials on).
Each epoch's result reaches Tune only once the next epoch has ended, or the trial's run has: the
scheduler may stop a trial at the result it reports, and a trial whose last result was held back
until its run ended cannot be stopped between its last epoch and its test score and packaged model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .space import merge, settings_of

SWEEP_TAG = "zoo.sweep"
"""On each trial's run: the sweep's parent run id."""
TRIAL_TAG = "zoo.sweep.trial"
"""On each trial's run: Ray Tune's trial id."""
RUN_ID_KEY = "zoo_run_id"
"""In every result a trial reports to Tune: the trial's MLflow run id."""
PARAM_PREFIX = "sweep."
"""A trial's run logs each drawn value as the parameter ``sweep.SCOPE.KEY``."""


@dataclass(frozen=True)
class TrialJob:
    """What every trial of one sweep shares: what to train, how, where to log.

    ``train``: the sweep's flat options (data, epochs, limit, ...), which :func:`zoo.api.grouped` turns
    into ``zoo.train``'s groups; ``settings``: the ``--set``
    scopes under each trial's drawn values; ``workspace``: the driver's (on a cluster its home must be
    shared, or the data given as a folder every machine reads).
    """

    spec: str
    settings: Mapping[str, Mapping[str, Any]]
    train: Mapping[str, Any]
    workspace: Any
    experiment: str
    parent: str
    metric: str
    tags: Mapping[str, str] = field(default_factory=dict)


class TrialTracker:
    """A :class:`~zoo.tracking.Tracker` around the zoo's MLflow tracker: the trial's top run is nested
    under the sweep's run and tagged with the trial, and every epoch's metrics also go to Tune."""

    def __init__(self, inner: Any, job: TrialJob, trial_id: str, report: Any, drawn: Mapping[str, Any] = {}):
        self.inner = inner
        self.drawn = dict(drawn)
        self.job = job
        self.trial_id = trial_id
        self.report = report
        self.durable = inner.durable
        self.top: str | None = None
        self.held: dict[str, Any] | None = None

    def start_run(self, name, tags=None, parent=None) -> str:
        if parent is None:  # the trial's own run (its seeds, if several, nest under it as usual)
            tags = dict(tags or {}, **self.job.tags, **{SWEEP_TAG: self.job.parent, TRIAL_TAG: self.trial_id})
            self.top = self.inner.start_run(f"{name} trial {self.trial_id}", tags, self.job.parent)
            if self.drawn:  # the trial's drawn values, as the leaderboard shows them
                self.inner.log_params(self.top, {f"{PARAM_PREFIX}{k}": v for k, v in self.drawn.items()})
            return self.top
        return self.inner.start_run(name, tags, parent)

    def log_metrics(self, run_id, metrics, step=None) -> None:
        self.inner.log_metrics(run_id, metrics, step)
        if step is not None and self.job.metric in metrics:
            self._flush()  # the epoch before this one: the trial went on past it
            self.held = {**{k: float(v) for k, v in metrics.items()}, "epoch": step, RUN_ID_KEY: self.top or run_id}

    def _flush(self) -> None:
        held, self.held = self.held, None
        if held is not None:
            self.report(held)

    def log_params(self, run_id, params) -> None:
        self.inner.log_params(run_id, params)

    def set_tags(self, run_id, tags) -> None:
        self.inner.set_tags(run_id, tags)

    def log_inputs(self, run_id, data) -> None:
        self.inner.log_inputs(run_id, data)

    def log_artifacts(self, run_id, folder: Path, path=None) -> None:
        self.inner.log_artifacts(run_id, folder, path)

    def log_model(self, run_id, model_dir: Path) -> None:
        self.inner.log_model(run_id, model_dir)

    def end_run(self, run_id, status="FINISHED") -> None:
        self.inner.end_run(run_id, status)
        if run_id == self.top:  # its model is packaged and its status final: the scheduler may see the last epoch
            self._flush()

    def where(self, run_id) -> str:
        return self.inner.where(run_id)


def trial_settings(job: TrialJob, config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``--set`` scopes of one trial: the sweep's, with the trial's drawn values winning."""
    return merge({k: dict(v) for k, v in job.settings.items()}, settings_of(dict(config)))


def run_trial(config: dict[str, Any], job: TrialJob) -> None:
    """Train one trial (Ray Tune's function trainable): ``config`` holds its drawn ``{"train.lr": ...}``."""
    from ray import tune

    from .. import api
    from ..engine.reporting import QuietReporter
    from ..tracking.mlflow.tracker import MlflowTracker
    trial_id = tune.get_context().get_trial_id() or "local"
    inner = MlflowTracker(job.experiment, uri=job.workspace.tracking_uri)
    tracker = TrialTracker(inner, job, trial_id, tune.report, config)
    api.train(job.spec, settings=trial_settings(job, config), workspace=job.workspace, tracker=tracker,
              reporter=QuietReporter(progress=False), progress=False, **api.grouped(job.train))


__all__ = ["TrialJob", "TrialTracker", "run_trial", "trial_settings", "SWEEP_TAG", "TRIAL_TAG", "RUN_ID_KEY", "PARAM_PREFIX"]
