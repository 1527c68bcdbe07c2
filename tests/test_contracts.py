"""Every installed backbone, feature and task against the zoo's contracts (zoo.testing).

The parametrization comes from the registry, so a newly installed plugin is checked here with
no change to this file. The second half checks the checkers: each must reject a component
that breaks the promise it guards.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import torch
from torch import nn

from zoo.errors import DataError
from zoo.model.layers import length_mask, masked_mean
from zoo.protocols import BackboneOutput, ComponentSpec, FixedInputBins
from zoo.registry import Registry
from zoo.tasks import Classification, ClassificationConfig
from zoo.testing import (
    check_backbone,
    check_backbone_backward,
    check_backbone_blocks,
    check_backbone_config,
    check_backbone_determinism,
    check_backbone_forward,
    check_backbone_lengths,
    check_backbone_short,
    check_feature,
    check_head_embed,
    check_task,
    installed,
)

REGISTRY = Registry()


@pytest.mark.parametrize("name", installed("backbone", REGISTRY))
def test_backbone_contract(name):
    # 12 bins: chroma, the narrowest feature (narrower than one AST patch, pooled to 1 by the CNN);
    # a backbone that takes one width only (a pretrained front end's) declares it.
    spec = REGISTRY.load("backbone", name)
    bins = spec.config.input_bins if isinstance(spec.config, FixedInputBins) else 12
    check_backbone(spec, n_bins=bins)


@pytest.mark.parametrize("name", installed("feature", REGISTRY))
def test_feature_contract(name):
    check_feature(REGISTRY.create("feature", name))


@pytest.mark.parametrize("name", installed("task", REGISTRY))
def test_task_contract(name):
    check_task(REGISTRY.create("task", name))


def test_installed_lists_the_registry_names_and_their_variants():
    assert installed("backbone", REGISTRY) == sorted({*REGISTRY.names("backbone"), *REGISTRY.variants("backbone")})
    assert installed("backbone", REGISTRY, variants=False) == REGISTRY.names("backbone")
    assert {"lstm", "cnn", "ast"} <= set(installed("backbone"))
    if "cnn" in REGISTRY.names("backbone"):  # the CNN plugin declares cnn-wide: the contract tests above run on it
        assert "cnn-wide" in installed("backbone", REGISTRY)
    assert {"genre", "valence", "energy", "danceability"} <= set(installed("task"))


# -- the checkers reject broken components -------------------------------------------------

class _Base(nn.Module):
    """A minimal conforming backbone: a linear map per step, masked mean over valid steps."""

    def __init__(self, n_bins: int, out_dim: int = 6):
        super().__init__()
        self.lin = nn.Linear(n_bins, out_dim)
        self.out_dim = out_dim

    def steps(self, x):
        return self.lin(x.transpose(1, 2))  # [B, T, D]

    def forward(self, x, lengths):
        h = self.steps(x)
        mask = (torch.arange(x.shape[2])[None, :] < lengths[:, None]).unsqueeze(-1).float()
        return BackboneOutput((h * mask).sum(1) / mask.sum(1))


class _Leaky(_Base):
    def forward(self, x, lengths):  # averages over the padding too
        return BackboneOutput(self.steps(x).mean(1))


class _Unused(_Base):
    def __init__(self, n_bins):
        super().__init__(n_bins)
        self.spare = nn.Linear(3, 3)


class _NumpyInit(_Base):
    def __init__(self, n_bins):
        super().__init__(n_bins)
        with torch.no_grad():  # numpy's unseeded generator: torch.manual_seed cannot reproduce it
            self.lin.weight.copy_(torch.from_numpy(np.random.default_rng().standard_normal(self.lin.weight.shape)))


class _ShortNaN(_Base):
    def forward(self, x, lengths):
        h = self.steps(x)
        return BackboneOutput(h.sum(1) / (lengths[:, None].float() - 1))  # T = 1 divides by zero


class _WrongWidth(_Base):
    def forward(self, x, lengths):
        return BackboneOutput(super().forward(x, lengths).hidden[:, :-1])


def test_a_conforming_toy_backbone_passes():
    check_backbone(_Base, n_bins=5)


@pytest.mark.parametrize("factory, check, promise", [
    (_Leaky, check_backbone_lengths, "padding leaks"),
    (_Unused, check_backbone_backward, "no gradient reaches"),
    (_NumpyInit, check_backbone_determinism, "differ"),
    (_ShortNaN, check_backbone_short, "non-finite"),
    (_WrongWidth, check_backbone_forward, "out_dim"),
])
def test_backbone_checks_reject_broken_backbones(factory, check, promise):
    with pytest.raises(AssertionError, match=promise):
        check(factory, n_bins=5)


def test_backbone_check_accepts_specs_with_settings():
    spec = REGISTRY.load("backbone", "lstm")
    check_backbone_forward(spec, n_bins=4, settings={"hidden": "8", "layers": "1"})
    with pytest.raises(AssertionError, match="needs a backbone spec"):
        check_backbone_forward(REGISTRY.load("task", "genre"), n_bins=4)
    fake = ComponentSpec(kind="backbone", name="toy", build=lambda config, n: _Leaky(n), summary="leaky")
    with pytest.raises(AssertionError, match="backbone 'toy'"):
        check_backbone_lengths(fake, n_bins=4)


class _Feature:
    """A tiny frame-rate feature: RMS per frame, 1 bin, or the lab's chroma rows."""

    name, n_bins, rate, sample_rate, hop_length = "toy", 1, "frames", 8000, 256

    def __init__(self, dtype=np.float32, frames_off: int = 0, lab_ok: bool = True):
        self.dtype, self.frames_off, self.lab_ok = dtype, frames_off, lab_ok

    def settings(self):
        return {"hop_length": self.hop_length}

    def from_audio(self, y, sr):
        n = 1 + len(y) // self.hop_length + self.frames_off
        padded = np.pad(y, (0, n * self.hop_length))
        frames = padded[: n * self.hop_length].reshape(n, self.hop_length)
        return np.sqrt((frames ** 2).mean(1))[None, :].astype(self.dtype)

    def from_lab(self, fused):
        if not self.lab_ok:
            raise DataError("feature 'toy' cannot be read from the lab's arrays; use audio")
        return fused[128:129].astype(np.float32)


