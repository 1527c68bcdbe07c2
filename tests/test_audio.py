"""zoo.data.audio: decoding every supported format, mono/resampling as librosa.load, bad files."""
from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from zoo.data.audio import AUDIO_EXTENSIONS, audio_info, is_audio, load_audio
from zoo.errors import ConfigError, DataError

SR = 22050
# (file ending, libsndfile format, subtype, lossless)
FORMATS = [
    ("wav", "WAV", "PCM_16", True),
    ("flac", "FLAC", "PCM_16", True),
    ("aiff", "AIFF", "PCM_16", True),
    ("ogg", "OGG", "VORBIS", False),
    ("mp3", "MP3", "MPEG_LAYER_III", False),
]


def tone(seconds: float, sr: int = SR, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.2 * np.sin(2 * np.pi * 1.5 * t))).astype(np.float32)


def write(path, y, sr=SR, **kw):
    sf.write(str(path), y, sr, **kw)
    return path


def peak_hz(y: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.fft.rfftfreq(len(y), 1 / sr)[spectrum.argmax()])


def test_this_machine_has_the_formats_the_zoo_lists():
    available = sf.available_formats()
    for fmt in ("WAV", "FLAC", "OGG", "MP3", "AIFF"):
        assert fmt in available, f"libsndfile {sf.__libsndfile_version__} lacks {fmt}"
    assert {f".{ext}" for ext, *_ in FORMATS} <= set(AUDIO_EXTENSIONS)


@pytest.mark.parametrize("ext,fmt,subtype,lossless", FORMATS, ids=[f[0] for f in FORMATS])
def test_round_trip(tmp_path, ext, fmt, subtype, lossless):
    y = tone(2.0)
    path = write(tmp_path / f"clip.{ext}", y, format=fmt, subtype=subtype)
    assert is_audio(path)
    out = load_audio(path)
    assert out.dtype == np.float32 and out.ndim == 1
    info = audio_info(path)
    assert info.sample_rate == SR and info.channels == 1 and info.format == fmt
    assert abs(info.duration - 2.0) < 0.1
    if lossless:
        assert len(out) == len(y)
        np.testing.assert_allclose(out, y, atol=1e-4)  # 16-bit quantisation
    else:
        # Lossy codecs add encoder delay and padding: compare length, pitch and level instead.
        assert abs(len(out) - len(y)) < 0.1 * SR
        assert abs(peak_hz(out, SR) - 440.0) < 2.0
        assert abs(np.sqrt(np.mean(out ** 2)) / np.sqrt(np.mean(y ** 2)) - 1) < 0.1


def test_stereo_44k_is_mixed_down_and_resampled_like_librosa_load(tmp_path):
    import librosa

    left, right = tone(1.5, 44100, 330.0), tone(1.5, 44100, 550.0)
    path = write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 44100, subtype="FLOAT")
    out = load_audio(path)
    expected, _ = librosa.load(path, sr=SR)
    assert out.shape == expected.shape == (int(1.5 * SR),)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    native = load_audio(path, sr=None)
    np.testing.assert_allclose(native, (left + right) / 2, atol=1e-6)


def test_offset_and_duration_select_a_part(tmp_path):
    y = tone(3.0)
    path = write(tmp_path / "a.wav", y, subtype="FLOAT")
    part = load_audio(path, offset=0.5, duration=1.25)
    np.testing.assert_array_equal(part, y[int(0.5 * SR):int(0.5 * SR) + int(1.25 * SR)])
    with pytest.raises(DataError, match="past its end"):
        load_audio(path, offset=5.0)
    with pytest.raises(ConfigError, match="offset"):
        load_audio(path, offset=-1.0)


def test_min_seconds_is_the_callers_choice(tmp_path):
    path = write(tmp_path / "short.wav", tone(0.3))
    assert len(load_audio(path, min_seconds=0.25)) == int(0.3 * SR)


def _truncated_wav(tmp_path):
    path = write(tmp_path / "cut.wav", tone(2.0))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _truncated_flac(tmp_path):
    path = write(tmp_path / "cut.flac", tone(2.0))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _truncated_mp3(tmp_path):
    path = write(tmp_path / "cut.mp3", tone(4.0), format="MP3", subtype="MPEG_LAYER_III")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _header_only_wav(tmp_path):
    path = write(tmp_path / "head.wav", tone(2.0))
    path.write_bytes(path.read_bytes()[:30])
    return path


def _random_mp3(tmp_path):
    path = tmp_path / "noise.mp3"
    path.write_bytes(np.random.default_rng(0).bytes(4000))
    return path


def _nan_wav(tmp_path):
    y = tone(2.0)
    y[1000:1010] = np.nan
    return write(tmp_path / "nan.wav", y, subtype="FLOAT")


BAD = {
    "missing": (lambda d: d / "absent.wav", "does not exist"),
    "empty": (lambda d: (d / "empty.ogg").write_bytes(b"") or d / "empty.ogg", "empty"),
    "folder": (lambda d: (d / "dir.wav").mkdir() or d / "dir.wav", "not a regular file"),
    "truncated-wav": (_truncated_wav, "truncated"),
    "truncated-flac": (_truncated_flac, "cannot be decoded"),
    "truncated-mp3": (_truncated_mp3, "truncated"),
    "header-only-wav": (_header_only_wav, "cannot be decoded"),
    "random-bytes-mp3": (_random_mp3, "cannot be decoded"),
    "short": (lambda d: write(d / "short.wav", tone(0.3)), r"is 0\.30 s long; the zoo needs at least 1\.00 s"),
    "silence": (lambda d: write(d / "quiet.flac", np.zeros(2 * SR, np.float32)), "digital silence"),
    "nan": (_nan_wav, "NaN"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_files_raise_a_data_error_naming_the_file(tmp_path, case):
    make, reason = BAD[case]
    path = make(tmp_path)
    with pytest.raises(DataError, match=reason) as err:
        load_audio(path)
    assert str(path) in str(err.value)


def test_audio_info_of_a_bad_file_names_it(tmp_path):
    path = _random_mp3(tmp_path)
    with pytest.raises(DataError, match="unrecognised format") as err:
        audio_info(path)
    assert str(path) in str(err.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path):
    path = write(tmp_path / "locked.wav", tone(1.5))
    path.chmod(0)
    try:
        with pytest.raises(DataError, match="cannot be read") as err:
            load_audio(path)
        assert str(path) in str(err.value)
    finally:
        path.chmod(0o644)
