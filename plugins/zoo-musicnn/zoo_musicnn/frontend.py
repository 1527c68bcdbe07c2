"""``musicnn-mel``: the log-mel spectrogram musicnn was trained on, as a zoo feature ``[96, T]``.

What ``musicnn.extractor.batch_data`` computes, step by step: the audio at 16 kHz (``librosa.load``
resamples with soxr, high quality: the zoo's :func:`~zoo.data.audio.prepare_waveform` uses the
same), ``librosa.feature.melspectrogram(n_fft=512, hop_length=256, n_mels=96)`` (its defaults:
power 2, a centred Hann window with zero padding, Slaney mel bands and area normalisation),
the power cast to float16 (musicnn does; values keep 11 significant bits), then
``log10(10000 * x + 1)`` in float32. ``T = 1 + N // 256``, one column every 16 ms.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from zoo.data.audio import prepare_waveform
from zoo.errors import ConfigError

SR, N_FFT, HOP, N_MELS = 16000, 512, 256, 96


def log_mel(y: np.ndarray) -> np.ndarray:
    """``y[N]`` float32 at 16 kHz -> musicnn's log-mel ``[96, 1 + N // 256]`` float32."""
    import librosa

    power = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS)
    return np.log10(np.float32(10000) * power.astype(np.float16).astype(np.float32) + np.float32(1)).astype(np.float32)


class _NoLab:
    rate = "frames"
    reads_lab = False
    """The lab's arrays hold 128-band mel dB at 22050 Hz: musicnn's 16 kHz front end cannot come from them."""

    def from_lab(self, fused: np.ndarray) -> np.ndarray:
        raise ConfigError(f"feature '{self.name}' cannot be read from the lab's fused arrays: they hold 128-band mel "
                          f"dB at 22050 Hz, not musicnn's 96-band 16 kHz log-mel; use a data set of audio files "
                          f"(the embedded set, FMA, an audio folder)")


class MusicnnMel(_NoLab):
    """musicnn's own front end: ``from_audio(y, sr) -> [96, 1 + N // 256]`` float32 (16 kHz, see the module)."""

    name = "musicnn-mel"
    n_bins = N_MELS
    sample_rate = SR
    hop_length = HOP
    standardise = False
    """Already on the scale the pretrained network expects (its first batch norm does the rest)."""

    def __init__(self, config: Any = None):
        self.config = config

    def settings(self) -> dict[str, Any]:
        return {"sr": SR, "n_fft": N_FFT, "hop": HOP, "n_mels": N_MELS, "scale": "log10(10000*float16(power)+1)"}

    def from_audio(self, y: np.ndarray, sr: int) -> np.ndarray:
        return log_mel(prepare_waveform(y, sr, SR, 1, who=f"feature '{self.name}'"))

    def __repr__(self) -> str:
        return "MusicnnMel()"
