"""Helpers of the plugin's tests (a module of its own: ``conftest`` names clash across the zoo's test folders)."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

HAVE_WHEEL = importlib.util.find_spec("musicnn") is not None
needs_wheel = pytest.mark.skipif(
    not HAVE_WHEEL, reason="the musicnn weights come from its wheel: pip install --no-deps musicnn==0.1.0")


def tone(seconds: float, sr: int = 16000, hz: float = 220.0, seed: int = 0) -> np.ndarray:
    """A harmonic tone with a little seeded noise, float32 mono."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = sum(np.sin(2 * np.pi * hz * k * t) / k for k in range(1, 6)) + 0.05 * rng.standard_normal(t.size)
    return (0.3 * y / np.abs(y).max()).astype(np.float32)
