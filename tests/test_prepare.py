"""prepare(): usable clips, splits, --limit, bad items, the pack cache and the fingerprint."""
from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np
import pytest

from datafixtures import lab_array, write_kaggle, write_lab, write_label_folders
from zoo.config import make_config
from zoo.data.readers.kaggle import LAB_MAPPING, KaggleConfig
from zoo.data.readers.kaggle import spec as kaggle_spec
from zoo.data.labarray import load_lab_array
from zoo.data.layout import open_dataset
from zoo.data.prepare import prepare
from zoo.errors import DataError
from zoo.protocols import Clip
from zoo.registry import Registry

GENRE = "fma_genre_spectrograms"


@pytest.fixture(scope="module")
def registry():
    return Registry()


@pytest.fixture(scope="module")
def lab_features(registry):
    return {"mel": registry.create("feature", "mel"), "chroma": registry.create("feature", "chroma")}


def kaggle(root, **settings):
    return kaggle_spec.build(make_config(KaggleConfig, settings), root)


def run(ds, features, tmp_path, **kw):
    kw.setdefault("cache_dir", tmp_path / "cache")
    return prepare(ds, features, progress=False, workers=1, **kw)


def test_kaggle_frames_stacked_labelled_and_split(tmp_path, lab_features):
    fx = write_kaggle(tmp_path / "k")
    ds = kaggle(tmp_path / "k")
    got = run(ds, lab_features, tmp_path, rate="frames", need=["label"])
    kept = {f"genre/{i}": LAB_MAPPING[g] for i, g in {**fx.genre_train, **fx.genre_test}.items() if LAB_MAPPING[g]}
    assert sorted(got.ids) == sorted(kept)
    assert got.classes == tuple(sorted(set(kept.values())))
    assert [got.classes[k] for k in got.labels] == [kept[i] for i in got.ids]
    assert got.feature_slices == {"mel": (0, 128), "chroma": (128, 140)}
    for cid, x in zip(got.ids, got.x):  # rows are the lab's array, unchanged
        raw = load_lab_array(fx.files[(GENRE, cid.split("/")[1])])
        assert x.dtype == np.float32 and x.shape == raw.shape
        np.testing.assert_array_equal(x, raw)
    assert got.targets == {}  # the multitask clips (the only ones with targets) are not usable for genre
    assert f"{len(fx.multitask)} of {len(fx.multitask) + len(kept)} clips have none of label" in got.description
    n = {s: int((got.splits == s).sum()) for s in ("train", "val", "test")}
    assert f"train {n['train']} / val {n['val']} / test {n['test']}" in got.description
    assert n["test"] == sum(1 for i, g in fx.genre_test.items() if LAB_MAPPING[g])


def test_targets_of_multitask_clips_and_chroma_only_beats(tmp_path, registry):
    fx = write_kaggle(tmp_path / "k", genres=("Jazz",), train_per_genre=2, test_per_genre=1)
    got = run(kaggle(tmp_path / "k"), {"beat-chroma": registry.create("feature", "beat-chroma")}, tmp_path,
              rate="beats", need=["valence", "energy"])
    assert sorted(got.ids) == sorted(f"multitask/{i}" for i in fx.multitask)
    assert got.classes == () and (got.labels == -1).all()
    for name in ("valence", "energy", "danceability"):
        assert got.targets[name].dtype == np.float32
        np.testing.assert_allclose(got.targets[name], [fx.multitask[i.split("/")[1]][name] for i in got.ids], rtol=1e-6)
    assert all(x.shape == (12, fx.beats[i.split("/")[1]]) for i, x in zip(got.ids, got.x))


def no_extraction(monkeypatch):
    """Any extraction fails the test: what prepare returns must come from the pack."""
    import zoo.data.prepare as prep

    def extract(*a, **k):
        raise AssertionError("the features were extracted again; the pack should have been read")
    monkeypatch.setattr(prep, "_extract_to_pack", extract)


