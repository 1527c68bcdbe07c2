"""The model: one module-level ``ZooModel`` class that ``isinstance``, pickling and deep copies see."""
from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest
import torch
from torch import nn

import zoo.model
from zoo.model import ZooModel, build_model
from zoo.model.frozen import FrozenNetworkFeature
from zoo.protocols import BackboneOutput
from zoo.registry import Registry


class FrameMean(nn.Module):
    """A tiny backbone: a linear map of each frame ``x[B, F, T]`` to ``[B, T, D]``, with the lengths."""

    def __init__(self, n_bins: int = 4, out_dim: int = 6, as_tuple: bool = False):
        super().__init__()
        self.out_dim = out_dim
        self.as_tuple = as_tuple
        self.lin = nn.Linear(n_bins, out_dim)

    def forward(self, x, lengths):
        h = self.lin(x.transpose(1, 2))
        return (h, lengths) if self.as_tuple else BackboneOutput(h, lengths)


@pytest.fixture(scope="module")
def tasks():
    registry = Registry()
    return {"genre": registry.create("task", "genre", {}), "valence": registry.create("task", "valence", {})}


def make(tasks, **backbone) -> ZooModel:
    schemas = {"genre": tasks["genre"].schema(("blues", "jazz", "rock")), "valence": tasks["valence"].schema(())}
    return build_model(FrameMean(**backbone), tasks, schemas, task_weighting="uncertainty").eval()


def inputs():
    g = torch.Generator().manual_seed(0)
    return torch.randn(3, 4, 7, generator=g), torch.tensor([7, 5, 2])


def test_two_builds_give_instances_of_one_module_level_class(tasks):
    a, b = make(tasks), make(tasks)
    assert type(a) is type(b) is ZooModel is zoo.model.ZooModel
    assert isinstance(a, zoo.model.ZooModel) and isinstance(a, nn.Module)
    assert type(a.heads["genre"]) is type(b.heads["valence"]) is zoo.model.Head


@pytest.mark.parametrize("clone", [lambda m: pickle.loads(pickle.dumps(m)), copy.deepcopy], ids=["pickle", "deepcopy"])
def test_a_built_model_survives_pickling_and_deep_copies_with_equal_outputs(tasks, clone):
    model = make(tasks)
    twin = clone(model)
    assert isinstance(twin, ZooModel) and twin is not model
    x, lengths = inputs()
    with torch.no_grad():
        want, got = model(x, lengths), twin(x, lengths)
        assert set(got) == {"genre", "valence"} and got["genre"].shape == (3, 3) and got["valence"].shape == (3,)
        for name in want:
            torch.testing.assert_close(got[name], want[name], rtol=0, atol=0)
        torch.testing.assert_close(twin.embed(x, lengths, "valence"), model.embed(x, lengths, "valence"), rtol=0, atol=0)
    assert twin.log_vars.requires_grad and twin.task_weighting == "uncertainty"


def test_a_backbone_may_return_a_tuple_instead_of_a_backbone_output(tasks):
    torch.manual_seed(1)
    named = make(tasks)
    plain = make(tasks, as_tuple=True)
    plain.load_state_dict(named.state_dict())
    x, lengths = inputs()
    with torch.no_grad():
        torch.testing.assert_close(plain(x, lengths)["genre"], named(x, lengths)["genre"])
        torch.testing.assert_close(plain.embed(x, lengths), named.embed(x, lengths))



@dataclasses.dataclass(frozen=True)
class _FrozenCfg:
    device: str = "cpu"


class _FrozenFeat(FrozenNetworkFeature):
    builds = 0

    def __init__(self):
        self.config = _FrozenCfg()
        self._model = None

    def build_model(self):
        type(self).builds += 1
        return torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Dropout(0.5))


def test_a_frozen_network_feature_builds_once_frozen_and_is_never_pickled():
    f = _FrozenFeat()
    m = f.model()
    assert f.model() is m and _FrozenFeat.builds == 1
    assert not m.training and not any(p.requires_grad for p in m.parameters())
    assert next(m.parameters()).device.type == "cpu"
    copy = pickle.loads(pickle.dumps(f))
    assert copy._model is None and f._model is m  # a worker builds its own; the parent keeps its copy
