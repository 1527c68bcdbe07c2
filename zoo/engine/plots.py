"""The run's figures as PNG files: training curves, confusion matrix, per-tag scores, predicted-vs-true scatter."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..figures import pyplot, save




def curves(history: Sequence[dict[str, float]], path: Path, *, title: str = "", best_epoch: int | None = None,
           monitor: str = "") -> Path:
    """Loss per epoch (train and val) and every validation metric per epoch, side by side.

    Each epoch is a point on an integer epoch axis; ``best_epoch`` (the epoch whose weights were
    kept, chosen on ``monitor``) is marked on both panels by a dotted line and, on ``monitor``'s
    curve, a star."""
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    epochs = [int(r["epoch"]) for r in history]
    # val.TASK.METRIC only: a multi-label task's per-tag curves (val.tags.calm.roc_auc) would bury the rest
    metric_keys = sorted({k for r in history for k in r if k.startswith("val.") and k != "val.loss"
                          and not k.endswith(".loss") and k.count(".") == 2})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for key, style in (("train.loss", "o-"), ("val.loss", "s--")):
        values = [r.get(key, np.nan) for r in history]
        if not np.all(np.isnan(values)):
            axes[0].plot(epochs, values, style, ms=4, label=key)
    axes[0].set_ylabel("loss")
    axes[0].set_title("loss")
    for key in metric_keys:
        values = [r.get(key, np.nan) for r in history]
        axes[1].plot(epochs, values, "o-", ms=4, label=key[4:])
        if key == monitor and best_epoch in epochs:
            axes[1].plot([best_epoch], [values[epochs.index(best_epoch)]], "*", ms=14, color="crimson", zorder=5)
    axes[1].set_title("validation metrics")
    if best_epoch is not None and best_epoch in epochs:
        for ax in axes:
            ax.axvline(best_epoch, color="crimson", ls=":", lw=1.2,
                       label=f"best epoch {best_epoch}" + (f" ({monitor})" if monitor else ""))
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return save(fig, path, dpi=100)


def confusion(matrix: np.ndarray, classes: Sequence[str], path: Path, *, title: str = "") -> Path:
    """A confusion matrix (rows: true class, columns: predicted), counts and row-normalised colour."""
    plt = pyplot()
    n = len(classes)
    size = max(4.0, 0.55 * n + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros_like(matrix, dtype=float), where=rows > 0)
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    support = matrix.sum(axis=1).astype(int)
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    # Each row says how many test clips it counts; a class with none is marked, not left as a blank row.
    ax.set_yticks(range(n), [f"{c} (n={k})" if k else f"{c} (no test clips)" for c, k in zip(classes, support)])
    for i in np.flatnonzero(support == 0):
        from matplotlib.patches import Rectangle
        ax.add_patch(Rectangle((-0.5, i - 0.5), n, 1, fill=False, hatch="//", edgecolor="0.6", lw=0))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (test clips)")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=8,
                    color="white" if share[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class")
    ax.set_title(title or "confusion matrix")
    return save(fig, path, dpi=100)


def scatter(pred: np.ndarray, true: np.ndarray, path: Path, *, title: str = "", label: str = "value") -> Path:
    """Predicted against true values with the identity line."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(true, pred, s=10, alpha=0.6)
    lo = float(np.nanmin([np.nanmin(true), np.nanmin(pred)])) if len(true) else 0.0
    hi = float(np.nanmax([np.nanmax(true), np.nanmax(pred)])) if len(true) else 1.0
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="prediction = truth")
    ax.set_xlabel(f"true {label}")
    ax.set_ylabel(f"predicted {label}")
    ax.legend(loc="upper left")
    ax.set_title(title or label, fontsize=10)
    return save(fig, path, dpi=100)


def tag_scores(rows: Sequence[dict], path: Path, *, title: str = "") -> Path:
    """Per tag, its ROC-AUC and PR-AUC as bars beside each other, with each tag's chance level of
    PR-AUC (its share of positives) marked; a tag with one class only has no bars."""
    plt = pyplot()
    n = len(rows)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * n + 2) + 2.5, 4))
    at = np.arange(n)
    roc = [r["roc_auc"] if r["roc_auc"] is not None else np.nan for r in rows]
    ap = [r["pr_auc"] if r["pr_auc"] is not None else np.nan for r in rows]
    share = [r["positives"] / r["clips"] if r["clips"] else np.nan for r in rows]
    ax.bar(at - 0.2, roc, 0.4, label="ROC-AUC (chance 0.5)")
    ax.bar(at + 0.2, ap, 0.4, label="PR-AUC")
    ax.plot(at + 0.2, share, "k_", ms=14, mew=2, label="PR-AUC chance (share of positives)")
    for i, r in enumerate(rows):
        if r["roc_auc"] is None:
            ax.text(i, 0.05, "one class:\nnot scored", ha="center", fontsize=7, color="grey")
    ax.axhline(0.5, color="grey", ls=":", lw=1)
    ax.set_xticks(at, [r["tag"] for r in rows], rotation=45, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("score")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars, never over them
    ax.set_title(title or "per-tag scores", fontsize=10)
    return save(fig, path, dpi=100)