def edit_keeping_size_and_times(path, write) -> None:
    """Rewrite ``path`` in place as ``cp -p`` / ``rsync -a`` / ``tar`` do: same size, modification time put back."""
    st = path.stat()
    write()
    assert path.stat().st_size == st.st_size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_second_prepare_reads_the_pack_unless_a_file_changed_even_with_its_times_kept(tmp_path, lab_features,
                                                                                      monkeypatch, capsys):
    write_kaggle(tmp_path / "k", genres=("Jazz", "Rock"), parts=(GENRE,))
    ds = kaggle(tmp_path / "k")
    first = run(ds, lab_features, tmp_path, rate="frames")
    packs = list((tmp_path / "cache" / "packs").iterdir())
    assert len(packs) == 1
    with monkeypatch.context() as m:
        no_extraction(m)
        again = run(ds, lab_features, tmp_path, rate="frames")
    assert again.fingerprint == first.fingerprint
    victim = next(c for c in ds.clips("frames") if str(c.array).endswith(".npy"))
    old = load_lab_array(victim.array)
    edit_keeping_size_and_times(victim.array, lambda: write_lab(victim.array, (old + 1.0).astype(np.float64)))
    k = first.ids.index(victim.id)
    capsys.readouterr()
    second = run(ds, lab_features, tmp_path, rate="frames")
    np.testing.assert_array_equal(second.x[k], old + 1.0)  # never the stale rows
    assert second.fingerprint != first.fingerprint and second.ids == first.ids
    assert f"1 file(s) changed since the feature pack was made ({victim.id})" in capsys.readouterr().err
    assert list((tmp_path / "cache" / "packs").iterdir()) == packs  # rebuilt in its place
    # Times that change with the content kept (a touch, a copy) cost a hash, not an extraction.
    st = victim.array.stat()
    os.utime(victim.array, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with monkeypatch.context() as m:
        no_extraction(m)
        third = run(ds, lab_features, tmp_path, rate="frames")
    np.testing.assert_array_equal(third.x[k], old + 1.0)
    assert third.fingerprint == second.fingerprint


def test_an_audio_file_edited_in_place_with_its_times_kept_is_extracted_again(tmp_path, registry):
    from datafixtures import music, write_audio
    write_label_folders(tmp_path / "a", ("blues", "jazz"), per_label=3)
    ds = open_dataset(tmp_path / "a", registry=registry)
    chroma = {"chroma": registry.create("feature", "chroma")}
    first = run(ds, chroma, tmp_path, rate="frames")
    victim = next(c for c in ds.clips("frames") if c.id == first.ids[0])
    edit_keeping_size_and_times(victim.audio, lambda: write_audio(victim.audio, music(1.5, seed=999, root_hz=400)))
    second = run(ds, chroma, tmp_path, rate="frames")
    assert not np.array_equal(second.x[0], first.x[0]) and second.fingerprint != first.fingerprint
    np.testing.assert_array_equal(second.x[1], first.x[1])


def test_bad_array_raises_or_is_skipped_and_listed(tmp_path, lab_features):
    write_kaggle(tmp_path / "k", genres=("Jazz", "Rock"), parts=(GENRE,))
    ds = kaggle(tmp_path / "k")
    victim = ds.clips("frames")[2]
    write_lab(victim.array, np.full((140, 9), np.nan), gz=str(victim.array).endswith(".gz"))
    with pytest.raises(DataError) as err:
        run(ds, lab_features, tmp_path, rate="frames")
    assert str(victim.array) in str(err.value) and "NaN" in str(err.value)
    got = run(ds, lab_features, tmp_path, rate="frames", skip_bad=True)
    assert victim.id not in got.ids and len(got.ids) == len(ds.clips("frames")) - 1
    assert len(got.skipped) == 1 and got.skipped[0][0] == victim.id and str(victim.array) in got.skipped[0][1]
    assert "1 skipped" in got.description
    again = run(ds, lab_features, tmp_path, rate="frames", skip_bad=True)  # from the pack: still listed
    assert again.skipped == got.skipped and again.ids == got.ids
    with pytest.raises(DataError, match="NaN"):  # a pack that skipped clips never hides the error
        run(ds, lab_features, tmp_path, rate="frames")


def test_limit_is_stratified_seeded_and_keeps_every_split(tmp_path, lab_features):
    write_kaggle(tmp_path / "k", genres=("Jazz", "Rock", "Pop", "Blues"), train_per_genre=10, test_per_genre=4,
                 parts=(GENRE,))
    ds = kaggle(tmp_path / "k")
    full = Counter(c.split for c in ds.clips("frames"))
    got = run(ds, lab_features, tmp_path, rate="frames", limit=16, seed=5)
    assert len(got) == 16
    counts = Counter(got.splits.tolist())
    assert set(counts) == {"train", "val", "test"}
    for s in counts:
        assert abs(counts[s] - 16 * full[s] / sum(full.values())) <= 1
    per_class = Counter(got.classes[k] for k in got.labels[got.splits == "train"])
    assert max(per_class.values()) - min(per_class.values()) <= 1
    same = run(ds, lab_features, tmp_path, rate="frames", limit=16, seed=5)
    assert same.ids == got.ids
    other = run(ds, lab_features, tmp_path, rate="frames", limit=16, seed=6)
    assert other.ids != got.ids
    assert "limited to 16 clips" in got.description
    with pytest.raises(DataError, match="--limit 0"):
        run(ds, lab_features, tmp_path, rate="frames", limit=0)


def test_nothing_usable_is_an_error(tmp_path, lab_features):
    write_kaggle(tmp_path / "k", genres=("Jazz",), parts=(GENRE,))
    with pytest.raises(DataError, match="none of the .* clips .* has valence"):
        run(kaggle(tmp_path / "k"), lab_features, tmp_path, rate="frames", need=["valence"])


@dataclass
class Listed:
    """A data set as a third party might write one: given clips, no splits."""

    items: list
    name: str = "listed"
    notes: list = field(default_factory=list)

    def clips(self, rate):
        return list(self.items)

    def describe(self):
        return f"listed: {len(self.items)} clips"


def _arrays(tmp_path, n):
    return [write_lab(tmp_path / "arr" / f"{k}.npy", lab_array(6 + k % 3, seed=k)) for k in range(n)]


def test_splits_are_made_for_a_data_set_without_them(tmp_path, lab_features):
    paths = _arrays(tmp_path, 20)
    items = [Clip(id=f"c{k}", label="ab"[k % 2], targets={"valence": k / 20}, array=p) for k, p in enumerate(paths)]
    got = run(Listed(items), lab_features, tmp_path, rate="frames", seed=1)
    assert Counter(got.splits.tolist()) == {"test": 4, "val": 2, "train": 14}
    assert "test = 20%" in got.description and "val = 15%" in got.description
    np.testing.assert_allclose(got.targets["valence"], [int(i[1:]) / 20 for i in got.ids])
    # the fingerprint follows labels and splits
    relabelled = [replace(c, label="c") if c.id == "c3" else c for c in items]
    assert run(Listed(relabelled), lab_features, tmp_path, rate="frames", seed=1).fingerprint != got.fingerprint
    assert run(Listed(items), lab_features, tmp_path, rate="frames", seed=2).fingerprint != got.fingerprint
    assert run(Listed(items), lab_features, tmp_path, rate="frames", seed=1).fingerprint == got.fingerprint


@pytest.mark.parametrize("items, problem", [
    ([Clip(id="a", array="x.npy"), Clip(id="a", array="y.npy")], "clip id 'a' appears twice"),
    ([Clip(id="a")], "has neither"),
    ([Clip(id="a", split="holdout", array="x.npy")], "split 'holdout'"),
])
def test_malformed_clips(tmp_path, lab_features, items, problem):
    with pytest.raises(DataError, match=problem):
        run(Listed(items), lab_features, tmp_path, rate="frames")


def test_missing_array_file(tmp_path, lab_features):
    paths = _arrays(tmp_path, 6)
    paths[1].unlink()
    items = [Clip(id=f"c{k}", label="a", split="train" if k else "test", array=p) for k, p in enumerate(paths)]
    with pytest.raises(DataError, match=f"{paths[1]}.*--skip-bad"):
        run(Listed(items), lab_features, tmp_path, rate="frames")
    got = run(Listed(items), lab_features, tmp_path, rate="frames", skip_bad=True)
    assert got.skipped == [("c1", f"{paths[1]}: file missing")]


def test_audio_folder_through_the_feature_plugins(tmp_path, registry):
    files = write_label_folders(tmp_path / "g", ("a", "b"), per_label=3, seconds=1.2)
    ds = open_dataset(tmp_path / "g", registry=registry)
    mel = registry.create("feature", "mel")
    got = run(ds, {"mel": mel}, tmp_path, rate="frames", need=["label"])
    assert sorted(got.ids) == sorted(files)
    frames = 1 + math.floor(1.2 * mel.sample_rate / mel.hop_length)
    assert all(x.shape == (128, frames) for x in got.x)
    assert got.classes == ("a", "b")
    again = run(ds, {"mel": mel}, tmp_path, rate="frames", need=["label"])
    assert again.fingerprint == got.fingerprint
    for a, b in zip(got.x, again.x):
        np.testing.assert_array_equal(a, b)
