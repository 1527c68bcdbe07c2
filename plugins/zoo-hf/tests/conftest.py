"""Fixtures of the plugin's tests: an isolated zoo home, tiny random checkpoints saved by transformers, and audio.

Nothing is downloaded: every checkpoint is built from a small config (see :mod:`hftiny`) and the
Hugging Face hub is switched offline for the whole session.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from hftiny import SR, save_ast, save_w2v, tone


@pytest.fixture(autouse=True, scope="session")
def _isolated(tmp_path_factory):
    home = tmp_path_factory.mktemp("zoo-hf-home")
    names = ("ZOO_HOME", "MLFLOW_TRACKING_URI", "HF_HUB_OFFLINE")
    old = {k: os.environ.get(k) for k in names}
    os.environ.update(ZOO_HOME=str(home), MLFLOW_TRACKING_URI=f"sqlite:///{home / 'mlflow.db'}", HF_HUB_OFFLINE="1")
    yield home
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


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
