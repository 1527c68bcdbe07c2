"""``zoo predict`` and zoo.predict: a real model trained on the embedded set, real audio files."""
from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pytest

from predictfixtures import EXPERIMENT, embedded_clips, trained_model, write_inputs
from zoo import open_model
from zoo.cli import main
from zoo.errors import ConfigError
from zoo.predict import FilePrediction, TaskInfo, WindowPrediction
from zoo.predict.output import csv_columns, format_csv, format_table, record
from zoo.predict.results import summarise
from zoo.predict.windows import FALLBACK_WINDOW_SECONDS, default_window_seconds, window_spans


@pytest.fixture(autouse=True)
def _in_the_test_workspace(zoo_env):
    """`zoo predict` and `zoo.open_model` find their models in the test workspace, as a user's shell sets it."""


# -- no model needed ------------------------------------------------------------------------------
def test_windows_cover_the_whole_file_half_a_window_apart():
    assert window_spans(2.5, 3.0, 1.5) == [(0.0, 2.5)]  # shorter than a window: predicted whole
    assert window_spans(9.0, 3.0, 1.5) == [(0.0, 3.0), (1.5, 4.5), (3.0, 6.0), (4.5, 7.5), (6.0, 9.0)]
    spans = window_spans(10.0, 3.0, 1.5)
    assert spans[-1] == (7.0, 10.0) and spans[-2] == (6.0, 9.0)  # the tail gets its own window
    assert all(e - s == pytest.approx(3.0) for s, e in spans)


def test_the_default_window_is_the_median_training_clip():
    frames = {"rate": "frames", "hop_length": 512, "sample_rate": 22050, "lengths": {"median": 431}}
    assert default_window_seconds(frames)[0] == pytest.approx(431 * 512 / 22050, abs=1e-3)
    beats = {"rate": "beats", "hop_length": 512, "sample_rate": 22050, "lengths": {"median": 20}}
    assert default_window_seconds(beats)[0] == pytest.approx(10.0)
    seconds, why = default_window_seconds({"rate": "frames", "hop_length": 512, "sample_rate": 22050})
    assert seconds == FALLBACK_WINDOW_SECONDS and "no training clip length" in why
    # trained on random crops: the crop is the window (as validation and test scored it)
    cropped = dict(frames, train={"crop_frames": 128})
    seconds, why = default_window_seconds(cropped)
    assert seconds == pytest.approx(128 * 512 / 22050, abs=1e-3) and "crop_frames" in why
    assert default_window_seconds(dict(beats, train={"crop_frames": 8}))[0] == pytest.approx(4.0)
    assert default_window_seconds(dict(frames, train={"crop_frames": 0}))[0] == pytest.approx(431 * 512 / 22050, abs=1e-3)


def test_outputs_agree_across_table_json_and_csv():
    tasks = [TaskInfo("genre", "classification", "label", ("jazz", "rock", "pop")), TaskInfo("valence", "regression", "valence")]
    windows = [WindowPrediction(0.0, 3.0, {"genre": np.array([0.2, 0.7, 0.1]), "valence": 0.4}),
               WindowPrediction(1.5, 4.5, {"genre": np.array([0.6, 0.3, 0.1]), "valence": 0.6})]
    good = FilePrediction("a.ogg", summarise(windows, tasks), tuple(windows), duration=4.5)
    bad = FilePrediction("b.wav", error="audio file b.wav is digital silence")
    assert good.top(tasks[0], 2) == [("rock", pytest.approx(0.5)), ("jazz", pytest.approx(0.4))]
    table = format_table([good, bad], tasks, 2, windows=True)
    assert "rock 0.500  jazz 0.400" in table and "valence  0.500" in table
    assert "ERROR: audio file b.wav is digital silence" in table and "1.50-   4.50 s" in table
    doc = record(good, tasks, 2, windows=True)
    assert doc["predictions"]["genre"]["top"][0] == {"class": "rock", "probability": 0.5}
    assert [w["start"] for w in doc["window_predictions"]] == [0.0, 1.5]
    rows = list(csv.DictReader(io.StringIO(format_csv([good, bad], tasks, 2, windows=True))))
    assert [r["part"] for r in rows] == ["all", "window", "window", "all"]
    assert rows[0]["genre_1"] == "rock" and float(rows[0]["valence"]) == 0.5 and rows[3]["error"]
    assert csv_columns(tasks, 5)[-7:] == ["genre_1", "genre_1_p", "genre_2", "genre_2_p", "genre_3", "genre_3_p", "valence"]


