"""The ``hf-embed`` feature: a frozen pretrained model's hidden states ``[D, T']`` per clip, cached like any feature.

A probe trains on these instead of the audio: ``zoo run stats+hf-embed:genre`` (per-dimension
statistics under a linear head) or ``lstm+hf-embed:genre``. The zoo's feature cache keys each
clip's array by the file's content and :meth:`HFEmbed.settings`, which name the model (its type
and the sha256 of its weights), the layer and the front end, so the expensive forward pass runs
once per clip; every later run, probe or seed reads the cache.

Columns: one per encoder frame for a waveform encoder (every 320 samples, 20 ms at 16 kHz,
for the usual front end: the clip is padded by half the encoder's window at each end, so frame
``t`` is centred on sample ``t * hop_length`` and a clip of N samples gives ``1 + N // hop_length``
frames, as the zoo's spectrogram features); one per AST patch column (every 10 filter-bank
frames, 100 ms), the patch tokens averaged over frequency.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, cast

import numpy as np

from zoo.data.audio import prepare_waveform
from zoo.model.frozen import FrozenNetworkFeature

from .configs import EmbedConfig
from .frontends import Fbank, _Frontend


class HFEmbed(FrozenNetworkFeature, _Frontend):
    """``from_audio(y, sr) -> [D, T']`` float32: the chosen layer of a frozen model, computed without gradients.

    The model is loaded on first use (and not sent to the zoo's extraction workers: each loads
    its own), in eval mode, on ``config.device``. Without weights it is a small AST initialised
    from torch seed 0: random-network embeddings, for tests.
    """

    def __init__(self, config: EmbedConfig, name: str = "hf-embed"):
        super().__init__(name, config)
        self.family = config.resolved_family
        # HFASTConfig for the AST family, HFW2VConfig for wav2vec2: the family decides which.
        self.backbone_config: Any = cast(Any, config.backbone_config())
        if self.family == "ast":
            self.fbank = Fbank(self.backbone_config.fbank)
            stride = int(config.model_config.get("time_stride", 10))
            self._sr, self._hop = self.fbank.sample_rate, self.fbank.hop_length * stride
        else:
            full = self.backbone_config
            self.normalizes = full.normalizes
            # The clip is normalised here, before the centring pad; the backbone must not do it again.
            self.backbone_config = dataclasses.replace(full, normalize=False)
            strides = config.model_config.get("conv_stride", (5, 2, 2, 2, 2, 2, 2))
            self._sr, self._hop = full.sample_rate, int(math.prod(strides))
        self._model: Any = None

    @property
    def n_bins(self) -> int:
        return self.config.width

    @property
    def sample_rate(self) -> int:
        return self._sr

    @property
    def hop_length(self) -> int:
        return self._hop

    def settings(self) -> dict[str, Any]:
        """What decides the output (it keys the cache): the model's type and weights' sha256 (not the
        path: a moved checkpoint keeps its cache), the layer, the front end; not ``device``."""
        c = self.config
        out: dict[str, Any] = {"family": self.family, "layer": c.layer}
        if c.record:
            out.update(model_type=c.model_config.get("model_type", ""), weights_hash=c.weights_hash)
        else:
            out.update(model_type="scratch", seed=0, hidden_size=c.hidden_size, layers=c.layers, heads=c.heads)
        if self.family == "ast":
            out["fbank"] = self.fbank.settings()
            out["pad"] = self.backbone_config.pad_value
        else:
            out.update(sr=self._sr, normalize=self.normalizes, centre=True)
        return out

    def build_model(self) -> Any:
        """The encoder (frozen and placed by :class:`~zoo.model.frozen.FrozenNetworkFeature`)."""
        import torch

        from .backbones import HFASTBackbone, HFW2VBackbone

        with torch.random.fork_rng(devices=[]):  # a scratch model is the same in every process
            torch.manual_seed(0)
            if self.family == "ast":
                return HFASTBackbone(self.backbone_config, self.fbank.n_bins)
            return HFW2VBackbone(self.backbone_config, 1)

    def from_audio(self, y: np.ndarray, sr: int) -> np.ndarray:
        """``y[N]`` mono at ``sr`` Hz (resampled to ``sample_rate`` if different) -> ``[D, 1 + N // hop_length]``
        float32 (the AST: ``ceil(fbank frames / time_stride)`` columns, the same within one)."""
        import torch

        if self.family == "ast":
            x = self.fbank.from_audio(y, sr)  # [n_mels, T]
        else:
            y = prepare_waveform(y, sr, self._sr, 1, who=f"feature '{self.name}'")
            if self.normalizes:
                y = (y - y.mean()) / np.sqrt(y.var() + 1e-7)
            model = self.model()
            half = model.receptive_field // 2
            x = np.pad(y, (half, model.receptive_field - half))[None, :]
        model = self.model()
        device = self.device()
        with torch.inference_mode():
            out = model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None].to(device),
                        torch.tensor([x.shape[1]], device=device))
        h = out.hidden[0, : int(out.lengths[0])]  # [T', D]
        return np.ascontiguousarray(h.float().cpu().numpy().T, dtype=np.float32)
