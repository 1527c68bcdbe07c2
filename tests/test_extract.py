"""zoo.data.extract (cache, parallel workers, bad files, stacking) and zoo.data.pack."""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from zoo.data.audio import load_audio
from zoo.data.extract import extract_audio, stack
from zoo.data.pack import read_pack, write_pack
from zoo.errors import ConfigError, DataError, PluginError
from zoo.registry import Registry

SR = 22050


@pytest.fixture(scope="module")
def registry():
    return Registry()


def clip(seconds: float = 2.0, freq: float = 330.0, seed: int = 0) -> np.ndarray:
    """A tone over a 120 bpm noise-burst pulse."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    y = 0.2 * np.sin(2 * np.pi * freq * t)
    for start in np.arange(0.1, seconds - 0.05, 0.5):
        i = int(start * SR)
        y[i:i + 300] += 0.6 * np.hanning(300) * rng.standard_normal(300)
    return y.astype(np.float32)


def write(path, y):
    sf.write(str(path), y, SR, subtype="FLOAT")
    return path


@pytest.fixture
def songs(tmp_path):
    folder = tmp_path / "audio"
    folder.mkdir()
    return [write(folder / f"song{i}.wav", clip(2.0, 220.0 * (i + 1), seed=i)) for i in range(3)]


class Counting:
    """A real feature that counts how often it computes: cache hits are calls that never happen."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0
        self.name, self.n_bins, self.rate = inner.name, inner.n_bins, inner.rate
        self.sample_rate, self.hop_length = inner.sample_rate, inner.hop_length

    def settings(self):
        return self.inner.settings()

    def from_audio(self, y, sr):
        self.calls += 1
        return self.inner.from_audio(y, sr)

    def from_lab(self, fused):
        return self.inner.from_lab(fused)


def counting(registry, **settings):
    return {"mel": Counting(registry.create("feature", "mel", settings.get("mel"))),
            "chroma": Counting(registry.create("feature", "chroma", settings.get("chroma")))}


def calls(features):
    return {n: f.calls for n, f in features.items()}


def entries(cache):
    return {p: p.stat().st_mtime_ns for p in (cache / "features").rglob("*.npy")}


def test_results_equal_the_features_on_the_decoded_audio(registry, songs, tmp_path):
    features = {"mel": registry.create("feature", "mel"), "chroma": registry.create("feature", "chroma")}
    out = extract_audio(songs, features, cache_dir=tmp_path / "cache", workers=1, progress=False)
    assert len(out) == len(songs)
    for path, result in zip(songs, out):
        assert list(result) == ["mel", "chroma"]
        y = load_audio(path)
        for name, feature in features.items():
            np.testing.assert_array_equal(result[name], feature.from_audio(y, SR))


def test_second_call_is_served_from_the_cache(registry, songs, tmp_path):
    cache = tmp_path / "cache"
    first, stats = counting(registry), {}
    out1 = extract_audio(songs, first, cache_dir=cache, workers=1, progress=False, stats=stats)
    assert calls(first) == {"mel": 3, "chroma": 3}
    assert stats == {"files": 3, "cached": 0, "computed": 3, "failed": 0}
    written = entries(cache)
    assert len(written) == 6
    assert not list((cache / "features").rglob("*.tmp"))

    second, stats = counting(registry), {}
    out2 = extract_audio(songs, second, cache_dir=cache, workers=1, progress=False, stats=stats)
    assert calls(second) == {"mel": 0, "chroma": 0}
    assert stats["cached"] == 3 and stats["computed"] == 0
    assert entries(cache) == written  # nothing rewritten
    for a, b in zip(out1, out2):
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])


def test_the_key_is_the_content_not_the_name(registry, songs, tmp_path):
    cache = tmp_path / "cache"
    extract_audio(songs, counting(registry), cache_dir=cache, workers=1, progress=False)
    copy = shutil.copy(songs[0], tmp_path / "renamed.wav")
    again = counting(registry)
    extract_audio([copy], again, cache_dir=cache, workers=1, progress=False)
    assert calls(again) == {"mel": 0, "chroma": 0}


