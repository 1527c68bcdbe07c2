"""The lstm, cnn and ast backbone plugins: what each promises beyond the common contract."""
from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from zoo.cli.list_cmd import rows
from zoo.errors import ConfigError, DataError
from zoo.registry import Registry
from zoo.testing import check_backbone, check_backbone_backward, check_backbone_lengths

REGISTRY = Registry()


def make(name, n_bins, **settings):
    return REGISTRY.create("backbone", name, settings, n_bins)


def plain_lstm(n_bins, **settings):
    """The LSTM without its conv front end (the lab's network): what the recurrence tests check."""
    return make("lstm", n_bins, conv_layers=0, **settings)


def padded(n_bins, lengths, seed=0, pad=0.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lengths), n_bins, max(lengths), generator=g)
    for i, n in enumerate(lengths):
        x[i, :, n:] = pad
    return x, torch.tensor(lengths)


def ceil_chain(n, blocks, pool=2):
    for _ in range(blocks):
        n = math.ceil(n / pool) if n > 1 else n
    return n


# -- packaging -----------------------------------------------------------------------------

def test_installed_as_separate_distributions():
    listed = {r["name"]: r for r in rows(REGISTRY, ("backbone",))}
    for name in ("lstm", "cnn", "ast"):
        assert listed[name]["provider"] == f"music-zoo-{name}==0.1.0"
        assert listed[name]["error"] == "" and listed[name]["summary"]


def test_spec_import_is_light():
    # `zoo list` imports every spec: torch and timm must wait until a model is built.
    code = "import sys, zoo_lstm, zoo_cnn, zoo_ast; print(sorted(m for m in ('torch', 'timm') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", ["lstm", "cnn", "ast"])
def test_padding_values_never_matter(name):
    # The zoo pads with zeros; each backbone also masks, so even huge padding cannot leak.
    check_backbone_lengths(REGISTRY.load("backbone", name), n_bins=16, pad=1e3)


@pytest.mark.parametrize("name", ["lstm", "cnn", "ast"])
def test_wrong_number_of_bins_is_a_clear_error(name):
    model = make(name, 12)
    with pytest.raises(DataError, match=r"\[batch, 12, time\]"):
        model(torch.zeros(2, 13, 20), torch.tensor([20, 10]))


# -- lstm ----------------------------------------------------------------------------------

def test_lstm_returns_sequence_zero_past_each_length():
    model = plain_lstm(10, hidden=16).eval()
    lengths = [23, 9, 1, 15]
    x, lens = padded(10, lengths)
    out = model(x, lens)
    assert out.hidden.shape == (4, 23, 32) and model.out_dim == 32
    assert out.lengths.tolist() == lengths
    for i, n in enumerate(lengths):
        assert torch.all(out.hidden[i, n:] == 0)
        assert torch.all(out.hidden[i, :n].abs().sum(-1) > 0)


def test_lstm_backward_direction_starts_at_the_true_end():
    # The backward half of step n-1 has seen only that step, alone or in a batch (both paths).
    model = plain_lstm(6, hidden=8, layers=1).eval()
    x, lens = padded(6, [12, 5])
    for packed in (False, True):
        model.packed_on_cpu = packed
        with torch.no_grad():
            batch = model(x, lens).hidden
            alone = model(x[1:, :, 4:5], torch.tensor([1])).hidden
        assert torch.allclose(batch[1, 4, 8:], alone[0, 0, 8:], atol=1e-6), packed


def _outputs_and_grads(model, x, lengths, packed):
    model.packed_on_cpu = packed
    model.zero_grad(set_to_none=True)
    v = x.clone().requires_grad_(True)
    out = model(v, lengths).hidden
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    (out * weights).sum().backward()
    return out.detach(), [v.grad] + [p.grad for p in model.rnn.parameters()]


