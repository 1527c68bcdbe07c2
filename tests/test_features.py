"""The music-zoo-features plugin: registered through entry points, numbers equal to librosa's."""
from __future__ import annotations

import json
import subprocess
import sys

import librosa
import numpy as np
import pytest

from zoo.errors import ConfigError, DataError
from zoo.protocols import Feature
from zoo.registry import Registry

SR = 22050
HOP = 512
NAMES = ("mel", "chroma", "beat", "beat-chroma")
TOLERANCE = {"librosa": (1e-4, 1e-6), "torch": (0.05, 1e-5)}
"""Per backend, how far from librosa's own calls the mel (dB) and chroma values may be: the librosa
backend calls them; the torch backend (the default) recomputes them in float32, the tolerances of
tests/test_torchfeatures.py (measured on these signals: mel within 1e-3 dB down to -80 dB, 0.03 dB
below -100 dB without top_db; chroma within 6e-7)."""


@pytest.fixture(scope="module")
def registry():
    return Registry()


@pytest.fixture(scope="module")
def music() -> np.ndarray:
    """5 s of a C major chord over a noise-burst pulse at 120 bpm: a clear beat and clear pitch classes."""
    rng = np.random.default_rng(7)
    t = np.arange(5 * SR) / SR
    y = 0.08 * sum(np.sin(2 * np.pi * f * t) for f in (261.63, 329.63, 392.0))
    burst = np.hanning(400) * rng.standard_normal(400)
    for start in np.arange(0.25, 5.0, 0.5):
        i = int(start * SR)
        y[i:i + 400] += 0.7 * burst
    return y.astype(np.float32)


def power_mel(y):
    return librosa.feature.melspectrogram(y=y, sr=SR, n_fft=2048, hop_length=HOP, n_mels=128, power=2.0)


def test_every_feature_is_registered_by_the_plugin(registry):
    for name in NAMES:
        info = registry.info("feature", name)
        assert info.distribution == "music-zoo-features"
        feature = registry.create("feature", name)
        assert isinstance(feature, Feature)
        assert feature.name == name and feature.sample_rate == SR and feature.hop_length == HOP
        assert feature.rate == ("beats" if name.startswith("beat") else "frames")
        assert feature.n_bins == (12 if "chroma" in name else 128)


