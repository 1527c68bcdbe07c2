"""The LSTM network: every clip runs for exactly its own length, packed on CUDA, unpacked on the CPU."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from zoo.model.layers import (
    check_bins, check_input, host_lengths, length_mask, rnn_layer_parameters, window_counts, zero_padding,
)
from zoo.protocols import BackboneOutput

from . import LSTMConfig

WHO = "backbone 'lstm'"


def flip_within(h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``h: Tensor[B, T, D]`` with the first ``lengths[b]`` steps of row b reversed, the rest in place.

    ``lengths: Tensor[B]`` int64 on ``h``'s device, in 1..T. Its own inverse.
    """
    t = torch.arange(h.shape[1], device=h.device)[None, :]
    last = lengths[:, None] - 1
    index = torch.where(t <= last, last - t, t)
    return h.gather(1, index[:, :, None].expand(-1, -1, h.shape[2]))


def packed_forward(rnn: nn.LSTM, h: torch.Tensor, cpu_lengths: torch.Tensor) -> torch.Tensor:
    """``rnn`` over ``h: Tensor[B, T, F]`` as a packed sequence of ``cpu_lengths: Tensor[B]`` -> ``[B, T, D]``.

    cuDNN's path: one fused call for every layer and direction, padded steps skipped. Steps past a
    clip's length are zero.
    """
    packed = pack_padded_sequence(h, cpu_lengths, batch_first=True, enforce_sorted=False)
    out, _ = rnn(packed)
    # total_length keeps T' == T even when the longest clip is shorter than the padding.
    return pad_packed_sequence(out, batch_first=True, total_length=h.shape[1])[0]


