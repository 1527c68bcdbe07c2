"""Typed settings of the four features; the defaults are the lab's extractor settings.

Every field can be set from the command line (``--set mel.n_mels=64``); values are checked here
so that a bad one fails when the feature is built, not half-way through extracting a data set: each
field's range is declared beside it (:func:`zoo.bounds.bounded`), the checks between fields (``fmax``,
``bins_per_octave``) are in ``__post_init__``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from zoo.bounds import bounded, check_bounds
from zoo.errors import ConfigError


@dataclass(frozen=True)
class MelConfig:
    """Mel spectrogram: power (``|STFT|**2``) mel bands, then dB relative to the clip's maximum.

    ``fmax`` None means ``sr / 2``; ``top_db`` clips the dB range below the maximum (None: no clip).
    ``backend``: ``torch`` (the default: :mod:`zoo_features.torchfeatures`, librosa's numbers within
    0.05 dB as its tests require (measured about 5e-5 dB), about 3x as fast on a CPU, batched, on the
    GPU when there is one) or ``librosa`` (the lab's code).
    """

    sr: int = bounded(22050, gt=0)
    n_fft: int = bounded(2048, gt=0)
    hop_length: int = bounded(512, gt=0)
    n_mels: int = bounded(128, gt=0)
    fmin: float = bounded(0.0, ge=0.0, why="Hz")
    fmax: float | None = None
    top_db: float | None = bounded(80.0, gt=0.0, why="dB below the clip's maximum, or None for no clip")
    backend: Literal["librosa", "torch"] = "torch"

    def __post_init__(self) -> None:
        where = f"feature '{_name(self)}'"
        check_bounds(self, where)  # a beat feature's fields (BeatSettings) too
        if self.fmax is not None and not self.fmin < self.fmax <= self.sr / 2:
            raise ConfigError(
                f"{where} setting 'fmax' must lie between fmin ({self.fmin}) and sr/2 ({self.sr / 2}), "
                f"got {self.fmax!r}; leave it unset (None) to use sr/2"
            )


@dataclass(frozen=True)
class ChromaConfig:
    """Chromagram from a constant-Q transform (``chroma_cqt``).

    ``fmin`` None means C1 (about 32.7 Hz); ``bins_per_octave`` must be a multiple of ``n_chroma``.
    ``backend``: ``torch`` (the default: :mod:`zoo_features.torchfeatures`, librosa's filters and
    tuning, values within 1e-3 as its tests require (measured about 5e-7), batched, on the GPU when
    there is one) or ``librosa`` (``chroma_cqt``).
    """

    sr: int = bounded(22050, gt=0)
    hop_length: int = bounded(512, gt=0)
    n_chroma: int = bounded(12, gt=0)
    n_octaves: int = bounded(7, gt=0)
    bins_per_octave: int = bounded(36, gt=0)
    fmin: float | None = bounded(None, gt=0.0, why="Hz, or None for C1")
    backend: Literal["librosa", "torch"] = "torch"

    def __post_init__(self) -> None:
        where = f"feature '{_name(self)}'"
        check_bounds(self, where)  # a beat feature's fields (BeatSettings) too
        if self.bins_per_octave % self.n_chroma:
            raise ConfigError(
                f"{where}: bins_per_octave ({self.bins_per_octave}) must be a multiple of n_chroma "
                f"({self.n_chroma}), e.g. n_chroma=12 with bins_per_octave=12, 24 or 36"
            )


@dataclass(frozen=True)
class BeatSettings:
    """How beats are found: HPSS splits the audio, the beat tracker reads its percussive part.

    ``hpss_margin`` >= 1 (larger: a stricter percussive part); ``start_bpm`` is the tracker's
    tempo guess and ``tightness`` how strictly beats follow the tempo. A clip with fewer than
    ``min_beats`` beats is refused.
    """

    hpss_margin: float = bounded(1.0, ge=1.0)
    start_bpm: float = bounded(120.0, gt=0.0)
    tightness: float = bounded(100.0, gt=0.0)
    min_beats: int = bounded(2, gt=0)


@dataclass(frozen=True)
class BeatMelConfig(BeatSettings, MelConfig):
    """Beat-synchronous mel: the power mel's median between beats, then dB (see MelConfig, BeatSettings)."""

    def __post_init__(self) -> None:
        MelConfig.__post_init__(self)  # checks the bounds of every field, BeatSettings' too


@dataclass(frozen=True)
class BeatChromaConfig(BeatSettings, ChromaConfig):
    """Beat-synchronous chroma: the chroma's median between beats (see ChromaConfig, BeatSettings)."""

    def __post_init__(self) -> None:
        ChromaConfig.__post_init__(self)  # checks the bounds of every field, BeatSettings' too


# Settings that decide which clips are accepted but not the numbers (min_beats), or how the numbers
# are computed but not what they are (backend: torch agrees with librosa within the tolerances of
# torchfeatures): the lab's arrays stand for any value of them. The cache keeps them apart all the same.
NOT_IN_OUTPUT = frozenset({"min_beats", "backend"})

_NAMES = {MelConfig: "mel", ChromaConfig: "chroma", BeatMelConfig: "beat", BeatChromaConfig: "beat-chroma"}


def _name(config: object) -> str:
    return _NAMES.get(type(config), type(config).__name__)


def differs_from_lab(config: object) -> dict[str, tuple[object, object]]:
    """``{setting: (value, lab value)}`` for every output-changing setting that is not the lab's."""
    lab = type(config)()
    return {
        f.name: (getattr(config, f.name), getattr(lab, f.name))
        for f in dataclasses.fields(config)
        if f.name not in NOT_IN_OUTPUT and getattr(config, f.name) != getattr(lab, f.name)
    }
