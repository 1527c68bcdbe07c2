"""Apply a trained model to new music: ``open_model(MODEL).predict_file("song.mp3")``.

``MODEL`` is a packaged model folder, a run id, a registered model or a recipe name (see
:mod:`zoo.predict.resolve`). The CLI (``zoo predict``) and the MLflow pyfunc
(:mod:`zoo.tracking.mlflow.pyfunc`) are thin layers over :class:`Predictor`.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from .predictor import Predictor
from .resolve import ModelSource, find_model_folder, resolve_model
from .results import FilePrediction, SkippedWindow, TaskInfo, WindowPrediction

__all__ = ["open_model", "Predictor", "ModelSource", "resolve_model", "find_model_folder", "FilePrediction",
           "WindowPrediction", "SkippedWindow", "TaskInfo"]


def open_model(model: Any, *, registry: Any = None, device: str = "auto", window_seconds: float | None = None,
               hop_seconds: float | None = None, experiment: str | None = None, uri: str | None = None) -> Predictor:
    """A :class:`Predictor` for ``model`` (folder, run id, registered name or recipe; see
    :func:`resolve_model`). Tracked models are downloaded to a temporary folder, removed once the
    model is in memory. ``device``: "auto", "cpu" or "cuda"."""
    with tempfile.TemporaryDirectory(prefix="zoo-predict-") as tmp:
        source = resolve_model(str(model), Path(tmp), experiment=experiment, uri=uri)
        predictor = Predictor.load(source.folder, registry=registry, device=device,
                                   window_seconds=window_seconds, hop_seconds=hop_seconds)
    predictor.label = source.label
    return predictor
