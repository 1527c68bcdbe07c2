"""Predictions and metrics of a model on one split (no files; see :mod:`zoo.engine.reports`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .batches import SplitData, ordered_batches
from .device import DeviceChoice


@dataclass
class SplitPredictions:
    """What a model says about a split, in the split's row order.

    ``pred[task]``: probabilities ``[N, C]`` or values ``[N]``; ``y[task]``: the truth ``[N]``;
    ``loss``: the mean total loss over the batches; ``losses[task]``: per task.
    """

    split: str
    pred: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    loss: float
    losses: dict[str, float]


def predict_split(model: Any, split: SplitData, device: DeviceChoice, batch_size: int = 64, *,
                  window: int = 0, rows: np.ndarray | None = None,
                  weights: Mapping[str, Any] | None = None) -> SplitPredictions:
    """Run ``model`` in eval mode over ``split`` (batches sorted by length, order restored).

    ``window`` > 0: each clip's outputs are averaged over windows of that many frames (the test
    side of ``train.crop_frames``). ``rows``: only these rows of the split, predictions in their
    order (one rank's shard, see :mod:`zoo.engine.distributed`). ``weights``: per task, the loss
    weights of training (``train.balance``), so that the validation loss is the training objective."""
    import torch
    from .augment import windowed_forward
    names = list(model.heads)
    chunks: dict[str, list[np.ndarray]] = {n: [] for n in names}
    rows_seen: list[np.ndarray] = []
    loss_sum = torch.zeros((), device=device.device)
    per_sum = torch.zeros(len(names), device=device.device)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            picked = np.arange(len(split)) if rows is None else np.asarray(rows, dtype=np.int64)
            batches = ordered_batches(split.lengths_host[picked], batch_size)
            for pos, b in zip(batches, split.batches(picked[pos] for pos in batches)):
                with device.autocast():
                    out = windowed_forward(model, b.x, b.lengths, window) if window > 0 else model(b.x, b.lengths)
                    total, per = model.loss(out, b.y, weights)
                loss_sum += total.float()
                per_sum += torch.stack([per[n].float() for n in names])
                for n in names:
                    chunks[n].append(model.tasks[n].predict(out[n]))
                rows_seen.append(pos)
    finally:
        model.train(was_training)
    order = np.concatenate(rows_seen) if rows_seen else np.zeros(0, dtype=np.int64)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    pred = {n: (np.concatenate(chunks[n])[inverse] if chunks[n] else np.zeros(0)) for n in names}
    k = max(len(rows_seen), 1)
    per_host = (per_sum / k).cpu().numpy()
    y = dict(split.y_host) if rows is None else {n: v[picked] for n, v in split.y_host.items()}
    return SplitPredictions(split.name, pred, y, float(loss_sum / k),
                            {n: float(v) for n, v in zip(names, per_host)})


def split_metrics(model: Any, preds: SplitPredictions) -> dict[str, dict[str, float]]:
    """Each task's own metrics of ``preds``: ``{task: {metric: value}}``."""
    return {n: model.tasks[n].metrics(preds.pred[n], preds.y[n], model.schemas[n]) for n in model.heads}


def flat(metrics: Mapping[str, Mapping[str, float]], prefix: str = "") -> dict[str, float]:
    """``{"genre": {"accuracy": 0.4}}`` -> ``{prefix + "genre.accuracy": 0.4}``."""
    return {f"{prefix}{task}.{k}": float(v) for task, m in metrics.items() for k, v in m.items()}


def primary(model: Any) -> tuple[str, str, bool]:
    """The (task, metric, greater_is_better) that early stopping follows: the first task's."""
    name = next(iter(model.heads))
    task = model.tasks[name]
    return name, task.primary_metric, bool(task.greater_is_better)
