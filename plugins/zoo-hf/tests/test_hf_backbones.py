"""The ``hf-ast`` and ``hf-w2v`` backbones: equal to the transformers forward, the zoo's contract, layers and blocks."""
from __future__ import annotations

import numpy as np
import pytest

transformers = pytest.importorskip("transformers", reason="music-zoo-hf's tests need transformers: pip install -e plugins/zoo-hf")
import torch  # noqa: E402

import zoo_hf.specs as specs  # noqa: E402
from hftiny import save_w2v, tone  # noqa: E402
from zoo.config import make_config  # noqa: E402
from zoo.errors import ConfigError  # noqa: E402
from zoo.testing import check_backbone, check_backbone_blocks, check_backbone_config, check_backbone_short  # noqa: E402

TOLERANCE = 1e-4
"""The zoo's output against the transformers forward on the same input (absolute; both run the same modules)."""
LAYERS = ["last", "0", "1", "2", "mean"]


def _build(spec, n_bins, **settings):
    return spec.build(make_config(spec.config, settings, where=f"backbone '{spec.name}'"), n_bins).eval()


def _reference(model, inputs, layer, pool=None):
    """What transformers itself gives for ``layer``: its output, hidden_states[N] or their mean over layers 1..L."""
    with torch.no_grad():
        out = model(inputs, output_hidden_states=True)
    if layer == "last":
        h = out.last_hidden_state
    elif layer == "mean":
        h = torch.stack(out.hidden_states[1:]).mean(0)
    else:
        h = out.hidden_states[int(layer)]
    return pool(h) if pool else h


@pytest.mark.parametrize("layer", LAYERS)
def test_hf_ast_equals_the_ast_model_on_the_extractors_input(tiny_ast, layer):
    y = tone(0.5)  # 51 filter-bank frames, within one 64-frame window
    fbank = specs.fbank.build(specs.fbank.config())
    x = torch.from_numpy(fbank.from_audio(y, 16000))[None]  # [1, 128, 51]
    extractor = transformers.ASTFeatureExtractor.from_pretrained(tiny_ast)
    inputs = extractor(y, sampling_rate=16000, return_tensors="pt")["input_values"]  # [1, 64, 128], padded
    reference = transformers.ASTModel.from_pretrained(tiny_ast).eval()
    want = _reference(reference, inputs, layer, pool=lambda h: (h[:, 0] + h[:, 1]) / 2)
    if layer == "last":
        torch.testing.assert_close(want, reference(inputs).pooler_output)
    model = _build(specs.hf_ast, 128, weights=str(tiny_ast), layer=layer)
    with torch.no_grad():
        out = model(x, torch.tensor([x.shape[2]]))
    assert out.hidden.shape == (1, 1, 32) and out.lengths.tolist() == [1]
    torch.testing.assert_close(out.hidden[:, 0], want, atol=TOLERANCE, rtol=0)


def test_hf_ast_tokens_are_the_patch_columns_and_long_clips_are_cut_into_windows(tiny_ast):
    reference = transformers.ASTModel.from_pretrained(tiny_ast).eval()
    model = _build(specs.hf_ast, 128, weights=str(tiny_ast), output="tokens", layer="1")
    x = torch.randn(2, 128, 64)
    with torch.no_grad():
        out = model(x, torch.tensor([64, 40]))
        h = reference(x[:1].transpose(1, 2), output_hidden_states=True).hidden_states[1]
    # One window holds 5 patch columns (16 frames every 10); the 64-frame clip needs 2 windows, 7 columns.
    assert out.hidden.shape == (2, 10, 32) and out.lengths.tolist() == [7, 4]
    cols = h[:, 2:].reshape(1, 12, 5, 32).mean(1)
    torch.testing.assert_close(out.hidden[0, :5], cols[0], atol=TOLERANCE, rtol=0)
    assert torch.all(out.hidden[1, 4:] == 0)
    pooled = _build(specs.hf_ast, 128, weights=str(tiny_ast))
    with torch.no_grad():
        long = pooled(torch.randn(1, 128, 150), torch.tensor([150]))
    assert long.hidden.shape == (1, 3, 32) and long.lengths.tolist() == [3]  # ceil(150 / 64) windows


