"""Choose the clips a run uses: check them, keep the usable ones, fill in splits, apply ``--limit``.

Every clip left out here is either counted in the description (no label or target the tasks
read) or listed as skipped (its file is missing and ``skip_bad`` is on); the rest is an error.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..errors import DataError
from ..protocols import Clip
from .splits import SPLITS, allocate, assign_splits, stratum_keys, take_stratified

VAL_FRACTION = 0.15
TEST_FRACTION = 0.2
"""Used only for a data set that gives no split (the built-in layouts always give one)."""


@dataclass
class Selection:
    """The chosen clips, their splits, and what was left out or made up along the way."""

    clips: list[Clip]
    splits: list[str]
    notes: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def source(clip: Clip) -> Path:
    """The file a clip's data comes from."""
    return Path(clip.audio if clip.audio is not None else clip.array)


def check_clips(clips: Sequence[Clip], where: str) -> None:
    """Ids unique, exactly one of audio / array, known split: else a DataError naming the clip."""
    seen: set[str] = set()
    for c in clips:
        if c.id in seen:
            raise DataError(f"{where}: clip id {c.id!r} appears twice; a data set's ids must be unique")
        seen.add(c.id)
        if (c.audio is None) == (c.array is None):
            raise DataError(f"{where}: clip {c.id!r} must have exactly one of audio (a file to decode) and "
                            f"array (a lab .npy); it has {'both' if c.audio is not None else 'neither'}")
        if c.split is not None and c.split not in SPLITS:
            raise DataError(f"{where}: clip {c.id!r} has split {c.split!r}; use one of {', '.join(SPLITS)} or None")


def task_needs(tasks: Iterable[Any]) -> tuple[str, ...]:
    """What ``tasks`` read from each clip, as ``need``: "label" and/or target names; a multi-label
    task its columns (each also with the ``tag:`` prefix), or ``tag:*`` when it names none."""
    from ..tasks import TAG_PREFIX
    out: list[str] = []
    for t in tasks:
        if t.kind == "multilabel":
            columns = tuple(t.columns)
            out += [*columns, *(TAG_PREFIX + c for c in columns)] if columns else [TAG_PREFIX + "*"]
        else:
            out.append(t.target)
    return tuple(dict.fromkeys(out))


def usable(clip: Clip, need: Sequence[str]) -> bool:
    """Whether ``clip`` has at least one of the labels / targets in ``need`` (all clips if empty);
    a name ending in ``*`` stands for every target that starts with what comes before it (``tag:*``)."""
    if not need:
        return True
    if "label" in need and clip.label is not None:
        return True
    if any(math.isfinite(clip.targets.get(n, math.nan)) for n in need if n != "label"):
        return True
    stems = [n[:-1] for n in need if n.endswith("*")]
    return bool(stems) and any(k.startswith(tuple(stems)) and math.isfinite(v) for k, v in clip.targets.items())


def _limit(ids: list[str], keys: list[str], splits: list[str], limit: int, seed: int) -> list[int]:
    """Indices of at most ``limit`` clips: per split in proportion to its size, stratified within."""
    by_split = {s: [i for i, x in enumerate(splits) if x == s] for s in SPLITS}
    sizes = {s: len(v) for s, v in by_split.items() if v}
    quota = allocate(sizes, limit)
    if limit >= len(sizes):  # every split keeps at least one clip, so val and test stay usable
        for s in sizes:
            if quota[s] == 0:
                donor = max(quota, key=lambda k: quota[k])
                quota[donor] -= 1
                quota[s] = 1
    chosen: list[int] = []
    for s, members in by_split.items():
        if not members:
            continue
        picked = take_stratified([ids[i] for i in members], [keys[i] for i in members], seed=seed,
                                 salt=f"limit:{s}", count=quota[s])
        chosen.extend(members[j] for j in picked)
    return sorted(chosen)


def select(clips: Sequence[Clip], *, where: str, need: Sequence[str] = (), limit: int | None = None,
           seed: int = 0, skip_bad: bool = False) -> Selection:
    """The clips to prepare, in data-set order, with their splits. See the module docstring."""
    check_clips(clips, where)
    kept = [c for c in clips if usable(c, need)]
    notes = []
    if len(kept) < len(clips):
        notes.append(f"{len(clips) - len(kept)} of {len(clips)} clips have none of {', '.join(need)} and are not used")
    if not kept:
        raise DataError(f"none of the {len(clips)} clips of {where} has {' or '.join(need)}, which the tasks read; "
                        f"choose tasks this data set labels, or another data set")
    ids = [c.id for c in kept]
    keys = stratum_keys([c.label for c in kept], [c.targets for c in kept])
    splits, made = assign_splits(ids, keys, [c.split for c in kept], val_fraction=VAL_FRACTION,
                                 test_fraction=TEST_FRACTION, seed=seed)
    notes += made
    if limit is not None:
        if limit < 1:
            raise DataError(f"--limit {limit}: give a positive number of clips")
        if limit < len(kept):
            idx = _limit(ids, keys, splits, limit, seed)
            kept, splits = [kept[i] for i in idx], [splits[i] for i in idx]
        if limit <= len(kept):  # also when the data set read only those clips (the embedded set's --limit)
            notes.append(f"limited to {len(kept)} clips (stratified, seed {seed})")
    from .audio import not_a_file
    what = {i: not_a_file(source(c)) for i, c in enumerate(kept) if not source(c).is_file()}
    missing = list(what)
    skipped = []
    if missing:
        if not skip_bad:
            gone = [i for i in missing if what[i] == "missing"]
            odd = [i for i in missing if what[i] != "missing"]
            parts = []
            if gone:
                parts.append(f"{len(gone)} missing: " + ", ".join(str(source(kept[i])) for i in gone[:5])
                             + (f" and {len(gone) - 5} more" if len(gone) > 5 else ""))
            if odd:
                parts.append(f"{len(odd)} not a regular file: " + ", ".join(
                    f"{source(kept[i])} ({what[i]})" for i in odd[:5]) + (f" and {len(odd) - 5} more" if len(odd) > 5
                                                                          else ""))
            raise DataError(f"{len(missing)} files listed by {where} cannot be read as audio ({'; '.join(parts)}); "
                            f"restore them, or run with --skip-bad to leave those clips out (they are then listed)")
        skipped = [(kept[i].id, f"{source(kept[i])}: " + ("file missing" if what[i] == "missing" else what[i]))
                   for i in missing]
        gone = set(missing)
        kept = [c for i, c in enumerate(kept) if i not in gone]
        splits = [s for i, s in enumerate(splits) if i not in gone]
    return Selection(kept, splits, notes, skipped)
