"""Finding checkpoints: the Hugging Face cache offline, folders, the weights' hash, the recorded architecture."""
from __future__ import annotations

import hashlib
import json
import shutil

import pytest

pytest.importorskip("transformers", reason="music-zoo-hf's tests need transformers: pip install -e plugins/zoo-hf")
import torch  # noqa: E402

import zoo_hf.specs as specs  # noqa: E402
from zoo.config import config_dict, make_config  # noqa: E402
from zoo.errors import ConfigError  # noqa: E402
from zoo_hf.checkpoints import load_checkpoint, weights_sha256  # noqa: E402

REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch, tiny_ast):
    """A Hugging Face cache holding ``tiny-org/tiny-ast`` as ``hf download`` lays it out (content-named
    blobs, a snapshot of links, refs/main), with the hub offline."""
    from huggingface_hub import constants

    repo = tmp_path / "hub" / "models--tiny-org--tiny-ast"
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    snapshot = repo / "snapshots" / REVISION
    snapshot.mkdir(parents=True)
    for f in tiny_ast.iterdir():
        blob = repo / "blobs" / hashlib.sha256(f.read_bytes()).hexdigest()
        shutil.copy(f, blob)
        (snapshot / f.name).symlink_to(blob)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return snapshot


def test_hf_names_are_read_from_the_cache_offline_with_the_same_hash_as_the_folder(hub_cache, tiny_ast):
    for weights in ("hf:tiny-org/tiny-ast", f"hf:tiny-org/tiny-ast@{REVISION}"):
        ckpt = load_checkpoint(weights, "backbone 'hf-ast'")
        assert ckpt.folder == hub_cache and ckpt.family == "ast"
        assert ckpt.sha256 == weights_sha256(tiny_ast)  # blob names stand for the files' sha256
    config = make_config(specs.hf_ast.config, {"weights": "hf:tiny-org/tiny-ast"})
    assert config.weights_hash == "" and config.architecture == ""  # making the config read nothing
    assert specs.hf_ast.build(config, 128).out_dim == 32


def test_a_model_missing_from_the_cache_offline_says_how_to_fetch_it(hub_cache):
    with pytest.raises(ConfigError, match=r"not in the Hugging Face cache.*HF_HUB_OFFLINE=1.*hf download tiny-org/other"):
        make_config(specs.hf_ast.config, {"weights": "hf:tiny-org/other"}).resolved()
    with pytest.raises(ConfigError, match="does not name a Hugging Face model"):
        make_config(specs.hf_ast.config, {"weights": "hf:no-slash"}).resolved()


def test_folders_that_are_not_checkpoints_are_refused(tmp_path, tiny_ast):
    with pytest.raises(ConfigError, match="folder .* not found"):
        make_config(specs.hf_ast.config, {"weights": str(tmp_path / "nowhere")}).resolved()
    with pytest.raises(ConfigError, match="is a file; give the folder"):
        make_config(specs.hf_ast.config, {"weights": str(tiny_ast / "config.json")}).resolved()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="has no config.json"):
        make_config(specs.hf_ast.config, {"weights": str(tmp_path / "empty")}).resolved()


def test_the_hash_is_recorded_and_pins_the_weights(tmp_path, tiny_ast):
    folder = tmp_path / "copy"
    shutil.copytree(tiny_ast, folder)
    config = make_config(specs.hf_ast.config, {"weights": str(folder)}).resolved()
    assert config.weights_hash == weights_sha256(tiny_ast) and len(config.weights_hash) == 64
    pinned = {"weights": str(folder), "weights_hash": config.weights_hash}
    make_config(specs.hf_ast.config, pinned).resolved()  # the same weights: accepted
    with open(folder / "model.safetensors", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ConfigError, match="have sha256 .* but weights_hash is .*changed since"):
        make_config(specs.hf_ast.config, pinned).resolved()


def test_a_packaged_model_is_rebuilt_from_the_recorded_architecture_without_the_checkpoint(tiny_w2v, tiny_w2v_stable):
    built = make_config(specs.hf_w2v.config, {"weights": str(tiny_w2v), "layer": "1"}).resolved()
    record = json.loads(built.architecture)
    assert record["config"]["model_type"] == "wav2vec2" and record["preprocessor"]["do_normalize"] is True
    recorded = {k: v for k, v in config_dict(built).items() if k != "weights"}  # what the engine rebuilds from
    again = make_config(specs.hf_w2v.config, recorded)
    assert again.checkpoint is None and again.normalizes and again.width == 32
    torch.manual_seed(0)
    source = specs.hf_w2v.build(built, 1).eval()
    rebuilt = specs.hf_w2v.build(again, 1).eval()
    rebuilt.load_state_dict(source.state_dict())
    x = torch.randn(2, 1, 3000)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x, torch.tensor([3000, 2000])).hidden, source(x, torch.tensor([3000, 2000])).hidden)
    with pytest.raises(ConfigError, match="architecture recorded in these settings is not that of"):
        make_config(specs.hf_w2v.config, {"weights": str(tiny_w2v_stable), "architecture": built.architecture}).resolved()


def test_a_checkpoint_with_its_own_code_needs_trust_remote_code(tmp_path, tiny_w2v):
    folder = tmp_path / "remote"
    shutil.copytree(tiny_w2v, folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "configuration_x.XConfig", "AutoModel": "modeling_x.XModel"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=r"ships its own model code \(modeling_x.XModel.*trust_remote_code=true"):
        make_config(specs.hf_w2v.config, {"weights": str(folder)}).resolved()
    with pytest.raises(ConfigError, match=r"--set hf-embed.trust_remote_code=true"):
        make_config(specs.hf_embed.config, {"weights": str(folder)}).resolved()
