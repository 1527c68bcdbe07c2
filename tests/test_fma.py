"""The FMA layout: multi-row CSV headers, subsets, official splits, echonest targets, missing audio."""
from __future__ import annotations

import csv
import shutil

import pytest

from datafixtures import FMATrack, fma_tracks, write_fma
from zoo.config import make_config
from zoo.data.readers.fma import FMAConfig, audio_path, detect, spec
from zoo.data.prepare import prepare
from zoo.errors import DataError
from zoo.registry import Registry

SPLITS = {"training": "train", "validation": "val", "test": "test"}


def dataset(root, **settings):
    return spec.build(make_config(FMAConfig, settings), root)


@pytest.fixture(scope="module")
def fma(tmp_path_factory):
    root = tmp_path_factory.mktemp("fma")
    return root, write_fma(root, audio_dirs=("small", "medium"))


def expected(tracks, subsets):
    return {str(t.id): t for t in tracks if t.subset in subsets}


def test_detect(fma, tmp_path):
    root, _ = fma
    assert detect(root) and detect(root / "fma_metadata")
    assert not detect(tmp_path)


@pytest.mark.parametrize("subset, holds", [("small", ("small",)), ("medium", ("small", "medium")),
                                           ("auto", ("small", "medium"))])
def test_clips_of_each_subset(fma, subset, holds):
    root, tracks = fma
    ds = dataset(root, subset=subset)
    clips = {c.id: c for c in ds.clips("frames")}
    want = expected(tracks, holds)
    assert clips.keys() == want.keys()
    folder = root / f"fma_{ds.subset}"
    for cid, c in clips.items():
        t = want[cid]
        assert c.split == SPLITS[t.split]
        assert c.label == (t.genre or None)
        assert c.audio == audio_path(folder, t.id) and c.audio.is_file()
        assert c.audio.parent.name == f"{t.id:06d}"[:3] and c.audio.name == f"{t.id:06d}.mp3"
        if t.emotion is None:
            assert dict(c.targets) == {}
        else:
            assert dict(c.targets) == pytest.approx(dict(zip(("valence", "energy", "danceability"), t.emotion)))
    text = ds.describe()
    assert f"{len(want)} tracks" in text and f"{sum(1 for t in want.values() if not t.genre)} without a top genre" in text


def test_no_echonest_means_no_targets(tmp_path):
    write_fma(tmp_path, echonest=False, audio_dirs=())
    (tmp_path / "fma_small").mkdir()
    ds = dataset(tmp_path)
    assert all(not c.targets for c in ds.clips("frames"))
    assert "no echonest.csv" in ds.describe()


def test_subset_folder_missing(tmp_path):
    write_fma(tmp_path, audio_dirs=("small",))
    with pytest.raises(DataError, match=r"no fma_medium/.*unpack fma_medium.zip") as err:
        dataset(tmp_path, subset="medium")
    assert str(tmp_path) in str(err.value)
    shutil.rmtree(tmp_path / "fma_small")
    with pytest.raises(DataError, match="no audio folder") as err:
        dataset(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_tracks_csv_without_a_needed_column(tmp_path):
    write_fma(tmp_path, audio_dirs=())
    (tmp_path / "fma_small").mkdir()
    tracks = tmp_path / "fma_metadata" / "tracks.csv"
    rows = list(csv.reader(open(tracks, newline="")))
    rows[1] = [c if c != "genre_top" else "genre_main" for c in rows[1]]
    with open(tracks, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    with pytest.raises(DataError) as err:
        dataset(tmp_path).clips("frames")
    assert str(tracks) in str(err.value) and "track.genre_top" in str(err.value)


def test_unknown_split_value(tmp_path):
    write_fma(tmp_path, [FMATrack(7, "Rock", "small", "holdout")], audio_dirs=())
    (tmp_path / "fma_small").mkdir()
    with pytest.raises(DataError, match=r"track 7 has set.split 'holdout'") as err:
        dataset(tmp_path).clips("frames")
    assert str(tmp_path / "fma_metadata" / "tracks.csv") in str(err.value)


def test_missing_audio_is_an_error_or_skipped_and_listed(tmp_path):
    tracks = [t for t in fma_tracks() if t.subset == "small"][:4]
    write_fma(tmp_path, tracks, audio_dirs=("small",), seconds=1.2)
    gone = audio_path(tmp_path / "fma_small", tracks[0].id)
    gone.unlink()
    ds = dataset(tmp_path)
    mel = {"mel": Registry().create("feature", "mel")}
    with pytest.raises(DataError) as err:
        prepare(ds, mel, rate="frames", progress=False, workers=1, cache_dir=tmp_path / "cache")
    assert str(gone) in str(err.value) and "missing" in str(err.value) and "--skip-bad" in str(err.value)
    got = prepare(ds, mel, rate="frames", progress=False, workers=1, cache_dir=tmp_path / "cache", skip_bad=True)
    assert got.skipped == [(str(tracks[0].id), f"{gone}: file missing")]
    assert sorted(got.ids) == sorted(str(t.id) for t in tracks[1:])
    assert all(x.shape[0] == 128 for x in got.x)
