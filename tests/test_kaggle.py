"""The lab's Kaggle layout: parts, naming quirks, class mapping, splits, lab arrays and their errors."""
from __future__ import annotations

import gzip
import shutil
from collections import Counter

import numpy as np
import pytest

from datafixtures import append_line, lab_array, write_kaggle, write_lab
from zoo.config import make_config
from zoo.data.labarray import lab_array_shape, load_lab_array
from zoo.data.readers.kaggle import LAB_MAPPING, KaggleConfig, KaggleDataset, detect, spec
from zoo.errors import ConfigError, DataError

GENRE = "fma_genre_spectrograms"


def dataset(root, **settings) -> KaggleDataset:
    return spec.build(make_config(KaggleConfig, settings), root)


@pytest.fixture(scope="module")
def kaggle(tmp_path_factory):
    return write_kaggle(tmp_path_factory.mktemp("kaggle") / "data")


def test_detect_parent_data_folder_and_single_part(kaggle, tmp_path):
    assert detect(kaggle.root) and detect(kaggle.root.parent)  # .../data or the folder above it
    assert detect(kaggle.root / GENRE)
    assert not detect(tmp_path) and not detect(tmp_path / "missing")


def test_frame_clips_follow_the_lab_mapping_and_the_given_test_split(kaggle):
    ds = dataset(kaggle.root, task_set="genre")
    clips = ds.clips("frames")
    kept = {i: LAB_MAPPING[g] for i, g in {**kaggle.genre_train, **kaggle.genre_test}.items() if LAB_MAPPING[g]}
    assert {c.id: c.label for c in clips} == {f"genre/{i}": lab for i, lab in kept.items()}
    test_ids = {f"genre/{i}" for i in kaggle.genre_test if LAB_MAPPING[kaggle.genre_test[i]]}
    assert {c.id for c in clips if c.split == "test"} == test_ids
    train_side = [c for c in clips if c.split in ("train", "val")]
    n_val = sum(c.split == "val" for c in clips)
    assert n_val == round(0.15 * len(train_side)) and n_val > 0
    for c in clips:  # both the .npy and the gzip .npy.gz files are found, and hold the clip's array
        assert c.array == kaggle.files[(GENRE, c.id.split("/")[1])]
        assert load_lab_array(c.array).shape == (140, kaggle.frames[c.id.split("/")[1]])
    assert {c.array.suffix for c in clips} == {".npy", ".gz"}


def test_beat_clips_come_from_the_beat_folder_with_the_same_splits(kaggle):
    ds = dataset(kaggle.root, task_set="genre")
    frames = {c.id: c for c in ds.clips("frames")}
    beats = {c.id: c for c in ds.clips("beats")}
    assert frames.keys() == beats.keys()
    for cid, c in beats.items():
        assert c.split == frames[cid].split and c.label == frames[cid].label
        assert c.array.parent.parent.name == GENRE + "_beat"
        assert load_lab_array(c.array).shape[1] == kaggle.beats[cid.split("/")[1]]


def test_dropped_genres_are_counted_not_silent(kaggle):
    ds = dataset(kaggle.root, task_set="genre")
    report = ds.mapping_report("frames")
    raw = Counter({**kaggle.genre_train, **kaggle.genre_test}.values())
    assert report.before == raw
    dropped = {g: n for g, n in raw.items() if LAB_MAPPING[g] is None}
    assert dict(report.dropped) == dropped and dropped
    expected_after = Counter()
    for g, n in raw.items():
        if LAB_MAPPING[g]:
            expected_after[LAB_MAPPING[g]] += n
    assert report.after == expected_after
    text = ds.describe()
    for g, n in dropped.items():
        assert f"{g} {n}" in text
    assert f"{len(expected_after)} classes" in text


def test_mapping_none_keeps_every_genre(kaggle):
    ds = dataset(kaggle.root, task_set="genre", mapping="none")
    labels = Counter(c.label for c in ds.clips("frames"))
    assert labels == Counter({**kaggle.genre_train, **kaggle.genre_test}.values())


