"""The two backbones around transformers encoders: ``hf-ast`` on filter banks, ``hf-w2v`` on waveforms."""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import ConfigError
from zoo.model.layers import check_bins, check_input, clamp_lengths, length_mask, zero_padding
from zoo.protocols import BackboneOutput

from .configs import HFASTConfig, HFW2VConfig
from .encoders import (ast_scratch, encode, final_norm, freeze_first, layers_of, load_model, select_layer,
                       wav2vec2_scratch)


def _ceil_div(a: torch.Tensor, b: int) -> torch.Tensor:
    return torch.div(a + b - 1, b, rounding_mode="floor")


class HFASTBackbone(nn.Module):
    """``forward(x: Tensor[B, F, T], lengths: Tensor[B]) -> BackboneOutput`` with a transformers ``ASTModel`` inside.

    The AST reads a fixed window of ``max_length`` frames (1024, 10.24 s, for the AudioSet
    checkpoints) with one learned position per patch. Each clip is cut into such windows; frames
    past the clip's end are set to ``pad`` (what ``ASTFeatureExtractor`` pads with), so a clip
    gives the same output alone or in a padded batch, and a clip within one window gives exactly
    what the transformers model gives for the extractor's output. As in the AST, the padding is
    attended to (the model was trained that way); windows holding no frame of a clip are not run.

    Output: "pooled" -> ``Tensor[B, W, D]``, one embedding per window (the mean of the CLS and
    distillation tokens), with the clip's window count ``ceil(length / max_length)`` as lengths;
    "tokens" -> ``Tensor[B, C, D]``, one embedding per patch column (the patch tokens averaged
    over frequency), windows stepping by whole columns so columns fall every ``time_stride``
    frames throughout, ``ceil(length / time_stride)`` of them per clip.

    ``x`` has ``num_mel_bins`` rows (128 for the AudioSet checkpoints: the ``fbank`` feature);
    a from-scratch model is built for the features' bins (at least one 16-bin patch, the
    missing rows filled with ``pad``). ``D`` = the model's hidden size.
    """

    model: Any  # a transformers model: its config and submodules are read by name

    def __init__(self, config: HFASTConfig, n_bins: int):
        super().__init__()
        self.config = config
        self.n_bins = check_bins(n_bins, config.component)
        self.model = load_model(config, "ast", lambda: ast_scratch(config, self.n_bins))
        hf = self.model.config
        self.n_mels, self.max_length = int(hf.num_mel_bins), int(hf.max_length)
        if self.n_bins > self.n_mels or (config.record and self.n_bins != self.n_mels):
            raise ConfigError(
                f"{config.component}: '{config.weights or 'the model'}' takes {self.n_mels} mel bins, but the "
                f"features give {self.n_bins}; use the fbank feature alone (hf-ast+fbank:TASK) with "
                f"fbank.n_mels={self.n_mels}"
            )
        self.patch, self.tstride = int(hf.patch_size), int(hf.time_stride)
        self.n_freq = (self.n_mels - self.patch) // int(hf.frequency_stride) + 1
        self.n_time = (self.max_length - self.patch) // self.tstride + 1
        self.out_dim = int(hf.hidden_size)
        self.output = config.output
        self.pad = config.pad_value
        self.layer = config.layer_choice
        select_layer(self.model, "ast", self.layer)
        freeze_first(self.named_blocks(), config.freeze, config.component)

    def named_blocks(self) -> list[tuple[str, list[nn.Module | nn.Parameter]]]:
        """Input first: ``layers.0`` with the embeddings that feed it (patches, positions, CLS and
        distillation tokens), ``layers.1``, ..., then ``layernorm`` when ``layer=last`` uses it."""
        embeddings: list[nn.Module | nn.Parameter] = [self.model.embeddings]
        layers = layers_of(self.model)
        blocks: list[tuple[str, list[nn.Module | nn.Parameter]]] = (
            [(f"layers.{i}", [m]) for i, m in enumerate(layers)] or [("embeddings", [])])
        blocks[0] = (blocks[0][0], embeddings + blocks[0][1])
        norm = final_norm(self.model, "ast")
        if norm is not None and any(True for _ in getattr(*norm).parameters()):
            blocks.append(("layernorm", [getattr(*norm)]))
        return blocks

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> BackboneOutput:
        """``x: Tensor[B, F, T]`` normalised filter banks zero-padded along T, ``lengths: Tensor[B]``."""
        check_input(x, lengths, self.n_bins, self.config.component)
        B, Fb, T = x.shape
        lengths = clamp_lengths(lengths, T, x.device)
        x = torch.where(length_mask(lengths, T)[:, None, :], x, x.new_full((), self.pad))
        M = self.max_length
        step = M if self.output == "pooled" else self.n_time * self.tstride
        n = max(1, math.ceil(T / step))
        x = F.pad(x, (0, (n - 1) * step + M - T, 0, self.n_mels - Fb), value=self.pad)
        windows = x.unfold(2, M, step).permute(0, 2, 3, 1)  # [B, n, M, n_mels]: transformers' [time, freq]
        counts = _ceil_div(lengths, step)  # windows that hold frames of each clip
        valid = length_mask(counts, n)  # [B, n]
        h = encode(self.model, self.layer, windows[valid])  # [k, 2 + n_freq * n_time, D]
        if self.output == "pooled":
            out = h.new_zeros(B, n, self.out_dim)
            out[valid] = (h[:, 0] + h[:, 1]) / 2
            return BackboneOutput(out, counts)
        cols = h[:, 2:].reshape(h.shape[0], self.n_freq, self.n_time, -1).mean(dim=1)  # [k, n_time, D]
        out = h.new_zeros(B, n, self.n_time, self.out_dim)
        out[valid] = cols
        out = out.reshape(B, n * self.n_time, self.out_dim)
        n_cols = _ceil_div(lengths, self.tstride)
        return BackboneOutput(zero_padding(out, length_mask(n_cols, out.shape[1]), dim=1), n_cols)