@pytest.mark.parametrize("checkpoint", ["tiny_w2v", "tiny_w2v_stable", "tiny_hubert"])
@pytest.mark.parametrize("layer", LAYERS)
def test_hf_w2v_equals_the_transformers_model_on_the_extractors_input(checkpoint, layer, request):
    folder = request.getfixturevalue(checkpoint)
    y = tone(0.5)
    extractor = transformers.Wav2Vec2FeatureExtractor.from_pretrained(folder)
    inputs = extractor(y, sampling_rate=16000, return_tensors="pt")["input_values"]  # normalised when do_normalize
    want = _reference(transformers.AutoModel.from_pretrained(folder).eval(), inputs, layer)
    model = _build(specs.hf_w2v, 1, weights=str(folder), layer=layer)
    with torch.no_grad():
        out = model(torch.from_numpy(y)[None, None], torch.tensor([y.size]))
    assert out.hidden.shape == want.shape and out.lengths.tolist() == [want.shape[1]] == [24]
    torch.testing.assert_close(out.hidden, want, atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("name, n_bins, checkpoint, settings", [
    ("hf_ast", 128, "tiny_ast", {}),
    ("hf_ast", 128, "tiny_ast", {"output": "tokens", "layer": "mean"}),
    ("hf_w2v", 1, "tiny_w2v", {}),
    ("hf_w2v", 1, "tiny_w2v_stable", {"layer": "1"}),
    ("hf_w2v", 1, "tiny_hubert", {"layer": "mean"}),
])
def test_pretrained_backbones_meet_the_contract(name, n_bins, checkpoint, settings, request):
    spec = getattr(specs, name)
    settings = {"weights": str(request.getfixturevalue(checkpoint)), **settings}
    check_backbone(spec, n_bins=n_bins, settings=settings)


def test_a_clip_gives_the_same_output_alone_and_in_a_batch_of_other_lengths(tiny_w2v):
    model = _build(specs.hf_w2v, 1, weights=str(tiny_w2v))
    x = torch.randn(3, 1, 4000)
    with torch.no_grad():
        batch = model(x, torch.tensor([4000, 2500, 100]))
        alone = model(x[1:2, :, :2500], torch.tensor([2500]))
    assert batch.lengths.tolist() == [12, 7, 1]
    torch.testing.assert_close(batch.hidden[1, :7], alone.hidden[0], atol=1e-5, rtol=0)


def test_short_clips_train_without_specaugment_errors(tmp_path):
    folder = save_w2v(tmp_path / "augmented", augment=True)  # SpecAugment on, 10-frame masks
    check_backbone_short(specs.hf_w2v, n_bins=1, settings={"weights": str(folder)}, sizes=(1, 400, 1000, 4000))


@pytest.mark.parametrize("layer, layers, norm", [("last", 2, True), ("mean", 2, False), ("1", 1, False), ("0", 0, False)])
def test_a_layer_keeps_only_what_computes_it(tiny_w2v_stable, tiny_ast, layer, layers, norm):
    w2v = _build(specs.hf_w2v, 1, weights=str(tiny_w2v_stable), layer=layer)
    names = [name for name, _ in w2v.named_blocks()]
    assert names[0] == "feature_encoder" and len(w2v.model.encoder.layers) == layers
    assert ("encoder.layer_norm" in names) == norm
    ast = _build(specs.hf_ast, 128, weights=str(tiny_ast), layer=layer)
    assert len(ast.model.layers) == layers and (ast.named_blocks()[-1][0] == "layernorm") == norm


@pytest.mark.parametrize("name, n_bins, checkpoint", [("hf_ast", 128, "tiny_ast"), ("hf_w2v", 1, "tiny_w2v")])
def test_freeze_fixes_the_first_declared_blocks(name, n_bins, checkpoint, request):
    spec, folder = getattr(specs, name), str(request.getfixturevalue(checkpoint))
    check_backbone_blocks(spec, n_bins=n_bins, settings={"weights": folder})
    check_backbone_config(spec, n_bins=n_bins, settings={"weights": folder})
    model = spec.build(make_config(spec.config, {"weights": folder, "freeze": 1}), n_bins)
    frozen = {n.split(".")[1] for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == ({"embeddings", "layers"} if name == "hf_ast" else {"feature_extractor"})
    with pytest.raises(ConfigError, match=r"freeze=9, but it has \d+ blocks"):
        spec.build(make_config(spec.config, {"weights": folder, "freeze": 9}), n_bins)


def test_settings_that_cannot_work_are_refused_with_the_fix(tiny_ast, tiny_w2v):
    with pytest.raises(ConfigError, match="layer.*3 > the model's 2 layers"):
        make_config(specs.hf_ast.config, {"weights": str(tiny_ast), "layer": "3"}).resolved()
    with pytest.raises(ConfigError, match="'layer': 'middle' is not a layer"):
        make_config(specs.hf_ast.config, {"layer": "middle"})
    with pytest.raises(ConfigError, match="hidden_size describe the from-scratch model"):
        make_config(specs.hf_ast.config, {"weights": str(tiny_ast), "hidden_size": "128"})
    with pytest.raises(ConfigError, match="is a waveform encoder.*hf-w2v\\+wave"):
        _build(specs.hf_ast, 128, weights=str(tiny_w2v))
    with pytest.raises(ConfigError, match="Audio Spectrogram Transformer.*hf-ast\\+fbank"):
        _build(specs.hf_w2v, 1, weights=str(tiny_ast))
    with pytest.raises(ConfigError, match="takes 128 mel bins, but the features give 140"):
        _build(specs.hf_ast, 140, weights=str(tiny_ast))


def test_the_from_scratch_defaults_are_small_and_seeded():
    torch.manual_seed(3)
    a = _build(specs.hf_w2v, 1)
    torch.manual_seed(3)
    b = _build(specs.hf_w2v, 1)
    assert a.out_dim == 64 and len(a.model.encoder.layers) == 2
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert np.isclose(_build(specs.hf_ast, 12).pad, (0 + 4.2677393) / (2 * 4.5689974))
