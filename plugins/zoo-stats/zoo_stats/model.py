"""Per-bin statistics over each clip's valid steps, standardised: the zoo's linear baseline."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.model.layers import check_bins, check_input, clamp_lengths, length_mask, masked_mean, zero_padding
from zoo.protocols import BackboneOutput

from . import StatsConfig

WHO = "backbone 'stats'"

_VAR_FLOOR = 1e-12
"""Smallest variance under the square root: a constant bin (or a one-step clip) has std 0, and
the square root's gradient there would be infinite."""


class _ScaleShift(nn.Module):
    """``y = x * weight + bias`` per statistic: the learnable part when no batch norm is used."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight + self.bias


class StatsBackbone(nn.Module):
    """``forward(x: Tensor[B, F, T], lengths: Tensor[B]) -> BackboneOutput(Tensor[B, S * F])``.

    For each clip and bin, the statistics of ``config.statistics`` (S of them) over the clip's
    first ``lengths[b]`` steps only, so padding never enters: mean, population standard
    deviation (numpy's ``std``), minimum, maximum, and the mean of ``|x[t+1] - x[t]|`` over
    consecutive valid steps (0 for a one-step clip). The output is laid out statistic-major:
    ``[mean of bins 0..F-1, std of bins 0..F-1, ...]``, computed in float32 whatever the input
    dtype (sums of squared dB values overflow half precision).

    ``norm="batch"``: a ``BatchNorm1d`` whose running mean and variance average every training
    batch with equal weight (``momentum=None``), so in eval mode each statistic is standardised
    with the training set's mean and variance, as a standard scaler fitted on it would. Its
    scale and shift (or, with ``norm="none"``, a plain per-statistic scale and shift) are the
    backbone's only weights: redundant under a linear head, they give transfer and freezing
    something to hold. Submodule and only block (``named_blocks``): ``norm``; frozen, a batch
    norm keeps the source's statistics.

    Lengths outside 1..T are clamped (checking them would force a host sync every step).
    """

    def __init__(self, config: StatsConfig, n_bins: int):
        super().__init__()
        self.config = config
        self.n_bins = check_bins(n_bins, WHO)
        self.statistics = config.statistics
        self.out_dim = len(self.statistics) * self.n_bins
        if config.norm == "batch":
            self.norm: nn.Module = nn.BatchNorm1d(self.out_dim, momentum=None)
        else:
            self.norm = _ScaleShift(self.out_dim)

    def named_blocks(self) -> list[tuple[str, list[nn.Module | nn.Parameter]]]:
        """Its one block for freezing: ``norm`` (the statistics themselves have no weights)."""
        return [("norm", [self.norm])]

    def pool(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The raw statistics ``Tensor[B, S * F]`` (float32, before normalisation)."""
        check_input(x, lengths, self.n_bins, WHO)
        x = x.float()
        T = x.shape[2]
        lengths = clamp_lengths(lengths, T, x.device)
        mask = length_mask(lengths, T)  # [B, T]
        valid = mask[:, None, :]  # [B, 1, T]
        n = lengths.to(x.dtype)[:, None]  # [B, 1]
        mean = masked_mean(x.transpose(1, 2), mask)  # [B, F]
        out = []
        for stat in self.statistics:
            if stat == "mean":
                out.append(mean)
            elif stat == "std":
                # Two passes (deviations from the mean) rather than E[x^2] - E[x]^2: dB values near
                # -80 would lose the variance to cancellation in float32.
                var = (zero_padding(x - mean[..., None], mask) ** 2).sum(-1) / n
                out.append(var.clamp_min(_VAR_FLOOR).sqrt())
            elif stat == "min":
                out.append(x.masked_fill(~valid, float("inf")).amin(-1))
            elif stat == "max":
                out.append(x.masked_fill(~valid, float("-inf")).amax(-1))
            elif stat == "delta":
                steps = length_mask(lengths - 1, T - 1)  # pairs (t, t+1), both valid
                moved = zero_padding((x[..., 1:] - x[..., :-1]).abs(), steps)
                out.append(moved.sum(-1) / (lengths - 1).clamp(min=1).to(x.dtype)[:, None])
            else:  # StatsConfig.statistics only names the ones above
                raise AssertionError(f"unhandled statistic {stat!r}")
        return torch.cat(out, dim=1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> BackboneOutput:
        """``x: Tensor[B, F, T]`` zero-padded along T, ``lengths: Tensor[B]``."""
        return BackboneOutput(self.norm(self.pool(x, lengths)))

    # -- zoo.protocols.FixedStatistics: the engine fits the linear heads on this to convergence --------
    def fixed_pool(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The statistics before standardisation, ``Tensor[B, S * F]``: :meth:`pool`, which learns nothing."""
        return self.pool(x, lengths)

    def standardise(self, z: torch.Tensor) -> torch.Tensor:
        """What ``forward`` does after :meth:`pool`: the batch norm (or scale and shift)."""
        return self.norm(z)

    @torch.no_grad()
    def set_standardisation(self, mean: torch.Tensor, var: torch.Tensor) -> None:
        """In eval mode ``standardise(z)`` becomes ``(z - mean) / sqrt(var)`` with ``norm="batch"``
        (a standard scaler: a statistic of variance 0 is only centred), ``z`` itself with ``"none"``.

        The batch norm adds its ``eps`` under the square root, so its running variance is set to
        ``var - eps``: ``sqrt(running_var + eps)`` is then the standard deviation itself, and a saved
        model (whose ``eps`` is not in its state dict) predicts the same after loading."""
        norm: Any = self.norm  # a BatchNorm1d, or the affine-free stand-in without one
        if isinstance(norm, nn.BatchNorm1d):
            assert norm.running_mean is not None and norm.running_var is not None  # it tracks statistics
            assert norm.num_batches_tracked is not None
            mean = mean.to(norm.running_mean)
            var = var.to(torch.float64)
            running = torch.where(var > 0, var - norm.eps, torch.ones_like(var) - norm.eps)
            norm.running_mean.copy_(mean)
            norm.running_var.copy_(running.to(norm.running_var))
            norm.num_batches_tracked.fill_(1)
        norm.weight.fill_(1.0)
        norm.bias.fill_(0.0)
