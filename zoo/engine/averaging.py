"""An exponential moving average of the weights (``train.ema_epochs``): what validation, the best epoch
and the packaged model use, while the optimiser goes on with the live weights.

On small real sets the live weights' validation score swings from epoch to epoch (0.27-0.75 on
Emotify's genres for the CNN), so the best epoch is picked from noise; the average of the last
epochs' weights is steadier. The average spans about ``ema_epochs`` epochs whatever the number of
steps an epoch holds: its decay per step is ``exp(-1 / (ema_epochs * steps))``, and early steps use
a shorter span (``min(decay, (1 + n) / (10 + n))`` after n updates) so that the random start fades fast.

Example::

    average = WeightAverage(model, epochs=2.0, steps_per_epoch=15)
    ...after every optimiser step:
    average.update(model)
    ...to validate:
    with average.applied(model):
        score = validate(model)
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Iterator


class WeightAverage:
    """A float copy of every floating-point tensor of ``model.state_dict()`` (parameters and batch-norm
    statistics), averaged after each :meth:`update`; integer buffers (batch counts) are copied."""

    def __init__(self, model: Any, *, epochs: float, steps_per_epoch: int) -> None:
        if epochs <= 0 or steps_per_epoch < 1:
            raise ValueError(f"WeightAverage needs epochs > 0 and steps_per_epoch >= 1, got {epochs}, {steps_per_epoch}")
        self.decay = math.exp(-1.0 / (epochs * steps_per_epoch))
        self.updates = 0
        self.state: dict[str, Any] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def update(self, model: Any) -> None:
        """Move the average towards ``model``'s weights now."""
        import torch
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        live = model.state_dict()
        with torch.no_grad():
            for k, v in self.state.items():
                if v.is_floating_point():
                    v.lerp_(live[k].detach(), 1.0 - decay)
                else:
                    v.copy_(live[k])

    @contextlib.contextmanager
    def applied(self, model: Any) -> Iterator[None]:
        """``model`` holds the averaged weights inside the block and its own weights again after it."""
        own = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.state)
        try:
            yield
        finally:
            model.load_state_dict(own)

    def load(self, updates: int, state: dict[str, Any], device: Any) -> None:
        """Take a checkpoint's average back (moved to ``device``)."""
        self.updates = updates
        self.state = {k: v.to(device) for k, v in state.items()}


def averaging(model: Any, epochs: float, steps_per_epoch: int) -> WeightAverage | None:
    """A :class:`WeightAverage` of ``model`` for ``train.ema_epochs`` = ``epochs``; None when it is 0 (off)."""
    return WeightAverage(model, epochs=epochs, steps_per_epoch=steps_per_epoch) if epochs > 0 else None


__all__ = ["WeightAverage", "averaging"]
