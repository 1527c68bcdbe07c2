"""``zoo run --config FILE.yaml`` and ``--print-config``: one file holds every setting, and every run keeps its own."""
from __future__ import annotations

import pytest
import yaml
from mlflow.tracking import MlflowClient

from zoo.cli import main
from zoo.workspace import Workspace

SMALL = ["--set", "backbone.hidden=8", "--set", "backbone.layers=1", "--set", "train.batch_size=8",
         "--no-progress", "--workers", "1"]


@pytest.fixture(autouse=True)
def _in_the_test_workspace(zoo_env):
    """`zoo` runs as a user would, in this test's workspace."""


def printed(argv, capsys) -> dict:
    assert main(["run", *argv, "--print-config"]) == 0
    return yaml.safe_load(capsys.readouterr().out)


def test_print_config_gives_every_setting_with_its_default(capsys):
    doc = printed(["lstm+chroma:genre", "--set", "backbone.hidden=8", "--epochs", "3"], capsys)
    assert doc["spec"] == "lstm+chroma:genre" and doc["seed"] == 0 and doc["seeds"] == 1
    assert doc["settings"]["backbone"]["hidden"] == 8 and "layers" in doc["settings"]["backbone"]
    assert "hop_length" in doc["settings"]["chroma"] and "dropout" in doc["settings"]["genre"]
    # --epochs wins over the LSTM's train_defaults; its recommended learning rate shows through
    assert doc["settings"]["train"]["epochs"] == 3 and doc["settings"]["train"]["lr"] == 0.002
    assert doc["data"]["max_seconds"] == 30.0 and doc["data"]["path"] is None


def test_print_config_of_a_recipe_carries_its_settings_and_name(capsys):
    doc = printed(["lab-cnn-danceability"], capsys)
    assert doc["spec"] == "cnn+mel:danceability" and doc["settings"]["danceability"]["loss"] == "mse"
    assert doc["tags"] == {"zoo.recipe": "lab-cnn-danceability"}


def test_the_printed_config_is_read_back_unchanged_and_options_override_it(tmp_path, capsys):
    assert main(["run", "lstm+chroma:genre", "--set", "backbone.hidden=8", "--print-config"]) == 0
    text = capsys.readouterr().out
    file = tmp_path / "run.yaml"
    file.write_text(text)
    assert main(["run", "--config", str(file), "--print-config"]) == 0
    assert capsys.readouterr().out == text
    doc = printed(["--config", str(file), "--epochs", "2", "--set", "backbone.layers=1", "--limit", "12",
                   "--seed", "4"], capsys)
    assert doc["settings"]["train"]["epochs"] == 2 and doc["settings"]["backbone"] == {
        **yaml.safe_load(text)["settings"]["backbone"], "layers": 1}
    assert doc["data"]["limit"] == 12 and doc["seed"] == 4


@pytest.mark.parametrize("content, message", [
    ("spec: lstm+chroma:genre\nsetings: {}\n", "unknown key 'setings'; valid: spec, settings"),
    ("spec: lstm+chroma:genre\ndata: {limt: 3}\n", "unknown key 'data.limt'"),
    ("spec: lstm+chroma:genre\nsettings: {train: {epoch: 3}}\n", "did you mean 'epochs'"),
    ("settings: {}\n", "expected a mapping with at least 'spec'"),
])
def test_a_bad_config_file_is_refused_in_one_line_with_the_fix(tmp_path, capsys, content, message):
    file = tmp_path / "bad.yaml"
    file.write_text(content)
    assert main(["run", "--config", str(file), "--no-track"]) == 2
    assert message in capsys.readouterr().err


def test_a_missing_config_file_says_how_to_write_one(tmp_path, capsys):
    assert main(["run", "--config", str(tmp_path / "nope.yaml"), "--no-track"]) == 2
    assert "--print-config" in capsys.readouterr().err


