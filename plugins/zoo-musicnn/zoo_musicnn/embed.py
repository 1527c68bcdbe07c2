"""``musicnn-embed``: a frozen pretrained musicnn's embedding of every 3 s window ``[D, W]``, cached like any feature.

A probe trains on it instead of the audio (``zoo run stats+musicnn-embed:genre``). The zoo's
feature cache keys each clip's array by the file's content and :meth:`MusicnnEmbed.settings`
(the checkpoint's sha256, the layer, the windows, the front end), so the network runs once per
clip. Columns: musicnn's windows, one per ``window_hop`` frames of ``musicnn-mel`` (``hop_length``
= ``window_hop * 256`` samples, 2.992 s by default); ``W = 1 + (T - 187) // window_hop`` for
``T = 1 + N // 256`` frames, 1 for a clip under 3 s (zero-padded): within one column of
``1 + N // hop_length``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from zoo.data.audio import prepare_waveform
from zoo.model.frozen import FrozenNetworkFeature

from .configs import EmbedConfig, MusicnnConfig, width
from .frontend import HOP, SR, MusicnnMel, _NoLab, log_mel
from .weights import checkpoint_sha256


class MusicnnEmbed(FrozenNetworkFeature, _NoLab):
    """``from_audio(y, sr) -> [D, W]`` float32: ``layer`` of each window, computed without gradients in eval mode."""

    name = "musicnn-embed"
    sample_rate = SR

    def __init__(self, config: EmbedConfig):
        self.config = config
        self.n_bins = width(config.model, config.layer)
        self.hop_length = config.window_hop * HOP
        self._model: Any = None

    def settings(self) -> dict[str, Any]:
        """What decides the output: the checkpoint (its files' sha256), the layer, the windows, the front end; not ``device``."""
        c = self.config
        return {"model": c.model, "checkpoint_sha256": checkpoint_sha256(c.model), "layer": c.layer,
                "window_hop": c.window_hop, "mel": MusicnnMel().settings()}

    def build_model(self) -> Any:
        """The pretrained backbone (frozen and placed by :class:`~zoo.model.frozen.FrozenNetworkFeature`)."""
        from .backbone import MusicnnBackbone

        c = self.config
        return MusicnnBackbone(MusicnnConfig(model=c.model, layer=c.layer, window_hop=c.window_hop), 96)

    def from_audio(self, y: np.ndarray, sr: int) -> np.ndarray:
        import torch

        mel = log_mel(prepare_waveform(y, sr, SR, 1, who=f"feature '{self.name}'"))  # [96, T]
        device = self.device()
        with torch.inference_mode():
            h, _, _ = self.model().embed_windows(torch.from_numpy(mel)[None].to(device),
                                                 torch.tensor([mel.shape[1]], device=device))
        return np.ascontiguousarray(h.float().cpu().numpy().T, dtype=np.float32)

    def __repr__(self) -> str:
        return f"MusicnnEmbed({self.config!r})"