def test_feature_check_passes_and_rejects():
    check_feature(_Feature(), seconds=2.0)
    check_feature(_Feature(lab_ok=False), seconds=2.0, lab=False)
    with pytest.raises(AssertionError, match="float32"):
        check_feature(_Feature(dtype=np.float64), seconds=2.0)
    with pytest.raises(AssertionError, match="1 \\+ N // hop_length"):
        check_feature(_Feature(frames_off=5), seconds=2.0)
    with pytest.raises(AssertionError, match="without a ZooError"):
        check_feature(_Feature(), seconds=2.0, lab=False)


class _BatchedFeature(_Feature):
    """``_Feature`` with the optional batch member (zoo.protocols.BatchesAudio); ``pad`` makes its
    batch wrong the way a careless batched kernel is: every clip padded to the longest."""

    def __init__(self, pad: bool = False, batch_size=4):
        super().__init__()
        self.pad, self.batch_size = pad, batch_size

    def from_audio_batch(self, ys, sr):
        n = max(len(y) for y in ys) if self.pad else None
        return [self.from_audio(np.pad(y, (0, n - len(y))) if n else y, sr) for y in ys]


class _Pictured(_Feature):
    """``_Feature`` with the optional ``picture`` (zoo.protocols.Drawable)."""

    def __init__(self, picture):
        super().__init__()
        self.picture = picture


def test_feature_check_checks_the_optional_picture():
    from zoo.protocols import Picture
    check_feature(_Pictured(Picture("loudness", "plain")), seconds=2.0)
    with pytest.raises(AssertionError, match="picture must be a zoo.protocols.Picture"):
        check_feature(_Pictured(("loudness", "plain")), seconds=2.0)
    with pytest.raises(AssertionError, match="only a beat-rate feature has a beat_of"):
        check_feature(_Pictured(Picture("loudness", "plain", beat_of="rms")), seconds=2.0)


