"""Apply a trained model to new music: ``Predictor.load(folder).predict_file("song.mp3")``.

:class:`Predictor` takes a packaged model folder; ``zoo.open_model(MODEL)`` first turns any model
reference (run id, registered name, recipe, ...; see :mod:`zoo.refs`) into one. The CLI
(``zoo predict``) and the MLflow pyfunc (:mod:`zoo.tracking.mlflow.pyfunc`) are thin layers over
:class:`Predictor`.
"""
from __future__ import annotations

from .predictor import Predictor
from .results import FilePrediction, SkippedWindow, TaskInfo, WindowPrediction

__all__ = ["Predictor", "FilePrediction", "WindowPrediction", "SkippedWindow", "TaskInfo"]
