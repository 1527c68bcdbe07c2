"""The four feature objects (zoo.protocols.Feature): mel, chroma and their beat-synchronous versions.

Each turns a mono waveform into a float32 ``[n_bins, T]`` array exactly as the lab's extractor
did, or picks its rows out of one of the lab's fused ``[140, T]`` arrays. With ``backend: torch``
the mel and chroma steps run in the kernels of :mod:`zoo_features.torchfeatures`. Each feature
also computes many clips in one call (``from_audio_batch``, :class:`zoo.protocols.BatchesAudio`),
which the zoo's extractor uses: with the torch backend on a GPU the clips are one batch there.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np

from zoo.data.audio import prepare_waveform
from zoo.errors import ConfigError, DataError
from zoo.protocols import Picture

from . import compute
from .configs import BeatChromaConfig, BeatMelConfig, ChromaConfig, MelConfig, differs_from_lab

LAB_ROWS = 140
"""Rows of the lab's fused arrays: 128 mel bands (dB), then 12 chroma bins."""
LAB_MEL = slice(0, 128)
LAB_CHROMA = slice(128, 140)


class _Feature:
    """Shared behaviour; subclasses set ``rate``, ``lab_rows``, ``n_bins`` and ``_compute``."""

    rate = "frames"
    lab_rows = LAB_MEL

    def __init__(self, name: str, config: Any):
        self.name = name
        self.config = config

    @property
    def sample_rate(self) -> int:
        return self.config.sr

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def min_samples(self) -> int:
        """Shortest waveform (at ``sample_rate``) the feature accepts."""
        return 2048

    def settings(self) -> dict[str, Any]:
        """The config's fields: exactly what ``--set NAME.KEY=VALUE`` accepts (JSON-able)."""
        return dataclasses.asdict(self.config)

    def from_audio(self, y: np.ndarray, sr: int) -> np.ndarray:
        """``y[N]`` mono at ``sr`` Hz (resampled to ``sample_rate`` if different) -> ``[n_bins, T]`` float32.

        Raises DataError for silence, NaN/inf samples, audio too short or (beat features) too few beats.
        """
        y = prepare_waveform(y, sr, self.sample_rate, self.min_samples, silence_ok=False)
        return np.ascontiguousarray(self._compute(y), dtype=np.float32)

    @property
    def batch_size(self) -> int:
        """Clips per ``from_audio_batch`` call (zoo.protocols.BatchesAudio): a batch of
        ``torchfeatures.BATCH`` on a GPU with the torch backend; else 1. On a CPU one clip at a time
        is fastest (a clip stays in the CPU's caches: a batch of 8 ran 1.6x slower per clip,
        docs/benchmarks.md), and the extractor's worker processes use the cores."""
        if self.config.backend != "torch":
            return 1
        from . import torchfeatures
        return torchfeatures.BATCH if torchfeatures.default_device().type != "cpu" else 1

    def from_audio_batch(self, ys: Sequence[np.ndarray], sr: int) -> list[np.ndarray]:
        """``from_audio`` of each waveform ``ys[b]`` (``[N_b]`` at ``sr`` Hz, any lengths) -> ``[n_bins, T_b]`` float32 each.

        The same numbers as ``from_audio`` clip by clip; raises DataError as it does, for the first
        clip it cannot take (the zoo's extractor then computes the clips one by one).
        """
        ys = [prepare_waveform(y, sr, self.sample_rate, self.min_samples, silence_ok=False) for y in ys]
        return [np.ascontiguousarray(a, dtype=np.float32) for a in self._compute_batch(ys)]

    def _compute(self, y: np.ndarray) -> np.ndarray:
        return self._compute_batch([y])[0]

    def _compute_batch(self, ys: list[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def _kernel(self, kernel: Callable[..., list[np.ndarray]], ys: list[np.ndarray]) -> list[np.ndarray]:
        """A torch kernel of :mod:`zoo_features.torchfeatures` over ``ys``: one batch on a GPU, a clip at a time on a CPU."""
        from . import torchfeatures
        device = torchfeatures.default_device()
        if device.type == "cpu":
            return [kernel([y], self.config, device)[0] for y in ys]
        return kernel(ys, self.config, device)

    def from_lab(self, fused: np.ndarray) -> np.ndarray:
        """The lab's ``fused[140, T]`` -> this feature's rows ``[n_bins, T]`` float32.

        The lab's beat folder already holds beat-synchronous arrays, so a beat feature takes the
        same rows as its frame-rate twin; which folder is read is the data set's business.
        """
        self._check_lab_settings()
        a = np.asarray(fused)
        if a.ndim != 2 or a.shape[0] != LAB_ROWS or a.shape[1] == 0:
            raise DataError(
                f"expected one of the lab's fused arrays [140, T] (rows 0-127 mel dB, 128-139 chroma), "
                f"got shape {a.shape}"
            )
        rows = a[self.lab_rows]
        if not np.all(np.isfinite(rows)):
            raise DataError(f"the lab array's {self.name} rows hold NaN or infinite values")
        return np.ascontiguousarray(rows, dtype=np.float32)

    def _check_lab_settings(self) -> None:
        changed = differs_from_lab(self.config)
        if not changed:
            return
        ours = ", ".join(f"{k}={v[0]!r}" for k, v in changed.items())
        lab = ", ".join(f"{k}={v[1]!r}" for k, v in changed.items())
        raise ConfigError(
            f"feature '{self.name}' is set to {ours}, but the lab's arrays were computed with {lab}; "
            f"their rows cannot stand for these settings. Use the default settings with the lab's "
            f"data set, or train on audio, where any settings work"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.config!r})"


class Mel(_Feature):
    """Mel spectrogram in dB ``[n_mels, T]``: 0 dB at the clip's loudest bin, down to ``-top_db``."""

    def __init__(self, config: MelConfig, name: str = "mel"):
        super().__init__(name, config)

    @property
    def n_bins(self) -> int:
        return self.config.n_mels

    @property
    def picture(self) -> Picture:
        """How ``zoo show`` draws it (zoo.protocols.Drawable): mel bands over the filter bank's range."""
        return Picture("mel spectrogram", "mel", self.config.fmin, self.config.fmax)

    @property
    def min_samples(self) -> int:
        return self.config.n_fft

    def _mel_power(self, ys: list[np.ndarray]) -> list[np.ndarray]:
        if self.config.backend == "torch":
            from . import torchfeatures
            return self._kernel(torchfeatures.mel_power, ys)
        return [compute.mel_power(y, self.config) for y in ys]

    def _compute_batch(self, ys: list[np.ndarray]) -> list[np.ndarray]:
        if self.config.backend == "torch":
            from . import torchfeatures
            return self._kernel(torchfeatures.mel_db, ys)
        return [compute.to_db(compute.mel_power(y, self.config), self.config) for y in ys]


class Chroma(_Feature):
    """Chromagram ``[n_chroma, T]`` from the constant-Q transform, values in [0, 1]."""

    lab_rows = LAB_CHROMA

    def __init__(self, config: ChromaConfig, name: str = "chroma"):
        super().__init__(name, config)

    @property
    def n_bins(self) -> int:
        return self.config.n_chroma

    @property
    def picture(self) -> Picture:
        """How ``zoo show`` draws it (zoo.protocols.Drawable): pitch classes."""
        return Picture("chromagram", "chroma")

    def _compute_batch(self, ys: list[np.ndarray]) -> list[np.ndarray]:
        if self.config.backend == "torch":
            from . import torchfeatures
            return self._kernel(torchfeatures.chroma, ys)
        return [compute.chroma(y, self.config) for y in ys]


class BeatMel(Mel):
    """Beat-synchronous mel ``[n_mels, B]``: the POWER mel's median between beats, then dB."""

    rate = "beats"

    def __init__(self, config: BeatMelConfig, name: str = "beat"):
        super().__init__(config, name)

    @property
    def picture(self) -> Picture:
        return Picture("beat-synced mel spectrogram", "mel", self.config.fmin, self.config.fmax, beat_of="mel")

    def _compute_batch(self, ys: list[np.ndarray]) -> list[np.ndarray]:
        c = self.config
        return [compute.to_db(compute.beat_sync(power, compute.usable_beats(y, c)), c)
                for y, power in zip(ys, self._mel_power(ys))]


class BeatChroma(Chroma):
    """Beat-synchronous chroma ``[n_chroma, B]``: the chroma's median between beats."""

    rate = "beats"

    def __init__(self, config: BeatChromaConfig, name: str = "beat-chroma"):
        super().__init__(config, name)

    @property
    def picture(self) -> Picture:
        return Picture("beat-synced chromagram", "chroma", beat_of="chroma")

    def _compute_batch(self, ys: list[np.ndarray]) -> list[np.ndarray]:
        c = self.config
        return [compute.beat_sync(chroma, compute.usable_beats(y, c))
                for y, chroma in zip(ys, Chroma._compute_batch(self, ys))]
