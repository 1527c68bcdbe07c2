"""`zoo sweep`: the --param grammar, its checks before anything starts, and a real 4-trial sweep on a local Ray."""
from __future__ import annotations

import sys

import pytest

from zoo.cli import main
from zoo.errors import ConfigError
from zoo.sweep.space import parse_param, parse_params, settings_of

TINY = ["--set", "dataset.size=tiny", "--set", "backbone.layers=1", "--set", "backbone.bidirectional=false",
        "--set", "train.warmup=0", "--epochs", "2", "--batch-size", "8"]


@pytest.mark.parametrize("item, kind, values", [
    ("train.lr=loguniform:1e-4:3e-3", "loguniform", (1e-4, 3e-3)),
    ("task.dropout=uniform:0.1:0.5", "uniform", (0.1, 0.5)),
    ("backbone.layers=randint:1:3", "randint", (1, 3)),
    ("backbone.hidden=choice:128,256", "choice", ("128", "256")),
    ("backbone.hidden=grid:8, 16", "grid", ("8", "16")),
])
def test_a_param_is_read_into_its_kind_and_values(item, kind, values):
    p = parse_param(item)
    assert (p.kind, p.values) == (kind, values)
    assert parse_param(p.text()) == p


@pytest.mark.parametrize("item, says", [
    ("train.lr", "expected SCOPE.KEY=KIND:ARGS"),
    ("lr=uniform:0:1", "expected SCOPE.KEY=KIND:ARGS"),
    ("train.lr=logunifrm:1e-4:1e-3", "did you mean 'loguniform'"),
    ("train.lr=uniform:0.5:0.1", "low end 0.5 must be below the high end 0.1"),
    ("train.lr=loguniform:0:1e-3", "loguniform needs both ends > 0"),
    ("train.lr=uniform:0.1", "takes two ends"),
    ("train.lr=uniform:a:1", "'a' is not a number"),
    ("backbone.layers=randint:1:2.5", "not a whole number"),
    ("backbone.hidden=choice:", "needs its values"),
    ("backbone.hidden=choice:8,,16", "an empty value"),
    ("backbone.hidden=choice:8,8", "listed twice"),
    ("dataset.size=choice:tiny,small", "prepared once for the whole sweep"),
])
def test_a_bad_param_is_refused_in_one_line_naming_the_fix(item, says):
    with pytest.raises(ConfigError, match=None) as err:
        parse_param(item)
    assert says in str(err.value) and "\n" not in str(err.value)


def test_a_setting_searched_twice_or_nothing_searched_is_refused():
    with pytest.raises(ConfigError, match="given twice"):
        parse_params(["train.lr=uniform:0.1:0.2", "train.lr=choice:0.1,0.2"])
    with pytest.raises(ConfigError, match="at least one --param"):
        parse_params([])


def test_drawn_values_become_set_scopes():
    assert settings_of({"train.lr": 0.01, "backbone.hidden": "8"}) == {"train": {"lr": 0.01},
                                                                       "backbone": {"hidden": "8"}}


@pytest.mark.parametrize("param, says", [
    ("backbone.hiden=choice:8,16", "did you mean 'hidden'"),
    ("backbone.hidden=choice:8,many", "with backbone.hidden=many"),
    ("train.lr=uniform:-1:0.1", "with train.lr=-1"),
    ("train.epochs=uniform:1:3", "train.epochs takes whole numbers only, and uniform draws fractions between them; "
                                 "search it with train.epochs=randint:1:3"),
    ("backbone.hidden=loguniform:8:64", "backbone.hidden=randint:8:64"),
])
def test_an_unknown_setting_or_bad_value_fails_before_ray_or_mlflow_start(param, says, zoo_env, capsys, workspace):
    code = main(["sweep", "lstm+chroma:genre", "--param", param, *TINY])
    err = capsys.readouterr().err
    assert code == 2 and says in err and len(err.strip().splitlines()) == 1
    assert not (workspace.home / "sweeps").exists()


def test_an_unknown_metric_names_the_valid_ones(zoo_env, capsys):
    code = main(["sweep", "lstm+chroma:genre", "--param", "train.lr=uniform:0.001:0.01", "--metric", "val.mood.f1",
                 *TINY])
    assert code == 2 and "val.genre.accuracy" in capsys.readouterr().err


