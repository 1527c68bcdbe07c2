"""Fixtures of the plugin's tests: an isolated zoo home, the installed musicnn wheel (or a skip saying how to get it), audio.

Nothing is downloaded and TensorFlow is never imported: the weights are the ``musicnn`` wheel's,
read by the plugin's own checkpoint reader; what TensorFlow computes is in the golden file
``musicnn_reference.npz`` (made by ``make_reference.py``).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # refaudio (shared with make_reference.py), musicnntiny

from musicnntiny import tone  # noqa: E402


@pytest.fixture(scope="session")
def zoo_home(tmp_path_factory) -> Path:
    """The zoo home the tests that ask for :func:`zoo_env` share (its weights cache is filled once)."""
    return tmp_path_factory.mktemp("zoo-musicnn-home")


@pytest.fixture
def zoo_env(zoo_home, monkeypatch) -> Path:
    """What a user sets in their shell before running ``zoo``: a zoo home and its tracking
    store. Set for the test that asks for it only, never for the whole session, so that every other
    test sees the environment a user has."""
    monkeypatch.setenv("ZOO_HOME", str(zoo_home))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{zoo_home / 'mlflow.db'}")
    return zoo_home


@pytest.fixture(scope="session")
def audio_folder(tmp_path_factory) -> Path:
    """Three label folders of four 3.5 s clips each (GTZAN style), a pitch per label, at 22050 Hz (resampled by the zoo)."""
    import soundfile as sf

    root = tmp_path_factory.mktemp("audio")
    for li, label in enumerate(("blues", "jazz", "rock")):
        for k in range(4):
            path = root / label / f"{label}.{k:05d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, tone(3.5, sr=22050, hz=150.0 + 90.0 * li, seed=10 * li + k), 22050)
    return root
