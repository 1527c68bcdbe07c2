"""Nothing the zoo does writes into the working folder unless asked: everything goes under ZOO_HOME (or the store
MLFLOW_TRACKING_URI names). Each command runs as a user would, in a fresh process from an empty folder."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SMALL = ["--set", "backbone.hidden=8", "--set", "backbone.layers=1", "--no-progress", "--workers", "1"]


def zoo(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    code = "import sys; from zoo.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_run_register_and_predict_without_a_tracking_uri_leave_the_working_folder_empty(audio_folder, workspace,
                                                                                         tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update({"ZOO_HOME": str(workspace.home), "ZOO_DISABLE_PLUGIN_AUTOLOAD": "0"})
    cwd = tmp_path / "empty"
    cwd.mkdir()
    done = zoo(["run", "lstm+chroma:genre", "--data", str(audio_folder), "--epochs", "1", "--json",
                "--experiment", "working-folder", "--register", "wf-model", *SMALL], cwd, env)
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(cwd)) == []
    run_id = json.loads(done.stdout)["run_id"]
    song = next(Path(audio_folder).rglob("*.wav"))
    for argv in (["register", run_id, "wf-model-2"], ["predict", "wf-model/1", str(song)],
                 ["predict", "models:/wf-model-2/1", str(song)], ["compare", "--experiment", "working-folder"]):
        done = zoo(argv, cwd, env)
        assert done.returncode == 0, (argv, done.stderr)
        assert sorted(os.listdir(cwd)) == [], argv
    assert (workspace.home / "mlflow" / "mlflow.db").is_file()  # where it all went
