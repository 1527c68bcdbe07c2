"""Pictures of data: clips per class before / after a mapping, and spectrogram / chromagram panels.

matplotlib with the Agg backend (no display needed); every function writes one PNG and returns
its path.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..figures import pyplot, save




def class_histogram(stats, path: Path) -> Path:
    """Bars of clips per genre before the mapping (if any) and per class after it: ``stats`` is a
    :class:`zoo.data.datastats.DataStats`."""
    plt = pyplot()
    panels = ([("before the class mapping", stats.before)] if stats.before is not None else []) + \
             [("after the class mapping" if stats.before is not None else "clips per class", stats.after)]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.8), squeeze=False)
    for ax, (title, counts) in zip(axes[0], panels):
        items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        names = [k for k, _ in items]
        values = [v for _, v in items]
        dropped = stats.dropped or {}
        colours = ["#bbbbbb" if title.startswith("before") and dropped.get(k) == v else "#3b6ea5" for k, v in items]
        ax.bar(range(len(values)), values, color=colours)
        ax.set_xticks(range(len(values)), names, rotation=60, ha="right", fontsize=8)
        ax.set_ylabel("clips")
        ax.set_title(f"{title} ({len(values)} classes, {sum(values)} clips)")
    if stats.before is not None and stats.dropped:
        fig.text(0.01, 0.01, "grey: genres the mapping drops", fontsize=8)
    return save(fig, path)


def spectrogram_panels(panels: Sequence[tuple[str, np.ndarray, str]], path: Path, title: str = "",
                       columns: int = 2) -> Path:
    """One image per ``(title, array[F, T], kind)``, ``columns`` per row. ``kind`` "mel" (dB) or
    "chroma" (0-1, pitch-class axis labelled)."""
    plt = pyplot()
    rows = (len(panels) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(6.2 * columns, 3.4 * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, (name, array, kind) in zip(axes.flat, panels):
        im = ax.imshow(array, origin="lower", aspect="auto", interpolation="nearest",
                       cmap="magma" if kind == "mel" else "viridis")
        ax.set_title(f"{name}  ({array.shape[0]} x {array.shape[1]})", fontsize=9)
        ax.set_xlabel("beat" if "beat" in name else "frame")
        if kind == "chroma" and array.shape[0] == 12:
            ax.set_yticks(range(12), ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"], fontsize=7)
        else:
            ax.set_ylabel("mel band")
        fig.colorbar(im, ax=ax, fraction=0.04, label="dB" if kind == "mel" else "")
    if title:
        fig.suptitle(title, fontsize=10)
    return save(fig, path)
