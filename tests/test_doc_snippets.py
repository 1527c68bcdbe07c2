"""Python blocks of docs/ run verbatim, as a reader would paste them into a script: the pyfunc snippet of
docs/predict.md and the config-file snippet of docs/python-api.md (each once failed as written)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from datafixtures import music, write_audio
from zoo.cli import main

DOCS = Path(__file__).resolve().parents[1] / "docs"
SMALL = ["--set", "backbone.hidden=8", "--set", "backbone.layers=1", "--set", "train.batch_size=8", "--epochs", "1"]


def block(doc: str, marker: str) -> str:
    """The one ```python block of ``docs/<doc>`` that contains ``marker``, as written."""
    found = [b for b in re.findall(r"```python\n(.*?)```", (DOCS / doc).read_text(), flags=re.S) if marker in b]
    assert len(found) == 1, f"{doc}: {len(found)} python blocks contain {marker!r}"
    return found[0]


def run_script(code: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    script = cwd / "snippet.py"
    script.write_text(code)
    return subprocess.run([sys.executable, str(script)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=400)


def test_the_pyfunc_snippet_of_predict_md_runs_as_written(audio_folder, zoo_env, tmp_path, capsys):
    assert main(["run", "lstm+chroma:genre", "--data", str(audio_folder), "--no-progress", "--workers", "1",
                 *SMALL]) == 0  # a plain `zoo run`, into the default experiment
    capsys.readouterr()
    write_audio(tmp_path / "song.mp3", music(2.0, seed=1))
    write_audio(tmp_path / "other.ogg", music(2.0, seed=2))
    done = run_script(block("predict.md", "mlflow.pyfunc.load_model(f\"runs:/"), tmp_path, zoo_env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "song.mp3" in done.stdout and "other.ogg" in done.stdout and "genre" in done.stdout, done.stdout


def test_the_config_file_snippet_of_python_api_md_runs_as_written(audio_folder, zoo_env, tmp_path, capsys):
    assert main(["run", "lstm+chroma:genre", "--data", str(audio_folder), *SMALL, "--print-config"]) == 0
    (tmp_path / "run.yaml").write_text(capsys.readouterr().out)
    done = run_script(block("python-api.md", 'read_config("run.yaml")'), tmp_path, zoo_env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "spec: lstm+chroma:genre" in done.stdout  # the resolved config it prints
