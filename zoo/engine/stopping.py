"""Model selection in the loop: which epoch is best (:class:`BestWeights`) and when to stop (:class:`EarlyStopping`).

Both follow one monitored validation value whose direction the task declares
(:func:`zoo.engine.augment.monitored`); each owns its state, which the loop's checkpoint saves and
restores, so a resumed run selects and stops exactly as an uninterrupted one.

Example::

    best, stop = BestWeights(greater=True), EarlyStopping(patience=8)
    for epoch in range(1, epochs + 1):
        ...
        stop.update(best.offer(epoch, score, model))
        if stop.should_stop:
            break
    best.restore(model)
"""
from __future__ import annotations

import math
from typing import Any


def improves(score: float, best: float, greater: bool) -> bool:
    """Whether ``score`` is strictly better than ``best``: a tie is not (the earlier epoch stays best), NaN
    never is, and anything else beats a NaN best."""
    if math.isnan(score):
        return False
    if math.isnan(best):
        return True
    return score > best if greater else score < best


class BestWeights:
    """The best epoch so far: its number, its score and a copy of the model's weights, kept in memory.

    ``greater``: whether a higher monitored value is better. The first epoch offered is always kept
    (even with a NaN score), so :meth:`restore` always has weights to put back.
    """

    def __init__(self, greater: bool) -> None:
        self.greater = greater
        self.epoch = 0
        self.score = float("nan")
        self.state: dict[str, Any] | None = None

    def offer(self, epoch: int, score: float, model: Any) -> bool:
        """Keep ``model``'s weights when ``score`` improves on the best (or nothing is kept yet); returns
        whether they were kept."""
        if self.state is not None and not improves(score, self.score, self.greater):
            return False
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.epoch, self.score = epoch, score
        return True

    def restore(self, model: Any) -> None:
        """Put the best epoch's weights back into ``model``."""
        if self.state is None:
            raise RuntimeError("no epoch was offered: there are no best weights to restore")
        model.load_state_dict(self.state)

    def load(self, epoch: int, score: float, state: dict[str, Any], device: Any) -> None:
        """Take a checkpoint's best epoch back (its weights moved to ``device``)."""
        self.epoch, self.score = epoch, score
        self.state = {k: v.to(device) for k, v in state.items()}


class EarlyStopping:
    """Stop after ``patience`` epochs in a row without an improvement (0: never).

    ``waited`` counts those epochs; :meth:`update` takes whether the epoch improved.
    """

    def __init__(self, patience: int, waited: int = 0) -> None:
        self.patience = patience
        self.waited = waited

    def update(self, improved: bool) -> None:
        self.waited = 0 if improved else self.waited + 1

    @property
    def should_stop(self) -> bool:
        return bool(self.patience) and self.waited >= self.patience


__all__ = ["BestWeights", "EarlyStopping", "improves"]
