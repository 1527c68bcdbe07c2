"""The workspace: the environment read once, into folders, a store and plugin switches that are passed down."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import zoo
from zoo import api
from zoo.errors import UnknownComponentError
from zoo.workspace import Workspace

ZOO = Path(__file__).resolve().parents[1] / "zoo"


def test_from_env_reads_home_store_and_plugin_switches():
    ws = Workspace.from_env({"ZOO_HOME": "/data/zoo", "MLFLOW_TRACKING_URI": "http://tracker:5000",
                             "ZOO_DISABLE_PLUGIN_AUTOLOAD": "1", "ZOO_PLUGINS": "zoo-a, zoo-b,"}, plugins=["zoo-c"])
    assert ws.home == Path("/data/zoo") and ws.tracking_uri == "http://tracker:5000"
    assert not ws.autoload and ws.plugins == ("zoo-a", "zoo-b", "zoo-c")
    assert (ws.data_dir, ws.cache_dir, ws.runs_dir) == (Path("/data/zoo/data"), Path("/data/zoo/cache"),
                                                        Path("/data/zoo/runs"))
    assert not ws.default_store
    registry = ws.registry()
    assert (registry.autoload, registry.plugins) == (False, ("zoo-a", "zoo-b", "zoo-c"))


def test_defaults_are_a_home_folder_and_a_sqlite_store_under_it(tmp_path):
    ws = Workspace.from_env({"HOME": str(tmp_path)})
    assert ws.home == tmp_path / ".zoo" and ws.autoload and ws.plugins == ()
    assert ws.tracking_uri == f"sqlite:///{tmp_path / '.zoo' / 'mlflow' / 'mlflow.db'}" and ws.default_store
    assert ws.artifact_root == tmp_path / ".zoo" / "mlflow" / "artifacts"
    for off in ("", "0", "false", "no"):
        assert Workspace.from_env({"HOME": str(tmp_path), "ZOO_DISABLE_PLUGIN_AUTOLOAD": off}).autoload
    assert not list(tmp_path.iterdir())  # reading the environment creates nothing


def test_environ_describes_the_same_workspace_to_a_child_process(tmp_path):
    ws = Workspace(home=tmp_path / "h", autoload=False, plugins=("zoo-a",))
    assert Workspace.from_env(ws.environ()) == ws
    assert Workspace.from_env(Workspace(home=tmp_path).environ()).autoload


def test_the_api_default_registry_honours_the_autoload_switch(monkeypatch):
    monkeypatch.setenv("ZOO_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.delenv("ZOO_PLUGINS", raising=False)
    with pytest.raises(UnknownComponentError, match="autoloading is off"):
        api.compose("lstm+chroma:genre")  # the LSTM is a plugin: not loaded now
    monkeypatch.setenv("ZOO_PLUGINS", "music-zoo-lstm,music-zoo-features")
    assert str(api.compose("lstm+chroma:genre").composition) == "lstm+chroma:genre"


def test_only_the_workspace_reads_the_environment():
    # Allowed elsewhere: passing the environment on to a child process, and switching a library's
    # own behaviour for this process (the CLI silences MLflow's artifact bars) - never a zoo setting.
    zoo_settings = ("ZOO_", "MLFLOW_TRACKING_URI")
    # Reads the environment only to find secrets (passwords in URIs, secret variables) and mask them in
    # messages: no setting comes from it.
    maskers = {ZOO / "tracking" / "credentials.py"}
    offenders = []
    for path in sorted(ZOO.rglob("*.py")):
        if (path.name == "workspace.py" and path.parent == ZOO) or path in maskers:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not re.search(r"\bos\.environ\b|\bgetenv\b|\benviron\[", line):
                continue
            passed_on = "{**os.environ" in line
            library_switch = "os.environ.setdefault(" in line and not any(z in line for z in zoo_settings)
            if not (passed_on or library_switch):
                offenders.append(f"{path.relative_to(ZOO.parent)}:{n}: {line.strip()}")
    assert offenders == []
