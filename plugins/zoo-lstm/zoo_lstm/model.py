"""The LSTM network: packed sequences, so padded steps never reach the recurrence."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from zoo.model.layers import check_bins, check_input, host_lengths, rnn_layer_parameters
from zoo.protocols import BackboneOutput

from . import LSTMConfig

WHO = "backbone 'lstm'"


class LSTMBackbone(nn.Module):
    """``forward(x: Tensor[B, F, T], lengths: Tensor[B]) -> BackboneOutput(Tensor[B, T, D], lengths)``.

    Each clip runs for exactly ``lengths[b]`` steps (``pack_padded_sequence``), so a clip's
    outputs do not depend on how much padding its batch has, and the backward direction starts
    at the clip's true last step. Steps ``t >= lengths[b]`` of the output are zero.
    ``D = out_dim = hidden * (2 if bidirectional else 1)``. Submodule: ``rnn`` (an ``nn.LSTM``).
    """

    def __init__(self, config: LSTMConfig, n_bins: int):
        super().__init__()
        self.config = config
        self.n_bins = check_bins(n_bins, WHO)
        self.out_dim = config.out_dim
        self.rnn = nn.LSTM(
            input_size=self.n_bins,
            hidden_size=config.hidden,
            num_layers=config.layers,
            batch_first=True,
            bidirectional=config.bidirectional,
            # torch warns when dropout is set on a single layer: it would apply to nothing.
            dropout=config.dropout if config.layers > 1 else 0.0,
        )

    def named_blocks(self) -> list[tuple[str, list[nn.Module | nn.Parameter]]]:
        """Its blocks for freezing, input first: each stacked layer of ``rnn`` (both directions),
        ``"rnn layer 0"``, ``"rnn layer 1"``, ...; a one-layer ``rnn`` is one block, ``"rnn"``."""
        if self.rnn.num_layers == 1:
            return [("rnn", [self.rnn])]
        return [(f"rnn layer {i}", rnn_layer_parameters(self.rnn, i)) for i in range(self.rnn.num_layers)]

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> BackboneOutput:
        """``x: Tensor[B, F, T]`` zero-padded along T, ``lengths: Tensor[B]`` in 1..T."""
        check_input(x, lengths, self.n_bins, WHO)
        T = x.shape[2]
        # Packing needs the lengths on the CPU anyway, so checking their values costs nothing extra.
        cpu_lengths = host_lengths(lengths, T, WHO)
        packed = pack_padded_sequence(x.transpose(1, 2), cpu_lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        # total_length keeps T' == T even when the longest clip is shorter than the padding.
        hidden, _ = pad_packed_sequence(out, batch_first=True, total_length=T)
        # Hand back the caller's lengths on the caller's device: no extra host-to-device copy.
        return BackboneOutput(hidden, lengths.reshape(-1).to(device=x.device, dtype=torch.int64))