def test_a_changed_setting_or_file_is_recomputed(registry, songs, tmp_path):
    cache = tmp_path / "cache"
    before = extract_audio(songs, counting(registry), cache_dir=cache, workers=1, progress=False)

    narrower = counting(registry, mel={"n_mels": 64})
    out = extract_audio(songs, narrower, cache_dir=cache, workers=1, progress=False)
    assert calls(narrower) == {"mel": 3, "chroma": 0}
    assert out[0]["mel"].shape[0] == 64

    write(songs[1], clip(2.0, 990.0, seed=9))  # same name, new content
    after = counting(registry)
    out = extract_audio(songs, after, cache_dir=cache, workers=1, progress=False)
    assert calls(after) == {"mel": 1, "chroma": 1}
    assert not np.array_equal(out[1]["chroma"], before[1]["chroma"])
    np.testing.assert_array_equal(out[0]["chroma"], before[0]["chroma"])


def test_a_damaged_cache_entry_is_recomputed(registry, songs, tmp_path):
    cache = tmp_path / "cache"
    good = extract_audio(songs[:1], counting(registry), cache_dir=cache, workers=1, progress=False)
    for entry in entries(cache):
        entry.write_bytes(b"not an array")
    again = counting(registry)
    with pytest.warns(UserWarning, match="cannot be parsed"):  # the user is told (tests/test_faults.py has more)
        out = extract_audio(songs[:1], again, cache_dir=cache, workers=1, progress=False)
    assert calls(again) == {"mel": 1, "chroma": 1}
    np.testing.assert_array_equal(out[0]["mel"], good[0]["mel"])


def test_parallel_workers_give_the_serial_results(registry, songs, tmp_path):
    features = {"mel": registry.create("feature", "mel"), "chroma": registry.create("feature", "chroma")}
    silence = write(tmp_path / "silence.wav", np.zeros(2 * SR, np.float32))
    paths = [songs[0], silence, songs[1], songs[0]]  # a repeated file is computed once, returned twice
    serial = extract_audio(paths, features, cache_dir=tmp_path / "a", workers=1, progress=False, skip_bad=True)
    stats = {}
    parallel = extract_audio(paths, features, cache_dir=tmp_path / "b", workers=2, progress=False, skip_bad=True,
                             stats=stats)
    assert stats == {"files": 4, "cached": 0, "computed": 3, "failed": 1}
    assert len(entries(tmp_path / "b")) == 4
    assert isinstance(serial[1], DataError) and isinstance(parallel[1], DataError)
    assert str(serial[1]) == str(parallel[1])
    for s, p in zip(serial[::2] + serial[3:], parallel[::2] + parallel[3:]):
        assert s.keys() == p.keys()
        for name in s:
            np.testing.assert_array_equal(s[name], p[name])


@pytest.mark.slow
def test_a_bad_file_stops_the_worker_pool(registry, songs, tmp_path):
    silence = write(tmp_path / "silence.wav", np.zeros(2 * SR, np.float32))
    with pytest.raises(DataError, match="digital silence") as err:
        extract_audio([songs[0], silence, songs[1], songs[2]], {"mel": registry.create("feature", "mel")},
                      cache_dir=tmp_path / "c", workers=2, progress=False)
    assert str(silence) in str(err.value)


def _bad_files(folder):
    rubbish = folder / "rubbish.mp3"
    rubbish.write_bytes(np.random.default_rng(1).bytes(3000))
    return {
        "missing": folder / "missing.wav",
        "rubbish": rubbish,
        "short": write(folder / "short.wav", clip(0.3)),
        "silence": write(folder / "silence.wav", np.zeros(2 * SR, np.float32)),
    }


