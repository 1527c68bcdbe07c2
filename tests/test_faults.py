"""Fault injection (the Trust issue): damage what the zoo wrote or reads, and check it is caught.

One section per fault class; each test injects one fault and checks the outcome: the damage is
detected, the user is told, and no damaged byte reaches the arrays a run trains on.
"""
from __future__ import annotations

import json
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from datafixtures import music, write_audio
from zoo.data import pack as pack_module
from zoo.data.audio import load_audio
from zoo.data.extract import extract_audio
from zoo.data.pack import read_pack, write_pack
from zoo.data.prepare import prepare
from zoo.errors import DataError
from zoo.protocols import Clip
from zoo.registry import Registry

SEAL = b"ZOOCRC1\0"  # the cache entry's seal, as zoo.data.extract documents it


@pytest.fixture(scope="module")
def registry():
    return Registry()


@pytest.fixture(scope="module")
def mel(registry):
    return registry.create("feature", "mel")


@pytest.fixture
def songs(tmp_path):
    return [write_audio(tmp_path / "audio" / f"s{k}.wav", music(1.2, seed=k, root_hz=150 + 40 * k)) for k in range(4)]


@dataclass
class Songs:
    """A data set of audio clips with their splits given (nothing drawn, nothing but the files read)."""

    paths: list
    name: str = "songs"

    def clips(self, rate):
        return [Clip(id=p.stem, split=("train", "train", "val", "test")[k], label="ab"[k % 2], audio=p)
                for k, p in enumerate(self.paths)]

    def describe(self):
        return f"songs: {len(self.paths)} clips"


def run(paths, features, cache):
    return prepare(Songs(paths), features, rate="frames", progress=False, workers=1, cache_dir=cache)


def fresh(path, feature):
    """The feature computed from the audio now, with no cache involved."""
    return feature.from_audio(load_audio(path, feature.sample_rate), feature.sample_rate).astype(np.float32)


def entries(cache):
    return sorted((cache / "features").rglob("*.npy"))


def flip(path, at):
    """Invert the byte at ``at`` (negative: from the end), as a disk fault or another tool might."""
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def sealed(array):
    """The bytes of a cache entry holding ``array`` with a valid seal (the documented format)."""
    import io

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    blob = buf.getvalue()
    return blob + SEAL + zlib.crc32(blob).to_bytes(4, "little")


def extract(paths, features, cache, **kw):
    stats = {}
    out = extract_audio(paths, features, cache_dir=cache, workers=1, progress=False, stats=stats, **kw)
    return out, stats


