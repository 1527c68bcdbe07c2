"""The training checkpoint a killed run resumes from: one file per seed, rewritten atomically every epoch.

Where it lives: ``<run folder>/seed<N>/checkpoint.pt`` (the run folder is the run's ``zoo.folder``
tag). It holds everything the loop needs to go on as if it had never stopped: the model, optimiser,
scheduler and loss-scaler states, the RNG states (python, numpy, torch, CUDA, and the loop's own
batch-order generator), the epochs done with their history rows, the best score, its epoch and
weights, and the early-stopping counter. It is written with :func:`zoo.fsio.atomic_file`, so a kill
in the middle of a write leaves the previous epoch's checkpoint whole. Nothing of it goes to the
tracker (it is as big as the model twice, plus the optimiser's moments); the runner removes it once
the seed's model is packaged and its result recorded.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RunError
from ..fsio import atomic_file

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT = 1
"""Bumped when the checkpoint's keys change; an older file is refused with the reason."""


def rng_states() -> dict[str, Any]:
    """The global random states a training step draws from: python, numpy, torch (and CUDA when used)."""
    import torch
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Put back what :func:`rng_states` captured."""
    import torch
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class Checkpoint:
    """The checkpoint file of one seed's training, in ``folder`` (``<run folder>/seed<N>``)."""

    def __init__(self, folder: Path | str):
        self.path = Path(folder) / CHECKPOINT_FILE

    def exists(self) -> bool:
        return self.path.is_file()

    def save(self, state: dict[str, Any]) -> Path:
        """Write ``state`` (the loop's, see :func:`zoo.engine.train.fit`) atomically over the last one."""
        import torch
        with atomic_file(self.path, "the training checkpoint") as fh:
            torch.save({"format": FORMAT, **state}, fh)
        return self.path

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None when there is none (training starts from epoch 1)."""
        import torch
        if not self.exists():
            return None
        try:
            # weights_only=False: the RNG states are python tuples and numpy arrays. The file is the
            # zoo's own, in the run's folder, written by this code.
            state = torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception as exc:
            raise RunError(f"the training checkpoint {self.path} cannot be read ({type(exc).__name__}: {exc}); "
                           f"delete it to train this seed again from epoch 1") from exc
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise RunError(f"the training checkpoint {self.path} has format {state.get('format')!r} "
                           f"(this zoo reads {FORMAT}); delete it to train this seed again from epoch 1")
        return state

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