@pytest.mark.parametrize("backend", sorted(TOLERANCE))
def test_mel_is_the_labs_mel(registry, music, backend):
    got = registry.create("feature", "mel", {"backend": backend}).from_audio(music, SR)
    expected = librosa.power_to_db(power_mel(music), ref=np.max)
    assert got.dtype == np.float32 and got.shape == (128, 1 + len(music) // HOP)
    np.testing.assert_allclose(got, expected, atol=TOLERANCE[backend][0])
    assert got.max() == 0.0 and got.min() >= -80.0


@pytest.mark.parametrize("backend", sorted(TOLERANCE))
def test_chroma_is_the_labs_chroma(registry, music, backend):
    got = registry.create("feature", "chroma", {"backend": backend}).from_audio(music, SR)
    expected = librosa.feature.chroma_cqt(y=music, sr=SR, hop_length=HOP)
    assert got.dtype == np.float32 and got.shape == (12, 1 + len(music) // HOP)
    np.testing.assert_allclose(got, expected, atol=TOLERANCE[backend][1])
    # The chord is C-E-G: those pitch classes dominate.
    assert set(np.argsort(got.mean(axis=1))[-3:]) == {0, 4, 7}


@pytest.mark.parametrize("backend", sorted(TOLERANCE))
def test_beat_features_are_medians_between_beats_found_on_the_percussive_part(registry, music, backend):
    _, percussive = librosa.effects.hpss(music)
    _, beats = librosa.beat.beat_track(y=percussive, sr=SR, hop_length=HOP)
    assert len(beats) >= 6, "the test signal should have a clear pulse"
    power = power_mel(music)
    chroma = librosa.feature.chroma_cqt(y=music, sr=SR, hop_length=HOP)
    expected_mel = librosa.power_to_db(librosa.util.sync(power, beats, aggregate=np.median), ref=np.max)
    expected_chroma = librosa.util.sync(chroma, beats, aggregate=np.median)

    mel = registry.create("feature", "beat", {"backend": backend}).from_audio(music, SR)
    chr_ = registry.create("feature", "beat-chroma", {"backend": backend}).from_audio(music, SR)
    # Intervals: from frame 0 to the first beat, between beats, and from the last beat to the end.
    frames = power.shape[1]
    cuts = np.unique(np.concatenate([[0], np.clip(beats, 0, frames), [frames]]))
    assert mel.shape == (128, len(cuts) - 1) and chr_.shape == (12, len(cuts) - 1)
    assert mel.dtype == chr_.dtype == np.float32
    np.testing.assert_allclose(mel, expected_mel, atol=TOLERANCE[backend][0])
    np.testing.assert_allclose(chr_, expected_chroma, atol=TOLERANCE[backend][1])
    assert mel.shape[1] < frames / 5


def test_other_sample_rates_are_resampled(registry, music):
    y44 = librosa.resample(music, orig_sr=SR, target_sr=44100)
    mel = registry.create("feature", "mel")
    got = mel.from_audio(y44, 44100)
    np.testing.assert_allclose(got, mel.from_audio(librosa.resample(y44, orig_sr=44100, target_sr=SR), SR), atol=1e-4)
    assert got.shape == (128, 1 + len(music) // HOP)


def test_from_lab_takes_the_labs_rows(registry):
    fused = np.random.default_rng(0).uniform(-80, 0, size=(140, 57))
    fused[128:] = np.random.default_rng(1).uniform(0, 1, size=(12, 57))
    for name in NAMES:
        got = registry.create("feature", name).from_lab(fused)
        rows = slice(128, 140) if "chroma" in name else slice(0, 128)
        assert got.dtype == np.float32 and got.flags.c_contiguous
        np.testing.assert_array_equal(got, fused[rows].astype(np.float32))
    # min_beats only decides which clips are accepted, so it does not clash with the lab's arrays.
    assert registry.create("feature", "beat", {"min_beats": "4"}).from_lab(fused).shape == (128, 57)


def test_from_lab_refuses_other_shapes_nan_and_settings_the_lab_did_not_use(registry):
    mel = registry.create("feature", "mel")
    with pytest.raises(DataError, match=r"\[140, T\].*\(128, 57\)"):
        mel.from_lab(np.zeros((128, 57)))
    bad = np.zeros((140, 20))
    bad[3, 4] = np.nan
    with pytest.raises(DataError, match="NaN"):
        mel.from_lab(bad)
    with pytest.raises(ConfigError, match="n_mels=64.*n_mels=128"):
        registry.create("feature", "mel", {"n_mels": "64"}).from_lab(np.zeros((140, 20)))
    with pytest.raises(ConfigError, match="hop_length=256"):
        registry.create("feature", "beat-chroma", {"hop_length": "256"}).from_lab(np.zeros((140, 20)))


def test_settings_come_from_the_command_line_and_round_trip(registry, music):
    mel = registry.create("feature", "mel", {"n_mels": "64", "fmax": "8000", "top_db": "none"})
    assert mel.n_bins == 64
    got = mel.from_audio(music, SR)
    expected = librosa.power_to_db(
        librosa.feature.melspectrogram(y=music, sr=SR, n_fft=2048, hop_length=HOP, n_mels=64, fmax=8000.0),
        ref=np.max, top_db=None)
    # Without top_db the quietest bins reach -120 dB, a power 1e-12 of the loudest: below float32's
    # resolution of the sums, so the default (torch) backend is compared down to -100 dB.
    audible = expected > -100.0
    assert audible.sum() > 1000
    np.testing.assert_allclose(got[audible], expected[audible], atol=TOLERANCE["torch"][0])
    for name in NAMES:
        settings = registry.create("feature", name).settings()
        json.dumps(settings)
        again = registry.create("feature", name, settings)
        assert again.settings() == settings


@pytest.mark.parametrize("name,settings,message", [
    ("mel", {"n_mel": "64"}, "did you mean 'n_mels'"),
    ("mel", {"n_mels": "0"}, r"^feature 'mel': n_mels=0 must be positive; e.g. --set mel.n_mels=128$"),
    ("mel", {"fmax": "20000"}, "fmax"),
    ("chroma", {"n_chroma": "5"}, "multiple of n_chroma"),
    ("beat", {"hpss_margin": "0.5"},
     r"^feature 'beat': hpss_margin=0.5 must be at least 1; e.g. --set beat.hpss_margin=1.0$"),
    ("beat-chroma", {"min_beats": "0"},
     r"^feature 'beat-chroma': min_beats=0 must be positive; e.g. --set beat-chroma.min_beats=2$"),
    ("mel", {"fmin": "-1"}, r"^feature 'mel': fmin=-1.0 must be at least 0 \(Hz\); e.g. --set mel.fmin=0.0$"),
    ("chroma", {"fmin": "0"}, r"^feature 'chroma': fmin=0.0 must be positive \(Hz, or None for C1\)$"),
    ("beat-chroma", {"n_chroma": "0"},
     r"^feature 'beat-chroma': n_chroma=0 must be positive; e.g. --set beat-chroma.n_chroma=12$"),
])
def test_bad_settings_fail_when_the_feature_is_built(registry, name, settings, message):
    with pytest.raises(ConfigError, match=message):
        registry.create("feature", name, settings)


@pytest.mark.parametrize("name", NAMES)
def test_bad_waveforms_raise_data_errors(registry, name):
    feature = registry.create("feature", name)
    with pytest.raises(DataError, match="digital silence"):
        feature.from_audio(np.zeros(2 * SR, np.float32), SR)
    y = np.full(2 * SR, 0.1, np.float32)
    y[5] = np.inf
    with pytest.raises(DataError, match="NaN or infinite"):
        feature.from_audio(y, SR)
    with pytest.raises(DataError, match="mono"):
        feature.from_audio(np.ones((2, SR), np.float32), SR)
    with pytest.raises(DataError, match="needs at least"):
        feature.from_audio(np.ones(100, np.float32), SR)


@pytest.mark.parametrize("name", ["beat", "beat-chroma"])
def test_a_clip_without_pulse_has_too_few_beats(registry, name):
    steady = (0.3 * np.sin(2 * np.pi * 220 * np.arange(3 * SR) / SR)).astype(np.float32)
    with pytest.raises(DataError, match=r"found 0 beat\(s\) in 3\.0 s.*min_beats=2"):
        registry.create("feature", name).from_audio(steady, SR)


def test_loading_the_specs_imports_no_librosa():
    code = ("import sys; from zoo.registry import Registry; r = Registry(); "
            "[r.load('feature', n) for n in ('mel', 'chroma', 'beat', 'beat-chroma')]; "
            "print(sorted(m for m in ('librosa', 'torch', 'soundfile') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
