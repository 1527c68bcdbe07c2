"""Fixtures of the plugin's tests: an isolated zoo home, the installed musicnn wheel (or a skip saying how to get it), audio.

Nothing is downloaded and TensorFlow is never imported: the weights are the ``musicnn`` wheel's,
read by the plugin's own checkpoint reader; what TensorFlow computes is in the golden file
``musicnn_reference.npz`` (made by ``make_reference.py``).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # refaudio (shared with make_reference.py), musicnntiny

from musicnntiny import tone  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _isolated(tmp_path_factory):
    home = tmp_path_factory.mktemp("zoo-musicnn-home")
    names = ("ZOO_HOME", "MLFLOW_TRACKING_URI")
    old = {k: os.environ.get(k) for k in names}
    os.environ.update(ZOO_HOME=str(home), MLFLOW_TRACKING_URI=f"sqlite:///{home / 'mlflow.db'}")
    yield home
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


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
