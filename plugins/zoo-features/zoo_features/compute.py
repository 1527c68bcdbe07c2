"""The numerical steps of the lab's extractor, one small function each (librosa imported on use).

Shapes: ``y`` is a mono waveform ``[N]``; spectrogram-like outputs are ``[bins, T]`` with
``T = 1 + N // hop_length`` frames (centred frames), beat-synchronous ones ``[bins, B]`` with B
the number of intervals the beats cut the frames into.
"""
from __future__ import annotations

import hashlib
import warnings
from collections import OrderedDict

import numpy as np

from zoo.errors import DataError

from .configs import BeatSettings, ChromaConfig, MelConfig


def mel_power(y: np.ndarray, c: MelConfig) -> np.ndarray:
    """Power mel spectrogram ``[n_mels, T]`` (not yet in dB)."""
    import librosa

    return librosa.feature.melspectrogram(
        y=y, sr=c.sr, n_fft=c.n_fft, hop_length=c.hop_length, n_mels=c.n_mels,
        fmin=c.fmin, fmax=c.fmax, power=2.0,
    )


def to_db(power: np.ndarray, c: MelConfig) -> np.ndarray:
    """dB relative to the array's own maximum (0 dB at the loudest bin), as the lab's arrays."""
    import librosa

    return librosa.power_to_db(power, ref=np.max, top_db=c.top_db)


def chroma(y: np.ndarray, c: ChromaConfig) -> np.ndarray:
    """Chromagram ``[n_chroma, T]`` in [0, 1] (each frame scaled to max 1)."""
    import librosa

    with warnings.catch_warnings():
        # The constant-Q transform works octave by octave on ever more downsampled audio; on a
        # clip of a few seconds the lowest octaves are shorter than their FFT and librosa warns
        # once per octave and per clip. The numbers are still what chroma_cqt defines.
        warnings.filterwarnings("ignore", message=r"n_fft=\d+ is too large for input signal", category=UserWarning)
        return librosa.feature.chroma_cqt(
            y=y, sr=c.sr, hop_length=c.hop_length, n_chroma=c.n_chroma, n_octaves=c.n_octaves,
            bins_per_octave=c.bins_per_octave, fmin=c.fmin,
        )


# HPSS and beat tracking are the costly steps; ``beat`` and ``beat-chroma`` of the same clip need
# the same beats, so the last few results are kept (keyed by a digest of the samples).
_BEATS: OrderedDict[tuple, np.ndarray] = OrderedDict()
_BEATS_KEEP = 4


def beat_frames(y: np.ndarray, sr: int, hop_length: int, b: BeatSettings) -> np.ndarray:
    """Beat positions ``[K]`` in frames of ``hop_length``: tracked on the percussive part of ``y``."""
    key = (hashlib.sha1(y.tobytes()).hexdigest(), y.dtype.str, y.size, sr, hop_length,
           b.hpss_margin, b.start_bpm, b.tightness)
    if key in _BEATS:
        _BEATS.move_to_end(key)
        return _BEATS[key]
    import librosa

    _, percussive = librosa.effects.hpss(y, margin=b.hpss_margin)
    _, beats = librosa.beat.beat_track(
        y=percussive, sr=sr, hop_length=hop_length, start_bpm=b.start_bpm, tightness=b.tightness,
    )
    beats = np.asarray(beats, dtype=np.int64)
    beats.setflags(write=False)
    _BEATS[key] = beats
    while len(_BEATS) > _BEATS_KEEP:
        _BEATS.popitem(last=False)
    return beats


def check_beats(beats: np.ndarray, b: BeatSettings, seconds: float) -> None:
    """Refuse a clip whose beat tracker found fewer than ``min_beats`` beats."""
    if len(beats) < b.min_beats:
        raise DataError(
            f"the beat tracker found {len(beats)} beat(s) in {seconds:.1f} s of audio, fewer than "
            f"min_beats={b.min_beats}: the music has no clear pulse (or is too short); use a "
            f"frame-rate feature (mel, chroma) for it, or lower min_beats"
        )


def usable_beats(y: np.ndarray, c) -> np.ndarray:
    """Beat frames of ``y`` at ``c.sr`` / ``c.hop_length``, refused when there are too few."""
    beats = beat_frames(y, c.sr, c.hop_length, c)
    check_beats(beats, c, y.size / c.sr)
    return beats


def beat_sync(frames: np.ndarray, beats: np.ndarray) -> np.ndarray:
    """Median of ``frames[bins, T]`` over each interval between beats -> ``[bins, B]``.

    The frame range is padded with 0 and T, so the stretch before the first beat and after the
    last one are intervals too: B = number of distinct cut points in {0, beats..., T} minus one.
    """
    import librosa

    return librosa.util.sync(frames, beats, aggregate=np.median)

