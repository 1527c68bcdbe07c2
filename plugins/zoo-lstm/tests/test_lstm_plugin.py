"""The ``lstm`` backbone meets the zoo's backbone contract, as its spec and as a built module."""
from __future__ import annotations

import pytest

import zoo_lstm
from zoo.registry import Registry
from zoo.testing import check_backbone, check_backbone_config


@pytest.mark.parametrize("settings", [{}, {"hidden": "8", "layers": "2", "bidirectional": "false"},
                                      {"hidden": "8", "conv_layers": "2", "conv_channels": "6", "conv_kernel": "3"},
                                      {"hidden": "8", "conv_layers": "2", "conv_channels": "4", "conv_dims": "2"}])
def test_the_lstm_meets_the_backbone_contract(settings):
    check_backbone(zoo_lstm.spec, n_bins=12, settings=settings)


def test_a_built_lstm_passes_the_same_checks():
    from zoo.config import make_config
    check_backbone(zoo_lstm.spec.build(make_config(zoo_lstm.LSTMConfig, {"hidden": "8"}, where="lstm"), 12), n_bins=12)
    check_backbone_config(zoo_lstm.spec, n_bins=12)


def test_the_registered_lstm_is_this_spec():
    assert Registry().load("backbone", "lstm") is zoo_lstm.spec


@pytest.mark.parametrize("dims", [1, 2])
def test_the_conv_front_end_shortens_each_clip_as_it_pools_and_ignores_padding(dims):
    """Two pooled layers: T 50 -> 13 and each length -> ceil(L / 4); a clip padded into a batch
    gives what it gives alone, and a padded clip's steps past its length are zero. In 2-D the
    LSTM reads 6 channels x 3 pooled rows of the 12 bins."""
    import torch

    torch.manual_seed(0)
    net = zoo_lstm.build(zoo_lstm.LSTMConfig(hidden=8, conv_layers=2, conv_channels=6, conv_dims=dims), 12).eval()
    assert net.rnn.input_size == (6 if dims == 1 else 18)
    assert [name for name, _ in net.named_blocks()] == ["frontend", "rnn layer 0", "rnn layer 1"]
    lengths = torch.tensor([50, 33, 7])
    x = torch.randn(3, 12, 50) * (torch.arange(50)[None, None, :] < lengths[:, None, None])
    out = net(x, lengths)
    assert out.hidden.shape == (3, 13, 16)
    assert out.lengths.tolist() == [13, 9, 2]
    for i in (1, 2):
        alone = net(x[i:i + 1, :, : int(lengths[i])], lengths[i:i + 1])
        n = int(out.lengths[i])
        torch.testing.assert_close(alone.hidden[0, :n], out.hidden[i, :n], atol=1e-6, rtol=1e-5)
        assert out.hidden[i, n:].abs().max() == 0


@pytest.mark.parametrize("setting, value", [("conv_layers", "-1"), ("conv_layers", "7"), ("conv_kernel", "4"), ("conv_dims", "3"),
                                            ("conv_channels", "0")])
def test_bad_front_end_settings_name_the_setting(setting, value):
    from zoo.config import make_config
    from zoo.errors import ConfigError

    with pytest.raises(ConfigError, match=setting):
        make_config(zoo_lstm.LSTMConfig, {setting: value}, where="lstm")
