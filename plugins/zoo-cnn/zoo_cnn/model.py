"""The 2D CNN: a spectrogram as a one-channel image, padding kept out of the valid region."""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from zoo.model.layers import check_bins, check_input, clamp_lengths, length_mask, window_counts, zero_padding
from zoo.protocols import BackboneOutput

from . import CNNConfig

WHO = "backbone 'cnn'"


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
        self.config = config
        self.n_bins = check_bins(n_bins, WHO)
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

    def named_blocks(self) -> list[tuple[str, list[nn.Module | nn.Parameter]]]:
        """Its blocks for freezing, input first: ``blocks.0``, ``blocks.1``, ... (conv + batch norm each)."""
        return [(f"blocks.{i}", [block]) for i, block in enumerate(self.blocks)]

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> BackboneOutput:
        """``x: Tensor[B, F, T]`` zero-padded along T, ``lengths: Tensor[B]``."""
        check_input(x, lengths, self.n_bins, WHO)
        T = x.shape[2]
        lengths = clamp_lengths(lengths, T, x.device)
        mask = length_mask(lengths, T)
        h = zero_padding(x, mask).unsqueeze(1)  # [B, 1, F, T]
        for block in self.blocks:
            h = zero_padding(block(h), mask)
            kf = self.pool if h.shape[2] > 1 else 1
            kt = self.pool if h.shape[3] > 1 else 1
            if kf > 1 or kt > 1:
                # A window that straddles a clip's end takes max(valid >= 0, zero) = the valid
                # values' max (post-ReLU), exactly as the clip's own last, shorter window does.
                h = F.max_pool2d(h, kernel_size=(kf, kt), stride=(kf, kt), ceil_mode=True)
                lengths = window_counts(lengths, kt, kt)  # ceil(lengths / kt)
                mask = length_mask(lengths, h.shape[3])
            h = self.drop(h)
        seq = h.mean(dim=2).transpose(1, 2)  # [B, T', D]
        seq = zero_padding(seq, mask, dim=1)
        return BackboneOutput(seq, lengths)
