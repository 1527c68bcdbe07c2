"""The deterministic audio the equality tests and ``make_reference.py`` share (numpy only: it runs in both environments)."""
from __future__ import annotations

import numpy as np

SR = 16000
SECONDS = 12.0


def music(seconds: float = SECONDS, sr: int = SR, seed: int = 0) -> np.ndarray:
    """A seeded melody of harmonic notes (a pluck-like decay, changing every 0.25 s) over a bass and some noise: ``float32 [N]``.

    Peaks near 0.5, roughly a mastered recording's level, with enough spectral variety that the
    taggers' outputs differ between windows.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    y = np.zeros(n)
    step = int(0.25 * sr)
    for start in range(0, n, step):
        f0 = 110.0 * 2 ** (rng.integers(0, 36) / 12)
        seg = t[: min(step, n - start)]
        env = np.exp(-seg * rng.uniform(3, 12))
        note = sum(np.sin(2 * np.pi * f0 * k * seg + rng.uniform(0, 2 * np.pi)) / k ** rng.uniform(1, 2) for k in range(1, 8))
        y[start:start + seg.size] += env * note
    y += 0.4 * np.sin(2 * np.pi * 55.0 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.5 * t))
    y += 0.05 * rng.standard_normal(n)
    return (0.5 * y / np.abs(y).max()).astype(np.float32)
