"""The components meet the zoo's contracts; the weights are converted once, cached and refused when absent."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from musicnntiny import needs_wheel, tone
from zoo.config import make_config
from zoo.errors import ConfigError, ZooError
from zoo.testing import check_backbone, check_feature
from zoo_musicnn import specs, weights
from zoo_musicnn.backbone import window_counts
from zoo_musicnn.tfbundle import CheckpointFormatError, read_index


def test_the_front_end_meets_the_feature_contract():
    feature = specs.musicnn_mel.build(specs.musicnn_mel.config())
    check_feature(feature, frame_slack=0)
    assert feature.standardise is False and feature.reads_lab is False
    assert (feature.n_bins, feature.sample_rate, feature.hop_length) == (96, 16000, 256)


def test_the_front_end_resamples_other_rates():
    feature = specs.musicnn_mel.build(specs.musicnn_mel.config())
    assert feature.from_audio(tone(2.0, sr=22050), 22050).shape == (96, 1 + 32000 // 256)


def test_an_untrained_vgg_tagger_meets_the_backbone_contract():
    """Random weights, no wheel needed; the VGG with its output layer (the musicnn one is checked pretrained below)."""
    check_backbone(specs.musicnn, n_bins=96, settings={"pretrained": False, "model": "MTT_vgg", "layer": "taggram"})


@needs_wheel
def test_the_pretrained_backbone_meets_the_backbone_contract(zoo_env):
    check_backbone(specs.musicnn, n_bins=96)


@needs_wheel
@pytest.mark.parametrize("layer", ["penultimate", "taggram"])
def test_the_embedding_meets_the_feature_contract(layer, zoo_env):
    feature = specs.musicnn_embed.build(make_config(specs.musicnn_embed.config, {"layer": layer, "device": "cpu"}))
    check_feature(feature)
    assert feature.n_bins == (200 if layer == "penultimate" else 50) and feature.hop_length == 187 * 256


def test_windows_follow_musicnns_extractor():
    lengths = torch.tensor([1, 186, 187, 373, 374, 750])
    assert window_counts(lengths, 187).tolist() == [1, 1, 1, 1, 2, 4]
    assert window_counts(lengths, 93).tolist() == [1, 1, 1, 3, 3, 7]


def test_a_window_is_the_same_alone_and_in_a_padded_batch():
    torch.manual_seed(0)
    backbone = specs.musicnn.build(make_config(specs.musicnn.config, {"pretrained": False}), 96).eval()
    x = torch.randn(2, 96, 600)
    lengths = torch.tensor([600, 400])
    with torch.no_grad():
        both = backbone(x, lengths)
        alone = backbone(x[1:, :, :400], lengths[1:])
    assert both.lengths.tolist() == [3, 2] and both.hidden.shape == (2, 3, 200)
    torch.testing.assert_close(both.hidden[1, :2], alone.hidden[0], rtol=1e-5, atol=1e-5)


def test_freeze_keeps_the_first_blocks_and_their_batch_norm_statistics():
    backbone = specs.musicnn.build(make_config(specs.musicnn.config, {"pretrained": False, "freeze": 4}), 96)
    names = [n for n, _ in backbone.named_blocks()]
    assert names == ["frontend", "midend.0", "midend.1", "midend.2", "backend"]
    frozen = {n.split(".")[1] for n, p in backbone.named_parameters() if not p.requires_grad}
    assert frozen == {"input_bn", "timbral", "temporal", "midend"}
    before = backbone.net.input_bn.running_mean.clone()
    backbone.train()(torch.randn(2, 96, 200) + 3, torch.tensor([200, 200]))
    assert torch.equal(backbone.net.input_bn.running_mean, before)
    with pytest.raises(ConfigError, match="give 0..5"):
        specs.musicnn.build(make_config(specs.musicnn.config, {"pretrained": False, "freeze": 6}), 96)


def test_impossible_settings_name_the_fix():
    with pytest.raises(ZooError, match="MSD_musicnn"):
        make_config(specs.musicnn.config, {"model": "MSD_musicn"})
    with pytest.raises(ConfigError, match="VGG"):
        make_config(specs.musicnn.config, {"model": "MTT_vgg", "layer": "pool"})
    with pytest.raises(ConfigError, match="musicnn-mel"):
        specs.musicnn.build(make_config(specs.musicnn.config, {"pretrained": False}), 128)


def test_a_missing_wheel_is_an_error_naming_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "musicnn" else real(name, *a))
    with pytest.raises(ConfigError, match=r"pip install --no-deps musicnn"):
        specs.musicnn.build(specs.musicnn.config(), 96)


@needs_wheel
def test_the_weights_are_converted_once_into_the_cache(monkeypatch, zoo_env):
    path = weights.converted_path("MTT_vgg")
    path.unlink(missing_ok=True)
    calls = []
    convert = weights.convert
    monkeypatch.setattr(weights, "convert", lambda *a: calls.append(a) or convert(*a))
    first = weights.pretrained_state("MTT_vgg")
    second = weights.pretrained_state("MTT_vgg")
    assert len(calls) == 1 and path.is_file() and path.parent == zoo_env / "cache" / "musicnn"
    assert weights.checkpoint_sha256("MTT_vgg")[:16] in path.name
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


@needs_wheel
def test_the_tags_come_from_the_installed_configuration():
    assert len(weights.tag_names("MSD_musicnn")) == 50 == len(weights.tag_names("MTT_vgg"))
    assert weights.tag_names("MSD_musicnn")[:3] == ("rock", "pop", "alternative")
    assert "harpsichord" in weights.tag_names("MTT_musicnn")


def test_the_reader_refuses_what_is_not_a_checkpoint(tmp_path):
    (tmp_path / "x.index").write_bytes(b"\0" * 100)
    with pytest.raises(CheckpointFormatError, match="not a TensorFlow checkpoint index"):
        read_index(tmp_path / "x")
    with pytest.raises(CheckpointFormatError, match="cannot read"):
        read_index(tmp_path / "missing")


@needs_wheel
def test_the_reader_refuses_a_truncated_data_file(tmp_path):
    import shutil

    from zoo_musicnn.tfbundle import read_tensors

    src = weights.checkpoint_prefix("MTT_vgg")
    shutil.copy(src + ".index", tmp_path / "c.index")
    data = open(src + ".data-00000-of-00001", "rb").read()
    (tmp_path / "c.data-00000-of-00001").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointFormatError, match="ends before"):
        read_tensors(tmp_path / "c")
    np.testing.assert_array_equal(read_tensors(tmp_path / "c", ["1CNN/bias"])["1CNN/bias"],
                                  read_tensors(src, ["1CNN/bias"])["1CNN/bias"])
