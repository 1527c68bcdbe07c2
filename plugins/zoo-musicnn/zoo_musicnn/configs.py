"""Typed settings of the plugin's components (checked when built; every field settable with ``--set``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from zoo.bounds import bounded, check_bounds
from zoo.errors import ConfigError

from .weights import model_info

PATCH_FRAMES = 187
"""musicnn's input: 3 s of 16 kHz audio at a 256-sample hop (``librosa.time_to_frames(3) + 1``)."""

Model = Literal["MSD_musicnn", "MTT_musicnn", "MSD_vgg", "MTT_vgg"]
Layer = Literal["penultimate", "taggram", "pool"]

LAYERS = {
    "penultimate": "the 200 units before the output layer (VGG: pool5 flattened, 256)",
    "taggram": "the 50 tag probabilities (sigmoid)",
    "pool": "the mid end's max and mean over each window, 1506 per window (musicnn models only)",
}


@dataclass(frozen=True)
class MelConfig:
    """musicnn's front end has no settings: 16 kHz, 512-sample FFT, hop 256, 96 mel bands, log10(10000 x + 1)."""


def _check(where: str, model: str, layer: str) -> None:
    info = model_info(model, where)
    if layer == "pool" and info.arch != "musicnn":
        raise ConfigError(f"{where}: layer 'pool' exists in the musicnn models only; {model} is a VGG: "
                          f"use layer=penultimate (its pool5) or taggram")


_HOP_WHY = f"in frames; musicnn's default is {PATCH_FRAMES}, windows side by side"


def width(model: str, layer: str) -> int:
    """D, the embedding width of ``layer`` for checkpoint ``model``."""
    if layer == "taggram":
        return 50
    if layer == "pool":
        return 1506
    return 200 if model_info(model, "musicnn").arch == "musicnn" else 256


@dataclass(frozen=True)
class MusicnnConfig:
    """The ``musicnn`` backbone on ``musicnn-mel`` (96 bins).

    - ``model``: the checkpoint (``MSD_musicnn``: Million Song Dataset tags, the default;
      ``MTT_musicnn``: MagnaTagATune; ``MSD_vgg``, ``MTT_vgg``: the VGG-like baselines).
    - ``pretrained``: start from the checkpoint (the ``musicnn`` wheel must be installed); false:
      random initialisation, the same architecture.
    - ``layer``: what the backbone returns per window (see ``LAYERS``): ``penultimate`` by default.
    - ``window_hop``: a clip is cut into 187-frame (3 s) windows every ``window_hop`` frames, as
      musicnn's extractor does (187: side by side, the frames after the last whole window left
      out; a clip shorter than 3 s is one window, zero-padded); the backbone returns one embedding
      per window, ``[B, W, D]`` with ``W`` per clip, and the task head pools them (mean by default).
    - ``freeze``: keep the first N blocks fixed (``named_blocks()``; musicnn: front end, the three
      mid-end layers, the dense back end; VGG: its five convolutional blocks). Frozen batch norms keep
      their statistics.
    - ``dropout``: the original's dropout before each dense layer (0.5), active when training.
    """

    model: Model = "MSD_musicnn"
    pretrained: bool = True
    layer: Layer = "penultimate"
    window_hop: int = bounded(PATCH_FRAMES, ge=1, why=_HOP_WHY)
    freeze: int = bounded(0, ge=0)
    dropout: float = bounded(0.5, ge=0.0, lt=1.0)

    train_defaults: ClassVar[dict] = {"lr": 1e-3, "epochs": 15, "patience": 4, "batch_size": 16, "warmup": 0.1,
                                      "crop_frames": PATCH_FRAMES}
    """musicnn's own learning rate (Adam, 1e-3) with warm-up: on gtzan-mini with freeze=4, 1e-4 reached 0.35
    validation accuracy in 15 epochs, 1e-3 reached 1.0 in 7 (docs/pretrained.md). Training on one random 3 s
    window per clip (musicnn was trained on random 187-frame patches), evaluation averaging windows."""
    head_defaults: ClassVar[dict] = {"pooling": "mean"}
    input_bins: ClassVar[int] = 96
    """The one feature width it takes: ``musicnn-mel``'s 96 bands (``zoo.protocols.FixedInputBins``)."""
    """Windows averaged, as musicnn's users average its per-window outputs over a clip."""

    def __post_init__(self) -> None:
        _check("backbone 'musicnn'", self.model, self.layer)
        check_bounds(self, "backbone 'musicnn'")


@dataclass(frozen=True)
class EmbedConfig:
    """The ``musicnn-embed`` feature: a frozen pretrained musicnn's ``layer`` per window, cached per clip.

    ``model``, ``layer`` and ``window_hop`` as for the backbone; ``device``: where it runs
    (``auto``: the GPU when there is one); it does not change the output, nor the cache key.
    """

    model: Model = "MSD_musicnn"
    layer: Layer = "penultimate"
    window_hop: int = bounded(PATCH_FRAMES, ge=1, why=_HOP_WHY)
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def __post_init__(self) -> None:
        _check("feature 'musicnn-embed'", self.model, self.layer)
        check_bounds(self, "feature 'musicnn-embed'")
