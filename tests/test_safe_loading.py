"""Files torch saved are read back as data only: a tampered checkpoint or weights file runs nothing, and the user
gets one line naming the file and the fix (``zoo run --resume``, ``--from``, ``zoo predict``)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from zoo.cli import main
from zoo.engine import checkpoint as ckpt
from zoo.errors import ZooError
from zoo.fsio import read_torch
from zoo.workspace import Workspace

SMALL = ["--set", "backbone.hidden=8", "--set", "backbone.layers=1", "--set", "train.batch_size=8",
         "--no-progress", "--workers", "1"]


class Payload:
    """What an attacker plants: unpickling it would run a shell command that creates ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def plant(path: Path, marker: Path, **around) -> None:
    torch.save({"format": ckpt.FORMAT, **around, "payload": Payload(marker)}, path)


def test_read_torch_refuses_code_empty_and_foreign_files_in_one_line(tmp_path):
    marker = tmp_path / "ran"
    hostile = tmp_path / "hostile.pt"
    plant(hostile, marker)
    with pytest.raises(ZooError) as info:
        read_torch(hostile, "the test file", "delete it")
    assert not marker.exists()
    msg = str(info.value)
    assert str(hostile) in msg and "posix.system" in msg and "nothing in it ran" in msg and msg.endswith("delete it")
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(ZooError, match=r"empty\.pt is empty \(0 bytes\); delete it$"):
        read_torch(empty, "the test file", "delete it")
    for junk in (b"not a torch file at all", b"PK\x03\x04" + b"x" * 64):
        empty.write_bytes(junk)
        with pytest.raises(ZooError) as info:
            read_torch(empty, "the test file", "delete it")
        assert "\n" not in str(info.value) and str(info.value).endswith("delete it")
    with pytest.raises(ZooError, match="missing"):
        read_torch(tmp_path / "none.pt", "the test file", "delete it")


def test_a_checkpoint_round_trips_its_numpy_and_rng_states_as_plain_data(tmp_path):
    import numpy as np
    c = ckpt.Checkpoint(tmp_path)
    np.random.seed(5)
    state = {"rng": ckpt.rng_states(), "history": [{"val.loss": np.float32(0.5)}], "best_score": np.float64(0.25),
             "batch_rng": np.random.default_rng(3).bit_generator.state}
    c.save(state)
    expected = np.random.rand(3)
    np.random.seed(9)
    back = c.load()
    ckpt.set_rng_states(back["rng"])
    assert np.array_equal(np.random.rand(3), expected)
    assert back["history"] == [{"val.loss": 0.5}] and back["best_score"] == 0.25


def _killed_after_one_epoch(monkeypatch):
    real, saves = ckpt.Checkpoint.save, []

    def save(self, state):
        path = real(self, state)
        saves.append(state["epoch"])
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt.Checkpoint, "save", save)


def test_a_tampered_checkpoint_runs_nothing_and_resume_names_the_file_and_the_fix(audio_folder, zoo_env, monkeypatch,
                                                                                   capsys, tmp_path):
    argv = ["lstm+chroma:genre", "--data", str(audio_folder), "--epochs", "3", "--experiment", "tampered", *SMALL]
    with monkeypatch.context() as m:
        _killed_after_one_epoch(m)
        assert main(["run", *argv]) == 130
    client = MlflowClient(Workspace.from_env().tracking_uri)
    (cut,) = client.search_runs([client.get_experiment_by_name("tampered").experiment_id])
    path = Path(cut.data.tags["zoo.folder"]) / "seed0" / "checkpoint.pt"
    real = torch.load(path, map_location="cpu", weights_only=True)  # what the zoo wrote is plain data
    marker = tmp_path / "payload-ran"
    plant(path, marker, **{k: v for k, v in real.items() if k != "format"})
    capsys.readouterr()
    assert main(["run", "--resume", cut.info.run_id]) == 2
    err = capsys.readouterr().err
    assert not marker.exists()
    assert f"the training checkpoint {path} holds more than tensors and plain values" in err
    assert "nothing in it ran" in err and "delete it to train this seed again from epoch 1" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    path.unlink()  # the fix the message gives works
    assert main(["run", "--resume", cut.info.run_id]) == 0
    assert client.get_run(cut.info.run_id).info.status == "FINISHED"


def test_from_or_predict_with_an_empty_or_hostile_weights_file_is_one_clear_line(audio_folder, zoo_env, capsys,
                                                                                  tmp_path):
    assert main(["run", "lstm+chroma:genre", "--data", str(audio_folder), "--epochs", "1", "--json",
                 "--experiment", "hostile-weights", *SMALL]) == 0
    source = Path(json.loads(capsys.readouterr().out)["per_seed"][0]["model_dir"])
    song = next(Path(audio_folder).rglob("*.wav"))
    marker = tmp_path / "payload-ran"
    for kind in ("empty", "hostile"):
        folder = tmp_path / kind
        shutil.copytree(source, folder)
        weights = folder / "weights.pt"
        if kind == "empty":
            weights.write_bytes(b"")
        else:
            torch.save({"backbone.x": Payload(marker)}, weights)
        for argv in (["run", "lstm+chroma:genre", "--data", str(audio_folder), "--from", str(folder), "--epochs", "1",
                      "--experiment", "hostile-weights", *SMALL],
                     ["predict", str(folder), str(song)]):
            capsys.readouterr()
            assert main(argv) == 2, argv
            err = capsys.readouterr().err
            assert not marker.exists()
            assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
            assert str(weights) in err and ("re-run" in err or "copy the folder again" in err), err
            assert ("is empty (0 bytes)" if kind == "empty" else "nothing in it ran") in err, err
