"""Cheap variants (ComponentSpec.variants): a backbone with other defaults, declared in a few lines beside its
component and registered through that component's one entry point; listed, run and rebuilt by name, and every
error names the variant.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from datafixtures import write_label_folders
from zoo.cli import main
from zoo.errors import ConfigError, PluginError, UnknownComponentError
from zoo.protocols import ComponentSpec
from zoo.registry import EntryInfo, Registry

zoo_cnn = pytest.importorskip("zoo_cnn", reason="needs the music-zoo-cnn plugin (pip install -e plugins/zoo-cnn)")


def test_zoo_list_shows_the_variant_with_its_provider_and_summary(capsys):
    assert main(["list", "backbone"]) == 0
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if ln.split()[:1] == ["cnn-wide"]]
    assert "music-zoo-cnn==" in line and "twice the filters per block (64/128/256/512)" in line


def test_the_variant_is_built_by_name_with_its_own_defaults_and_the_components_build():
    registry = Registry()
    assert registry.provider("backbone", "cnn-wide") == registry.provider("backbone", "cnn")
    wide, plain = registry.create("backbone", "cnn-wide", {}, 40), registry.create("backbone", "cnn", {}, 40)
    assert type(wide) is type(plain) and (wide.out_dim, plain.out_dim) == (512, 256)
    assert registry.create("backbone", "cnn-wide", {"channels": "8,16"}, 40).out_dim == 16  # --set still wins


def test_a_bad_setting_of_the_variant_names_the_variant():
    with pytest.raises(ConfigError, match=r"^backbone 'cnn-wide': kernels \(4,\) must all be odd"):
        Registry().create("backbone", "cnn-wide", {"kernels": "4"}, 40)
    with pytest.raises(UnknownComponentError, match=r"unknown backbone 'cnn-wdie'.*did you mean 'cnn-wide'"):
        Registry().info("backbone", "cnn-wdie")


@dataclasses.dataclass(frozen=True)
class Base:
    width: int = 8


@dataclasses.dataclass(frozen=True)
class Wider(Base):
    """twice as wide"""
    width: int = 16


@dataclasses.dataclass(frozen=True)
class Unrelated:
    width: int = 16


def registry_of(**variants: type) -> Registry:
    """A registry whose one backbone 'toy' (distribution toy-dist) declares ``variants``."""
    spec = ComponentSpec(kind="backbone", name="toy", build=lambda c, n: c, summary="a toy", config=Base,
                         variants=variants)
    registry = Registry(entries=(EntryInfo("backbone", "toy", "toy-dist", "1.0", "toy:spec"),))
    registry._loaded[("backbone", "toy")] = spec  # as if imported from its entry point
    return registry


def test_a_variant_whose_config_is_not_a_subclass_is_refused_naming_the_variant_and_the_fix():
    registry = registry_of(**{"toy-big": Unrelated})
    with pytest.raises(PluginError) as err:
        registry.load("backbone", "toy-big")
    assert str(err.value).startswith("backbone variant 'toy-big' of backbone 'toy' (plugin toy-dist[toy], "
                                     "toy-dist==1.0): its config")
    assert "is not a dataclass subclass of Base" in str(err.value)
    assert ("backbone", "toy-big (variant)") in registry.check_all()


def test_a_variant_named_as_a_component_is_refused_and_the_component_keeps_working():
    registry = registry_of(toy=Wider)
    assert registry.variant_problems("backbone")["toy"].args[0].endswith(
        "the name 'toy' is taken by the backbone 'toy' itself; rename the variant")
    assert registry.load("backbone", "toy").config is Base


def test_a_good_variant_takes_its_summary_from_its_config():
    registry = registry_of(**{"toy-wide": Wider})
    spec = registry.load("backbone", "toy-wide")
    assert (spec.name, spec.config, spec.summary) == ("toy-wide", Wider, "twice as wide")
    assert registry.info("backbone", "toy-wide").label == "toy-dist[toy-wide]"


def test_the_contract_tests_parametrization_lists_good_variants_and_leaves_broken_ones_out():
    from zoo.testing import installed
    assert installed("backbone", registry_of(**{"toy-wide": Wider})) == ["toy", "toy-wide"]
    assert installed("backbone", registry_of(**{"toy-wide": Wider}), variants=False) == ["toy"]
    assert installed("backbone", registry_of(**{"toy-big": Unrelated})) == ["toy"]  # zoo list reports why
    assert "cnn-wide" in installed("backbone")  # so test_contracts runs check_backbone on it


@pytest.mark.slow  # trains a CNN of 512 filters for one epoch on a few clips
def test_a_short_zoo_run_of_the_variant_packages_a_model_rebuilt_by_its_name(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    data = tmp_path / "audio"
    write_label_folders(data, ("blues", "jazz", "rock"), per_label=3)
    assert main(["run", "cnn-wide+mel:genre", "--data", str(data), "--epochs", "1", "--no-progress",
                 "--no-track"]) == 0, capsys.readouterr().err
    (meta_file,) = (tmp_path / "home").rglob("zoo_model.json")
    meta = json.loads(meta_file.read_text())
    assert meta["composition"]["backbone"] == "cnn-wide"
    assert meta["configs"]["backbone"]["channels"] == [64, 128, 256, 512]
    from zoo.engine.package import load_model
    model, _ = load_model(Path(meta_file).parent)
    assert model.backbone.out_dim == 512
