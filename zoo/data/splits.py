"""Seeded, stratified choice of clips: validation and test splits, and ``--limit`` subsets.

Every choice is a pure function of the clip ids, their strata and the seed: the order clips come
in does not matter, so the same data always splits the same way (and a frame-rate and a
beat-rate view of one data set, which share ids, split identically).
"""
from __future__ import annotations

import math
import zlib
from collections import defaultdict
from typing import Mapping, Sequence

import numpy as np

SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val",
    "test": "test", "testing": "test",
}


def stratum_keys(labels: Sequence[str | None], targets: Sequence[Mapping[str, float]]) -> list[str]:
    """One stratum per clip: its label; else the quartile of the mean of its targets; else ``"-"``.

    Quartiles keep a regression set's val/test spread over the range of the targets.
    """
    means = [float(np.mean(v)) if (v := [x for x in t.values() if math.isfinite(x)]) else math.nan
             for t in targets]
    finite = [m for m in means if math.isfinite(m)]
    edges = np.quantile(finite, [0.25, 0.5, 0.75]) if finite else np.array([])
    keys = []
    for label, m in zip(labels, means):
        if label is not None:
            keys.append(f"label:{label}")
        elif math.isfinite(m):
            keys.append(f"q{int(np.searchsorted(edges, m, side='right'))}")
        else:
            keys.append("-")
    return keys


def _rng(seed: int, *salts: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *(zlib.crc32(s.encode()) for s in salts)]))


def allocate(sizes: Mapping[str, int], total: int) -> dict[str, int]:
    """Split ``total`` over strata proportionally to ``sizes`` (largest remainder, ties by key)."""
    n = sum(sizes.values())
    if n == 0 or total <= 0:
        return {k: 0 for k in sizes}
    total = min(total, n)
    exact = {k: total * s / n for k, s in sizes.items()}
    out = {k: int(math.floor(v)) for k, v in exact.items()}
    order = sorted(sizes, key=lambda k: (-(exact[k] - out[k]), k))
    for k in order[: total - sum(out.values())]:
        out[k] += 1
    return out


def take_stratified(ids: Sequence[str], keys: Sequence[str], *, seed: int, salt: str,
                    fraction: float | None = None, count: int | None = None) -> list[int]:
    """Indices of a seeded sample of ``fraction`` (or exactly ``count``) of the items, spread over
    the strata ``keys`` in proportion to their sizes. Sorted ascending."""
    if (fraction is None) == (count is None):
        raise ValueError("give exactly one of fraction and count")
    groups: dict[str, list[int]] = defaultdict(list)
    for i, k in enumerate(keys):
        groups[k].append(i)
    total = count if count is not None else int(math.floor(fraction * len(ids) + 0.5))
    quota = allocate({k: len(v) for k, v in groups.items()}, total)
    chosen: list[int] = []
    for key, members in groups.items():
        members = sorted(members, key=lambda i: ids[i])
        order = _rng(seed, salt, key).permutation(len(members))
        chosen.extend(members[j] for j in order[: quota[key]])
    return sorted(chosen)


def assign_splits(ids: Sequence[str], keys: Sequence[str], given: Sequence[str | None], *,
                  val_fraction: float, test_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Fill in the splits a data set did not give, stratified by ``keys`` and seeded.

    - no clip is in "test": ``test_fraction`` of the clips without a split (and of those in
      "train") become the test split;
    - clips still without a split go to "train";
    - no clip is in "val": ``val_fraction`` of the training clips become the validation split.

    Returns the splits and one note per split that was made here (for ``describe()``).
    """
    splits = list(given)
    notes = []
    if "test" not in splits:
        pool = [i for i, s in enumerate(splits) if s in (None, "train")]
        picked = take_stratified([ids[i] for i in pool], [keys[i] for i in pool], seed=seed, salt="test",
                                 fraction=test_fraction)
        for j in picked:
            splits[pool[j]] = "test"
        notes.append(f"test = {test_fraction:.0%} of the clips ({len(picked)}), stratified, seed {seed}")
    splits = [s if s is not None else "train" for s in splits]
    if "val" not in splits:
        pool = [i for i, s in enumerate(splits) if s == "train"]
        picked = take_stratified([ids[i] for i in pool], [keys[i] for i in pool], seed=seed, salt="val",
                                 fraction=val_fraction)
        for j in picked:
            splits[pool[j]] = "val"
        notes.append(f"val = {val_fraction:.0%} of the training clips ({len(picked)}), stratified, seed {seed}")
    return splits, notes


def normalise_split(value: str | None) -> str | None:
    """``"training"`` -> ``"train"`` etc.; empty -> None; anything else -> KeyError."""
    if value is None or not str(value).strip():
        return None
    return SPLIT_ALIASES[str(value).strip().lower()]