class HFW2VBackbone(nn.Module):
    """``forward(x: Tensor[B, C, N], lengths: Tensor[B]) -> BackboneOutput(Tensor[B, T', D], lengths)``.

    A wav2vec2-style encoder (``AutoModel``: wav2vec2, HuBERT, WavLM, data2vec-audio, MERT with
    ``trust_remote_code``) on the waveform: ``C`` = 1 from the ``wave`` feature (more rows are
    taken as channels and averaged). Each clip is encoded exactly as if alone: clips are grouped
    by length and each group runs unpadded (the base models' group norm spans the whole clip,
    so padding would change their output). A clip shorter than the encoder's receptive field
    (400 samples for the usual front end) is zero-padded to it. With ``normalize`` each clip is
    first scaled to zero mean and unit variance, as ``Wav2Vec2FeatureExtractor`` does.

    Output: the chosen layer's hidden states, one per encoder frame (every 320 samples, 20 ms
    at 16 kHz, for the usual front end), and each clip's frame count as lengths.
    """

    model: Any  # a transformers model: its config and submodules are read by name

    def __init__(self, config: HFW2VConfig, n_bins: int):
        super().__init__()
        self.config = config
        self.n_bins = check_bins(n_bins, config.component)
        self.model = load_model(config, "wav2vec2", lambda: wav2vec2_scratch(config))
        hf = self.model.config
        self.kernels, self.strides = tuple(hf.conv_kernel), tuple(hf.conv_stride)
        self.receptive_field, jump = 1, 1
        for k, s in zip(self.kernels, self.strides):
            self.receptive_field += (k - 1) * jump
            jump *= s
        self.hop_length = jump
        self.out_dim = int(hf.hidden_size)
        self.normalize = config.normalizes
        self.layer = config.layer_choice
        select_layer(self.model, "wav2vec2", self.layer)
        freeze_first(self.named_blocks(), config.freeze, config.component)

    def frames(self, n: int) -> int:
        """Encoder frames for ``n`` samples (at least the receptive field)."""
        n = max(n, self.receptive_field)
        for k, s in zip(self.kernels, self.strides):
            n = (n - k) // s + 1
        return n

    def _masking(self, clips: int, frames: int) -> dict[str, torch.Tensor]:
        """No SpecAugment time mask for clips shorter than one mask (transformers refuses to draw it).

        In training, a checkpoint with ``mask_time_prob`` > 0 masks spans of ``mask_time_length``
        frames, as its own fine-tuning would; a clip of fewer frames is passed an empty mask.
        """
        hf = self.model.config
        if (self.training and getattr(hf, "apply_spec_augment", False) and getattr(hf, "mask_time_prob", 0) > 0
                and frames < getattr(hf, "mask_time_length", 0)):
            device = self.model.feature_projection.projection.weight.device
            return {"mask_time_indices": torch.zeros(clips, frames, dtype=torch.bool, device=device)}
        return {}

    def named_blocks(self) -> list[tuple[str, list[nn.Module | nn.Parameter]]]:
        """Input first: ``feature_encoder`` (the convolutions), then ``encoder.layers.0`` with what
        feeds it (feature projection, masking embedding, positional convolution, the base models'
        norm), ``encoder.layers.1``, ..., then ``encoder.layer_norm`` when a final norm is used."""
        m = self.model
        encoder = m.encoder
        feed: list[nn.Module | nn.Parameter] = [m.feature_projection]
        if isinstance(getattr(m, "masked_spec_embed", None), nn.Parameter):
            feed.append(m.masked_spec_embed)
        feed.append(encoder.pos_conv_embed)
        norm = final_norm(m, "wav2vec2")
        if norm is None and isinstance(getattr(encoder, "layer_norm", None), nn.Module):
            feed.append(encoder.layer_norm)  # base models: the norm before the first layer
        blocks: list[tuple[str, list[nn.Module | nn.Parameter]]] = [("feature_encoder", [m.feature_extractor])]
        layers: list[tuple[str, list[nn.Module | nn.Parameter]]] = (
            [(f"encoder.layers.{i}", [layer]) for i, layer in enumerate(layers_of(m))] or [("encoder.input", [])])
        layers[0] = (layers[0][0], feed + layers[0][1])
        blocks += layers
        if norm is not None and any(True for _ in getattr(*norm).parameters()):
            blocks.append(("encoder.layer_norm", [getattr(*norm)]))
        return blocks

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> BackboneOutput:
        """``x: Tensor[B, C, N]`` waveforms zero-padded along N, ``lengths: Tensor[B]`` in samples.

        Reads the lengths on the host (one sync per batch): the clips are grouped by length.
        """
        check_input(x, lengths, self.n_bins, self.config.component)
        B, _, N = x.shape
        wave = x.float().mean(dim=1)  # [B, N]
        lens = clamp_lengths(lengths, N, "cpu").tolist()
        parts = []
        for n in sorted(set(lens)):
            idx = [i for i, length in enumerate(lens) if length == n]
            w = wave[idx, :n]
            if self.normalize:
                w = (w - w.mean(dim=1, keepdim=True)) / torch.sqrt(w.var(dim=1, unbiased=False, keepdim=True) + 1e-7)
            if n < self.receptive_field:
                w = F.pad(w, (0, self.receptive_field - n))
            parts.append((idx, encode(self.model, self.layer, w, **self._masking(len(idx), self.frames(n)))))
        longest = max(h.shape[1] for _, h in parts)
        out = parts[0][1].new_zeros(B, longest, self.out_dim)
        counts = torch.zeros(B, dtype=torch.int64)
        for idx, h in parts:
            out[idx, : h.shape[1]] = h
            counts[idx] = h.shape[1]
        return BackboneOutput(out, counts.to(x.device))
