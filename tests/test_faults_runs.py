"""Fault injection (the Trust issue), processes and the run store: kill what the zoo started, and
check that no run stays RUNNING as a ghost, no child process outlives its parent, and two first
runs at once both get a store.

One section per fault class; each test injects the fault for real (SIGKILL, SIGTERM, SIGHUP, two
processes released at the same instant) and checks the outcome. Every subprocess gets its own
ZOO_HOME and MLFLOW_TRACKING_URI through its ``env``.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from datafixtures import write_label_folders
from zoo.cli import main
from zoo.errors import ConfigError
from zoo.processes import ProcessId, children, group_alive, guard_descendants, identity, this_host, why_gone
from zoo.tracking import FAILURE_TAG
from zoo.tracking.mlflow import reconcile as rc
from zoo.tracking.mlflow.compare import compare_rows, failed_runs, unfinished_runs
from zoo.tracking.mlflow.store import client
from zoo.tracking.mlflow.tracker import MlflowTracker

QUICK = ["--set", "backbone.hidden=8", "--set", "backbone.layers=1", "--set", "train.batch_size=8",
         "--no-progress", "--patience", "0"]


@pytest.fixture
def home(tmp_path, mlflow_template) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    shutil.copy(mlflow_template, folder / "mlflow.db")
    return folder


@pytest.fixture(scope="module")
def audio(tmp_path_factory) -> Path:
    """GTZAN-style folder: 3 labels x 6 clips of 1.5 s."""
    root = tmp_path_factory.mktemp("audio")
    write_label_folders(root, ("blues", "jazz", "rock"), per_label=6)
    return root


@pytest.fixture(scope="module")
def long_audio(tmp_path_factory) -> Path:
    """3 labels x 8 clips of 12 s: extraction by two workers lasts a few seconds, time to kill it."""
    root = tmp_path_factory.mktemp("long-audio")
    write_label_folders(root, ("blues", "jazz", "rock"), per_label=8, seconds=12.0)
    return root


def uri_of(home: Path) -> str:
    return f"sqlite:///{home / 'mlflow.db'}"


def env_of(home: Path) -> dict[str, str]:
    """The environment of a zoo subprocess working in ``home`` (the test's own is left alone)."""
    return {**os.environ, "ZOO_HOME": str(home), "MLFLOW_TRACKING_URI": uri_of(home),
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


def zoo(*argv: str, home: Path, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "zoo", *argv], env=env_of(home), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


def wait_for(condition, proc: subprocess.Popen | None = None, timeout: float = 120.0, what: str = "it"):
    """Poll ``condition()`` until it returns something truthy; fail if ``proc`` ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the zoo process ended (code {proc.returncode}) before {what}:\n{proc.stdout.read()}")
        time.sleep(0.2)
    pytest.fail(f"{what} did not happen within {timeout:.0f} s")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def kill_hard(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait(timeout=30)
    proc.stdout.close()


needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds child processes in /proc")


# -- ghost runs: a run whose process died without ending it ---------------------------------------
@needs_proc
def test_a_zoo_run_killed_mid_training_is_ended_killed_by_the_next_compare(home, audio, monkeypatch, capsys):
    uri = uri_of(home)
    proc = zoo("run", "lstm+chroma:genre", "--data", str(audio), "--epochs", "100000", "--seeds", "2",
               "--workers", "1", "--experiment", "ghost", *QUICK, home=home)
    store = MlflowClient(uri)

    def training():
        exp = store.get_experiment_by_name("ghost")
        runs = store.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'") if exp else []
        return runs if any("train.loss" in r.data.metrics for r in runs) else None

    running = wait_for(training, proc, what="training began")
    kill_hard(proc)  # SIGKILL: nothing in the process can end its runs
    assert {r.info.status for r in running} == {"RUNNING"} and len(running) == 2  # the parent and seed 0

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("ZOO_HOME", str(home))
    assert main(["compare", "--experiment", "ghost"]) == 0
    out = capsys.readouterr().out
    reason = f"process {proc.pid} on host {this_host()} is gone (killed, OOM or crashed)"
    assert "no finished runs" in out and "unfinished runs (2; not in the table):" in out
    words = " ".join(out.split())  # the listing folds long lines to 120 columns
    for r in running:
        assert f"{r.info.run_id} {r.info.run_name} KILLED now: {reason}" in words
        after = store.get_run(r.info.run_id)
        assert after.info.status == "KILLED" and after.data.tags[FAILURE_TAG].startswith(reason)
        assert "ended KILLED by zoo compare" in after.data.tags[FAILURE_TAG]
        assert after.info.end_time >= after.info.start_time
    assert main(["compare", "--experiment", "ghost", "--failed"]) == 0
    failed = capsys.readouterr().out
    assert all(f"{r.info.run_id}  lstm+chroma:genre: KILLED {reason}" in failed for r in running)
    assert main(["compare", "--experiment", "ghost"]) == 0
    assert "unfinished" not in capsys.readouterr().out  # ended once: now it is a killed run, listed by --failed


def _started(home: Path, experiment: str, name: str, tags: dict[str, str] | None = None) -> str:
    """A run started by this process, its process record then edited to ``tags``."""
    tracker = MlflowTracker(experiment, uri=uri_of(home))
    run_id = tracker.start_run(name, {"zoo.spec": "lstm+chroma:genre", "zoo.kind": "run"})
    if tags:
        tracker.set_tags(run_id, tags)
    return run_id


def test_a_run_records_its_process_and_is_left_running_while_that_process_lives(home):
    run_id = _started(home, "alive", "mine")
    tags = MlflowClient(uri_of(home)).get_run(run_id).data.tags
    assert rc.recorded_process(tags) == identity()
    assert int(tags[rc.SEEN_TAG]) > 0
    (row,) = unfinished_runs("alive", uri=uri_of(home))
    assert row["status"] == "RUNNING" and row["pid"] == os.getpid()
    assert f"process {os.getpid()} on this host" in row["reason"]


def test_a_reused_pid_is_told_from_the_process_that_started_the_run(home):
    # This test's own pid stands for one the kernel gave again: alive, but started at another time.
    run_id = _started(home, "reused", "old", {rc.STARTED_TAG: "ticks:1"})
    assert failed_runs("reused", uri=uri_of(home))[0]["status"] == "KILLED"
    reason = MlflowClient(uri_of(home)).get_run(run_id).data.tags[FAILURE_TAG]
    assert f"pid {os.getpid()} now belongs to another process" in reason


def test_a_run_of_another_host_stays_running_and_is_listed_unfinished(home):
    run_id = _started(home, "remote", "far", {rc.HOST_TAG: "gpu-box-7", rc.PID_TAG: "1"})
    other = _started(home, "remote", "older zoo", {rc.HOST_TAG: "", rc.PID_TAG: ""})
    rows = {r["run_id"]: r for r in unfinished_runs("remote", uri=uri_of(home))}
    assert rows[run_id]["status"] == "RUNNING" and "on host gpu-box-7" in rows[run_id]["reason"]
    assert "checks only the processes it can see" in rows[run_id]["reason"]
    assert rows[other]["status"] == "RUNNING" and "no process recorded" in rows[other]["reason"]
    assert MlflowClient(uri_of(home)).get_run(run_id).info.status == "RUNNING"
    assert compare_rows("remote", uri=uri_of(home)) == []


def test_a_process_is_gone_after_a_reboot_even_if_its_pid_lives():
    me = identity()
    assert why_gone(me) is None
    assert "restarted" in why_gone(me._replace(boot="another-boot"))
    assert why_gone(ProcessId("gpu-box-7", 1, "", "")) is None  # another host: the zoo cannot tell
    assert why_gone(me._replace(pid=1, pidns="pid:[1]")) is None  # a container's pid 1 is not ours to judge


# -- orphans: children of a killed zoo process -----------------------------------------------------
@needs_proc
def test_a_zoo_run_killed_during_extraction_leaves_no_worker(home, long_audio):
    proc = zoo("run", "lstm+chroma:genre", "--data", str(long_audio), "--workers", "2", "--epochs", "1",
               "--no-track", *QUICK, home=home)
    cache = home / "cache"

    def extracting():
        workers = [p for p in children(proc.pid) if "spawn_main" in cmdline(p)]
        written = list(cache.rglob("*.npy")) if cache.exists() else []
        return workers if len(workers) == 2 and written else None

    workers = [identity(p) for p in wait_for(extracting, proc, what="the workers computed features")]
    helpers = [identity(p) for p in children(proc.pid) if p not in {w.pid for w in workers}]
    assert all(why_gone(w) is None for w in workers)  # alive, mid-extraction, when their parent is killed
    kill_hard(proc)
    wait_for(lambda: all(why_gone(p) for p in workers + helpers), timeout=20,
             what=f"workers {[w.pid for w in workers]} ending after their parent was SIGKILLed")


DEAF_CHILD = """
import os, signal, subprocess, sys, time
from zoo.processes import guard_descendants
# out of reach of its parent's process group, and deaf to SIGTERM: as a service's agents can be
child = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                                                "time.sleep(300)"], start_new_session=True)
print(child.pid, flush=True)
"""


def _owner_of_a_deaf_child(tmp_path, then: str) -> tuple[subprocess.Popen, ProcessId]:
    """A process that starts a child deaf to SIGTERM in a session of its own, then runs ``then``."""
    script = tmp_path / "owner.py"
    script.write_text(DEAF_CHILD + then)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    return proc, identity(int(proc.stdout.readline()))


@needs_proc
def test_what_a_guarded_process_started_ends_when_it_is_sigkilled_and_so_does_the_guard(tmp_path):
    proc, child = _owner_of_a_deaf_child(tmp_path, "guard_descendants()\ntime.sleep(300)\n")
    time.sleep(2.5)  # the guard notes the owner's processes every second
    started = [identity(p) for p in children(proc.pid)]
    assert child.pid in {p.pid for p in started} and len(started) == 2, "the guard and the child run under the owner"
    kill_hard(proc)
    wait_for(lambda: all(why_gone(p) for p in [child, *started]), timeout=20,
             what="the guarded child (SIGKILLed after ignoring SIGTERM) and the guard ending after their owner")


@needs_proc
def test_an_owner_killed_the_moment_its_guard_started_is_still_covered(tmp_path):
    # killed as soon as the guard is asked for, before the guard could look for itself
    proc, child = _owner_of_a_deaf_child(tmp_path, "guard_descendants()\nos.kill(os.getpid(), signal.SIGKILL)\n")
    proc.wait(timeout=60)
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    wait_for(lambda: why_gone(child), timeout=20, what="the child of an owner SIGKILLed right after its guard began")


@needs_proc
def test_a_guard_leaves_everything_alone_while_its_owner_lives():
    from zoo.processes import start_time
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    guard = guard_descendants()
    try:
        # handed what runs now (an owner killed before the guard's first look is covered), and watching
        assert f"{sleeper.pid}={start_time(sleeper.pid)}" in guard.args and guard.stdout.closed
        time.sleep(2.5)
        assert guard.poll() is None and sleeper.poll() is None
    finally:
        from zoo.processes import stop_guard
        stop_guard(guard)
        sleeper.kill()
        sleeper.wait()
    assert guard.returncode is not None


def test_a_stop_signal_is_named_inside_its_block_only():
    from zoo.processes import StopSignal, stop_received, stop_signals
    from zoo.tracking import failure_reason
    with pytest.raises(StopSignal):
        with stop_signals():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
            except KeyboardInterrupt:  # what a library may raise in place of ours
                assert failure_reason(KeyboardInterrupt()) == "stopped by SIGTERM"
                raise KeyboardInterrupt from None
    assert stop_received() is None  # a later Ctrl-C is Ctrl-C
    assert failure_reason(KeyboardInterrupt()) == "interrupted by the user (Ctrl-C / SIGINT)"


def test_handlers_a_library_puts_in_place_are_undone_after_the_block():
    from zoo.processes import keep_signal_handlers
    before = signal.getsignal(signal.SIGTERM)
    with keep_signal_handlers():
        signal.signal(signal.SIGTERM, lambda *_: None)  # as ray.init does
    assert signal.getsignal(signal.SIGTERM) is before


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_proc
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_zoo_ui_stops_its_server_on_a_signal_as_on_ctrl_c(home, sig):
    port = _free_port()
    proc = zoo("ui", "--port", str(port), home=home)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    try:
        wait_for(lambda: any(line.startswith("MLflow UI: ") for line in lines), proc, what="the UI was ready")
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search",
                                     data=b'{"max_results": 1}', headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
        (server,) = children(proc.pid)
        assert os.getpgid(server) == server  # the server leads its own group, its web worker in it
    except BaseException:
        proc.kill()
        raise
    proc.send_signal(sig)
    proc.wait(timeout=60)
    out = "".join(lines)
    assert proc.returncode == 0, out
    assert f"stopping the MLflow UI ({sig.name})" in out
    assert not group_alive(server), f"a process of the server's group {server} outlived zoo ui"
    with socket.socket() as s:  # the port is free again
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()


# -- the store: created by two first runs at once -------------------------------------------------
RACER = r"""
import sys, time
from pathlib import Path
from zoo.tracking.mlflow.tracker import MlflowTracker

