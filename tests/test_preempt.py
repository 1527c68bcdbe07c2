"""Preemptible multi-process runs: a torchrun job (``zoo run --devices 2``) stopped by SIGTERM is ended KILLED
with the reason and exits 75, and ``zoo run --resume`` continues it, on the same or another world size,
to the uninterrupted result; a launcher killed by SIGKILL leaves no rank training; a rank killed by
SIGKILL fails the run with "rank 1 of 2 killed by SIGKILL".

Each fault is injected for real, at a known point: a ``sitecustomize`` on the subprocesses' PYTHONPATH
(the ranks inherit it) sends the signal right after the second epoch's checkpoint (or, in rank 1, its
second epoch). Every subprocess gets its own ZOO_HOME and MLFLOW_TRACKING_URI through its ``env``.
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
import torch
from mlflow.tracking import MlflowClient

from zoo.engine.preempt import EXIT_REQUEUE

# As tests/test_ddp.py: no dropout, batch norm or per-rank augmentation, so one process and two agree.
SMALL = ["lstm+mel:genre", "--epochs", "5", "--patience", "0", "--seed", "5", "--workers", "1", "--no-progress",
         "--set", "backbone.hidden=8", "--set", "backbone.layers=1", "--set", "task.dropout=0",
         "--set", "backbone.conv_layers=0", "--set", "train.crop_frames=0", "--set", "train.mixup=0",
         "--set", "train.time_masks=0", "--set", "train.freq_masks=0", "--set", "train.batch_size=8"]
TOLERANCE = 1e-6
"""Resumed on the same world size against uninterrupted: as the single-process resume (tests/test_resume.py)."""
OTHER_WORLD = 1e-5
"""Resumed in one process against two uninterrupted: the DDP tolerance of tests/test_ddp.py."""

FAULTS = '''
import os, signal
fault = os.environ.get("ZOO_TEST_FAULT", "")
rank = os.environ.get("RANK")
if rank is not None and os.environ.get("ZOO_TEST_PIDS"):
    open(os.path.join(os.environ["ZOO_TEST_PIDS"], rank), "w").write(str(os.getpid()))
if fault in ("term-launcher", "kill-launcher") and rank == "0":
    from zoo.engine import checkpoint as ck
    real, saves = ck.Checkpoint.save, []
    def save(self, state):
        path = real(self, state); saves.append(1)
        if len(saves) == 2:
            os.kill(os.getppid(), signal.SIGTERM if fault == "term-launcher" else signal.SIGKILL)
        return path
    ck.Checkpoint.save = save
if fault == "kill-rank1" and rank == "1":
    from zoo.engine import distributed as d
    real_gather, calls = d.Group.gather, []
    def gather(self, value):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_gather(self, value)
    d.Group.gather = gather
'''


@pytest.fixture
def home(tmp_path) -> Path:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(FAULTS)
    (tmp_path / "pids").mkdir()
    return tmp_path


def env_of(home: Path, fault: str = "") -> dict[str, str]:
    return {**os.environ, "ZOO_HOME": str(home / "zoo"), "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(home / "site"), os.environ.get("PYTHONPATH")])),
            "ZOO_TEST_FAULT": fault, "ZOO_TEST_PIDS": str(home / "pids")}


def zoo(argv, env, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zoo", *argv], env=env, capture_output=True, text=True,
                          timeout=timeout)


def the_run(home: Path, experiment: str):
    c = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    (run,) = c.search_runs([c.get_experiment_by_name(experiment).experiment_id])
    return run


def weights(result: dict) -> dict:
    return torch.load(Path(result["per_seed"][0]["model_dir"]) / "weights.pt", map_location="cpu", weights_only=True)


def assert_same(a: dict, b: dict, tol: float) -> None:
    wa, wb = weights(a), weights(b)
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], atol=tol, rtol=0)
    assert a["per_seed"][0]["epochs"] == b["per_seed"][0]["epochs"]
    assert a["per_seed"][0]["test"] == pytest.approx(b["per_seed"][0]["test"], abs=tol)


def gone(pid: int) -> bool:
    try:
        return "Z" in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True


def wait_gone(pids, timeout=60.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(gone(p) for p in pids):
        time.sleep(0.2)
    return [p for p in pids if not gone(p)]


@pytest.fixture(scope="module")
def full(audio_folder, tmp_path_factory) -> dict:
    """The uninterrupted 2-process run the resumed ones are held against."""
    done = zoo(["run", *SMALL, "--data", str(audio_folder), "--devices", "2", "--experiment", "full", "--json"],
               env_of(tmp_path_factory.mktemp("full")))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_sigterm_stops_a_ddp_run_killed_and_resume_ends_as_the_uninterrupted_run(audio_folder, home, full):

    cut = zoo(["run", *SMALL, "--data", str(audio_folder), "--devices", "2", "--experiment", "cut"],
              env_of(home, "term-launcher"))
    assert cut.returncode == EXIT_REQUEUE, cut.stderr
    run = the_run(home, "cut")
    assert run.info.status == "KILLED"
    assert run.data.tags["zoo.failure"].startswith("Preempted: stopped by SIGTERM")
    assert f"zoo run --resume {run.info.run_id}" in cut.stderr
    checkpoint = Path(run.data.tags["zoo.folder"]) / "seed5" / "checkpoint.pt"
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["epoch"] >= 2 and len(saved["ranks"]) == 2  # every rank's random state, for the resume
    pids = [int(p.read_text()) for p in (home / "pids").iterdir()]
    assert len(pids) == 2 and wait_gone(pids) == []

    resumed = zoo(["run", "--resume", run.info.run_id[:8], "--devices", "2", "--json"], env_of(home))
    assert resumed.returncode == 0, resumed.stderr
    assert the_run(home, "cut").info.status == "FINISHED" and not checkpoint.exists()
    assert_same(json.loads(resumed.stdout), full, TOLERANCE)


def test_a_ddp_run_resumes_in_one_process(audio_folder, home, full):
    cut = zoo(["run", *SMALL, "--data", str(audio_folder), "--devices", "2", "--experiment", "cut"],
              env_of(home, "term-launcher"))
    assert cut.returncode == EXIT_REQUEUE, cut.stderr
    run = the_run(home, "cut")
    assert run.data.tags["zoo.world_size"] == "2"
    resumed = zoo(["run", "--resume", run.info.run_id, "--json"], env_of(home))
    assert resumed.returncode == 0, resumed.stderr
    after = the_run(home, "cut")
    assert after.info.status == "FINISHED"
    assert after.data.tags["zoo.world_size"] == "1"  # it ended in one process (it said 2)
    assert_same(json.loads(resumed.stdout), full, OTHER_WORLD)


def test_a_launcher_killed_by_sigkill_leaves_no_rank_training(audio_folder, home):
    cut = zoo(["run", *SMALL[:2], "200", *SMALL[3:], "--data", str(audio_folder), "--devices", "2",
               "--experiment", "orphans"], env_of(home, "kill-launcher"))
    assert cut.returncode == -signal.SIGKILL
    pids = [int(p.read_text()) for p in (home / "pids").iterdir()]
    assert len(pids) == 2
    assert wait_gone(pids) == [], "ranks kept training after their launcher was killed"
    run = the_run(home, "orphans")
    assert run.info.status == "KILLED", run.data.tags.get("zoo.failure")
    assert "launcher (pid" in run.data.tags["zoo.failure"]


def test_a_rank_killed_by_sigkill_fails_the_run_saying_so(audio_folder, home):
    done = zoo(["run", *SMALL, "--data", str(audio_folder), "--devices", "2", "--experiment", "killed-rank"],
               env_of(home, "kill-rank1"))
    assert done.returncode == 1
    assert "rank 1 of 2 killed by SIGKILL" in done.stderr
    run = the_run(home, "killed-rank")
    assert run.info.status == "FAILED" and run.data.tags["zoo.failure"].startswith("rank 1 of 2 killed by SIGKILL")
    pids = [int(p.read_text()) for p in (home / "pids").iterdir()]
    assert wait_gone(pids) == []
