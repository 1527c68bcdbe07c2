"""The ``fbank`` and ``wave`` features: the zoo's contract, and ``fbank`` equal to transformers' ``ASTFeatureExtractor``."""
from __future__ import annotations

import numpy as np
import pytest

transformers = pytest.importorskip("transformers", reason="music-zoo-hf's tests need transformers: pip install -e plugins/zoo-hf")

from hftiny import tone  # noqa: E402
from zoo.errors import ConfigError, DataError  # noqa: E402
from zoo.registry import Registry  # noqa: E402
from zoo.testing import check_feature, fake_lab_array  # noqa: E402

FBANK_TOLERANCE = 1e-5
"""Both call torchaudio's Kaldi fbank on the same samples; only the normalisation's float rounding may differ."""


@pytest.mark.parametrize("name, settings", [("fbank", {}), ("fbank", {"n_mels": "64", "normalize": "false"}),
                                            ("wave", {}), ("wave", {"sr": "24000"})])
def test_the_front_ends_meet_the_feature_contract(name, settings):
    check_feature(Registry().create("feature", name, settings))


@pytest.mark.parametrize("seconds", [0.5, 3.0, 12.0])
def test_fbank_equals_the_ast_feature_extractor_column_for_column(seconds):
    y = tone(seconds, hz=440.0)
    ours = Registry().create("feature", "fbank").from_audio(y, 16000)  # [128, 1 + N // 160]
    theirs = transformers.ASTFeatureExtractor()(y, sampling_rate=16000, return_tensors="np")["input_values"][0]
    assert ours.shape == (128, 1 + y.size // 160) and theirs.shape == (1024, 128)
    t = min(ours.shape[1], 1024)  # the extractor pads or cuts to 1024 frames
    np.testing.assert_allclose(ours[:, :t], theirs[:t].T, atol=FBANK_TOLERANCE, rtol=0)


def test_fbank_resamples_other_rates_and_pads_its_last_columns_as_the_extractor_does():
    fbank = Registry().create("feature", "fbank")
    y = tone(1.0, sr=22050)
    out = fbank.from_audio(y, 22050)
    assert out.shape == (128, 1 + 16000 // 160) and out.dtype == np.float32
    # Kaldi's last whole 25 ms frame ends before 1 + N // hop: the rest is the normalised zero.
    np.testing.assert_allclose(out[:, -2:], (0 + 4.2677393) / (2 * 4.5689974), rtol=1e-6)
    assert fbank.hop_length == 160 and fbank.sample_rate == 16000


def test_wave_is_the_waveform_itself_at_its_rate():
    y = tone(0.25)
    out = Registry().create("feature", "wave").from_audio(y, 16000)
    assert out.shape == (1, y.size) and np.array_equal(out[0], y)
    assert Registry().create("feature", "wave", {"sr": "8000"}).from_audio(y, 16000).shape == (1, y.size // 2)


@pytest.mark.parametrize("name", ["fbank", "wave", "hf-embed"])
def test_the_labs_arrays_cannot_stand_for_these_features(name):
    feature = Registry().create("feature", name)
    assert feature.reads_lab is False
    with pytest.raises(ConfigError, match="cannot be read from the lab's fused arrays.*audio files"):
        feature.from_lab(fake_lab_array())


def test_bad_audio_and_settings_name_the_problem():
    fbank = Registry().create("feature", "fbank")
    with pytest.raises(DataError, match="at least 400 samples"):
        fbank.from_audio(np.zeros(100, np.float32), 16000)
    with pytest.raises(DataError, match="mono waveform"):
        fbank.from_audio(np.zeros((2, 16000), np.float32), 16000)
    with pytest.raises(ConfigError, match=r"feature 'fbank': n_mels=0 must be positive; e.g. --set fbank.n_mels=128"):
        Registry().create("feature", "fbank", {"n_mels": "0"})
