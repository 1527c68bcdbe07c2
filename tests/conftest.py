"""Test isolation: each test is given its zoo workspace explicitly; the process's environment stays the user's.

* ``workspace``: a :class:`~zoo.workspace.Workspace` (data, caches, runs and an MLflow sqlite
  store) in a temporary folder, for API tests (``zoo.train(..., workspace=workspace)``). One per
  session, so the embedded data set and the feature cache are made once.
* ``zoo_env``: the same workspace as environment variables (``ZOO_HOME``, ``MLFLOW_TRACKING_URI``,
  the plugin switches), set for the one test that asks for it, as a user's shell would set them:
  for ``zoo.cli.main([...])``. Its value is the whole environment, to give a subprocess as ``env=``.
* ``zoo_env_module``: the same for every test of a module that asks for it with
  ``pytestmark = pytest.mark.usefixtures("zoo_env_module")`` (MLflow's own loaders, ``models:/`` and
  ``runs:/`` URIs, read ``MLFLOW_TRACKING_URI`` as a user sets it).

Nothing here changes ``os.environ`` for the session, so a test sees what a user sees; a test
that neither takes a workspace nor sets one would write to the real ``~/.zoo``.
"""
from __future__ import annotations

import os

import pytest

from zoo.workspace import Workspace

from datafixtures import write_label_folders


@pytest.fixture(scope="session")
def workspace(tmp_path_factory) -> Workspace:
    return Workspace(home=tmp_path_factory.mktemp("zoo-home"))


@pytest.fixture
def zoo_env(workspace, monkeypatch) -> dict[str, str]:
    for key, value in workspace.environ().items():
        monkeypatch.setenv(key, value)
    return dict(os.environ)


@pytest.fixture(scope="module")
def zoo_env_module(workspace):
    with pytest.MonkeyPatch.context() as mp:
        for key, value in workspace.environ().items():
            mp.setenv(key, value)
        yield dict(os.environ)


@pytest.fixture(scope="session")
def audio_folder(tmp_path_factory):
    """A GTZAN-style folder: 3 labels x 8 clips of 1.5 s (real wav files), made once."""
    root = tmp_path_factory.mktemp("gtzan")
    write_label_folders(root, ("blues", "jazz", "rock"), per_label=8)
    return root


@pytest.fixture(scope="module")
def mlflow_template(tmp_path_factory):
    """An MLflow sqlite store created once per module, for tests to copy into their own folders
    (creating one costs seconds): the path of its ``mlflow.db``."""
    from zoo.tracking.mlflow.store import client
    db = tmp_path_factory.mktemp("template") / "mlflow.db"
    client(f"sqlite:///{db}")
    return db