@pytest.mark.parametrize("body, option, message", [
    ("seeds: 0", ["--seeds", "0"], "0 is out of range: give a whole number >= 1"),
    ('seed: "x"', ["--seed", "x"], "'x' is not a whole number"),
    ("seed: -1", ["--seed", "-1"], "-1 is out of range: give a whole number from 0 to 4294967295"),
    ("data: {limit: 2.5}", ["--limit", "2.5"], "2.5' is not a whole number"),
    ("data: {max_seconds: -1}", ["--max-seconds", "-1"], "is out of range: give a number >= 0"),
    ("data: {workers: 0}", ["--workers", "0"], "0 is out of range: give a whole number >= 1"),
])
def test_a_config_file_value_is_checked_as_the_same_option_is_on_the_command_line(tmp_path, capsys, body, option,
                                                                                  message):
    file = tmp_path / "bad.yaml"
    file.write_text(f"spec: lstm+chroma:genre\n{body}\n")
    assert main(["run", "--config", str(file), "--print-config"]) == 2
    from_file = capsys.readouterr().err
    assert main(["run", "lstm+chroma:genre", *option, "--print-config"]) == 2
    from_cli = capsys.readouterr().err
    assert message.split("'")[-1] in from_file and message.split("'")[-1] in from_cli, (from_file, from_cli)
    assert f"config file {file}: " in from_file and "Traceback" not in from_file
    assert len(from_file.strip().splitlines()) == 1


@pytest.mark.parametrize("text, message", [
    ("data: {path: [a, b]}", "data.path: ['a', 'b']: give one folder as text (as --data)"),
    ("data: {skip_bad: maybe}", "data.skip_bad: expected true or false, got 'maybe'"),
    ("settings: {backbone: 5}", "settings.backbone 5: give a mapping of settings"),
    ("transfer: {from: [1]}", "transfer.from [1]: give one model"),
])
def test_a_config_file_value_of_the_wrong_kind_is_one_line_not_a_traceback(tmp_path, capsys, text, message):
    file = tmp_path / "bad.yaml"
    file.write_text(f"spec: lstm+chroma:genre\n{text}\n")
    assert main(["run", "--config", str(file), "--print-config"]) == 2
    err = capsys.readouterr().err
    assert f"config file {file}: {message}" in err and len(err.strip().splitlines()) == 1, err


def test_a_quoted_false_is_false_and_a_quoted_number_a_number(tmp_path, capsys):
    file = tmp_path / "quoted.yaml"
    file.write_text('spec: lstm+chroma:genre\nseed: "3"\ndata: {skip_bad: "false", limit: "12"}\n')
    doc = printed(["--config", str(file)], capsys)
    assert doc["data"]["skip_bad"] is False and doc["data"]["limit"] == 12 and doc["seed"] == 3
    file.write_text('spec: lstm+chroma:genre\ndata: {skip_bad: "true"}\n')
    assert printed(["--config", str(file)], capsys)["data"]["skip_bad"] is True


@pytest.mark.parametrize("content", [bytes(range(256)) * 4, b"\x00" * 64, b"\xff\xfe" + "spec: x".encode("utf-16-le")])
def test_a_binary_config_file_is_one_line_not_a_traceback(tmp_path, capsys, content):
    file = tmp_path / "binary.yaml"
    file.write_bytes(content)
    assert main(["run", "--config", str(file), "--print-config"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"zoo: error: config file {file} ") and len(err.strip().splitlines()) == 1, err
    assert main(["run", "--config", str(tmp_path), "--print-config"]) == 2  # a folder
    assert "cannot be read" in capsys.readouterr().err


def test_every_run_logs_its_config_and_a_rerun_from_it_has_the_same_settings(audio_folder, capsys):
    assert main(["run", "lstm+chroma:genre", "--data", str(audio_folder), "--epochs", "1", "--seed", "2",
                 "--experiment", "cfg-first", *SMALL]) == 0
    client = MlflowClient(Workspace.from_env().tracking_uri)
    (first,) = client.search_runs([client.get_experiment_by_name("cfg-first").experiment_id])
    saved = first.data.tags["zoo.folder"] + "/config.yaml"
    assert "config.yaml" in [a.path for a in client.list_artifacts(first.info.run_id)]
    doc = yaml.safe_load(open(saved))
    assert doc["data"]["path"] == str(audio_folder.resolve()) and doc["seed"] == 2
    capsys.readouterr()

    assert main(["run", "--config", saved, "--experiment", "cfg-again", "--no-progress"]) == 0
    (again,) = client.search_runs([client.get_experiment_by_name("cfg-again").experiment_id])
    assert open(again.data.tags["zoo.folder"] + "/config.yaml").read() == open(saved).read()
    ignore = {"device"}
    assert ({k: v for k, v in again.data.params.items() if k not in ignore}
            == {k: v for k, v in first.data.params.items() if k not in ignore})
    assert again.data.tags["zoo.group"] == first.data.tags["zoo.group"]
