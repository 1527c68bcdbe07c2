"""The multi-label ``tags`` task: its metrics against scikit-learn, the threshold, the loss, the
columns it reads, and ``zoo run`` / ``zoo predict`` / ``zoo compare`` on a folder with a CSV manifest."""
from __future__ import annotations

import csv
import json
import warnings

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from zoo.cli import main
from zoo.errors import DataError
from zoo.protocols import LabelSchema
from zoo.tasks import TagsConfig, Tagging
from zoo.testing import check_task
from zoo.workspace import Workspace

from datafixtures import write_manifest

pytestmark = pytest.mark.usefixtures("zoo_env_module")

TAGS = ("calm", "sad", "power")


def task(**settings) -> Tagging:
    return Tagging("tags", TagsConfig(**settings))


def schema(tags=TAGS) -> LabelSchema:
    return task().schema(tags)


# -- metrics --------------------------------------------------------------------------------
PRED = np.array([[0.9, 0.2, 0.6], [0.3, 0.8, 0.1], [0.6, 0.4, 0.7], [0.2, 0.1, 0.9], [0.8, 0.7, 0.3],
                 [0.4, 0.6, 0.2]])
TRUTH = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1], [0, 0, 1], [1, 1, 0], [0, 1, 1]], dtype=np.float32)


def test_metrics_equal_scikit_learn_per_tag_and_in_their_means():
    m = task().metrics(PRED, TRUTH, schema())
    for k, tag in enumerate(TAGS):
        assert m[f"{tag}.roc_auc"] == pytest.approx(roc_auc_score(TRUTH[:, k], PRED[:, k]))
        assert m[f"{tag}.pr_auc"] == pytest.approx(average_precision_score(TRUTH[:, k], PRED[:, k]))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(TRUTH, PRED, average="macro"))
    assert m["pr_auc"] == pytest.approx(average_precision_score(TRUTH, PRED, average="macro"))
    assert m["micro_f1"] == pytest.approx(f1_score(TRUTH, PRED >= 0.5, average="micro"))
    assert all(isinstance(v, float) for v in m.values())


def test_a_tag_with_one_class_in_the_split_is_left_out_not_nan():
    y = TRUTH.copy()
    y[:, 1] = 1.0  # sad: on for every clip
    m = task().metrics(PRED, y, schema())
    assert "sad.roc_auc" not in m and "sad.pr_auc" not in m
    assert m["roc_auc"] == pytest.approx(np.mean([m["calm.roc_auc"], m["power.roc_auc"]]))
    assert not np.isnan(m["pr_auc"])
    # no tag can be ranked: the means are NaN (said to be undefined), nothing raises
    flat = task().metrics(PRED, np.ones_like(TRUTH), schema())
    assert np.isnan(flat["roc_auc"]) and np.isnan(flat["pr_auc"]) and not any("." in k for k in flat)
    assert task().metrics(PRED, np.full_like(TRUTH, np.nan), schema()) == {}


def test_missing_values_are_left_out_of_each_tag():
    y = TRUTH.copy()
    y[0, 0] = np.nan
    m = task().metrics(PRED, y, schema())
    assert m["calm.roc_auc"] == pytest.approx(roc_auc_score(TRUTH[1:, 0], PRED[1:, 0]))


def test_the_threshold_decides_which_tags_are_on():
    shares = np.array([[0.1, 0.35], [0.5, 0.2], [np.nan, 0.3]], dtype=np.float32)
    y = task(threshold=0.3).encode(shares)
    np.testing.assert_array_equal(y[:2], [[0, 1], [1, 0]])
    assert np.isnan(y[2, 0]) and y[2, 1] == 1.0  # a value equal to the threshold is on
    np.testing.assert_array_equal(task().encode(shares)[:2], [[0, 0], [1, 0]])  # default 0.5


def test_the_loss_is_binary_cross_entropy_over_known_values():
    out = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]])
    y = torch.tensor([[1.0, float("nan"), 0.0], [0.0, 1.0, 1.0]])
    keep = ~torch.isnan(y)
    want = torch.nn.functional.binary_cross_entropy_with_logits(out[keep], y[keep])
    assert float(task().loss(out, y)) == pytest.approx(float(want))
    weighted = task().loss(out, y, weight=torch.tensor([1.0, 1.0, 4.0]))
    assert float(weighted) > float(want)  # the missed positive of tag 3 weighs 4 times
    assert float(task().loss(out, torch.full_like(y, float("nan")))) == 0.0


