"""Tracking against a real MLflow sqlite store in tmp: what a run logs, failures, seeds, compare, ui; and
that the engine knows only the tracking interface (any Tracker, no MLflow)."""
from __future__ import annotations

import ast
import importlib.metadata as md
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from enginefixtures import TINY_LSTM, separable
from zoo.cli import main
from zoo.engine.trainconfig import TrainConfig
from zoo.engine.package import load_model
from zoo.engine.request import RunRequest, SeedPlan
from zoo.engine.runner import run
from zoo.engine.intervals import t_interval
from zoo.errors import RunError
from zoo.registry import Registry
from zoo.tracking import DataInputs, NullTracker, flatten, tracked_run
from zoo.tracking.mlflow.compare import compare_rows, failed_runs, format_table
from zoo.tracking.mlflow.tracker import PYFUNC_ERROR_TAG, MlflowTracker

FAST = TrainConfig(epochs=3, batch_size=16, lr=1e-2, patience=0, warmup=0.0)
ENGINE = Path(__file__).resolve().parents[1] / "zoo" / "engine"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One real sqlite store for this module (creating one costs seconds): (uri, client, folder).
    Each test uses its own experiment."""
    folder = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    return uri, MlflowClient(uri), folder


def tracked(store, experiment="exp", *, out_dir, spec="lstm+chroma:genre", prepared=None, seed=0, seeds=1):
    tracker = MlflowTracker(experiment, uri=store[0])
    request = RunRequest(spec, settings=TINY_LSTM, train=FAST, data=separable(6) if prepared is None else prepared,
                         seeds=SeedPlan(first=seed, count=seeds), out_dir=out_dir)
    return run(request, registry=Registry(), tracker=tracker)


def test_flatten_names_nested_settings_with_dots():
    assert flatten({"backbone": {"hidden": 8}, "feature": {"mel": {"n_mels": 64}}, "x": 1}) == {
        "backbone.hidden": 8, "feature.mel.n_mels": 64, "x": 1}


def test_a_run_logs_params_metrics_reports_and_the_model(store, tmp_path):
    uri, client, folder = store
    prepared = separable(6)
    prepared.skipped = [("clip-bad-1.wav", "file is 0.3 s long"), ("clip-bad-2.wav", "digital silence")]
    res = tracked(store, prepared=prepared, out_dir=tmp_path / "runs")
    exp = client.get_experiment_by_name("exp")
    assert exp.artifact_location == (folder / "artifacts" / "exp").as_uri()
    r = client.get_run(res.run_id)
    assert r.info.status == "FINISHED"
    p, t, m = r.data.params, r.data.tags, r.data.metrics
    assert p["spec"] == t["zoo.spec"] == "lstm+chroma:genre"
    assert p["backbone.hidden"] == "16" and p["train.lr"] == "0.01" and p["task.genre.pooling"] == "meanstd"
    assert p["feature.chroma.hop_length"] == "512"
    assert p["provider.backbone.lstm"] == f"music-zoo-lstm=={md.version('music-zoo-lstm')}"
    assert p["provider.task.genre"] == f"music-zoo=={md.version('music-zoo')}"
    assert p["data.fingerprint"] == prepared.fingerprint and p["data.skipped"] == "2"
    assert (p["data.train"], p["data.val"], p["data.test"]) == ("12", "3", "3")
    history = client.get_metric_history(res.run_id, "val.genre.accuracy")
    assert sorted(h.step for h in history) == [1, 2, 3]
    assert m["test.genre.accuracy"] == pytest.approx(res.test["genre.accuracy"])
    assert m["final.val.genre.accuracy"] == pytest.approx(res.val["genre.accuracy"])
    files = {a.path for folder in ("reports", "model") for a in client.list_artifacts(res.run_id, folder)}
    assert {"reports/metrics.json", "reports/classification_report.txt", "reports/confusion_genre.png",
            "reports/curves.png", "reports/skipped.txt", "model/zoo_model.json", "model/weights.pt"} <= files
    skipped = client.download_artifacts(res.run_id, "reports/skipped.txt", str(tmp_path))
    assert "clip-bad-2.wav\tdigital silence" in open(skipped).read()
    model_dir = client.download_artifacts(res.run_id, "model", str(tmp_path / "dl"))
    model, meta = load_model(model_dir)
    assert meta["run_id"] == res.run_id and meta["spec"] == "lstm+chroma:genre"


def test_a_failing_run_is_ended_failed_with_the_reason(store, tmp_path):
    uri, client, folder = store
    prepared = separable(5)
    prepared.x[prepared.indices("train")[0]][:] = np.nan
    with pytest.raises(RunError, match="loss became nan"):
        tracked(store, experiment="fails", prepared=prepared, out_dir=tmp_path)
    exp = client.get_experiment_by_name("fails")
    (r,) = client.search_runs([exp.experiment_id])
    assert r.info.status == "FAILED"
    assert r.data.tags["zoo.failure"].startswith("RunError: the training loss became nan")


def test_ctrl_c_inside_a_run_ends_it_failed_and_propagates(store):
    uri, client, folder = store
    tracker = MlflowTracker("interrupts", uri=uri)
    with pytest.raises(KeyboardInterrupt):
        with tracked_run(tracker, "interrupted run") as run_id:
            tracker.log_metrics(run_id, {"train.loss": 1.0}, step=1)
            raise KeyboardInterrupt
    r = client.get_run(run_id)
    assert r.info.status == "FAILED" and "Ctrl-C" in r.data.tags["zoo.failure"]
    with tracked_run(tracker, "fine run") as ok_id:
        pass
    assert client.get_run(ok_id).info.status == "FINISHED"


def test_seeds_nest_under_a_parent_that_logs_mean_and_interval(store, tmp_path):
    uri, client, folder = store
    res = tracked(store, experiment="seeds", seeds=3, seed=10, out_dir=tmp_path)
    assert res.seeds == [10, 11, 12] and len(set(res.run_ids)) == 3
    parent = client.get_run(res.run_id)
    assert parent.data.tags["zoo.kind"] == "seeds" and parent.info.status == "FINISHED"
    children = [client.get_run(i) for i in res.run_ids]
    assert all(c.data.tags["mlflow.parentRunId"] == res.run_id for c in children)
    assert sorted(int(c.data.params["seed"]) for c in children) == [10, 11, 12]
    values = [c.data.metrics["test.genre.accuracy"] for c in children]
    expect = t_interval(values)
    pm = parent.data.metrics
    assert pm["test.genre.accuracy.mean"] == pytest.approx(np.mean(values))
    assert pm["test.genre.accuracy.n"] == 3
    if expect["std"] > 0:
        assert pm["test.genre.accuracy.ci95"] == pytest.approx(expect["half_width"])
    assert res.test["genre.accuracy"] == pytest.approx(np.mean(values))
    summary = client.download_artifacts(res.run_id, "summary/seeds.json", str(tmp_path))
    assert json.load(open(summary))["seeds"] == [10, 11, 12]


def test_the_null_tracker_records_in_memory_only(tmp_path):
    tracker = NullTracker()
    res = run(RunRequest("lstm+chroma:genre", settings=TINY_LSTM, train=FAST, data=separable(5), out_dir=tmp_path),
              registry=Registry(), tracker=tracker)
    record = tracker.runs[res.results[0].run_id]
    assert record.status == "FINISHED" and record.params["spec"] == "lstm+chroma:genre"
    assert [s for k, _, s in record.metrics if k == "train.loss"] == [1, 2, 3]
    assert {path for _, path in record.artifacts} == {None, "reports", "model"}  # None: config.yaml at the root
    assert "not tracked" in res.tracking


def test_compare_pools_seeds_and_lists_failures(store, tmp_path, monkeypatch, capsys):
    uri, client, folder = store
    three = tracked(store, experiment="cmp", seeds=2, out_dir=tmp_path)
    other = tracked(store, experiment="cmp", spec="lstm+chroma:valence", out_dir=tmp_path)
    broken = separable(5)
    broken.x[broken.indices("train")[0]][:] = np.nan
    with pytest.raises(RunError):
        tracked(store, experiment="cmp", prepared=broken, out_dir=tmp_path)
    rows = compare_rows("cmp", uri=uri)
    assert [r["spec"] for r in rows] == ["lstm+chroma:valence", "lstm+chroma:genre"]  # latest first
    genre = rows[1]
    assert genre["seeds"] == [0, 1] and set(genre["run_ids"]) == set(three.run_ids)
    assert genre["parent_run_ids"] == [three.run_id]
    acc = genre["metrics"]["test.genre.accuracy"]
    assert acc["mean"] == pytest.approx(three.test["genre.accuracy"]) and acc["n"] == 2
    assert set(rows[0]["metrics"]) == {"test.valence.spearman", "test.valence.mae"}
    assert rows[0]["run_ids"] == [other.run_id]
    assert [r["spec"] for r in compare_rows("cmp", spec="*:genre", uri=uri)] == ["lstm+chroma:genre"]
    (failed,) = failed_runs("cmp", uri=uri)
    assert "loss became" in failed["reason"]
    table = format_table(rows)
    assert "lstm+chroma:genre" in table and three.run_ids[0][:8] in table
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert main(["compare", "--experiment", "cmp", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [r["spec"] for r in printed] == ["lstm+chroma:valence", "lstm+chroma:genre"]
    assert main(["compare", "--experiment", "cmp", "--failed"]) == 0
    assert "loss became" in capsys.readouterr().out
    assert main(["compare", "--experiment", "nothing-here"]) == 2
    assert "no experiment 'nothing-here'" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _interruptible() -> None:
    """Ctrl-C must reach the child even when the suite itself was started in the background of a
    shell without job control, which starts it (and so its children) with SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_zoo_ui_serves_the_store_and_stops_on_ctrl_c(store, tmp_path):
    uri, client, folder = store
    exp_id = client.create_experiment("visible")
    newest = client.create_run(exp_id, tags={"zoo.spec": "lstm+chroma:genre"})
    client.set_terminated(newest.info.run_id, "FINISHED")
    port = _free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "ZOO_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen([sys.executable, "-m", "zoo", "ui", "--port", str(port), "--experiment", "visible"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=_interruptible)
    try:
        body = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and body is None:
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search",
                                             data=b'{"max_results": 10}', headers={"Content-Type": "application/json"})
                body = json.load(urllib.request.urlopen(req, timeout=2))
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.5)
        assert body is not None, "the UI never answered"
        assert "visible" in {e["name"] for e in body["experiments"]}
        lines = [proc.stdout.readline(), proc.stdout.readline()]  # "starting ...", then the address once ready
        assert lines[1].startswith(f"MLflow UI: http://127.0.0.1:{port}"), lines
        # Then the pages a person opens: the experiment's, and its newest run's.
        base = f"http://127.0.0.1:{port}/#/experiments/{exp_id}"
        assert proc.stdout.readline().strip() == f"experiment visible: {base}"
        run_id = newest.info.run_id
        assert proc.stdout.readline().strip() == (f"newest run {run_id} (lstm+chroma:genre, FINISHED): "
                                                  f"{base}/runs/{run_id}")
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "stopping the MLflow UI" in out
    with socket.socket() as s:  # nothing listens on the port any more (closed connections may linger)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()


