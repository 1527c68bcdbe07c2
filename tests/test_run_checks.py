"""``zoo run`` and ``zoo.testing`` agree: whatever the contract checks refuse, a run refuses before any
data work, with the same message (a backbone returning a bare tensor, a task whose loss is not a scalar)."""
from __future__ import annotations

import pytest

from zoo.errors import PluginError
from zoo.protocols import ComponentSpec
from zoo.registry import EntryInfo, Registry, installed_entries
from zoo.tasks import Classification, ClassificationConfig


def _bare(config, n_bins):
    """Returns the pooled tensor itself instead of a BackboneOutput."""
    from torch import nn

    class Bare(nn.Module):
        out_dim = 8

        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(n_bins, 8)

        def forward(self, x, lengths):
            return self.proj(x.mean(-1))

    return Bare()


class _VectorLoss(Classification):
    def loss(self, output, y, weight=None):
        return super().loss(output, y, weight) * output.new_ones(2)


_fake_bare = ComponentSpec(kind="backbone", name="bare", build=_bare, summary="returns a bare tensor")
_fake_vector = ComponentSpec(kind="task", name="vector", build=lambda c: _VectorLoss("vector", c),
                             config=ClassificationConfig, summary="a loss that is not a scalar")


def _registry() -> Registry:
    fakes = (EntryInfo("backbone", "bare", "zoo-bare", "0.1.0", "test_run_checks:_fake_bare"),
             EntryInfo("task", "vector", "zoo-vector", "0.1.0", "test_run_checks:_fake_vector"))
    return Registry(entries=(*installed_entries(), *fakes))


@pytest.mark.parametrize("spec, component, check", [
    ("bare+chroma:genre", ("backbone", "bare"), "check_backbone_forward"),
    ("lstm+chroma:vector", ("task", "vector"), "check_task"),
])
def test_a_run_refuses_what_the_checks_refuse_with_their_message_before_any_data_work(
        tmp_path, workspace, spec, component, check):
    import zoo
    import zoo.testing
    registry = _registry()
    with pytest.raises(AssertionError) as checked:
        if component[0] == "backbone":
            zoo.testing.check_backbone_forward(registry.load(*component), n_bins=12)
        else:
            zoo.testing.check_task(registry.load(*component))
    # after the component's name, which the run says in full; before the values, drawn at random
    said = str(checked.value).split(": ", 1)[1].split(", got tensor(")[0]
    missing = tmp_path / "no-such-data"  # the data are never opened: the components are refused first
    with pytest.raises(PluginError) as refused:
        zoo.train(spec, data=str(missing), registry=registry, workspace=workspace, track=False,
                  settings={"backbone": {"hidden": 8, "layers": 1}} if spec.startswith("lstm") else None)
    assert said in str(refused.value) and str(refused.value).split(": ", 1)[1].startswith(said), (str(refused.value), said)
    assert "forward must return zoo.protocols.BackboneOutput, got Tensor" in said or "loss" in said


@pytest.mark.parametrize("backbone, n_bins", [("lstm", 12), ("lstm", 140), ("cnn", 12), ("cnn", 128), ("ast", 128),
                                              ("stats", 140)])
def test_the_zoos_own_backbones_pass_the_runs_check_at_the_widths_features_give(backbone, n_bins):
    from zoo.testing import check_composition
    registry = Registry()
    task = Classification("genre", ClassificationConfig())
    check_composition(registry.create("backbone", backbone, {}, n_bins), {"genre": task}, n_bins)


def test_a_feature_the_checks_refuse_is_refused_by_the_run_before_any_data_work(tmp_path, workspace):
    import zoo
    import zoo.testing

    class Moving:
        """Its settings change between calls: the cache could never find its arrays again."""
        name, n_bins, rate, sample_rate, hop_length = "moving", 12, "frames", 22050, 512

        def __init__(self):
            self.calls = 0

        def settings(self):
            self.calls += 1
            return {"call": self.calls}

        def from_audio(self, y, sr):
            raise AssertionError("never reached")

        def from_lab(self, fused):
            raise AssertionError("never reached")

    with pytest.raises(AssertionError, match="feature 'moving': settings\\(\\) changes between calls"):
        zoo.testing.check_feature(Moving())
    from torch import nn

    class Plain(nn.Module):
        out_dim = 8

        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(12, 8)

        def forward(self, x, lengths):
            from zoo.protocols import BackboneOutput
            return BackboneOutput(self.proj(x.mean(-1)))

    from zoo.api import compose
    built = compose([Plain(), Moving(), Classification("genre", ClassificationConfig())])
    with pytest.raises(PluginError, match="^feature 'moving': settings\\(\\) changes between calls$"):
        zoo.train(built, data=str(tmp_path / "no-such-data"), workspace=workspace, track=False)
