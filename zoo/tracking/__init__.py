"""The tracking interface the engine logs through: the ``Tracker`` protocol and an in-memory ``NullTracker``.

The engine calls a tracker and never asks what kind it is (as Lightning's trainer calls its logger's
hooks): the tracker decides how it records parameters, metrics, the data set a run trained on
(:meth:`Tracker.log_inputs`) and the packaged model (:meth:`Tracker.log_model`). The MLflow
implementation lives in :mod:`zoo.tracking.mlflow`; nothing here imports MLflow.

Calls name their run explicitly (no hidden "active run"), so nested runs (one per seed under a
parent) need no global state. :func:`tracked_run` ends a run FINISHED, or FAILED with the tag
``zoo.failure`` = the reason when anything (Ctrl-C included) escapes, then re-raises.
"""
from __future__ import annotations

import contextlib
import itertools
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Protocol

from ..processes import StopSignal, stop_received

DEFAULT_EXPERIMENT = "music-zoo"
FAILURE_TAG = "zoo.failure"
PARENT_TAG = "mlflow.parentRunId"
NOTE_TAG = "mlflow.note.content"
"""A run's description, shown with the run (MLflow reads it under this name)."""
MAX_TAG = 5000


@dataclass(frozen=True)
class DataInputs:
    """The data set a run trained on, as a tracker records it (:meth:`Tracker.log_inputs`).

    ``counts``: clips per split (train, val, test); ``clips``: usable clips in all; ``skipped``:
    clips left out (``--skip-bad``); ``rate`` and ``n_bins``: the prepared arrays' frame rate and bins.
    """

    description: str
    fingerprint: str
    counts: Mapping[str, int]
    clips: int = 0
    skipped: int = 0
    rate: Any = None
    n_bins: int = 0
    classes: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()

    @classmethod
    def from_summary(cls, summary: Mapping[str, Any]) -> DataInputs:
        """From the summary a run reports (``RunResult.data``: description, fingerprint, counts, ...)."""
        return cls(description=str(summary["description"]), fingerprint=str(summary["fingerprint"]),
                   counts={s: int(n) for s, n in summary.get("counts", {}).items()},
                   clips=int(summary.get("clips", 0)), skipped=int(summary.get("skipped", 0)),
                   rate=summary.get("rate"), n_bins=int(summary.get("n_bins", 0)),
                   classes=tuple(summary.get("classes", ())), targets=tuple(summary.get("targets", ())))

    def params(self) -> dict[str, Any]:
        """As flat run parameters: ``data.description``, ``data.fingerprint``, ``data.train``, ..."""
        out: dict[str, Any] = {"data.description": self.description, "data.fingerprint": self.fingerprint,
                               "data.clips": self.clips, "data.skipped": self.skipped, "data.rate": self.rate,
                               "data.n_bins": self.n_bins, "data.classes": ",".join(self.classes),
                               "data.targets": ",".join(self.targets)}
        out.update({f"data.{s}": n for s, n in self.counts.items()})
        return out


class Tracker(Protocol):
    """Where a run's parameters, metrics, tags, data set, files and packaged model go."""

    durable: bool
    """Whether runs outlive the process (a packaged model then records its ``run_id``)."""

    def start_run(self, name: str, tags: Mapping[str, str] | None = None, parent: str | None = None) -> str:
        """Open a run (nested under ``parent`` if given) and return its id."""

    def reopen_run(self, run_id: str) -> str:
        """Mark the ended run ``run_id`` RUNNING again, in this process (``zoo run --resume``); returns it."""

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int | None = None) -> None: ...

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None: ...

    def log_inputs(self, run_id: str, data: DataInputs) -> None:
        """Record the data set run ``run_id`` trained on."""

    def log_artifacts(self, run_id: str, folder: Path, path: str | None = None) -> None:
        """Copy every file under ``folder`` into the run's artifacts, below ``path``."""

    def log_model(self, run_id: str, model_dir: Path) -> None:
        """Record the packaged model folder (``zoo_model.json`` + ``weights.pt``) run ``run_id`` wrote.

        A failure to record something beyond the model folder itself must not fail the trained run.
        """

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
        signum = exc.signum if isinstance(exc, StopSignal) else stop_received()
        return f"stopped by {signal.Signals(signum).name}" if signum else "interrupted by the user (Ctrl-C / SIGINT)"
    from .credentials import scrub
    text = scrub(str(exc) or repr(exc))  # a store's password never reaches a tag
    return f"{type(exc).__name__}: {text}"[:MAX_TAG]