def test_skip_bad_returns_the_errors_in_place(registry, songs, tmp_path):
    bad = _bad_files(tmp_path)
    paths = [songs[0], bad["missing"], bad["rubbish"], songs[1], bad["short"], bad["silence"]]
    stats = {}
    out = extract_audio(paths, counting(registry), cache_dir=tmp_path / "cache", workers=1, progress=False,
                        skip_bad=True, stats=stats)
    assert [type(r).__name__ for r in out] == ["dict", "DataError", "DataError", "dict", "DataError", "DataError"]
    for path, result, reason in zip(paths, out, [None, "does not exist", "cannot be decoded", None, "0.30 s long",
                                                  "digital silence"]):
        if reason:
            assert str(path) in str(result) and reason in str(result)
    assert stats == {"files": 6, "cached": 0, "computed": 2, "failed": 4}


def test_without_skip_bad_the_first_bad_file_raises(registry, songs, tmp_path):
    bad = _bad_files(tmp_path)
    with pytest.raises(DataError, match="does not exist") as err:
        extract_audio([songs[0], bad["missing"]], counting(registry), cache_dir=tmp_path / "c", progress=False)
    assert str(bad["missing"]) in str(err.value)
    with pytest.raises(DataError, match="digital silence") as err:
        extract_audio([bad["silence"], songs[0]], counting(registry), cache_dir=tmp_path / "c", workers=1,
                      progress=False)
    assert str(bad["silence"]) in str(err.value)


def test_a_feature_error_names_the_file(registry, tmp_path):
    steady = write(tmp_path / "steady.wav", (0.3 * np.sin(2 * np.pi * 220 * np.arange(3 * SR) / SR)).astype(np.float32))
    out = extract_audio([steady], {"beat": registry.create("feature", "beat")}, cache_dir=tmp_path / "c",
                        workers=1, progress=False, skip_bad=True)
    assert isinstance(out[0], DataError)
    assert str(steady) in str(out[0]) and "feature 'beat'" in str(out[0]) and "beat(s)" in str(out[0])


class Faulty(Counting):
    """A feature whose output is wrong: NaN values (a data problem) or the wrong rows (a plugin bug)."""

    def __init__(self, inner, fault):
        super().__init__(inner)
        self.fault = fault

    def settings(self):
        return {**self.inner.settings(), "fault": self.fault}

    def from_audio(self, y, sr):
        out = self.inner.from_audio(y, sr)
        if self.fault == "nan":
            out[0, 0] = np.nan
            return out
        return out[:-1]


def test_a_faulty_feature_output_is_caught(registry, songs, tmp_path):
    mel = registry.create("feature", "mel")
    out = extract_audio(songs[:1], {"mel": Faulty(mel, "nan")}, cache_dir=tmp_path / "c", workers=1,
                        progress=False, skip_bad=True)
    assert isinstance(out[0], DataError) and str(songs[0]) in str(out[0]) and "NaN" in str(out[0])
    assert not list(tmp_path.rglob("*.npy"))  # nothing cached
    with pytest.raises(PluginError, match=r"shape \(127, \d+\).*promises \[128, T\]"):
        extract_audio(songs[:1], {"mel": Faulty(mel, "rows")}, cache_dir=tmp_path / "c", workers=1,
                      progress=False, skip_bad=True)


class Wave:
    """An outside feature as small as the contract allows: no ``min_samples``, no batch member."""

    name, n_bins, rate, sample_rate, hop_length = "wave", 1, "frames", SR, 512

    def settings(self):
        return {"step": 512}

    def from_audio(self, y, sr):
        return np.asarray(y[None, ::512], dtype=np.float32)

    def from_lab(self, fused):
        raise DataError("feature 'wave': the lab's arrays hold no waveform")


class BatchedWave(Wave):
    """An outside feature with the batch member (zoo.protocols.BatchesAudio) and ``min_samples``; it
    records the clips of each batch call and each single call; ``fault`` breaks the batch call."""

    name, min_samples = "bwave", 4096

    def __init__(self, batch_size=4, fault=None):
        self.batch_size, self.fault, self.batches, self.singles = batch_size, fault, [], 0

    def settings(self):
        return {"step": 512, "fault": repr(self.fault)}

    def from_audio(self, y, sr):
        self.singles += 1
        if y.size < self.min_samples:
            raise DataError(f"{y.size} samples, fewer than the {self.min_samples} this feature needs")
        return super().from_audio(y, sr)

    def from_audio_batch(self, ys, sr):
        self.batches.append(len(ys))
        if isinstance(self.fault, Exception):
            raise self.fault
        out = [Wave.from_audio(self, y, sr) for y in ys]
        return out[:-1] if self.fault == "one short" else out


