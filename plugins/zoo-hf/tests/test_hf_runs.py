"""Whole runs: fine-tuning from a checkpoint folder (recorded in MLflow), and a probe on cached embeddings."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

pytest.importorskip("transformers", reason="music-zoo-hf's tests need transformers: pip install -e plugins/zoo-hf")
import torch  # noqa: E402

import zoo_hf.backbones  # noqa: E402
import zoo_hf.specs as specs  # noqa: E402
from hftiny import tone  # noqa: E402
from zoo.cli import main  # noqa: E402
from zoo.config import make_config  # noqa: E402
from zoo.testing import check_feature  # noqa: E402
from zoo_hf.checkpoints import weights_sha256  # noqa: E402


def _zoo(*args: str) -> None:
    code = main(["run", *args, "--workers", "1", "--no-progress"])
    assert code == 0, f"zoo run {' '.join(args)} exited {code}"


def _params(experiment: str) -> dict[str, str]:
    import mlflow

    client = mlflow.MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return run.data.params


@pytest.mark.parametrize("spec, checkpoint", [("hf-ast+fbank:genre", "tiny_ast"), ("hf-w2v+wave:genre", "tiny_w2v")])
def test_a_one_epoch_run_from_a_checkpoint_folder_records_its_source_and_hash(spec, checkpoint, audio_folder, request,
                                                                               zoo_env):
    folder = request.getfixturevalue(checkpoint)
    experiment = f"hf-{checkpoint}"
    _zoo(spec, "--data", str(audio_folder), "--epochs", "1", "--experiment", experiment,
         "--set", f"backbone.weights={folder}", "--set", "backbone.freeze=1")
    params = _params(experiment)
    assert params["backbone.weights"] == str(folder)
    assert params["backbone.weights_hash"] == weights_sha256(folder)
    assert params["backbone.freeze"] == "1" and params["provider.backbone." + spec.split("+")[0]].startswith("music-zoo-hf==")
    # The front end is the model's own: the engine must not standardise it with the data's statistics.
    (meta,) = zoo_env.glob(f"runs/*-{spec.split(':')[0].replace('+', '-')}-genre-*/seed0/model/zoo_model.json")
    norm = json.loads(meta.read_text())["normalisation"]
    assert set(norm["mean"]) == {0.0} and set(norm["std"]) == {1.0}


def test_a_probe_computes_each_embedding_once_and_then_reads_the_cache(tiny_ast, audio_folder, monkeypatch, zoo_env):
    calls = []
    forward = zoo_hf.backbones.HFASTBackbone.forward

    def counted(self, x, lengths):
        calls.append(x.shape[0])
        return forward(self, x, lengths)

    monkeypatch.setattr(zoo_hf.backbones.HFASTBackbone, "forward", counted)
    probe = ["stats+hf-embed:genre", "--data", str(audio_folder), "--epochs", "2", "--no-track",
             "--set", f"hf-embed.weights={tiny_ast}", "--set", "hf-embed.layer=1"]
    _zoo(*probe)
    assert len(calls) == 12  # one frozen forward per clip
    _zoo(*probe)  # the same data and features: the packed set
    _zoo(*probe, "--seed", "1")  # other splits, so a new pack: built from the per-clip feature cache
    _zoo("lstm+hf-embed:genre", *probe[1:], "--set", "backbone.hidden=8")
    assert len(calls) == 12, "a later run ran the model again instead of reading the cache"


def test_the_embedding_equals_the_frozen_backbones_output(tiny_ast, tiny_w2v):
    y = tone(1.0)
    ast = specs.hf_embed.build(make_config(specs.hf_embed.config, {"weights": str(tiny_ast), "layer": "mean"}))
    backbone = specs.hf_ast.build(make_config(specs.hf_ast.config, {"weights": str(tiny_ast), "layer": "mean",
                                                                     "output": "tokens"}), 128).eval()
    x = specs.fbank.build(specs.fbank.config()).from_audio(y, 16000)
    with torch.no_grad():
        out = backbone(torch.from_numpy(x)[None], torch.tensor([x.shape[1]]))
    want = out.hidden[0, : int(out.lengths[0])].numpy().T
    got = ast.from_audio(y, 16000)
    assert got.shape == (32, 1 + y.size // ast.hop_length) == want.shape and ast.hop_length == 1600
    np.testing.assert_allclose(got, want, atol=1e-5)
    w2v = specs.hf_embed.build(make_config(specs.hf_embed.config, {"weights": str(tiny_w2v)}))
    assert w2v.family == "wav2vec2" and w2v.hop_length == 320 and w2v.from_audio(y, 16000).shape == (32, 51)


def test_the_embeddings_cache_key_names_the_weights_layer_and_front_end(tiny_ast, tmp_path):
    def key(**settings):
        return specs.hf_embed.build(make_config(specs.hf_embed.config, settings)).settings()

    base = key(weights=str(tiny_ast))
    assert base["weights_hash"] == weights_sha256(tiny_ast) and base["layer"] == "last" and "fbank" in base
    assert key(weights=str(tiny_ast), device="cpu") == base  # where it runs does not change it
    assert key(weights=str(tiny_ast), layer="1") != base
    import shutil
    shutil.copytree(tiny_ast, tmp_path / "moved")
    assert key(weights=str(tmp_path / "moved")) == base  # the same weights elsewhere: the same cache


@pytest.mark.parametrize("checkpoint", ["tiny_ast", "tiny_w2v"])
def test_the_embedding_meets_the_feature_contract(checkpoint, request):
    feature = specs.hf_embed.build(make_config(specs.hf_embed.config, {"weights": str(request.getfixturevalue(checkpoint))}))
    check_feature(feature)


def test_the_zoos_ast_from_a_checkpoint_records_its_architecture_and_is_rebuilt_without_the_checkpoint(
        tiny_ast, audio_folder, tmp_path, zoo_env):
    # The checkpoint is read when the backbone is built (ASTConfig.resolved()), not when the config is made:
    # the packaged model must still record the checkpoint's shape, since a rebuild drops `weights`.
    from zoo.engine.package import load_model
    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_ast, folder)
    _zoo("ast+fbank:genre", "--data", str(audio_folder), "--epochs", "1", "--no-track",
         "--set", f"backbone.weights={folder}")
    found = [p for p in zoo_env.glob("runs/*-ast-fbank-genre-*/seed0/model/zoo_model.json")
             if "-hf-ast-" not in p.parts[-4]]  # not hf-ast's runs of the session's workspace
    meta = max(found, key=lambda p: p.stat().st_mtime)
    recorded = json.loads(meta.read_text())["configs"]["backbone"]
    assert (recorded["embed_dim"], recorded["depth"], recorded["grid"], recorded["distill_token"]) == (32, 2, "floor", True)
    shutil.rmtree(folder)  # gone: the package alone rebuilds it
    model, _ = load_model(meta.parent)
    assert model.backbone.out_dim == 32 and model.backbone.n_special == 2
