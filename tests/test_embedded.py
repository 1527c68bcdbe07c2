"""The embedded data set: rendered once, atomically, deterministically, through the real entry point."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from zoo.config import make_config
from zoo.data.readers.embedded import (MANIFEST, SIZES, TARGETS, EmbeddedConfig, EmbeddedDataset, assign_splits,
                               is_embedded_set)
from zoo.data.synth import GENRES
from zoo.errors import ConfigError, DataError
from zoo.protocols import Clip, Dataset
from zoo.registry import Registry


def digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``, by relative path."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny set, made through the registered ``embedded`` entry point."""
    root = tmp_path_factory.mktemp("embedded-root")
    dataset = Registry().create("dataset", "embedded", {"size": "tiny"}, root)
    clips = dataset.clips("frames")
    return dataset, clips, root


def test_tiny_set_is_a_dataset_of_real_audio(tiny):
    dataset, clips, root = tiny
    assert isinstance(dataset, Dataset) and dataset.name == "embedded"
    per_genre, seconds = SIZES["tiny"]
    assert len(clips) == len(GENRES) * per_genre and all(isinstance(c, Clip) for c in clips)
    assert Counter(c.label for c in clips) == {g: per_genre for g in GENRES}
    assert dataset.folder == root / "embedded-v1-tiny-seed0"
    for clip in clips[::9]:
        y, sr = sf.read(clip.audio)
        assert sr == 22050 and y.ndim == 1 and len(y) == int(seconds * sr)
        assert 20 * np.log10(np.sqrt(np.mean(y ** 2))) > -40  # not silent
        assert np.abs(y).max() < 1.0
    assert sf.info(clips[0].audio).subtype == "PCM_16"
    assert "tiny" in dataset.describe() and str(dataset.folder) in dataset.describe()


def test_targets_are_in_range_and_vary_within_genres(tiny):
    _, clips, _ = tiny
    for name in TARGETS:
        values = np.array([c.targets[name] for c in clips])
        assert values.min() >= 0.0 and values.max() <= 1.0
        within = [np.std([c.targets[name] for c in clips if c.label == g]) for g in GENRES]
        assert np.mean(within) > 0.03, name  # not just one value per genre
        means = [np.mean([c.targets[name] for c in clips if c.label == g]) for g in GENRES]
        assert np.ptp(means) > 0.2, name  # and genres differ


def test_splits_are_fixed_and_stratified(tiny):
    _, clips, _ = tiny
    for genre in GENRES:
        counts = Counter(c.split for c in clips if c.label == genre)
        assert counts == {"train": 6, "val": 1, "test": 1}
    assert assign_splits(60, 0, 3) == assign_splits(60, 0, 3)
    assert Counter(assign_splits(60, 0, 3)) == {"train": 42, "val": 9, "test": 9}
    assert assign_splits(60, 0, 3) != assign_splits(60, 1, 3)
    assert all(c.split in ("train", "val", "test") for c in clips)
    assert [c.id for c in clips] == [c.id for c in tiny[0].clips("beats")]  # both rates: the same clips


def test_same_seed_gives_byte_identical_files_with_any_number_of_workers(tiny, tmp_path):
    first = tiny[0].folder
    again = EmbeddedDataset(EmbeddedConfig(size="tiny", workers=2), tmp_path, progress=False)
    again.clips("frames")
    assert digest(again.folder) == digest(first)
    manifest = json.loads((first / MANIFEST).read_text())
    assert manifest["seed"] == 0 and len(manifest["clips"]) == 80 and "valence" in manifest["target_formulas"]


def test_second_use_finds_the_set_and_does_not_render_again(tiny):
    dataset, clips, root = tiny
    before = {p: p.stat().st_mtime_ns for p in dataset.folder.rglob("*")}
    again = Registry().create("dataset", "embedded", {"size": "tiny"}, root)
    assert [c.id for c in again.clips("frames")] == [c.id for c in clips]
    assert {p: p.stat().st_mtime_ns for p in dataset.folder.rglob("*")} == before
    assert [p.name for p in root.iterdir()] == ["embedded-v1-tiny-seed0"]  # no temporary folder left


def test_detect_recognises_only_a_finished_set(tiny, tmp_path):
    dataset, _, root = tiny
    spec = Registry().load("dataset", "embedded")
    assert spec.detect(dataset.folder)
    assert not spec.detect(root) and not spec.detect(tmp_path) and not spec.detect(tmp_path / "missing")
    other = tmp_path / "other"
    other.mkdir()
    (other / MANIFEST).write_text(json.dumps({"format": "something-else", "clips": []}))
    assert not spec.detect(other)


def test_a_finished_set_can_be_passed_as_the_root(tiny, tmp_path):
    copy = tmp_path / "my-set"
    shutil.copytree(tiny[0].folder, copy)
    dataset = EmbeddedDataset(EmbeddedConfig(size="large", seed=9), copy)  # the set's own settings win
    assert dataset.folder == copy and len(dataset.clips("frames")) == 80
    assert "'tiny'" in dataset.describe()
    (copy / "audio" / "rock-0003.wav").unlink()
    with pytest.raises(DataError, match=r"rock-0003\.wav.*rm -r"):
        EmbeddedDataset(EmbeddedConfig(), copy).clips("frames")