def test_compare_counts_a_repeated_seed_once(store, tmp_path):
    uri, client, folder = store
    first = tracked(store, experiment="repeat", out_dir=tmp_path)
    again = tracked(store, experiment="repeat", out_dir=tmp_path)  # same seed, same settings, same data
    (row,) = compare_rows("repeat", uri=uri)
    assert row["seeds"] == [0] and row["n_runs"] == 2
    assert row["run_ids"] == [again.run_id] and row["repeated_run_ids"] == [first.run_id]
    assert row["metrics"]["test.genre.accuracy"]["n"] == 1


def _engine_imports() -> dict[str, set[str]]:
    """``{module file: absolute names it imports}`` for the engine, imports inside functions included."""
    out = {}
    for path in sorted(ENGINE.rglob("*.py")):
        package = ["zoo", "engine", *path.relative_to(ENGINE).parent.parts]
        names = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                module = ".".join(base + ([node.module] if node.module else []))
                names.add(module)
                names.update(f"{module}.{a.name}" for a in node.names)
        out[path.name] = names
    return out


def test_the_engine_imports_nothing_from_mlflow_the_mlflow_tracker_or_predict():
    imports = _engine_imports()
    assert "runner.py" in imports and "zoo.tracking.Tracker" in imports["runner.py"]
    banned = ("mlflow", "zoo.tracking.mlflow", "zoo.predict", "zoo.pyfunc")
    offenders = sorted(f"{file} imports {name}" for file, names in imports.items() for name in names
                       if any(name == b or name.startswith(b + ".") for b in banned))
    assert offenders == []


