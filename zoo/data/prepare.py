"""Turn a data set into a :class:`~zoo.data.preparedset.Prepared` for one set of stacked features.

Audio clips go through :func:`zoo.data.extract.extract_audio` (decoded once, each feature cached
on disk); lab arrays through :func:`~zoo.data.labarray.load_lab_array` and each feature's
``from_lab``. The stacked ``[F, T_i]`` arrays are packed into one file in the cache as they come
(:data:`CHUNK_CLIPS` clips extracted at a time), keyed by everything that decides them but where the
files lie (the data set's kind, every clip's id, the features' settings and versions, limit, seed and
``max_seconds``): a second prepare of the same data reads that one file, also from a copied folder
and cache. The pack also records the
sha256 of every clip's file with its size, modification and change times: a file whose times or size
differ since (edited in place, even with its modification time put back by ``cp -p``, ``rsync -a`` or
``tar``: the change time cannot be put back) is hashed again, and any content that changed rebuilds the
pack; files that look the same cost one ``stat``. The data fingerprint covers the content, not the times.
Features that fit the memory budget are returned in memory; bigger ones stay in the pack and are
read clip by clip (``Prepared.on_disk``; docs/scale.md, "Data bigger than memory").

Audio longer than ``max_seconds`` (default :data:`MAX_SECONDS`, ``--max-seconds``) is cut to its
middle ``max_seconds`` when decoded, and the description says how many clips were cut: one long
file among short clips would otherwise pad every batch to its length. Lab arrays are used as they
are. ``min_class_clips`` refuses classes with fewer clips. Every clip id, class name and skip
reason is made printable (:func:`zoo.fsio.shown`): a file name that is not UTF-8 is shown with
``\\xNN`` escapes in reports, logs and the tracking store.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ..errors import ConfigError, DataError, ZooError
from ..fsio import reap_temporaries, shown
from ..protocols import Clip, Dataset, Feature
from .preparedset import Prepared, host_budget
from .select import select, source

if TYPE_CHECKING:  # the pack module is imported where a pack is made or read
    from .pack import PackWriter

PACK_VERSION = 1
CHUNK_CLIPS = 512
"""Clips extracted (and held) at a time while a pack is written: the clips of one chunk go to the
pack writer before the next chunk is extracted."""
MAX_SECONDS = 30.0
"""Default longest audio per clip, in seconds (``--max-seconds``; 0 or None: no limit). The lab's
clips are 30 s excerpts."""


def pack_key(kind: str, clips: Sequence[Clip], features: Mapping[str, Feature], *, rate: str,
             limit: int | None, seed: int, max_seconds: float | None = None) -> str:
    """sha256 over everything that decides the stacked arrays but where the files lie: the data set's
    kind, the clips' ids, the features, limit, seed and cut. Each file's content is checked apart
    (:func:`_changed`), so a data folder moved or copied (with its cache) reads the same pack."""
    doc = {
        "pack": PACK_VERSION, "rate": rate, "dataset": kind, "limit": limit, "seed": seed,
        "max_seconds": max_seconds or None, "features": _feature_doc(features), "clips": [c.id for c in clips],
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _feature_doc(features: Mapping[str, Feature]) -> list:
    """What decides a feature's arrays: its name, class, provider version and settings."""
    from .extract import provider_version
    return [[n, f"{type(f).__module__}.{type(f).__qualname__}", provider_version(f), dict(f.settings())]
            for n, f in features.items()]


def _arrays_key(features: Mapping[str, Feature], rate: str, max_seconds: float | None, digests: list) -> str:
    """What the fingerprint holds of the arrays: the features, the rate, the cut and each clip's file content.
    No path and no description: the same clips give the same fingerprint wherever they lie and however
    they got there (a full set synthesised before, or only the clips a --limit keeps)."""
    doc = {"rate": rate, "max_seconds": max_seconds or None, "features": _feature_doc(features), "files": digests}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _stamp(path: Path) -> list[int] | None:
    """What a cheap look says of a file: size, modification and change times (ns); None when unreadable."""
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _digest(path: Path) -> str | None:
    from .extract import file_digest
    try:
        return file_digest(path)
    except DataError:  # a bad clip: its own error comes from extraction, or it is skipped there
        return None


def _contents(clips: Sequence[Clip], workers: int | None = None) -> list[list]:
    """``[stamp, sha256]`` of every clip's file, for the pack to record (threads: this is reading)."""
    paths = [source(c) for c in clips]
    with ThreadPoolExecutor(max_workers=min(8, workers or os.cpu_count() or 1)) as pool:
        stamps = [_stamp(p) for p in paths]
        digests = list(pool.map(_digest, paths))
    return [[st, d] for st, d in zip(stamps, digests)]