# Tolerances of the CPU fast path against the packed path (float32): outputs within 1e-5
# absolutely; every gradient (input and each LSTM weight) within 1e-4 of its largest element.
@pytest.mark.parametrize("settings", [
    {"hidden": 8, "layers": 3, "bidirectional": True, "dropout": 0.3},
    {"hidden": 6, "layers": 2, "bidirectional": False, "dropout": 0.0},
    {"hidden": 5, "layers": 1, "bidirectional": True},
])
def test_lstm_cpu_fast_path_gives_the_packed_numbers(settings):
    torch.manual_seed(0)
    model = plain_lstm(5, **settings)
    x, lengths = padded(5, [11, 3, 7, 1, 11, 10])
    # Eval: dropout off, so both paths must agree exactly up to rounding; training mode without
    # dropout too (torch's training path differs from its inference path).
    for mode in ("eval", "train without dropout"):
        model.train(mode != "eval")
        if mode != "eval":
            model.rnn.dropout = 0.0
        fast, fast_grads = _outputs_and_grads(model, x, lengths, packed=False)
        slow, slow_grads = _outputs_and_grads(model, x, lengths, packed=True)
        assert float((fast - slow).abs().max()) < 1e-5, mode
        for a, b in zip(fast_grads, slow_grads):
            assert float((a - b).abs().max() / b.abs().max().clamp(min=1e-12)) < 1e-4, mode
        assert float(fast[1, 3:].abs().max()) == 0.0  # zero past each clip's length


def test_lstm_on_the_cpu_does_not_pack(monkeypatch):
    import zoo_lstm.model

    def refuse(*args, **kwargs):
        raise AssertionError("packed a batch on the CPU")

    monkeypatch.setattr(zoo_lstm.model, "pack_padded_sequence", refuse)
    model = plain_lstm(4, hidden=4)
    assert model(*padded(4, [6, 2])).hidden.shape == (2, 6, 8)


def test_lstm_dropout_between_layers_on_the_fast_path():
    # Training mode drops between stacked layers (as nn.LSTM does), eval mode does not.
    model = plain_lstm(4, hidden=16, layers=2, dropout=0.5)
    x, lengths = padded(4, [9, 5])
    torch.manual_seed(0)
    a = model(x, lengths).hidden
    torch.manual_seed(1)
    b = model(x, lengths).hidden
    assert not torch.allclose(a, b)
    model.eval()
    assert torch.equal(model(x, lengths).hidden, model(x, lengths).hidden)


def test_flip_within_reverses_only_the_valid_steps():
    from zoo_lstm.model import flip_within
    h = torch.arange(2 * 5, dtype=torch.float32).reshape(2, 5, 1)
    flipped = flip_within(h, torch.tensor([5, 3]))
    assert flipped[0, :, 0].tolist() == [4, 3, 2, 1, 0]
    assert flipped[1, :, 0].tolist() == [7, 6, 5, 8, 9]


def test_lstm_settings_from_cli_strings():
    model = plain_lstm(7, hidden="24", layers="3", bidirectional="false", dropout="0.3")
    assert model.out_dim == 24
    assert model.rnn.num_layers == 3 and model.rnn.dropout == pytest.approx(0.3)
    assert not model.rnn.bidirectional
    single = plain_lstm(7, layers=1, dropout=0.5)
    assert single.rnn.dropout == 0.0  # nothing to drop between layers


def test_lstm_bad_settings_and_lengths():
    with pytest.raises(ConfigError, match="layers=0"):
        plain_lstm(4, layers=0)
    with pytest.raises(ConfigError, match="did you mean 'hidden'"):
        plain_lstm(4, hiden=5)
    model = plain_lstm(4, hidden=4)
    with pytest.raises(DataError, match=r"lengths must be in 1\.\.6"):
        model(torch.zeros(2, 4, 6), torch.tensor([6, 0]))
    with pytest.raises(DataError, match=r"lengths must be in 1\.\.6"):
        model(torch.zeros(2, 4, 6), torch.tensor([7, 3]))


# -- cnn -----------------------------------------------------------------------------------

def test_cnn_on_beat_synced_chroma():
    model = make("cnn", 12).eval()
    lengths = [20, 7, 1]
    x, lens = padded(12, lengths)
    out = model(x, lens)
    assert model.out_dim == 256
    assert out.hidden.shape == (3, ceil_chain(20, 4), 256)
    assert out.lengths.tolist() == [ceil_chain(n, 4) for n in lengths]
    for i, n in enumerate(out.lengths.tolist()):
        assert torch.all(out.hidden[i, n:] == 0)
    assert torch.isfinite(out.hidden).all()


