"""Scoring a trained (packaged) model on a data set: labels mapped by name, reports on disk."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..data.preparedset import Prepared
from ..errors import DataError
from ..protocols import OwnsClasses
from .batches import SPLITS, Normaliser, make_split, task_classes, task_targets
from .device import for_model, pick_device
from .metrics import flat, predict_split, split_metrics
from .reports import format_metrics, write_reports


@dataclass
class EvalResult:
    """Metrics of a model on one split of a data set, and the reports written for it.

    ``metrics``: ``{task: {metric: value}}``; ``flat``: ``{"genre.accuracy": ...}``.
    """

    metrics: dict[str, dict[str, float]]
    split: str
    clips: int
    data: str
    folder: Path
    reports: dict[str, Path]
    report_text: str = ""

    @property
    def flat(self) -> dict[str, float]:
        return flat(self.metrics)

    def summary(self) -> str:
        return f"{self.split} split of {self.data}, {self.clips} clips\n{format_metrics(self.metrics)}"


def align_labels(prepared: Prepared, classes: tuple[str, ...]) -> Prepared:
    """``prepared`` with labels re-indexed into the model's ``classes`` (matched by name)."""
    if tuple(prepared.classes) == tuple(classes):
        return prepared
    index = {c: i for i, c in enumerate(classes)}
    present = {prepared.classes[i] for i in np.unique(prepared.labels) if i >= 0}
    foreign = sorted(present - set(index))
    if foreign:
        raise DataError(
            f"{prepared.description} has labels the model never learned: {', '.join(foreign)}; the model knows "
            f"{', '.join(classes)}; evaluate on data with those classes (or a class mapping onto them)"
        )
    remap = np.array([index.get(c, -1) for c in prepared.classes] + [-1], dtype=np.int64)
    labels = remap[np.where(prepared.labels >= 0, prepared.labels, len(prepared.classes))]
    return replace(prepared, labels=labels, classes=tuple(classes))


def assess(model: Any, meta: Mapping[str, Any], prepared: Prepared, *, split: str = "test", device: str = "auto",
           batch_size: int = 64, out_dir: Path) -> EvalResult:
    """Score ``model`` (with its packaged ``meta``) on ``split`` ("train", "val", "test" or "all")."""
    if split not in (*SPLITS, "all"):
        raise DataError(f"split {split!r}: use one of {', '.join(SPLITS)} or all")
    if prepared.n_bins != int(meta["n_bins"]) or prepared.rate != meta["rate"]:
        raise DataError(
            f"{prepared.description} holds {prepared.rate}-rate arrays of {prepared.n_bins} bins; the model "
            f"{meta['spec']} needs {meta['rate']}-rate input of {meta['n_bins']} bins"
        )
    if any(t.kind == "classification" and not isinstance(t, OwnsClasses) for t in model.tasks.values()):
        prepared = align_labels(prepared, tuple(meta.get("classes", ())))  # a task with its own classes maps any label
    for name, task in model.tasks.items():
        if task.kind == "multilabel":
            tags = task.schema(task_classes(task, prepared)).classes
            if tags != model.schemas[name].classes:
                raise DataError(f"{prepared.description} gives task '{name}' the tags {', '.join(tags)}; the model "
                                f"learned {', '.join(model.schemas[name].classes)}: evaluate on data with those tag "
                                f"columns")
    rows = np.arange(len(prepared)) if split == "all" else prepared.indices(split)
    if len(rows) == 0:
        counts = {s: int((prepared.splits == s).sum()) for s in SPLITS}
        raise DataError(f"{prepared.description} has no '{split}' clips (per split: {counts}); pass split='all' "
                        f"(--split all) to score every clip")
    choice = for_model(pick_device(device), meta)
    choice.place(model)
    norm = Normaliser.from_json(meta["normalisation"])
    data = make_split(split, prepared, rows, task_targets(prepared, model.tasks), norm, choice.device)
    preds = predict_split(model, data, choice, batch_size)
    metrics = split_metrics(model, preds)
    extra = {"spec": meta["spec"], "model_run_id": meta.get("run_id"), "data": prepared.description,
             "clips": int(len(rows))}
    reports = write_reports(Path(out_dir), model, preds, metrics, extra=extra, title=meta["spec"])
    text = reports.get("classification_report")
    model.to("cpu")
    return EvalResult(metrics, split, int(len(rows)), prepared.description, Path(out_dir), reports,
                      text.read_text() if text else "")
