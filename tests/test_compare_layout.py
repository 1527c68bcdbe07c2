"""``zoo compare``'s layout: the table fits 120 columns (the data set as D1, D2... with a legend below),
``--wide`` gives every column in full, ``--format csv|json`` is for scripts.

Runs are logged straight to a sqlite store with the tags and metrics ``zoo run`` gives them (no
training), then read back by the command as a user types it.
"""
from __future__ import annotations

import csv
import io
import json

import pytest

from zoo.cli import main
from zoo.tracking.mlflow.compare import format_table
from zoo.tracking.mlflow.tracker import MlflowTracker

LONG_DATA = ("folder data at /home/someone/music/collections/gtzan-style (label folders): 1000 audio files in 10 "
             "label folders; 10 classes; test = 20% of the clips (200), stratified, seed 0")
EMBEDDED = "embedded synthesised set 'default' (10 genres x 60 clips x 6 s, seed 0)"


def log_run(tracker: MlflowTracker, spec: str, dataset: str, seed: int, metrics: dict[str, float], group: str) -> str:
    run_id = tracker.start_run(f"{spec} seed {seed}", {
        "zoo.spec": spec, "zoo.kind": "run", "zoo.dataset": dataset, "zoo.group": group, "zoo.seed": str(seed),
        "zoo.fingerprint": group * 4, "zoo.key_metrics": ",".join(metrics)})
    tracker.log_params(run_id, {"seed": seed})
    tracker.log_metrics(run_id, metrics)
    tracker.end_run(run_id)
    return run_id


@pytest.fixture
def store(tmp_path, monkeypatch) -> list[str]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    tracker = MlflowTracker("layout", uri=uri)
    ids = []
    for seed in range(3):
        ids.append(log_run(tracker, "cnn+mel+chroma:genre,valence,energy,danceability", LONG_DATA, seed, {
            "test.genre.accuracy": 0.7 + seed / 100, "test.genre.macro_f1": 0.6 + seed / 100,
            "test.valence.spearman": 0.5, "test.energy.spearman": 0.4 + seed / 50,
            "test.danceability.spearman": 0.3 + seed / 50}, "g1"))
    ids.append(log_run(tracker, "lstm+chroma:genre", EMBEDDED, 0, {"test.genre.accuracy": 0.5,
                                                                    "test.genre.macro_f1": 0.45}, "g2"))
    return ids


def test_the_table_fits_120_columns_with_data_ids_and_a_legend(store, capsys):
    assert main(["compare", "--experiment", "layout"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert max(len(ln) for ln in lines) <= 120, out
    assert LONG_DATA not in "\n".join(lines[:8])  # not in the table's rows: in the legend
    legend = out[out.index("\ndata:\n"):]
    assert f"  D1  {EMBEDDED}" in legend and " ".join(legend.split()).count(LONG_DATA) == 1  # latest row first
    assert legend.index("D1") < legend.index("D2")
    at = next(i for i, ln in enumerate(lines) if ln.startswith("cnn+mel+chroma"))
    row = " ".join(lines[at:at + 5])
    assert " D2 " in row and store[2][:8] in row and store[2] not in out and "+1" in row
    assert "genre.accuracy 0.710 ± " in out and "danceability.spearman" in out  # wrapped, not cut


def test_wide_gives_every_column_in_full(store, capsys):
    assert main(["compare", "--experiment", "layout", "--wide"]) == 0
    out = capsys.readouterr().out
    row = next(ln for ln in out.splitlines() if ln.startswith("cnn+mel+chroma"))
    assert LONG_DATA in row and store[2] in row and "danceability.spearman" in row and len(row) > 120


def test_csv_has_a_line_per_row_and_each_metrics_mean_ci_and_n(store, capsys):
    assert main(["compare", "--experiment", "layout", "--format", "csv"]) == 0
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["spec"] for r in table] == ["lstm+chroma:genre", "cnn+mel+chroma:genre,valence,energy,danceability"]
    cnn = table[1]
    assert cnn["data_id"] == "D2" and cnn["dataset"] == LONG_DATA and cnn["seeds"] == "0 1 2"
    assert float(cnn["test.genre.accuracy"]) == pytest.approx(0.71) and cnn["test.genre.accuracy.n"] == "3"
    assert float(cnn["test.genre.accuracy.ci95"]) > 0 and cnn["run_ids"].split() == store[2::-1]
    assert table[0]["test.valence.spearman"] == ""  # a metric the row does not have


def test_format_json_is_the_json_of_the_rows(store, capsys):
    assert main(["compare", "--experiment", "layout", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["dataset"] for r in rows] == [EMBEDDED, LONG_DATA]


def test_csv_for_a_listing_other_than_the_table_is_refused_with_the_fix(store, capsys):
    assert main(["compare", "--experiment", "layout", "--format", "csv", "--failed"]) == 2
    assert "use --format json" in capsys.readouterr().err


def test_a_row_of_many_metrics_wraps_them_and_keeps_every_one():
    metrics = {f"test.task{i}.spearman": {"mean": 0.5, "half_width": 0.01, "n": 3} for i in range(12)}
    rows = [{"spec": "cnn+mel:" + ",".join(f"task{i}" for i in range(12)), "dataset": "d", "seeds": [0, 1, 2],
             "metrics": metrics, "run_ids": ["a" * 32, "b" * 32, "c" * 32]}]
    text = format_table(rows)
    table = text[:text.index("\n\ndata:")]
    assert all(len(ln) <= 120 for ln in table.splitlines()), table
    assert all(f"task{i}.spearman 0.500 ± 0.010" in text for i in range(12))


LONG_REASON = ("DataError: /home/someone/music/collections/gtzan-style/blues/blues.00042.wav: the file ends after "
               "12 s of its 30 s (truncated while copying?); copy it again, or run with --skip-bad to leave it out "
               "and list it in the run's report")


@pytest.mark.parametrize("listing", [["--baseline"], ["--runs"], ["--failed"], ["--unfinished"]],
                         ids=["baseline", "runs", "failed", "unfinished"])
def test_every_listing_fits_120_columns_and_keeps_every_word(store, capsys, listing):
    import os
    tracker = MlflowTracker("layout", uri=os.environ["MLFLOW_TRACKING_URI"])
    log_run(tracker, "stats+mel:genre", EMBEDDED, 0, {"test.genre.accuracy": 0.6, "test.genre.macro_f1": 0.5}, "g3")
    failed = tracker.start_run("cnn+mel:genre seed 0", {"zoo.spec": "cnn+mel:genre", "zoo.kind": "run",
                                                        "zoo.dataset": LONG_DATA, "zoo.failure": LONG_REASON})
    tracker.end_run(failed, "FAILED")
    assert main(["compare", "--experiment", "layout", *listing]) == 0
    out = capsys.readouterr().out
    assert max(len(ln) for ln in out.splitlines()) <= 120, out
    words = " ".join(out.split())
    if listing == ["--failed"]:
        assert " ".join(f"{failed} cnn+mel:genre: {LONG_REASON}".split()) in words
    if listing == ["--runs"]:
        assert all(run_id in out for run_id in store) and LONG_DATA in words
    if listing == ["--baseline"]:
        assert "vs baseline: for each task, the latest finished, full stats+ run" in out
