"""Normalisation and batches: each split padded once, kept resident (on the GPU when there is one).

A split of N clips ``[F, T_i]`` becomes one zero-padded tensor ``x[N, F, T_max]`` plus
``lengths[N]`` and, per task, ``y[N]``. A batch is an index gather from it, cut to the longest
clip of the batch, so training never pads or copies from the host per step. When a split would
not fit the memory budget, its clips stay a host list and each batch is padded on the fly.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import numpy as np

from ..data.preparedset import Prepared
from ..errors import DataError
from ..model.model import Batch

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Normaliser:
    """Per-bin mean and standard deviation of the training split, stored with the model.

    ``mean``, ``std``: float32 ``[F]``. ``apply(x[F, T]) -> (x - mean) / std``.
    """

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, arrays: list[np.ndarray], keep: list[slice] | None = None) -> "Normaliser":
        """Statistics over every frame of ``arrays`` (each ``[F, T_i]``), in float64.

        ``keep``: rows left as they are (mean 0, std 1), see :func:`unscaled_rows`.
        """
        if not arrays:
            raise DataError("cannot compute normalisation statistics: the training split is empty")
        F = arrays[0].shape[0]
        total = np.zeros(F)
        squares = np.zeros(F)
        frames = 0
        for a in arrays:
            a64 = a.astype(np.float64, copy=False)
            total += a64.sum(axis=1)
            squares += np.square(a64).sum(axis=1)
            frames += a.shape[1]
        mean = total / frames
        var = np.maximum(squares / frames - mean**2, 0.0)
        std = np.sqrt(var)
        # A constant bin (e.g. a silent mel band) would divide by ~0: leave its scale alone.
        std[std < 1e-6] = 1.0
        for rows in keep or ():
            mean[rows], std[rows] = 0.0, 1.0
        return cls(mean.astype(np.float32), std.astype(np.float32))

    def apply(self, x: np.ndarray) -> np.ndarray:
        """``x[F, T]`` -> normalised float32 ``[F, T]``."""
        return ((x - self.mean[:, None]) / self.std[:, None]).astype(np.float32, copy=False)

    def to_json(self) -> dict[str, list[float]]:
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Normaliser":
        return cls(np.asarray(d["mean"], dtype=np.float32), np.asarray(d["std"], dtype=np.float32))


def task_targets(prepared: Prepared, tasks: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Per task the array it learns from: int64 labels (-1 missing) or float32 values (NaN missing)."""
    out: dict[str, np.ndarray] = {}
    for name, task in tasks.items():
        if task.kind == "classification":
            if len(prepared.classes) < 2:
                raise DataError(
                    f"task '{name}' classifies clips, but {prepared.description} has "
                    f"{len(prepared.classes)} class(es) {list(prepared.classes)}; it needs at least 2 "
                    f"labelled classes (use a data set with labels, or a regression task)"
                )
            out[name] = np.asarray(prepared.labels, dtype=np.int64)
        else:
            if task.target not in prepared.targets:
                have = ", ".join(sorted(prepared.targets)) or "(none)"
                raise DataError(
                    f"task '{name}' regresses '{task.target}', but {prepared.description} has no "
                    f"'{task.target}' values; targets present: {have}; pick a task among them or "
                    f"a data set that has '{task.target}'"
                )
            out[name] = np.asarray(prepared.targets[task.target], dtype=np.float32)
    return out


def memory_budget(device: Any) -> int:
    """Bytes a resident copy of the data may take: half the free GPU memory, or a quarter of RAM."""
    import torch
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4
    except (ValueError, OSError, AttributeError):
        return 2 << 30


