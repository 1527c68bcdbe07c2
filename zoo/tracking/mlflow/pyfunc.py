"""The zoo's models as MLflow pyfunc models (``ZooPyfunc``): save or log one for a run, load it and predict.

A run's pyfunc model (artifact folder ``pyfunc_model``) wraps the packaged model (``zoo_model.json``
+ ``weights.pt``, copied in as the artifact ``zoo_model``) in :class:`ZooPyfunc`, so::

    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/pyfunc_model")
    table = model.predict(pandas.DataFrame({"path": ["song.mp3", "other.ogg"]}))

works wherever the zoo and the model's plugins are installed (nothing is installed at load time).
"""
from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any, Mapping

import mlflow.pyfunc
import numpy as np
import pandas as pd

from ...errors import ConfigError, RunError
from .store import client

PYFUNC_PATH = "pyfunc_model"
"""Artifact folder of a run's pyfunc model."""
ARTIFACT_KEY = "zoo_model"
INPUT_COLUMNS = ("path", "audio", "features")


class ZooPyfunc(mlflow.pyfunc.PythonModel):
    """A packaged zoo model behind MLflow's pyfunc interface.

    ``predict`` takes a DataFrame with one of the columns ``path`` (audio files), ``audio`` (mono
    waveforms ``[N]``, with an optional ``sr`` column; default: the model's rate) or ``features``
    (stacked ``[F, T]`` arrays as the model's feature plugins compute them, not normalised). It
    returns one row per input row, same index: ``source``, ``error`` ("" when predicted),
    ``windows``, then per classification task the top class (column ``<task>``) and a ``p_<class>``
    column per class (``<task>.p_<class>`` when a model has several classification tasks), per
    multi-label task the tags whose probability is >= 0.5 (``<task>``, comma-separated) and a
    ``<task>.p_<tag>`` column per tag, and one column per regression task. Long audio is windowed as by ``zoo predict``; ``params`` may
    set ``window_seconds`` and ``hop_seconds`` (0 or absent: the model's median training clip, half of it).
    """

    def __init__(self, device: str = "auto"):
        self.device = device
        self._predictor = None

    def load_context(self, context: Any) -> None:
        from ...engine.package import find_model_folder
        from ...predict import Predictor
        from ...workspace import Workspace
        root = Path(context.artifacts[ARTIFACT_KEY])
        folder = find_model_folder(root)
        if folder is None:
            raise RunError(f"the pyfunc model's artifact {root} holds no zoo_model.json: the model folder is damaged")
        # Loaded by MLflow, outside the zoo's CLI and API: this is where the environment is read.
        self._predictor = Predictor.load(folder, registry=Workspace.from_env().registry(), device=self.device)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        predictor = self._predictor
        if predictor is None:
            raise RunError("ZooPyfunc.predict before load_context: load it with mlflow.pyfunc.load_model")
        # MLflow fills params the caller left out with their schema defaults (0): 0 means "the model's own".
        window = float((params or {}).get("window_seconds") or 0) or None
        hop = float((params or {}).get("hop_seconds") or 0) or None
        if window is not None or hop is not None:
            from ...predict import Predictor
            predictor = Predictor(predictor.model, predictor.meta, predictor.features, device=predictor.choice,
                                  window_seconds=window, hop_seconds=hop)
        frame = _as_frame(model_input)
        preds = [_predict_row(predictor, frame, i) for i in range(len(frame))]
        return predictions_frame(preds, predictor.tasks, index=frame.index)


def _as_frame(model_input: Any) -> pd.DataFrame:
    if isinstance(model_input, pd.DataFrame):
        frame = model_input
    elif isinstance(model_input, Mapping):
        frame = pd.DataFrame(dict(model_input))
    else:
        raise ConfigError(f"ZooPyfunc.predict takes a pandas DataFrame with a {', '.join(INPUT_COLUMNS)} column, "
                          f"got {type(model_input).__name__}")
    have = [c for c in INPUT_COLUMNS if c in frame.columns]
    if len(have) != 1:
        what = f"columns {', '.join(map(str, frame.columns))}" if len(frame.columns) else "no columns"
        raise ConfigError(f"ZooPyfunc.predict: the DataFrame has {what}; give exactly one of 'path' (audio files), "
                          f"'audio' (mono waveforms, optional 'sr') or 'features' (stacked [F, T] arrays)")
    return frame