def test_multitask_test_split_is_drawn_from_train_and_the_unlabelled_test_folder_is_reported(kaggle):
    ds = dataset(kaggle.root, task_set="multitask", seed=3)
    clips = ds.clips("frames")
    assert {c.id: dict(c.targets) for c in clips} == {f"multitask/{i}": t for i, t in kaggle.multitask.items()}
    splits = Counter(c.split for c in clips)
    assert splits["test"] == round(0.15 * len(clips)) and splits["val"] > 0
    text = ds.describe()
    assert f"{len(kaggle.multitask_unlabelled)} clips in test/ have no labels" in text
    assert "test = 15%" in text and "seed 3" in text
    again = dataset(kaggle.root, task_set="multitask", seed=3).clips("frames")
    assert [c.split for c in again] == [c.split for c in clips]
    other = dataset(kaggle.root, task_set="multitask", seed=4).clips("frames")
    assert Counter(c.split for c in other) == splits


def test_auto_reads_both_sets(kaggle):
    clips = dataset(kaggle.root).clips("frames")
    kinds = Counter(c.id.split("/")[0] for c in clips)
    assert kinds["multitask"] == len(kaggle.multitask)
    assert kinds["genre"] == sum(1 for g in {**kaggle.genre_train, **kaggle.genre_test}.values() if LAB_MAPPING[g])


def test_unknown_genre_names_genre_file_line_and_fix(tmp_path):
    fx = write_kaggle(tmp_path, train_per_genre=2, test_per_genre=1, parts=(GENRE,))
    cid = next(iter(fx.genre_train))
    labels = tmp_path / GENRE / "train_labels.txt"
    line = append_line(labels, f"{cid}9.fused.full.npy.gz\tPolka")
    with pytest.raises(DataError) as err:
        dataset(tmp_path).clips("frames")
    msg = str(err.value)
    assert "'Polka'" in msg and str(labels) in msg and f"line {line}" in msg and "dataset.mapping=none" in msg
    # the other fix: leave such clips out, counted
    write_lab(tmp_path / GENRE / "train" / f"{cid}9.fused.full.npy", lab_array(5))
    ds = dataset(tmp_path, unknown_genres="drop")
    assert f"{cid}9" not in {c.id.split('/')[1] for c in ds.clips("frames")}
    assert "Polka (unknown) 1" in ds.describe()
    assert "Polka" in {c.label for c in dataset(tmp_path, mapping="none").clips("frames")}


def test_label_naming_a_missing_clip_names_both(tmp_path):
    write_kaggle(tmp_path, train_per_genre=2, test_per_genre=1, parts=(GENRE,))
    labels = tmp_path / GENRE / "test_labels.txt"
    line = append_line(labels, "987654.full.fused.npy.gz\tRock")
    with pytest.raises(DataError) as err:
        dataset(tmp_path).clips("frames")
    msg = str(err.value)
    assert str(labels) in msg and f"line {line}" in msg and "987654" in msg and str(tmp_path / GENRE / "test") in msg


@pytest.mark.parametrize("text, problem", [("no tab here", "expected '<file><TAB><genre>'"),
                                           ("1000.fused.full.npy\tRock", "listed twice")])
def test_bad_genre_label_lines(tmp_path, text, problem):
    write_kaggle(tmp_path, train_per_genre=2, test_per_genre=1, parts=(GENRE,), genres=("Rock",))
    labels = tmp_path / GENRE / "train_labels.txt"
    append_line(labels, text)
    with pytest.raises(DataError, match=problem) as err:
        dataset(tmp_path).clips("frames")
    assert str(labels) in str(err.value)


def test_bad_multitask_value_names_line_and_column(tmp_path):
    write_kaggle(tmp_path, parts=("multitask_dataset",), multitask_train=4)
    labels = tmp_path / "multitask_dataset" / "train_labels.txt"
    line = append_line(labels, "55555,0.2,high,0.3")
    with pytest.raises(DataError) as err:
        dataset(tmp_path).clips("frames")
    assert str(labels) in str(err.value) and f"line {line}" in str(err.value) and "energy is 'high'" in str(err.value)


