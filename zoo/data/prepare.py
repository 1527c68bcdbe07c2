"""Turn a data set into a :class:`~zoo.data.preparedset.Prepared` for one set of stacked features.

Audio clips go through :func:`zoo.data.extract.extract_audio` (decoded once, each feature cached
on disk); lab arrays through :func:`~zoo.data.labarray.load_lab_array` and each feature's
``from_lab``. The stacked ``[F, T_i]`` arrays are then packed into one file in the cache, keyed
by everything that decides them (the data set's description, every clip's id, file, size and
modification time, the features' settings and versions, limit and seed): a second prepare of
the same data reads that one file.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..errors import DataError, ZooError
from ..protocols import Clip, Dataset, Feature
from .preparedset import Prepared
from .select import select, source

PACK_VERSION = 1


def pack_key(description: str, clips: Sequence[Clip], features: Mapping[str, Feature], *, rate: str,
             limit: int | None, seed: int) -> str:
    """sha256 over everything that decides the stacked arrays."""
    from .extract import provider_version

    files = []
    for c in clips:
        st = source(c).stat()
        files.append([c.id, str(source(c)), st.st_size, st.st_mtime_ns])
    doc = {
        "pack": PACK_VERSION, "rate": rate, "dataset": description, "limit": limit, "seed": seed,
        "features": [[n, f"{type(f).__module__}.{type(f).__qualname__}", provider_version(f), dict(f.settings())]
                     for n, f in features.items()],
        "clips": files,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _from_lab(path: Path, features: Mapping[str, Feature]):
    from .extract import stack
    from .labarray import load_lab_array

    fused = load_lab_array(path)
    try:
        parts = {n: np.asarray(f.from_lab(fused), dtype=np.float32) for n, f in features.items()}
        return stack(parts, list(features))
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from exc


def _extract(clips: Sequence[Clip], features: Mapping[str, Feature], *, skip_bad: bool, workers: int | None,
             progress: bool, cache_dir: Path | None, desc: str):
    """``(arrays or None per clip, slices, skipped)``: None marks a clip skipped for ``reason``."""
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
    if audio:
        results = extract_audio([source(clips[i]) for i in audio], features, cache_dir=cache_dir, workers=workers,
                                progress=progress, skip_bad=skip_bad, desc=desc)
        for i, res in zip(audio, results):
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
    return out, slices, skipped


def _read_pack(path: Path, key: str, ids: list[str], skip_bad: bool):
    from .pack import read_pack

    if not path.exists():
        return None
    try:
        arrays, meta = read_pack(path)
    except ZooError as exc:  # a damaged pack is only a cache: rebuild it, and say why
        print(f"zoo: warning: rebuilding the feature pack: {exc}", file=sys.stderr)
        return None
    if meta.get("key") != key or (meta.get("skipped") and not skip_bad):
        return None  # a pack that skipped clips must not stand in for a run that wants errors
    skipped = [tuple(s) for s in meta.get("skipped", [])]
    gone = {s[0] for s in skipped}
    if meta.get("ids") != [i for i in ids if i not in gone] or len(arrays) != len(meta["ids"]):
        return None
    return arrays, {k: tuple(v) for k, v in meta.get("slices", {}).items()}, skipped


def prepare(dataset: Dataset, features: Mapping[str, Feature], *, rate: str, skip_bad: bool = False,
            limit: int | None = None, seed: int = 0, workers: int | None = None, progress: bool = True,
            cache_dir: Path | None = None, need: Sequence[str] = ()) -> Prepared:
    """Features of every usable clip of ``dataset``, stacked in the order of ``features``.

    ``need``: what the tasks read ("label", target names); clips with none of it are left out and
    counted. ``limit``: at most this many clips, stratified and seeded, spread over the splits.
    ``seed`` also draws the splits of a data set that gives none. Bad items raise DataError naming
    the file, or with ``skip_bad`` are left out and listed in ``Prepared.skipped``.
    """
    from ..paths import cache_dir as default_cache

    features = dict(features)
    if not features:
        raise DataError("prepare needs at least one feature (e.g. mel); none was given")
    clips = dataset.clips(rate)
    where = dataset.describe()  # after clips(): a layout may describe the rate it last read
    chosen = select(clips, where=where, need=need, limit=limit, seed=seed, skip_bad=skip_bad)
    clips, splits, skipped = chosen.clips, chosen.splits, list(chosen.skipped)
    cache = Path(cache_dir) if cache_dir is not None else default_cache()
    key = pack_key(where, clips, features, rate=rate, limit=limit, seed=seed)
    path = cache / "packs" / f"{key[:40]}.pack"
    ids = [c.id for c in clips]
    hit = _read_pack(path, key, ids, skip_bad)
    if hit is not None:
        arrays, slices, more = hit
        gone = {s[0] for s in more}
        keep = [i for i, c in enumerate(clips) if c.id not in gone]
    else:
        out, slices, more = _extract(clips, features, skip_bad=skip_bad, workers=workers, progress=progress,
                                     cache_dir=cache_dir, desc=f"{dataset.name} features")
        keep = [i for i, a in enumerate(out) if a is not None]
        arrays = [out[i] for i in keep]
        if arrays:
            _write_pack(path, arrays, {"key": key, "ids": [ids[i] for i in keep], "skipped": more,
                                       "slices": slices, "rate": rate, "dataset": where})
    skipped += more
    if not keep:
        first = f"; the first: {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        raise DataError(f"no clip of {where} could be prepared ({len(skipped)} skipped){first}")
    return _assemble([clips[i] for i in keep], [splits[i] for i in keep], arrays, slices, skipped,
                     key=key, rate=rate, notes=chosen.notes, where=where)


def _write_pack(path: Path, arrays, meta) -> None:
    from .pack import write_pack

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_pack(path, arrays, meta)
    except OSError as exc:  # only the cache is lost: the run goes on, and says so
        print(f"zoo: warning: could not write the feature pack {path}: {exc}", file=sys.stderr)


def _assemble(clips: list[Clip], splits: list[str], arrays, slices, skipped, *, key: str, rate: str,
              notes: list[str], where: str) -> Prepared:
    classes = tuple(sorted({c.label for c in clips if c.label is not None}))
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index.get(c.label, -1) if c.label is not None else -1 for c in clips], dtype=np.int64)
    names = sorted({k for c in clips for k in c.targets})
    targets = {n: np.array([c.targets.get(n, np.nan) for c in clips], dtype=np.float32) for n in names}
    split_arr = np.array(splits, dtype="<U5")
    digest = hashlib.sha256()
    for part in ([c.id for c in clips], [c.label for c in clips], splits,
                 {n: v.tolist() for n, v in targets.items()}, key):
        digest.update(json.dumps(part, sort_keys=True).encode())
    counts = " / ".join(f"{s} {int((split_arr == s).sum())}" for s in ("train", "val", "test"))
    extra = notes + ([f"{len(skipped)} skipped (see the skipped list)"] if skipped else [])
    description = f"{where} -> {len(clips)} clips at {rate} rate ({counts})" + "".join(f"; {n}" for n in extra)
    return Prepared(
        ids=[c.id for c in clips], x=[np.asarray(a, dtype=np.float32) for a in arrays], splits=split_arr,
        labels=labels, classes=classes, targets=targets, rate=rate, fingerprint=digest.hexdigest(),
        description=description, skipped=list(skipped), feature_slices=dict(slices),
    )
