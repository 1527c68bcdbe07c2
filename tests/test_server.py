"""The shared store, with real parts: a real PostgreSQL, ``zoo server`` (``mlflow server`` serving the
artifacts) on it, and ``zoo`` commands run as separate "nodes" (each its own ZOO_HOME, so no node
reads another's disk) against ``MLFLOW_TRACKING_URI=http://127.0.0.1:PORT``.

Two runs at once, register on one node and predict by name on another, compare, a run killed by
SIGKILL found KILLED and resumed to the uninterrupted result, a 2-process DDP run, a 2-trial sweep on
a local Ray, a run left
RUNNING by another node listed (not hidden), ``zoo ui`` pointing at the server, and no password
in any output, log, param, tag or error. Where PostgreSQL cannot start, these tests skip saying why.
Every subprocess gets its environment explicitly; nothing here changes the test session's.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pgstack
from zoo.errors import ConfigError
from zoo.tracking.credentials import redact_uri, scrub

ARGS = ["lstm+mel:genre", "--epochs", "4", "--patience", "0", "--seed", "5", "--workers", "1", "--no-progress",
        "--set", "backbone.hidden=8", "--set", "backbone.layers=1", "--set", "train.batch_size=8"]
TOLERANCE = 1e-6
"""As the single-process resume tests (tests/test_resume.py): resumed equals uninterrupted."""
CLIENT_SECRET = "client-" + os.urandom(6).hex()
"""MLflow's own credential variable on every node (a server with auth would check it; this one ignores it)."""
SEEN: list[str] = []
"""Everything the zoo printed in this module, checked for passwords at the end."""


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    why = pgstack.unavailable()
    if why:
        pytest.skip(f"no PostgreSQL here: {why}")
    db = pgstack.Postgres()
    server = None
    try:
        db.start()
        server = pgstack.Server(db, tmp_path_factory.mktemp("server-home")).start()
        SEEN.append(server.output)
        yield server
    except RuntimeError as exc:
        pytest.skip(f"PostgreSQL or the MLflow server could not start here: {exc}")
    finally:
        group = server.group if server is not None and server.output else None
        if server is not None:
            SEEN.append(server.stop())
            SEEN.extend(p.read_text() for p in server.home.glob("mlflow/server-*.log"))
        db.stop()
    # Everything started is gone: the server's group (mlflow server, its web worker) and the postmaster.
    assert group is None or pgstack.group_members(group) == []
    for pid in db.pids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def node_env(stack, home: Path, **extra) -> dict[str, str]:
    """A node's environment: its own ZOO_HOME, the shared server, MLflow's credential variables."""
    env = {**os.environ, "ZOO_HOME": str(home), "MLFLOW_TRACKING_URI": stack.uri,
           "MLFLOW_TRACKING_USERNAME": "zoo", "MLFLOW_TRACKING_PASSWORD": CLIENT_SECRET,
           "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false", **extra}
    env.pop("PGPASSWORD", None)
    return env


def zoo(argv, env, timeout=300) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "zoo", *argv], env=env, capture_output=True, text=True,
                          timeout=timeout)
    SEEN.extend([done.stdout, done.stderr])
    return done


def start(argv, env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "zoo", *argv], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout=300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    SEEN.extend([out, err])
    return proc.returncode, out, err


def client(stack):
    from mlflow.tracking import MlflowClient
    return MlflowClient(stack.uri)


def runs_of(stack, experiment: str) -> list:
    c = client(stack)
    exp = c.get_experiment_by_name(experiment)
    return [] if exp is None else c.search_runs([exp.experiment_id])


FULL: dict = {}
"""The uninterrupted run of ARGS (first test), the resumed run is held against."""