def test_missing_beat_folder_is_a_clear_error(tmp_path):
    write_kaggle(tmp_path, train_per_genre=2, test_per_genre=1, parts=(GENRE, "multitask_dataset"))
    with pytest.raises(DataError) as err:
        dataset(tmp_path).clips("beats")
    msg = str(err.value)
    assert "fma_genre_spectrograms_beat/" in msg and str(tmp_path) in msg and "frame-rate features" in msg
    with pytest.raises(DataError, match="multitask_dataset_beat/"):
        dataset(tmp_path, task_set="multitask").clips("beats")
    shutil.rmtree(tmp_path / "multitask_dataset")
    with pytest.raises(DataError, match="multitask_dataset/"):
        dataset(tmp_path, task_set="multitask").clips("frames")


def test_not_a_kaggle_folder(tmp_path):
    with pytest.raises(DataError, match="not the lab's Kaggle data set") as err:
        dataset(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_fractions_are_checked():
    with pytest.raises(ConfigError, match="val_fraction"):
        make_config(KaggleConfig, {"val_fraction": "1.5"}, where="dataset 'kaggle'")


# -- lab arrays ---------------------------------------------------------------------------
def test_lab_arrays_plain_gzip_and_transposed(tmp_path):
    a = lab_array(25, seed=1)
    plain = write_lab(tmp_path / "1.fused.full.npy", a)
    gz = write_lab(tmp_path / "2.fused.full.npy.gz", a)
    hidden_gz = write_lab(tmp_path / "3.fused.full.npy", a, gz=True)  # compressed, named .npy
    transposed = write_lab(tmp_path / "4.fused.full.npy", a.T)
    for path in (plain, gz, hidden_gz, transposed):
        got = load_lab_array(path)
        assert got.dtype == np.float32 and got.shape == (140, 25)
        np.testing.assert_allclose(got, a.astype(np.float32))
        assert lab_array_shape(path) == (140, 25)


@pytest.mark.parametrize("make, problem", [
    (lambda p: write_lab(p, np.full((140, 5), np.nan)), "NaN/inf"),
    (lambda p: write_lab(p, np.zeros((100, 50))), "shape (100, 50)"),
    (lambda p: write_lab(p, np.zeros((2, 140, 5))), "shape (2, 140, 5)"),
    (lambda p: write_lab(p, np.zeros((140, 0))), "is empty"),
    (lambda p: write_lab(p, np.array([["a"] * 3] * 140)), "dtype"),
    (lambda p: p.write_bytes(b"not an array at all" * 10), "not a .npy file"),
    (lambda p: p.write_bytes(b"\x93NUMPY\x01\x00" + b"{broken header" * 5), "not a readable .npy"),
    (lambda p: p.write_bytes(gzip.compress(np.random.default_rng(0).bytes(5000))[:300]), "damaged gzip"),
    (lambda p: None, "does not exist"),
])
def test_bad_lab_arrays_name_the_file_and_the_problem(tmp_path, make, problem):
    path = tmp_path / "77.fused.full.npy"
    make(path)
    with pytest.raises(DataError) as err:
        load_lab_array(path)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_a_set_present_only_at_the_other_rate_is_named(tmp_path):
    write_kaggle(tmp_path, train_per_genre=2, test_per_genre=1,
                 parts=(GENRE, GENRE + "_beat", "multitask_dataset"))
    ds = dataset(tmp_path)
    assert {c.id.split("/")[0] for c in ds.clips("beats")} == {"genre"}
    assert "multitask set: no beat-rate folder (multitask_dataset_beat/), not used" in ds.describe()
    only_genre = dataset(tmp_path, task_set="genre")
    only_genre.clips("beats")
    assert "multitask" not in only_genre.describe()