def test_the_engine_never_asks_which_kind_of_tracker_it_has():
    offenders = []
    for path in sorted(ENGINE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance" and len(node.args) == 2:
                kinds = ast.unparse(node.args[1])
                if "Tracker" in kinds:
                    offenders.append(f"{path.name}:{node.lineno} isinstance(..., {kinds})")
    assert offenders == []


class ListTracker:
    """A Tracker written against the interface only (no MLflow, not a NullTracker): it lists the calls."""

    durable = True

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.count = 0

    def start_run(self, name, tags=None, parent=None) -> str:
        self.count += 1
        run_id = f"list-{self.count}"
        self.calls.append(("start_run", run_id, parent))
        return run_id

    def log_params(self, run_id, params) -> None:
        self.calls.append(("log_params", run_id, dict(params)))

    def log_metrics(self, run_id, metrics, step=None) -> None:
        self.calls.append(("log_metrics", run_id, dict(metrics)))

    def set_tags(self, run_id, tags) -> None:
        self.calls.append(("set_tags", run_id, dict(tags)))

    def log_inputs(self, run_id, data) -> None:
        self.calls.append(("log_inputs", run_id, data))

    def log_artifacts(self, run_id, folder, path=None) -> None:
        self.calls.append(("log_artifacts", run_id, path))

    def log_model(self, run_id, model_dir) -> None:
        self.calls.append(("log_model", run_id, Path(model_dir)))

    def end_run(self, run_id, status="FINISHED") -> None:
        self.calls.append(("end_run", run_id, status))

    def where(self, run_id) -> str:
        return f"{run_id} in a list"

    def of(self, kind: str) -> list[tuple]:
        return [c[1:] for c in self.calls if c[0] == kind]


def test_a_tracker_that_only_implements_the_interface_receives_the_data_set_and_the_models(tmp_path):
    tracker = ListTracker()
    prepared = separable(5)
    res = run(RunRequest("lstm+chroma:genre", settings=TINY_LSTM, train=FAST, data=prepared, out_dir=tmp_path,
                         seeds=SeedPlan(count=2)), registry=Registry(), tracker=tracker)
    parent, seed_runs = res.run_id, res.run_ids
    assert {r for r, _ in tracker.of("log_inputs")} == {parent, *seed_runs}
    for _, data in tracker.of("log_inputs"):
        assert isinstance(data, DataInputs)
        assert data.fingerprint == prepared.fingerprint and dict(data.counts) == {"train": 9, "val": 3, "test": 3}
        assert data.params()["data.train"] == 9 and data.classes == tuple(prepared.classes)
    assert tracker.of("log_model") == [(r.run_id, r.model_dir) for r in res.results]
    assert all(path != "model" for _, path in tracker.of("log_artifacts"))  # the model goes through log_model
    # A durable tracker's runs are recorded in the packaged model.
    assert [json.loads((r.model_dir / "zoo_model.json").read_text())["run_id"] for r in res.results] == seed_runs
    assert sorted(tracker.of("end_run")) == sorted((r, "FINISHED") for r in [parent, *seed_runs])
    assert res.tracking == f"{parent} in a list"


def test_an_untracked_run_records_no_run_id_in_its_model(tmp_path):
    tracker = NullTracker()
    res = run(RunRequest("lstm+chroma:genre", settings=TINY_LSTM, train=FAST, data=separable(5), out_dir=tmp_path),
              registry=Registry(), tracker=tracker)
    (seed,) = res.results
    record = tracker.runs[seed.run_id]
    assert record.model_dir == seed.model_dir and record.inputs.description == separable(5).description
    assert record.params["data.fingerprint"] == separable(5).fingerprint
    assert json.loads((seed.model_dir / "zoo_model.json").read_text()).get("run_id") is None


def test_a_pyfunc_failure_tags_and_warns_but_the_run_finishes(store, tmp_path, monkeypatch):
    from zoo.tracking.mlflow import pyfunc

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pyfunc, "log_pyfunc_model", broken)
    uri, client, folder = store
    warned = []
    tracker = MlflowTracker("pyfunc-fails", uri=uri, warn=warned.append)
    res = run(RunRequest("lstm+chroma:genre", settings=TINY_LSTM, train=FAST, data=separable(5), out_dir=tmp_path),
              registry=Registry(), tracker=tracker)
    r = client.get_run(res.run_id)
    assert r.info.status == "FINISHED"
    assert "OSError: disk full" in r.data.tags[PYFUNC_ERROR_TAG] and "zoo register" in warned[0]
    assert {a.path for a in client.list_artifacts(res.run_id, "model")} >= {"model/zoo_model.json"}


