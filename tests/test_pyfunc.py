"""The MLflow pyfunc model of a run: logged, loaded with mlflow.pyfunc, registered by name."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from predictfixtures import embedded_clips, trained_model, write_inputs
from zoo.errors import ConfigError, RunError

# Every test here uses the model trained once per session (about 20-30 s on a shared CPU).
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("zoo_env_module")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, workspace):
    return trained_model(tmp_path_factory, workspace)


@pytest.fixture(scope="module")
def inputs(trained, tmp_path_factory, workspace):
    return write_inputs(tmp_path_factory.mktemp("pyfunc-audio"), workspace)


@pytest.fixture(scope="module")
def loaded(trained):
    import mlflow.pyfunc
    return mlflow.pyfunc.load_model(f"runs:/{trained.run_id}/pyfunc_model")


def test_every_tracked_run_logs_its_pyfunc_model(trained, workspace):
    from mlflow.tracking import MlflowClient
    client = MlflowClient(workspace.tracking_uri)
    names = {Path(a.path).name for a in client.list_artifacts(trained.run_id, "pyfunc_model")}
    assert {"MLmodel", "python_model.pkl", "requirements.txt", "artifacts"} <= names
    packaged = {Path(a.path).name for a in client.list_artifacts(trained.run_id, "pyfunc_model/artifacts/model")}
    assert packaged == {"zoo_model.json", "weights.pt"}
    assert "zoo.pyfunc.error" not in client.get_run(trained.run_id).data.tags


def test_zoo_run_register_trains_and_registers(trained, inputs, capsys):
    import mlflow.pyfunc
    from predictfixtures import EXPERIMENT, SETTINGS, SPEC
    from zoo.cli import main
    sets = [f"--set={scope}.{k}={v}" for scope, values in SETTINGS.items() for k, v in values.items()]
    assert main(["run", SPEC, *sets, "--register", "never", "--no-track"]) == 2
    assert "--register never: --no-track records no run to register" in capsys.readouterr().err
    assert main(["run", SPEC, *sets, "--epochs", "1", "--workers", "1", "--experiment", EXPERIMENT,
                 "--no-progress", "--register", "run-registered"]) == 0
    out = capsys.readouterr().out
    assert "registered: 'run-registered' version 1" in out
    model = mlflow.pyfunc.load_model("models:/run-registered/1")
    table = model.predict(pd.DataFrame({"path": [str(inputs["mp3"])]}))
    assert table["error"].iloc[0] == "" and table["genre"].iloc[0] in trained.classes
    assert main(["predict", "run-registered", str(inputs["mp3"]), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["files"][0]["predictions"]["genre"]["top"][0]["class"] == table["genre"].iloc[0]


def test_the_pyfunc_model_predicts_files_like_zoo_predict(trained, inputs, loaded, capsys):
    from zoo.cli import main
    paths = [str(inputs[n]) for n in ("mp3", "silent", "long", "short")]
    table = loaded.predict(pd.DataFrame({"path": paths}, index=["a", "b", "c", "d"]))
    assert list(table.index) == ["a", "b", "c", "d"] and list(table["source"]) == paths
    assert list(table.columns[:4]) == ["source", "error", "windows", "genre"]
    assert [f"p_{c}" for c in trained.classes] == [c for c in table.columns if c.startswith("p_")]
    assert {"valence", "energy"} <= set(table.columns)
    assert "digital silence" in table.loc["b", "error"] and "too short" in table.loc["d", "error"]
    assert table.loc[["b", "d"], "valence"].isna().all() and table.loc[["b", "d"], "genre"].isna().all()
    assert table.loc["c", "windows"] > 1 and table.loc["a", "error"] == ""
    # The same answer as the command line gives for the same file.
    assert main(["predict", str(trained.model_dir), paths[0], "--format", "json"]) == 0
    cli = json.loads(capsys.readouterr().out)["files"][0]["predictions"]
    for c in trained.classes:
        assert table.loc["a", f"p_{c}"] == pytest.approx(cli["genre"]["probabilities"][c], abs=1e-5)
    assert table.loc["a", "genre"] == cli["genre"]["top"][0]["class"]
    assert table.loc["a", "energy"] == pytest.approx(cli["energy"], abs=1e-5)


def test_waveforms_and_features_are_accepted_too(trained, loaded, workspace):
    import soundfile as sf
    from zoo.data.extract import stack
    from zoo import open_model
    clip = embedded_clips(1, workspace)[0]
    y, sr = sf.read(str(clip), dtype="float32")
    by_path = loaded.predict(pd.DataFrame({"path": [str(clip)]}))
    waves = loaded.predict(pd.DataFrame({"audio": [y, y[::2], np.zeros(sr, np.float32)], "sr": [sr, sr // 2, sr]}))
    assert waves["error"].iloc[0] == "" and "digital silence" in waves["error"].iloc[2]
    assert waves["genre"].iloc[0] == by_path["genre"].iloc[0]
    assert waves["valence"].iloc[0] == pytest.approx(by_path["valence"].iloc[0], abs=1e-5)
    assert waves["error"].iloc[1] == ""  # resampled from 11025 Hz
    features = open_model(trained.model_dir).features
    x, _ = stack({n: f.from_audio(y, sr) for n, f in features.items()}, list(features))
    by_features = loaded.predict(pd.DataFrame({"features": [x]}))
    assert by_features["genre"].iloc[0] == by_path["genre"].iloc[0]
    assert by_features["energy"].iloc[0] == pytest.approx(by_path["energy"].iloc[0], abs=1e-5)


def test_params_set_the_window(inputs, loaded):
    frame = pd.DataFrame({"path": [str(inputs["long"])]})
    assert loaded.predict(frame, params={"window_seconds": 2.0, "hop_seconds": 2.0})["windows"].iloc[0] == 5
    assert loaded.predict(frame, params={"window_seconds": 4.5})["windows"].iloc[0] == 3


def test_a_frame_without_a_known_column_is_refused(loaded):
    with pytest.raises(ConfigError, match="give exactly one of 'path'"):
        loaded.predict(pd.DataFrame({"file": ["a.wav"]}))
    with pytest.raises(ConfigError, match="give exactly one of 'path'"):
        loaded.predict(pd.DataFrame({"path": ["a.wav"], "audio": [np.zeros(3)]}))


def test_register_logs_a_pyfunc_model_for_a_run_that_has_none(trained, inputs, workspace):
    import mlflow.pyfunc
    from mlflow.tracking import MlflowClient
    from zoo.tracking.mlflow.model_registry import register_model
    from zoo.tracking.mlflow.store import get_experiment
    client = MlflowClient(workspace.tracking_uri)
    exp = get_experiment(client, "pyfunc-tests", create=True)
    run = client.create_run(exp.experiment_id, tags={"zoo.spec": "lstm+mel:genre,valence,energy"})
    client.log_artifacts(run.info.run_id, str(trained.model_dir), "model")  # an older run: model/ only
    client.set_terminated(run.info.run_id)
    version = register_model(run.info.run_id, "pyfunc-older", uri=workspace.tracking_uri)
    assert str(version.version) == "1" and client.list_artifacts(run.info.run_id, "pyfunc_model")
    assert client.get_model_version("pyfunc-older", "1").tags["zoo.spec"] == "lstm+mel:genre,valence,energy"
    model = mlflow.pyfunc.load_model("models:/pyfunc-older/1")
    out = model.predict(pd.DataFrame({"path": [str(inputs["mp3"])]}))
    assert out["genre"].iloc[0] in trained.classes
    requirements = Path(mlflow.artifacts.download_artifacts(
        artifact_uri="models:/pyfunc-older/1", dst_path=tempfile.mkdtemp(), tracking_uri=workspace.tracking_uri)
    ) / "requirements.txt"
    wanted = requirements.read_text().split()
    assert any(r.startswith("music-zoo==") for r in wanted) and any(r.startswith("music-zoo-lstm==") for r in wanted)
    assert any(r.startswith("music-zoo-features==") for r in wanted)


def test_register_refuses_a_run_without_a_model_and_a_bad_name(trained, workspace):
    from mlflow.tracking import MlflowClient
    from zoo.tracking.mlflow.model_registry import register_model
    from zoo.tracking.mlflow.store import get_experiment
    client = MlflowClient(workspace.tracking_uri)
    exp = get_experiment(client, "pyfunc-tests", create=True)
    run = client.create_run(exp.experiment_id, tags={"zoo.kind": "overfit"})
    uri = workspace.tracking_uri
    with pytest.raises(RunError, match="is an overfit check: it saves no model"):
        register_model(run.info.run_id, "never", uri=uri)
    with pytest.raises(ConfigError, match="no run 'not-a-run'"):
        register_model("not-a-run", "never", uri=uri)
    with pytest.raises(ConfigError, match="model name 'a/b'"):
        register_model(trained.run_id, "a/b", uri=uri)


def test_the_snippet_in_docs_predict_runs_verbatim_with_only_zoo_home_set(trained, inputs, workspace, tmp_path):
    """As a user runs it after a plain `zoo run`: ZOO_HOME (or nothing) set, no MLFLOW_TRACKING_URI,
    and no stray ./mlflow.db left behind."""
    import os
    import re
    import shutil
    import subprocess
    import sys
    doc = (Path(__file__).resolve().parents[1] / "docs" / "predict.md").read_text()
    snippet = next(b for b in re.findall(r"```python\n(.*?)```", doc, flags=re.S) if "pyfunc.load_model" in b)
    shutil.copy(inputs["mp3"], tmp_path / "song.mp3")
    shutil.copy(inputs["long"], tmp_path / "other.ogg")
    from predictfixtures import EXPERIMENT
    # The snippet finds the newest finished run of the default experiment; this module's models are
    # trained into an experiment of their own (the trained fixture's, at least), so it looks there.
    assert snippet.count('experiment_names=["music-zoo"]') == 1
    snippet = snippet.replace('experiment_names=["music-zoo"]', f"experiment_names=[{EXPERIMENT!r}]")
    check = (snippet +
             "assert list(table['error']) == ['', ''], table\n"
             "assert list(table['source']) == ['song.mp3', 'other.ogg'], table\n"
             "print('snippet ok')\n")
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "ZOO_HOME")}
    env["ZOO_HOME"] = str(workspace.home)
    ran = subprocess.run([sys.executable, "-c", check], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert ran.returncode == 0 and "snippet ok" in ran.stdout, ran.stderr[-3000:]
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()
