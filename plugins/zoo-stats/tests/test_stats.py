"""The ``stats`` backbone: the zoo's contract checks, and statistics equal to numpy's on the valid part."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import zoo_stats
from zoo.config import make_config
from zoo.errors import ConfigError, DataError
from zoo.registry import Registry
from zoo.testing import check_backbone, check_backbone_blocks, check_backbone_config, check_backbone_lengths

ALL = {"minmax": "true", "delta": "true"}


def _build(n_bins: int, **settings):
    return zoo_stats.spec.build(make_config(zoo_stats.StatsConfig, settings, where="backbone 'stats'"), n_bins)


def _padded(lengths, n_bins=6, pad=0.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lengths), n_bins, max(lengths), generator=g) * 10 - 40  # dB-like values
    for i, n in enumerate(lengths):
        x[i, :, n:] = pad
    return x, torch.tensor(lengths)


@pytest.mark.parametrize("settings", [{}, ALL, {"norm": "none"}, {"mean": "false", "delta": "true", "norm": "none"}])
def test_every_setting_meets_the_backbone_contract(settings):
    check_backbone(zoo_stats.spec, n_bins=12, settings=settings)


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_its_block_and_training_defaults_meet_the_optional_contracts(norm):
    check_backbone_blocks(zoo_stats.spec, n_bins=12, settings={"norm": norm})
    check_backbone_config(zoo_stats.spec, n_bins=12, settings={"norm": norm})
    assert [name for name, _ in _build(12, norm=norm).named_blocks()] == ["norm"]


def test_the_registry_finds_it_by_its_entry_point():
    assert Registry().load("backbone", "stats") is zoo_stats.spec


def test_padding_is_masked_rather_than_merely_zero():
    check_backbone_lengths(zoo_stats.spec, n_bins=7, settings=ALL, pad=123.0)


@pytest.mark.parametrize("pad", [0.0, -80.0])
def test_padding_does_not_change_the_statistics(pad):
    model = _build(5, **ALL)
    x, lengths = _padded([17, 9, 1, 4], n_bins=5, pad=pad)
    batch = model.pool(x, lengths)
    for i, n in enumerate(lengths.tolist()):
        alone = model.pool(x[i:i + 1, :, :n], lengths[i:i + 1])
        torch.testing.assert_close(batch[i:i + 1], alone, rtol=1e-6, atol=1e-5)


def test_the_statistics_equal_numpys_on_the_unpadded_part():
    model = _build(6, **ALL)
    x, lengths = _padded([23, 11, 2, 1], n_bins=6)
    got = model.pool(x, lengths).numpy().astype(np.float64)
    assert model.statistics == ("mean", "std", "min", "max", "delta")
    for i, n in enumerate(lengths.tolist()):
        v = x[i, :, :n].numpy().astype(np.float64)
        moved = np.abs(np.diff(v, axis=1)).mean(axis=1) if n > 1 else np.zeros(6)
        want = np.concatenate([v.mean(1), v.std(1), v.min(1), v.max(1), moved])
        np.testing.assert_allclose(got[i], want, rtol=1e-5, atol=1e-4, err_msg=f"clip {i} of length {n}")


def test_the_output_width_follows_the_switches():
    assert _build(140).out_dim == 420
    assert _build(140).statistics == ("mean", "std", "delta")
    assert _build(140, delta="false").out_dim == 280
    assert _build(140, **ALL).out_dim == 700
    assert _build(12, mean="false", delta="true").out_dim == 24
    assert _build(12, mean="false", delta="true").statistics == ("std", "delta")


def test_half_precision_input_gives_float32_statistics_without_overflow():
    model = _build(4).eval()
    x, lengths = _padded([300, 120], n_bins=4)
    with torch.no_grad():
        out = model(x.half(), lengths).hidden
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_eval_mode_standardises_with_the_training_sets_statistics():
    model = _build(3)
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(8, 3, 20, generator=g) * 5 + 2, torch.full((8,), 20)) for _ in range(4)]
    model.train()
    with torch.no_grad():
        for x, lengths in batches:
            model(x, lengths)
    stats = torch.cat([model.pool(x, lengths) for x, lengths in batches])
    # momentum=None: the running mean is the plain average over all training batches seen.
    torch.testing.assert_close(model.norm.running_mean, stats.mean(0), rtol=1e-5, atol=1e-5)
    model.eval()
    with torch.no_grad():
        z = model(*batches[0]).hidden
    assert z.shape == (8, 9) and abs(float(z.mean())) < 1.5


def test_switching_every_statistic_off_is_an_error_that_says_how_to_fix_it():
    with pytest.raises(ConfigError, match="every statistic is switched off.*backbone.mean=true"):
        make_config(zoo_stats.StatsConfig, {"mean": "false", "std": "false", "delta": "false"}, where="backbone 'stats'")


def test_a_misspelt_setting_suggests_the_right_one():
    with pytest.raises(ConfigError, match="did you mean 'minmax'"):
        make_config(zoo_stats.StatsConfig, {"minmx": "true"}, where="backbone 'stats'")


def test_input_of_the_wrong_width_names_the_expected_shape():
    model = _build(12)
    with pytest.raises(DataError, match=r"expects x of shape \[batch, 12, time\], got \[2, 140, 5\]"):
        model(torch.zeros(2, 140, 5), torch.tensor([5, 3]))


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_it_declares_fixed_statistics_and_meets_that_contract(norm):
    from zoo.protocols import FixedStatistics
    from zoo.testing import check_backbone_fixed_statistics
    assert isinstance(_build(12, norm=norm), FixedStatistics)
    check_backbone_fixed_statistics(zoo_stats.spec, n_bins=12, settings={"norm": norm, **ALL})


def test_set_standardisation_is_a_standard_scaler_fitted_on_the_given_statistics():
    model = _build(4)
    x, lengths = _padded([30, 12, 7, 25, 18], n_bins=4)
    z = model.fixed_pool(x, lengths).double()
    z[:, 1] = z[0, 1]  # a constant statistic: centred, not divided by ~0
    mean, var = z.mean(0), z.var(0, unbiased=False)
    model.set_standardisation(mean, var)
    model.eval()
    with torch.no_grad():
        got = model.standardise(z.float()).double()
    scale = var.sqrt().where(var > 0, torch.ones_like(var))
    torch.testing.assert_close(got, (z - mean) / scale, rtol=1e-4, atol=1e-4)


def test_the_fixed_statistics_check_catches_an_output_that_is_not_standardised():
    from zoo.testing import check_backbone_fixed_statistics

    def factory(n_bins):
        model = _build(n_bins)
        right = model.set_standardisation
        model.set_standardisation = lambda mean, var: right(mean, var * 4)  # half the scale it should have
        return model

    with pytest.raises(AssertionError, match="neither standardised"):
        check_backbone_fixed_statistics(factory, n_bins=6)