def test_an_outside_feature_without_min_samples_or_a_batch_member_is_extracted(registry, songs, tmp_path):
    wave, mel = Wave(), registry.create("feature", "mel")
    out = extract_audio(songs, {"wave": wave, "mel": mel}, cache_dir=tmp_path / "c", workers=1, progress=False)
    for path, result in zip(songs, out):
        assert list(result) == ["wave", "mel"]
        np.testing.assert_array_equal(result["wave"], wave.from_audio(load_audio(path, SR), SR))
        assert result["mel"].shape[0] == 128


def test_a_feature_that_batches_gets_its_files_in_one_call_and_a_short_one_alone(songs, tmp_path):
    short = write(tmp_path / "short.wav", clip(0.15))  # 3307 samples: under min_samples
    feature = BatchedWave(batch_size=4)
    paths = [songs[0], short, songs[1], songs[2]]
    out = extract_audio(paths, {"bwave": feature}, cache_dir=tmp_path / "c", workers=1, progress=False,
                        skip_bad=True, min_seconds=0.1)
    assert feature.batches == [3] and feature.singles == 1
    assert isinstance(out[1], DataError) and str(short) in str(out[1]) and "fewer than the 4096" in str(out[1])
    for path, result in zip(songs, [out[0], out[2], out[3]]):
        np.testing.assert_array_equal(result["bwave"], Wave().from_audio(load_audio(path, SR), SR))
    again = BatchedWave(batch_size=2)  # two calls of two files; the cache was filled by the first run
    extract_audio(songs + [write(tmp_path / "fourth.wav", clip(2.0, 500.0))], {"bwave": again},
                  cache_dir=tmp_path / "c2", workers=1, progress=False)
    assert again.batches == [2, 2] and again.singles == 0


@pytest.mark.parametrize("fault", [ValueError("the batch kernel broke"), DataError("one clip of the batch is bad")],
                         ids=["error", "data-error"])
def test_a_failing_batch_call_falls_back_to_each_file_alone(songs, tmp_path, fault):
    feature = BatchedWave(fault=fault)
    out = extract_audio(songs, {"bwave": feature}, cache_dir=tmp_path / "c", workers=1, progress=False)
    assert feature.batches == [3] and feature.singles == 3
    for path, result in zip(songs, out):
        np.testing.assert_array_equal(result["bwave"], Wave().from_audio(load_audio(path, SR), SR))


class LoggedBatches(BatchedWave):
    """``BatchedWave`` that leaves a file per batch call in ``folder`` (its calls happen in worker processes)."""

    def __init__(self, folder, batch_size):
        super().__init__(batch_size)
        self.folder = str(folder)

    def from_audio_batch(self, ys, sr):
        (Path(self.folder) / f"{os.getpid()}-{uuid.uuid4().hex}").write_text(str(len(ys)))
        return super().from_audio_batch(ys, sr)


def test_worker_processes_get_a_batching_features_files_a_batch_at_a_time(tmp_path):
    paths = [write(tmp_path / f"s{i}.wav", clip(1.5, 200.0 + 50 * i, seed=i)) for i in range(6)]
    (tmp_path / "calls").mkdir()
    feature = LoggedBatches(tmp_path / "calls", batch_size=4)
    out = extract_audio(paths, {"bwave": feature}, cache_dir=tmp_path / "c", workers=2, progress=False)
    # 6 files over 2 workers: 3 a call (an even share, under the feature's 4), one call each
    assert sorted(p.read_text() for p in (tmp_path / "calls").iterdir()) == ["3", "3"]
    for path, result in zip(paths, out):
        np.testing.assert_array_equal(result["bwave"], Wave().from_audio(load_audio(path, SR), SR))


