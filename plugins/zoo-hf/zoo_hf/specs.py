"""The entry points: one zoo.protocols.ComponentSpec per component (importing this loads no torch or transformers).

A pretrained component's checkpoint is read when it is built (``config.resolved()``), never when its config is made.
"""
from __future__ import annotations

from zoo.protocols import ComponentSpec

from .configs import EmbedConfig, FbankConfig, HFASTConfig, HFW2VConfig, WaveConfig


def build_hf_ast(config: HFASTConfig, n_bins: int):
    """An :class:`zoo_hf.backbones.HFASTBackbone` for ``n_bins`` filter-bank rows."""
    from .backbones import HFASTBackbone

    return HFASTBackbone(config.resolved(), n_bins)


def build_hf_w2v(config: HFW2VConfig, n_bins: int):
    """An :class:`zoo_hf.backbones.HFW2VBackbone` for ``n_bins`` waveform channels (1: the ``wave`` feature)."""
    from .backbones import HFW2VBackbone

    return HFW2VBackbone(config.resolved(), n_bins)


def build_fbank(config: FbankConfig):
    from .frontends import Fbank

    return Fbank(config)


def build_wave(config: WaveConfig):
    from .frontends import Wave

    return Wave(config)


def build_hf_embed(config: EmbedConfig):
    from .embed import HFEmbed

    return HFEmbed(config.resolved())


hf_ast = ComponentSpec(
    kind="backbone", name="hf-ast", config=HFASTConfig, build=build_hf_ast,
    summary="a transformers ASTModel (weights=hf:MIT/ast-finetuned-audioset-10-10-0.4593 or a folder) on "
            "fbank; one embedding per 10.24 s window, layer=N|mean|last; random small AST without weights",
)
hf_w2v = ComponentSpec(
    kind="backbone", name="hf-w2v", config=HFW2VConfig, build=build_hf_w2v,
    summary="a wav2vec2-style encoder through AutoModel (wav2vec2, HuBERT, MERT with trust_remote_code) on "
            "wave; one embedding per 20 ms frame, layer=N|mean|last; random small wav2vec2 without weights",
)
fbank = ComponentSpec(
    kind="feature", name="fbank", config=FbankConfig, build=build_fbank,
    summary="Kaldi log mel filter banks as the AST was trained: 16 kHz, 128 bins, 25 ms / 10 ms, "
            "AudioSet normalisation (torchaudio.compliance.kaldi.fbank), one column per frame",
)
wave = ComponentSpec(
    kind="feature", name="wave", config=WaveConfig, build=build_wave,
    summary="the raw waveform [1, N] at 16 kHz (sr=24000 for MERT), one column per sample, for hf-w2v",
)
hf_embed = ComponentSpec(
    kind="feature", name="hf-embed", config=EmbedConfig, build=build_hf_embed,
    summary="a frozen pretrained model's hidden states [D, T'] (weights, layer), computed once per clip "
            "and cached: probes such as stats+hf-embed:genre train in seconds",
)
