"""Shared backbone layers: input checks, length masks, masked pooling and the lengths after a windowed layer.

Every backbone takes ``x: Tensor[B, F, T]`` zero-padded along T and ``lengths: Tensor[B]``; these
small functions hold what each of them would otherwise repeat. They are public: a third-party
backbone may use them too (``from zoo.model.layers import length_mask``). ``who`` in a check is
the component as messages name it, e.g. ``"backbone 'cnn'"``.

Only the checks that read shapes run on every call; reading the *values* of ``lengths`` needs a
host sync, so :func:`host_lengths` is for backbones that move the lengths to the CPU anyway (packed
sequences), and the others clamp with :func:`clamp_lengths` instead.
"""
from __future__ import annotations

import torch

from ..errors import DataError

__all__ = [
    "check_bins",
    "check_input",
    "clamp_lengths",
    "host_lengths",
    "length_mask",
    "zero_padding",
    "masked_mean",
    "window_counts",
    "rnn_layer_parameters",
]


def check_bins(n_bins: int, who: str) -> int:
    """``n_bins`` as an int, or a ``DataError`` when it is below 1 (a feature with no rows)."""
    if n_bins < 1:
        raise DataError(f"{who}: n_bins={n_bins}; the features must give at least one bin per step")
    return int(n_bins)


def check_input(x: torch.Tensor, lengths: torch.Tensor, n_bins: int, who: str) -> None:
    """Check the shapes of a batch: ``x`` is ``[B, n_bins, T]`` and ``lengths`` holds ``B`` values.

    ``lengths`` may be ``[B]`` or any shape of ``B`` elements (e.g. ``[B, 1]``). Only shapes are
    read, so this costs no host sync. Raises ``DataError`` naming the shape given and the one
    expected.
    """
    if x.dim() != 3 or x.shape[1] != n_bins:
        raise DataError(
            f"{who} expects x of shape [batch, {n_bins}, time], got {list(x.shape)}; "
            f"the model was built for {n_bins} feature bins"
        )
    if lengths.numel() != x.shape[0]:
        raise DataError(
            f"{who}: {lengths.numel()} lengths for a batch of {x.shape[0]} clips; give one per clip, lengths[B]"
        )


def clamp_lengths(lengths: torch.Tensor, T: int, device: torch.device | str | None = None) -> torch.Tensor:
    """``lengths`` as ``Tensor[B]`` int64 on ``device``, clamped to 1..T.

    For backbones that do not read the values on the host: out-of-range lengths are clamped
    rather than checked, since checking them would force a host sync every step.
    """
    return lengths.reshape(-1).to(device=device, dtype=torch.int64).clamp(1, T)


def host_lengths(lengths: torch.Tensor, T: int, who: str) -> torch.Tensor:
    """``lengths`` as a CPU ``Tensor[B]`` int64, or a ``DataError`` when one lies outside 1..T.

    For backbones that need the lengths on the CPU anyway (``pack_padded_sequence``): there,
    checking the values costs nothing extra.
    """
    cpu = lengths.detach().to("cpu", torch.int64).reshape(-1)
    if cpu.numel() and (int(cpu.min()) < 1 or int(cpu.max()) > T):
        raise DataError(
            f"{who}: lengths must be in 1..{T} (the padded time axis), got {cpu.tolist()}; "
            f"drop empty clips before batching"
        )
    return cpu


def length_mask(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """``Tensor[B, T]`` bool, True on the valid steps ``t < lengths[b]`` of each clip (on ``lengths``' device)."""
    return torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]


def zero_padding(h: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``h`` with the padded steps set to zero: ``mask: Tensor[B, T]`` from :func:`length_mask`.

    ``h`` has the batch on axis 0 and time (size T) on axis ``dim``, e.g. ``x[B, F, T]``,
    ``h[B, C, F, T]`` (``dim=-1``) or a sequence ``[B, T, D]`` (``dim=1``). Multiplying (not
    ``masked_fill``) keeps gradients flowing exactly as through the valid steps alone.
    """
    shape = [1] * h.dim()
    shape[0], shape[dim] = mask.shape
    return h * mask.reshape(shape).to(h.dtype)


def masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean over the valid steps of a sequence: ``h[B, T, D]``, ``mask[B, T]`` -> ``Tensor[B, D]``.

    Every clip must have at least one valid step (lengths >= 1): an empty one divides by zero.
    """
    m = mask.unsqueeze(-1).to(h.dtype)
    return (h * m).sum(1) / m.sum(1)


def window_counts(lengths: torch.Tensor, size: int, stride: int) -> torch.Tensor:
    """How many windows of ``size`` every ``stride`` steps cover each clip: ``Tensor[B]``.

    ``1 + ceil(max(lengths - size, 0) / stride)``: the last window may reach into the padding
    (zero-padded), so no valid step is dropped. The lengths of an output after a windowed layer:
    a max pool with ``kernel = stride = k`` and ``ceil_mode`` gives ``ceil(lengths / k)``, a patch
    grid the number of patches along time.
    """
    return torch.div((lengths - size).clamp(min=0) + stride - 1, stride, rounding_mode="floor") + 1


def rnn_layer_parameters(rnn: torch.nn.RNNBase, layer: int) -> list[torch.nn.Parameter]:
    """The weights of one stacked layer of ``rnn`` (an ``nn.LSTM``, ``GRU`` or ``RNN``), both directions.

    For a backbone's ``named_blocks``: a multi-layer recurrent module is one ``nn.Module`` but
    several blocks, ``"rnn layer 0"``, ``"rnn layer 1"``, ... in input-to-output order.
    """
    if not 0 <= layer < rnn.num_layers:
        raise ValueError(f"layer {layer} of a {rnn.num_layers}-layer {type(rnn).__name__}; use 0..{rnn.num_layers - 1}")
    ends = (f"_l{layer}", f"_l{layer}_reverse")
    return [p for n, p in rnn.named_parameters() if n.endswith(ends)]