def test_usage_and_model_errors_exit_2(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "nowhere"), "x.wav"]) == 2
    assert f"model folder {tmp_path / 'nowhere'} does not exist" in capsys.readouterr().err
    assert main(["predict", str(tmp_path), "x.wav"]) == 2
    assert "holds no packaged zoo model" in capsys.readouterr().err
    assert main(["predict", str(tmp_path), "x.wav", "--top-k", "0"]) == 2  # refused while parsing
    assert "argument --top-k: 0 is out of range: give a whole number >= 1" in capsys.readouterr().err
    assert main(["predict", "no-such-model-anywhere", "x.wav"]) == 2
    err = capsys.readouterr().err
    assert "MODEL 'no-such-model-anywhere' names no model" in err
    assert "no registered model 'no-such-model-anywhere'" in err and "not a recipe of registry.yaml" in err
    assert main(["predict", "models:/never-registered/1", "x.wav"]) == 2
    assert "zoo register RUN_ID never-registered" in capsys.readouterr().err


# -- with a trained model -------------------------------------------------------------------------
# These use the model trained once per session (about 20-30 s on a shared CPU): marked slow.
@pytest.fixture(scope="module")
def trained(tmp_path_factory, workspace):
    return trained_model(tmp_path_factory, workspace)


@pytest.fixture(scope="module")
def inputs(trained, tmp_path_factory, workspace):
    return write_inputs(tmp_path_factory.mktemp("predict-audio"), workspace)


