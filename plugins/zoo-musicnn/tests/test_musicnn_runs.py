"""Whole runs: a probe on the cached embedding, fine-tuning the backbone, and the packaged tagger under ``zoo predict``."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from musicnntiny import HAVE_WHEEL
from refaudio import SR, music
from zoo.cli import main

pytestmark = pytest.mark.skipif(not HAVE_WHEEL, reason="the runs use the pretrained weights: "
                                                       "pip install --no-deps musicnn==0.1.0")


def _zoo(*args: str) -> None:
    code = main(["run", *args, "--workers", "1", "--no-progress"])
    assert code == 0, f"zoo run {' '.join(args)} exited {code}"


def test_a_probe_computes_each_embedding_once_and_then_reads_the_cache(audio_folder, monkeypatch, zoo_env):
    import zoo_musicnn.backbone

    calls = []
    embed = zoo_musicnn.backbone.MusicnnBackbone.embed_windows

    def counted(self, x, lengths):
        calls.append(x.shape[0])
        return embed(self, x, lengths)

    monkeypatch.setattr(zoo_musicnn.backbone.MusicnnBackbone, "embed_windows", counted)
    probe = ["stats+musicnn-embed:genre", "--data", str(audio_folder), "--epochs", "2", "--no-track"]
    _zoo(*probe)
    assert len(calls) == 12  # one frozen forward per clip
    _zoo(*probe, "--seed", "1")  # other splits: a new pack, built from the per-clip feature cache
    assert len(calls) == 12, "a later run ran the network again instead of reading the cache"


def test_fine_tuning_records_the_checkpoint_and_leaves_the_front_end_unscaled(audio_folder, zoo_env):
    import mlflow

    _zoo("musicnn+musicnn-mel:genre", "--data", str(audio_folder), "--epochs", "1", "--batch-size", "4",
         "--experiment", "musicnn-ft", "--set", "backbone.freeze=4")
    client = mlflow.MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    (run,) = client.search_runs([client.get_experiment_by_name("musicnn-ft").experiment_id])
    params = run.data.params
    assert params["backbone.model"] == "MSD_musicnn" and params["backbone.freeze"] == "4"
    assert params["provider.backbone.musicnn"].startswith("music-zoo-musicnn==")
    (meta,) = zoo_env.glob("runs/*-musicnn-musicnn-mel-genre-*/seed0/model/zoo_model.json")
    meta = json.loads(meta.read_text())
    assert set(meta["normalisation"]["mean"]) == {0.0} and set(meta["normalisation"]["std"]) == {1.0}
    assert meta["train"]["crop_frames"] == 187 and meta["train"]["lr"] == 1e-3  # the backbone's recommendations


def test_the_packaged_tagger_predicts_musicnns_tags(tmp_path, capsys, zoo_env):
    import soundfile as sf

    from zoo_musicnn.backbone import windows
    from zoo_musicnn.frontend import MusicnnMel
    from zoo_musicnn.tagger import main as tagger
    from zoo_musicnn.weights import build_network, load_pretrained, tag_names

    folder = tmp_path / "tagger"
    assert tagger([str(folder), "--model", "MTT_musicnn"]) == 0
    y = music()[: 187 * 256]  # one 2.992 s window: zoo predict's window for this model
    sf.write(tmp_path / "clip.wav", y, SR, subtype="FLOAT")
    capsys.readouterr()
    assert main(["predict", str(folder), str(tmp_path / "clip.wav"), "--format", "json", "--no-progress"]) == 0
    (result,) = json.loads(capsys.readouterr().out)["files"]
    got = result["predictions"]["tags"]["probabilities"]
    assert list(got) == list(tag_names("MTT_musicnn")) and result["windows"] == 1
    net = build_network("MTT_musicnn")
    load_pretrained(net, "MTT_musicnn")
    mel = MusicnnMel().from_audio(y, SR)
    with torch.no_grad():
        want = net.eval()(windows(torch.from_numpy(mel)[None], torch.tensor([mel.shape[1]]), 187)[0])["taggram"][0]
    np.testing.assert_allclose(np.array(list(got.values())), want.numpy(), atol=2e-6)  # the JSON keeps 6 decimals
