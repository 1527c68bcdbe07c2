"""Data bigger than memory (issue 15, part 2): packs written clip by clip in checksummed shards,
prepare that never holds every clip, streamed batches equal to resident ones, and ``zoo data pack``."""
from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import torch

import zoo
from zoo.cli import main
from zoo.data import pack as pack_module
from zoo.data import prepare as prepare_module
from zoo.data.pack import PackWriter, open_pack, pack_summary, read_pack, write_pack
from zoo.data.prepare import prepare
from zoo.data.preparedset import parse_budget
from zoo.data.readers.folder import FolderConfig, FolderDataset
from zoo.engine import batches as batches_module
from zoo.engine.batches import Normaliser, make_split, make_splits, task_targets
from zoo.engine.reporting import ConsoleReporter
from zoo.engine.trainconfig import train_config
from zoo.errors import ConfigError, DataError
from zoo.model.building import build_components
from zoo.registry import Registry
from zoo.spec import parse_spec
from zoo.tracking import NullTracker
from zoo.workspace import Workspace

SPEC = "lstm+mel:genre"
SMALL = {"backbone": {"hidden": 8, "layers": 1}, "mel": {"n_mels": 32},
         "train": {"batch_size": 4, "patience": 0, "warmup": 0.0, "lr": 0.01}}
SETS = ["--set", "backbone.hidden=8", "--set", "backbone.layers=1", "--set", "mel.n_mels=32"]


def clips(n, rows=6, seed=0, lo=1, hi=40):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((rows, int(t))).astype(np.float32) for t in rng.integers(lo, hi, n)]


# -- the pack: written as clips come, shards of bounded size, every shard checked ----------------
def test_many_clips_and_a_tiny_shard_size_give_several_shards_read_back_bit_exact(tmp_path):
    arrays = clips(40)
    path = tmp_path / "p.pack"
    write_pack(path, iter(arrays), {"n": 40}, shard_bytes=1000)  # any iterable, consumed one clip at a time
    info = pack_summary(path)
    assert info["clips"] == 40 and info["shards"] > 5 and info["data_bytes"] == sum(a.nbytes for a in arrays)
    index = open_pack(path, verify=False).index
    ends = np.cumsum([a.nbytes for a in arrays])
    firsts = [s[0] for s in index["shards"]] + [40]
    for k in range(len(firsts) - 1):  # a shard is whole clips, at most shard_bytes unless a single clip
        size = ends[firsts[k + 1] - 1] - (ends[firsts[k] - 1] if firsts[k] else 0)
        assert size <= 1000 or firsts[k + 1] - firsts[k] == 1
    whole, meta = read_pack(path)
    lazy = open_pack(path)
    assert meta == lazy.meta == {"n": 40} and len(lazy) == 40
    assert lazy.lengths.tolist() == [a.shape[1] for a in arrays]
    for a, b, c in zip(arrays, whole, lazy):
        assert b.dtype == c.dtype == np.float32
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    view = lazy.take([39, 2])
    np.testing.assert_array_equal(view[0], arrays[39])
    assert view.lengths.tolist() == [arrays[39].shape[1], arrays[2].shape[1]]


def test_the_writer_writes_each_clip_as_it_comes(tmp_path):
    path = tmp_path / "p.pack"
    arrays = clips(6, rows=64, lo=200, hi=201)  # 51 KB each: far above the file buffer
    with PackWriter(path, shard_bytes=120_000) as w:
        for k, a in enumerate(arrays):
            w.add(a)
            # on disk already: the writer keeps no clip, only the running checksum of its shard
            assert w.tmp.stat().st_size >= 64 + (k + 1) * a.nbytes - 8192
        assert not path.exists()
        w.close({})
    assert path.exists() and not w.tmp.exists() and pack_summary(path)["shards"] == 3


@pytest.mark.parametrize("how", ["open", "read whole"])
def test_a_flipped_byte_in_one_shard_names_the_pack_and_the_shard(tmp_path, how):
    arrays = clips(12, rows=4, lo=10, hi=11)  # 160 bytes each, two per shard
    path = tmp_path / "p.pack"
    write_pack(path, arrays, {}, shard_bytes=320)
    data = bytearray(path.read_bytes())
    data[64 + 7 * 160 + 9] ^= 0x10  # clip 7: shard 3
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"fails its checksum in 1 of 6 shard\(s\) \(the first: shard 3, clips 6-7\)") as err:
        open_pack(path) if how == "open" else read_pack(path)
    assert str(path) in str(err.value) and "delete it" in str(err.value)
    lazy = open_pack(path, verify=False)  # the index is fine: only the shard's data changed
    assert len(lazy) == 12


