"""The audio-folder layout: label folders (GTZAN style) and CSV manifests, splits, and their errors."""
from __future__ import annotations

from collections import Counter

import pytest

from datafixtures import music, write_audio, write_label_folders, write_manifest
from zoo.config import make_config
from zoo.data.readers.folder import FolderConfig, detect, spec
from zoo.errors import DataError


def dataset(root, **settings):
    return spec.build(make_config(FolderConfig, settings), root)


@pytest.fixture(scope="module")
def gtzan(tmp_path_factory):
    root = tmp_path_factory.mktemp("gtzan")
    files = write_label_folders(root, ("blues", "rock", "jazz"), per_label=5, suffixes=(".wav", ".ogg", ".mp3", ".flac"))
    return root, files


def test_label_folders_every_format_and_stratified_splits(gtzan):
    root, files = gtzan
    clips = dataset(root).clips("frames")
    assert {c.id: c.label for c in clips} == files
    assert {c.audio.suffix for c in clips} == {".wav", ".ogg", ".mp3", ".flac"}
    splits = Counter(c.split for c in clips)
    assert splits["test"] == round(0.2 * len(files))
    assert splits["val"] == round(0.15 * (len(files) - splits["test"]))
    per_class_test = Counter(c.label for c in clips if c.split == "test")
    assert set(per_class_test.values()) == {1}  # 3 test clips over 3 equal classes: one each


def test_splits_are_seeded_and_independent_of_order(gtzan):
    root, _ = gtzan
    a = {c.id: c.split for c in dataset(root, seed=1).clips("frames")}
    b = {c.id: c.split for c in dataset(root, seed=1).clips("beats")}
    c = {c.id: c.split for c in dataset(root, seed=2).clips("frames")}
    assert a == b
    assert a != c and Counter(a.values()) == Counter(c.values())


def test_unlabelled_and_empty_folders_are_reported(tmp_path):
    write_label_folders(tmp_path, ("a", "b"), per_label=2)
    write_audio(tmp_path / "loose.wav", music(1.2))
    (tmp_path / "empty").mkdir()
    text = dataset(tmp_path).describe()
    assert "1 audio files directly in" in text and "folders without audio ignored: empty" in text


def test_empty_folder_and_audio_one_level_down(tmp_path):
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataError, match="no label folders with audio") as err:
        dataset(tmp_path / "nothing").clips("frames")
    assert str(tmp_path / "nothing") in str(err.value)
    write_label_folders(tmp_path / "Data" / "genres_original", ("pop",), per_label=1)
    with pytest.raises(DataError, match="one level down, in genres_original"):
        dataset(tmp_path / "Data").clips("frames")


def test_manifest_with_labels_targets_splits_and_ignored_columns(tmp_path):
    rows = [
        {"path": "a/one.wav", "label": "x", "valence": "0.1", "split": "training", "comment": "nice"},
        {"path": "a/two.ogg", "label": "y", "valence": "", "split": "validation", "comment": "meh"},
        {"path": "b/three.mp3", "label": "", "valence": "0.7", "split": "test", "comment": ""},
        {"path": "b/four.flac", "label": "x", "valence": "0.4", "split": "train", "comment": "ok"},
    ]
    write_manifest(tmp_path, rows)
    ds = dataset(tmp_path)
    clips = {c.id: c for c in ds.clips("frames")}
    assert list(clips) == ["a/one", "a/two", "b/three", "b/four"]
    assert [c.split for c in clips.values()] == ["train", "val", "test", "train"]
    assert [c.label for c in clips.values()] == ["x", "y", None, "x"]
    assert [dict(c.targets) for c in clips.values()] == [{"valence": 0.1}, {}, {"valence": 0.7}, {"valence": 0.4}]
    assert clips["a/two"].audio == tmp_path / "a" / "two.ogg"
    text = ds.describe()
    assert "targets valence" in text and "non-numeric columns ignored: comment" in text
    # the CSV itself can be the root
    assert [c.id for c in dataset(tmp_path / "manifest.csv").clips("frames")] == list(clips)


def test_manifest_without_split_column_gets_seeded_splits(tmp_path):
    rows = [{"path": f"f{k}.wav", "label": "ab"[k % 2], "id": f"clip{k}"} for k in range(10)]
    write_manifest(tmp_path, rows, seconds=1.0)
    clips = dataset(tmp_path).clips("frames")
    assert [c.id for c in clips] == [f"clip{k}" for k in range(10)]
    assert Counter(c.split for c in clips) == {"test": 2, "val": 1, "train": 7}


@pytest.mark.parametrize("rows, problem", [
    ([{"file": "a.wav", "label": "x"}], "no 'path' column"),
    ([{"path": "a.wav", "split": "later", "label": "x"}], "line 2: split 'later'"),
    ([{"path": "a.wav", "label": "x"}, {"path": "a.mp3", "label": "y"}], "clip 'a' appears on lines 2 and 3"),
    ([{"path": "a.wav", "note": "hi"}], "neither a 'label' column nor a numeric target"),
    ([{"path": "", "label": "x"}], "line 2: empty path"),
])
def test_bad_manifests_name_the_file_and_the_problem(tmp_path, rows, problem):
    path = write_manifest(tmp_path, rows, name="list.csv", write_files=False)
    with pytest.raises(DataError) as err:
        dataset(tmp_path / "list.csv").clips("frames")
    assert str(path) in str(err.value) and problem in str(err.value)


def test_several_manifests(tmp_path):
    write_manifest(tmp_path, [{"path": "a.wav", "label": "x"}], name="one.csv", write_files=False)
    write_manifest(tmp_path, [{"path": "a.wav", "label": "x"}], name="two.csv", write_files=False)
    with pytest.raises(DataError, match=r"several CSV manifests \(one.csv, two.csv\).*dataset.manifest"):
        dataset(tmp_path)
    assert dataset(tmp_path, manifest="two.csv").manifest.name == "two.csv"
    write_manifest(tmp_path, [{"path": "a.wav", "label": "x"}], name="manifest.csv", write_files=False)
    assert dataset(tmp_path).manifest.name == "manifest.csv"


def test_detect(gtzan, tmp_path):
    assert detect(gtzan[0])
    assert not detect(tmp_path)
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")
    assert not detect(tmp_path) and not detect(tmp_path / "notes.csv")
    write_manifest(tmp_path, [{"path": "a.wav", "label": "x"}], write_files=False)
    assert detect(tmp_path) and detect(tmp_path / "manifest.csv")
