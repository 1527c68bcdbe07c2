"""Shared plumbing of every PNG the zoo draws: a display-free pyplot and one way to save a figure."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend: figures go to files and never need a display."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save(fig: Any, path: str | Path, *, dpi: int = 110) -> Path:
    """Lay out ``fig``, write it to ``path`` atomically (folders made as needed; a failed write is a
    :class:`~zoo.errors.StorageError`), close it, return the path."""
    from .fsio import atomic_file
    path = Path(path)
    try:
        fig.tight_layout()
        with atomic_file(path, "the figure") as f:
            fig.savefig(f, dpi=dpi, format=path.suffix.lstrip(".").lower() or "png")
    finally:
        pyplot().close(fig)
    return path
