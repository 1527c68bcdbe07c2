"""Tiny random checkpoints that transformers builds from a small config and saves, and short test audio.

Each is laid out as a published one is (``save_pretrained`` plus the feature extractor's
``preprocessor_config.json``), with random weights drawn from a fixed torch seed.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SR = 22050
"""Sample rate of the test audio files (the loader resamples them to each feature's rate)."""


def _transformers():
    return pytest.importorskip("transformers", reason="music-zoo-hf's tests need transformers: pip install -e plugins/zoo-hf")


def save_ast(folder: Path, *, classifier: bool = True, seed: int = 0) -> Path:
    """A 2-layer AST (width 32) on 128 mel bins and 64-frame windows, saved as the AudioSet ones are:
    a classification checkpoint (``audio_spectrogram_transformer.`` prefix, a classifier) with its
    feature extractor's ``preprocessor_config.json``. Tokens and positions are drawn at random
    (transformers starts them at zero), so that a mapping that misplaces one shows."""
    import torch

    transformers = _transformers()
    torch.manual_seed(seed)
    config = transformers.ASTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                    num_mel_bins=128, max_length=64, num_labels=3)
    model = (transformers.ASTForAudioClassification if classifier else transformers.ASTModel)(config)
    base = model.audio_spectrogram_transformer if classifier else model
    with torch.no_grad():
        for p in (base.embeddings.cls_token, base.embeddings.distillation_token, base.embeddings.position_embeddings):
            p.normal_(0.0, 0.5)
    model.save_pretrained(folder)
    transformers.ASTFeatureExtractor(max_length=64).save_pretrained(folder)
    return folder


def save_w2v(folder: Path, *, kind: str = "wav2vec2", stable: bool = False, augment: bool = False,
             normalize: bool = True, seed: int = 1) -> Path:
    """A 2-layer wav2vec2 or HuBERT (width 32, narrow convolutions, the usual 400/320-sample front end).

    ``stable``: the large models' layout (layer-norm convolutions, a final norm after the layers).
    ``augment``: keep SpecAugment and layer drop on, as the published checkpoints have them;
    otherwise off, so that every weight trains on every step (the contract's backward check)."""
    import torch

    transformers = _transformers()
    torch.manual_seed(seed)
    kw = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16,) * 7,
              num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
              feat_extract_norm="layer" if stable else "group", do_stable_layer_norm=stable)
    if not augment:
        kw.update(mask_time_prob=0.0, layerdrop=0.0)
    config_cls, model_cls = {"wav2vec2": (transformers.Wav2Vec2Config, transformers.Wav2Vec2Model),
                             "hubert": (transformers.HubertConfig, transformers.HubertModel)}[kind]
    model_cls(config_cls(**kw)).save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(do_normalize=normalize, sampling_rate=16000).save_pretrained(folder)
    return folder


def tone(seconds: float, *, sr: int = 16000, hz: float = 220.0, seed: int = 0) -> np.ndarray:
    """A tone with a little noise: float32 ``[N]``."""
    t = np.arange(int(seconds * sr)) / sr
    noise = np.random.default_rng(seed).standard_normal(t.size)
    return (0.3 * np.sin(2 * np.pi * hz * t) + 0.05 * noise).astype(np.float32)


