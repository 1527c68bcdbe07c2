"""Model selection in the loop (zoo.engine.stopping): the best epoch's weights kept and restored, patience
counted, ties and NaN handled, the direction the task declares for the monitored metric followed; and
``fit`` wired to them (validation scores scripted, so the epochs it keeps and stops at are known)."""
from __future__ import annotations

import math

import pytest
import torch

from enginefixtures import separable
from zoo.engine.stopping import BestWeights, EarlyStopping, improves

NAN = float("nan")


def test_a_strictly_better_score_improves_a_tie_or_nan_does_not_and_anything_beats_a_nan_best():
    assert improves(0.6, 0.5, greater=True) and not improves(0.4, 0.5, greater=True)
    assert improves(0.4, 0.5, greater=False) and not improves(0.6, 0.5, greater=False)
    assert not improves(0.5, 0.5, greater=True) and not improves(0.5, 0.5, greater=False)
    assert not improves(NAN, 0.5, greater=True) and not improves(NAN, NAN, greater=False)
    assert improves(0.1, NAN, greater=True) and improves(9.0, NAN, greater=False)


def _offer_all(best: BestWeights, scores, model: torch.nn.Linear) -> list[bool]:
    kept = []
    for epoch, score in enumerate(scores, start=1):
        with torch.no_grad():
            model.weight.fill_(float(epoch))  # the weights say which epoch they are
        kept.append(best.offer(epoch, score, model))
    return kept


@pytest.mark.parametrize("greater, scores, want", [
    (True, [0.5, 0.7, 0.6, 0.7, 0.9, 0.8], 5),
    (False, [0.5, 0.7, 0.3, 0.3, 0.4, 0.35], 3),  # lower is better; the tie at epoch 4 keeps epoch 3
    (True, [NAN, 0.2, NAN, 0.1], 2),  # a NaN first epoch is kept until any number replaces it
])
def test_the_best_epoch_is_kept_in_the_declared_direction_and_its_weights_are_restored(greater, scores, want):
    model = torch.nn.Linear(2, 1)
    best = BestWeights(greater)
    _offer_all(best, scores, model)
    assert best.epoch == want
    assert best.score == scores[want - 1] or (math.isnan(best.score) and math.isnan(scores[want - 1]))
    best.restore(model)
    assert torch.all(model.weight == float(want))


def test_the_kept_weights_are_a_copy_not_the_live_tensors():
    model = torch.nn.Linear(2, 1)
    best = BestWeights(greater=True)
    _offer_all(best, [0.9], model)
    with torch.no_grad():
        model.weight.fill_(-5.0)
    best.restore(model)
    assert torch.all(model.weight == 1.0)


def test_restoring_before_any_epoch_is_an_error():
    with pytest.raises(RuntimeError, match="no epoch was offered"):
        BestWeights(greater=True).restore(torch.nn.Linear(2, 1))


def test_patience_counts_epochs_in_a_row_without_improvement_and_an_improvement_resets_it():
    stop = EarlyStopping(patience=3)
    seen = []
    for improved in (True, False, False, True, False, False, False):
        stop.update(improved)
        seen.append((stop.waited, stop.should_stop))
    assert seen == [(0, False), (1, False), (2, False), (0, False), (1, False), (2, False), (3, True)]


def test_patience_zero_never_stops_and_a_restored_count_goes_on():
    never = EarlyStopping(patience=0)
    for _ in range(50):
        never.update(False)
    assert never.waited == 50 and not never.should_stop
    resumed = EarlyStopping(patience=2, waited=1)
    resumed.update(False)
    assert resumed.should_stop


# -- fit, with the validation scores scripted ---------------------------------------------------
class _MeanPool(torch.nn.Module):
    """A backbone of one linear layer over the time-averaged features."""

    out_dim = 4

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(12, self.out_dim)

    def forward(self, x, lengths):
        from zoo.protocols import BackboneOutput
        return BackboneOutput(self.proj(x.mean(dim=-1)))


def _fit(monkeypatch, scores, **config):
    """``fit`` on a tiny model whose validation reports ``scores`` in turn (as accuracy and as the loss);
    returns (result, the model's weights after each epoch, the weights it holds at the end)."""
    from zoo.engine import train as train_mod
    from zoo.engine.batches import Normaliser, make_splits
    from zoo.engine.device import pick_device
    from zoo.engine.trainconfig import TrainConfig
    from zoo.model.model import build_model
    from zoo.tasks import Classification, ClassificationConfig

    task = Classification("genre", ClassificationConfig())
    prepared = separable(6)
    norm = Normaliser.fit(prepared.clips(prepared.indices("train")))
    splits = make_splits(prepared, {"genre": task}, norm, torch.device("cpu"))
    torch.manual_seed(0)
    model = build_model(_MeanPool(), {"genre": task}, {"genre": task.schema(prepared.classes)})
    script = iter(scores)

    def scripted(model, val, device, config, loss_weights, group):
        score = next(script)
        return {"val.loss": score, "val.genre.accuracy": score}

    monkeypatch.setattr(train_mod, "_validation", scripted)
    per_epoch = []

    def snapshot(epoch, row):
        per_epoch.append({k: v.clone() for k, v in model.state_dict().items()})

    result = train_mod.fit(model, splits["train"], splits["val"],
                           TrainConfig(batch_size=4, threads=1, balance="none", **config),
                           pick_device("cpu", threads=1), progress=False, on_epoch=snapshot)
    return result, per_epoch, model.state_dict()


def _same(a, b) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_fit_stops_after_patience_epochs_and_holds_the_best_epochs_weights(monkeypatch):
    result, per_epoch, final = _fit(monkeypatch, [0.2, 0.5, 0.4, 0.5, 0.3, 0.9], epochs=6, patience=3)
    assert (result.best_epoch, result.best_score, result.stopped_early) == (2, 0.5, True)
    assert len(result.history) == 5  # epochs 3, 4 (a tie) and 5 did not improve on epoch 2
    assert _same(final, per_epoch[1]) and not _same(final, per_epoch[-1])


def test_fit_follows_a_lower_is_better_monitor_and_runs_every_epoch_without_patience(monkeypatch):
    result, per_epoch, final = _fit(monkeypatch, [0.9, 0.4, 0.6, 0.7, 0.8], epochs=5, patience=0, monitor="loss")
    assert (result.monitor, result.best_epoch, result.stopped_early) == ("val.loss", 2, False)
    assert len(result.history) == 5 and _same(final, per_epoch[1])