def test_cnn_tiny_image_and_custom_blocks():
    tiny = make("cnn", 1, channels=(4, 8, 16))
    assert [b.conv.kernel_size for b in tiny.blocks] == [(5, 5), (3, 3), (3, 3)]  # last kernel repeats
    out = tiny.eval()(torch.randn(2, 1, 1), torch.tensor([1, 1]))
    assert out.hidden.shape == (2, 1, 16)
    model = make("cnn", 12, channels="8,16,32", kernels="3,3,1", pool="1")
    assert model.out_dim == 32 and len(model.blocks) == 3
    assert [b.conv.kernel_size for b in model.blocks] == [(3, 3), (3, 3), (1, 1)]
    out = model.eval()(torch.randn(2, 12, 9), torch.tensor([9, 4]))
    assert out.hidden.shape == (2, 9, 32) and out.lengths.tolist() == [9, 4]


def test_cnn_bad_settings():
    with pytest.raises(ConfigError, match="at most one kernel size per block"):
        make("cnn", 12, channels=(8, 16), kernels=(3, 3, 3))
    with pytest.raises(ConfigError, match="must all be odd"):
        make("cnn", 12, kernels=(4, 3, 3, 3))


def test_cnn_lab_defaults():
    model = make("cnn", 128)
    assert [b.conv.out_channels for b in model.blocks] == [32, 64, 128, 256]
    assert [b.conv.kernel_size for b in model.blocks] == [(5, 5), (3, 3), (3, 3), (3, 3)]
    assert all(isinstance(b.norm, torch.nn.BatchNorm2d) for b in model.blocks)


# -- ast -----------------------------------------------------------------------------------

def tokens_seen(model, x, lengths):
    """The token count the first transformer block receives (CLS included)."""
    seen = []
    hook = model.vit.blocks[0].register_forward_hook(lambda m, args, out: seen.append(args[0].shape[1]))
    try:
        with torch.no_grad():
            model(x, lengths)
    finally:
        hook.remove()
    return seen[0]


def test_ast_overlapping_grid_for_128_by_100():
    model = make("ast", 128, depth=1, output="sequence").eval()
    conv = model.vit.patch_embed.proj
    assert conv.kernel_size == (16, 16) and conv.stride == (10, 10)
    # Frequency: 1 + ceil((128 - 16) / 10) = 13 rows; time: 1 + ceil((100 - 16) / 10) = 10.
    x = torch.randn(2, 128, 100)
    assert tokens_seen(model, x, torch.tensor([100, 100])) == 1 + 13 * 10
    out = model(x, torch.tensor([100, 40]))
    assert out.hidden.shape == (2, 10, 192)
    assert out.lengths.tolist() == [10, 1 + math.ceil((40 - 16) / 10)]


def test_ast_strides_are_configurable():
    model = make("ast", 128, depth=1, fstride=16, tstride=16)
    # Non-overlapping: 128 / 16 = 8 rows, 1 + ceil((100 - 16) / 16) = 7 columns.
    assert tokens_seen(model, torch.randn(1, 128, 100), torch.tensor([100])) == 1 + 8 * 7


def test_ast_positions_crop_short_and_interpolate_long():
    model = make("ast", 12, depth=1, max_frames=46)  # 1 row; 1 + ceil(30 / 10) = 4 columns
    table = model.pos_embed[0, :, 0].T  # [4, D]
    assert table.shape == (4, 192)
    assert torch.equal(model.positions(3)[0], table[:3])
    long = model.positions(10)[0]
    assert long.shape == (10, 192)
    # Linear stretch of 4 columns over 10: the ends stay, the inside is a blend.
    assert torch.allclose(long[0], table[0]) and torch.allclose(long[-1], table[-1])
    assert not torch.allclose(long[1], table[1])
    out = model.eval()(torch.randn(2, 12, 100), torch.tensor([100, 30]))
    assert out.hidden.shape == (2, 192) and torch.isfinite(out.hidden).all()


