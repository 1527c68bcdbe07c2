"""`zoo data stats` and `zoo show`, run through the real CLI entry."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from datafixtures import music, write_audio, write_kaggle, write_label_folders
from pluginfactory import pip_install, write_distribution
from zoo.cli import main
from zoo.data.readers.kaggle import LAB_MAPPING

GENRE = "fma_genre_spectrograms"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def kaggle(tmp_path_factory):
    return write_kaggle(tmp_path_factory.mktemp("cli") / "data", genres=("Rock", "Psych-Rock", "Indie-Rock", "Jazz"))


def test_stats_counts_before_and_after_the_mapping(kaggle, tmp_path, capsys):
    assert main(["data", "stats", "--data", str(kaggle.root), "--set", "dataset.task_set=genre",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    raw = Counter({**kaggle.genre_train, **kaggle.genre_test}.values())
    for genre, n in raw.items():
        mark = " (dropped)" if LAB_MAPPING[genre] is None else ""
        assert f"  {genre:<26}{n:>7}{mark}\n" in out
    after = Counter()
    for genre, n in raw.items():
        if LAB_MAPPING[genre]:
            after[LAB_MAPPING[genre]] += n
    for cls, n in after.items():
        assert f"  {cls:<26}{n:>7}" in out
    lengths = [kaggle.frames[i] for i, g in {**kaggle.genre_train, **kaggle.genre_test}.items() if LAB_MAPPING[g]]
    assert f"length T (frames): min {min(lengths)}, median {np.median(lengths):.0f}" in out
    assert f"max {max(lengths)}" in out
    png = tmp_path / "kaggle-classes.png"
    assert f"class histogram: {png}" in out and png.read_bytes()[:8] == PNG


def test_stats_of_beats_and_of_an_audio_folder(kaggle, tmp_path, capsys):
    assert main(["data", "stats", "--data", str(kaggle.root), "--rate", "beats", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    used = [kaggle.beats[i] for i in _used(kaggle)]
    assert f"length T (beats): min {min(used)}, median {np.median(used):.0f}" in out
    assert "target valence:" in out and "(no label)" in out
    write_label_folders(tmp_path / "g", ("a", "b"), per_label=2, seconds=1.5)
    assert main(["data", "stats", "--data", str(tmp_path / "g"), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "length (seconds): min 1.50" in out and "before mapping" not in out
    assert (tmp_path / "o" / "folder-classes.png").is_file()


def _used(fx):
    genre = [i for i, g in {**fx.genre_train, **fx.genre_test}.items() if LAB_MAPPING[g]]
    return genre + list(fx.multitask)


def test_stats_refuses_other_scopes(kaggle, capsys):
    assert main(["data", "stats", "--data", str(kaggle.root), "--set", "backbone.hidden=3"]) == 2
    assert "only dataset settings apply" in capsys.readouterr().err


def test_show_a_kaggle_clip_full_and_beat(kaggle, tmp_path, capsys):
    cid = next(i for i, g in kaggle.genre_train.items() if LAB_MAPPING[g])
    out_png = tmp_path / "clip.png"
    assert main(["show", cid, "--data", str(kaggle.root), "--out", str(out_png)]) == 0
    out = capsys.readouterr().out
    t, b = kaggle.frames[cid], kaggle.beats[cid]
    assert f"mel 128 x {t} -> beat 128 x {b}" in out and f"chroma 12 x {t} -> beat 12 x {b}" in out
    assert f"wrote {out_png}" in out and out_png.read_bytes()[:8] == PNG


def test_show_a_lab_file_finds_its_beat_twin(kaggle, tmp_path, capsys, monkeypatch):
    cid = next(iter(kaggle.genre_test))
    monkeypatch.chdir(tmp_path)
    assert main(["show", str(kaggle.files[(GENRE, cid)])]) == 0
    out = capsys.readouterr().out
    assert f"mel 128 x {kaggle.frames[cid]} -> beat 128 x {kaggle.beats[cid]}" in out
    assert (tmp_path / f"show-{cid}.png").read_bytes()[:8] == PNG


def test_show_errors(kaggle, capsys):
    assert main(["show", "1234567"]) == 2
    assert "give the data set with --data" in capsys.readouterr().err
    assert main(["show", "1234567", "--data", str(kaggle.root)]) == 2
    assert "no clip '1234567'" in capsys.readouterr().err


@pytest.mark.slow
def test_show_an_audio_file_computes_every_feature(tmp_path, capsys):
    wav = write_audio(tmp_path / "song.wav", music(6.0, bpm=120))
    assert main(["show", str(wav), "--out", str(tmp_path / "song.png")]) == 0
    out = capsys.readouterr().out
    frames = 1 + int(6.0 * 22050) // 512
    assert f"mel 128 x {frames} -> beat 128 x" in out and f"chroma 12 x {frames} -> beat 12 x" in out
    assert (tmp_path / "song.png").read_bytes()[:8] == PNG


LOUDNESS = '''
"""An outside feature that says how zoo show draws it: RMS loudness per frame."""
from dataclasses import asdict, dataclass

import numpy as np

from zoo.errors import ConfigError
from zoo.protocols import ComponentSpec, Picture


@dataclass(frozen=True)
class LoudnessConfig:
    hop_length: int = 512


class Loudness:
    name, n_bins, rate, sample_rate, reads_lab = "loudness", 1, "frames", 22050, False
    picture = Picture("loudness (RMS)", "plain")

    def __init__(self, config):
        self.config, self.hop_length = config, config.hop_length

    def settings(self):
        return asdict(self.config)

    def from_audio(self, y, sr):
        n = 1 + len(y) // self.hop_length
        frames = np.pad(y, (0, n * self.hop_length))[: n * self.hop_length].reshape(n, self.hop_length)
        return np.sqrt((frames ** 2).mean(1))[None, :].astype(np.float32)

    def from_lab(self, fused):
        raise ConfigError("feature 'loudness' cannot be read from the lab's arrays; use audio")


loudness = ComponentSpec(kind="feature", name="loudness", config=LoudnessConfig, build=Loudness,
                         summary="RMS loudness per frame")
'''


@pytest.fixture(scope="module")
def loudness_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("loudness")
    project = write_distribution(root, "zoo-loudness", "0.1.0", "zoo_loudness", LOUDNESS,
                                 {"music_zoo.features": {"loudness": "zoo_loudness:loudness"}})
    pip_install([project], root / "site")
    return root / "site"


def test_show_draws_whatever_features_declare_a_picture_and_names_no_plugin(loudness_site, tmp_path, capsys,
                                                                            monkeypatch):
    """zoo show knows no feature by name: with only an outside plugin's drawable feature, it draws that."""
    monkeypatch.syspath_prepend(str(loudness_site))
    monkeypatch.setenv("ZOO_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("ZOO_PLUGINS", "zoo-loudness")
    wav = write_audio(tmp_path / "song.wav", music(3.0))
    assert main(["show", str(wav), "--out", str(tmp_path / "song.png")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"loudness 1 x {1 + int(3.0 * 22050) // 512}" and lines[1].startswith("wrote ")
    assert (tmp_path / "song.png").read_bytes()[:8] == PNG
    monkeypatch.setenv("ZOO_PLUGINS", "")  # the core alone: no feature says how it is drawn
    assert main(["show", str(wav)]) == 2
    assert "none of `zoo list feature` does" in capsys.readouterr().err
