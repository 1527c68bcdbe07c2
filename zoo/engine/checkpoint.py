"""The training checkpoint a killed run resumes from: one file per seed, rewritten atomically every epoch.

Where it lives: ``<run folder>/seed<N>/checkpoint.pt`` (the run folder is the run's ``zoo.folder``
tag). It holds everything the loop needs to go on as if it had never stopped: the model, optimiser,
scheduler and loss-scaler states, the RNG states (python, numpy, torch, CUDA, and the loop's own
batch-order generator), the epochs done with their history rows, the best score, its epoch and
weights, and the early-stopping counter. It is written with :func:`zoo.fsio.atomic_file`, so a kill
in the middle of a write leaves the previous epoch's checkpoint whole. Nothing of it goes to the
tracker (it is as big as the model twice, plus the optimiser's moments); the runner removes it once
the seed's model is packaged and its result recorded.

It is read back as data only (``torch.load(weights_only=True)``): tensors, numbers, strings, lists,
tuples and dicts, nothing that names a function to call. A tampered file runs nothing; it is refused with
the file and the fix. So the state is saved in those terms: numpy arrays and scalars become lists and
python numbers (:func:`plain`), and :func:`set_rng_states` turns them back.
"""
from __future__ import annotations

import random
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RunError
from ..fsio import atomic_file, read_torch, shown

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT = 2
"""Bumped when the checkpoint's keys change; an older file is refused with the reason."""


def rng_states() -> dict[str, Any]:
    """The global random states a training step draws from: python, numpy, torch (and CUDA when used)."""
    import torch
    name, key, pos, has_gauss, cached = np.random.get_state()
    states = {"python": random.getstate(), "numpy": (name, key.tolist(), pos, has_gauss, cached),
              "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Put back what :func:`rng_states` captured."""
    import torch
    random.setstate(states["python"])
    name, key, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, np.asarray(key, dtype=np.uint32), int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def plain(value: Any) -> Any:
    """``value`` with every numpy array and scalar made a python list or number, so that a data-only
    ``torch.load`` reads it back; tensors, containers and python values are kept as they are."""
    if isinstance(value, dict):
        return (OrderedDict if isinstance(value, OrderedDict) else dict)((k, plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return (list if isinstance(value, list) else tuple)(plain(v) for v in value)
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    return value


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
            torch.save(plain({"format": FORMAT, **state}), fh)
        return self.path

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None when there is none (training starts from epoch 1)."""
        if not self.exists():
            return None
        state = read_torch(self.path, "the training checkpoint", "delete it to train this seed again from epoch 1",
                           RunError)
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            found = state.get("format") if isinstance(state, dict) else type(state).__name__
            raise RunError(f"the training checkpoint {shown(self.path)} has format {found!r} "
                           f"(this zoo reads {FORMAT}); delete it to train this seed again from epoch 1")
        return state

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