def test_without_ray_zoo_sweep_says_how_to_install_it_and_exits_2(zoo_env, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    code = main(["sweep", "lstm+chroma:genre", "--param", "train.lr=uniform:0.001:0.01", *TINY])
    err = capsys.readouterr().err
    assert code == 2 and 'pip install "music-zoo[sweep]"' in err


@pytest.fixture
def own(tmp_path, monkeypatch):
    """A workspace of this test alone, set in the environment as a user's shell would have it."""
    from zoo.workspace import Workspace
    ws = Workspace(home=tmp_path / "zoo-home")
    for key, value in ws.environ().items():
        monkeypatch.setenv(key, value)
    return ws


def _refused_before_anything_starts(args, workspace, capsys) -> str:
    code = main(["sweep", "lstm+chroma:genre", "--param", "train.lr=uniform:0.001:0.01", *args, *TINY])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert not (workspace.home / "sweeps").exists()
    from mlflow.tracking import MlflowClient
    runs = MlflowClient(workspace.tracking_uri).search_runs(
        [e.experiment_id for e in MlflowClient(workspace.tracking_uri).search_experiments()])
    assert not [r for r in runs if r.data.tags.get("zoo.kind") == "sweep"], "no sweep run is left RUNNING"
    return err


def test_gpus_per_trial_on_a_machine_without_a_gpu_is_refused_not_waited_for(own, capsys,
                                                                              monkeypatch):
    # Tune would wait forever for a GPU the local Ray does not have, saying nothing.
    import torch
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    err = _refused_before_anything_starts(["--gpus-per-trial", "1"], own, capsys)
    assert "--gpus-per-trial 1" in err and "0 GPU(s)" in err and "--gpus-per-trial 0" in err


def test_more_cpus_per_trial_than_the_local_ray_has_is_refused(own, capsys):
    err = _refused_before_anything_starts(["--cpus", "2", "--cpus-per-trial", "3"], own, capsys)
    assert "--cpus-per-trial 3" in err and "has 2 CPU(s)" in err and "--cpus-per-trial 2 or less" in err


def test_a_ray_client_address_without_ray_client_says_what_to_install(own, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "grpc", None)
    err = _refused_before_anything_starts(["--address", "ray://127.0.0.1:10001"], own, capsys)
    assert 'pip install "ray[client]"' in err


def test_an_address_where_nothing_answers_is_told_at_once(own, capsys):
    import socket
    with socket.socket() as s:  # a port nothing listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        err = _refused_before_anything_starts(["--address", f"127.0.0.1:{port}"], own, capsys)
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in err and "ray start --head" in err


def test_address_auto_without_a_running_cluster_is_one_line_and_the_sweep_run_failed(own, capsys,
                                                                                       monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    code = main(["sweep", "lstm+chroma:genre", "--param", "train.lr=uniform:0.001:0.01", "--address", "auto", *TINY])
    err = capsys.readouterr().err
    assert code == 2 and "--address auto: could not attach" in err and "Traceback" not in err, err
    from mlflow.tracking import MlflowClient
    c = MlflowClient(own.tracking_uri)
    runs = c.search_runs([e.experiment_id for e in c.search_experiments()], "tags.`zoo.kind` = 'sweep'")
    assert [r.info.status for r in runs] == ["FAILED"] and "could not attach" in runs[0].data.tags["zoo.failure"]


def test_an_attached_cluster_short_of_gpus_is_warned_not_refused():
    # An autoscaling cluster may add the nodes a trial waits for.
    from zoo.sweep.driver import SweepPlan, check_resources
    plan = SweepPlan(spec="lstm+chroma:genre", params=(), address="10.0.0.5:6379", gpus_per_trial=1)
    assert "has 0 GPU(s) now" in check_resources(plan, {"CPU": 8.0})
    assert check_resources(plan, {"CPU": 8.0, "GPU": 2.0}) is None


SWEEP_THEN_SLEEP = """
import sys, time
from zoo.sweep.driver import SweepPlan, sweep
from zoo.sweep.space import parse_params
from zoo.workspace import Workspace

def sleeper(config, job):
    print("trial started", flush=True)
    time.sleep(600)

if __name__ == "__main__":  # the extraction's worker processes import this script too
    ws = Workspace(home=sys.argv[1])
    plan = SweepPlan(spec="lstm+chroma:genre", params=parse_params(["train.lr=uniform:0.001:0.01"]),
                     settings={"dataset": {"size": "tiny"}}, train={"epochs": 1}, trials=1, cpus=1,
                     experiment="kill")
    sweep(plan, registry=ws.registry(), workspace=ws, say=lambda line: print(line, flush=True), trainable=sleeper)
"""


@pytest.mark.slow
def test_a_sigkilled_sweep_leaves_no_ray_process_behind(own, tmp_path):
    # Ray's dashboard and runtime-env agents outlived a SIGKILLed driver by minutes: the sweep's guard
    # ends everything the sweep started.
    pytest.importorskip("ray")
    import os
    import signal
    import subprocess
    import time

    from zoo.processes import descendants, start_time
    script = tmp_path / "sweep_then_sleep.py"
    script.write_text(SWEEP_THEN_SLEEP)
    env = {**os.environ, **own.environ()}
    proc = subprocess.Popen([sys.executable, str(script), str(own.home)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    started = []
    try:
        deadline = time.monotonic() + 240
        for line in proc.stdout:
            if "ray: started locally" in line:
                started = [(pid, start_time(pid)) for pid in descendants(proc.pid)]
            if "sweep: run" in line or time.monotonic() > deadline:
                break
        time.sleep(3)  # the trial's worker starts
        started += [(pid, start_time(pid)) for pid in descendants(proc.pid)]
        assert len({pid for pid, _ in started}) >= 3, "a local Ray runs several processes under the sweep"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def left() -> list[int]:
        return [pid for pid, began in started if began and start_time(pid) == began]
    deadline = time.monotonic() + 20
    while left() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left(), f"still running after the sweep was killed: {left()}"
    from mlflow.tracking import MlflowClient

    from zoo.tracking.mlflow.reconcile import end_ghost_runs
    end_ghost_runs(own.tracking_uri, by="zoo compare")  # what the next zoo compare or run does
    c = MlflowClient(own.tracking_uri)
    (run,) = c.search_runs([c.get_experiment_by_name("kill").experiment_id], "tags.`zoo.kind` = 'sweep'")
    assert run.info.status == "KILLED"


@pytest.mark.slow
def test_sigterm_stops_a_sweep_as_ctrl_c_does_and_exits_143(own, tmp_path):
    # ray.init put its own SIGTERM handler in the driver: the sweep aborted (exit 134) with Ray's C++ lines,
    # its runs left RUNNING.
    pytest.importorskip("ray")
    import os
    import signal
    import subprocess
    import time
    proc = subprocess.Popen([sys.executable, "-m", "zoo", "sweep", "lstm+chroma:genre", "--param",
                             "train.lr=uniform:0.001:0.01", "--trials", "1", "--cpus", "1", "--experiment", "term",
                             *TINY[:-4], "--epochs", "100000", "--patience", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "sweep: run" in line:
            break
    assert lines and "sweep: run" in lines[-1], "".join(lines)
    from mlflow.tracking import MlflowClient
    c = MlflowClient(own.tracking_uri)
    experiment = c.get_experiment_by_name("term").experiment_id
    deadline = time.monotonic() + 120
    while len(c.search_runs([experiment])) < 2 and time.monotonic() < deadline:
        time.sleep(1)  # until the trial's run is open
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert "zoo: stopped by SIGTERM" in out and "SIGTERM received" not in out, out
    runs = c.search_runs([experiment])
    assert len(runs) == 2 and {r.info.status for r in runs} == {"KILLED"}, [(r.info.status, r.data.tags) for r in runs]
    assert all("stopped by SIGTERM" in r.data.tags["zoo.failure"] for r in runs)


FAIL_HIDDEN = "20"


def failing_trial(config, job):
    """The zoo's trial, except that one grid value fails (to show the sweep goes on)."""
    from zoo.sweep.trial import run_trial
    if config["backbone.hidden"] == FAIL_HIDDEN:
        raise RuntimeError(f"made to fail: backbone.hidden={FAIL_HIDDEN}")
    run_trial(config, job)


@pytest.mark.slow
def test_a_four_trial_sweep_nests_every_trial_and_finds_the_best(workspace, zoo_env, capsys):
    pytest.importorskip("ray")
    import ray.cloudpickle
    from mlflow.tracking import MlflowClient

    from zoo.sweep.driver import SweepPlan, sweep
    from zoo.tracking import PARENT_TAG
    from zoo.tracking.mlflow.compare import sweep_rows

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    plan = SweepPlan(
        spec="lstm+chroma:genre",
        params=parse_params(["backbone.hidden=grid:8,12,16,20", "train.lr=loguniform:1e-3:1e-2"]),
        settings={"dataset": {"size": "tiny"}, "backbone": {"layers": 1, "bidirectional": False, "conv_layers": 0},
                  "train": {"warmup": 0.0}},
        train={"epochs": 2, "batch_size": 8, "patience": 0}, trials=1, cpus=2, experiment="sweep-test")
    result = sweep(plan, registry=workspace.registry(), workspace=workspace, say=lambda line: None,
                   trainable=failing_trial)

    c = MlflowClient(workspace.tracking_uri)
    parent = c.get_run(result.run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["zoo.kind"] == "sweep"
    assert parent.data.params["sweep.param.train.lr"] == "train.lr=loguniform:0.001:0.01"
    assert parent.data.params["sweep.scheduler"] == "ASHA"
    children = c.search_runs([parent.info.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{result.run_id}'")
    assert len(children) == 4
    failed = [r for r in children if r.info.status == "FAILED"]
    assert len(failed) == 1 and "made to fail" in failed[0].data.tags["zoo.failure"]
    done = [r for r in children if r.info.status == "FINISHED"]
    assert len(done) == 3
    complete = [r for r in done if "final.val.genre.accuracy" in r.data.metrics]
    assert complete, "at least the trial ASHA never stops trains to the end"
    for r in complete:  # a normal zoo run: params, per-epoch metrics, reports and the packaged model
        assert r.data.params["spec"] == "lstm+chroma:genre" and "val.genre.accuracy" in r.data.metrics
        assert {a.path for a in c.list_artifacts(r.info.run_id)} >= {"model", "reports"}
    top = max(r.data.metrics["final.val.genre.accuracy"] for r in complete)
    # the best run has the top score (several trials may share it on a tiny validation split) and
    # the parent names that run and its parameters
    best = next(r for r in complete if r.info.run_id == result.best["run_id"])
    assert result.best["score"] == best.data.metrics["final.val.genre.accuracy"] == top
    assert parent.data.tags["zoo.sweep.best_run"] == result.best["run_id"]
    assert parent.data.metrics["best.val.genre.accuracy"] == result.best["score"]
    assert parent.data.params["best.backbone.hidden"] == best.data.params["sweep.backbone.hidden"]

    rows, again = sweep_rows(result.run_id, uri=workspace.tracking_uri)
    assert again["run_id"] == result.best["run_id"] and rows[0]["run_id"] == result.best["run_id"]
    assert main(["compare", "--sweep", result.run_id, "--experiment", "sweep-test"]) == 0
    out = capsys.readouterr().out
    assert "made to fail" in out and result.best["run_id"][:8] in out

    code = main(["run", "--from-sweep", result.run_id, "--seeds", "2", "--experiment", "sweep-test", "--no-progress"])
    assert code == 0
    rerun = c.search_runs([parent.info.experiment_id], filter_string="tags.`zoo.kind` = 'seeds'")
    assert rerun and rerun[0].data.params["backbone.hidden"] == best.data.params["backbone.hidden"]


def test_a_trial_reports_each_epoch_after_the_next_and_its_last_after_its_run_ended():
    # ASHA may stop a trial at any result it reports: the last epoch's result must reach Tune only once the
    # trial's test score and model are in its run (a trial stopped there ended FINISHED with no model).
    from zoo.sweep.trial import TrialJob, TrialTracker
    events = []

    class Inner:
        durable = True

        def start_run(self, name, tags=None, parent=None):
            return "top" if parent == "parent" else "seed"

        def log_params(self, run_id, params):
            pass

        def log_metrics(self, run_id, metrics, step=None):
            pass

        def log_model(self, run_id, model_dir):
            events.append(("model", run_id))

        def end_run(self, run_id, status="FINISHED"):
            events.append(("end", run_id, status))

    job = TrialJob(spec="cnn+mel:genre", settings={}, train={}, workspace=None, experiment="x", parent="parent",
                   metric="val.genre.accuracy")
    tracker = TrialTracker(Inner(), job, "t1", lambda result: events.append(("report", result["epoch"])))
    top = tracker.start_run("cnn+mel:genre")
    for epoch in (1, 2, 3):
        tracker.log_metrics(top, {"val.genre.accuracy": 0.5 + epoch / 10, "train.loss": 1.0}, step=epoch)
    tracker.log_metrics(top, {"test.genre.accuracy": 0.7})  # no step: not a result for the scheduler
    assert events == [("report", 1), ("report", 2)]
    tracker.log_model(top, "model")
    tracker.end_run(top, "FINISHED")
    assert events[2:] == [("model", "top"), ("end", "top", "FINISHED"), ("report", 3)]
    tracker.end_run(top, "FINISHED")  # nothing held: nothing reported twice
    assert [e for e in events if e[0] == "report"] == [("report", 1), ("report", 2), ("report", 3)]