def test_a_truncated_pack_and_a_killed_writer_are_never_accepted(tmp_path):
    arrays = clips(8)
    path = tmp_path / "p.pack"
    write_pack(path, arrays, {}, shard_bytes=200)
    data = path.read_bytes()
    for cut in (len(data) - 1, len(data) // 2, 70, 10):
        path.write_bytes(data[:cut])
        for read in (read_pack, open_pack):
            with pytest.raises(DataError, match="truncated|not a zoo pack") as err:
                read(path)
            assert str(path) in str(err.value)
    # A writer killed by an exception mid-way: nothing is left, not even its temporary file.
    path.unlink()

    def dying():
        yield from arrays[:3]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_pack(path, dying(), {})
    assert list(tmp_path.iterdir()) == []
    # A writer killed outright (SIGKILL: no clean-up) leaves its temporary file; copied into place,
    # it is refused all the same: the index, written last, is missing.
    w = PackWriter(path, shard_bytes=200)
    for a in arrays:
        w.add(a)
    w._file.flush()
    shutil.copy(w.tmp, path)
    for read in (read_pack, open_pack):
        with pytest.raises(DataError, match="does not end with its index: truncated"):
            read(path)
    w.abort()


def test_a_pack_changed_after_it_was_opened_is_an_error_not_data(tmp_path):
    arrays = clips(5, lo=30, hi=31)
    path = tmp_path / "p.pack"
    write_pack(path, arrays, {})
    lazy = open_pack(path)
    with open(path, "r+b") as f:
        f.truncate(64 + 2 * arrays[0].nbytes)
    np.testing.assert_array_equal(lazy[1], arrays[1])
    with pytest.raises(DataError, match="ended inside clip 3"):
        lazy[3]


# -- prepare: extraction results go to the pack writer chunk by chunk -----------------------------
def test_prepare_over_the_budget_streams_clips_into_the_pack_and_reads_them_lazily(audio_folder, tmp_path,
                                                                                   monkeypatch):
    mel = Registry().create("feature", "mel", {"n_mels": 32})
    dataset = FolderDataset(FolderConfig(), audio_folder)
    seen = []
    real = prepare_module._extract

    def counting(chunk, *args, **kw):
        seen.append(len(chunk))
        return real(chunk, *args, **kw)

    monkeypatch.setattr(prepare_module, "_extract", counting)
    monkeypatch.setattr(prepare_module, "CHUNK_CLIPS", 5)

    def run(budget, cache):
        return prepare(dataset, {"mel": mel}, rate="frames", progress=False, workers=1, cache_dir=cache,
                       memory_budget=budget, shard_bytes=20_000)

    fits = run(None, tmp_path / "a")
    assert not fits.on_disk and isinstance(fits.x, list)
    assert max(seen) == 5 and sum(seen) == 24  # five clips at a time
    seen.clear()
    big = run(50_000, tmp_path / "b")  # a fresh cache: extracted again, kept only in the pack
    assert big.on_disk and sum(seen) == 24 and max(seen) == 5
    assert big.ids == fits.ids and big.fingerprint == fits.fingerprint
    assert big.lengths.tolist() == fits.lengths.tolist() and big.n_bins == fits.n_bins == 32
    for a, b in zip(fits.x, big.x):
        np.testing.assert_array_equal(a, b)
    assert pack_summary(big.x.path)["shards"] > 1
    seen.clear()
    again = run(50_000, tmp_path / "b")  # from the pack: nothing extracted, still on disk
    assert seen == [] and again.on_disk
    sub = again.subset(again.indices("train"))
    assert sub.on_disk and len(sub.x) == len(sub.ids)
    np.testing.assert_array_equal(sub.x[0], fits.x[int(again.indices("train")[0])])
    # normalisation statistics read clip by clip match the in-memory ones
    rows = fits.indices("train")
    a, b = Normaliser.fit(fits.clips(rows)), Normaliser.fit(again.clips(rows))
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.std, b.std)


