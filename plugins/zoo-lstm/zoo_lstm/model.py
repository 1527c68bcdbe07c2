"""The LSTM network: packed sequences, so padded steps never reach the recurrence."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from zoo.errors import DataError
from zoo.protocols import BackboneOutput

from . import LSTMConfig


class LSTMBackbone(nn.Module):
    """``forward(x: Tensor[B, F, T], lengths: Tensor[B]) -> BackboneOutput(Tensor[B, T, D], lengths)``.

    Each clip runs for exactly ``lengths[b]`` steps (``pack_padded_sequence``), so a clip's
    outputs do not depend on how much padding its batch has, and the backward direction starts
    at the clip's true last step. Steps ``t >= lengths[b]`` of the output are zero.
    ``D = out_dim = hidden * (2 if bidirectional else 1)``. Submodule: ``rnn`` (an ``nn.LSTM``).
    """

    def __init__(self, config: LSTMConfig, n_bins: int):
        super().__init__()
        if n_bins < 1:
            raise DataError(f"backbone 'lstm': n_bins={n_bins}; the features must give at least one bin per step")
        self.config = config
        self.n_bins = int(n_bins)
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

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> BackboneOutput:
        """``x: Tensor[B, F, T]`` zero-padded along T, ``lengths: Tensor[B]`` in 1..T."""
        if x.dim() != 3 or x.shape[1] != self.n_bins:
            raise DataError(
                f"backbone 'lstm' expects x of shape [batch, {self.n_bins}, time], got {list(x.shape)}; "
                f"the model was built for {self.n_bins} feature bins"
            )
        B, _, T = x.shape
        # Packing needs the lengths on the CPU anyway, so checking them here costs nothing extra.
        cpu_lengths = lengths.detach().to("cpu", torch.int64).reshape(-1)
        if cpu_lengths.numel() != B:
            raise DataError(f"backbone 'lstm': {cpu_lengths.numel()} lengths for a batch of {B} clips; give one per clip")
        if B and (int(cpu_lengths.min()) < 1 or int(cpu_lengths.max()) > T):
            raise DataError(
                f"backbone 'lstm': lengths must be in 1..{T} (the padded time axis), got "
                f"{cpu_lengths.tolist()}; drop empty clips before batching"
            )
        packed = pack_padded_sequence(x.transpose(1, 2), cpu_lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        # total_length keeps T' == T even when the longest clip is shorter than the padding.
        hidden, _ = pad_packed_sequence(out, batch_first=True, total_length=T)
        # Hand back the caller's lengths on the caller's device: no extra host-to-device copy.
        return BackboneOutput(hidden, lengths.reshape(-1).to(device=x.device, dtype=torch.int64))
