"""The ``lstm`` backbone of Music Zoo: its typed config and its registry spec.

Importing this package is cheap (no torch): ``zoo list`` reads ``spec`` to show the summary.
The network itself lives in :mod:`zoo_lstm.model` and is imported only when a model is built.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from zoo.bounds import bounded, check_bounds
from zoo.errors import ConfigError
from zoo.protocols import ComponentSpec

__version__ = "0.1.0"


@dataclass(frozen=True)
class LSTMConfig:
    """``hidden`` units per direction, ``layers`` stacked LSTMs, ``bidirectional`` (D doubles),
    ``dropout`` between stacked layers (ignored by torch with one layer).

    ``conv_layers``: a convolutional front end before the LSTM (0: none, the LSTM reads the
    feature frames), as a CRNN has. With ``conv_dims=1`` each layer is a 1-D convolution over
    time across all bins (kernel ``conv_kernel``, ``conv_channels`` out), batch norm, ReLU and a
    max pool of 2 along time, and the LSTM reads ``conv_channels`` features per step. With
    ``conv_dims=2`` each layer is a ``conv_kernel`` x ``conv_kernel`` convolution over bins and
    time, batch norm, ReLU and a 2 x 2 max pool, and the LSTM reads the channels of every pooled
    bin row, ``conv_channels * ceil(n_bins / 2 ** conv_layers)`` per step. Either way the
    sequence (and each clip's length, rounded up) is ``2 ** conv_layers`` times shorter.

    The defaults are a CRNN: three 3 x 3 conv layers of 32 filters, each pooling 2 x 2, then two
    bidirectional layers of 128 units; on the embedded set it reached validation accuracy 0.893
    and test 0.826 where the plain LSTM (``--set backbone.conv_layers=0``, the lab's network)
    reached 0.774 and 0.659 (3 seeds each, docs/results.md). The plain LSTM's recurrence over
    259 mel frames learned little beyond per-bin averages; 1-D front ends (over time across all
    bins) reached 0.82 at best.
    """

    hidden: int = bounded(128, ge=1)
    layers: int = bounded(2, ge=1)
    bidirectional: bool = True
    dropout: float = bounded(0.2, ge=0.0, lt=1.0)
    conv_layers: int = bounded(3, ge=0, le=6, why="0: no front end; each layer halves the sequence")
    conv_channels: int = bounded(32, ge=1)
    conv_kernel: int = bounded(3, ge=1, odd=True, why="so a frame's window is centred on it")
    conv_dims: int = bounded(2, ge=1, le=2, why="1: convolve over time across all bins; 2: over bins and time, "
                                                "as a 2-D CNN")
    former_defaults: ClassVar[dict] = {"conv_layers": 0}
    """What a model saved before the front end existed had: none (``zoo.config.with_former_defaults``)."""
    channels_last: ClassVar[bool] = True
    """Measured (bench/precision.py, batch 16, one thread, AVX-512 BF16): with its 2-D convolutional
    front end (128 x 128 crops), a train step 2.5x as fast in bf16 autocast with channels-last weights
    as in float32 (channels-last alone 1.3x); the plain LSTM (``conv_layers=0``, the lab's recipes;
    128 x 300) 1.6x in bf16."""

    @property
    def cpu_bf16(self) -> bool:
        """bf16 on a CPU pays and is checked for the CRNN alone (:class:`zoo.protocols.FastInBf16`): its
        accuracy in bf16 over 3 seeds lies inside float32's interval on the embedded set and on
        gtzan-mini (docs/results.md). The plain LSTM's (``conv_layers=0``) is unchecked, so
        ``train.precision=auto`` keeps it float32; ``--precision bf16`` opts in."""
        return self.conv_layers > 0

    train_defaults: ClassVar[dict] = {"epochs": 40, "patience": 0, "batch_size": 16, "lr": 2e-3,
                                      "crop_frames": 128, "mixup": 0.2, "time_masks": 2, "freq_masks": 2}
    """Recommended training settings (below recipes, --set and flags): the CNN's measured recipe,
    with which the CRNN above was measured (bench/studies/lstm-mel-genre.jsonl, ``c2d3-r40``)."""
    head_defaults: ClassVar[dict] = {"pooling": "meanstd"}
    """The heads pool the mean and standard deviation of the LSTM's outputs over time (part of the
    measured recipe)."""

    def __post_init__(self) -> None:
        check_bounds(self, "backbone 'lstm'")

    @property
    def out_dim(self) -> int:
        """Width D of each output step: ``hidden`` times the number of directions."""
        return self.hidden * (2 if self.bidirectional else 1)


def build(config: LSTMConfig, n_bins: int):
    """An :class:`zoo_lstm.model.LSTMBackbone` reading ``n_bins`` features per step."""
    from .model import LSTMBackbone

    return LSTMBackbone(config, n_bins)


spec = ComponentSpec(
    kind="backbone",
    name="lstm",
    config=LSTMConfig,
    build=build,
    summary="LSTM over each clip's true length (bidirectional, stacked; packed on CUDA, unpacked on the CPU), "
            "optionally after a pooled conv front end (CRNN, conv_layers); returns the sequence [B, T, D] "
            "for the task head to pool",
)