# -- streamed splits -----------------------------------------------------------------------------------
@pytest.fixture
def on_disk(tmp_path):
    """An in-memory Prepared and the same clips on disk."""
    from enginefixtures import separable
    prepared = separable(6)
    path = tmp_path / "s.pack"
    write_pack(path, prepared.x, {}, shard_bytes=2000)
    return prepared, dataclasses.replace(prepared, x=open_pack(path))


def test_streamed_batches_equal_resident_ones_bit_for_bit(on_disk):
    memory, disk = on_disk
    assert disk.on_disk and not memory.on_disk
    tasks = build_components(parse_spec("lstm+chroma:genre,valence"), Registry()).tasks
    norm = Normaliser.fit(memory.clips(memory.indices("train")))
    targets = task_targets(memory, tasks)
    rows = memory.indices("train")
    cpu = torch.device("cpu")
    resident = make_split("train", memory, rows, targets, norm, cpu)
    host = make_split("train", memory, rows, targets, norm, cpu, budget=0)
    streamed = make_split("train", disk, rows, targets, norm, cpu, budget=0)
    assert (resident.path, host.path, streamed.path) == ("resident", "host", "streamed")
    order = [np.array([0, 3, 5]), np.array([7, 1]), np.array([2, 4, 6, 8])]
    for a, b, c in zip(resident.batches(order), host.batches(order), streamed.batches(order)):
        assert torch.equal(a.x, b.x) and torch.equal(a.x, c.x)
        assert torch.equal(a.lengths, c.lengths) and torch.equal(a.y["genre"], c.y["genre"])
    # leaving the loop early stops the prefetching thread; an error while reading reaches the loop
    first = next(iter(streamed.batches(iter(order * 50))))
    assert torch.equal(first.x, resident.batch(order[0]).x)

    def broken():
        yield order[0]
        raise DataError("pack gone")

    with pytest.raises(DataError, match="pack gone"):
        list(streamed.batches(broken()))


def test_the_budget_decides_the_path_and_resident_splits_share_it(on_disk):
    memory, disk = on_disk
    tasks = build_components(parse_spec("lstm+chroma:genre"), Registry()).tasks
    norm = Normaliser.fit(memory.clips(memory.indices("train")))
    cpu = torch.device("cpu")
    need = {s: make_split(s, memory, memory.indices(s), {}, norm, cpu).need for s in ("train", "val", "test")}
    paths = lambda splits: {k: v.path for k, v in splits.items()}  # noqa: E731
    assert set(paths(make_splits(disk, tasks, norm, cpu)).values()) == {"resident"}
    assert paths(make_splits(disk, tasks, norm, cpu, budget=1)) == dict.fromkeys(need, "streamed")
    assert paths(make_splits(memory, tasks, norm, cpu, budget=1)) == dict.fromkeys(need, "host")
    # train and val fit one after the other, test no longer does
    budget = need["train"] + need["val"] + need["test"] - 1
    assert paths(make_splits(disk, tasks, norm, cpu, budget=budget)) == {"train": "resident", "val": "resident",
                                                                         "test": "streamed"}
    assert batches_module.describe_paths(make_splits(disk, tasks, norm, cpu, budget=1), 1) == {
        "data.train.path": "streamed", "data.val.path": "streamed", "data.test.path": "streamed",
        "data.memory_budget": 1}


def test_the_memory_budget_setting_is_checked_when_parsed():
    assert parse_budget("auto") is None and parse_budget(0) is None
    assert parse_budget("256MB") == 256_000_000 and parse_budget("2GiB") == 2 << 30 and parse_budget("4096") == 4096
    assert train_config({"memory_budget": "64MiB"}).memory_budget == "64MiB"
    for bad in ("lots", "-1MB", "12QB"):
        with pytest.raises(ConfigError, match=rf"memory_budget '{bad}': give bytes such as 256MB.*train.memory_budget"):
            train_config({"memory_budget": bad})


# -- end to end ------------------------------------------------------------------------------------
def _train(audio_folder, workspace, budget):
    tracker, lines = NullTracker(), []
    settings = {**SMALL, "train": {**SMALL["train"], "memory_budget": budget}}
    res = zoo.train(SPEC, data=zoo.DataRequest(str(audio_folder), workers=1), settings=settings, epochs=2,
                    seeds=zoo.SeedPlan(first=3), progress=False,
                    tracker=tracker, workspace=workspace, reporter=ConsoleReporter(lines.append, progress=False))
    params = next(r.params for r in tracker.runs.values() if "data.train.path" in r.params)
    return res, params, lines


