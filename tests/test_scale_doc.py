"""docs/scale.md's team and cluster commands run verbatim: ``zoo server`` on a real PostgreSQL, a node's
environment and commands against it, and the two-node torchrun line as two agents (``--nnodes 2``) on
this machine. The blocks are read from docs/scale.md (those marked ``tested: tests/test_scale_doc.py``)
and run with ``bash -e``; the variables they use (``$DB_HOST``, ``$SHARED``, ``$NODE_RANK``...) are what
a job script sets, here set for this machine. Where PostgreSQL cannot start, this skips saying why.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

import pgstack
from test_doc_snippets import BLOCKS

MARK = "tests/test_scale_doc.py"
SCALE = [b for b in BLOCKS if b.doc == "docs/scale.md" and b.mark == "tested" and b.why == MARK]


def bash(code: str, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(["bash", "-e", "-c", code], env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, timeout: int = 600) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def test_the_team_server_and_two_node_commands_of_docs_scale_run_verbatim(audio_folder, tmp_path):
    assert len(SCALE) == 3, "docs/scale.md: the server, the node, the two-node blocks"
    why = pgstack.unavailable()
    if why:
        pytest.skip(f"no PostgreSQL here: {why}")
    db = pgstack.Postgres().start()
    group = None
    try:
        port = pgstack.free_port()
        base = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "ZOO_HOME", "PGPASSWORD")}
        base["HOME"] = str(tmp_path / "home")  # nothing reaches the user's ~/.zoo, whatever a block leaves unset
        server_env = {**base, "DB_PASSWORD": db.password, "DB_HOST": "127.0.0.1", "DB_PORT": str(db.port),
                      "MLFLOW_PORT": str(port), "ZOO_HOME": str(tmp_path / "server-home")}
        out = finish(bash(SCALE[0].code, server_env, tmp_path), 180)
        group = int(re.search(r"kill -- -(\d+)", out).group(1))
        assert db.password not in out and f"export MLFLOW_TRACKING_URI=http://" in out

        shared = tmp_path / "shared"
        shutil.copytree(audio_folder, shared / "audio")
        node_env = {**base, "MLFLOW_HOST": "127.0.0.1", "MLFLOW_PORT": str(port), "SHARED": str(shared),
                    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
        out = finish(bash(SCALE[1].code, node_env, tmp_path))
        assert "registered: 'genre-small' version 1" in out
        assert f"MLflow UI: http://127.0.0.1:{port}" in out

        # the same job script: the node's exports above are in force
        two = {**node_env, "HEAD": "127.0.0.1", "HEAD_PORT": str(pgstack.free_port()),
               "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}", "ZOO_HOME": str(shared / "zoo")}
        agents = [bash(SCALE[2].code, {**two, "NODE_RANK": str(r)}, tmp_path) for r in (0, 1)]
        outs = [finish(a) for a in agents]
        assert "test results" in outs[0]

        from mlflow.tracking import MlflowClient
        c = MlflowClient(f"http://127.0.0.1:{port}")
        (run,) = c.search_runs([c.get_experiment_by_name("two-nodes").experiment_id])
        assert run.info.status == "FINISHED" and run.data.tags["zoo.world_size"] == "2"
        assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
    finally:
        leftover = []
        if group is not None:  # the server started in the background: stopped as its line says
            subprocess.run(["kill", "--", f"-{group}"], check=False)
            pgstack._kill_and_reap(group)
            leftover = pgstack.group_members(group)
            for pid in leftover:
                os.kill(pid, signal.SIGKILL)
        db.stop()
    assert leftover == [], "the server's processes outlived its kill line"