def _predict_row(predictor: Any, frame: pd.DataFrame, i: int):
    row = frame.iloc[i]
    label = frame.index[i]
    if "path" in frame.columns:
        return predictor.predict_file(str(row["path"]))
    if "audio" in frame.columns:
        sr = row["sr"] if "sr" in frame.columns and pd.notna(row["sr"]) else predictor.sample_rate
        return predictor.predict_waveform(np.asarray(row["audio"]), int(sr), source=f"row {label}")
    return predictor.predict_features(np.asarray(row["features"]), source=f"row {label}")


def predictions_frame(preds: list[Any], tasks: list[Any], index: Any = None) -> pd.DataFrame:
    """The pyfunc output table of ``preds`` (:class:`zoo.predict.FilePrediction`), one row each."""
    classifications = [t for t in tasks if t.kind == "classification"]
    rows = []
    for pred in preds:
        row: dict[str, Any] = {"source": pred.source, "error": pred.error, "windows": len(pred.windows)}
        for t in tasks:
            if t.kind == "classification":
                probs = pred.outputs.get(t.name) if pred.ok else None
                row[t.name] = t.classes[int(np.argmax(probs))] if probs is not None else None
                prefix = "p_" if len(classifications) == 1 else f"{t.name}.p_"
                for j, c in enumerate(t.classes):
                    row[f"{prefix}{c}"] = float(probs[j]) if probs is not None else np.nan
            elif t.kind == "multilabel":
                probs = pred.outputs.get(t.name) if pred.ok else None
                row[t.name] = ",".join(c for c, p in zip(t.classes, probs) if p >= 0.5) if probs is not None else None
                for j, c in enumerate(t.classes):
                    row[f"{t.name}.p_{c}"] = float(probs[j]) if probs is not None else np.nan
            else:
                row[t.name] = float(pred.outputs[t.name]) if pred.ok else np.nan
        rows.append(row)
    return pd.DataFrame(rows, index=index)


def requirements(meta: Mapping[str, Any]) -> list[str]:
    """pip requirements of a packaged model: the zoo and each component's ``distribution==version``."""
    from ... import __version__
    found = {f"music-zoo=={__version__}"} | {str(v) for v in (meta.get("providers") or {}).values() if v}
    return sorted(found)


