"""Fault injection, the MLflow store itself: a full disk under its artifacts or its database, a database
another process keeps locked, a tracking URI that names no store, a server that does not answer.

Each must end in one clear error naming the store and the fix (never MLflow's tracebacks), leave no
file cut short in the artifact store, and mark the run FAILED with the reason wherever the store can
still be written. The full disk is injected by monkeypatching the copy (a half-written file, then
ENOSPC, as a real full disk does) and, where this machine allows mounting, on a real tiny tmpfs.
"""
from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from datafixtures import write_label_folders
from enginefixtures import TINY_LSTM, separable
from zoo.cli import main
from zoo.engine.request import RunRequest
from zoo.engine.runner import run
from zoo.engine.trainconfig import TrainConfig
from zoo.errors import ConfigError
from zoo.registry import Registry
from zoo.tracking import FAILURE_TAG
from zoo.tracking.mlflow.faults import StoreFull, StoreUnavailable
from zoo.tracking.mlflow.store import client
from zoo.tracking.mlflow.tracker import MlflowTracker


@pytest.fixture
def store(tmp_path, mlflow_template) -> str:
    folder = tmp_path / "store"
    folder.mkdir()
    shutil.copy(mlflow_template, folder / "mlflow.db")
    return f"sqlite:///{folder / 'mlflow.db'}"


