"""``zoo run --resume RUN``: a killed run goes on from its last checkpoint, in the same MLflow run, and ends
where an uninterrupted run ends.

The tolerance: final weights within 1e-6 (absolute) and test metrics within 1e-6 of the uninterrupted run's;
on a CPU they are in fact equal, since every state the loop draws from (model, optimiser, scheduler, RNG
states, batch order, best weights, early-stopping counter) is restored.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from zoo.cli import main
from zoo.engine import checkpoint as ckpt
from zoo.workspace import Workspace

SMALL = ["--set", "backbone.hidden=8", "--set", "backbone.layers=1", "--set", "train.batch_size=8",
         "--no-progress", "--workers", "1"]
TOLERANCE = 1e-6


@pytest.fixture(autouse=True)
def _in_the_test_workspace(zoo_env):
    """`zoo` runs as a user would, in this test's workspace."""


def client() -> MlflowClient:
    return MlflowClient(Workspace.from_env().tracking_uri)


def runs_of(experiment: str) -> list:
    c = client()
    return c.search_runs([c.get_experiment_by_name(experiment).experiment_id], order_by=["attributes.start_time ASC"])


def killed_after(monkeypatch, epochs: int) -> None:
    """Kill the run right after its ``epochs``-th checkpoint is written (as SIGKILL or Ctrl-C would)."""
    real, saves = ckpt.Checkpoint.save, []

    def save(self, state):
        path = real(self, state)
        saves.append(state["epoch"])
        if len(saves) == epochs:
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(ckpt.Checkpoint, "save", save)


def weights(folder: str) -> dict:
    return torch.load(Path(folder) / "weights.pt", map_location="cpu", weights_only=True)


def assert_same_model(a: dict, b: dict) -> None:
    for seed_a, seed_b in zip(a["per_seed"], b["per_seed"]):
        wa, wb = weights(seed_a["model_dir"]), weights(seed_b["model_dir"])
        assert wa.keys() == wb.keys()
        for k in wa:
            torch.testing.assert_close(wa[k], wb[k], atol=TOLERANCE, rtol=0)
        assert seed_a["best_epoch"] == seed_b["best_epoch"] and seed_a["epochs"] == seed_b["epochs"]
        assert seed_a["test"] == pytest.approx(seed_b["test"], abs=TOLERANCE)


def run_json(argv, capsys) -> dict:
    import json
    capsys.readouterr()
    assert main(["run", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_killed_run_resumed_ends_as_an_uninterrupted_one_in_the_same_mlflow_run(audio_folder, monkeypatch, capsys):
    argv = ["lstm+chroma:genre", "--data", str(audio_folder), "--epochs", "4", "--patience", "0", *SMALL]
    full = run_json([*argv, "--experiment", "resume-full"], capsys)

    with monkeypatch.context() as m:
        killed_after(m, 2)
        assert main(["run", *argv, "--experiment", "resume-cut"]) == 130
    (cut,) = runs_of("resume-cut")
    assert cut.info.status == "FAILED"
    folder = Path(cut.data.tags["zoo.folder"])
    assert (folder / "seed0" / "checkpoint.pt").is_file()  # in the run folder; nothing of it in MLflow
    assert "checkpoint.pt" not in str([a.path for a in client().list_artifacts(cut.info.run_id)])

    resumed = run_json(["--resume", cut.info.run_id[:8]], capsys)
    assert_same_model(full, resumed)
    (after,) = runs_of("resume-cut")  # the same run, not a new one
    assert after.info.run_id == cut.info.run_id == resumed["run_id"] and after.info.status == "FINISHED"
    assert after.data.tags["zoo.resumed"] == "1" and "zoo.failure" not in after.data.tags
    assert int(after.data.tags["zoo.process.pid"]) > 0
    steps = [m.step for m in client().get_metric_history(after.info.run_id, "val.loss")]
    assert sorted(set(steps)) == [1, 2, 3, 4]
    assert not (folder / "seed0" / "checkpoint.pt").exists()  # removed once the seed is done


def test_a_killed_run_with_averaged_weights_resumes_to_the_uninterrupted_result(audio_folder, monkeypatch, capsys):
    """The weights' moving average (train.ema_epochs) is part of the checkpoint: started afresh on resume, it
    would pick and package other weights."""
    argv = ["lstm+chroma:genre", "--data", str(audio_folder), "--epochs", "4", "--patience", "0",
            "--set", "train.ema_epochs=2", *SMALL]
    full = run_json([*argv, "--experiment", "resume-ema-full"], capsys)
    with monkeypatch.context() as m:
        killed_after(m, 2)
        assert main(["run", *argv, "--experiment", "resume-ema-cut"]) == 130
    (cut,) = runs_of("resume-ema-cut")
    resumed = run_json(["--resume", cut.info.run_id[:8]], capsys)
    assert_same_model(full, resumed)


def test_a_finished_run_cannot_be_resumed(audio_folder, capsys):
    assert main(["run", "lstm+chroma:genre", "--data", str(audio_folder), "--epochs", "1",
                 "--experiment", "resume-done", *SMALL]) == 0
    (done,) = runs_of("resume-done")
    capsys.readouterr()
    assert main(["run", "--resume", done.info.run_id]) == 2
    err = capsys.readouterr().err
    assert f"run {done.info.run_id} is FINISHED: there is nothing to resume" in err and "--config" in err


def test_resume_takes_no_other_settings(capsys):
    assert main(["run", "--resume", "abcd1234", "--epochs", "3"]) == 2
    assert "drop --epochs" in capsys.readouterr().err


def test_several_seeds_resume_only_the_unfinished_ones(audio_folder, monkeypatch, capsys):
    argv = ["lstm+chroma:genre", "--data", str(audio_folder), "--epochs", "2", "--patience", "0", "--seeds", "2",
            *SMALL]
    full = run_json([*argv, "--experiment", "seeds-full"], capsys)
    with monkeypatch.context() as m:
        killed_after(m, 3)  # seed 0's two epochs, then one epoch of seed 1
        assert main(["run", *argv, "--experiment", "seeds-cut"]) == 130
    parent = next(r for r in runs_of("seeds-cut") if r.data.tags.get("zoo.kind") == "seeds")
    children = {r.data.tags["zoo.seed"]: r for r in runs_of("seeds-cut") if r.info.run_id != parent.info.run_id}
    assert children["0"].info.status == "FINISHED" and children["1"].info.status == "FAILED"

    resumed = run_json(["--resume", children["1"].info.run_id], capsys)  # a seed run stands for its parent
    assert resumed["run_id"] == parent.info.run_id
    assert_same_model(full, resumed)
    after = {r.info.run_id: r.info.status for r in runs_of("seeds-cut")}
    assert after == {parent.info.run_id: "FINISHED", children["0"].info.run_id: "FINISHED",
                     children["1"].info.run_id: "FINISHED"}
