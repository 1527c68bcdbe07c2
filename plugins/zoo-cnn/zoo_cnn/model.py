"""The 2D CNN: a spectrogram as a one-channel image, padding kept out of the valid region."""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import DataError
from zoo.protocols import BackboneOutput

from . import CNNConfig


def _time_mask(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """``Tensor[B, T]`` bool, True on the valid steps of each clip."""
    return torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]


class CNNBackbone(nn.Module):
    """``forward(x: Tensor[B, F, T], lengths: Tensor[B]) -> BackboneOutput(Tensor[B, T', D], lengths')``.

    Each block is conv ('same' padding) -> batch norm -> ReLU -> max pool. After every ReLU the
    steps past a clip's length are set to zero, so the next convolution sees exactly the zeros
    it would see at the edge of the clip alone: in eval mode a clip's output does not depend on
    its batch's padding. (In training, batch norm's batch statistics include the padded zeros,
    as any batch-level statistic depends on the batch.)

    Pooling uses ``ceil_mode`` and is skipped along an axis of size 1, so short inputs (T = 1,
    chroma's F = 12) never shrink to 0: T' = ceil(T / pool) per block, and the lengths follow
    the same rule. Frequency is then averaged away (all rows are valid), leaving a sequence of
    ``D = out_dim = channels[-1]`` per step; steps past ``lengths'`` are zero. The task head pools
    over time. Submodules: ``blocks.{i}.conv``, ``blocks.{i}.norm``.

    Lengths outside 1..T are clamped (checking them would force a host sync every step).
    """

    def __init__(self, config: CNNConfig, n_bins: int):
        super().__init__()
        if n_bins < 1:
            raise DataError(f"backbone 'cnn': n_bins={n_bins}; the features must give at least one bin per step")
        self.config = config
        self.n_bins = int(n_bins)
        self.out_dim = int(config.channels[-1])
        self.pool = int(config.pool)
        blocks = []
        c_in = 1
        for c_out, k in zip(config.channels, config.block_kernels):
            blocks.append(nn.Sequential(OrderedDict(
                conv=nn.Conv2d(c_in, c_out, kernel_size=k, padding=k // 2, bias=False),  # BN adds the bias
                norm=nn.BatchNorm2d(c_out),
                act=nn.ReLU(inplace=True),
            )))
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> BackboneOutput:
        """``x: Tensor[B, F, T]`` zero-padded along T, ``lengths: Tensor[B]``."""
        if x.dim() != 3 or x.shape[1] != self.n_bins:
            raise DataError(
                f"backbone 'cnn' expects x of shape [batch, {self.n_bins}, time], got {list(x.shape)}; "
                f"the model was built for {self.n_bins} feature bins"
            )
        T = x.shape[2]
        lengths = lengths.reshape(-1).to(device=x.device, dtype=torch.int64).clamp(1, T)
        mask = _time_mask(lengths, T)
        h = (x * mask[:, None, :].to(x.dtype)).unsqueeze(1)  # [B, 1, F, T]
        for block in self.blocks:
            h = block(h) * mask[:, None, None, :].to(h.dtype)
            kf = self.pool if h.shape[2] > 1 else 1
            kt = self.pool if h.shape[3] > 1 else 1
            if kf > 1 or kt > 1:
                # A window that straddles a clip's end takes max(valid >= 0, zero) = the valid
                # values' max (post-ReLU), exactly as the clip's own last, shorter window does.
                h = F.max_pool2d(h, kernel_size=(kf, kt), stride=(kf, kt), ceil_mode=True)
                lengths = torch.div(lengths + kt - 1, kt, rounding_mode="floor")
                mask = _time_mask(lengths, h.shape[3])
            h = self.drop(h)
        seq = h.mean(dim=2).transpose(1, 2)  # [B, T', D]
        seq = seq * mask[:, :, None].to(seq.dtype)
        return BackboneOutput(seq, lengths)