def test_two_nodes_train_at_once_and_a_third_predicts_by_name_and_compares(stack, audio_folder, tmp_path):
    a = start(["run", *ARGS, "--data", str(audio_folder), "--experiment", "shared", "--register", "tiny-genre",
               "--json"], node_env(stack, tmp_path / "node-a"))
    b = start(["run", *ARGS[:6], "6", *ARGS[7:], "--data", str(audio_folder), "--experiment", "shared", "--json"],
              node_env(stack, tmp_path / "node-b"))
    (rc_a, out_a, err_a), (rc_b, out_b, err_b) = finish(a), finish(b)
    assert rc_a == 0, err_a
    assert rc_b == 0, err_b
    FULL.update(json.loads(out_a))
    runs = runs_of(stack, "shared")
    assert sorted(r.data.tags["zoo.seed"] for r in runs) == ["5", "6"]
    assert all(r.info.status == "FINISHED" for r in runs)
    for r in runs:  # artifacts went through the server, not to a node's disk
        assert r.info.artifact_uri.startswith("mlflow-artifacts:/")
        assert {f.path for f in client(stack).list_artifacts(r.info.run_id)} >= {"model", "reports"}
    assert f"of {stack.uri}" in err_a and "registered: 'tiny-genre' version 1" in err_a

    node_c = node_env(stack, tmp_path / "node-c")  # a third machine: none of the others' folders
    wav = next(Path(audio_folder).rglob("*.wav"))
    done = zoo(["predict", "tiny-genre", str(wav), "--format", "json"], node_c)
    assert done.returncode == 0, done.stderr
    (file,) = json.loads(done.stdout)["files"]  # a prediction, from the model the server holds
    assert file["predictions"]["genre"]["top"][0]["probability"] > 0
    done = zoo(["compare", "--experiment", "shared", "--runs"], node_c)
    assert done.returncode == 0, done.stderr
    assert all(r.info.run_id in done.stdout for r in runs)


def test_a_run_killed_by_sigkill_is_ended_killed_and_resumes_to_the_uninterrupted_result(stack, audio_folder,
                                                                                          tmp_path):
    if not FULL:
        pytest.skip("needs the uninterrupted run of the first test")
    env = node_env(stack, tmp_path / "node-a")
    # SIGKILL right after the second epoch's checkpoint: nothing in the process can end its run.
    script = ("import os, signal, sys\n"
              "from zoo.engine import checkpoint as ck\n"
              "real, saves = ck.Checkpoint.save, []\n"
              "def save(self, state):\n"
              "    path = real(self, state); saves.append(1)\n"
              "    if len(saves) == 2: os.kill(os.getpid(), signal.SIGKILL)\n"
              "    return path\n"
              "ck.Checkpoint.save = save\n"
              "from zoo.cli import main\n"
              "sys.exit(main(sys.argv[1:]))\n")
    killed = subprocess.run([sys.executable, "-c", script, "run", *ARGS, "--data", str(audio_folder),
                             "--experiment", "shared-cut"], env=env, capture_output=True, text=True, timeout=300)
    SEEN.extend([killed.stdout, killed.stderr])
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (run,) = runs_of(stack, "shared-cut")
    assert run.info.status == "RUNNING"

    done = zoo(["compare", "--experiment", "shared-cut"], env)  # the node it ran on finds its process gone
    assert done.returncode == 0, done.stderr
    after = client(stack).get_run(run.info.run_id)
    assert after.info.status == "KILLED" and "is gone" in after.data.tags["zoo.failure"]

    done = zoo(["run", "--resume", run.info.run_id[:8], "--json"], env)
    assert done.returncode == 0, done.stderr
    resumed = json.loads(done.stdout)
    final = client(stack).get_run(run.info.run_id)
    assert final.info.status == "FINISHED" and final.data.tags["zoo.resumed"] == "1"
    assert resumed["per_seed"][0]["epochs"] == FULL["per_seed"][0]["epochs"] == 4
    assert resumed["per_seed"][0]["test"] == pytest.approx(FULL["per_seed"][0]["test"], abs=TOLERANCE)
    steps = [m.step for m in client(stack).get_metric_history(run.info.run_id, "train.loss")]
    assert sorted(set(steps)) == [1, 2, 3, 4]


