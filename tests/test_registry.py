"""The registry against real installed plugin distributions (built and pip-installed here)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pluginfactory import GRU_SOURCE, pip_install, write_distribution
from zoo.spec import parse_spec
from zoo.errors import ConfigError, PluginError, SpecError, UnknownComponentError
from zoo.registry import Registry
from zoo.workspace import Workspace


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """A folder with five installed plugin distributions: one good, four broken in different ways."""
    src = tmp_path_factory.mktemp("plugin-src")
    site = tmp_path_factory.mktemp("plugin-site")
    projects = [
        write_distribution(src, "zoo-extra-gru", "0.3.0", "zoo_extra_gru", GRU_SOURCE,
                           {"music_zoo.backbones": {"gru": "zoo_extra_gru:spec"}}),
        write_distribution(src, "zoo-broken", "1.0.0", "zoo_broken_mod",
                           "raise ImportError('needs libfoo, which is missing')\n",
                           {"music_zoo.backbones": {"broken": "zoo_broken_mod:spec"}}),
        write_distribution(src, "zoo-wrongkind", "1.0.0", "zoo_wrongkind", """
            from zoo.protocols import ComponentSpec
            spec = ComponentSpec(kind="feature", name="sneaky", build=lambda c: None, summary="x")
            """, {"music_zoo.backbones": {"sneaky": "zoo_wrongkind:spec"}}),
        write_distribution(src, "zoo-notaspec", "1.0.0", "zoo_notaspec", "spec = 42\n",
                           {"music_zoo.tasks": {"answer": "zoo_notaspec:spec"}}),
        write_distribution(src, "zoo-dupe", "2.0.0", "zoo_dupe", """
            from zoo.tasks import genre as spec
            """, {"music_zoo.tasks": {"genre": "zoo_dupe:spec"}}),
    ]
    pip_install(projects, site)
    return site


@pytest.fixture
def with_plugins(plugin_site, monkeypatch):
    monkeypatch.syspath_prepend(str(plugin_site))
    yield plugin_site
    for mod in [m for m in sys.modules if m.startswith(("zoo_extra_gru", "zoo_broken", "zoo_wrongkind", "zoo_notaspec", "zoo_dupe"))]:
        del sys.modules[mod]


def test_discovery_reads_metadata_without_importing(with_plugins):
    reg = Registry()
    entries = {(e.kind, e.name): e for e in reg.discover()}
    assert entries[("backbone", "gru")].provider == "zoo-extra-gru==0.3.0"
    assert entries[("backbone", "broken")].label == "zoo-broken[broken]"
    assert "zoo_broken_mod" not in sys.modules and "zoo_extra_gru" not in sys.modules


def test_broken_plugin_names_distribution_and_keeps_others_working(with_plugins):
    reg = Registry()
    with pytest.raises(PluginError, match=r"zoo-broken\[broken\].*needs libfoo") as err:
        reg.load("backbone", "broken")
    assert isinstance(err.value.__cause__, ImportError)
    assert reg.load("backbone", "gru").summary.startswith("a one-layer GRU")
    assert reg.load("task", "valence").name == "valence"
    failures = reg.check_all()
    ours = {k for k, exc in failures.items() if "music-zoo" not in reg.info(*k).distribution}
    assert ours == {("backbone", "broken"), ("backbone", "sneaky"), ("task", "answer")}
    assert ("backbone", "gru") not in failures and ("task", "valence") not in failures


def test_wrong_kind_and_not_a_spec(with_plugins):
    reg = Registry()
    with pytest.raises(PluginError, match=r"zoo-wrongkind\[sneaky\].*spec says kind 'feature'"):
        reg.load("backbone", "sneaky")
    with pytest.raises(PluginError, match=r"zoo-notaspec\[answer\].*gave int"):
        reg.load("task", "answer")


def test_duplicate_name_across_distributions(with_plugins):
    reg = Registry()
    with pytest.raises(PluginError, match=r"more than one distribution.*music-zoo\[genre\].*zoo-dupe\[genre\]"):
        reg.load("task", "genre")
    assert ("task", "genre") in reg.conflicts()
    assert reg.load("task", "energy").name == "energy"  # the clash breaks only that name


def test_autoload_off_loads_only_named_plugins(with_plugins):
    reg = Registry(autoload=False)
    assert "gru" not in reg.names("backbone")
    assert reg.names("task") == ["danceability", "energy", "genre", "tags", "valence"]  # core only: no clash
    with pytest.raises(UnknownComponentError, match="autoloading is off"):
        reg.info("backbone", "gru")
    reg = Workspace.from_env({"ZOO_DISABLE_PLUGIN_AUTOLOAD": "1", "ZOO_PLUGINS": "zoo-extra-gru"}).registry()
    assert reg.names("backbone") == ["gru"]
    assert reg.provider("backbone", "gru") == "zoo-extra-gru==0.3.0"


def test_third_party_backbone_builds_with_typed_config(with_plugins):
    import torch
    reg = Registry()
    model = reg.create("backbone", "gru", {"hidden": "8"}, 12)
    out = model(torch.randn(3, 12, 20), torch.tensor([20, 10, 5]))
    assert out.hidden.shape == (3, 8)
    with pytest.raises(ConfigError, match="unknown setting 'hiden'.*did you mean 'hidden'"):
        reg.create("backbone", "gru", {"hiden": 8}, 12)
    with pytest.raises(ConfigError, match="expected an integer, got 'big'"):
        reg.create("backbone", "gru", {"hidden": "big"}, 12)


def test_unknown_names_suggest_the_closest(with_plugins):
    reg = Registry()
    with pytest.raises(UnknownComponentError, match=r"unknown backbone 'gur'; installed: .*gru.*did you mean 'gru'\?"):
        parse_spec("gur+mel:valence", reg)
    with pytest.raises(UnknownComponentError, match="unknown task 'valance'.*did you mean 'valence'"):
        reg.info("task", "valance")


def test_zoo_list_shows_a_plugin_installed_later(plugin_site):
    env = dict(os.environ, PYTHONPATH=str(plugin_site))
    out = subprocess.run([sys.executable, "-m", "zoo", "list"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr  # a listing that shows the broken entry did its job
    checked = subprocess.run([sys.executable, "-m", "zoo", "list", "--check"], env=env, capture_output=True, text=True)
    assert checked.returncode == 1 and checked.stdout == out.stdout  # --check: the exit code says a plugin is broken
    lines = out.stdout.splitlines()
    gru = next(line for line in lines if line.split()[:1] == ["gru"])
    assert "zoo-extra-gru==0.3.0" in gru and "GRU" in gru
    broken = next(line for line in lines if line.split()[:1] == ["broken"])
    assert "BROKEN" in broken and "zoo-broken[broken]" in broken
    assert any(line.split()[:1] == ["valence"] and "music-zoo==" in line for line in lines)
    plain = subprocess.run([sys.executable, "-m", "zoo", "list", "task"], capture_output=True, text=True)
    assert plain.returncode == 0 and "genre" in plain.stdout


def test_spec_parsing_errors():
    assert str(parse_spec(" LSTM+Mel+chroma : genre ")) == "lstm+mel+chroma:genre"
    assert parse_spec("ast+mel:valence,energy,danceability").tasks == ("valence", "energy", "danceability")
    for bad, why in [("lstm+mel", "exactly one ':'"), ("lstm:genre", "at least one feature"),
                     ("lstm+mel:", "at least one task"), ("lstm+mel+mel:genre", "named twice"),
                     ("lstm+m el:genre", "not a component name"), ("lstm+mel:genre:x", "exactly one ':'")]:
        with pytest.raises(SpecError, match=why):
            parse_spec(bad)
