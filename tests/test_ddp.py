"""One model trained by two processes under torchrun (gloo on this CPU) matches one process, is tracked once,
and a failing rank ends both processes with the run FAILED for that rank's reason."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from zoo.workspace import Workspace

# No dropout, no batch norm (LSTM): the two ranks' shards of a global batch of 8 then give the
# one-process gradient up to the order of float sums.
SMALL = ["lstm+mel:genre", "--epochs", "2", "--seed", "5", "--workers", "1", "--no-progress",
         "--set", "backbone.hidden=8", "--set", "backbone.layers=1", "--set", "task.dropout=0",
         # the plain LSTM (its conv front end has batch norm) on whole clips: random crops, mixup and
         # masks (the LSTM's recommended training) are drawn per rank, so they would differ by design
         "--set", "backbone.conv_layers=0", "--set", "train.crop_frames=0", "--set", "train.mixup=0",
         "--set", "train.time_masks=0", "--set", "train.freq_masks=0",
         # fp32: in bf16 a batch's sums round differently when it is split over two ranks, so
         # 1-process = 2-process holds to bf16's precision only (where the CPU would choose bf16)
         "--set", "train.precision=fp32",
         "--set", "train.batch_size=8", "--json"]
TOLERANCE = 1e-5
"""Absolute difference allowed between a 1-process and a 2-process parameter after 4 steps."""


def zoo(args, env, timeout=300):
    return subprocess.run([sys.executable, "-m", "zoo", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def runs_of(env, experiment):
    client = MlflowClient(Workspace.from_env(env).tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id])


@pytest.mark.slow  # two training runs, three processes (~35 s on 2 cores)
def test_two_processes_train_the_one_process_model_and_track_one_run(audio_folder, zoo_env):
    one = zoo(["run", *SMALL, "--data", str(audio_folder), "--no-track"], zoo_env)
    assert one.returncode == 0, one.stderr[-3000:]
    two = zoo(["run", *SMALL, "--data", str(audio_folder), "--devices", "2", "--experiment", "ddp-two"], zoo_env)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = json.loads(one.stdout), json.loads(two.stdout)
    assert a["data"]["counts"]["train"] % 8 == 0  # equal shards: the comparison below is exact up to sums
    wa = torch.load(f"{a['per_seed'][0]['model_dir']}/weights.pt", map_location="cpu")
    wb = torch.load(f"{b['per_seed'][0]['model_dir']}/weights.pt", map_location="cpu")
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.allclose(wa[name].float(), wb[name].float(), atol=TOLERANCE), name
    (run,) = runs_of(zoo_env, "ddp-two")  # rank 1 tracked nothing
    assert run.info.status == "FINISHED"
    assert run.data.params["distributed.world_size"] == "2"
    assert run.data.params["distributed.backend"] == "gloo"
    assert run.data.params["distributed.devices"] == "2 x cpu"
    report = open(b["per_seed"][0]["reports"]["classification_report"]).read()
    support = int(re.search(r"accuracy\s+[\d.]+\s+(\d+)", report).group(1))
    assert support == b["data"]["counts"]["test"] == a["data"]["counts"]["test"]  # every test clip, once


BROKEN = """
import os, sys
from zoo.engine import train
if os.environ["RANK"] == "1":
    def broken(self, *args, **kwargs):
        raise RuntimeError("rank one broke on purpose")
    train._Stepper.__call__ = broken
from zoo.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow  # two training processes (~20 s on 2 cores)
def test_a_rank_that_raises_ends_both_processes_and_fails_the_run(audio_folder, zoo_env, tmp_path):
    script = tmp_path / "broken_rank.py"
    script.write_text(BROKEN)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(script), "run", *SMALL, "--data", str(audio_folder), "--experiment", "ddp-broken"],
                          env=zoo_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0  # torchrun returned: no rank was left waiting
    (run,) = runs_of(zoo_env, "ddp-broken")
    assert run.info.status == "FAILED"
    assert "rank 1 of 2" in run.data.tags["zoo.failure"] and "broke on purpose" in run.data.tags["zoo.failure"]


def test_the_gpu_check_says_there_is_no_gpu_and_exits_0():
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is here: bench/gpu_check.py would run its checks")
    proc = subprocess.run([sys.executable, "-m", "bench.gpu_check"], capture_output=True, text=True, timeout=120,
                          cwd=str(Path(__file__).resolve().parents[1]))
    assert proc.returncode == 0 and "no CUDA GPU here" in proc.stdout
