"""A run's reports on disk: classification report, metrics.json, confusion/scatter/curve PNGs.

Each file is written atomically (:mod:`zoo.fsio`): a report is complete or absent, and a write
that fails is a one-line :class:`~zoo.errors.StorageError` naming the file and the free space.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..fsio import ensure_dir, write_text
from . import plots
from .metrics import SplitPredictions


def classification_details(pred: np.ndarray, y: np.ndarray, classes: Sequence[str]) -> tuple[str, dict, np.ndarray]:
    """(report text, report dict, confusion matrix) over the labelled clips (``y >= 0``)."""
    from sklearn.metrics import classification_report, confusion_matrix
    keep = y >= 0
    y, hard = y[keep], pred[keep].argmax(-1)
    labels = list(range(len(classes)))
    kwargs = dict(labels=labels, target_names=list(classes), zero_division=0, digits=3)
    text = classification_report(y, hard, **kwargs)
    as_dict = classification_report(y, hard, output_dict=True, **kwargs)
    return text, as_dict, confusion_matrix(y, hard, labels=labels)


def jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_reports(folder: Path, model: Any, preds: SplitPredictions, metrics: Mapping[str, Mapping[str, float]], *,
                  history: Sequence[dict[str, float]] = (), extra: Mapping[str, Any] | None = None,
                  title: str = "") -> dict[str, Path]:
    """Write every report of ``preds`` (normally the test split) into ``folder``; return the paths.

    Files: ``metrics.json`` (all metrics, per-class reports and ``extra``),
    ``classification_report.txt`` (every classification task), ``confusion_<task>.png``,
    ``scatter_<task>.png`` and ``curves.png`` (when ``history`` is given).
    """
    folder = ensure_dir(Path(folder), "the reports folder")
    paths: dict[str, Path] = {}
    texts = []
    per_class = {}
    for name in model.heads:
        schema = model.schemas[name]
        pred, y = preds.pred[name], preds.y[name]
        where = f"{title} {preds.split}" if title else preds.split
        if schema.kind == "classification":
            text, as_dict, matrix = classification_details(pred, y, schema.classes)
            texts.append(f"task {name} ({where}, {int((y >= 0).sum())} clips)\n\n{text}")
            per_class[name] = {"report": as_dict, "confusion": matrix.tolist(), "classes": list(schema.classes)}
            paths[f"confusion_{name}"] = plots.confusion(matrix, schema.classes, folder / f"confusion_{name}.png",
                                                         title=f"{name}: {where}")
        else:
            keep = ~np.isnan(y)
            m = metrics.get(name, {})
            sub = ", ".join(f"{k} {m[k]:.3f}" for k in ("mae", "spearman") if k in m)
            paths[f"scatter_{name}"] = plots.scatter(pred[keep], y[keep], folder / f"scatter_{name}.png",
                                                     title=f"{name}: {where}\n{sub}", label=schema.target or name)
    if texts:
        paths["classification_report"] = folder / "classification_report.txt"
        write_text(paths["classification_report"], "\n\n".join(texts), "the classification report")
    if history:
        paths["curves"] = plots.curves(history, folder / "curves.png", title=title,
                                       best_epoch=(extra or {}).get("best_epoch"), monitor=(extra or {}).get("monitor", ""))
    doc = {"split": preds.split, "metrics": metrics, "loss": preds.loss, "per_class": per_class}
    doc.update(extra or {})
    paths["metrics"] = folder / "metrics.json"
    write_text(paths["metrics"], json.dumps(jsonable(doc), indent=2), "the metrics report")
    return paths


def format_metrics(metrics: Mapping[str, Mapping[str, float]]) -> str:
    """One line per task: ``genre: accuracy 0.412  macro_f1 0.380 ...``."""
    lines = []
    for task, m in metrics.items():
        lines.append(f"  {task}: " + "  ".join(f"{k} {v:.4f}" for k, v in m.items()))
    return "\n".join(lines)
