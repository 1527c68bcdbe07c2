"""What a prediction returns: per window and per file, class probabilities and target values."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..fsio import shown


@dataclass(frozen=True)
class TaskInfo:
    """One task of a packaged model: ``kind`` "classification" (``classes``), "multilabel"
    (``classes`` are its tags) or "regression"."""

    name: str
    kind: str
    target: str = ""
    classes: tuple[str, ...] = ()

    @property
    def vector(self) -> bool:
        """Whether its output is one probability per class or tag (else one value)."""
        return self.kind in ("classification", "multilabel")

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> list["TaskInfo"]:
        """The tasks of a packaged model's ``zoo_model.json``, in the model's order."""
        return [cls(name, t["kind"], t.get("target", ""), tuple(t.get("classes") or ()))
                for name, t in meta["tasks"].items()]


@dataclass(frozen=True)
class WindowPrediction:
    """One analysed window: ``start``/``end`` seconds in the file, and per task the class
    probabilities ``[C]`` (classification), the tag probabilities ``[K]`` (multilabel) or the value
    (regression)."""

    start: float
    end: float
    outputs: Mapping[str, Any]


@dataclass(frozen=True)
class SkippedWindow:
    """A window left out of a file's summary, and why (e.g. a silent stretch)."""

    start: float
    end: float
    reason: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", shown(self.reason))


@dataclass(frozen=True)
class FilePrediction:
    """The prediction for one input (a file, a waveform or a feature array).

    ``outputs`` summarises the windows: mean class probabilities ``[C]`` per classification
    task, mean tag probabilities ``[K]`` per multi-label task, mean value per regression task. ``error`` is set (and ``outputs`` empty) when the
    input could not be predicted; ``skipped`` lists windows left out of the summary.
    ``source`` and ``error`` are printable text: bytes of a file name that are not UTF-8 appear
    as ``\\xNN`` escapes (:func:`zoo.fsio.shown`), so every output format can write them.
    """

    source: str
    outputs: Mapping[str, Any] = field(default_factory=dict)
    windows: tuple[WindowPrediction, ...] = ()
    skipped: tuple[SkippedWindow, ...] = ()
    duration: float | None = None
    error: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", shown(self.source))
        object.__setattr__(self, "error", shown(self.error or ""))

    @property
    def ok(self) -> bool:
        return not self.error

    def top(self, task: TaskInfo, k: int) -> list[tuple[str, float]]:
        """The ``k`` most probable classes (or tags) of ``task``: ``[(class, probability)]``."""
        return top_classes(self.outputs[task.name], task.classes, k)


def top_classes(probs: Any, classes: tuple[str, ...], k: int) -> list[tuple[str, float]]:
    """``[(class, probability)]`` of the ``k`` largest of ``probs[C]``, most probable first."""
    p = np.asarray(probs, dtype=np.float64)
    order = np.argsort(-p, kind="stable")[:k]
    return [(classes[i], float(p[i])) for i in order]


def summarise(windows: list[WindowPrediction], tasks: list[TaskInfo]) -> dict[str, Any]:
    """Mean of the windows' class probabilities and values, per task (each window counts once)."""
    out: dict[str, Any] = {}
    for task in tasks:
        values = np.stack([np.asarray(w.outputs[task.name], dtype=np.float64) for w in windows])
        mean = values.mean(axis=0)
        out[task.name] = mean if task.vector else float(mean)
    return out
