"""The front ends the pretrained models were trained with, as zoo features: ``fbank`` (the AST's) and ``wave``.

Both are frame-rate features ``[F, T]`` float32 with ``T = 1 + N // hop_length`` columns, as the
zoo's other frame features, so the engine pads, batches and caches them like any other. Neither
can be derived from the lab's fused arrays (librosa mel dB at 22050 Hz): ``from_lab`` says so.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from zoo.data.audio import prepare_waveform
from zoo.errors import ConfigError

from .configs import FbankConfig, WaveConfig


class _Frontend:
    """Shared behaviour: a config, frame rate, no lab arrays."""

    rate = "frames"
    reads_lab = False
    """The lab's arrays hold librosa mel dB at 22050 Hz: nothing this plugin computes can be read from them."""

    def __init__(self, name: str, config: Any):
        self.name = name
        self.config = config

    @property
    def sample_rate(self) -> int:
        return self.config.sr

    def settings(self) -> dict[str, Any]:
        """The config's fields: exactly what ``--set NAME.KEY=VALUE`` accepts (they key the cache)."""
        return dataclasses.asdict(self.config)

    def from_lab(self, fused: np.ndarray) -> np.ndarray:
        raise ConfigError(
            f"feature '{self.name}' cannot be read from the lab's fused arrays: they hold librosa mel "
            f"spectrograms in dB at 22050 Hz, not the audio the pretrained models need; use a data set of "
            f"audio files (the embedded set, FMA, an audio folder)"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.config!r})"


class Fbank(_Frontend):
    """Kaldi log mel filter banks ``[n_mels, T]``, normalised as the AST was trained.

    ``from_audio`` calls ``torchaudio.compliance.kaldi.fbank`` exactly as Hugging Face's
    ``ASTFeatureExtractor`` does (Hanning window, no dither, ``snip_edges``), then
    ``(fbank - mean) / (2 * std)``. Kaldi's frames stop where the last whole 25 ms window ends,
    about 1.5 frames before ``1 + N // hop_length``; those last columns hold the value the
    extractor pads with (a zero filter bank, normalised), so every column equals the
    extractor's output for the same audio (which pads or cuts to 1024 frames).
    """

    standardise = False
    """Already in the AST's scale: the engine must not standardise its bins again."""

    def __init__(self, config: FbankConfig, name: str = "fbank"):
        super().__init__(name, config)

    @property
    def n_bins(self) -> int:
        return self.config.n_mels

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    def from_audio(self, y: np.ndarray, sr: int) -> np.ndarray:
        """``y[N]`` mono at ``sr`` Hz (resampled to ``sample_rate`` if different) -> ``[n_mels, 1 + N // hop_length]`` float32."""
        import torch
        from torchaudio.compliance import kaldi

        c = self.config
        y = prepare_waveform(y, sr, c.sr, c.window, who=f"feature '{self.name}'")
        banks = kaldi.fbank(torch.from_numpy(np.ascontiguousarray(y))[None], sample_frequency=c.sr,
                            window_type="hanning", num_mel_bins=c.n_mels, frame_length=c.frame_length,
                            frame_shift=c.frame_shift).numpy()  # [T_kaldi, n_mels]
        if c.normalize:
            banks = (banks - c.mean) / (2 * c.std)
        out = np.full((c.n_mels, 1 + y.size // c.hop_length), c.pad_value, dtype=np.float32)
        t = min(out.shape[1], banks.shape[0])
        out[:, :t] = banks[:t].T
        return out


class Wave(_Frontend):
    """The waveform itself ``[1, N]`` at ``sr`` Hz: one "bin", one column per sample (``hop_length`` 1).

    For the waveform encoders (``hf-w2v``). Memory: 4 bytes per sample, 64 kB per second at
    16 kHz (1.9 MB for a 30 s clip), in the feature cache, in the packed data set held in memory
    during training, and per clip of a batch.
    """

    hop_length = 1
    standardise = False
    """The encoders take the waveform as it is (normalising each clip themselves where they were trained so)."""

    def __init__(self, config: WaveConfig, name: str = "wave"):
        super().__init__(name, config)

    @property
    def n_bins(self) -> int:
        return 1

    def from_audio(self, y: np.ndarray, sr: int) -> np.ndarray:
        """``y[N]`` mono at ``sr`` Hz (resampled to ``sample_rate`` if different) -> ``[1, N]`` float32."""
        y = prepare_waveform(y, sr, self.config.sr, 1, who=f"feature '{self.name}'")
        return np.ascontiguousarray(y[None, :], dtype=np.float32)
