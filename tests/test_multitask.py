"""Multitask learning (lab step 10): one backbone, several heads, task weights learned or fixed."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from datafixtures import write_kaggle
from enginefixtures import TINY_LSTM, separable
from zoo.cli import main
from zoo.engine.trainconfig import task_weight_map
from zoo.engine.request import RunRequest
from zoo.engine.trainconfig import TrainConfig, train_config
from zoo.engine.runner import run
from zoo.errors import ConfigError
from zoo.registry import Registry
from zoo.tracking import NullTracker

FAST = dict(batch_size=8, lr=0.05, patience=0, warmup=0.0)
TASKS = "lstm+chroma:genre,valence"


@pytest.fixture(scope="module")
def registry():
    return Registry()


def train(prepared, tmp_path, registry, tracker=None, **config):
    request = RunRequest(TASKS, settings=TINY_LSTM, train=TrainConfig(**{**FAST, **config}), data=prepared,
                         out_dir=tmp_path)
    return run(request, registry=registry, tracker=tracker)


def test_learned_task_weights_change_and_are_logged_every_epoch(tmp_path, registry):
    tracker = NullTracker()
    res = train(separable(8), tmp_path, registry, tracker=tracker, epochs=4, task_weighting="uncertainty")
    model = res.model
    assert model.log_vars.requires_grad
    history = res.history
    for task in ("genre", "valence"):
        s = [row[f"log_var.{task}"] for row in history]
        assert len(set(s)) == len(s) and s[-1] != 0.0  # moved every epoch, away from the start (0)
        np.testing.assert_allclose([row[f"weight.{task}"] for row in history], np.exp(-np.array(s)), rtol=1e-5)
    np.testing.assert_allclose(model.log_vars.detach().numpy(),
                               [history[res.results[0].best_epoch - 1][f"log_var.{t}"] for t in ("genre", "valence")],
                               rtol=1e-5)
    (record,) = tracker.runs.values()
    logged = sorted(step for name, _, step in record.metrics if name == "log_var.valence")
    assert logged == [1, 2, 3, 4]
    assert set(res.test) >= {"genre.accuracy", "valence.spearman"}


def test_fixed_weights_scale_each_tasks_loss_positionally_or_by_name(tmp_path, registry):
    prepared = separable(6)
    res = train(prepared, tmp_path, registry, epochs=1, task_weights=(2.0, 0.5))
    model = res.model
    assert not model.log_vars.requires_grad and torch.count_nonzero(model.log_vars) == 0
    assert "log_var.genre" not in res.history[0]  # nothing is learned, nothing to log
    x = torch.randn(3, 12, 20)
    lengths = torch.tensor([20, 15, 9])
    y = {"genre": torch.tensor([0, 1, 2]), "valence": torch.tensor([0.2, 0.5, 0.9])}
    model.eval()
    with torch.no_grad():
        total, per = model.loss(model(x, lengths), y)
    torch.testing.assert_close(total, 2.0 * per["genre"] + 0.5 * per["valence"])
    by_name = train_config({"task_weights": "valence:0.25"}).task_weights  # as --set train.task_weights=valence:0.25
    named = train(prepared, tmp_path, registry, epochs=1, task_weights=by_name)
    assert named.model.fixed_weights.tolist() == [1.0, 0.25]  # a task not named keeps weight 1
    assert task_weight_map(["genre", "valence"], ("genre:3", "valence:0.5")) == {"genre": 3.0, "valence": 0.5}
    with pytest.raises(ConfigError, match="'valense'.*did you mean 'valence'"):
        task_weight_map(["genre", "valence"], ("valense:2",))
    with pytest.raises(ConfigError, match="either one weight per task in spec order, or NAME:WEIGHT"):
        task_weight_map(["genre", "valence"], (1.0, "valence:2"))
    with pytest.raises(ConfigError, match="2 task\\(s\\) \\['genre', 'valence'\\]"):
        train(prepared, tmp_path, registry, epochs=1, task_weights=(1.0, 2.0, 3.0))


@pytest.fixture(scope="module")
def kaggle(tmp_path_factory):
    root = tmp_path_factory.mktemp("kaggle-multitask")
    write_kaggle(root, train_per_genre=2, test_per_genre=1, multitask_train=20)
    return root


def test_the_lab_multitask_recipe_runs_with_learned_weights_and_mse(kaggle, capsys, zoo_env, workspace):
    code = main(["run", "lab-multitask-ast", "--data", str(kaggle), "--set", "ast.depth=1", "--set", "ast.embed_dim=32",
                 "--set", "ast.heads=2", "--epochs", "2", "--no-progress", "--json", "--experiment", "multitask-tests"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    doc = json.loads(captured.out)
    client = MlflowClient(workspace.tracking_uri)
    params = client.get_run(doc["run_id"]).data.params
    assert params["train.task_weighting"] == "uncertainty"
    assert {params[f"task.{t}.loss"] for t in ("valence", "energy", "danceability")} == {"mse"}
    for task in ("valence", "energy", "danceability"):
        assert {f"{task}.{m}" for m in ("mae", "mse", "spearman")} <= set(doc["test"])
        steps = [m.step for m in client.get_metric_history(doc["run_id"], f"log_var.{task}")]
        assert sorted(steps) == [1, 2]


@pytest.mark.slow
def test_genre_and_emotion_together_on_the_embedded_set(capsys, zoo_env):
    code = main(["run", "lstm+mel:genre,valence,energy,danceability", "--set", "dataset.size=tiny",
                 "--set", "lstm.hidden=16", "--set", "lstm.layers=1", "--set", "train.task_weighting=uncertainty",
                 "--epochs", "2", "--no-track", "--no-progress", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    doc = json.loads(captured.out)
    assert {"genre.accuracy", "valence.spearman", "energy.spearman", "danceability.spearman"} <= set(doc["test"])
    assert doc["data"]["classes"] and set(doc["targets"]) == {"valence", "energy", "danceability"}