def test_two_processes_train_one_model_tracked_on_the_server(stack, audio_folder, tmp_path):
    done = zoo(["run", *ARGS, "--data", str(audio_folder), "--devices", "2", "--experiment", "shared-ddp"],
               node_env(stack, tmp_path / "node-a"))
    assert done.returncode == 0, done.stderr
    (run,) = runs_of(stack, "shared-ddp")
    assert run.info.status == "FINISHED" and run.data.tags["zoo.world_size"] == "2"
    assert {f.path for f in client(stack).list_artifacts(run.info.run_id)} >= {"model", "reports"}


def test_a_two_trial_sweep_records_every_trial_on_the_server(stack, audio_folder, tmp_path):
    pytest.importorskip("ray")
    done = zoo(["sweep", "lstm+mel:genre", "--param", "backbone.hidden=grid:8,12", "--trials", "1", "--epochs", "2",
                "--grace", "2", "--batch-size", "8", "--set", "backbone.layers=1", "--data", str(audio_folder), "--cpus", "2",
                "--no-progress", "--experiment", "shared-sweep"], node_env(stack, tmp_path / "node-a"), timeout=600)
    assert done.returncode == 0, done.stderr
    runs = runs_of(stack, "shared-sweep")
    (parent,) = [r for r in runs if r.data.tags.get("zoo.kind") == "sweep"]
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(trials) == 2 and all(r.info.status == "FINISHED" for r in [parent, *trials])
    assert parent.data.tags["zoo.sweep.best_run"] in {r.info.run_id for r in trials}
    # --grace 2: ASHA may not stop either trial after its first epoch (a stopped trial packages no model)
    assert not [r for r in trials if "zoo.sweep.stopped" in r.data.tags]
    for r in trials:  # each trial's model went through the server, whichever worker trained it
        assert {f.path for f in client(stack).list_artifacts(r.info.run_id)} >= {"model", "reports"}


def test_a_run_left_running_by_another_node_is_listed_unfinished_not_hidden(stack, tmp_path):
    from zoo.tracking.mlflow import reconcile as rc
    from zoo.tracking.mlflow.tracker import MlflowTracker
    # What a zoo run on gpu-node-7 recorded an hour ago, before that node went away without ending it.
    started = rc.now_ms() - 3600_000
    tags = {**rc.process_tags(), rc.HOST_TAG: "gpu-node-7", rc.PID_TAG: "4242", rc.SEEN_TAG: str(started + 60_000),
            "zoo.spec": "lstm+mel:genre", "zoo.kind": "run"}
    run_id = client(stack).create_run(MlflowTracker("shared-ghost", uri=stack.uri).experiment_id,
                                      start_time=started, tags=tags, run_name="lstm+mel:genre seed 0").info.run_id
    done = zoo(["compare", "--experiment", "shared-ghost"], node_env(stack, tmp_path / "node-a"))
    assert done.returncode == 0, done.stderr
    assert "unfinished runs (1; not in the table):" in done.stdout
    words = " ".join(done.stdout.split())  # the listing folds long lines to 120 columns
    assert run_id in words and "on host gpu-node-7" in words and "last seen 59 min ago" in words
    assert client(stack).get_run(run_id).info.status == "RUNNING"  # this node cannot see gpu-node-7's processes


