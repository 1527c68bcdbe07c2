"""Patch-grid arithmetic shared by the model and the weight loader (pure Python, no torch)."""
from __future__ import annotations


def n_patches(size: int, patch: int, stride: int) -> int:
    """Patches along an axis of ``size`` rows/frames so that every one of them is covered.

    ``1 + ceil(max(size - patch, 0) / stride)``: the axis is zero-padded up to
    :func:`padded_size` rather than dropping the frames a last, partial stride would leave out.
    E.g. 128 mel bins with 16/10 patches: 13; 100 frames: 10; 12 chroma bins: 1.
    """
    over = max(size - patch, 0)
    return 1 + (over + stride - 1) // stride


def padded_size(count: int, patch: int, stride: int) -> int:
    """Length an axis must have for ``count`` patches of ``patch`` with step ``stride``."""
    return (count - 1) * stride + patch
