"""Training augmentation: masks stay inside clips, mixup is convex, crops average at test, runs train."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from enginefixtures import TINY_LSTM, separable
from zoo.engine import augment
from zoo.engine.request import RunRequest
from zoo.engine.runner import run
from zoo.engine.trainconfig import TrainConfig, train_config
from zoo.errors import ConfigError, RunError
from zoo.model.model import Batch
from zoo.registry import Registry

FAST = dict(batch_size=16, lr=1e-2, patience=0, warmup=0.0, epochs=3)


@pytest.fixture(scope="module")
def registry():
    return Registry()


def _batch(lengths, F=6, T=None, y=None):
    T = T or max(lengths)
    x = torch.zeros(len(lengths), F, T)
    for i, n in enumerate(lengths):
        x[i, :, :n] = torch.arange(1, n + 1, dtype=torch.float32)  # nonzero inside the clip only
    return Batch(x, torch.tensor(lengths), y or {})


def test_time_masks_fall_within_the_true_length_and_frequency_masks_cover_whole_bands():
    rng = np.random.default_rng(0)
    b = _batch([10, 40, 25], F=8, T=40)
    for _ in range(50):
        m = augment.mask_batch(b, rng, time_masks=2, time_width=8, freq_masks=0, freq_width=0)
        for i, n in enumerate([10, 40, 25]):
            masked = (m.x[i] == 0) & (b.x[i] != 0)
            assert not masked[:, n:].any()                   # nothing beyond the clip changes
            cols = masked.any(0).nonzero().flatten()
            assert len(cols) <= 2 * max(1, n // 5)             # spans at most a fifth of the clip each
            assert torch.equal(masked.any(0), masked.all(0))   # a time mask covers every bin
        f = augment.mask_batch(b, rng, time_masks=0, time_width=0, freq_masks=1, freq_width=3)
        rows = ((f.x == 0) & (b.x != 0)).any(-1)              # [B, F]
        assert (rows.sum(-1) <= 3).all()
    assert torch.equal(m.lengths, b.lengths)


def test_mixup_is_a_convex_combination_of_inputs_and_regression_targets():
    x = torch.randn(5, 4, 7)
    y = {"valence": torch.tensor([0.0, 0.25, 0.5, 0.75, float("nan")])}
    b = Batch(x, torch.tensor([7, 5, 6, 7, 3]), y)
    mixed, partner, lam = augment.mix_batch(b, np.random.default_rng(1), 0.4)
    assert 0.0 <= lam <= 1.0
    # the mix of row i is lam * x_i + (1 - lam) * x_j for the partner j whose target is partner[i]
    for i in range(5):
        j = [k for k in range(5) if torch.allclose(mixed.x[i], lam * x[i] + (1 - lam) * x[k])]
        assert j, f"row {i} is not a convex combination of itself and another row"
    class Reg:
        kind = "regression"
    model = type("M", (), {"tasks": {"valence": Reg()}})()
    a, bb = augment.mixed_targets(model, y, partner, lam)
    expect = lam * y["valence"] + (1 - lam) * partner["valence"]
    keep = ~torch.isnan(expect)
    assert torch.allclose(a["valence"][keep], expect[keep]) and torch.equal(torch.isnan(a["valence"]), ~keep)


def test_mixup_loss_weights_the_two_label_sets_by_lambda():
    class Cls:
        kind = "classification"
    class M:
        tasks = {"genre": Cls()}
        heads = {"genre": None}
        def loss(self, out, y, weights=None):
            per = {"genre": (y["genre"] == 0).float().mean()}
            return per["genre"], per
    y, partner = {"genre": torch.tensor([0, 0])}, {"genre": torch.tensor([1, 1])}
    total, per = augment.mixed_loss(M(), {}, y, partner, 0.3)
    assert float(total) == pytest.approx(0.3) and float(per["genre"]) == pytest.approx(0.3)


def test_crops_are_windows_of_long_clips_and_test_windows_are_averaged():
    rng = np.random.default_rng(2)
    b = _batch([30, 8], F=2, T=30)
    c = augment.crop_batch(b, rng, 10)
    assert c.x.shape == (2, 2, 10) and c.lengths.tolist() == [10, 8]
    first = int(c.x[0, 0, 0]) - 1
    assert torch.equal(c.x[0, 0], torch.arange(first + 1, first + 11, dtype=torch.float32))
    assert torch.equal(c.x[1, :, :8], b.x[1, :, :8])
    assert augment.window_starts(30, 10).tolist() == [0, 5, 10, 15, 20]
    assert augment.window_starts(33, 10).tolist() == [0, 5, 10, 15, 20, 23]
    assert augment.window_starts(8, 10).tolist() == [0]

    class MeanModel(torch.nn.Module):  # outputs each window's mean of its valid frames
        def forward(self, x, lengths):
            mask = torch.arange(x.shape[-1])[None, :] < lengths[:, None]
            return {"v": (x[:, 0] * mask).sum(-1) / lengths}
    out = augment.windowed_forward(MeanModel(), b.x, b.lengths, 10)
    expect0 = np.mean([np.arange(s + 1, s + 11).mean() for s in augment.window_starts(30, 10)])
    assert float(out["v"][0]) == pytest.approx(expect0)
    assert float(out["v"][1]) == pytest.approx(np.arange(1, 9).mean())


def test_class_weights_and_the_balanced_sampler_favour_rare_classes():
    labels = np.array([0] * 30 + [1] * 6 + [2] * 3 + [-1])
    w = augment.class_weights(labels, 4)
    assert w[0] < w[1] < w[2] and w[3] == 1.0
    assert w[:3] @ np.bincount(labels[labels >= 0]) == pytest.approx(39)
    rows = np.concatenate(list(augment.balanced_batches(labels[:-1], 8, np.random.default_rng(0))))
    counts = np.bincount(labels[rows], minlength=3)
    assert len(rows) == 39 and counts[2] > 3 and counts[0] < 30


def test_monitor_names_a_metric_of_the_first_task_or_another_task():
    class T:  # the directions come from the task's declaration, never from a metric's name
        primary_metric, greater_is_better = "accuracy", True
        higher_is_better = {"accuracy": True, "macro_f1": True, "mae": False}
    model = type("M", (), {"heads": {"genre": 0, "valence": 0}, "tasks": {"genre": T(), "valence": T()}})()
    assert augment.monitored(model, "") == ("val.genre.accuracy", True)
    assert augment.monitored(model, "macro_f1") == ("val.genre.macro_f1", True)
    assert augment.monitored(model, "valence.mae") == ("val.valence.mae", False)
    assert augment.monitored(model, "loss") == ("val.loss", False)


def test_new_settings_default_to_todays_training_with_class_weights_and_refuse_bad_values():
    c = TrainConfig()
    assert (c.time_masks, c.freq_masks, c.mixup, c.crop_frames, c.balance, c.monitor) == (0, 0, 0.0, 0, "auto", "")
    with pytest.raises(ConfigError, match="balance"):
        train_config({"balance": "oversample"})
    with pytest.raises((ConfigError, ValueError), match="mixup"):
        train_config({"mixup": "-1"})


@pytest.mark.parametrize("setting", [
    dict(time_masks=2, time_mask_width=4, freq_masks=1, freq_mask_width=2),
    dict(mixup=0.4),
    dict(crop_frames=12),
    dict(balance="weights"),
    dict(balance="sampler"),
    dict(monitor="macro_f1"),
], ids=["masks", "mixup", "crop", "weights", "sampler", "monitor"])
def test_a_run_with_each_setting_trains(tmp_path, registry, setting):
    res = run(RunRequest("lstm+chroma:genre", settings=TINY_LSTM, train=TrainConfig(**FAST, **setting),
                         data=separable(10), out_dir=tmp_path), registry=registry)
    r = res.results[0]
    assert np.isfinite(r.history[-1]["train.loss"]) and len(r.history) == 3
    assert 0.0 <= res.test["genre.accuracy"] <= 1.0
    if "monitor" in setting:
        assert r.val["genre.macro_f1"] == max(h["val.genre.macro_f1"] for h in r.history)


def test_mixup_trains_a_regression_and_label_smoothing_is_a_task_setting(tmp_path, registry):
    res = run(RunRequest("lstm+chroma:genre,valence", settings={**TINY_LSTM, "genre": {"label_smoothing": 0.1}},
                         train=TrainConfig(**FAST, mixup=0.3), data=separable(10), out_dir=tmp_path),
              registry=registry)
    assert np.isfinite(res.history[-1]["train.valence.loss"])


def test_an_unknown_monitor_and_balance_without_classes_are_clear_errors(tmp_path, registry):
    with pytest.raises(RunError, match="train.monitor=f2: task 'genre' does not declare .*macro_f1"):
        run(RunRequest("lstm+chroma:genre", settings=TINY_LSTM, train=TrainConfig(**FAST, monitor="f2"),
                       data=separable(6), out_dir=tmp_path), registry=registry)
    with pytest.raises(RunError, match="no classification task"):
        run(RunRequest("lstm+chroma:valence", settings=TINY_LSTM, train=TrainConfig(**FAST, balance="weights"),
                       data=separable(6), out_dir=tmp_path), registry=registry)


def test_crops_per_clip_draws_every_training_clip_that_many_times_an_epoch(tmp_path, registry, monkeypatch):
    from zoo.engine.batches import SplitData
    seen: list[np.ndarray] = []
    original = SplitData.batches

    def spy(self, row_batches):
        rows = [np.asarray(r) for r in row_batches]
        if self.name == "train":
            seen.extend(rows)
        return original(self, iter(rows))

    monkeypatch.setattr(SplitData, "batches", spy)
    res = run(RunRequest("lstm+chroma:genre", settings=TINY_LSTM,
                         train=TrainConfig(**{**FAST, "epochs": 1}, crop_frames=8, crops_per_clip=3),
                         data=separable(10), out_dir=tmp_path), registry=registry)
    drawn = np.concatenate(seen)
    counts = np.bincount(drawn)
    assert res.ok and len(counts) >= 10 and set(counts.tolist()) == {3}  # every training row, 3 times
    assert all(len(b) <= 16 for b in seen)
    # the balanced sampler draws as many rows an epoch (k per clip), all of them real rows
    seen.clear()
    run(RunRequest("lstm+chroma:genre", settings=TINY_LSTM,
                   train=TrainConfig(**{**FAST, "epochs": 1}, crop_frames=8, crops_per_clip=3, balance="sampler"),
                   data=separable(10), out_dir=tmp_path / "sampler"), registry=registry)
    drawn = np.concatenate(seen)
    assert len(drawn) == counts.sum() and drawn.max() < len(counts)
    with pytest.raises((ConfigError, ValueError), match="crops_per_clip 2: needs crop_frames"):
        TrainConfig(crops_per_clip=2)
    with pytest.raises((ConfigError, ValueError), match="crops_per_clip=-1 must be at least 0"):
        TrainConfig(crop_frames=8, crops_per_clip=-1)


def test_crops_per_clip_auto_gives_long_clips_four_crops_an_epoch():
    from zoo.engine.trainconfig import LONG_CLIP_CROPS, LONG_CLIP_WINDOWS, crops_per_clip
    auto = TrainConfig(crop_frames=128)
    assert auto.crops_per_clip == 0  # the default: auto
    real = np.full(20, 1292)  # 30 s at hop 512
    embedded = np.full(20, 259)  # 6 s
    assert LONG_CLIP_CROPS == 4
    assert crops_per_clip(auto, real) == 4 and crops_per_clip(auto, embedded) == 1
    assert crops_per_clip(auto, np.array([LONG_CLIP_WINDOWS * 128 - 1] * 3)) == 1
    assert crops_per_clip(TrainConfig(crop_frames=128, crops_per_clip=3), embedded) == 3
    assert crops_per_clip(TrainConfig(), real) == 1  # whole clips: no crops to repeat
