"""Training-time augmentation and test-time windows: masking, mixup, crops, balancing.

Everything here works on a normalised, padded batch ``x[B, F, T]`` with ``lengths[B]`` and draws
its randomness from the loop's seeded numpy generator, so a run stays reproducible. Padding is
0 after normalisation (the training mean), so a mask writes 0 too.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..errors import RunError
from ..model.model import Batch
from ..protocols import metric_direction, metric_directions



def mask_batch(batch: Batch, rng: np.random.Generator, *, time_masks: int, time_width: int,
               freq_masks: int, freq_width: int) -> Batch:
    """SpecAugment-style masks: ``time_masks`` spans of up to ``time_width`` frames and ``freq_masks``
    bands of up to ``freq_width`` bins per clip set to 0.

    A time span lies inside the clip's true length (``lengths[i]``), never in its padding; a span
    is at most a fifth of the clip, so a short clip keeps most of its frames. Returns a new batch.
    """
    import torch
    x = batch.x
    B, F, T = x.shape
    keep = np.ones((B, F, T), dtype=np.float32)
    lengths = batch.lengths.detach().cpu().numpy() if hasattr(batch.lengths, "detach") else np.asarray(batch.lengths)
    for i in range(B):
        n = int(lengths[i])
        for _ in range(time_masks if time_width > 0 else 0):
            w = int(rng.integers(0, min(time_width, max(1, n // 5)) + 1))
            if w == 0 or n <= w:
                continue
            t0 = int(rng.integers(0, n - w + 1))
            keep[i, :, t0: t0 + w] = 0.0
        for _ in range(freq_masks if freq_width > 0 else 0):
            w = int(rng.integers(0, min(freq_width, F - 1) + 1))
            if w == 0:
                continue
            f0 = int(rng.integers(0, F - w + 1))
            keep[i, f0: f0 + w, :] = 0.0
    return Batch(x * torch.from_numpy(keep).to(x.device, x.dtype), batch.lengths, batch.y)


def crop_batch(batch: Batch, rng: np.random.Generator, frames: int) -> Batch:
    """One random window of ``frames`` frames per clip longer than that; shorter clips stay whole."""
    import torch
    x = batch.x
    B, F, T = x.shape
    if frames <= 0 or T <= frames:
        return batch
    lengths = batch.lengths.detach().cpu().numpy()
    starts = np.array([int(rng.integers(0, n - frames + 1)) if n > frames else 0 for n in lengths])
    idx = torch.as_tensor(starts[:, None] + np.arange(frames)[None, :], dtype=torch.long, device=x.device)
    cropped = x.gather(2, idx[:, None, :].expand(B, F, frames))
    return Batch(cropped, batch.lengths.clamp(max=frames), batch.y)


def mix_batch(batch: Batch, rng: np.random.Generator, alpha: float) -> tuple[Batch, dict[str, Any], float]:
    """Mixup: ``x = lam * x + (1 - lam) * x[perm]`` with ``lam ~ Beta(alpha, alpha)`` (one per batch).

    Returns (the mixed batch, the partners' targets ``y[perm]``, lam). The mixed batch keeps the
    own targets; :func:`mixed_loss` combines both. Lengths become the longer of the two clips.
    """
    import torch
    lam = float(rng.beta(alpha, alpha))
    perm = torch.as_tensor(rng.permutation(batch.x.shape[0]), dtype=torch.long, device=batch.x.device)
    x = lam * batch.x + (1.0 - lam) * batch.x.index_select(0, perm)
    lengths = torch.maximum(batch.lengths, batch.lengths.index_select(0, perm))
    partner = {k: v.index_select(0, perm) for k, v in batch.y.items()}
    return Batch(x, lengths, batch.y), partner, lam


def mixed_targets(model: Any, y: Mapping[str, Any], partner: Mapping[str, Any], lam: float) -> tuple[dict, dict]:
    """Two target sets whose losses, weighted ``lam`` and ``1 - lam``, give the mixup loss.

    Regression targets are mixed themselves (a clip missing either value stays missing); class
    labels cannot be, so the first set keeps the own labels and the second the partners'.
    """
    import torch
    a, b = dict(y), dict(partner)
    for name, task in model.tasks.items():
        if task.kind != "classification":
            mixed = lam * y[name] + (1.0 - lam) * partner[name]
            a[name] = b[name] = torch.where(torch.isnan(y[name]) | torch.isnan(partner[name]),
                                            torch.full_like(mixed, float("nan")), mixed)
    return a, b


def mixed_loss(model: Any, out: Mapping[str, Any], y: Mapping[str, Any], partner: Mapping[str, Any],
               lam: float, weights: Mapping[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
    """The mixup loss: ``lam * loss(y) + (1 - lam) * loss(y[perm])`` (total and per task);
    ``weights``: per task, its loss weights (``train.balance``)."""
    a, b = mixed_targets(model, y, partner, lam)
    total_a, per_a = model.loss(out, a, weights)
    total_b, per_b = model.loss(out, b, weights)
    per = {n: lam * per_a[n] + (1.0 - lam) * per_b[n] for n in per_a}
    return lam * total_a + (1.0 - lam) * total_b, per


def window_starts(length: int, window: int) -> np.ndarray:
    """Where the test-time windows of a clip of ``length`` frames start: half-overlapping, the last
    one flush with the clip's end; one window (at 0) when the clip is not longer than ``window``."""
    if length <= window:
        return np.zeros(1, dtype=np.int64)
    hop = max(1, window // 2)
    return np.unique(np.r_[np.arange(0, length - window + 1, hop), length - window]).astype(np.int64)


def windowed_forward(model: Any, x: Any, lengths: Any, window: int) -> dict[str, Any]:
    """The model's outputs (logits, values) averaged over each clip's windows of ``window`` frames.

    ``x[B, F, T]``, ``lengths[B]`` -> ``{task: [B, ...]}``; the test-time side of training crops.
    """
    import torch
    B, F, T = x.shape
    if window <= 0 or T <= window:
        return model(x, lengths)
    host = lengths.detach().cpu().numpy()
    owner, starts = [], []
    for i, n in enumerate(host):
        s = window_starts(int(n), window)
        owner += [i] * len(s)
        starts.append(s)
    st = np.concatenate(starts)
    rows = torch.as_tensor(owner, dtype=torch.long, device=x.device)
    idx = torch.as_tensor(st[:, None] + np.arange(window)[None, :], dtype=torch.long, device=x.device)
    idx = idx.clamp(max=T - 1)
    xs = x.index_select(0, rows).gather(2, idx[:, None, :].expand(len(st), F, window))
    ls = lengths.index_select(0, rows).clamp(max=window)
    out = model(xs, ls)
    counts = torch.bincount(rows, minlength=B).to(x.dtype)
    averaged = {}
    for name, value in out.items():
        value = value.float()
        total = torch.zeros((B,) + tuple(value.shape[1:]), device=value.device, dtype=value.dtype)
        total.index_add_(0, rows, value)
        averaged[name] = total / counts.view((B,) + (1,) * (value.dim() - 1)).to(value.dtype)
    return averaged


def class_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Inverse-frequency weights ``N / (C * n_c)`` from the training labels (``-1``: unlabelled);
    a class without training clips gets 1. float32 ``[C]``."""
    known = labels[labels >= 0]
    counts = np.bincount(known, minlength=n_classes).astype(np.float64)
    w = np.ones(n_classes)
    present = counts > 0
    w[present] = len(known) / (present.sum() * counts[present])
    return w.astype(np.float32)


def tag_weights(y: np.ndarray) -> np.ndarray:
    """Per-tag weights of the positive term ``n_off / n_on`` from the training targets ``y[N, K]``
    (1 on, 0 off, NaN missing), so a tag's positives weigh as much as its negatives; a tag without
    positives or without negatives gets 1. float32 ``[K]``."""
    known = ~np.isnan(y)
    on = ((y >= 0.5) & known).sum(axis=0).astype(np.float64)
    off = known.sum(axis=0) - on
    w = np.ones(y.shape[1])
    both = (on > 0) & (off > 0)
    w[both] = off[both] / on[both]
    return w.astype(np.float32)


def balanced_batches(labels: np.ndarray, batch_size: int, rng: np.random.Generator):
    """One epoch of row indices drawn with replacement so that every class is equally likely
    (unlabelled rows, ``-1``, count as one more group); as many rows as the split has."""
    n = len(labels)
    groups, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    p = 1.0 / counts[inverse]
    p /= p.sum()
    order = rng.choice(n, size=n, replace=True, p=p)
    chunks = [order[i: i + batch_size] for i in range(0, n, batch_size)]
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        last = chunks.pop()
        chunks[-1] = np.concatenate([chunks[-1], last])
    return iter(chunks)


def monitored(model: Any, monitor: str) -> tuple[str, bool]:
    """``train.monitor`` as (validation key, greater is better).

    "" follows the first task's primary metric; ``METRIC`` is a metric of the first task
    (``macro_f1``); ``TASK.METRIC`` names the task; ``loss`` is the total validation loss. The
    direction is the one the task declares (:func:`zoo.protocols.metric_direction`); a metric it
    does not declare is a RunError naming the fix.
    """
    first = next(iter(model.heads))
    if not monitor:
        task = model.tasks[first]
        return f"val.{first}.{task.primary_metric}", bool(task.greater_is_better)
    if monitor == "loss":
        return "val.loss", False
    name, metric = monitor.split(".", 1) if "." in monitor else (first, monitor)
    key = f"val.{name}.{metric}"
    if name not in model.tasks:
        return key, True  # the first epoch's check names what validation reports
    higher = metric_direction(model.tasks[name], metric)
    if higher is None:
        declared = ", ".join(metric_directions(model.tasks[name]))
        raise RunError(f"train.monitor={monitor}: task '{name}' does not declare whether a higher {metric} is "
                       f"better (it declares {declared}); monitor one of those, or add {metric!r} to the task's "
                       f"higher_is_better (zoo.protocols.DeclaresMetrics)")
    return key, higher
