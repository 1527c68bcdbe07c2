"""The four features meet the zoo's feature contract, as specs and as built features."""
from __future__ import annotations

import pytest

from zoo.registry import Registry
from zoo.testing import check_feature
from zoo_features import specs

SPECS = {"mel": specs.mel, "chroma": specs.chroma, "beat": specs.beat, "beat-chroma": specs.beat_chroma}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_each_feature_meets_the_feature_contract(name):
    check_feature(SPECS[name])


def test_a_built_feature_with_settings_passes_too():
    check_feature(specs.mel, settings={"n_mels": "32"}, lab=False)  # the lab's arrays hold 128 mel bands
    check_feature(Registry().create("feature", "mel"))


@pytest.mark.parametrize("name", sorted(SPECS))
def test_the_registered_features_are_these_specs(name):
    assert Registry().load("feature", name) is SPECS[name]