def test_a_foreign_folder_in_the_way_is_not_overwritten(tmp_path):
    blocker = tmp_path / "embedded-v1-tiny-seed3"
    blocker.mkdir()
    (blocker / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="embedded-v1-tiny-seed3.*no finished embedded set"):
        EmbeddedDataset(EmbeddedConfig(size="tiny", seed=3), tmp_path).clips("frames")
    assert (blocker / "notes.txt").read_text() == "mine"


GENERATE = ("import sys; from pathlib import Path; from zoo.data.readers.embedded import EmbeddedConfig, EmbeddedDataset; "
            "EmbeddedDataset(EmbeddedConfig(size='tiny', seconds=2, seed=5, workers=1), Path(sys.argv[1]), "
            "progress=False).clips('frames')")


def _interruptible() -> None:
    """Ctrl-C must reach the child even when the suite itself was started in the background of a
    shell without job control, which starts it (and so its children) with SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_and_stop(root: Path, sig: int) -> Path:
    """Start a generation in another process, stop it with ``sig`` once a few clips are written;
    return the set folder it was making."""
    proc = subprocess.Popen([sys.executable, "-c", GENERATE, str(root)], env={**os.environ},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_interruptible)
    deadline = time.monotonic() + 90
    try:
        while len(list(root.glob(".*.tmp-*/audio/*.wav"))) < 3:
            assert proc.poll() is None, "the generator ended before it could be interrupted"
            assert time.monotonic() < deadline, "the generator wrote nothing in 90 s"
            time.sleep(0.05)
        proc.send_signal(sig)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return root / "embedded-v1-tiny-2s-seed5"


def test_a_killed_generation_never_looks_finished_and_is_redone(tmp_path):
    folder = _start_and_stop(tmp_path, signal.SIGKILL)
    leftovers = list(tmp_path.glob(".embedded-v1-tiny-2s-seed5.tmp-*"))
    assert not folder.exists() and len(leftovers) == 1
    assert not is_embedded_set(leftovers[0])  # a half set has no manifest
    dataset = EmbeddedDataset(EmbeddedConfig(size="tiny", seconds=2, seed=5), tmp_path, progress=False)
    assert len(dataset.clips("frames")) == 80
    assert dataset.folder == folder and is_embedded_set(folder)
    assert not leftovers[0].exists()  # its process is gone, so its temporary folder was cleared


def test_an_interrupted_generation_cleans_up_after_itself(tmp_path):
    folder = _start_and_stop(tmp_path, signal.SIGINT)
    assert not folder.exists() and list(tmp_path.iterdir()) == []


def test_config_is_typed_and_checked():
    config = make_config(EmbeddedConfig, {"size": "small", "seconds": "4.5", "seed": "2"})
    assert (config.clips_per_genre, config.clip_seconds, config.seed) == (24, 4.5, 2)
    assert config.folder_name == "embedded-v1-small-4.5s-seed2"
    assert EmbeddedConfig().folder_name == "embedded-v1-default-seed0"
    assert EmbeddedConfig(seconds=6).folder_name == "embedded-v1-default-seed0"
    assert EmbeddedConfig(sound="shared").folder_name == "embedded-v1-default-shared-sound-seed0"
    with pytest.raises(ConfigError, match="sound.*'mixed'"):
        make_config(EmbeddedConfig, {"sound": "mixed"})
    with pytest.raises(ConfigError, match="'huge'.*tiny"):
        make_config(EmbeddedConfig, {"size": "huge"})
    with pytest.raises(ConfigError, match=r"seconds=1.0 must be in \[2, 60\] \(seconds per clip; leave it unset"):
        make_config(EmbeddedConfig, {"seconds": "1"})
    with pytest.raises(ConfigError, match="seed.*-1"):
        EmbeddedConfig(seed=-1)
    with pytest.raises(ConfigError, match="unknown setting 'sise'.*did you mean 'size'"):
        make_config(EmbeddedConfig, {"sise": "tiny"})


def test_bad_rate_and_a_root_is_required(tmp_path):
    dataset = EmbeddedDataset(EmbeddedConfig(size="tiny"), tmp_path)
    assert dataset.folder.parent == tmp_path
    assert dataset.describe().endswith(f"at {dataset.folder}")  # rendered or not: the same words
    with pytest.raises(ConfigError, match="'bars'.*frames, beats"):
        dataset.clips("bars")
    with pytest.raises(ConfigError, match="the embedded set needs a folder: pass root"):
        EmbeddedDataset(EmbeddedConfig(size="tiny"))


def test_zoo_list_shows_the_embedded_set(capsys):
    from zoo.cli import main
    main(["list", "dataset"])
    assert "embedded" in capsys.readouterr().out


def test_the_shared_sound_set_is_its_own_set_and_says_where_each_sound_came_from(tmp_path):
    """``sound=shared`` renders into its own folder (never mixed with the default set's clips), each
    record names the genre its sound came from, and the description says what the set is."""
    dataset = Registry().create("dataset", "embedded", {"size": "tiny", "sound": "shared"}, tmp_path)
    dataset.only(["classical-0001", "metal-0002"])
    clips = dataset.clips("frames")
    assert [c.id for c in clips] == ["classical-0001", "metal-0002"]
    assert all("shared-sound" in str(c.audio) for c in clips)
    records = [json.loads((dataset.clips_folder / "records" / f"{c.id}.json").read_text()) for c in clips]
    assert all(r["sound_from"] in GENRES for r in records)
    assert "sound=shared" in dataset.describe()
    plain = Registry().create("dataset", "embedded", {"size": "tiny"}, tmp_path)
    assert plain.folder != dataset.folder and "sound=shared" not in plain.describe()