def test_feature_check_checks_the_optional_batch_member():
    check_feature(_BatchedFeature(), seconds=2.0)
    with pytest.raises(AssertionError, match="from_audio_batch gave a clip .* differs from what from_audio gives"):
        check_feature(_BatchedFeature(pad=True), seconds=2.0)
    with pytest.raises(AssertionError, match=r"batch_size must be a positive int \(zoo.protocols.BatchesAudio\), got 0"):
        check_feature(_BatchedFeature(batch_size=0), seconds=2.0)


class _UnmaskedClassification(Classification):
    """Pools over every step, padding included: the check must notice."""

    def make_head(self, in_dim, schema):
        out = nn.Linear(in_dim, schema.out_dim)

        class Head(nn.Module):
            def __init__(self):
                super().__init__()
                self.out = out

            def forward(self, o):
                h = o.hidden if o.hidden.dim() == 2 else o.hidden.mean(1)
                return self.out(h)

        return Head()


def test_task_check_rejects_a_head_that_reads_padding():
    check_task(Classification("genre", ClassificationConfig(pooling="last")))
    with pytest.raises(AssertionError, match="padded steps"):
        check_task(_UnmaskedClassification("genre", ClassificationConfig()))


# -- optional members: declared blocks, train_defaults, freeze, a head's embed ----------------

class _Declared(_Base):
    """Two linear maps in a row, declared as two blocks."""

    def __init__(self, n_bins: int, out_dim: int = 6):
        super().__init__(n_bins, out_dim)
        self.mix = nn.Linear(out_dim, out_dim)

    def steps(self, x):
        return self.mix(self.lin(x.transpose(1, 2)))

    def named_blocks(self):
        return [("lin", [self.lin]), ("mix", [self.mix])]


class _Reversed(_Declared):
    def named_blocks(self):
        return [("mix", [self.mix]), ("lin", [self.lin])]


class _Overlapping(_Declared):
    def named_blocks(self):
        return [("lin", [self.lin]), ("both", [self.lin.bias, self.mix])]


class _Foreign(_Declared):
    def named_blocks(self):
        return [("lin", [self.lin]), ("mix", [nn.Linear(6, 6)])]


def test_declared_blocks_pass_when_own_ordered_and_disjoint():
    check_backbone(_Declared, n_bins=5)


@pytest.mark.parametrize("factory, promise", [
    (_Reversed, "input-to-output order"),
    (_Overlapping, "is in blocks 'lin' and 'both'"),
    (_Foreign, "not the backbone's own"),
])
def test_block_check_rejects_bad_declarations(factory, promise):
    with pytest.raises(AssertionError, match=promise):
        check_backbone_blocks(factory, n_bins=5)


@dataclass(frozen=True)
class _TypoDefaults:
    width: int = 6
    train_defaults: ClassVar[dict] = {"epoch": 3}


@dataclass(frozen=True)
class _IgnoredFreeze:
    freeze: int = 0


def _toy_spec(config: type) -> ComponentSpec:
    return ComponentSpec(kind="backbone", name="toy", config=config, build=lambda c, n: _Declared(n), summary="toy")


def test_config_check_reads_train_defaults_and_freeze():
    with pytest.raises(AssertionError, match="unknown setting 'epoch'.*did you mean 'epochs'"):
        check_backbone_config(_toy_spec(_TypoDefaults), n_bins=5)
    with pytest.raises(AssertionError, match="freeze=1, it keeps no weights fixed"):
        check_backbone_config(_toy_spec(_IgnoredFreeze), n_bins=5)


@dataclass(frozen=True)
class _BadHeadDefaults:
    head_defaults: ClassVar[dict] = {"pooling": "median"}


def test_config_check_reads_head_defaults():
    with pytest.raises(AssertionError, match="pooling"):
        check_backbone_config(_toy_spec(_BadHeadDefaults), n_bins=5)


