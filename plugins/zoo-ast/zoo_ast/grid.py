"""Patch-grid arithmetic shared by the model and the weight loader (pure Python, no torch)."""
from __future__ import annotations


def n_patches(size: int, patch: int, stride: int, grid: str = "cover") -> int:
    """Patches along an axis of ``size`` rows/frames.

    ``grid="cover"``: ``1 + ceil(max(size - patch, 0) / stride)``, so that every row is covered:
    the axis is zero-padded up to :func:`padded_size` rather than dropping the frames a last,
    partial stride would leave out. E.g. 128 mel bins with 16/10 patches: 13; 100 frames: 10;
    12 chroma bins: 1. ``grid="floor"``: ``1 + max(size - patch, 0) // stride``, whole patches
    only, as the original AST (and its pretrained position tables): 128 bins give 12, 1024
    frames 101; an axis shorter than one patch is still padded to one.
    """
    over = max(size - patch, 0)
    if grid == "floor":
        return 1 + over // stride
    return 1 + (over + stride - 1) // stride


def padded_size(count: int, patch: int, stride: int) -> int:
    """Length an axis must have for ``count`` patches of ``patch`` with step ``stride``."""
    return (count - 1) * stride + patch
