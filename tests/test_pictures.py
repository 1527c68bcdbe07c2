"""Pictures: spectrogram panels in seconds / Hz / pitch classes, training curves on integer epochs with the best marked."""
from __future__ import annotations

import numpy as np

from zoo.data.plots import Panel, spectrogram_panels
from zoo.engine.plots import curves
from zoo.figures import pyplot


def _last_figure_axes(monkeypatch):
    plt = pyplot()
    seen = {}
    monkeypatch.setattr("zoo.data.plots.save", lambda fig, path, **kw: seen.setdefault("fig", fig) and path)
    monkeypatch.setattr("zoo.engine.plots.save", lambda fig, path, **kw: seen.setdefault("fig", fig) and path)
    return seen, plt


def test_spectrogram_panels_have_time_in_seconds_and_hz_and_pitch_classes(tmp_path, monkeypatch):
    seen, _ = _last_figure_axes(monkeypatch)
    mel = np.random.default_rng(0).normal(-40, 10, (128, 431))
    chroma = np.random.default_rng(1).random((12, 431))
    spectrogram_panels([Panel("mel", mel, "mel", sr=22050, hop_length=512),
                        Panel("chroma", chroma, "chroma", sr=22050, hop_length=512)], tmp_path / "p.png")
    ax_mel, ax_chroma = seen["fig"].axes[0], seen["fig"].axes[1]
    assert ax_mel.get_xlabel() == "time (s)" and abs(ax_mel.get_xlim()[1] - 431 * 512 / 22050) < 0.1
    assert "Hz" in ax_mel.get_ylabel() and ax_mel.get_ylim()[1] > 10000  # Hz, not band numbers
    ticks = [t.get_text() for t in ax_chroma.get_yticklabels()]
    assert "C" in ticks and "A" in ticks


def test_curves_use_integer_epochs_points_and_mark_the_best(tmp_path, monkeypatch):
    seen, _ = _last_figure_axes(monkeypatch)
    history = [{"epoch": e, "train.loss": 1 / e, "val.loss": 1 / e + 0.1, "val.genre.accuracy": a}
               for e, a in zip(range(1, 6), (0.2, 0.5, 0.7, 0.6, 0.65))]
    curves(history, tmp_path / "c.png", best_epoch=3, monitor="val.genre.accuracy")
    loss_ax, metric_ax = seen["fig"].axes
    assert all(float(t).is_integer() for t in loss_ax.get_xticks())
    assert any(line.get_marker() == "o" for line in metric_ax.get_lines())
    best = [l for l in metric_ax.get_lines() if l.get_marker() == "*"]
    assert best and list(best[0].get_xdata()) == [3] and list(best[0].get_ydata()) == [0.7]
    assert any("best epoch 3" in t.get_text() for t in metric_ax.get_legend().get_texts())