folder, name, rounds = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
for k in range(rounds):
    (folder / f"ready-{k}-{name}").touch()
    while not (folder / f"go-{k}").exists():
        time.sleep(0.002)
    tracker = MlflowTracker("race", uri=f"sqlite:///{folder / f'store{k}' / 'mlflow.db'}")
    run_id = tracker.start_run(f"{name} round {k}")
    tracker.end_run(run_id)
    print(k, run_id, flush=True)
"""


@pytest.mark.slow  # each round creates a store (MLflow's migrations: seconds), one after the other
def test_two_first_runs_at_once_both_create_the_store_and_are_recorded(tmp_path):
    rounds, names = 3, ("a", "b")
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(tmp_path), name, str(rounds)],
                              env=env_of(tmp_path / f"home-{name}"), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for name in names]
    try:
        for k in range(rounds):  # a barrier: both wait at the start line, then go at the same instant
            for p, name in zip(procs, names):
                wait_for(lambda: (tmp_path / f"ready-{k}-{name}").exists(), p, what=f"{name} ready for round {k}")
            (tmp_path / f"go-{k}").touch()
        outs = [p.communicate(timeout=120)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], "\n".join(outs)
    for k in range(rounds):
        store = MlflowClient(f"sqlite:///{tmp_path / f'store{k}' / 'mlflow.db'}")
        runs = store.search_runs([store.get_experiment_by_name("race").experiment_id])
        assert sorted(r.info.run_name for r in runs) == [f"a round {k}", f"b round {k}"]
        assert {r.info.status for r in runs} == {"FINISHED"}
        assert sorted(e.name for e in store.search_experiments()) == ["Default", "race"]  # "race" made once


def test_a_store_that_cannot_be_created_is_one_clear_error(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be")
    db = blocker / "mlflow" / "mlflow.db"
    with pytest.raises(ConfigError, match=rf"cannot create the MLflow store {db}: .*point ZOO_HOME"):
        client(f"sqlite:///{db}")
