"""What is in a data set: clips per class (before and after a class mapping), per split, lengths, targets.

Lengths come from file headers only (a lab array's ``.npy`` header, an audio file's header), so
the statistics of thousands of clips take seconds. A file whose header cannot be read is
listed in :attr:`DataStats.unreadable`, never left out silently.
"""
from __future__ import annotations

import math
import sys
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError
from ..protocols import Dataset, MapsLabels

LAB_SR, LAB_HOP = 22050, 512
"""The lab's analysis rate and hop: an audio clip of ``s`` seconds has about ``1 + s * sr / hop`` frames."""


@dataclass
class DataStats:
    """``before``: per genre before the mapping (None: the layout maps nothing); ``after``: per
    class of the clips at ``rate``; ``by_split``: per split, per class; ``lengths``: ``T`` per lab
    array (frames or beats) or seconds per audio file (``length_unit``)."""

    description: str
    rate: str
    n_clips: int
    after: Counter
    by_split: dict[str, Counter]
    before: Counter | None = None
    dropped: Counter | None = None
    lengths: np.ndarray = field(default_factory=lambda: np.zeros(0))
    length_unit: str = "frames"
    targets: dict[str, tuple[int, float, float, float, float]] = field(default_factory=dict)
    unreadable: list[tuple[str, str]] = field(default_factory=list)


def _length(clip) -> tuple[float, str]:
    if clip.array is not None:
        from .labarray import lab_array_shape

        return float(lab_array_shape(clip.array)[1]), "array"
    from .audio import audio_info

    return float(audio_info(clip.audio).duration), "audio"


def compute_stats(dataset: Dataset, rate: str = "frames", *, progress: bool = True) -> DataStats:
    """Statistics of ``dataset.clips(rate)`` (see :class:`DataStats`)."""
    from tqdm.auto import tqdm

    clips = dataset.clips(rate)
    by_split: dict[str, Counter] = {}
    for c in clips:
        by_split.setdefault(c.split or "none", Counter())[c.label or "(no label)"] += 1
    after = Counter(c.label for c in clips if c.label is not None)
    before = dropped = None
    if isinstance(dataset, MapsLabels):
        r = dataset.mapping_report(rate)
        if r.before != r.after or r.dropped:  # an identity mapping is shown once, not twice
            before, dropped = Counter(r.before), Counter(r.dropped)
    lengths, kinds, unreadable = [], set(), []
    for c in tqdm(clips, desc="lengths", unit="clip", disable=not progress or len(clips) < 200, file=sys.stderr):
        try:
            value, kind = _length(c)
        except DataError as exc:
            unreadable.append((c.id, str(exc)))
            continue
        lengths.append(value)
        kinds.add(kind)
    unit = rate if kinds == {"array"} else "seconds" if kinds == {"audio"} else "mixed"
    targets = {}
    for name in sorted({k for c in clips for k in c.targets}):
        v = np.array([c.targets[name] for c in clips if math.isfinite(c.targets.get(name, math.nan))])
        targets[name] = (len(v), float(v.mean()), float(v.std()), float(v.min()), float(v.max()))
    return DataStats(dataset.describe(), rate, len(clips), after, by_split, before, dropped,
                     np.array(lengths), unit, targets, unreadable)


def format_stats(s: DataStats) -> str:
    """A plain-text report: the class table, split sizes, length and target statistics."""
    lines = [s.description, "", f"{s.n_clips} clips at {s.rate} rate"]
    if s.after or s.before:
        lines.append("")
        if s.before is not None:
            lines.append(f"{'genre (before mapping)':<28}{'clips':>7}")
            for g, n in sorted(s.before.items(), key=lambda kv: (-kv[1], kv[0])):
                gone = " (dropped)" if s.dropped and s.dropped.get(g) == n else ""
                lines.append(f"  {g:<26}{n:>7}{gone}")
            lines.append("")
        order = ("train", "val", "test", "none")
        splits = sorted(s.by_split, key=lambda k: order.index(k) if k in order else len(order))
        lines.append(f"{'class':<28}{'clips':>7}" + "".join(f"{sp:>7}" for sp in splits))
        rows = sorted(s.after.items(), key=lambda kv: (-kv[1], kv[0]))
        unlabelled = sum(c.get("(no label)", 0) for c in s.by_split.values())
        for g, n in rows + ([("(no label)", unlabelled)] if unlabelled else []):
            lines.append(f"  {g:<26}{n:>7}" + "".join(f"{s.by_split[sp].get(g, 0):>7}" for sp in splits))
    lines.append("")
    lines.append("split sizes: " + ", ".join(f"{sp} {sum(c.values())}" for sp, c in s.by_split.items()))
    if len(s.lengths):
        L = s.lengths
        if s.length_unit == "seconds":
            lines.append(f"length (seconds): min {L.min():.2f}, median {np.median(L):.2f}, max {L.max():.2f} "
                         f"(about {1 + L.min() * LAB_SR / LAB_HOP:.0f}-{1 + L.max() * LAB_SR / LAB_HOP:.0f} frames "
                         f"at {LAB_SR} Hz, hop {LAB_HOP})")
        else:
            lines.append(f"length T ({s.length_unit}): min {L.min():.0f}, median {np.median(L):.0f}, "
                         f"mean {L.mean():.1f}, max {L.max():.0f}")
    for name, (n, mean, std, lo, hi) in s.targets.items():
        lines.append(f"target {name}: {n} clips, mean {mean:.3f}, std {std:.3f}, range {lo:.3f}-{hi:.3f}")
    if s.unreadable:
        lines.append(f"{len(s.unreadable)} files could not be read:")
        lines += [f"  {cid}: {why}" for cid, why in s.unreadable[:20]]
        if len(s.unreadable) > 20:
            lines.append(f"  ... and {len(s.unreadable) - 20} more")
    return "\n".join(lines)
