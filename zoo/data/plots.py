"""Pictures of data: clips per class before / after a mapping, and spectrogram / chromagram panels.

matplotlib with the Agg backend (no display needed); every function writes one PNG and returns
its path.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Sequence

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


class Panel(NamedTuple):
    """One picture of ``zoo show``: ``array[F, T]`` of ``kind`` "mel" (dB) or "chroma" (0-1).

    ``sr`` and ``hop_length``: the feature's, which put time in seconds on the x axis and Hz on a
    mel panel's y axis (``fmin``/``fmax`` of its filter bank, ``fmax`` None: ``sr / 2``); without
    them (a lab array of unknown settings) the axes count frames and bands. ``beats``: the columns
    are beats, not frames (beat-synced features), so the x axis counts beats.
    """

    title: str
    array: np.ndarray
    kind: str
    sr: int | None = None
    hop_length: int | None = None
    fmin: float = 0.0
    fmax: float | None = None
    beats: bool = False


def spectrogram_panels(panels: Sequence[Panel | tuple], path: Path, title: str = "", columns: int = 2) -> Path:
    """One image per :class:`Panel` (or a tuple of its fields), ``columns`` per row, drawn with
    ``librosa.display.specshow``: time in seconds, mel frequency in Hz, chroma as pitch classes."""
    import librosa.display

    plt = pyplot()
    drawn = [Panel(*p) for p in panels]
    rows = (len(drawn) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(6.2 * columns, 3.4 * rows), squeeze=False)
    for ax in axes.flat[len(drawn):]:
        ax.axis("off")
    for ax, p in zip(axes.flat, drawn):
        known = p.sr is not None and p.hop_length is not None
        if p.kind == "chroma" and p.array.shape[0] == 12:
            y_axis = "chroma"
        elif p.kind == "mel" and p.sr is not None:
            y_axis = "mel"
        else:
            y_axis = None
        x_axis = "time" if known and not p.beats else None
        im = librosa.display.specshow(p.array, ax=ax, x_axis=x_axis, y_axis=y_axis, sr=p.sr or 22050,
                                      hop_length=p.hop_length or 512, fmin=p.fmin or 0.0,
                                      fmax=p.fmax or ((p.sr or 22050) / 2),
                                      cmap="magma" if p.kind == "mel" else "viridis")
        ax.set_title(f"{p.title}  ({p.array.shape[0]} x {p.array.shape[1]})", fontsize=9)
        if x_axis is None:
            from matplotlib.ticker import MaxNLocator
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.tick_params(axis="x", bottom=True, labelbottom=True)
            ax.set_xlabel("beat" if p.beats else "frame")
        else:
            ax.set_xlabel("time (s)")
        if y_axis == "mel":
            ax.set_ylabel("frequency (Hz, mel scale)")
        elif y_axis == "chroma":
            ax.set_ylabel("pitch class")
        else:
            ax.set_ylabel("mel band" if p.kind == "mel" else "bin")
        fig.colorbar(im, ax=ax, fraction=0.04, label="dB" if p.kind == "mel" else "")
    if title:
        fig.suptitle(title, fontsize=10)
    return save(fig, path)