def _changed(clips: Sequence[Clip], recorded: list[list] | None) -> tuple[list[list] | None, list[str]]:
    """``(contents, changed clip ids)`` against what a pack recorded (:func:`_contents`): a file whose
    stamp differs is hashed again; ``contents`` has the new stamps. ``(None, [])``: nothing recorded."""
    if not isinstance(recorded, list) or len(recorded) != len(clips):
        return None, []
    contents, changed = [], []
    for c, (stamp, digest) in zip(clips, recorded):
        now = _stamp(source(c))
        if now == stamp:
            contents.append([stamp, digest])
            continue
        now_digest = _digest(source(c))
        if now_digest != digest:
            changed.append(c.id)
        contents.append([now, now_digest])
    return contents, changed


def _from_lab(path: Path, features: Mapping[str, Feature]):
    from .extract import stack
    from .labarray import load_lab_array

    fused = load_lab_array(path)
    try:
        parts = {n: np.asarray(f.from_lab(fused), dtype=np.float32) for n, f in features.items()}
        return stack(parts, list(features))
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from exc


def _long_audio(paths: Sequence[Path], max_seconds: float | None) -> list[bool | None]:
    """Per file, whether its header says it is longer than ``max_seconds`` (None: the header cannot
    be read, e.g. a format only audioread opens: such a file is decoded with the limit too)."""
    from .audio import audio_info

    if not max_seconds:
        return [False] * len(paths)
    out: list[bool | None] = []
    for p in paths:
        try:
            out.append(audio_info(p).duration > max_seconds)
        except DataError:
            out.append(None)
    return out


def _extract(clips: Sequence[Clip], features: Mapping[str, Feature], *, skip_bad: bool, workers: int | None,
             progress: bool, cache_dir: Path, desc: str, max_seconds: float | None = None):
    """``(arrays or None per clip, slices, skipped, cut)``: None marks a clip skipped for ``reason``;
    ``cut`` are the ids of clips longer than ``max_seconds``, cut to their middle."""
    from tqdm.auto import tqdm

    from .extract import extract_audio, stack

    out: list[np.ndarray | None] = [None] * len(clips)
    skipped: list[tuple[str, str]] = []
    slices: dict[str, tuple[int, int]] = {}

    def bad(i: int, exc: DataError) -> None:
        if not skip_bad:
            raise exc
        skipped.append((clips[i].id, str(exc)))

    audio = [i for i, c in enumerate(clips) if c.audio is not None]
    length = dict(zip(audio, _long_audio([source(clips[i]) for i in audio], max_seconds)))
    cut = [clips[i].id for i in audio if length[i]]
    # Only long files are extracted with the limit (part of their cache key): short ones keep the
    # cache entries they share with every other use of the same file.
    short = [i for i in audio if length[i] is False]
    for group, limit in ((short, None), ([i for i in audio if length[i] is not False], max_seconds)):
        if not group:
            continue
        results = extract_audio([source(clips[i]) for i in group], features, cache_dir=cache_dir, workers=workers,
                                progress=progress, skip_bad=skip_bad, desc=desc, max_seconds=limit)
        for i, res in zip(group, results):
            if isinstance(res, DataError):
                bad(i, res)
                continue
            try:
                out[i], slices = stack(res, list(features))
            except DataError as exc:
                bad(i, DataError(f"{source(clips[i])}: {exc}"))
    lab = [i for i, c in enumerate(clips) if c.array is not None]
    if lab:
        threads = max(1, min(8, workers or os.cpu_count() or 1))
        # Threads suffice: reading and gunzipping release the GIL, and from_lab only slices rows.
        with ThreadPoolExecutor(threads) as pool, \
                tqdm(total=len(lab), desc=desc, disable=not progress, file=sys.stderr, unit="clip") as bar:
            jobs = [pool.submit(_from_lab, source(clips[i]), features) for i in lab]
            for i, job in zip(lab, jobs):
                try:
                    out[i], slices = job.result()
                except DataError as exc:
                    if not skip_bad:
                        for j in jobs:
                            j.cancel()
                    bad(i, exc)
                bar.update()
    return out, slices, skipped, cut


