"""A run as MLflow 3 shows it: its pyfunc model a logged model with a signature, its data set a run input."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from predictfixtures import EXPERIMENT, trained_model, write_inputs

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("zoo_env_module")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, workspace):
    return trained_model(tmp_path_factory, workspace)


@pytest.fixture(scope="module")
def client(workspace):
    from mlflow.tracking import MlflowClient
    return MlflowClient(workspace.tracking_uri)


@pytest.fixture(scope="module")
def logged(trained, client):
    """The logged model that the run lists as its output."""
    outputs = client.get_run(trained.run_id).outputs.model_outputs
    assert len(outputs) == 1, outputs
    return client.get_logged_model(outputs[0].model_id)


def test_the_pyfunc_model_is_a_ready_logged_model_of_the_run(trained, client, logged):
    run = client.get_run(trained.run_id)
    assert logged.name == "pyfunc_model" and logged.source_run_id == trained.run_id
    assert logged.experiment_id == run.info.experiment_id
    assert str(logged.status) in ("READY", "LoggedModelStatus.READY")
    found = client.search_logged_models(experiment_ids=[run.info.experiment_id],
                                        filter_string=f"source_run_id = '{trained.run_id}'")
    assert [m.model_id for m in found] == [logged.model_id]


def test_the_logged_model_has_its_id_a_signature_and_an_input_example(trained, logged):
    from mlflow.models import Model
    info = Model.load(f"models:/{logged.model_id}")
    assert info.model_id == logged.model_id and info.run_id == trained.run_id
    inputs = {c.name: c.required for c in info.signature.inputs.inputs}
    assert inputs == {"path": False, "audio": False, "sr": False, "features": False}
    outputs = [c.name for c in info.signature.outputs.inputs]
    assert outputs[:3] == ["source", "error", "windows"]
    assert {"genre", "valence", "energy"} <= set(outputs)
    assert {f"p_{c}" for c in trained.classes} <= set(outputs)
    assert {p.name for p in info.signature.params.params} == {"window_seconds", "hop_seconds"}
    example = info.load_input_example(_download(f"models:/{logged.model_id}"))
    assert list(example.columns) == ["path"]


def _download(uri: str) -> str:
    import mlflow.artifacts
    return mlflow.artifacts.download_artifacts(uri)


def test_the_run_copy_also_carries_the_model_id(trained, logged):
    from mlflow.models import Model
    assert Model.load(f"runs:/{trained.run_id}/pyfunc_model").model_id == logged.model_id


def test_the_logged_model_loads_and_predicts_by_its_model_uri(trained, logged, tmp_path_factory, workspace):
    import mlflow.pyfunc
    inputs = write_inputs(tmp_path_factory.mktemp("mlflow3-audio"), workspace)
    model = mlflow.pyfunc.load_model(f"models:/{logged.model_id}")
    table = model.predict(pd.DataFrame({"path": [str(inputs["mp3"]), "missing.wav"]}))
    assert table["error"].iloc[0] == "" and table["genre"].iloc[0] in trained.classes
    assert table["error"].iloc[1] != ""


def test_the_data_set_is_a_run_input_with_the_fingerprint_as_digest(trained, client):
    run = client.get_run(trained.run_id)
    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 1
    dataset = inputs[0].dataset
    params = run.data.params
    assert dataset.name == params["data.description"]
    assert params["data.fingerprint"].startswith(dataset.digest) and len(dataset.digest) == 36
    assert json.loads(dataset.source) == {"uri": run.data.tags["zoo.data.source"]}
    tags = {t.key: t.value for t in inputs[0].tags}
    assert tags["mlflow.data.context"] == "training"
    assert tags["zoo.train"] == params["data.train"]
    assert json.loads(dataset.profile)["clips"] == int(params["data.clips"])


def test_the_experiment_holds_the_run(trained, client):
    assert client.get_run(trained.run_id).info.experiment_id == \
        client.get_experiment_by_name(EXPERIMENT).experiment_id
    assert Path(trained.model_dir).is_dir()
