"""The Python API: compose, train, evaluate, load; recipes and transfer through it."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

import zoo
from enginefixtures import CLASSES, TINY_LSTM, separable
from zoo import api
from zoo.errors import ConfigError, DataError, SpecError, UnknownComponentError

FAST = {**TINY_LSTM, "train": {"batch_size": 16, "lr": 0.01, "patience": 0, "warmup": 0.0}}


def quick(spec, prepared, tmp_path, **kwargs):
    args = dict(settings=FAST, epochs=3, track=False, progress=False, out_dir=tmp_path, data=prepared)
    args.update(kwargs)
    return zoo.train(spec, **args)


def test_the_api_is_reachable_from_zoo_without_loading_heavy_modules():
    code = ("import sys, zoo; f = (zoo.train, zoo.evaluate, zoo.load); "
            "print(sorted(m for m in ('torch', 'mlflow', 'sklearn', 'matplotlib', 'librosa') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert zoo.train is api.train and zoo.evaluate is api.evaluate


def test_compose_a_spec_or_objects_with_clear_errors():
    built = api.compose("lstm+chroma:genre,valence", settings={"backbone": {"hidden": 8}, "train": {"lr": 1}})
    assert (built.n_bins, built.rate, list(built.tasks)) == (12, "frames", ["genre", "valence"])
    assert built.settings["backbone"] == {"hidden": 8}
    assert built.providers["backbone.lstm"].startswith("music-zoo-lstm==")
    with pytest.raises(UnknownComponentError, match=r"unknown backbone 'lstn'; installed: ast, cnn, [^;]*\blstm\b[^;]*; did you mean 'lstm'"):
        api.compose("lstn+chroma:genre")
    with pytest.raises(SpecError, match="exactly one backbone module"):
        api.compose([zoo.Registry().create("task", "genre")])
    with pytest.raises(SpecError, match="neither a backbone"):
        api.compose(["mel"])
    with pytest.raises(ConfigError, match="settings apply to a spec"):
        api.compose([], settings={"backbone": {"hidden": 8}})


def test_train_returns_everything_and_evaluate_scores_again(tmp_path):
    prepared = separable(8)
    res = quick("lstm+chroma:genre,valence", prepared, tmp_path)
    doc = json.loads(json.dumps(res.to_json()))
    assert doc["spec"] == "lstm+chroma:genre,valence" and doc["classes"] == list(CLASSES)
    assert doc["targets"] == ["valence"] and doc["data"]["counts"] == {"train": 15, "val": 6, "test": 3}
    assert set(res.test) >= {"genre.accuracy", "valence.spearman"} and len(res.history) == 3
    assert res.reports["metrics"].is_file() and res.results[0].model_dir.is_dir()
    again = zoo.evaluate(res, data=prepared, out_dir=tmp_path / "eval")
    assert again.split == "test" and again.clips == 3
    assert again.metrics["genre"]["accuracy"] == pytest.approx(res.test["genre.accuracy"])
    assert again.metrics["valence"]["mae"] == pytest.approx(res.test["valence.mae"], rel=1e-5)
    assert (tmp_path / "eval" / "metrics.json").is_file() and "calm" in again.report_text


def test_evaluate_matches_classes_by_name_and_refuses_unknown_ones(tmp_path):
    prepared = separable(8)
    res = quick("lstm+chroma:genre", prepared, tmp_path)
    # The same clips, but the data set lists its classes in another order.
    order = (2, 0, 1)
    reordered = replace(prepared, classes=tuple(CLASSES[i] for i in order),
                        labels=np.array([order.index(int(v)) for v in prepared.labels]))
    a = zoo.evaluate(res, data=prepared, split="all", out_dir=tmp_path / "a")
    b = zoo.evaluate(res, data=reordered, split="all", out_dir=tmp_path / "b")
    assert a.clips == len(prepared) and a.metrics == b.metrics
    foreign = replace(prepared, classes=("calm", "mid", "polka"))
    with pytest.raises(DataError, match="labels the model never learned: polka"):
        zoo.evaluate(res, data=foreign, out_dir=tmp_path / "c")
    with pytest.raises(DataError, match="split 'holdout'"):
        zoo.evaluate(res, data=prepared, split="holdout", out_dir=tmp_path / "d")


def test_recipes_runs_ids_and_transfer_through_the_store(tmp_path, workspace):
    prepared = separable(6)
    res = quick("lab-lstm-chroma", prepared, tmp_path, track=True, experiment="api-recipes", workspace=workspace)
    assert res.spec == "lstm+chroma:genre"
    client = MlflowClient(workspace.tracking_uri)
    assert client.get_run(res.run_id).data.tags["zoo.recipe"] == "lab-lstm-chroma"
    model, meta = zoo.load(res.run_id, workspace=workspace)
    assert meta["run_id"] == res.run_id and list(model.heads) == ["genre"]
    by_id = zoo.evaluate(res.run_id, data=prepared, out_dir=tmp_path / "e", workspace=workspace)
    assert by_id.metrics["genre"]["accuracy"] == pytest.approx(res.test["genre.accuracy"])
    moved = quick("lstm+chroma:valence", prepared, tmp_path, track=True, experiment="api-recipes",
                  init_from="lab-lstm-chroma", freeze="backbone", settings={"train": FAST["train"]},
                  workspace=workspace)
    tags = client.get_run(moved.run_id).data.tags
    assert tags["zoo.transfer.from"] == f"recipe lab-lstm-chroma (run {res.run_id})"
    assert all(not p.requires_grad for p in moved.model.backbone.parameters())
    with pytest.raises(ConfigError, match="no finished run in experiment 'api-empty'.*zoo run lab-lstm-chroma"):
        quick("lstm+chroma:valence", prepared, tmp_path, track=True, experiment="api-empty",
              init_from="lab-lstm-chroma", workspace=workspace)
    with pytest.raises(ConfigError, match="unknown recipe 'lab-lstm-chrome'.*did you mean 'lab-lstm-chroma'"):
        quick("lab-lstm-chrome", prepared, tmp_path)
    with pytest.raises(ConfigError, match="MODEL '0123456789abcdef' names no model"):
        zoo.load("0123456789abcdef", workspace=workspace)


def test_a_backbone_can_recommend_training_settings_that_flags_override(tmp_path):
    from zoo.registry import EntryInfo, installed_entries
    extra = EntryInfo("backbone", "patient-lstm", "music-zoo-tests", "0", "enginefixtures:patient_lstm")
    registry = zoo.Registry(entries=(*installed_entries(), extra))
    settings = {"backbone": {"hidden": 8, "layers": 1}, "train": {"patience": 0}}
    res = zoo.train("patient-lstm+chroma:genre", data=separable(5), registry=registry, settings=settings,
                    track=False, progress=False, out_dir=tmp_path)
    from zoo.engine.package import read_meta
    assert len(res.history) == 2
    recorded = read_meta(res.results[0].model_dir)["train"]
    assert (recorded["epochs"], recorded["lr"], recorded["patience"]) == (2, 0.02, 0)
    res = zoo.train("patient-lstm+chroma:genre", data=separable(5), registry=registry, settings=settings,
                    epochs=3, track=False, progress=False, out_dir=tmp_path)
    assert len(res.history) == 3 and read_meta(res.results[0].model_dir)["train"]["lr"] == 0.02


# -- the grouped settings of zoo.train ------------------------------------------------------------
@pytest.mark.parametrize("keyword, spelling", [
    ("lr", "train={'lr': ...}"), ("limit", "data=DataRequest(path=..., limit=...)"),
    ("workers", "data=DataRequest(path=..., workers=...)"), ("prepared", "data=prepared"),
    ("seed", "seeds=SeedPlan(first=..., count=...)"), ("verbose", "reporter=ConsoleReporter()"),
])
def test_a_keyword_of_the_flat_signature_is_a_type_error_naming_its_new_spelling(keyword, spelling):
    with pytest.raises(TypeError, match=rf"zoo.train\(\.\.\., {keyword}=\.\.\.\) is now written {re.escape(spelling)}"):
        zoo.train("lstm+chroma:genre", track=False, **{keyword: 1})
    with pytest.raises(TypeError, match="unexpected keyword argument 'epoch'"):
        zoo.train("lstm+chroma:genre", epoch=1)


def test_train_takes_a_train_config_or_its_fields_and_epochs_wins_over_both(tmp_path):
    from zoo.engine.package import read_meta
    prepared = separable(5)
    common = dict(data=prepared, settings={**TINY_LSTM, "train": {"lr": 0.5, "patience": 0}}, track=False,
                  progress=False, out_dir=tmp_path)
    res = zoo.train("lstm+chroma:genre", train={"lr": 0.02, "epochs": 2, "batch_size": 8}, **common)
    recorded = read_meta(res.results[0].model_dir)["train"]
    assert (recorded["lr"], recorded["epochs"], recorded["batch_size"], recorded["patience"]) == (0.02, 2, 8, 0)
    res = zoo.train("lstm+chroma:genre", train=zoo.TrainConfig(lr=0.03, epochs=3), epochs=1, **common)
    recorded = read_meta(res.results[0].model_dir)["train"]
    assert (recorded["lr"], recorded["epochs"], len(res.history)) == (0.5, 1, 1)  # settings["train"] over it
    with pytest.raises(ConfigError, match="train=5: give a TrainConfig or a mapping of its fields"):
        zoo.train("lstm+chroma:genre", train=5, **common)
    with pytest.raises(ConfigError, match="train: unknown setting 'lrr'.*did you mean 'lr'"):
        zoo.train("lstm+chroma:genre", train={"lrr": 1}, **common)


def test_data_and_seeds_take_their_groups_or_the_short_forms(tmp_path):
    res = zoo.train("lstm+chroma:genre", data=zoo.DataRequest(limit=24, workers=1), epochs=1,
                    settings={**TINY_LSTM, "dataset": {"size": "tiny"}}, seeds=zoo.SeedPlan(first=2, count=1),
                    track=False, progress=False, out_dir=tmp_path)
    assert res.seeds == [2] and res.data["clips"] <= 24
    with pytest.raises(ConfigError, match=r"seeds=\[1, 2\]: give a count"):
        zoo.train("lstm+chroma:genre", seeds=[1, 2], track=False)


def test_grouped_turns_the_command_lines_flat_options_into_trains_groups():
    from zoo.api import grouped
    out = grouped({"data": "/music", "limit": 20, "skip_bad": True, "epochs": 3, "lr": None, "device": "cpu",
                   "seed": 4, "seeds": 2, "experiment": "e"})
    assert out["data"] == zoo.DataRequest(path="/music", limit=20, skip_bad=True)
    assert out["train"] == {"epochs": 3, "device": "cpu"}
    assert out["seeds"] == zoo.SeedPlan(first=4, count=2) and out["experiment"] == "e"
    assert grouped({"epochs": 1, "lr": None}) == {"train": {"epochs": 1}}