def signature(meta: Mapping[str, Any]):
    """The pyfunc model's signature: the three input forms (each column optional), the output
    table of this model's tasks, and the window params (0: the model's own)."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, ParamSchema, ParamSpec, Schema
    inputs = Schema([ColSpec("string", "path", required=False), ColSpec(Array("double"), "audio", required=False),
                     ColSpec("long", "sr", required=False),
                     ColSpec(Array(Array("double")), "features", required=False)])
    tasks = dict(meta.get("tasks") or {})
    classifications = [n for n, t in tasks.items() if t.get("kind") == "classification"]
    columns = [ColSpec("string", "source"), ColSpec("string", "error"), ColSpec("long", "windows")]
    for name, task in tasks.items():
        if task.get("kind") == "classification":
            # A row that failed has no top class and NaN probabilities.
            columns.append(ColSpec("string", name, required=False))
            prefix = "p_" if len(classifications) == 1 else f"{name}.p_"
            columns += [ColSpec("double", f"{prefix}{c}", required=False) for c in task.get("classes", ())]
        elif task.get("kind") == "multilabel":
            # the tags whose probability is >= 0.5, comma-separated, then each tag's probability
            columns.append(ColSpec("string", name, required=False))
            columns += [ColSpec("double", f"{name}.p_{c}", required=False) for c in task.get("classes", ())]
        else:
            columns.append(ColSpec("double", name, required=False))
    params = ParamSchema([ParamSpec("window_seconds", "double", 0.0), ParamSpec("hop_seconds", "double", 0.0)])
    return ModelSignature(inputs=inputs, outputs=Schema(columns), params=params)


INPUT_EXAMPLE = {"path": ["song.mp3"]}
"""The input example stored with the model (what a caller passes: a column of audio files)."""


def save_pyfunc_model(model_folder: Path | str, dst: Path | str, *, mlflow_model: Any = None) -> Path:
    """Write the pyfunc model of the packaged model in ``model_folder`` to the new folder ``dst``,
    with its signature and input example. ``mlflow_model``: an ``mlflow.models.Model`` carrying
    the ``model_id`` and ``run_id`` it is logged under (:func:`log_pyfunc_model`)."""
    from ...engine.package import read_meta
    model_folder = Path(model_folder)
    meta = read_meta(model_folder)
    log = logging.getLogger("mlflow")
    level = log.level
    # MLflow warns that a Python object is pickled (ZooPyfunc is, by reference to this installed
    # module, holding no state), and reports checking the input example (a file that does not
    # exist here: its row comes back with its error set, which is the documented behaviour).
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            mlflow.pyfunc.save_model(
                str(dst), python_model=ZooPyfunc(), artifacts={ARTIFACT_KEY: str(model_folder)},
                pip_requirements=requirements(meta), signature=signature(meta),
                input_example=pd.DataFrame(INPUT_EXAMPLE), mlflow_model=mlflow_model,
                metadata={"zoo.spec": meta.get("spec"), "zoo.format": meta.get("format"),
                          "zoo.format_version": meta.get("format_version")},
            )
    finally:
        log.setLevel(level)
    return Path(dst)


def log_pyfunc_model(run_id: str, model_folder: Path | str, *, uri: str | None = None) -> str:
    """Log the packaged model in ``model_folder`` as run ``run_id``'s pyfunc model; return its
    ``runs:/<run_id>/pyfunc_model`` URI. ``uri``: the tracking store (default: the zoo's).

    The model is an MLflow 3 logged model (named ``pyfunc_model``, in the run's experiment, an
    output of the run: ``models:/<model_id>`` loads it and the UI lists it under the run) and,
    for ``runs:/`` URIs and the model registry, a copy in the run's artifacts ``pyfunc_model/``.
    Everything goes through one client, so MLflow's process-wide tracking URI is left alone.
    """
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models import Model
    c = client(uri)
    run = c.get_run(run_id)
    logged = c.create_logged_model(experiment_id=run.info.experiment_id, name=PYFUNC_PATH, source_run_id=run_id,
                                   tags={"zoo.run_id": run_id}, model_type="zoo")
    try:
        with tempfile.TemporaryDirectory(prefix="zoo-pyfunc-") as tmp:
            described = Model(artifact_path=logged.artifact_location, run_id=run_id, model_id=logged.model_id,
                              model_uuid=logged.model_id)
            folder = save_pyfunc_model(model_folder, Path(tmp) / PYFUNC_PATH, mlflow_model=described)
            c.log_model_artifacts(logged.model_id, str(folder))
            c.log_artifacts(run_id, str(folder), artifact_path=PYFUNC_PATH)
        c.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
    except BaseException as exc:
        # A copy cut short (a full disk) is no model: a local artifact store keeps none of it.
        from .faults import local_path, remove_tree
        remove_tree(local_path(logged.artifact_location))
        try:
            remove_tree(local_path(run.info.artifact_uri) / PYFUNC_PATH)
        except TypeError:  # a remote artifact store
            pass
        try:
            c.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        except Exception as final_exc:  # the store may be what failed: the first error is the one to tell
            exc.add_note(f"could not mark the logged model {logged.model_id} FAILED ({type(final_exc).__name__})")
        raise
    c.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    return f"runs:/{run_id}/{PYFUNC_PATH}"
