"""Seeding every random source a run touches (python, numpy, torch on cpu and cuda)."""
from __future__ import annotations

import random


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy's global state and torch (all devices) with ``seed``.

    Called by the engine at the start of each run, never at import time. Batch order uses its
    own ``numpy.random.default_rng(seed)`` so it does not depend on what else drew numbers.
    """
    import numpy as np
    import torch
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