def test_a_broken_batch_member_is_a_plugin_error_naming_the_feature(songs, tmp_path):
    with pytest.raises(PluginError, match="feature 'bwave' returned 2 arrays from from_audio_batch for 3 clips"):
        extract_audio(songs, {"bwave": BatchedWave(fault="one short")}, cache_dir=tmp_path / "c", workers=1,
                      progress=False)
    with pytest.raises(PluginError, match=r"feature 'bwave' declares batch_size 0, where an int >= 1"):
        extract_audio(songs, {"bwave": BatchedWave(batch_size=0)}, cache_dir=tmp_path / "c", workers=1,
                      progress=False)


def test_nothing_to_do_and_nothing_asked(registry, tmp_path):
    assert extract_audio([], {"mel": registry.create("feature", "mel")}, cache_dir=tmp_path, progress=False) == []
    with pytest.raises(ConfigError, match="no features"):
        extract_audio([tmp_path / "a.wav"], {}, cache_dir=tmp_path, progress=False)


def test_stack_truncates_a_one_frame_difference(registry, songs):
    y = load_audio(songs[0])
    mel = registry.create("feature", "mel").from_audio(y, SR)
    chroma = registry.create("feature", "chroma").from_audio(y, SR)
    x, slices = stack({"chroma": chroma[:, :-1], "mel": mel}, ["mel", "chroma"])
    assert x.shape == (140, mel.shape[1] - 1) and x.dtype == np.float32
    assert slices == {"mel": (0, 128), "chroma": (128, 140)}
    np.testing.assert_array_equal(x[:128], mel[:, :-1])
    np.testing.assert_array_equal(x[128:], chroma[:, :-1])


def test_stack_refuses_a_real_mismatch_and_missing_parts():
    parts = {"mel": np.zeros((128, 50), np.float32), "chroma": np.zeros((12, 47), np.float32)}
    with pytest.raises(DataError, match="mel T=50, chroma T=47"):
        stack(parts, ["mel", "chroma"])
    with pytest.raises(DataError, match="beat"):
        stack(parts, ["mel", "beat"])


def test_pack_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal((140, t)).astype(np.float32) for t in (5, 1, 33, 12)]
    meta = {"ids": ["a", "b", "c", "d"], "features": {"mel": [0, 128]}, "version": 1}
    path = tmp_path / "sub" / "clips.pack"
    write_pack(path, arrays, meta)
    assert [p.name for p in path.parent.iterdir()] == ["clips.pack"]  # no temporary left behind
    for mmap in (False, True):
        got, got_meta = read_pack(path, mmap=mmap)
        assert got_meta == meta and len(got) == 4
        for a, b in zip(arrays, got):
            assert b.shape == a.shape and b.dtype == np.float32
            np.testing.assert_array_equal(a, b)
        assert all(np.shares_memory(got[0].base, g) for g in got)  # views into one buffer
    empty, meta = read_pack(write_pack(tmp_path / "empty.pack", [], {"n": 0}) or tmp_path / "empty.pack")
    assert empty == [] and meta == {"n": 0}


def test_pack_refuses_mixed_bins_and_detects_damage(tmp_path):
    with pytest.raises(DataError, match=r"array 1 has shape \(12, 4\)"):
        write_pack(tmp_path / "x.pack", [np.zeros((128, 3)), np.zeros((12, 4))], {})
    with pytest.raises(DataError, match="JSON"):
        write_pack(tmp_path / "x.pack", [np.zeros((2, 3))], {"when": object()})
    assert not list(tmp_path.iterdir())
    path = tmp_path / "ok.pack"
    write_pack(path, [np.ones((4, 10), np.float32)], {})
    data = path.read_bytes()
    path.write_bytes(data[:-8])
    with pytest.raises(DataError, match="truncated") as err:
        read_pack(path)
    assert str(path) in str(err.value)
    path.write_bytes(b"PK\x03\x04" + data[4:])
    with pytest.raises(DataError, match="not a zoo pack"):
        read_pack(path)
    with pytest.raises(DataError, match="does not exist"):
        read_pack(tmp_path / "absent.pack")