def test_a_forced_tiny_budget_streams_and_trains_exactly_like_the_resident_path(audio_folder, tmp_path):
    workspace = Workspace(home=tmp_path / "home")
    resident, p_res, lines_res = _train(audio_folder, workspace, "auto")
    streamed, p_str, lines_str = _train(audio_folder, workspace, "1KB")
    assert p_res["data.train.path"] == "resident" and p_res["data.memory_budget"] == "auto"
    assert [p_str[f"data.{s}.path"] for s in ("train", "val", "test")] == ["streamed"] * 3
    assert p_str["data.memory_budget"] == "1000" and p_str["train.memory_budget"] == "1KB"
    assert "data path: train streamed, val streamed, test streamed (train.memory_budget=1KB)" in lines_str
    assert not any(line.startswith("data path:") for line in lines_res)
    assert resident.test.keys() == streamed.test.keys()
    for key, value in resident.test.items():
        assert streamed.test[key] == pytest.approx(value, abs=1e-5), key
    for a, b in zip(resident.history, streamed.history):
        for key in ("train.loss", "val.loss"):
            assert b[key] == pytest.approx(a[key], abs=1e-5)


def test_zoo_data_pack_prepares_the_shards_a_later_run_reads_without_extracting(audio_folder, tmp_path,
                                                                                monkeypatch, capsys):
    home = tmp_path / "home"
    monkeypatch.setenv("ZOO_HOME", str(home))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
    assert main(["data", "pack", SPEC, "--data", str(audio_folder), "--shard-size", "40KB", "--workers", "1",
                 "--no-progress", *SETS]) == 0
    out = capsys.readouterr().out
    [pack] = (home / "cache" / "packs").iterdir()
    info = pack_summary(pack)
    assert f"pack:   {pack}" in out and "clips:  24 " in out and f"shards: {info['shards']} " in out
    assert info["shards"] > 1 and f"bytes:  {pack.stat().st_size:,}" in out
    stamp = pack.stat().st_mtime_ns

    def no_extraction(*args, **kwargs):
        raise AssertionError("zoo run extracted features although the pack was there")

    monkeypatch.setattr(prepare_module, "_extract", no_extraction)
    assert main(["run", SPEC, "--data", str(audio_folder), "--no-track", "--epochs", "1", "--patience", "0",
                 "--no-progress", *SETS]) == 0
    assert "test results" in capsys.readouterr().out
    assert pack.stat().st_mtime_ns == stamp and list((home / "cache" / "packs").iterdir()) == [pack]
    assert main(["data", "pack", SPEC, "--shard-size", "big"]) == 2
    assert "--shard-size 'big': give bytes such as 256MiB" in capsys.readouterr().err


def test_the_streaming_benchmark_measures_the_paths_it_names(tmp_path):
    import sys
    from pathlib import Path
    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    from bench import streaming

    section, records = streaming.run(budget=256 << 10, factors=(1.0, 2.0), bins=32, frames=50, shard=64 << 10,
                                     epochs=1, threads=1, workdir=tmp_path, say=lambda line: None)
    by = {(r["factor"], r["mode"]): r for r in records}
    assert set(by) == {(1.0, "streamed"), (2.0, "streamed"), (2.0, "resident")}
    assert by[(1.0, "streamed")]["paths"]["train"] == by[(2.0, "streamed")]["paths"]["train"] == "streamed"
    assert by[(2.0, "resident")]["paths"] == {"train": "resident", "val": "resident", "test": "resident"}
    assert by[(2.0, "streamed")]["train_clips"] > 1.9 * by[(1.0, "streamed")]["train_clips"]
    # the same clips, batches and seed: the streamed and the resident epoch learn the same
    assert by[(2.0, "streamed")]["train_loss"] == pytest.approx(by[(2.0, "resident")]["train_loss"], abs=1e-5)
    rss, speed = section.rows
    assert rss.zoo > 0 and rss.base > 0 and rss.goal == 1.3 and not rss.higher_is_better
    assert speed.zoo > 0 and speed.base > 0 and speed.goal == 0.8
