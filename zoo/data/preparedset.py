"""The in-memory result of preparing a data set for one composition: what the engine trains on."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Prepared:
    """Features of every usable clip of a data set, stacked for one composition.

    ``x[i]`` is clip i's ``[F, T_i]`` float32 array (features stacked along F). ``splits[i]`` is
    "train", "val" or "test". ``labels[i]`` indexes ``classes`` (-1: the clip has no label);
    ``targets[name][i]`` is a float (NaN: missing). ``skipped`` lists ``(item, reason)`` for every
    clip left out on purpose (``--skip-bad``); nothing else is ever dropped. ``fingerprint`` is a
    hash of the clip ids, labels, targets, splits and array contents / cache keys.
    """

    ids: list[str]
    x: list[np.ndarray]
    splits: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    targets: dict[str, np.ndarray]
    rate: str
    fingerprint: str
    description: str
    skipped: list[tuple[str, str]] = field(default_factory=list)
    feature_slices: dict[str, tuple[int, int]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_bins(self) -> int:
        return int(self.x[0].shape[0]) if self.x else 0

    @property
    def lengths(self) -> np.ndarray:
        return np.array([a.shape[1] for a in self.x], dtype=np.int64)

    def indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.splits == split)

    def subset(self, idx) -> "Prepared":
        """A new Prepared holding only clips ``idx`` (same classes and targets)."""
        idx = np.asarray(idx, dtype=np.int64)
        return Prepared(
            ids=[self.ids[i] for i in idx], x=[self.x[i] for i in idx], splits=self.splits[idx],
            labels=self.labels[idx], classes=self.classes,
            targets={k: v[idx] for k, v in self.targets.items()}, rate=self.rate,
            fingerprint=self.fingerprint, description=self.description, skipped=list(self.skipped),
            feature_slices=dict(self.feature_slices),
        )
