"""Finding things: `zoo list` patterns and recipes, the embedded set by name and under --limit, `zoo compare`."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from zoo.cli import main
from zoo.data.layout import open_dataset
from zoo.data.readers.embedded import EmbeddedConfig, EmbeddedDataset, choose, plan
from zoo.data.select import select
from zoo.protocols import Clip
from zoo.registry import Registry
from zoo.workspace import Workspace


def zoo(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zoo", *args], env=env, capture_output=True, text=True)


def test_zoo_list_with_a_pattern_lists_the_matching_components_and_recipes(capsys):
    assert main(["list", "*lstm*"]) == 0
    out = capsys.readouterr().out
    assert "backbones (1):" in out and "  lstm " in out and "lab-lstm-mel " in out
    assert "cnn " not in out and "features" not in out


def test_zoo_list_recipes_gives_spec_summary_and_lab_reference(capsys):
    assert main(["list", "recipes"]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.strip().startswith("lab-lstm-mel "))
    assert "lstm+mel:genre" in line and "LSTM on full mel" in line and "lab step 5-6: accuracy 0.32" in line
    assert main(["list", "backbone", "c*", "--json"]) == 0
    assert [r["name"] for r in json.loads(capsys.readouterr().out)] == ["cnn", "cnn-wide"]  # cnn's variant too


def test_a_pattern_that_matches_nothing_says_so(capsys):
    assert main(["list", "*nothing-like-this*"]) == 0
    assert "nothing installed matches" in capsys.readouterr().out


@pytest.mark.parametrize("seed,limit", [(0, 1), (0, 12), (3, 25), (7, 79), (1, 200)])
def test_the_limit_chooses_the_same_clips_as_a_limit_on_the_whole_set(tmp_path, seed, limit):
    config = EmbeddedConfig(size="tiny")
    placeholder = tmp_path / "x.wav"
    placeholder.write_bytes(b"x")
    full = [Clip(id=c, split=s, label=g, audio=placeholder, targets={"valence": 0.5}) for c, g, s in plan(config)]
    chosen = select(full, where="set", limit=limit, seed=seed).clips
    assert [c.id for c in chosen] == choose(config, limit, seed)


def test_data_embedded_with_a_limit_synthesises_only_the_chosen_clips(tmp_path):
    dataset = open_dataset("embedded", settings={"size": "tiny"}, data_dir=tmp_path, limit=10, seed=2,
                           progress=False)
    clips = dataset.clips("frames")
    assert len(clips) == 10 and not dataset.folder.exists()
    assert sorted(p.stem for p in (dataset.clips_folder / "audio").iterdir()) == sorted(c.id for c in clips)
    # The whole set's words, rendered or not: zoo.data.select adds "limited to 10 clips" (the fingerprint
    # and description of a --limit run do not depend on what is on disk).
    assert dataset.describe() == f"embedded synthesised set 'tiny' (10 genres x 8 clips x 3 s, seed 0) at {dataset.folder}"
    # the same bytes as the whole set's files
    whole = EmbeddedDataset(EmbeddedConfig(size="tiny"), tmp_path / "whole", progress=False)
    by_id = {c.id: c for c in whole.clips("frames")}
    for c in clips[:3]:
        assert hashlib.sha256(Path(c.audio).read_bytes()).digest() == \
            hashlib.sha256(Path(by_id[c.id].audio).read_bytes()).digest()
        assert c.split == by_id[c.id].split and c.targets == by_id[c.id].targets


def test_zoo_show_embedded_id_renders_that_clip_only(tmp_path, monkeypatch, capsys):
    # A home of its own: in the session's workspace, other tests render clips of the same set.
    home = Workspace(home=tmp_path / "home")
    for key, value in home.environ().items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "show.png"
    assert main(["show", "embedded:blues-0030", "--out", str(out)]) == 0
    assert out.is_file() and "mel 128 x" in capsys.readouterr().out
    rendered = list((home.data_dir).glob("embedded-*.clips/audio/*.wav"))
    assert [p.stem for p in rendered] == ["blues-0030"]
    assert main(["show", "blues-0030", "--data", "embedded", "--out", str(out)]) == 0
    assert main(["show", "embedded:blues-9999"]) == 2
    assert "no clip 'blues-9999'" in capsys.readouterr().err


# -- zoo compare -----------------------------------------------------------------------------
def _fake_run(c: MlflowClient, exp_id: str, *, group: str, seed: int, dataset: str, clips: int, acc: float) -> str:
    run = c.create_run(exp_id, tags={"zoo.kind": "run", "zoo.spec": "lstm+chroma:genre", "zoo.group": group,
                                     "zoo.dataset": dataset, "zoo.key_metrics": "test.genre.accuracy"})
    rid = run.info.run_id
    c.log_param(rid, "seed", seed)
    c.log_param(rid, "data.clips", clips)
    c.log_param(rid, "backbone.hidden", 16)
    c.log_metric(rid, "test.genre.accuracy", acc)
    c.set_terminated(rid, "FINISHED")
    return rid


@pytest.fixture
def compared(zoo_env, workspace):
    c = MlflowClient(workspace.tracking_uri)
    name = "finding"
    exp = c.get_experiment_by_name(name)
    exp_id = exp.experiment_id if exp else c.create_experiment(name)
    long = "embedded synthesised set 'default' (10 genres x 60 clips x 6 s, seed 0) -> 600 clips at frames rate"
    full = [_fake_run(c, exp_id, group="full", seed=s, dataset=long, clips=600, acc=0.5 + s / 100) for s in (0, 1)]
    limited = [_fake_run(c, exp_id, group="lim", seed=0, dataset=long.replace("600 clips", "120 clips"), clips=120,
                         acc=0.7)]
    return name, full, limited, zoo_env


def test_compare_shows_what_differs_and_full_ids_and_sorts(compared, capsys):
    name, full, limited, _ = compared
    assert main(["compare", "--experiment", name, "--sort", "accuracy", "--wide"]) == 0
    out = capsys.readouterr().out
    rows = [l for l in out.splitlines() if l.startswith("lstm+chroma:genre")]
    assert "data.clips=120" in rows[0] and "data.clips=600" in rows[1]  # 0.7 first
    assert limited[0] in rows[0] and "120 clips at frames rate" in rows[0]
    assert main(["compare", "--experiment", name, "--sort", "nonsense"]) == 2


def test_compare_runs_lists_every_seed_run_and_json_too(compared, capsys):
    name, full, limited, _ = compared
    assert main(["compare", "--experiment", name, "--runs"]) == 0
    out = capsys.readouterr().out
    for rid in full + limited:
        assert rid in out
    assert main(["compare", "--experiment", name, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    group = next(r for r in rows if len(r["run_ids"]) == 2)
    assert set(group["run_ids"]) == set(full) and sorted(group["run_seeds"]) == [0, 1]


def test_compare_piped_into_head_ends_without_a_traceback(compared):
    name, _, _, env = compared
    cmd = f"{sys.executable} -m zoo compare --experiment {name} --runs | head -1"
    for _ in range(3):  # the pipe must close while zoo still writes: repeat to make that likely
        done = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], env=env, capture_output=True, text=True)
        assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
        assert done.stdout.startswith("lstm+chroma:genre")