@pytest.fixture(scope="module")
def audio(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("audio")
    write_label_folders(root, ("blues", "jazz", "rock"), per_label=3)
    return root


def request(out: Path) -> RunRequest:
    return RunRequest("lstm+chroma:genre", settings=TINY_LSTM, data=separable(6, with_targets=False),
                      train=TrainConfig(epochs=1, patience=0, device="cpu"), out_dir=out)


def the_run(uri: str):
    c = client(uri)
    exp = c.get_experiment_by_name("faults")
    (found,) = c.search_runs([exp.experiment_id])
    return found


def cut_short_copies(uri: str, out: Path) -> list[str]:
    """Every file in the store's artifacts that has a namesake in the run folder of another size."""
    artifacts = Path(uri[len("sqlite:///"):]).parent / "artifacts"
    originals = {p.name: p.stat().st_size for p in out.rglob("*") if p.is_file()}
    return [str(p) for p in artifacts.rglob("*") if p.is_file() and p.name in originals
            and p.stat().st_size != originals[p.name]]


def fill_at(monkeypatch, where: str) -> list[str]:
    """Copies into the artifact store whose path contains ``where`` write half the file, then fail ENOSPC."""
    copyfile = shutil.copyfile
    hit: list[str] = []

    def half_then_full(src, dst, *args, **kwargs):
        if "artifacts" not in str(dst) or where not in str(dst) or not str(dst).endswith("weights.pt"):
            return copyfile(src, dst, *args, **kwargs)
        data = Path(src).read_bytes()
        Path(dst).write_bytes(data[: len(data) // 2])
        hit.append(str(dst))
        err = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        err.filename, err.filename2 = str(src), str(dst)  # as shutil's sendfile copy reports it
        raise err

    monkeypatch.setattr(shutil, "copyfile", half_then_full)
    return hit


@pytest.mark.parametrize("where", ["/model/", "/models/m-"], ids=["run-artifacts", "logged-pyfunc-model"])
def test_a_full_artifact_store_leaves_no_weights_cut_short_and_fails_the_run(store, tmp_path, monkeypatch, where):
    hit = fill_at(monkeypatch, where)
    with pytest.raises(StoreFull) as err:
        run(request(tmp_path / "runs"), registry=Registry(), tracker=MlflowTracker("faults", uri=store))
    assert hit, "the fault was never injected"
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"cannot write to the MLflow store {store}: no space left")
    assert "free some space, or point MLFLOW_TRACKING_URI (or ZOO_HOME) at a disk with room" in message
    assert cut_short_copies(store, tmp_path / "runs") == []
    assert all(not Path(h).exists() for h in hit)
    found = the_run(store)
    assert found.info.status == "FAILED" and found.data.tags[FAILURE_TAG] == f"StoreFull: {message}"
    # The run folder's model is intact: the copy was what failed.
    (weights,) = (tmp_path / "runs").rglob("weights.pt")
    assert weights.stat().st_size > 0


def test_a_full_database_mid_run_is_one_error_and_the_run_marked_failed(store, tmp_path, monkeypatch):
    """SQLite's own words for a full disk, raised as MLflow raises them, from the first metrics batch on."""
    import sqlite3

    import sqlalchemy.exc
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    log_batch = MlflowClient.log_batch

    def full_for_metrics(self, run_id, metrics=(), *args, **kwargs):
        if metrics:
            cause = sqlalchemy.exc.OperationalError("INSERT INTO metrics", {}, sqlite3.OperationalError(
                "database or disk is full"))
            raise MlflowException(message=cause) from cause
        return log_batch(self, run_id, metrics, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "log_batch", full_for_metrics)
    with pytest.raises(StoreFull, match=r"^cannot write to the MLflow store .*: its database has no space left "
                                        r"\(.* free at .*mlflow\.db\); free some space"):
        run(request(tmp_path / "runs"), registry=Registry(), tracker=MlflowTracker("faults", uri=store))
    found = the_run(store)
    assert found.info.status == "FAILED" and "its database has no space left" in found.data.tags[FAILURE_TAG]


def test_zoo_run_on_a_full_store_prints_one_line_and_no_traceback(tmp_path, monkeypatch, capsys, mlflow_template, audio):
    home = tmp_path / "home"
    (home / "mlflow").mkdir(parents=True)
    shutil.copy(mlflow_template, home / "mlflow" / "mlflow.db")
    monkeypatch.setenv("ZOO_HOME", str(home))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow' / 'mlflow.db'}")
    fill_at(monkeypatch, "/model/")
    code = main(["run", "lstm+chroma:genre", "--data", str(audio), "--epochs", "1", "--patience", "0", "--no-progress",
                 "--set", "backbone.hidden=8", "--set", "backbone.layers=1", "--experiment", "faults"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("zoo:")]
    assert line.startswith("zoo: error: cannot write to the MLflow store sqlite:///") and "no space left" in line


@pytest.fixture
def tmpfs(tmp_path):
    where = tmp_path / "mnt"
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {done.stderr.decode().strip()}")
    yield where
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_store_on_a_really_full_disk_fails_the_run_with_one_error_and_nothing_cut_short(tmpfs, tmp_path, mlflow_template):
    """A store on a tmpfs with 40 KB left: the database and the artifacts fill it during the run."""
    shutil.copy(mlflow_template, tmpfs / "mlflow.db")
    uri = f"sqlite:///{tmpfs / 'mlflow.db'}"
    MlflowTracker("faults", uri=uri).experiment_id
    with open(tmpfs / "filler", "wb") as fh:
        fh.write(b"\0" * max(0, shutil.disk_usage(tmpfs).free - 40_000))
    with pytest.raises(StoreFull) as err:
        run(request(tmp_path / "runs"), registry=Registry(), tracker=MlflowTracker("faults", uri=uri))
    assert "\n" not in str(err.value) and "no space left" in str(err.value)
    assert cut_short_copies(uri, tmp_path / "runs") == []


# -- a database another process keeps locked ----------------------------------------------------------
HOLD = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("held", flush=True)
sys.stdin.read()
"""


@pytest.mark.slow  # MLflow waits 20 s for a locked sqlite database before it gives up
def test_a_database_locked_by_another_process_is_one_error_and_no_second_wait(store, capfd):
    tracker = MlflowTracker("faults", uri=store)
    tracker.experiment_id  # the experiment exists before the lock is taken
    holder = subprocess.Popen([sys.executable, "-c", HOLD, store[len("sqlite:///"):]], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        from zoo.tracking import tracked_run
        with pytest.raises(StoreUnavailable) as err:
            with tracked_run(tracker, "locked", {}):
                pass
    finally:
        holder.communicate("")
    message = str(err.value)
    assert message.startswith(f"the MLflow store {store} stayed locked by another process") and "\n" not in message
    assert f"fuser {store[len('sqlite:///'):]}" in message and "or pass --no-track" in message
    assert "Traceback" not in capfd.readouterr().err  # MLflow's logger printed one per failed call before


# -- a tracking URI that names no store, a server that does not answer -----------------------------------------
@pytest.mark.parametrize("uri", ["htp:/x", "foo://", "sqlite:/relative.db", "http://"])
def test_a_garbage_tracking_uri_is_one_clear_error_naming_it(uri, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert main(["compare"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"zoo: error: the MLflow tracking URI '{uri}' (MLFLOW_TRACKING_URI) ")
    assert "sqlite:///PATH/mlflow.db" in err and "unset MLFLOW_TRACKING_URI" in err
    assert not (tmp_path / "home").exists() or not any((tmp_path / "home").rglob("*.db"))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket is: nothing listens there


def test_an_unreachable_server_is_told_at_once_by_the_probe(tmp_path, monkeypatch, capsys, audio):
    port = closed_port()
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    assert main(["run", "lstm+chroma:genre", "--data", str(audio), "--epochs", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("zoo: error:")]
    assert line.startswith(f"zoo: error: cannot reach the MLflow server http://127.0.0.1:{port} (127.0.0.1:{port}: "
                           f"Connection refused); ")
    assert "or pass --no-track" in line
    assert not (tmp_path / "home" / "runs").exists() or not any((tmp_path / "home" / "runs").iterdir())


def test_a_server_lost_mid_run_is_worded_as_such():
    """What MLflow raises when a server stops answering after its retries (requests' ConnectionError)."""
    import requests

    from zoo.tracking.mlflow.faults import store_problem
    exc = requests.exceptions.ConnectionError("HTTPConnectionPool(host='h', port=5000): Max retries exceeded")
    problem = store_problem(exc, "http://user:secret@h:5000")
    assert isinstance(problem, StoreUnavailable) and problem.store_unavailable
    assert str(problem).startswith("lost the MLflow server http://user:***@h:5000 (it stopped answering)")
    assert store_problem(ValueError("no such run"), "sqlite:///x.db") is None  # not a store fault: passed on
    # Something answers at that address, but not MLflow (a proxy, another service): MLflow's words for it.
    from mlflow.exceptions import MlflowException
    other = MlflowException("API request to endpoint /api/2.0/mlflow/experiments/get-by-name failed with error "
                            "code 404 != 200. Response body: ''")
    problem = store_problem(other, "http://h:5000")
    assert isinstance(problem, StoreUnavailable) and str(problem).startswith(
        "the server at http://h:5000 answered HTTP 404 to /api/2.0/mlflow/experiments/get-by-name, not as an MLflow "
        "tracking server does")


def test_a_plain_folder_uri_and_known_schemes_pass_the_check():
    from zoo.tracking.mlflow.faults import check_uri
    for uri in ("/tmp/mlruns", "file:///tmp/mlruns", "sqlite:///x.db", "postgresql+psycopg2://u@h/db",
                "databricks"):
        check_uri(uri)
    with pytest.raises(ConfigError, match="scheme 'foo'"):
        check_uri("foo://bar")
