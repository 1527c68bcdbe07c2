"""The result of preparing a data set for one composition: what the engine trains on.

The arrays are a list in memory, or (data bigger than the memory budget) a
:class:`~zoo.data.pack.PackFile` that reads each clip from the pack on disk when asked.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np


@dataclass
class Prepared:
    """Features of every usable clip of a data set, stacked for one composition.

    ``x[i]`` is clip i's ``[F, T_i]`` float32 array (features stacked along F); ``x`` is a list,
    or a lazy sequence read from disk (``on_disk``) whose ``lengths`` and ``n_bins`` need no read. ``splits[i]`` is
    "train", "val" or "test". ``labels[i]`` indexes ``classes`` (-1: the clip has no label);
    ``targets[name][i]`` is a float (NaN: missing). ``skipped`` lists ``(item, reason)`` for every
    clip left out on purpose (``--skip-bad``); nothing else is ever dropped. ``fingerprint`` is a
    hash of the clip ids, labels, targets, splits and array contents / cache keys.
    """

    ids: list[str]
    x: Sequence[np.ndarray]
    splits: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    targets: dict[str, np.ndarray]
    rate: str
    fingerprint: str
    description: str
    skipped: list[tuple[str, str]] = field(default_factory=list)
    feature_slices: dict[str, tuple[int, int]] = field(default_factory=dict)
    features_from: str = ""
    """Where the features came from, for the run's output: read from a feature pack (which), or
    extracted and why no pack was used ("" for data given in memory)."""

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def on_disk(self) -> bool:
        """Whether ``x`` reads its clips from a pack on disk (data bigger than the memory budget)."""
        return not isinstance(self.x, (list, tuple))

    @property
    def n_bins(self) -> int:
        if self.on_disk:
            return int(self.x.n_bins) if len(self.x) else 0
        return int(self.x[0].shape[0]) if self.x else 0

    @property
    def lengths(self) -> np.ndarray:
        if self.on_disk:
            return np.asarray(self.x.lengths, dtype=np.int64)
        return np.array([a.shape[1] for a in self.x], dtype=np.int64)

    def clips(self, idx) -> Sequence[np.ndarray]:
        """The arrays of clips ``idx``: a list, or a lazy view when ``x`` is on disk (nothing read yet)."""
        idx = np.asarray(idx, dtype=np.int64)
        return self.x.take(idx) if self.on_disk else [self.x[i] for i in idx]

    def indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.splits == split)

    def subset(self, idx) -> "Prepared":
        """A new Prepared holding only clips ``idx`` (same classes and targets)."""
        idx = np.asarray(idx, dtype=np.int64)
        return Prepared(
            ids=[self.ids[i] for i in idx], x=self.clips(idx), splits=self.splits[idx],
            labels=self.labels[idx], classes=self.classes,
            targets={k: v[idx] for k, v in self.targets.items()}, rate=self.rate,
            fingerprint=self.fingerprint, description=self.description, skipped=list(self.skipped),
            feature_slices=dict(self.feature_slices),
        )


_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
          "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def host_budget() -> int:
    """Bytes of data kept in host memory by default: a quarter of RAM (2 GiB where it cannot be
    read). Prepared features bigger than it stay in the pack on disk; on the CPU it is also what a
    resident split may take (:func:`zoo.engine.batches.memory_budget`)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4
    except (ValueError, OSError, AttributeError):
        return 2 << 30


def parse_budget(value: object) -> int | None:
    """``train.memory_budget`` in bytes: None for "auto" or 0 (the default rule); ``"256MB"`` (powers
    of 1000), ``"256MiB"`` (powers of 1024) or a plain number of bytes. ValueError naming the fix."""
    text = str(value).strip().lower().replace(" ", "")
    if text in ("auto", "0", "", "none"):
        return None
    number = text.rstrip("b")
    unit = ""
    while number and number[-1].isalpha():
        unit = number[-1] + unit
        number = number[:-1]
    try:
        size = float(number) * _UNITS[unit]
    except (ValueError, KeyError):
        size = float("nan")
    if not size >= 1 or size != size or size == float("inf"):
        raise ValueError(f"memory_budget {value!r}: give bytes such as 256MB, 2GiB or 500000000, or auto (0) for "
                         f"the default rule (set it with --set train.memory_budget=256MB)")
    return int(size)
