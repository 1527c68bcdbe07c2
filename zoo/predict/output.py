"""Predictions as people and programs read them: a table, JSON records or CSV rows.

Every text returned is printable on any UTF-8 stream: undecodable bytes of file names appear as
``\\xNN`` escapes (:func:`zoo.fsio.shown`), never as characters a strict encoder refuses.
"""
from __future__ import annotations

import csv
import io
from typing import Any, Iterable, Mapping, Sequence

from ..fsio import shown
from .results import FilePrediction, TaskInfo, top_classes

DIGITS = 6


def _task_outputs(outputs: Mapping[str, Any], tasks: Sequence[TaskInfo], top_k: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for t in tasks:
        if t.vector:
            probs = outputs[t.name]
            what = "tag" if t.kind == "multilabel" else "class"
            out[t.name] = {
                "top": [{what: c, "probability": round(p, DIGITS)} for c, p in top_classes(probs, t.classes, top_k)],
                "probabilities": {c: round(float(p), DIGITS) for c, p in zip(t.classes, probs)},
            }
        else:
            out[t.name] = round(float(outputs[t.name]), DIGITS)
    return out


def record(pred: FilePrediction, tasks: Sequence[TaskInfo], top_k: int, windows: bool) -> dict[str, Any]:
    """One input as a JSON-able dict: ``file``, ``ok``, ``error``, ``duration``, ``windows``,
    ``predictions`` {task: {top, probabilities} or value; a multi-label task's ``top`` entries name a
    ``tag`` where a classification's name a ``class``}, ``skipped_windows`` and (``windows``)
    ``window_predictions``."""
    doc: dict[str, Any] = {"file": pred.source, "ok": pred.ok, "error": pred.error or None,
                           "duration": None if pred.duration is None else round(pred.duration, 3),
                           "windows": len(pred.windows)}
    if pred.ok:
        doc["predictions"] = _task_outputs(pred.outputs, tasks, top_k)
    doc["skipped_windows"] = [{"start": s.start, "end": s.end, "reason": s.reason} for s in pred.skipped]
    if windows:
        doc["window_predictions"] = [{"start": w.start, "end": w.end, **_task_outputs(w.outputs, tasks, top_k)}
                                     for w in pred.windows]
    return doc


def _line(outputs: Mapping[str, Any], tasks: Sequence[TaskInfo], top_k: int) -> str:
    parts = []
    for t in tasks:
        if t.vector:
            tops = ", ".join(f"{c} {p:.3f}" for c, p in top_classes(outputs[t.name], t.classes, top_k))
            parts.append(f"{t.name}: {tops}")
        else:
            parts.append(f"{t.name} {float(outputs[t.name]):.3f}")
    return "   ".join(parts)


def format_table(preds: Iterable[FilePrediction], tasks: Sequence[TaskInfo], top_k: int, windows: bool) -> str:
    """Per input: its name and length, then per task the top-k classes (or tags) or the value; errors in place."""
    lines = []
    for pred in preds:
        if not pred.ok:
            lines.append(f"{pred.source}\n  ERROR: {pred.error}")
            continue
        length = f"{pred.duration:.2f} s, " if pred.duration is not None else ""
        lines.append(f"{pred.source}  ({length}{len(pred.windows)} window{'s' if len(pred.windows) != 1 else ''})")
        width = max(len(t.name) for t in tasks)
        for t in tasks:
            if t.vector:
                tops = "  ".join(f"{c} {p:.3f}" for c, p in pred.top(t, top_k))
                lines.append(f"  {t.name:<{width}}  {tops}")
            else:
                lines.append(f"  {t.name:<{width}}  {float(pred.outputs[t.name]):.3f}")
        for s in pred.skipped:
            lines.append(f"  skipped window {s.start:.2f}-{s.end:.2f} s: {s.reason}")
        if windows and pred.duration is not None:
            for w in pred.windows:
                lines.append(f"    {w.start:7.2f}-{w.end:7.2f} s  {_line(w.outputs, tasks, top_k)}")
    return shown("\n".join(lines))


def csv_columns(tasks: Sequence[TaskInfo], top_k: int) -> list[str]:
    """``file, part, start, end, duration, windows, skipped, error``, then ``<task>_<i>`` and
    ``<task>_<i>_p`` for the top-k classes of a classification (tags of a multi-label task),
    ``<task>`` for a regression."""
    cols = ["file", "part", "start", "end", "duration", "windows", "skipped", "error"]
    for t in tasks:
        if t.vector:
            for i in range(1, min(top_k, len(t.classes)) + 1):
                cols += [f"{t.name}_{i}", f"{t.name}_{i}_p"]
        else:
            cols.append(t.name)
    return cols


def _csv_values(outputs: Mapping[str, Any], tasks: Sequence[TaskInfo], top_k: int) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for t in tasks:
        if t.vector:
            for i, (c, p) in enumerate(top_classes(outputs[t.name], t.classes, top_k), start=1):
                row[f"{t.name}_{i}"], row[f"{t.name}_{i}_p"] = c, round(p, DIGITS)
        else:
            row[t.name] = round(float(outputs[t.name]), DIGITS)
    return row


def format_csv(preds: Iterable[FilePrediction], tasks: Sequence[TaskInfo], top_k: int, windows: bool) -> str:
    """One row per input (``part`` "all"), plus one per window (``part`` "window") with ``windows``."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=csv_columns(tasks, top_k), lineterminator="\n")
    writer.writeheader()
    for pred in preds:
        base = {"file": pred.source, "part": "all", "error": pred.error,
                "duration": "" if pred.duration is None else round(pred.duration, 3),
                "windows": len(pred.windows), "skipped": len(pred.skipped)}
        if pred.ok:
            base.update(start=0.0 if pred.duration is not None else "",
                        end="" if pred.duration is None else round(pred.duration, 3))
            base.update(_csv_values(pred.outputs, tasks, top_k))
        writer.writerow(base)
        if windows and pred.ok and pred.duration is not None:
            for w in pred.windows:
                writer.writerow({"file": pred.source, "part": "window", "start": w.start, "end": w.end,
                                 **_csv_values(w.outputs, tasks, top_k)})
    return shown(buf.getvalue())