def unpacked_forward(rnn: nn.LSTM, h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """What :func:`packed_forward` gives, computed over the padded batch: ``h: Tensor[B, T, F]`` -> ``[B, T, D]``.

    Torch's CPU LSTM takes a per-time-step path for a packed batch whose lengths differ, and its
    backward pass there is several times slower than over the same batch unpacked (docs/benchmarks.md).
    Each layer and direction of ``rnn`` runs unpacked with its own parameters: the forward
    direction needs nothing more, since the padding comes after a clip's last step; the reverse
    direction reads each clip reversed within its own length (:func:`flip_within`, padding left
    at the end) and its output is reversed back. Dropout between layers as ``nn.LSTM`` applies it.
    Steps past a clip's length are zeroed. ``lengths: Tensor[B]`` int64 on ``h``'s device, in 1..T.
    """
    B, T, _ = h.shape
    directions = ("", "_reverse") if rnn.bidirectional else ("",)
    for layer in range(rnn.num_layers):
        outs = []
        for suffix in directions:
            weights = [getattr(rnn, f"{name}_l{layer}{suffix}") for name in ("weight_ih", "weight_hh")]
            if rnn.bias:
                weights += [getattr(rnn, f"{name}_l{layer}{suffix}") for name in ("bias_ih", "bias_hh")]
            zeros = h.new_zeros(1, B, rnn.hidden_size)
            inp = flip_within(h, lengths) if suffix else h
            # One layer, one direction, no dropout inside: the layers are chained here.
            out = torch.lstm(inp, (zeros, zeros), weights, rnn.bias, 1, 0.0, rnn.training, False, True)[0]
            outs.append(flip_within(out, lengths) if suffix else out)
        h = torch.cat(outs, dim=-1) if len(outs) > 1 else outs[0]
        if layer < rnn.num_layers - 1 and rnn.dropout:
            h = F.dropout(h, rnn.dropout, rnn.training)
    mask = torch.arange(T, device=h.device)[None, :] < lengths[:, None]
    return zero_padding(h, mask, dim=1)


class ConvFrontEnd(nn.Module):
    """``forward(x: Tensor[B, F, T], lengths: Tensor[B]) -> (Tensor[B, out_dim, T'], lengths')``.

    ``layers`` blocks of a convolution (``dims=1``: over time across all bins, kernel ``kernel``;
    ``dims=2``: over bins and time, ``kernel`` x ``kernel``; same padding), batch norm, ReLU and a
    max pool of 2 along time (and bins, for ``dims=2``; ``ceil_mode``), so
    ``T' = ceil(T / 2 ** layers)`` and each clip's length shrinks the same way. ``out_dim``:
    ``channels``, or for ``dims=2`` ``channels`` times the pooled bin rows (channels of a row
    stay together). Steps past a clip's length are zeroed before each convolution and before
    each pool (after the ReLU, so a zero never wins a max over a valid step), so a clip gives
    the same output alone and in a padded batch (in eval mode)."""

    def __init__(self, n_bins: int, channels: int, layers: int, kernel: int, dims: int = 1):
        super().__init__()
        conv, norm, pool = (nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d) if dims == 1 else (
            nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d)
        first = n_bins if dims == 1 else 1
        self.dims = dims
        self.blocks = nn.ModuleList(
            nn.Sequential(conv(first if i == 0 else channels, channels, kernel, padding=kernel // 2, bias=False),
                          norm(channels), nn.ReLU(inplace=True))
            for i in range(layers))
        self.pool = pool(2, ceil_mode=True)
        rows = n_bins
        for _ in range(layers):
            rows = -(-rows // 2)
        self.out_dim = channels if dims == 1 else channels * rows

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.dims == 2:
            x = x.unsqueeze(1)  # [B, 1, F, T]
        for block in self.blocks:
            mask = length_mask(lengths, x.shape[-1])
            x = self.pool(zero_padding(block(zero_padding(x, mask)), mask))
            lengths = window_counts(lengths, 2, 2)
        if self.dims == 2:
            x = x.flatten(1, 2)  # [B, C * F', T']
        return zero_padding(x, length_mask(lengths, x.shape[-1])), lengths

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """What :meth:`forward` makes of ``lengths`` (on any device): halved, rounded up, per block."""
        for _ in self.blocks:
            lengths = window_counts(lengths, 2, 2)
        return lengths


class LSTMBackbone(nn.Module):
    """``forward(x: Tensor[B, F, T], lengths: Tensor[B]) -> BackboneOutput(Tensor[B, T, D], lengths)``.

    Each clip runs for exactly ``lengths[b]`` steps, so a clip's outputs do not depend on how much
    padding its batch has, and the backward direction starts at the clip's true last step. Steps
    ``t >= lengths[b]`` of the output are zero. ``D = out_dim = hidden * (2 if bidirectional else 1)``.
    Submodules: ``rnn`` (an ``nn.LSTM``); with ``conv_layers`` > 0, ``frontend`` (a
    :class:`ConvFrontEnd`) before it, and then T and the lengths are those after its pooling.

    On the CPU the batch runs unpacked (:func:`unpacked_forward`, same numbers, several times
    faster to train); elsewhere packed (:func:`packed_forward`, cuDNN's fused path on CUDA).
    ``packed_on_cpu = True`` forces the packed path on the CPU too (benchmarks, equivalence tests).
    """

    packed_on_cpu: bool = False

    def __init__(self, config: LSTMConfig, n_bins: int):
        super().__init__()
        self.config = config
        self.n_bins = check_bins(n_bins, WHO)
        self.out_dim = config.out_dim
        self.frontend = (ConvFrontEnd(self.n_bins, config.conv_channels, config.conv_layers, config.conv_kernel,
                                      config.conv_dims) if config.conv_layers else None)
        self.rnn = nn.LSTM(
            input_size=self.frontend.out_dim if self.frontend is not None else self.n_bins,
            hidden_size=config.hidden,
            num_layers=config.layers,
            batch_first=True,
            bidirectional=config.bidirectional,
            # torch warns when dropout is set on a single layer: it would apply to nothing.
            dropout=config.dropout if config.layers > 1 else 0.0,
        )

    def named_blocks(self) -> list[tuple[str, list[nn.Module | nn.Parameter]]]:
        """Its blocks for freezing, input first: the ``"frontend"`` when there is one, then each
        stacked layer of ``rnn`` (both directions), ``"rnn layer 0"``, ``"rnn layer 1"``, ...; a
        one-layer ``rnn`` is one block, ``"rnn"``."""
        front: list[tuple[str, list[nn.Module | nn.Parameter]]] = (
            [("frontend", [self.frontend])] if self.frontend is not None else [])
        if self.rnn.num_layers == 1:
            return front + [("rnn", [self.rnn])]
        return front + [(f"rnn layer {i}", rnn_layer_parameters(self.rnn, i)) for i in range(self.rnn.num_layers)]

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> BackboneOutput:
        """``x: Tensor[B, F, T]`` zero-padded along T, ``lengths: Tensor[B]`` in 1..T."""
        check_input(x, lengths, self.n_bins, WHO)
        # Both paths need the lengths' values on the host (packing) or read them there for free
        # (the CPU), so checking them costs nothing extra.
        cpu_lengths = host_lengths(lengths, x.shape[2], WHO)
        if self.frontend is not None:
            x, lengths = self.frontend(x, lengths.reshape(-1).to(device=x.device, dtype=torch.int64))
            cpu_lengths = self.frontend.output_lengths(cpu_lengths)  # on the host: no device sync
        h = x.transpose(1, 2)
        if x.device.type == "cpu" and not self.packed_on_cpu:
            hidden = unpacked_forward(self.rnn, h, cpu_lengths)
        else:
            hidden = packed_forward(self.rnn, h, cpu_lengths)
        # Hand back the caller's lengths on the caller's device: no extra host-to-device copy.
        return BackboneOutput(hidden, lengths.reshape(-1).to(device=x.device, dtype=torch.int64))
