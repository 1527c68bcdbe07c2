"""Fixtures of the plugin's tests: an isolated zoo home, tiny random checkpoints saved by transformers, and audio.

Nothing is downloaded: every checkpoint is built from a small config (see :mod:`hftiny`), and a test
that runs the zoo asks for :func:`zoo_env`, which also switches the Hugging Face hub offline.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from hftiny import SR, save_ast, save_w2v, tone


@pytest.fixture(scope="session")
def zoo_home(tmp_path_factory) -> Path:
    """The zoo home the tests that ask for :func:`zoo_env` share (its weights cache is filled once)."""
    return tmp_path_factory.mktemp("zoo-hf-home")


@pytest.fixture
def zoo_env(zoo_home, monkeypatch) -> Path:
    """What a user sets in their shell before running ``zoo``: a zoo home and its tracking
    store, with the Hugging Face hub offline. Set for the test that asks for it only, never for the
    whole session, so that every other test sees the environment a user has."""
    monkeypatch.setenv("ZOO_HOME", str(zoo_home))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{zoo_home / 'mlflow.db'}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return zoo_home


@pytest.fixture(scope="session")
def tiny_ast(tmp_path_factory) -> Path:
    return save_ast(tmp_path_factory.mktemp("ckpt") / "tiny-ast")


@pytest.fixture(scope="session")
def tiny_w2v(tmp_path_factory) -> Path:
    return save_w2v(tmp_path_factory.mktemp("ckpt") / "tiny-w2v")


@pytest.fixture(scope="session")
def tiny_w2v_stable(tmp_path_factory) -> Path:
    return save_w2v(tmp_path_factory.mktemp("ckpt") / "tiny-w2v-stable", stable=True)


@pytest.fixture(scope="session")
def tiny_hubert(tmp_path_factory) -> Path:
    return save_w2v(tmp_path_factory.mktemp("ckpt") / "tiny-hubert", kind="hubert", normalize=False)


@pytest.fixture(scope="session")
def audio_folder(tmp_path_factory) -> Path:
    """Three label folders of four 1.5 s clips each (GTZAN style), a pitch per label."""
    import soundfile as sf

    root = tmp_path_factory.mktemp("audio")
    for li, label in enumerate(("blues", "jazz", "rock")):
        for k in range(4):
            path = root / label / f"{label}.{k:05d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, tone(1.5, sr=SR, hz=150.0 + 60.0 * li, seed=10 * li + k), SR)
    return root
