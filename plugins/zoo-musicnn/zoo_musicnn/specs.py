"""The entry points: one zoo.protocols.ComponentSpec per component (importing this loads no torch)."""
from __future__ import annotations

from zoo.protocols import ComponentSpec

from .configs import EmbedConfig, MelConfig, MusicnnConfig


def build_musicnn(config: MusicnnConfig, n_bins: int):
    """A :class:`zoo_musicnn.backbone.MusicnnBackbone` (``n_bins`` must be 96: ``musicnn-mel``)."""
    from .backbone import MusicnnBackbone

    return MusicnnBackbone(config, n_bins)


def build_mel(config: MelConfig):
    from .frontend import MusicnnMel

    return MusicnnMel(config)


def build_embed(config: EmbedConfig):
    from .embed import MusicnnEmbed

    return MusicnnEmbed(config)


musicnn = ComponentSpec(
    kind="backbone", name="musicnn", config=MusicnnConfig, build=build_musicnn,
    summary="musicnn (Pons & Serra 2019) pretrained on MSD or MagnaTagATune tags (model=MSD_musicnn|MTT_musicnn|"
            "MSD_vgg|MTT_vgg) on musicnn-mel; one embedding per 3 s window (layer=penultimate|taggram|pool)",
)
musicnn_mel = ComponentSpec(
    kind="feature", name="musicnn-mel", config=MelConfig, build=build_mel,
    summary="musicnn's own log-mel front end: 16 kHz, 96 bands, hop 256, log10(10000 x + 1); not standardised",
)
musicnn_embed = ComponentSpec(
    kind="feature", name="musicnn-embed", config=EmbedConfig, build=build_embed,
    summary="a frozen pretrained musicnn's penultimate layer [200, W] per 3 s window, computed once per clip and "
            "cached: probes such as stats+musicnn-embed:genre train in seconds",
)
