"""``zoo run`` end to end: real data on disk, real plugins, a real MLflow store (the test workspace's)."""
from __future__ import annotations

import json
import re

import pytest
from mlflow.tracking import MlflowClient

from zoo.cli import main
from zoo.workspace import Workspace

SMALL = ["--set", "backbone.hidden=8", "--set", "backbone.layers=1", "--set", "train.batch_size=8",
         "--no-progress"]


@pytest.fixture(autouse=True)
def _in_the_test_workspace(zoo_env):
    """Every test here runs `zoo` as a user would, with ZOO_HOME and MLFLOW_TRACKING_URI set (for that test)."""


def runs_of(experiment: str):
    client = MlflowClient(Workspace.from_env().tracking_uri)  # the store the command line used
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"])


def test_a_misspelt_component_names_the_installed_ones(capsys):
    assert main(["run", "lstn+mel:genre", "--experiment", "cli-typo"]) == 2
    # The installed backbones are listed (other plugins' names may sit among these), then the closest one.
    assert re.search(r"unknown backbone 'lstn'; installed: ast, cnn, [^;]*\blstm\b[^;]*; did you mean 'lstm'\?",
                     capsys.readouterr().err)
    assert runs_of("cli-typo") == []  # nothing ran, so nothing was recorded


@pytest.mark.parametrize("argv, message", [
    (["lab-lstm-chrome"], "unknown recipe 'lab-lstm-chrome'"),
    (["lstm+mel:genre", "--set", "hidden=3"], "expected SCOPE.KEY=VALUE"),
    (["lstm+mel:genre", "--set", "train.lrr=3"], "train: unknown setting 'lrr'"),
    (["lstm+mel:genre", "--set", "backbone.hiden=3"], "did you mean 'hidden'"),
    (["lstm+mel:genre", "--seeds", "0"], "argument --seeds: 0 is out of range: give a whole number >= 1"),
])
def test_bad_arguments_exit_2_with_the_fix(argv, message, capsys):
    assert main(["run", *argv, "--no-track"]) == 2
    assert message in capsys.readouterr().err


def test_a_failure_after_the_run_started_is_recorded_failed(tmp_path, capsys):
    missing = tmp_path / "no-such-folder"
    assert main(["run", "lstm+chroma:genre", "--data", str(missing), "--experiment", "cli-fail"]) == 2
    assert f"data path {missing} does not exist" in capsys.readouterr().err
    (r,) = runs_of("cli-fail")
    assert r.info.status == "FAILED" and "does not exist" in r.data.tags["zoo.failure"]


def test_zoo_run_trains_reports_and_tracks(audio_folder, capsys):
    code = main(["run", "lstm+chroma:genre", "--data", str(audio_folder), "--epochs", "2", "--seed", "3",
                 "--experiment", "cli-e2e", "--workers", "1", *SMALL])
    out = capsys.readouterr().out
    assert code == 0, out
    for line in ("data: ", "clips: 24 (train ", "device: cpu", "test results (", "accuracy",
                 "reports: ", "model:   ", "run:     run ", "zoo ui"):
        assert line in out
    (r,) = runs_of("cli-e2e")
    assert r.info.status == "FINISHED" and r.data.params["seed"] == "3"
    assert r.data.params["data.classes"] == "blues,jazz,rock" and "test.genre.accuracy" in r.data.metrics
    assert r.info.run_id in out


def test_zoo_run_json_and_no_track(audio_folder, capsys):
    code = main(["run", "lstm+chroma:genre", "--data", str(audio_folder), "--epochs", "1", "--json", "--no-track",
                 "--experiment", "cli-json", "--workers", "1", *SMALL])
    captured = capsys.readouterr()
    assert code == 0
    doc = json.loads(captured.out)
    assert doc["spec"] == "lstm+chroma:genre" and doc["seeds"] == [0] and doc["ok"] is True
    assert sum(doc["data"]["counts"].values()) == 24 and "genre.accuracy" in doc["test"]
    assert "device: cpu" in captured.err and "not tracked" in captured.err
    assert runs_of("cli-json") == []


def test_the_overfit_check_reports_failure_with_exit_1(audio_folder, capsys):
    code = main(["run", "lstm+chroma:genre", "--data", str(audio_folder), "--overfit-batches", "1",
                 "--set", "train.overfit_epochs=2", "--set", "train.overfit_loss=1e-9", "--no-track",
                 "--workers", "1", *SMALL])
    out = capsys.readouterr().out
    assert code == 1
    assert "overfit check FAILED" in out and "after 2 epochs on 1 batch(es)" in out


@pytest.mark.slow
def test_zoo_run_on_the_embedded_default_data_tiny_size(capsys):
    code = main(["run", "lstm+chroma:genre", "--set", "dataset.size=tiny", "--epochs", "2", "--seeds", "2",
                 "--experiment", "cli-embedded", *SMALL])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "embedded synthesised set 'tiny'" in out and "over 2 seeds [0, 1]" in out
    statuses = sorted(r.info.status for r in runs_of("cli-embedded"))
    assert statuses == ["FINISHED"] * 3  # the parent and its two seeds