@dataclass
class SplitData:
    """One split ready for the model: padded ``x[N, F, T_max]`` (or a host list), lengths, targets.

    ``index`` maps row i back to the clip ``index[i]`` of the Prepared it came from.
    """

    name: str
    index: np.ndarray
    lengths_host: np.ndarray
    lengths: Any
    y: dict[str, Any]
    y_host: dict[str, np.ndarray]
    device: Any
    x: Any = None
    arrays: list[np.ndarray] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def resident(self) -> bool:
        return self.x is not None

    def batch(self, rows: np.ndarray) -> Batch:
        """The batch of rows ``rows``: ``x[B, F, T]`` with T the longest of these clips."""
        import torch
        t = int(self.lengths_host[rows].max())
        ii = torch.as_tensor(rows, dtype=torch.long).to(self.device, non_blocking=True)
        if self.x is not None:
            x = self.x[:, :, :t].index_select(0, ii)
        else:
            host = np.zeros((len(rows), self.arrays[0].shape[0], t), dtype=np.float32)
            for j, r in enumerate(rows):
                a = self.arrays[r]
                host[j, :, : a.shape[1]] = a
            x = torch.from_numpy(host).to(self.device, non_blocking=True)
        return Batch(x, self.lengths.index_select(0, ii), {k: v.index_select(0, ii) for k, v in self.y.items()})


def unscaled_rows(features: Mapping[str, Any]) -> list[slice]:
    """The stacked rows of the features (in stacking order) whose optional ``standardise`` is False.

    Such a feature already has the scale a pretrained model was trained on (the AST's normalised
    filter banks, a raw waveform): standardising it per bin would feed the model other inputs.
    """
    out, row = [], 0
    for feature in features.values():
        if not getattr(feature, "standardise", True):
            out.append(slice(row, row + int(feature.n_bins)))
        row += int(feature.n_bins)
    return out


def make_split(name: str, prepared: Prepared, rows: np.ndarray, targets: Mapping[str, np.ndarray],
               norm: Normaliser, device: Any, budget: int | None = None) -> SplitData:
    """Normalise and pad the clips ``rows`` of ``prepared``; put them on ``device`` if they fit."""
    import torch
    arrays = [norm.apply(prepared.x[i]) for i in rows]
    lengths = np.array([a.shape[1] for a in arrays], dtype=np.int64)
    y_host = {k: v[rows] for k, v in targets.items()}
    y = {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in y_host.items()}
    split = SplitData(name, np.asarray(rows), lengths, torch.from_numpy(lengths).to(device), y, y_host, device)
    if not arrays:
        return split
    F, t_max = arrays[0].shape[0], int(lengths.max())
    need = len(arrays) * F * t_max * 4
    if need <= (memory_budget(device) if budget is None else budget):
        host = np.zeros((len(arrays), F, t_max), dtype=np.float32)
        for j, a in enumerate(arrays):
            host[j, :, : a.shape[1]] = a
        split.x = torch.from_numpy(host).to(device)
    else:
        split.arrays = arrays
    return split


def make_splits(prepared: Prepared, tasks: Mapping[str, Any], norm: Normaliser, device: Any,
                budget: int | None = None) -> dict[str, SplitData]:
    """``{"train", "val", "test": SplitData}``; a missing split is an error naming the fix."""
    targets = task_targets(prepared, tasks)
    out = {}
    for name in SPLITS:
        rows = prepared.indices(name)
        if len(rows) == 0:
            counts = {s: int((prepared.splits == s).sum()) for s in SPLITS}
            raise DataError(
                f"{prepared.description}: the '{name}' split is empty (clips per split: {counts}); "
                f"every run needs train, val and test clips: raise --limit, or give the data set "
                f"more clips or a split column"
            )
        out[name] = make_split(name, prepared, rows, targets, norm, device, budget)
    return out


def random_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                   bucket: bool = False) -> Iterator[np.ndarray]:
    """Row indices of one epoch's batches, every row once.

    Uniformly random by default; with ``bucket``, rows of similar length are batched together
    (less padding) and the batches come in random order. A last batch of a single row is merged
    into the one before (batch norm cannot normalise one sample) rather than dropped.
    """
    n = len(lengths)
    if bucket:
        jitter = rng.random(n)
        order = np.lexsort((jitter, lengths))
    else:
        order = rng.permutation(n)
    chunks = [order[i: i + batch_size] for i in range(0, n, batch_size)]
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        last = chunks.pop()
        chunks[-1] = np.concatenate([chunks[-1], last])
    if bucket:
        chunks = [chunks[i] for i in rng.permutation(len(chunks))]
    return iter(chunks)


def ordered_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Evaluation batches: rows sorted by length (little padding); callers restore the order."""
    order = np.argsort(lengths, kind="stable")
    return [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