def test_ast_sequence_output_and_projection_meet_the_contract():
    check_backbone(REGISTRY.load("backbone", "ast"), n_bins=24,
                   settings={"output": "sequence", "out_dim": 10, "depth": 2})


def save_vit(path, depth=2, width=192, heads=3):
    from timm.models.vision_transformer import VisionTransformer

    vit = VisionTransformer(img_size=64, patch_size=16, embed_dim=width, depth=depth, num_heads=heads, num_classes=7)
    state = vit.state_dict()
    if str(path).endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    return state


@pytest.mark.parametrize("filename", ["vit.pth", "vit.safetensors"])
def test_ast_loads_an_imagenet_vit_state_dict(tmp_path, filename):
    path = tmp_path / filename
    state = save_vit(path)
    model = make("ast", 40, depth=2, weights=str(path))
    own = model.state_dict()
    assert torch.equal(own["vit.blocks.1.mlp.fc2.weight"], state["blocks.1.mlp.fc2.weight"])
    assert torch.equal(own["vit.norm.bias"], state["norm.bias"])
    assert torch.equal(own["vit.cls_token"], state["cls_token"])
    assert torch.allclose(own["vit.patch_embed.proj.weight"], state["patch_embed.proj.weight"].sum(1, keepdim=True))
    assert torch.equal(own["cls_pos_embed"], state["pos_embed"][:, :1])
    # The 4 x 4 ImageNet grid is resized to 4 x 130 (40 bins: 1 + ceil(24 / 10) rows; 1300
    # frames: 1 + ceil(1284 / 10) columns); upsampling keeps the corner cells.
    grid = state["pos_embed"][0, 1:].reshape(4, 4, 192)
    assert own["pos_embed"].shape == (1, 192, 4, 130)
    assert torch.allclose(own["pos_embed"][0, :, 0, 0], grid[0, 0])
    assert torch.allclose(own["pos_embed"][0, :, -1, -1], grid[-1, -1])
    out = model.eval()(torch.randn(2, 40, 50), torch.tensor([50, 20]))
    assert torch.isfinite(out.hidden).all()


def test_ast_weights_that_do_not_fit_are_refused(tmp_path):
    path = tmp_path / "vit.pth"
    save_vit(path, depth=2)
    with pytest.raises(ConfigError, match="set --set backbone.depth=2"):
        make("ast", 40, depth=3, weights=str(path))
    with pytest.raises(ConfigError, match="embed_dim=96"):
        save_vit(tmp_path / "narrow.pth", width=96)
        make("ast", 40, depth=2, weights=str(tmp_path / "narrow.pth"))
    with pytest.raises(ConfigError, match="not found"):
        make("ast", 40, weights=str(tmp_path / "missing.pth"))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match=r"junk\.pth (cannot be read|is not a file torch\.save wrote|holds more than tensors)"):
        make("ast", 40, weights=str(tmp_path / "junk.pth"))


def test_ast_freeze_keeps_embeddings_and_leading_blocks_fixed(tmp_path):
    path = tmp_path / "vit.pth"
    save_vit(path, depth=3)
    settings = {"depth": 3, "freeze": 2, "weights": str(path)}
    model = make("ast", 20, **settings)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert "pos_embed" in frozen and "vit.patch_embed.proj.weight" in frozen and "vit.cls_token" in frozen
    assert any(n.startswith("vit.blocks.1.") for n in frozen)
    assert not any(n.startswith("vit.blocks.2.") or n.startswith("vit.norm.") for n in frozen)
    check_backbone_backward(REGISTRY.load("backbone", "ast"), n_bins=20, settings=settings)
    with pytest.raises(ConfigError, match="freeze=5"):
        make("ast", 20, freeze=5)


def test_ast_bad_settings():
    with pytest.raises(ConfigError, match="not divisible by heads"):
        make("ast", 20, embed_dim=100, heads=3)
    with pytest.raises(ConfigError, match="tstride=20"):
        make("ast", 20, tstride=20)
    with pytest.raises(ConfigError, match="'cls', 'sequence'"):
        make("ast", 20, output="tokens")
