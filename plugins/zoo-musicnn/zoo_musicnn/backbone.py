"""The ``musicnn`` backbone: musicnn (or its VGG) over 3 s windows of ``musicnn-mel``, one embedding per window."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.errors import ConfigError
from zoo.model.layers import check_input, length_mask
from zoo.protocols import BackboneOutput

from .configs import PATCH_FRAMES, MusicnnConfig, width
from .frontend import N_MELS
from .weights import build_network, load_pretrained


def window_counts(lengths: torch.Tensor, hop: int) -> torch.Tensor:
    """Windows per clip, as musicnn's extractor cuts them: ``1 + (L - 187) // hop`` (the frames after the
    last whole window are left out), and 1 for a clip shorter than 187 frames (zero-padded): ``Tensor[B]``."""
    return 1 + torch.div((lengths - PATCH_FRAMES).clamp(min=0), hop, rounding_mode="floor")


def windows(x: torch.Tensor, lengths: torch.Tensor, hop: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``x[B, 96, T]`` -> (patches ``[N, 187, 96]`` of every clip's windows in order, ``counts[B]``, ``mask[B, W]``).

    Only frames inside a clip's length (or, for a clip shorter than 187, its zero padding) reach
    its patches, so padding a batch never changes a clip's windows.
    """
    if x.shape[-1] < PATCH_FRAMES:
        x = nn.functional.pad(x, (0, PATCH_FRAMES - x.shape[-1]))
    grid = x.transpose(1, 2).unfold(1, PATCH_FRAMES, hop).transpose(2, 3)  # [B, W, 187, 96]
    counts = window_counts(lengths.to(x.device), hop).clamp(max=grid.shape[1])
    mask = length_mask(counts, grid.shape[1])
    return grid[mask], counts, mask


class MusicnnBackbone(nn.Module):
    """``forward(x[B, 96, T], lengths[B]) -> BackboneOutput([B, W, D], counts[B])``: ``layer`` of every 3 s window.

    ``D``: 200 (``penultimate``; VGG: 256), 50 (``taggram``) or 1506 (``pool``). The pretrained
    weights are read from the zoo's cache (converted from the installed ``musicnn`` wheel on first use).
    """

    def __init__(self, config: MusicnnConfig, n_bins: int):
        super().__init__()
        if n_bins != N_MELS:
            raise ConfigError(f"backbone 'musicnn' takes musicnn's 96-band log-mel; the features give {n_bins} bins: "
                              f"use musicnn+musicnn-mel:TASK")
        self.config = config
        self.net = build_network(config.model, tagger=config.layer == "taggram")
        if config.pretrained:
            load_pretrained(self.net, config.model)
        self.net.drop.p = config.dropout
        self.out_dim = width(config.model, config.layer)
        self._upto = "taggram" if config.layer == "taggram" else "penultimate"
        blocks = self.named_blocks()
        if config.freeze > len(blocks):
            raise ConfigError(f"backbone 'musicnn' setting 'freeze': {config.freeze} blocks, but {config.model} has "
                              f"{len(blocks)} ({', '.join(n for n, _ in blocks)}); give 0..{len(blocks)}")
        if config.freeze:
            from zoo.engine.freezing import freeze

            for _, members in blocks[: config.freeze]:
                freeze([p for m in members for p in m.parameters()], members)

    def named_blocks(self) -> list[tuple[str, list[Any]]]:
        """Input first. musicnn: ``frontend`` (input norm + the five convolutions), ``midend.0..2``,
        ``backend`` (norm + dense 200 + norm); VGG: ``conv1..conv5``; then ``output`` for the taggram."""
        net = self.net
        if hasattr(net, "timbral"):
            blocks = [("frontend", [net.input_bn, net.timbral, net.temporal])]
            blocks += [(f"midend.{i}", [m]) for i, m in enumerate(net.midend)]
            blocks.append(("backend", [net.pool_bn, net.dense, net.dense_bn]))
        else:
            blocks = [(f"conv{i + 1}", ([net.input_bn] if i == 0 else []) + [net.convs[i], net.bns[i]]) for i in range(5)]
        if net.output is not None:
            blocks.append(("output", [net.output]))
        return blocks

    def embed_windows(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(``[N, D]`` for the N windows of the batch, ``counts[B]``, ``mask[B, W]``)."""
        patches, counts, mask = windows(x, lengths, self.config.window_hop)
        return self.net(patches, self._upto)[self.config.layer], counts, mask

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> BackboneOutput:
        check_input(x, lengths, N_MELS, "backbone 'musicnn'")
        h, counts, mask = self.embed_windows(x, lengths)
        seq = h.new_zeros(mask.shape[0], mask.shape[1], h.shape[-1])
        seq[mask] = h
        return BackboneOutput(seq, counts)
