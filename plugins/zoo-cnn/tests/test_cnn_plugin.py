"""The ``cnn`` backbone meets the zoo's backbone contract, down to chroma's 12 bins and one-frame clips."""
from __future__ import annotations

import pytest

import zoo_cnn
from zoo.config import make_config
from zoo.registry import Registry
from zoo.testing import check_backbone


@pytest.mark.parametrize("n_bins", [12, 40])
def test_the_cnn_meets_the_backbone_contract(n_bins):
    check_backbone(zoo_cnn.spec, n_bins=n_bins)


def test_a_built_cnn_passes_the_same_checks():
    check_backbone(zoo_cnn.spec.build(make_config(zoo_cnn.CNNConfig, {}, where="cnn"), 12), n_bins=12)


def test_the_registered_cnn_is_this_spec():
    assert Registry().load("backbone", "cnn") is zoo_cnn.spec