def test_tag_weights_balance_each_tags_positives_against_its_negatives():
    from zoo.engine.augment import tag_weights
    y = np.array([[1, 0, 1], [0, 0, 1], [0, 0, 1], [0, np.nan, 1]], dtype=np.float32)
    np.testing.assert_allclose(tag_weights(y), [3.0, 1.0, 1.0])  # no positive / no negative: 1


def test_the_task_meets_the_contract_and_a_broken_one_does_not():
    check_task(Tagging("tags", TagsConfig()))

    class NoEncode(Tagging):
        encode = None

    with pytest.raises(AssertionError, match="encode"):
        check_task(NoEncode("tags", TagsConfig()))

    class Softmax(Tagging):  # one distribution over the tags instead of a probability per tag
        def predict(self, output):
            return torch.softmax(output.detach().float(), -1).numpy() * 2

    with pytest.raises(AssertionError, match=r"probability in \[0, 1\] per tag"):
        check_task(Softmax("tags", TagsConfig()))


@pytest.mark.parametrize("settings", [{"threshold": float("nan")}, {"columns": ("calm", "Calm")}])
def test_bad_settings_are_refused(settings):
    with pytest.raises(ValueError):
        TagsConfig(**settings)


# -- which columns ---------------------------------------------------------------------------
def test_columns_are_named_or_taken_from_the_tag_prefix():
    available = ["calm", "tag:power", "tag:sad", "valence"]
    assert task(columns=("power", "Calm")).resolve(available, "data") == ("tag:power", "calm")
    assert task().resolve(available, "data") == ("tag:power", "tag:sad")
    assert task().schema(("tag:power", "calm")).classes == ("power", "calm")
    with pytest.raises(DataError, match=r"tag column 'clam' is not in data at X \(manifest m.csv\) .*did you mean "
                                        r"'calm'\?; fix --set tags.columns="):
        task(columns=("clam",)).resolve(available, "data at X (manifest m.csv)")
    with pytest.raises(DataError, match=r"has none .* --set tags.columns=COL1,COL2,.* prefix their headers with 'tag:'"):
        task().resolve(["valence"], "data")


def test_reports_keep_per_tag_values_out_of_the_summary_line():
    from zoo.engine.reports import format_metrics, tag_details
    line = format_metrics({"tags": task().metrics(PRED, TRUTH, schema())})
    assert "roc_auc" in line and "calm" not in line
    y = TRUTH.copy()
    y[:, 1] = 0.0
    text, rows = tag_details(PRED, y, TAGS)
    assert rows[1]["roc_auc"] is None and rows[0]["roc_auc"] == pytest.approx(roc_auc_score(TRUTH[:, 0], PRED[:, 0]))
    assert "not scored (1): sad" in text and "over 2 of 3 tags" in text


# -- zoo compare's baseline for a multi-label task -------------------------------------------
def _row(spec, columns, threshold="0.5"):
    return {"spec": spec, "fingerprint": "f", "dataset": "d", "group": spec, "run_ids": ["r"],
            "params": {"task.tags.columns": columns, "task.tags.threshold": threshold},
            "metrics": {"test.tags.pr_auc": {"mean": 0.5, "half_width": float("nan"), "n": 1}},
            "data_source": {"zoo.data.source": "/data/emotify"}}


def test_a_baseline_counts_only_with_the_same_tag_columns_and_threshold():
    from zoo.tracking.mlflow.compare import baseline_hint, mark_baselines
    row, same = _row("cnn+mel:tags", "('calm', 'sad')"), _row("stats+mel:tags", "('calm', 'sad')")
    mark_baselines([row, same])
    assert "test.tags.pr_auc" in row["baseline"]["metrics"]
    other = _row("stats+mel:tags", "('calm', 'sad')", threshold="0.3")
    mark_baselines([row, other])
    assert row["baseline"]["missing"] == ["test.tags.pr_auc"]
    hint = baseline_hint(row, ["test.tags.pr_auc"])
    assert "zoo run stats+mel:tags --set tags.columns=calm,sad --set tags.threshold=0.5 --data /data/emotify" in hint