@contextlib.contextmanager
def tracked_run(tracker: Tracker, name: str, tags: Mapping[str, str] | None = None,
                parent: str | None = None, reopen: str | None = None) -> Iterator[str]:
    """Open a run (``reopen``: go on with that ended run instead); end it FINISHED, or FAILED with
    ``zoo.failure`` if anything escapes (re-raised)."""
    run_id = tracker.reopen_run(reopen) if reopen else tracker.start_run(name, tags, parent)
    try:
        yield run_id
    except BaseException as exc:
        if getattr(exc, "store_unavailable", False):  # the store is locked or gone: marking would fail the same way
            exc.add_note(f"run {run_id} stays RUNNING in the store; the next `zoo compare` ends it KILLED")
            raise
        try:
            tracker.set_tags(run_id, {FAILURE_TAG: failure_reason(exc)})
            # stopped from outside (SIGTERM: zoo.engine.preempt.Preempted): KILLED, and resumable
            tracker.end_run(run_id, getattr(exc, "run_status", "FAILED"))
            if getattr(exc, "run_status", None) and not getattr(exc, "run_id", None):
                setattr(exc, "run_id", run_id)  # noqa: B010 - any exception may carry it
        except Exception as log_exc:  # the original error matters more; keep both visible
            first = str(log_exc).splitlines()[0] if str(log_exc) else type(log_exc).__name__
            exc.add_note(f"could not mark run {run_id} FAILED ({first}); the next `zoo compare` ends it KILLED")
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
    inputs: DataInputs | None = None
    model_dir: Path | None = None
    status: str = "RUNNING"


class NullTracker:
    """Tracks nothing durable (``--no-track``): keeps the calls in memory, for tests and inspection."""

    durable = False

    def __init__(self) -> None:
        self.runs: dict[str, RunRecord] = {}
        self._ids = itertools.count(1)

    def start_run(self, name, tags=None, parent=None) -> str:
        run_id = f"untracked-{next(self._ids)}"
        self.runs[run_id] = RunRecord(name, parent, {k: str(v) for k, v in (tags or {}).items()})
        return run_id

    def reopen_run(self, run_id) -> str:
        self.runs.setdefault(run_id, RunRecord(run_id, None)).status = "RUNNING"
        return run_id

    def log_params(self, run_id, params) -> None:
        self.runs[run_id].params.update({k: str(v) for k, v in params.items()})

    def log_metrics(self, run_id, metrics, step=None) -> None:
        self.runs[run_id].metrics.extend((k, float(v), step) for k, v in metrics.items())

    def set_tags(self, run_id, tags) -> None:
        self.runs[run_id].tags.update({k: str(v) for k, v in tags.items()})

    def log_inputs(self, run_id, data) -> None:
        self.runs[run_id].inputs = data
        self.log_params(run_id, data.params())

    def log_artifacts(self, run_id, folder, path=None) -> None:
        self.runs[run_id].artifacts.append((Path(folder), path))

    def log_model(self, run_id, model_dir) -> None:
        self.runs[run_id].model_dir = Path(model_dir)
        self.log_artifacts(run_id, model_dir, "model")

    def end_run(self, run_id, status="FINISHED") -> None:
        self.runs[run_id].status = status

    def where(self, run_id) -> str:
        return "not tracked (--no-track): nothing was written to MLflow"


def untracked() -> Tracker:
    """The tracker of a run nobody asked to track (``--no-track``, or no tracker given): a :class:`NullTracker`."""
    return NullTracker()