def test_zoo_ui_on_the_server_prints_its_address_and_starts_none(stack, tmp_path):
    home = tmp_path / "node-a"
    done = zoo(["ui", "--experiment", "shared"], node_env(stack, home), timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"MLflow UI: {stack.uri}  (the tracking server's own UI" in done.stdout
    assert f"experiment shared: {stack.uri}/#/experiments/" in done.stdout
    assert not list(home.glob("mlflow/ui-*.log"))  # no local server was started


def test_an_error_naming_a_store_masks_its_password(stack, tmp_path):
    # The database itself as the store, its real password in the URI (MLflow retries a wrong password for
    # about 100 s before it gives up, so the error here is the zoo's own: an experiment that is not there).
    direct = stack.db.uri.replace("postgresql://", "postgresql+psycopg://")
    done = zoo(["compare", "--experiment", "not-there"], node_env(stack, tmp_path / "n", MLFLOW_TRACKING_URI=direct),
               timeout=120)
    assert done.returncode == 2 and "no experiment 'not-there'" in done.stderr
    assert "zoo:***@127.0.0.1" in done.stderr and stack.db.password not in done.stdout + done.stderr
    wrong = "wrong-" + os.urandom(6).hex()
    closed = f"http://zoo:{wrong}@127.0.0.1:{pgstack.free_port()}"
    # MLflow retries a refused connection for about two minutes by default: once, at once, is enough here.
    done = zoo(["run", *ARGS, "--limit", "6", "--experiment", "nowhere"],
               node_env(stack, tmp_path / "n", MLFLOW_TRACKING_URI=closed, MLFLOW_HTTP_REQUEST_MAX_RETRIES="1",
                        MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR="0"), timeout=300)
    assert "zoo:***@127.0.0.1" in done.stderr  # the store named, its password masked
    assert done.returncode != 0 and wrong not in done.stdout + done.stderr


def test_no_password_in_any_output_log_param_or_tag(stack):
    c = client(stack)
    secrets = [stack.db.password, CLIENT_SECRET]
    recorded = []
    for exp in c.search_experiments():
        for run in c.search_runs([exp.experiment_id]):
            recorded += [*run.data.params.values(), *run.data.tags.values(), run.info.artifact_uri]
    assert recorded and len(SEEN) > 2  # something to look through, whichever tests ran before
    for text in [*SEEN, *recorded, *(p.read_text() for p in stack.home.glob("mlflow/server-*.log"))]:
        for secret in secrets:
            assert secret not in text


# -- no PostgreSQL needed ------------------------------------------------------------------------------
def test_a_uri_is_shown_without_its_password():
    assert redact_uri("postgresql+psycopg://lab:hunter2@db:5432/mlflow?sslmode=require") == \
        "postgresql+psycopg://lab:***@db:5432/mlflow?sslmode=require"
    assert redact_uri("http://mlflow.lab:5000") == "http://mlflow.lab:5000"
    assert "tok3n" not in redact_uri("postgresql://db/mlflow?password=tok3n")
    assert scrub("no store at https://me:s3cr3t@mlflow.lab/ (s3cr3t)", environ={"PGPASSWORD": "s3cr3t"}) == \
        "no store at https://me:***@mlflow.lab/ (***)"


def test_zoo_server_without_a_postgresql_driver_says_what_to_install(monkeypatch):
    from zoo.tracking.mlflow import server
    monkeypatch.setattr(server, "_installed", lambda module: False)
    with pytest.raises(ConfigError) as err:
        server.database_uri("postgresql://lab:hunter2@db:5432/mlflow")
    assert 'pip install -e ".[server]"' in str(err.value) and "hunter2" not in str(err.value)
    monkeypatch.setattr(server, "_installed", lambda module: module == "psycopg")
    assert server.database_uri("postgres://lab@db/mlflow") == "postgresql+psycopg://lab@db/mlflow"


def test_zoo_server_allows_this_machines_names_on_its_port():
    from zoo.tracking.mlflow import server
    hosts = server.allowed_hosts("0.0.0.0", 5005, "mlflow.lab.org:*").split(",")
    assert "localhost:5005" in hosts and "127.0.0.1:5005" in hosts and hosts[-1] == "mlflow.lab.org:*"
    assert f"{__import__('socket').gethostname()}:5005" in hosts