# -- end to end ------------------------------------------------------------------------------
def _manifest(root, *, prefix: str = ""):
    """24 clips of three genres with shares of listeners for calm, sad and power; each split has clips
    with each tag on and off at threshold 0.3 (sad is on for no clip at 0.4)."""
    rows = []
    splits = ["train"] * 14 + ["val"] * 5 + ["test"] * 5
    for k in range(24):
        rows.append({"path": f"audio/c{k:02d}.wav", "split": splits[k], "label": ("blues", "jazz", "rock")[k % 3],
                     f"{prefix}calm": 0.9 if k % 2 else 0.1, f"{prefix}sad": 0.35 if k % 3 == 0 else 0.2,
                     f"{prefix}power": 0.6 if k % 4 < 2 else 0.0, "valence": round(k / 24, 3)})
    return write_manifest(root, rows)


def _runs(experiment):
    client = MlflowClient(Workspace.from_env().tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"])


FAST = ["--epochs", "2", "--workers", "1", "--no-progress"]


@pytest.fixture(scope="module")
def emotions(tmp_path_factory):
    return _manifest(tmp_path_factory.mktemp("emotions")).parent


@pytest.fixture(scope="module")
def tagged(emotions):
    """``zoo run stats+mel:tags`` on the manifest's calm and sad columns at threshold 0.3: (exit code, stdout)."""
    import contextlib
    import io
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", "stats+mel:tags", "--data", str(emotions), "--set", "tags.columns=calm,sad,power",
                     "--set", "tags.threshold=0.3", "--experiment", "tags-e2e", *FAST])
    return code, out.getvalue()


def test_zoo_run_trains_reports_and_tracks_the_tags(tagged):
    code, out = tagged
    assert code == 0, out
    assert "tags: roc_auc " in out and " pr_auc " in out and "micro_f1" in out
    assert "calm.roc_auc" not in out  # per-tag values are in the table, not the summary line
    assert "tags: 3 tags; training clips with each on at threshold 0.3: calm 7/14, sad 5/14, power 8/14" in out
    assert "  tag  clips    pos  roc_auc   pr_auc" in out and "(over 3 of 3 tags)" in out
    (r,) = _runs("tags-e2e")
    m = r.data.metrics
    for key in ("test.tags.roc_auc", "test.tags.pr_auc", "test.tags.micro_f1", "test.tags.calm.roc_auc",
                "test.tags.sad.pr_auc", "test.tags.power.roc_auc", "val.tags.pr_auc"):
        assert key in m, key
    assert r.data.tags["zoo.key_metrics"] == "test.tags.pr_auc,test.tags.roc_auc"
    assert r.data.params["task.tags.threshold"] == "0.3"
    folder = out.split("reports: ")[1].split()[0]
    doc = json.loads(open(f"{folder}/metrics.json").read())
    assert [t["tag"] for t in doc["per_class"]["tags"]["tags"]] == list(TAGS)
    assert doc["metrics"]["tags"]["roc_auc"] == pytest.approx(m["test.tags.roc_auc"])


def test_zoo_compare_shows_both_means(tagged, capsys):
    assert tagged[0] == 0
    assert main(["compare", "--experiment", "tags-e2e"]) == 0
    out = capsys.readouterr().out
    assert "tags.pr_auc " in out and "tags.roc_auc " in out


def test_zoo_predict_gives_the_top_tags_with_probabilities(tagged, emotions, capsys):
    code, out = tagged
    model = out.split("model:   ")[1].split()[0]
    song = emotions / "audio" / "c01.wav"
    assert main(["predict", model, str(song), "--format", "json", "--no-progress"]) == 0
    (record,) = json.loads(capsys.readouterr().out)["files"]
    tags = record["predictions"]["tags"]
    assert set(tags["probabilities"]) == set(TAGS) and all(0 <= p <= 1 for p in tags["probabilities"].values())
    assert [t["tag"] for t in tags["top"]] == sorted(TAGS, key=lambda t: -tags["probabilities"][t])
    assert main(["predict", model, str(song), "--format", "csv", "--top-k", "2", "--no-progress"]) == 0
    (row,) = csv.DictReader(capsys.readouterr().out.splitlines())
    assert row["tags_1"] in TAGS and float(row["tags_1_p"]) >= float(row["tags_2_p"]) and "tags_3" not in row
    assert main(["predict", model, str(song), "--no-progress"]) == 0
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("tags")][0]
    assert sum(t in line for t in TAGS) == 3


