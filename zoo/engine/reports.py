"""A run's reports on disk: classification and tag report, metrics.json, confusion/tag/scatter/curve PNGs.

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


def tag_details(pred: np.ndarray, y: np.ndarray, tags: Sequence[str], threshold: float = 0.5) -> tuple[str, list[dict]]:
    """(report text, one row per tag) of a multi-label task: clips with the tag's value, positives,
    ROC-AUC and PR-AUC (None for a tag with one class only in these clips, said so in the text),
    and precision, recall and F1 of the decisions at probability ``threshold``."""
    from ..tasks import binary_auc
    rows = []
    for k, tag in enumerate(tags):
        keep = ~np.isnan(y[:, k])
        truth, p = y[keep, k] >= 0.5, pred[keep, k]
        hard = p >= threshold
        tp, on, said = int((hard & truth).sum()), int(truth.sum()), int(hard.sum())
        precision = tp / said if said else 0.0
        recall = tp / on if on else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scored = 0 < on < len(truth)
        roc, ap = binary_auc(p, truth) if scored else (None, None)
        rows.append({"tag": tag, "clips": int(len(truth)), "positives": on, "roc_auc": roc, "pr_auc": ap,
                     "precision": precision, "recall": recall, "f1": f1})
    width = max([len(t) for t in tags] + [3])
    lines = [f"{'tag':>{width}}  {'clips':>5}  {'pos':>5}  {'roc_auc':>7}  {'pr_auc':>7}  {'prec':>6}  {'recall':>6}  "
             f"{'f1':>6}"]
    for r in rows:
        aucs = (f"{r['roc_auc']:7.3f}  {r['pr_auc']:7.3f}" if r["roc_auc"] is not None
                else f"{'-':>7}  {'-':>7}")
        lines.append(f"{r['tag']:>{width}}  {r['clips']:5d}  {r['positives']:5d}  {aucs}  {r['precision']:6.3f}  "
                     f"{r['recall']:6.3f}  {r['f1']:6.3f}")
    scored = [r for r in rows if r["roc_auc"] is not None]
    if scored:
        lines.append(f"{'mean':>{width}}  {'':5}  {'':5}  {np.mean([r['roc_auc'] for r in scored]):7.3f}  "
                     f"{np.mean([r['pr_auc'] for r in scored]):7.3f}   (over {len(scored)} of {len(rows)} tags)")
    single = [r["tag"] for r in rows if r["roc_auc"] is None]
    if single:
        lines.append(f"not scored ({len(single)}): {', '.join(single)}: only one class (all on or all off) "
                     f"in these clips")
    lines.append(f"prec, recall, f1: a tag said to be on where its probability is >= {threshold:g}")
    return "\n".join(lines) + "\n", rows


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

    Files: ``metrics.json`` (all metrics, per-class and per-tag reports and ``extra``),
    ``classification_report.txt`` (every classification task, and a per-tag table of every
    multi-label task), ``confusion_<task>.png``, ``tags_<task>.png`` (per-tag ROC-AUC and PR-AUC),
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
        elif schema.kind == "multilabel":
            text, rows = tag_details(pred, y, schema.classes)
            labelled = int((~np.isnan(y)).any(axis=1).sum()) if y.ndim == 2 else 0
            texts.append(f"task {name} ({where}, {labelled} clips)\n\n{text}")
            per_class[name] = {"tags": rows, "classes": list(schema.classes)}
            paths[f"tags_{name}"] = plots.tag_scores(rows, folder / f"tags_{name}.png", title=f"{name}: {where}")
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
    """One line per task: ``genre: accuracy 0.412  macro_f1 0.380 ...``; a multi-label task's per-tag
    values (``calm.roc_auc``) are left to its per-tag table."""
    lines = []
    for task, m in metrics.items():
        lines.append(f"  {task}: " + "  ".join(f"{k} {v:.4f}" for k, v in m.items() if "." not in k))
    return "\n".join(lines)
