"""Fault injection, plugins and model folders: a backbone whose forward breaks its own ``out_dim``, and
``--from`` a model folder whose ``weights.pt`` is empty, garbage or a pickle that would run code.

Each ends in one clear error naming the backbone (or the file) and what is wrong, never torch's
``mat1 and mat2 shapes cannot be multiplied`` or an unpickling traceback; the run is marked FAILED.
"""
from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import pytest

from datafixtures import write_label_folders
from enginefixtures import TINY_LSTM, separable
from zoo.cli import main
from zoo.engine.request import RunRequest
from zoo.engine.runner import run
from zoo.engine.trainconfig import TrainConfig
from zoo.errors import PluginError
from zoo.protocols import BackboneOutput, ComponentSpec
from zoo.registry import EntryInfo, Registry, installed_entries
from zoo.tracking import FAILURE_TAG, NullTracker


def _wide(config, n_bins):
    """Declares out_dim 8, returns 12 wide (a plugin author's slip)."""
    import torch
    from torch import nn

    class Wide(nn.Module):
        out_dim = 8

        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(n_bins, 12)

        def forward(self, x, lengths):
            return BackboneOutput(self.proj(x.mean(-1)))

    torch.manual_seed(0)
    return Wide()


_fake_backbone_wide = ComponentSpec(kind="backbone", name="wide", build=_wide, summary="wrong width")


def wide_registry() -> Registry:
    fake = EntryInfo("backbone", "wide", "zoo-wide", "0.2.0", "test_faults_plugins:_fake_backbone_wide")
    return Registry(entries=(*installed_entries(), fake))


def test_a_backbone_returning_another_width_than_it_declares_is_named_with_both_widths(tmp_path):
    tracker = NullTracker()
    request = RunRequest("wide+chroma:genre", data=separable(6, with_targets=False),
                         train=TrainConfig(epochs=1, patience=0, device="cpu"), out_dir=tmp_path)
    with pytest.raises(PluginError) as err:
        run(request, registry=wide_registry(), tracker=tracker)
    message = str(err.value)
    assert message.startswith("the backbone 'wide' of plugin zoo-wide[wide] (zoo-wide==0.2.0) declares out_dim=8 "
                              "but its forward returned width 12 (shape (")
    assert message.endswith("its forward and out_dim disagree: fix or report the plugin") and "\n" not in message
    assert "mat1" not in message
    (record,) = tracker.runs.values()
    assert record.status == "FAILED" and record.tags[FAILURE_TAG] == f"PluginError: {message}"


def test_a_backbone_built_in_code_is_named_by_its_class(tmp_path):
    import torch
    from torch import nn

    from zoo.model.model import build_model
    from zoo.tasks import Classification, ClassificationConfig

    class Narrow(nn.Module):
        out_dim = 16

        def forward(self, x, lengths):
            return x.mean(-1)  # [B, F] = [B, 4], not [B, 16]

    task = Classification("genre", ClassificationConfig())
    model = build_model(Narrow(), {"genre": task}, {"genre": task.schema(("a", "b"))})
    with pytest.raises(PluginError, match=r"^the backbone Narrow declares out_dim=16 but its forward returned width 4"):
        model(torch.zeros(2, 4, 10), torch.tensor([10, 10]))


# -- --from a model folder whose weights.pt is damaged ----------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A model folder as `zoo run` writes it (lstm+mel on a small audio folder)."""
    out = tmp_path_factory.mktemp("trained")
    request = RunRequest("lstm+chroma:genre", settings=TINY_LSTM, data=separable(6, with_targets=False),
                         train=TrainConfig(epochs=1, patience=0, device="cpu"), out_dir=out)
    return run(request, registry=Registry(), tracker=NullTracker()).results[0].model_dir


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PAYLOAD-RAN",))


@pytest.fixture(scope="module")
def audio(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("audio")
    write_label_folders(root, ("blues", "jazz", "rock"), per_label=3)
    return root


@pytest.mark.parametrize("damage, said", [
    ("empty", r"is empty \(0 bytes\)"),
    ("garbage", r"(is not a file torch\.save wrote|cannot be read \(.*\)); the model folder is damaged"),
    ("hostile", r"holds more than tensors and plain values .*nothing in it ran"),
])
def test_from_a_model_folder_with_damaged_weights_is_one_error_naming_the_file(
        trained, audio, tmp_path, monkeypatch, capsys, damage, said):
    import torch
    folder = tmp_path / "model"
    shutil.copytree(trained, folder)
    weights = folder / "weights.pt"
    if damage == "empty":
        weights.write_bytes(b"")
    elif damage == "garbage":
        weights.write_bytes(b"these are not weights\n" * 10)
    else:
        torch.save({"state": _Payload()}, weights, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    code = main(["run", "lstm+chroma:genre", "--data", str(audio), "--from", str(folder), "--epochs", "1",
                 "--no-progress", "--no-track"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("zoo: error:")]
    import re
    assert str(weights) in line and re.search(said, line), line
    assert not (tmp_path / "PAYLOAD-RAN").exists()