def test_a_misnamed_column_fails_before_any_feature_is_computed(emotions, capsys, monkeypatch):
    import zoo.data.prepare

    def no_features(*args, **kwargs):
        raise AssertionError("features were prepared for a run that names a missing tag column")

    monkeypatch.setattr(zoo.data.prepare, "prepare", no_features)
    code = main(["run", "stats+mel:tags", "--data", str(emotions), "--set", "tags.columns=calm,sadd",
                 "--no-track", *FAST])
    err = capsys.readouterr().err
    assert code == 2
    assert "tag column 'sadd' is not in folder data at" in err and "(manifest manifest.csv)" in err
    assert "did you mean 'sad'?" in err and "--set tags.columns=" in err


def test_multitask_genre_and_prefixed_tags_train_package_and_reload(tmp_path, workspace):
    import zoo
    data = _manifest(tmp_path / "prefixed", prefix="tag:").parent
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        res = zoo.train("stats+mel:genre,tags", data=zoo.DataRequest(str(data), workers=1), epochs=2, workspace=workspace,
                        settings={"tags": {"threshold": 0.4}}, track=False)
    assert any("sad are on for every clip or for none at threshold 0.4" in str(w.message) for w in seen)
    assert res.model.schemas["tags"].classes == ("calm", "power", "sad")  # every tag: column, sorted
    assert "genre.accuracy" in res.test and "tags.calm.roc_auc" in res.test and "tags.sad.roc_auc" not in res.test
    loaded, meta = zoo.load(res.results[0].model_dir, workspace=workspace)
    assert meta["tasks"]["tags"]["kind"] == "multilabel" and meta["tasks"]["tags"]["classes"] == ["calm", "power", "sad"]
    song = data / "audio" / "c02.wav"
    a = zoo.open_model(res.results[0].model_dir, workspace=workspace).predict_file(song)
    assert loaded.schemas["tags"].kind == "multilabel" and a.ok
    assert a.outputs["tags"].shape == (3,) and a.outputs["genre"].shape == (3,)


def test_the_emotify_command_in_docs_data_runs_verbatim(tmp_path, monkeypatch, capsys):
    """docs/data.md's manifest header (its excerpt) with 24 clips of shares, and its first command as written."""
    import re
    import shlex
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[1] / "docs" / "data.md").read_text()
    section = doc[doc.index("### Tags: several labels per clip"):]
    excerpt = re.findall(r"```\n(.*?)```", section, flags=re.S)[0]
    header = excerpt.splitlines()[0].split(",")
    emotions = header[3:]
    assert header[:3] == ["path", "split", "label"] and len(emotions) == 9
    splits = ["train"] * 14 + ["val"] * 5 + ["test"] * 5
    rows = [{"path": f"audio/{k:02d}.wav", "split": splits[k], "label": ("rock", "classical")[k % 2],
             **{e: 0.5 if (k + j) % 2 == 0 else 0.1 for j, e in enumerate(emotions)}} for k in range(24)]
    write_manifest(tmp_path / "emotify", rows)
    command = next(b for b in re.findall(r"```bash\n(.*?)```", section, flags=re.S)).splitlines()[0]
    assert command.startswith("zoo run stats+mel:tags --data emotify ")
    monkeypatch.chdir(tmp_path)
    assert main(shlex.split(command)[1:]) == 0
    out = capsys.readouterr().out
    assert "tags: roc_auc " in out and "(over 9 of 9 tags)" in out


def test_the_pyfunc_model_and_zoo_evaluate_read_the_tags(tagged, emotions, tmp_path, workspace):
    import mlflow.pyfunc
    import pandas as pd

    import zoo
    code, out = tagged
    run_id = out.split("run:     run ")[1].split()[0]
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/pyfunc_model")
    table = model.predict(pd.DataFrame({"path": [str(emotions / "audio" / "c03.wav")]}))
    probs = {t: float(table[f"tags.p_{t}"][0]) for t in TAGS}
    assert table["error"][0] == "" and all(0 <= p <= 1 for p in probs.values())
    assert table["tags"][0] == ",".join(t for t in TAGS if probs[t] >= 0.5)

    folder = out.split("model:   ")[1].split()[0]
    scored = zoo.evaluate(folder, data=str(emotions), split="all", workspace=workspace)
    assert scored.metrics["tags"]["calm.roc_auc"] >= 0 and "tags: roc_auc" in scored.summary()
    other = _manifest(tmp_path / "renamed").parent
    (other / "manifest.csv").write_text((other / "manifest.csv").read_text().replace("power", "tension"))
    with pytest.raises(DataError, match="tag column 'power' is not in folder data"):
        zoo.evaluate(folder, data=str(other), workspace=workspace)