def predict_json(capsys, *argv):
    code = main(["predict", *map(str, argv), "--format", "json", "--no-progress"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def table_blocks(out: str) -> dict[str, str]:
    """The table's blocks by file: a file's line (not indented) and the indented lines under it."""
    blocks: dict[str, str] = {}
    key = None
    for line in out.splitlines():
        if not line.startswith(" "):
            key = line.split("  (")[0]
            blocks[key] = ""
        else:
            blocks[key] += line + "\n"
    return blocks


@pytest.mark.slow
def test_each_bad_file_gets_its_error_and_the_others_are_predicted(trained, inputs, capsys):
    names = ("mp3", "silent", "long", "corrupt", "short", "missing", "chord")
    code = main(["predict", str(trained.model_dir), *(str(inputs[n]) for n in names), "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 1 and "4 of 7 file(s) could not be predicted" in err
    blocks = table_blocks(out)
    assert list(blocks) == [str(inputs[n]) for n in names]  # every file, in the order given
    reasons = {"silent": "digital silence", "corrupt": "cannot be decoded", "missing": "does not exist",
               "short": "0.50 s of audio is too short to predict; give at least 1 s"}
    for n, reason in reasons.items():
        body = blocks[str(inputs[n])]
        assert body.startswith("  ERROR: ") and reason in body, (n, body)
    for n in ("mp3", "long", "chord"):
        body = blocks[str(inputs[n])]
        assert "ERROR" not in body and {"genre", "valence", "energy"} <= set(body.split())
        assert sum(c in body.split() for c in trained.classes) == 3  # top-3 classes by default


@pytest.mark.slow
def test_json_gives_top_k_probabilities_and_values_and_exit_0(trained, inputs, capsys):
    code, doc, err = predict_json(capsys, trained.model_dir, inputs["mp3"], inputs["chord"], "--top-k", "2")
    assert code == 0 and f"model: {trained.model_dir}" in err
    assert doc["model"]["spec"] == "lstm+mel:genre,valence,energy"
    for item in doc["files"]:
        assert item["ok"] and item["error"] is None and item["windows"] == 1
        genre = item["predictions"]["genre"]
        assert len(genre["top"]) == 2 and set(genre["probabilities"]) == set(trained.classes)
        assert sum(genre["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        best = max(genre["probabilities"], key=genre["probabilities"].get)
        assert genre["top"][0]["class"] == best
        assert all(np.isfinite(item["predictions"][t]) for t in ("valence", "energy"))
    assert doc["files"][1]["duration"] == pytest.approx(1.2, abs=0.01)  # >= 1 s: predicted whole


@pytest.mark.slow
def test_a_long_file_is_predicted_in_windows_whose_mean_is_the_answer(trained, inputs, capsys):
    code, doc, _ = predict_json(capsys, trained.model_dir, inputs["long"], "--windows", "--window-seconds", "3",
                                "--hop-seconds", "1.5")
    assert code == 0
    (item,) = doc["files"]
    spans = window_spans(item["duration"], 3.0, 1.5)
    assert len(spans) >= 5 and item["windows"] == len(spans)
    got = [(w["start"], w["end"]) for w in item["window_predictions"]]
    np.testing.assert_allclose(got, spans, atol=2e-3)
    windows = item["window_predictions"]
    for cls in trained.classes:
        mean = np.mean([w["genre"]["probabilities"][cls] for w in windows])
        assert item["predictions"]["genre"]["probabilities"][cls] == pytest.approx(mean, abs=1e-5)
    assert item["predictions"]["valence"] == pytest.approx(np.mean([w["valence"] for w in windows]), abs=1e-5)
    # The windows differ (three different clips), so the answer is not one window's repeated.
    assert len({round(w["valence"], 5) for w in windows}) > 1


@pytest.mark.slow
def test_the_default_window_is_the_training_clip_length(trained, inputs):
    predictor = open_model(trained.model_dir)
    assert predictor.window_seconds == pytest.approx(trained.clip_seconds, abs=0.1)
    assert predictor.hop_seconds == pytest.approx(predictor.window_seconds / 2)
    pred = predictor.predict_file(inputs["long"])
    assert pred.ok and len(pred.windows) == len(window_spans(pred.duration, predictor.window_seconds,
                                                             predictor.hop_seconds)) > 1
    with pytest.raises(ConfigError, match="at most the window"):
        open_model(trained.model_dir, window_seconds=2.0, hop_seconds=3.0)


@pytest.mark.slow
def test_csv_has_one_row_per_file_and_per_window(trained, inputs, capsys):
    code = main(["predict", str(trained.model_dir), str(inputs["long"]), str(inputs["silent"]), "--format", "csv",
                 "--windows", "--window-seconds", "4", "--top-k", "1", "--no-progress"])
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert code == 1
    long_rows = [r for r in rows if r["file"] == str(inputs["long"])]
    assert long_rows[0]["part"] == "all" and int(long_rows[0]["windows"]) == len(long_rows) - 1 >= 3
    assert all(r["genre_1"] in trained.classes and 0 <= float(r["genre_1_p"]) <= 1 for r in long_rows)
    assert "genre_2" not in rows[0]
    (silent,) = [r for r in rows if r["file"] == str(inputs["silent"])]
    assert "digital silence" in silent["error"] and silent["genre_1"] == ""


@pytest.mark.slow
def test_features_given_directly_predict_like_the_audio(trained, workspace):
    import soundfile as sf
    from zoo.data.extract import stack
    predictor = open_model(trained.model_dir, window_seconds=30.0)
    y, sr = sf.read(str(embedded_clips(1, workspace)[0]), dtype="float32")
    from_audio = predictor.predict_waveform(y, sr, source="clip")
    x, _ = stack({n: f.from_audio(y, sr) for n, f in predictor.features.items()}, list(predictor.features))
    from_features = predictor.predict_features(x, source="clip")
    assert from_audio.ok and from_features.ok
    np.testing.assert_allclose(from_features.outputs["genre"], from_audio.outputs["genre"], atol=1e-6)
    assert from_features.outputs["energy"] == pytest.approx(from_audio.outputs["energy"], abs=1e-6)
    wrong = predictor.predict_features(x[:5], source="row 3")
    assert not wrong.ok and "expected features [32, T] (mel rows 0-31), got shape (5," in wrong.error


@pytest.mark.slow
def test_a_model_whose_feature_is_not_installed_says_what_to_install(trained, inputs, tmp_path, capsys):
    copy = tmp_path / "model"
    shutil.copytree(trained.model_dir, copy)
    meta = json.loads((copy / "zoo_model.json").read_text())
    meta["composition"]["features"] = ["spectral-contrast"]
    meta["configs"]["feature"] = {"spectral-contrast": {}}
    meta["providers"].pop("feature.mel")
    meta["providers"]["feature.spectral-contrast"] = "music-zoo-contrast==0.3.0"
    (copy / "zoo_model.json").write_text(json.dumps(meta))
    assert main(["predict", str(copy), str(inputs["mp3"])]) == 2
    out, err = capsys.readouterr()
    assert "needs feature 'spectral-contrast' from music-zoo-contrast==0.3.0" in err
    assert "pip install 'music-zoo-contrast==0.3.0'" in err and out == ""


@pytest.mark.slow
def test_registered_names_and_run_id_prefixes_find_the_model(trained, inputs, capsys):
    """Every form of MODEL is resolved in tests/test_refs.py; here the command line takes them and names the model."""
    assert main(["register", trained.run_id[:8], "predict-net", "--alias", "champion"]) == 0
    assert "'predict-net' version 1" in capsys.readouterr().out
    expected = predict_json(capsys, trained.model_dir, inputs["mp3"])[1]["files"][0]["predictions"]
    for ref in ("predict-net@champion", trained.run_id[:8], f"runs:/{trained.run_id}"):
        code, doc, err = predict_json(capsys, ref, inputs["mp3"])
        assert code == 0, (ref, err)
        assert doc["files"][0]["predictions"] == expected, ref
    assert "registered model predict-net version 1" in predict_json(capsys, "predict-net", inputs["mp3"])[2]
    assert main(["predict", "predict-net/9", str(inputs["mp3"])]) == 2
    assert "has no version 9 (versions: 1; aliases: champion)" in capsys.readouterr().err
    assert main(["predict", "lab-lstm-mel", str(inputs["mp3"]), "--experiment", EXPERIMENT]) == 2
    assert ("recipe 'lab-lstm-mel' has no finished run in experiment 'predict-tests' (train it first: "
            "zoo run lab-lstm-mel)") in capsys.readouterr().err


@pytest.mark.slow
def test_a_packaged_ast_does_not_reread_its_initial_weights_file(trained, inputs, tmp_path):
    """An AST's ``weights`` setting only seeds training: the packaged weights.pt replaces it, so a
    model whose pretrained file is gone still loads and predicts."""
    import zoo
    from predictfixtures import SETTINGS
    from zoo.errors import ZooError
    settings = {**SETTINGS, "backbone": {"embed_dim": 24, "depth": 1, "heads": 2, "max_frames": 200}}
    res = zoo.train("ast+mel:genre", settings=settings, epochs=1, track=False, progress=False,
                    data=zoo.DataRequest(workers=1), out_dir=tmp_path / "run")
    copy = tmp_path / "model"
    shutil.copytree(res.results[0].model_dir, copy)
    meta = json.loads((copy / "zoo_model.json").read_text())
    gone = str(tmp_path / "vit-imagenet.pt")
    meta["configs"]["backbone"]["weights"] = gone
    (copy / "zoo_model.json").write_text(json.dumps(meta))
    with pytest.raises(ZooError, match="vit-imagenet.pt"):  # rebuilt from its settings, it would read the file
        zoo.Registry().create("backbone", "ast", meta["configs"]["backbone"], meta["n_bins"])
    predictor = open_model(copy)
    pred = predictor.predict_file(inputs["mp3"])
    assert pred.ok and pred.top(predictor.tasks[0], 1)[0][0] in res.classes
