"""The figure of a latent map: clips as points in 2-D, coloured by genre (legend) or a target (colorbar)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..figures import pyplot, save




def scatter_map(xy: np.ndarray, path: Path, *, title: str, classes: Sequence[str] = (),
                labels: np.ndarray | None = None, values: np.ndarray | None = None, value_name: str = "",
                axis: str = "dimension") -> Path:
    """Draw ``xy[N, 2]`` into ``path`` (PNG).

    Give ``labels[N]`` (indices into ``classes``, -1: unlabelled, drawn grey) for a categorical
    colouring with a legend, or ``values[N]`` (NaN: missing, drawn grey) for a colorbar.
    ``axis`` names the axes (``PC`` for PCA: "PC 1", "PC 2").
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 6))
    if labels is not None:
        cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
        for i, name in enumerate(classes):
            sel = labels == i
            if sel.any():
                ax.scatter(xy[sel, 0], xy[sel, 1], s=18, color=cmap(i % cmap.N), label=f"{name} ({int(sel.sum())})",
                           alpha=0.85, edgecolors="none")
        rest = labels < 0
        if rest.any():
            ax.scatter(xy[rest, 0], xy[rest, 1], s=12, color="0.75", label=f"no label ({int(rest.sum())})")
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    elif values is not None:
        known = ~np.isnan(values)
        if (~known).any():
            ax.scatter(xy[~known, 0], xy[~known, 1], s=12, color="0.75", label="no value")
            ax.legend(fontsize=8)
        points = ax.scatter(xy[known, 0], xy[known, 1], c=values[known], s=18, cmap="viridis", edgecolors="none")
        fig.colorbar(points, ax=ax, label=value_name)
    else:
        ax.scatter(xy[:, 0], xy[:, 1], s=18)
    ax.set_xlabel(f"{axis} 1")
    ax.set_ylabel(f"{axis} 2")
    ax.set_title(title, fontsize=10)
    return save(fig, path)
