"""The ``lstm`` backbone meets the zoo's backbone contract, as its spec and as a built module."""
from __future__ import annotations

import pytest

import zoo_lstm
from zoo.registry import Registry
from zoo.testing import check_backbone, check_backbone_config


@pytest.mark.parametrize("settings", [{}, {"hidden": "8", "layers": "2", "bidirectional": "false"}])
def test_the_lstm_meets_the_backbone_contract(settings):
    check_backbone(zoo_lstm.spec, n_bins=12, settings=settings)


def test_a_built_lstm_passes_the_same_checks():
    from zoo.config import make_config
    check_backbone(zoo_lstm.spec.build(make_config(zoo_lstm.LSTMConfig, {"hidden": "8"}, where="lstm"), 12), n_bins=12)
    check_backbone_config(zoo_lstm.spec, n_bins=12)


def test_the_registered_lstm_is_this_spec():
    assert Registry().load("backbone", "lstm") is zoo_lstm.spec
