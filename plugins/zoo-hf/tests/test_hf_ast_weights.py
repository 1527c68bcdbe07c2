"""The zoo's own ``ast`` backbone started from a Hugging Face AST checkpoint (music-zoo-ast's key mapping).

On an input of the checkpoint's whole window the two compute the same thing. On a shorter clip
they differ by design, and the test says where: the zoo masks the padded patches out of attention,
while the AST attends to the padded frames.
"""
from __future__ import annotations

import json
import shutil

import pytest

transformers = pytest.importorskip("transformers", reason="music-zoo-hf's tests need transformers: pip install -e plugins/zoo-hf")
zoo_ast = pytest.importorskip("zoo_ast", reason="needs the music-zoo-ast plugin (pip install -e plugins/zoo-ast)")
import torch  # noqa: E402

from zoo.config import make_config  # noqa: E402
from zoo.errors import ConfigError  # noqa: E402
from zoo.testing import check_backbone  # noqa: E402

TOLERANCE = 1e-4
WHERE = "backbone 'ast'"


def _zoo_ast(weights, n_bins=128, **settings):
    config = make_config(zoo_ast.ASTConfig, {"weights": str(weights), **settings}, where=WHERE)
    return zoo_ast.build(config, n_bins).eval()


def test_the_architecture_follows_the_checkpoints_config_when_the_backbone_is_built(tiny_ast):
    made = make_config(zoo_ast.ASTConfig, {"weights": str(tiny_ast)}, where=WHERE)
    assert made == zoo_ast.ASTConfig(weights=str(tiny_ast))  # making a config reads nothing
    model = _zoo_ast(tiny_ast)
    config = model.config  # what a packaged model records: the checkpoint's architecture
    assert (config.embed_dim, config.depth, config.heads, config.mlp_ratio) == (32, 2, 2, 2.0)
    assert (config.grid, config.distill_token, config.max_frames, config.fstride, config.tstride) == ("floor", True, 64, 10, 10)
    assert (model.n_freq, model.max_time) == (12, 5)  # AST's grid: (128 - 16) // 10 + 1 rows, (64 - 16) // 10 + 1 columns
    with pytest.raises(ConfigError, match=r"AST of another shape: embed_dim=384 \(the checkpoint has 32\)"):
        _zoo_ast(tiny_ast, embed_dim="384")
    with pytest.raises(ConfigError, match=r"freeze=3 must be in 0..depth \(2\)"):
        _zoo_ast(tiny_ast, freeze="3")


def test_making_a_config_that_names_a_hub_model_asks_no_server_and_reads_no_file(monkeypatch):
    import zoo.hub

    def no_io(*args, **kwargs):
        raise AssertionError("a config's __post_init__ looked the checkpoint up")
    monkeypatch.setattr(zoo.hub, "checkpoint_folder", no_io)
    monkeypatch.setattr(zoo_ast.hub, "checkpoint_folder", no_io)
    config = make_config(zoo_ast.ASTConfig, {"weights": "hf:some-org/not-cached", "freeze": "8"}, where=WHERE)
    assert config.weights == "hf:some-org/not-cached" and config.embed_dim == 192  # adopted only when built
    with pytest.raises(AssertionError, match="looked the checkpoint up"):
        zoo_ast.build(config, 128)


@pytest.mark.parametrize("output", ["cls", "sequence"])
def test_on_a_whole_window_the_zoos_ast_equals_the_transformers_ast(tiny_ast, output):
    reference = transformers.ASTModel.from_pretrained(tiny_ast).eval()
    model = _zoo_ast(tiny_ast, output=output)
    x = torch.randn(3, 128, 64)  # [B, bins, frames]: exactly max_length frames, nothing padded
    with torch.no_grad():
        want = reference(x.transpose(1, 2))
        got = model(x, torch.tensor([64, 64, 64]))
    if output == "cls":
        torch.testing.assert_close(got.hidden, want.pooler_output, atol=TOLERANCE, rtol=0)
    else:  # the patch tokens averaged over frequency, one per time column
        tokens = want.last_hidden_state[:, 2:].reshape(3, 12, 5, 32).mean(1)
        torch.testing.assert_close(got.hidden, tokens, atol=TOLERANCE, rtol=0)


def test_a_shorter_clip_differs_only_by_the_padding_the_ast_attends_to(tiny_ast):
    reference = transformers.ASTModel.from_pretrained(tiny_ast).eval()
    model = _zoo_ast(tiny_ast)
    x = torch.randn(1, 128, 36)  # 3 whole time patches of the 5 a window holds
    pad = (0 + 4.2677393) / (2 * 4.5689974)  # what ASTFeatureExtractor pads with
    padded = torch.cat([x, torch.full((1, 128, 28), pad)], dim=2)
    with torch.no_grad():
        ours = model(x, torch.tensor([36])).hidden
        theirs = reference(padded.transpose(1, 2)).pooler_output
        ours_padded = model(padded, torch.tensor([64])).hidden  # told the padding is part of the clip
    assert not torch.allclose(ours, theirs, atol=TOLERANCE)
    torch.testing.assert_close(ours_padded, theirs, atol=TOLERANCE, rtol=0)


def test_the_mapped_model_meets_the_backbone_contract(tiny_ast):
    check_backbone(zoo_ast.spec, n_bins=128, settings={"weights": str(tiny_ast)})


def test_a_checkpoint_for_other_bins_or_models_is_refused_with_the_fix(tiny_ast, tiny_w2v, tmp_path):
    with pytest.raises(ConfigError, match=r"needs \(1, 2 \+ 5 x 5, 32\): 5 frequency rows for 64 bins.*num_mel_bins"):
        _zoo_ast(tiny_ast, n_bins=64)
    with pytest.raises(ConfigError, match="is a 'wav2vec2' model, not an Audio Spectrogram Transformer"):
        _zoo_ast(tiny_w2v)
    folder = tmp_path / "relu"
    shutil.copytree(tiny_ast, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "hidden_act": "relu"}))
    with pytest.raises(ConfigError, match="hidden_act='relu'"):
        _zoo_ast(folder)