# -- feature cache entries: bytes changed after they were written ----------------------------
def test_flipped_bytes_in_an_entry_are_recomputed_by_the_next_prepare(songs, mel, tmp_path):
    cache = tmp_path / "cache"
    first = run(songs, {"mel": mel}, cache)
    written = {p: p.stat().st_mtime_ns for p in entries(cache)}
    assert len(written) == len(songs)
    victim = next(iter(written))
    flip(victim, victim.stat().st_size // 2)  # one byte in the middle of the array's values
    for pack in (cache / "packs").iterdir():
        pack.unlink()  # else the pack alone answers, and the entries are not read
    with pytest.warns(UserWarning, match=rf"{re.escape(str(victim))} .*fails its checksum.*recomputing") as told:
        second = run(songs, {"mel": mel}, cache)
    assert len([w for w in told if "feature cache entry" in str(w.message)]) == 1
    named = next(p for p in songs if str(p) in str(told[0].message))
    k = second.ids.index(named.stem)
    np.testing.assert_array_equal(second.x[k], fresh(named, mel))
    for a, b in zip(first.x, second.x):
        np.testing.assert_array_equal(a, b)
    rewritten = [p for p in entries(cache) if p.stat().st_mtime_ns != written[p]]
    assert rewritten == [victim]  # only the damaged entry was recomputed
    _, stats = extract(songs, {"mel": mel}, cache)
    assert stats["cached"] == len(songs)  # and it is sound again


@pytest.mark.parametrize("where", ["header", "values", "seal"])
def test_a_flip_anywhere_in_an_entry_is_caught(songs, mel, tmp_path, where):
    cache = tmp_path / "cache"
    extract(songs[:1], {"mel": mel}, cache)
    [entry] = entries(cache)
    flip(entry, {"header": 20, "values": 200, "seal": -2}[where])
    with pytest.warns(UserWarning, match="recomputing it"):
        out, stats = extract(songs[:1], {"mel": mel}, cache)
    assert stats["computed"] == 1
    np.testing.assert_array_equal(out[0]["mel"], fresh(songs[0], mel))


# -- feature cache entries: truncated or unparsable --------------------------------------------
@pytest.mark.parametrize("keep", [0, 40, 0.5, -5])
def test_a_truncated_entry_is_recomputed(songs, mel, tmp_path, keep):
    cache = tmp_path / "cache"
    extract(songs[:1], {"mel": mel}, cache)
    [entry] = entries(cache)
    data = entry.read_bytes()
    entry.write_bytes(data[:int(keep * len(data)) if isinstance(keep, float) else keep])
    with pytest.warns(UserWarning, match=rf"{re.escape(str(songs[0]))}.*(truncated|cannot be parsed)"):
        out, stats = extract(songs[:1], {"mel": mel}, cache)
    assert stats["computed"] == 1
    np.testing.assert_array_equal(out[0]["mel"], fresh(songs[0], mel))
    assert entry.read_bytes() == data


# -- feature cache entries: values no feature may give, under a valid checksum -----------------
def test_nan_under_a_rewritten_checksum_is_rejected(songs, mel, tmp_path):
    cache = tmp_path / "cache"
    good, _ = extract(songs[:1], {"mel": mel}, cache)
    [entry] = entries(cache)
    bad = good[0]["mel"].copy()
    bad[3, 4] = np.nan
    entry.write_bytes(sealed(bad))  # a tool that rewrote the entry, checksum and all
    with pytest.warns(UserWarning, match="NaN or infinite"):
        out, stats = extract(songs[:1], {"mel": mel}, cache)
    assert stats["computed"] == 1 and np.isfinite(out[0]["mel"]).all()
    np.testing.assert_array_equal(out[0]["mel"], good[0]["mel"])


def test_an_array_of_the_wrong_shape_under_a_valid_checksum_is_rejected(songs, mel, tmp_path):
    cache = tmp_path / "cache"
    good, _ = extract(songs[:1], {"mel": mel}, cache)
    [entry] = entries(cache)
    entry.write_bytes(sealed(good[0]["mel"][:-1]))
    with pytest.warns(UserWarning, match=r"shape \(127, \d+\), not float32 \[128, T\]"):
        out, _ = extract(songs[:1], {"mel": mel}, cache)
    np.testing.assert_array_equal(out[0]["mel"], good[0]["mel"])


# -- feature cache entries: written before entries carried a checksum ---------------------------
def test_entries_without_a_checksum_are_recomputed_with_one_warning(songs, mel, registry, tmp_path):
    cache = tmp_path / "cache"
    features = {"mel": mel, "chroma": registry.create("feature", "chroma")}
    good, _ = extract(songs, features, cache)
    for entry in entries(cache):  # as an older zoo wrote them: a bare .npy
        np.save(entry, np.load(entry), allow_pickle=False)
    with pytest.warns(UserWarning) as told:
        out, stats = extract(songs, features, cache)
    assert [str(w.message) for w in told] == [
        f"{2 * len(songs)} feature cache entries under {cache / 'features'} have no checksum (written by an "
        f"older zoo) and cannot be verified: recomputing them"]
    assert stats["computed"] == len(songs)
    for a, b in zip(good, out):
        for name in features:
            np.testing.assert_array_equal(a[name], b[name])
    assert all(e.read_bytes()[-12:-4] == SEAL for e in entries(cache))


# -- feature cache entries: a writer killed mid-write -------------------------------------------
def test_a_writer_killed_before_the_rename_leaves_no_entry(songs, mel, tmp_path, monkeypatch):
    cache = tmp_path / "cache"

    def killed(src, dst):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(os, "replace", killed)
        with pytest.raises(KeyboardInterrupt):
            extract(songs[:1], {"mel": mel}, cache)
    assert not [p for p in (cache / "features").rglob("*") if p.is_file()]  # no entry, no temporary
    out, stats = extract(songs[:1], {"mel": mel}, cache)
    assert stats["computed"] == 1
    np.testing.assert_array_equal(out[0]["mel"], fresh(songs[0], mel))


def test_what_a_hard_killed_writer_leaves_is_never_trusted(songs, mel, tmp_path):
    cache = tmp_path / "cache"
    good, _ = extract(songs[:1], {"mel": mel}, cache)
    [entry] = entries(cache)
    data = entry.read_bytes()
    # Killed before the rename: a half temporary beside the entry. A copy tool killed in place
    # (no rename at all): the entry itself half written.
    (entry.parent / f".{entry.stem}.999.0.tmp").write_bytes(data[:len(data) // 2])
    entry.write_bytes(data[:len(data) // 2] + bytes(len(data) - len(data) // 2))
    with pytest.warns(UserWarning, match="fails its checksum|truncated|cannot be parsed"):
        out, stats = extract(songs[:1], {"mel": mel}, cache)
    assert stats["computed"] == 1
    np.testing.assert_array_equal(out[0]["mel"], good[0]["mel"])
    assert entry.read_bytes() == data


# -- packs ----------------------------------------------------------------------------------------
def _pack(tmp_path):
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal((6, t)).astype(np.float32) for t in (3, 8, 5)]
    path = tmp_path / "p.pack"
    write_pack(path, arrays, {"ids": ["a", "b", "c"]})
    return path, arrays


def reseal_pack(path, change):
    """Apply ``change`` to the pack's flat data, then rewrite every checksum (the documented layout)."""
    raw = path.read_bytes()
    offset, length = int.from_bytes(raw[-32:-24], "little"), int.from_bytes(raw[-24:-16], "little")
    index = json.loads(raw[offset:offset + length])
    data = np.frombuffer(raw[64:offset], "<f4").copy()
    change(data)
    ends = np.cumsum([0] + [index["n_bins"] * t for t in index["lengths"]])
    firsts = [s[0] for s in index["shards"]] + [len(index["lengths"])]
    for k, shard in enumerate(index["shards"]):
        shard[1] = zlib.crc32(data[ends[firsts[k]]:ends[firsts[k + 1]]])
    blob = json.dumps(index, separators=(",", ":")).encode()
    trailer = (offset.to_bytes(8, "little") + len(blob).to_bytes(8, "little") + zlib.crc32(blob).to_bytes(4, "little")
               + bytes(4) + b"ZOOPACK3")
    path.write_bytes(raw[:64] + data.tobytes() + blob + trailer)


@pytest.mark.parametrize("where", ["reserved", "values", "index", "index offset", "index checksum", "end magic"])
@pytest.mark.parametrize("mmap", [False, True])
def test_a_flipped_byte_in_a_pack_is_a_clear_error(tmp_path, where, mmap):
    path, _ = _pack(tmp_path)  # magic 0-7, zeros to 64, values 64-447, index 448-..., trailer the last 32
    flip(path, {"reserved": 20, "values": 300, "index": 460, "index offset": -30, "index checksum": -14,
                "end magic": -2}[where])
    with pytest.raises(DataError, match="fails its checksum|corrupt header|truncated or corrupt") as err:
        read_pack(path, mmap=mmap)
    assert str(path) in str(err.value) and "delete it; the next prepare" in str(err.value)
    with pytest.raises(DataError, match="fails its checksum|corrupt header|truncated or corrupt"):
        pack_module.open_pack(path)  # read clip by clip: checked the same way


def test_a_pack_resealed_after_a_change_reads_back_the_change(tmp_path):
    path, arrays = _pack(tmp_path)  # the test's own resealing follows the documented layout
    reseal_pack(path, lambda data: data.__setitem__(0, 7.0))
    got, _ = read_pack(path)
    assert got[0][0, 0] == 7.0 and np.array_equal(got[2], arrays[2])
    assert pack_module.open_pack(path)[0][0, 0] == 7.0


@pytest.mark.parametrize("how", ["whole", "mmap", "clip by clip"])
def test_each_shard_of_a_pack_is_checked(tmp_path, how):
    rng = np.random.default_rng(6)
    arrays = [rng.standard_normal((6, 2)).astype(np.float32) for _ in range(10)]  # 48 bytes each
    path = tmp_path / "p.pack"
    write_pack(path, arrays, {}, shard_bytes=100)  # two clips per shard: 5 shards

    def read():
        if how == "clip by clip":
            pack = pack_module.open_pack(path)
            return [pack[i] for i in range(len(pack))]
        return read_pack(path, mmap=how == "mmap")[0]

    for a, b in zip(arrays, read()):
        np.testing.assert_array_equal(a, b)
    assert pack_module.pack_summary(path)["shards"] == 5
    flip(path, 64 + 5 * 48 + 4 * 3 + 1)  # clip 5, value 3: shard 2
    with pytest.raises(DataError, match=r"in 1 of 5 shard\(s\) \(the first: shard 2, clips 4-5\)"):
        read()


def test_a_pack_header_edited_into_other_valid_json_fails_its_checksum(tmp_path):
    path, _ = _pack(tmp_path)
    path.write_bytes(path.read_bytes().replace(b'"a"', b'"z"', 1))
    with pytest.raises(DataError, match="fails its checksum"):
        read_pack(path)


def test_nan_in_a_pack_is_refused_on_write_and_on_read(tmp_path):
    path, arrays = _pack(tmp_path)
    arrays[1][2, 3] = np.inf
    with pytest.raises(DataError, match=r"array 1 holds NaN or infinite"):
        write_pack(tmp_path / "bad.pack", arrays, {})
    assert not (tmp_path / "bad.pack").exists()
    # a value rewritten in place, and the checksums with it: the finiteness check still stands
    reseal_pack(path, lambda data: data.__setitem__(-1, np.nan))
    with pytest.raises(DataError, match=rf"{re.escape(str(path))} holds NaN or infinite values"):
        read_pack(path)


@pytest.mark.parametrize("magic, why", [(b"ZOOPACK1", "without checksums"), (b"ZOOPACK2", "in a layout that cannot be read clip")])
def test_a_pack_of_an_older_zoo_is_refused(tmp_path, magic, why):
    path, _ = _pack(tmp_path)
    path.write_bytes(magic + path.read_bytes()[8:])
    with pytest.raises(DataError, match=f"older zoo, {why}"):
        read_pack(path)


def test_a_pack_writer_killed_before_the_rename_leaves_nothing(tmp_path, monkeypatch):
    def killed(src, dst):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(os, "replace", killed)
        with pytest.raises(KeyboardInterrupt):
            _pack(tmp_path)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("fault", ["flip", "truncate", "unsealed", "older layout"])
def test_a_damaged_pack_is_rebuilt_by_prepare_and_the_user_told(songs, mel, tmp_path, capsys, fault):
    cache = tmp_path / "cache"
    first = run(songs, {"mel": mel}, cache)
    [pack] = (cache / "packs").iterdir()
    data = pack.read_bytes()
    if fault == "flip":
        flip(pack, -100)
    elif fault == "truncate":
        pack.write_bytes(data[:len(data) * 2 // 3])
    else:
        pack.write_bytes((b"ZOOPACK1" if fault == "unsealed" else b"ZOOPACK2") + data[8:])
    capsys.readouterr()
    second = run(songs, {"mel": mel}, cache)
    err = capsys.readouterr().err
    assert "rebuilding the feature pack" in err and str(pack) in err
    assert second.ids == first.ids and second.fingerprint == first.fingerprint
    for a, b in zip(first.x, second.x):
        np.testing.assert_array_equal(a, b)
    assert pack.read_bytes() == data  # rebuilt, byte for byte
    run(songs, {"mel": mel}, cache)
    assert "rebuilding" not in capsys.readouterr().err