def test_a_backbones_head_defaults_sit_below_every_task_setting():
    from zoo.model.building import build_components
    from zoo.registry import Registry
    from zoo.spec import parse_spec

    registry = Registry()
    check_backbone_config(registry.load("backbone", "cnn"), n_bins=5)

    def pooling(spec, settings=None):
        built = build_components(parse_spec(spec, registry), registry, settings)
        return {name: task.config.pooling for name, task in built.tasks.items()}

    # the CNN and the LSTM recommend meanstd to every task head that pools; the AST recommends nothing
    assert pooling("cnn+mel:genre,valence") == {"genre": "meanstd", "valence": "meanstd"}
    assert pooling("lstm+mel:genre") == {"genre": "meanstd"}
    assert pooling("ast+mel:genre") == {"genre": "mean"}
    assert pooling("cnn+mel:genre,valence", {"task": {"pooling": "max"}}) == {"genre": "max", "valence": "max"}
    assert pooling("cnn+mel:genre,valence", {"valence": {"pooling": "last"}}) == {"genre": "meanstd", "valence": "last"}


class _MisplacedEmbedHead(nn.Module):
    """Its forward doubles what output(embed(out)) gives: embed is not the layer before the output."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.out = nn.Linear(in_dim, out_dim)

    def embed(self, o):
        h = o.hidden
        return h if h.dim() == 2 else masked_mean(h, length_mask(o.lengths, h.shape[1]))

    def output(self, z):
        return self.out(z)

    def forward(self, o):
        return 2 * self.output(self.embed(o))


def test_head_embed_check_accepts_the_zoos_heads_and_rejects_a_misplaced_embed():
    task = Classification("genre", ClassificationConfig(hidden=4))
    check_head_embed(task.make_head(8, task.schema(("a", "b", "c"))))
    with pytest.raises(AssertionError, match="output\\(embed\\(out\\)\\) differs"):
        check_head_embed(_MisplacedEmbedHead(8, 3))


WRONG_INPUTS = [
    ("check_feature", ("backbone", "lstm"), "check_feature needs a feature spec or a built feature, got a backbone spec 'lstm'"),
    ("check_task", ("feature", "mel"), "check_task needs a task spec or a built task, got a feature spec 'mel'"),
    ("check_backbone", ("task", "genre"), "check_backbone needs a backbone spec, a built backbone or a factory(n_bins), "
                                          "got a task spec 'genre'"),
    ("check_task", ("built feature", "mel"), "check_task needs a task spec or a built task, got a built Mel named 'mel'"),
]


@pytest.mark.parametrize("check, given, said", WRONG_INPUTS, ids=[f"{c}-{g[1]}" for c, g, _ in WRONG_INPUTS])
def test_every_check_says_which_kind_of_thing_it_got_when_it_is_the_wrong_one(check, given, said):
    import zoo.testing
    registry = Registry()
    kind, name = given
    arg = registry.create("feature", name, {}) if kind == "built feature" else registry.load(kind, name)
    with pytest.raises(AssertionError) as info:
        getattr(zoo.testing, check)(arg)
    assert str(info.value).startswith(said)


def test_meanstd_pooling_reads_only_valid_steps_and_passes_the_task_contract():
    import numpy as np
    import torch

    from zoo.model.model import Head
    from zoo.protocols import BackboneOutput

    check_task(Classification("genre", ClassificationConfig(pooling="meanstd")))
    head = Head(3, 2, "meanstd", hidden=0, dropout=0.0, squeeze=False)
    h = torch.randn(2, 5, 3)
    lengths = torch.tensor([5, 2])
    pooled = head.pool(BackboneOutput(h, lengths))
    assert pooled.shape == (2, 6)
    for b, n in enumerate([5, 2]):
        valid = h[b, :n].numpy()
        np.testing.assert_allclose(pooled[b, :3].numpy(), valid.mean(0), atol=1e-6)
        np.testing.assert_allclose(pooled[b, 3:].numpy(), valid.std(0), atol=1e-4)
    h2 = h.clone()
    h2[1, 2:] = 1e3  # padding changes, the clip's pooled values do not
    assert torch.equal(head.pool(BackboneOutput(h2, lengths))[1], pooled[1])
    # One embedding per clip is a one-step sequence: its standard deviation is zero.
    flat = head.pool(BackboneOutput(h[:, 0], None))
    assert torch.equal(flat, torch.cat([h[:, 0], torch.zeros(2, 3)], dim=1))
    assert head(BackboneOutput(h, lengths)).shape == (2, 2)
