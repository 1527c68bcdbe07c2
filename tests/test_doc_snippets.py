"""Every code block of docs/ and README.md runs verbatim under a test, or is marked as an excerpt.

The convention, read from the last non-blank line above a block's opening fence:

* ``<!-- excerpt: WHY -->``: not run; WHY says what it is (a command's output, a synopsis with
  placeholders, a fragment) or why it cannot run here (needs the network, a GPU, a data set not
  shipped; trains for minutes). A marker without a reason fails.
* ``<!-- tested: tests/test_NAME.py -->`` (optionally followed by how): another test runs it verbatim,
  with what it needs set up (that file must exist and name the doc).
* no marker: a ```bash / ```sh block runs with ``bash -e`` in a fresh folder with a fresh zoo
  workspace (``ZOO_HOME``, ``HOME`` and ``MLFLOW_TRACKING_URI`` there; a ``song.mp3`` beside it);
  a ```python block runs as a script in a fresh folder with the session's workspace (the embedded
  set is synthesised once). Each must exit 0.

:func:`test_every_block_runs_or_is_marked` finds every block automatically: a new block fails it
until it can run (a language this file runs) or is marked. Blocks that train use the smallest
settings that show what they show.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from datafixtures import music, write_audio
from zoo.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
RUNS = {"bash": "bash", "sh": "bash", "python": "python"}
_FENCE = re.compile(r"^```([\w+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
_MARK = re.compile(r"^<!--\s*(excerpt|tested):\s*(.*?)\s*-->$")


@dataclass(frozen=True)
class Block:
    doc: str      # path relative to the repository
    line: int     # of the opening fence
    lang: str
    code: str
    mark: str     # "excerpt", "tested" or ""
    why: str      # the marker's text

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}"


def blocks() -> list[Block]:
    """Every fenced block of docs/*.md and README.md, with the marker above it."""
    found = []
    for path in [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]:
        text = path.read_text(encoding="utf-8")
        for m in _FENCE.finditer(text):
            before = [ln.strip() for ln in text[:m.start()].splitlines() if ln.strip()]
            mark = _MARK.match(before[-1]) if before else None
            found.append(Block(str(path.relative_to(ROOT)), text[:m.start()].count("\n") + 1, m.group(1).lower(),
                               m.group(2), mark.group(1) if mark else "", mark.group(2) if mark else ""))
    return found


BLOCKS = blocks()


def test_every_block_runs_or_is_marked():
    problems = []
    for b in BLOCKS:
        if b.mark == "excerpt" and not b.why:
            problems.append(f"{b}: <!-- excerpt: --> says no reason")
        elif b.mark == "tested":
            name = (b.why.split() or [""])[0]  # the file, then what it does with the block if anything
            test = ROOT / name
            if not (name.startswith("tests/") and test.is_file()):
                problems.append(f"{b}: <!-- tested: {b.why} --> names no test file")
            elif Path(b.doc).name not in test.read_text(encoding="utf-8"):
                problems.append(f"{b}: {name} never mentions {Path(b.doc).name}")
        elif not b.mark and b.lang not in RUNS:
            problems.append(f"{b}: a ```{b.lang or '(no language)'} block: give it a language this test runs "
                            f"({', '.join(sorted(RUNS))}) or mark it <!-- excerpt: WHY --> / <!-- tested: FILE -->")
    assert not problems, "\n".join(problems)


RUNNABLE = [b for b in BLOCKS if not b.mark and b.lang in RUNS]


@pytest.mark.slow  # each block is a fresh process; some train (on the tiny set, for an epoch or two)
@pytest.mark.parametrize("block", RUNNABLE, ids=str)
def test_block_runs_as_written(block, workspace, tmp_path):
    folder = tmp_path / "here"
    folder.mkdir()
    write_audio(folder / "song.mp3", music(3.0, seed=1))
    env = {**os.environ, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}  # zoo, as installed
    if RUNS[block.lang] == "bash":  # a fresh workspace, as a new user's shell has
        home = tmp_path / "user"
        env.update(HOME=str(home), ZOO_HOME=str(home / ".zoo"),
                   MLFLOW_TRACKING_URI=f"sqlite:///{home / '.zoo' / 'mlflow' / 'mlflow.db'}")
        command = ["bash", "-e", "-o", "pipefail", "-c", block.code]
    else:
        env.update(workspace.environ())
        (folder / "snippet.py").write_text(block.code)
        command = [sys.executable, "snippet.py"]
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{block} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
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