def _extract_chunks(clips: Sequence[Clip], features: Mapping[str, Feature], *, chunk: int | None = None,
                    desc: str, **kw):
    """:func:`_extract` over ``chunk`` clips at a time, in order: yields ``(first clip index, arrays or
    None, slices, skipped, cut)`` per chunk, so that only one chunk's arrays are held at once (each
    clip's features are cached on disk as they are computed)."""
    chunk = chunk or CHUNK_CLIPS
    parts = -(-len(clips) // chunk)
    for k, start in enumerate(range(0, len(clips), chunk)):
        label = desc if parts == 1 else f"{desc} {k + 1}/{parts}"
        yield (start, *_extract(clips[start:start + chunk], features, desc=label, **kw))


def _read_pack(path: Path, key: str, clips: Sequence[Clip], skip_bad: bool, budget: int):
    """``(arrays, slices, skipped, cut, contents)`` of a sound pack made for ``key`` from the files as they
    are now, else why there is none to use (a str, for the run's output); the arrays are read whole when
    they fit ``budget`` bytes, else a :class:`~zoo.data.pack.PackFile` read clip by clip."""
    from .pack import open_pack, read_pack

    if not path.exists():
        return "no pack of these clips and settings yet (zoo data pack makes one ahead of a run)"
    try:
        pack = open_pack(path, verify=False)  # the index alone: is it the pack this run wants?
        meta = pack.meta
        if meta.get("key") != key:
            return "the pack there was made for other clips or settings"
        if meta.get("skipped") and not skip_bad:  # it must not stand in for a run that wants errors
            return "the pack there left unreadable clips out (--skip-bad) and this run reports them"
        skipped = [tuple(s) for s in meta.get("skipped", [])]
        gone = {s[0] for s in skipped}
        if meta.get("ids") != [c.id for c in clips if c.id not in gone] or len(pack) != len(meta["ids"]):
            return "the pack there holds other clips"
        contents, changed = _changed(clips, meta.get("contents"))
        if contents is None:
            return "the pack there was made by an older zoo (it recorded no file contents)"
        if changed:
            print(f"zoo: note: {len(changed)} file(s) changed since the feature pack was made "
                  f"({_few([shown(i) for i in changed])}): extracting the features again", file=sys.stderr)
            return f"{len(changed)} file(s) changed since the pack was made"
        arrays: Any  # the arrays themselves, or the pack read clip by clip
        if pack.nbytes <= budget:
            arrays, _ = read_pack(path)
        else:
            pack.verify()  # every shard once, in bounded chunks
            arrays = pack
    except ZooError as exc:  # a damaged pack is only a cache: rebuild it, and say why
        print(f"zoo: warning: rebuilding the feature pack: {exc}", file=sys.stderr)
        return "the pack there is damaged"
    return (arrays, {k: tuple(v) for k, v in meta.get("slices", {}).items()}, skipped, list(meta.get("cut", [])),
            contents)


def prepare(dataset: Dataset, features: Mapping[str, Feature], *, rate: str, skip_bad: bool = False,
            limit: int | None = None, seed: int = 0, workers: int | None = None, progress: bool = True,
            cache_dir: Path, need: Sequence[str] = (), max_seconds: float | None = MAX_SECONDS,
            min_class_clips: int = 0, memory_budget: int | None = None, shard_bytes: int | None = None) -> Prepared:
    """Features of every usable clip of ``dataset``, stacked in the order of ``features``.

    ``need``: what the tasks read ("label", target names); clips with none of it are left out and
    counted. ``limit``: at most this many clips, stratified and seeded, spread over the splits.
    ``seed`` also draws the splits of a data set that gives none. Bad items raise DataError naming
    the file, or with ``skip_bad`` are left out and listed in ``Prepared.skipped``.
    ``cache_dir``: the feature cache and packed sets (the workspace's ``cache_dir``).
    ``max_seconds``: audio longer than this is cut to its middle ``max_seconds`` (0 or None: no
    limit); the description counts the clips cut. ``min_class_clips``: a DataError when a class
    has fewer clips than this (0: no check), naming each such class and its clips.
    ``memory_budget``: bytes of features kept in memory (None or 0: :func:`host_budget`, a quarter
    of RAM). Features bigger than that are never all held: extraction results go to the pack's
    writer chunk by chunk (:data:`CHUNK_CLIPS`), and ``Prepared.x`` reads each clip from the pack
    (:class:`~zoo.data.pack.PackFile`). ``shard_bytes``: most bytes of one checksummed shard of a
    pack written now (default :data:`~zoo.data.pack.SHARD_BYTES`).
    """
    features = dict(features)
    if not features:
        raise DataError("prepare needs at least one feature (e.g. mel); none was given")
    if max_seconds is not None and not max_seconds >= 0:
        raise ConfigError(f"max_seconds {max_seconds!r}: give the longest audio per clip in seconds, "
                          f"e.g. 30 (--max-seconds 30), or 0 for no limit")
    from .audio import MIN_SECONDS
    if max_seconds and max_seconds < MIN_SECONDS:  # every clip would be cut below what a clip needs
        raise ConfigError(f"--max-seconds {max_seconds:g} (max_seconds) cuts every clip to less than the {MIN_SECONDS:g} s "
                          f"a clip needs; raise it (e.g. --max-seconds 30: the middle 30 s of each file), or give 0 "
                          f"for no limit")
    if isinstance(min_class_clips, bool) or not isinstance(min_class_clips, int) or min_class_clips < 0:
        raise ConfigError(f"min_class_clips {min_class_clips!r}: give a whole number >= 0 (0: no check)")
    max_seconds = max_seconds or None
    clips = dataset.clips(rate)
    where = dataset.describe()  # after clips(): a layout may describe the rate it last read
    try:
        chosen = select(clips, where=where, need=need, limit=limit, seed=seed, skip_bad=skip_bad)
    except DataError as exc:
        raise _printable(exc) from exc
    clips, splits, skipped = chosen.clips, chosen.splits, list(chosen.skipped)
    check_class_sizes(clips, min_class_clips)
    cache = Path(cache_dir)
    key = pack_key(dataset.name, clips, features, rate=rate, limit=limit, seed=seed, max_seconds=max_seconds)
    path = cache / "packs" / f"{key[:40]}.pack"
    reap_temporaries(path.parent)  # what pack writers killed mid-write left, whether or not this pack is written
    budget = memory_budget or host_budget()
    hit = _read_pack(path, key, clips, skip_bad, budget)
    if isinstance(hit, str):
        features_from = f"extracted: {hit}; packed into {path} for the next run"
        hit = None
    else:
        features_from = f"read from the feature pack {path}"
    if hit is not None:
        arrays, slices, more, cut, contents = hit
        gone = {s[0] for s in more}
        keep = [i for i, c in enumerate(clips) if c.id not in gone]
    else:
        contents = _contents(clips, workers)
        try:
            arrays, slices, more, cut, keep = _extract_to_pack(
                clips, features, path, budget, shard_bytes, skip_bad=skip_bad, workers=workers, progress=progress,
                cache_dir=cache_dir, desc=f"{dataset.name} features", max_seconds=max_seconds,
                meta={"key": key, "rate": rate, "dataset": where, "contents": contents})
        except DataError as exc:
            raise _printable(exc) from exc
    skipped = [(shown(item), shown(reason)) for item, reason in skipped + more]
    if not keep:
        first = f"; the first: {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        raise DataError(shown(f"no clip of {where} could be prepared ({len(skipped)} skipped){first}"))
    kept_ids = {clips[i].id for i in keep}
    cut = [c for c in cut if c in kept_ids]
    notes = list(chosen.notes)
    if cut:
        notes.append(f"{len(cut)} clip(s) longer than {max_seconds:g} s cut to their middle {max_seconds:g} s "
                     f"(--max-seconds)")
    arrays_key = _arrays_key(features, rate, max_seconds, [contents[i][1] for i in keep])
    prepared = _assemble([clips[i] for i in keep], [splits[i] for i in keep], arrays, slices, skipped,
                         key=arrays_key, rate=rate, notes=notes, where=where)
    if hit is None and not path.exists():
        features_from = features_from.replace(f"packed into {path} for the next run", f"the pack {path} could not be written")
    prepared.features_from = features_from
    return prepared


def _printable(exc: DataError) -> DataError:
    """``exc`` with any undecodable bytes of a file name escaped (the same error when there are none)."""
    text = str(exc)
    return exc if shown(text) == text else DataError(shown(text))


def _few(ids: Sequence[str], shown_at_most: int = 3) -> str:
    more = len(ids) - shown_at_most
    return ", ".join(shown(i) for i in ids[:shown_at_most]) + (f" and {more} more" if more > 0 else "")


def check_class_sizes(clips: Sequence[Clip], min_class_clips: int) -> None:
    """DataError naming every label with fewer than ``min_class_clips`` clips (and those clips)."""
    if min_class_clips <= 0:
        return
    members: dict[str, list[str]] = {}
    for c in clips:
        if c.label is not None:
            members.setdefault(c.label, []).append(c.id)
    small = {label: ids for label, ids in sorted(members.items()) if len(ids) < min_class_clips}
    if not small:
        return
    detail = "; ".join(f"'{shown(label)}' has {len(ids)} ({_few(ids)})" for label, ids in small.items())
    raise DataError(
        f"{len(small)} class(es) have fewer than {min_class_clips} clips (--min-class-clips {min_class_clips}): "
        f"{detail}; fix the labels (a typo?), add clips of those classes, leave them out of the data, or "
        f"lower --min-class-clips (0: no check)"
    )


def _extract_to_pack(clips: Sequence[Clip], features: Mapping[str, Feature], path: Path, budget: int,
                     shard_bytes: int | None, *, meta: dict, **kw):
    """Extract every clip, chunk by chunk, into the pack at ``path``: ``(arrays, slices, skipped, cut,
    kept clip indices)``. ``arrays`` is the list of arrays while their bytes fit ``budget``; past it
    the list is dropped and the written pack is opened to be read clip by clip. A pack that cannot
    be written only costs the cache (a warning), unless the data does not fit ``budget``: then a
    DataError says where the pack was to go."""
    from .pack import SHARD_BYTES, PackWriter, open_pack

    ids = [c.id for c in clips]
    kept: list[np.ndarray] | None = []
    keep: list[int] = []
    slices: dict = {}
    skipped: list = []
    cut: list = []
    held = 0
    writer: PackWriter | None
    try:
        writer = PackWriter(path, shard_bytes=shard_bytes or SHARD_BYTES)
    except OSError as exc:
        writer = _no_pack(path, exc)

    def lost() -> DataError:
        return DataError(f"the features of {len(clips)} clips do not fit the memory budget ({budget / 2**20:.0f} MiB) "
                         f"and the pack {path} could not be written; free disk space in the cache folder, or "
                         f"raise train.memory_budget")

    try:
        for start, out, part_slices, part_skipped, part_cut in _extract_chunks(clips, features, **kw):
            slices = part_slices or slices
            skipped += part_skipped
            cut += part_cut
            for j, a in enumerate(out):
                if a is None:
                    continue
                keep.append(start + j)
                if writer is not None:
                    try:
                        writer.add(a)
                    except OSError as exc:
                        writer.abort()
                        writer = _no_pack(path, exc)
                if kept is not None:
                    held += a.nbytes
                    kept.append(a)
                    if held > budget and writer is not None:
                        kept = None  # bigger than the budget: from here on the clips live in the pack only
                if kept is None and writer is None:
                    raise lost()
            del out
        if writer is not None and not keep:
            writer.abort()
        elif writer is not None:
            try:
                writer.close(dict(meta, ids=[ids[i] for i in keep], skipped=skipped, slices=slices, cut=cut))
            except OSError as exc:  # close() removed the temporary file
                writer = _no_pack(path, exc)
                if kept is None:
                    raise lost() from exc
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    arrays = kept if kept is not None else open_pack(path, verify=False)  # checksummed as it was written
    return arrays, slices, skipped, cut, keep


def _no_pack(path: Path, exc: OSError) -> PackWriter | None:
    """Only the cache is lost: the run goes on, and says so (returns None: no writer)."""
    print(f"zoo: warning: could not write the feature pack {path}: {exc}", file=sys.stderr)
    return None


def _assemble(clips: list[Clip], splits: list[str], arrays, slices, skipped, *, key: str, rate: str,
              notes: list[str], where: str) -> Prepared:
    classes = tuple(sorted({shown(c.label) for c in clips if c.label is not None}))
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index.get(shown(c.label), -1) if c.label is not None else -1 for c in clips], dtype=np.int64)
    names = sorted({k for c in clips for k in c.targets})
    targets = {n: np.array([c.targets.get(n, np.nan) for c in clips], dtype=np.float32) for n in names}
    split_arr = np.array(splits, dtype="<U5")
    digest = hashlib.sha256()
    for part in ([c.id for c in clips], [c.label for c in clips], splits,
                 {n: v.tolist() for n, v in targets.items()}, key):
        digest.update(json.dumps(part, sort_keys=True).encode())
    counts = " / ".join(f"{s} {int((split_arr == s).sum())}" for s in ("train", "val", "test"))
    extra = notes + ([f"{len(skipped)} skipped (see the skipped list)"] if skipped else [])
    description = shown(f"{where} -> {len(clips)} clips at {rate} rate ({counts})" + "".join(f"; {n}" for n in extra))
    if isinstance(arrays, list):
        arrays = [np.asarray(a, dtype=np.float32) for a in arrays]
    return Prepared(
        ids=[shown(c.id) for c in clips], x=arrays, splits=split_arr,
        labels=labels, classes=classes, targets=targets, rate=rate, fingerprint=digest.hexdigest(),
        description=description, skipped=list(skipped), feature_slices=dict(slices),
    )