@pytest.mark.parametrize("said,kept", [
    ('(psycopg.errors.UniqueViolation) duplicate key value violates unique constraint "dataset_pk"', True),
    ("RESOURCE_DOES_NOT_EXIST: run not found", False),
])
def test_a_run_that_loses_the_race_to_insert_its_data_set_logs_it_again(store, said, kept, monkeypatch):
    """Two nodes logging the same data set at once on one PostgreSQL server: both find the dataset row
    missing, the second insert breaks its unique key and the server answers BAD_REQUEST (seen in CI,
    ``test_server``). Injected here as the server's answer to the first call: the input is logged again
    and linked; any other error still fails the run, after one call."""
    from mlflow.exceptions import RestException
    from zoo.tracking import DataInputs
    from zoo.tracking.mlflow import tracker as tracker_module

    uri, client, _ = store
    tracker = MlflowTracker(f"race-{kept}", uri=uri)
    run_id = tracker.start_run("r")
    real = tracker.client.log_inputs
    calls = []

    def first_call_loses(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RestException({"error_code": "BAD_REQUEST", "message": said})
        return real(*args, **kwargs)

    monkeypatch.setattr(tracker.client, "log_inputs", first_call_loses)
    monkeypatch.setattr(tracker_module.time, "sleep", lambda s: None)
    data = DataInputs(description="folder data at /d", fingerprint="f" * 40, counts={"train": 4, "val": 1, "test": 1},
                      clips=6)
    if kept:
        tracker.log_inputs(run_id, data)
        assert len(calls) == 2
        assert [d.dataset.name for d in client.get_run(run_id).inputs.dataset_inputs] == ["folder data at /d"]
    else:
        with pytest.raises(RestException, match="RESOURCE_DOES_NOT_EXIST"):
            tracker.log_inputs(run_id, data)
        assert len(calls) == 1
