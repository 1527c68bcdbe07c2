"""train.ema_epochs: validation, the best epoch and the packaged model use a moving average of the weights,
spanning about that many epochs, while the optimiser trains the live weights (zoo.engine.averaging)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import zoo
from enginefixtures import separable
from zoo.engine.averaging import WeightAverage, averaging
from zoo.errors import ConfigError


def test_the_decay_spans_the_epochs_whatever_the_steps_an_epoch_holds():
    model = nn.Linear(2, 1)
    assert WeightAverage(model, epochs=2.0, steps_per_epoch=5).decay == pytest.approx(math.exp(-1 / 10))
    assert WeightAverage(model, epochs=2.0, steps_per_epoch=500).decay == pytest.approx(math.exp(-1 / 1000))
    assert averaging(model, 0.0, 10) is None


def test_an_update_moves_the_average_towards_the_live_weights_and_copies_integer_buffers():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    average = WeightAverage(model, epochs=100.0, steps_per_epoch=100)  # decay ~1: the start-up span rules
    start = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model[0].weight.add_(1.0)
    model[1].num_batches_tracked += 3
    average.update(model)
    kept = 2 / 11  # the first update: min(decay, (1 + 1) / (10 + 1))
    want = start["0.weight"] * kept + model.state_dict()["0.weight"] * (1 - kept)
    torch.testing.assert_close(average.state["0.weight"], want)
    assert int(average.state["1.num_batches_tracked"]) == 3


def test_applied_puts_the_live_weights_back_even_when_the_block_fails():
    model = nn.Linear(2, 2)
    average = WeightAverage(model, epochs=1.0, steps_per_epoch=1)
    average.state = {k: torch.zeros_like(v) for k, v in average.state.items()}
    live = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(RuntimeError, match="inside"):
        with average.applied(model):
            assert float(model.weight.abs().sum()) == 0.0
            raise RuntimeError("inside")
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, live[k])


SETTINGS = {"backbone": {"channels": (4, 8), "kernels": (3,)},
            "train": {"batch_size": 4, "lr": 0.01, "patience": 0, "warmup": 0.0, "crop_frames": 0,
                      "mixup": 0.0, "time_masks": 0, "freq_masks": 0, "precision": "fp32"}}


def _train(tmp_path, ema: float, name: str):
    settings = {**SETTINGS, "train": {**SETTINGS["train"], "ema_epochs": ema}}
    res = zoo.train("cnn+chroma:genre", data=separable(8), settings=settings, epochs=3, track=False, progress=False,
                    out_dir=tmp_path / name)
    return res.results[0]


def test_the_optimiser_trains_the_live_weights_and_validation_sees_the_average(tmp_path):
    plain, averaged = _train(tmp_path, 0.0, "plain"), _train(tmp_path, 1.0, "ema")
    assert [h["train.loss"] for h in averaged.history] == [h["train.loss"] for h in plain.history]
    assert [h["val.loss"] for h in averaged.history] != [h["val.loss"] for h in plain.history]
    # an average spanning almost nothing is the live weights: the same run as without one
    instant = _train(tmp_path, 1e-9, "instant")
    assert [h["val.loss"] for h in instant.history] == [h["val.loss"] for h in plain.history]
    assert instant.test == plain.test


def test_a_negative_span_is_refused_with_its_fix():
    from zoo.engine.trainconfig import TrainConfig
    with pytest.raises(ConfigError, match=r"ema_epochs=-1.0 must be at least 0.*--set train.ema_epochs"):
        TrainConfig(ema_epochs=-1.0)
