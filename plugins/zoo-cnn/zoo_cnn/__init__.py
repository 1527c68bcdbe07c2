"""The ``cnn`` backbone of Music Zoo: its typed config and its registry spec.

Importing this package is cheap (no torch); the network is in :mod:`zoo_cnn.model`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from zoo.bounds import bounded, check_bounds
from zoo.errors import ConfigError
from zoo.protocols import ComponentSpec

__version__ = "0.1.0"


@dataclass(frozen=True)
class CNNConfig:
    """One block per entry of ``channels``: a k x k convolution to ``channels[i]`` filters,
    batch norm, ReLU, then a ``pool`` x ``pool`` max pool; ``dropout`` after each block.

    ``kernels`` gives k per block; when it is shorter than ``channels`` its last size repeats,
    so ``--set backbone.channels=16,32`` alone keeps working. The defaults are the lab's network:
    filters 32/64/128/256, a 5x5 kernel then 3x3 ones.
    """

    channels: tuple[int, ...] = bounded((32, 64, 128, 256), ge=1)
    # An even kernel cannot be centred, so 'same' padding would shift the time axis.
    kernels: tuple[int, ...] = bounded((5, 3), ge=1, odd=True, why="so each output stays centred on its input")
    pool: int = bounded(2, ge=1, why="1 turns pooling off")
    dropout: float = bounded(0.1, ge=0.0, lt=1.0)
    component: ClassVar[str] = "backbone 'cnn'"
    """How its errors name it (a variant names itself)."""
    cpu_bf16: ClassVar[bool] = True
    channels_last: ClassVar[bool] = True
    """Measured (bench/precision.py, 128 x 128 crops, batch 16, one thread, AVX-512 BF16): a train step
    2.7x as fast in bf16 autocast with channels-last weights as in float32 (1.8x bf16 alone, 1.4x
    channels-last alone), so ``train.precision=auto`` trains it in bf16 where the CPU has native bf16."""
    train_defaults: ClassVar[dict] = {"epochs": 40, "patience": 0, "batch_size": 16, "lr": 2e-3,
                                      "crop_frames": 128, "mixup": 0.2, "time_masks": 2, "freq_masks": 2}
    """Recommended training settings (below recipes, --set and flags), chosen on the embedded set's
    validation split over 3 seeds (bench/tune.py; docs/results.md has every variant tried): random
    128-frame crops (3 s at hop 512 / 22050 Hz; validation, test and ``zoo predict`` average
    half-overlapping windows of that size), mixup 0.2, two time and two frequency masks, batches of
    16 at a peak learning rate of 2e-3, 40 epochs of a cosine schedule without early stopping. Against
    the former 12 epochs on whole clips, batches of 32 at 1e-3: validation accuracy 0.815 -> 0.911,
    test 0.693 -> 0.881, above the stats baselines (0.796 with mel + chroma, 0.822 with mel)."""
    head_defaults: ClassVar[dict] = {"pooling": "meanstd"}
    """The heads pool the mean and the standard deviation of every channel over time (part of the
    measured recipe above)."""

    def __post_init__(self) -> None:
        where = self.component
        if not self.channels:
            raise ConfigError(f"{where}: channels is empty; give one filter count per block, e.g. channels=32,64,128,256")
        if not self.kernels or len(self.kernels) > len(self.channels):
            raise ConfigError(
                f"{where}: {len(self.channels)} blocks (channels {tuple(self.channels)}) but kernels "
                f"{tuple(self.kernels)}; give at most one kernel size per block (the last one repeats), "
                f"e.g. kernels=5,3"
            )
        check_bounds(self, where)

    @property
    def block_kernels(self) -> tuple[int, ...]:
        """The kernel size of every block: ``kernels`` with its last entry repeated."""
        return tuple(self.kernels) + (self.kernels[-1],) * (len(self.channels) - len(self.kernels))


def build(config: CNNConfig, n_bins: int):
    """A :class:`zoo_cnn.model.CNNBackbone` reading ``n_bins`` frequency rows."""
    from .model import CNNBackbone

    return CNNBackbone(config, n_bins)


@dataclass(frozen=True)
class WideCNNConfig(CNNConfig):
    """the lab's CNN with twice the filters per block (64/128/256/512); returns [B, T', 512]"""
    channels: tuple[int, ...] = bounded((64, 128, 256, 512), ge=1)
    component: ClassVar[str] = "backbone 'cnn-wide'"


spec = ComponentSpec(
    kind="backbone",
    name="cnn",
    config=CNNConfig,
    build=build,
    summary="the lab's 2D CNN: 4 blocks of conv, batch norm, ReLU, max pool (32/64/128/256 filters); "
            "padding-safe on variable lengths; returns a sequence [B, T', 256]",
    variants={"cnn-wide": WideCNNConfig},
)
