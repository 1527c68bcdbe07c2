"""The torch port equals the original musicnn (TensorFlow) on the same audio: front end, taggram, embeddings.

The golden file ``musicnn_reference.npz`` holds what musicnn 0.1.0 computes with tensorflow-cpu
2.15.1, keras 2.15.0, numpy 1.26 and librosa 0.10 on the seeded 12 s of :func:`refaudio.music`
(four 3 s windows); ``make_reference.py`` made it. With ``ZOO_MUSICNN_REFERENCE_PYTHON`` naming an
interpreter of that environment, :func:`test_the_live_reference_agrees_with_the_port` runs the
script itself.

Tolerances, each about 10x what was measured (torch 2.14 CPU against TensorFlow 2.15 CPU):

- the log-mel: 1e-3 (log10 units); measured 0 (librosa 0.11 against 0.10, bit-equal);
- the taggram: 1e-5 absolute; measured 3e-6;
- embeddings (penultimate, mean and max pools, VGG pool5): the relative error (norm of the
  difference / norm of the reference) under 5e-5, and the largest difference under 1e-5 of the
  largest reference value; measured at most 4e-6 and 4e-6 (MTT_musicnn's penultimate).
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from musicnntiny import needs_wheel
from refaudio import SR, music

HERE = Path(__file__).parent
GOLDEN = HERE / "musicnn_reference.npz"
REFERENCE_ENV = "ZOO_MUSICNN_REFERENCE_PYTHON"
MODELS = ("MSD_musicnn", "MTT_musicnn", "MSD_vgg", "MTT_vgg")
MEL_ATOL, TAG_ATOL, EMB_REL, EMB_SCALED = 1e-3, 1e-5, 5e-5, 1e-5

pytestmark = pytest.mark.usefixtures("zoo_env")  # the pretrained weights are converted into its cache once


def close_embeddings(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    rel = np.linalg.norm(got - want) / np.linalg.norm(want)
    worst = np.abs(got - want).max() / np.abs(want).max()
    assert rel < EMB_REL and worst < EMB_SCALED, f"{what}: relative error {rel:.2e}, worst {worst:.2e} of the scale"


def port_outputs(model: str) -> dict[str, np.ndarray]:
    """Our network on musicnn-mel of the reference audio, cut into musicnn's windows: every output ``[W, ...]``."""
    from zoo_musicnn.backbone import windows
    from zoo_musicnn.frontend import MusicnnMel
    from zoo_musicnn.weights import build_network, load_pretrained

    mel = MusicnnMel().from_audio(music(), SR)
    net = build_network(model)
    load_pretrained(net, model)
    patches, _, _ = windows(torch.from_numpy(mel)[None], torch.tensor([mel.shape[1]]), 187)
    with torch.no_grad():
        return {k: v.numpy() for k, v in net.eval()(patches).items()}


def compare(ref, model: str) -> None:
    got = port_outputs(model)
    np.testing.assert_allclose(got["taggram"], ref[f"{model}/taggram"], rtol=0, atol=TAG_ATOL,
                               err_msg=f"{model} taggram")
    if "vgg" in model:
        close_embeddings(got["pool5"], ref[f"{model}/pool5"], f"{model} pool5")
        return
    close_embeddings(got["penultimate"], ref[f"{model}/penultimate_windows"], f"{model} penultimate")
    for key in ("mean_pool", "max_pool"):
        close_embeddings(got[key], ref[f"{model}/{key}"], f"{model} {key}")


@pytest.fixture(scope="module")
def golden():
    return np.load(GOLDEN)


def test_musicnn_mel_equals_musicnns_own_front_end(golden):
    from zoo_musicnn.frontend import MusicnnMel

    got = MusicnnMel().from_audio(music(), SR)  # [96, T]
    want = golden["mel"].T
    assert got.shape == want.shape == (96, 1 + int(SR * 12.0) // 256)
    np.testing.assert_allclose(got, want, rtol=0, atol=MEL_ATOL)


@needs_wheel
@pytest.mark.parametrize("model", MODELS)
def test_the_port_equals_musicnn_on_the_golden_audio(golden, model):
    compare(golden, model)


@needs_wheel
@pytest.mark.parametrize("model", MODELS)
def test_the_checkpoint_reader_returns_tensorflows_bytes(golden, model):
    from zoo_musicnn.tfbundle import read_tensors
    from zoo_musicnn.weights import checkpoint_prefix

    want = json.loads(str(golden[f"{model}/variables"]))
    got = read_tensors(checkpoint_prefix(model))
    assert sorted(got) == sorted(want)
    for name, digest in want.items():
        assert hashlib.sha256(np.ascontiguousarray(got[name]).tobytes()).hexdigest() == digest, name


def test_musicnns_extractor_repeats_the_first_windows_penultimate(golden):
    """Why the golden file has ``penultimate_windows``: the extractor's own ``penultimate`` is window 0's, W times."""
    rows = golden["MSD_musicnn/penultimate"]
    assert np.array_equal(rows, np.repeat(rows[:1], len(rows), axis=0))
    assert not np.allclose(golden["MSD_musicnn/penultimate_windows"][1], rows[0], atol=1e-3)


@needs_wheel
def test_the_zoo_components_give_the_originals_outputs(golden):
    """musicnn-embed and the backbone (layer=taggram) through the zoo's configs equal the reference per window."""
    from zoo.config import make_config
    from zoo_musicnn import specs

    embed = specs.musicnn_embed.build(make_config(specs.musicnn_embed.config, {"device": "cpu"}))
    close_embeddings(embed.from_audio(music(), SR).T, golden["MSD_musicnn/penultimate_windows"], "musicnn-embed")
    backbone = specs.musicnn.build(make_config(specs.musicnn.config, {"layer": "taggram", "model": "MTT_musicnn"}), 96)
    mel = specs.musicnn_mel.build(specs.musicnn_mel.config()).from_audio(music(), SR)
    with torch.no_grad():
        out = backbone.eval()(torch.from_numpy(mel)[None], torch.tensor([mel.shape[1]]))
    assert int(out.lengths[0]) == 4
    np.testing.assert_allclose(out.hidden[0].numpy(), golden["MTT_musicnn/taggram"], rtol=0, atol=TAG_ATOL)


@needs_wheel
def test_the_live_reference_agrees_with_the_port(tmp_path):
    python = os.environ.get(REFERENCE_ENV)
    if not python:
        pytest.skip(f"{REFERENCE_ENV} names no interpreter with TensorFlow; make one with the commands in "
                    f"make_reference.py (tensorflow-cpu==2.15.1, keras==2.15.0, numpy<2, --no-deps musicnn) to "
                    f"run the original here; the golden file is checked without it")
    out = tmp_path / "live.npz"
    done = subprocess.run([python, str(HERE / "make_reference.py"), str(out)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    live = np.load(out)
    from zoo_musicnn.frontend import MusicnnMel

    np.testing.assert_allclose(MusicnnMel().from_audio(music(), SR), live["mel"].T, rtol=0, atol=MEL_ATOL)
    for model in MODELS:
        compare(live, model)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
