"""Feature extraction from audio files: in parallel, each file decoded once, results cached on disk.

A cached result is keyed by the sha256 of the file's *content* plus the feature's name, its
``settings()`` and the ``name==version`` of the distribution that provides it, so an edited file
or a changed setting is recomputed, never served stale. Entries are written atomically (a
temporary file renamed into place), so parallel runs and interrupted ones never leave half files.

Layout: ``CACHE/features/<key[:2]>/<key>.npy``, one float32 ``[F, T]`` array per (file, feature):
a .npy file followed by a 12-byte seal, ``b"ZOOCRC1\\0"`` and the crc32 (uint32, little endian) of
every byte before the seal (``np.load`` still reads an entry: it stops at the array's end). Every
read checks the seal, the size, the shape and that every value is finite; an entry that fails is
recomputed from the audio, with a warning naming the entry, the audio file and what was wrong.
Entries without a seal (written before it existed) cannot be verified and are recomputed too.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata as md
import io
import json
import os
import pickle
import sys
import warnings
import zlib
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, NamedTuple, Sequence

import numpy as np

from ..errors import ConfigError, DataError, PluginError, ZooError
from ..fsio import reap_temporaries, shown, temp_path
from ..protocols import BatchesAudio, NeedsSamples
from .audio import load_audio

CACHE_FORMAT = 1
"""Bumped when the layout or meaning of cache entries changes: older entries are then ignored.

Not bumped for the seal: entries written before it keep their key, so they are found, reported
once as unverifiable and recomputed in place, rather than silently left behind."""

Result = dict[str, np.ndarray] | DataError
_FILES_PER_WORKER = 4
_SEAL = b"ZOOCRC1\0"
_SEAL_SIZE = len(_SEAL) + 4
_NPY_HEAD = 4096  # more than the .npy header of any [F, T] array needs
_UNSEALED = "has no checksum (written by an older zoo)"


def extract_audio(paths: Sequence[Path], features: Mapping[str, Any], *, cache_dir: Path,
                  workers: int | None = None, progress: bool = True, skip_bad: bool = False,
                  desc: str = "features", min_seconds: float = 1.0, max_seconds: float | None = None,
                  stats: dict[str, int] | None = None) -> list[Result]:
    """Compute every feature of ``features`` for every audio file of ``paths``.

    Returns one entry per path, in order: ``{name: array[F, T] float32}`` keyed like
    ``features``, or (only with ``skip_bad``) the DataError that explains why that file failed.
    Without ``skip_bad`` the first failing file raises its DataError (naming the file and the
    reason) after the other workers' pending files are cancelled.

    ``workers`` processes share the files not yet cached (1: compute in this process; default:
    up to ``os.cpu_count()``, one per 4 files to compute, as starting a worker takes seconds).
    A feature with the batch member (:class:`~zoo.protocols.BatchesAudio`) gets up to its
    ``batch_size`` files per ``from_audio_batch`` call (an even share over the workers at most);
    every other feature ``from_audio`` once per file.
    ``cache_dir``: the cache's folder (the workspace's ``cache_dir``). ``min_seconds`` and
    ``max_seconds`` (the middle of a longer file is used; part of the cache key) are passed to
    :func:`zoo.data.audio.load_audio`. ``stats``, when given, receives counts: ``files``,
    ``cached`` (files served wholly from the cache), ``computed`` and ``failed``.
    Run from a script, the call must sit under ``if __name__ == "__main__":`` (worker processes
    are spawned, and re-import the script).
    """
    paths = [Path(p) for p in paths]
    features = dict(features)
    if not features:
        raise ConfigError("extract_audio: no features given; name at least one (e.g. mel)")
    if workers is not None and workers < 1:
        raise ConfigError(f"extract_audio: workers must be >= 1 (or None for one per CPU), got {workers}")
    root = _feature_cache(cache_dir)
    cut = f"\nmax_seconds={max_seconds:g}" if max_seconds else ""
    idents = {name: feature_identity(f) + cut for name, f in features.items()}
    counts = {"files": len(paths), "cached": 0, "computed": 0, "failed": 0}
    from tqdm import tqdm

    with tqdm(total=len(paths), desc=desc, unit="file", disable=not progress, file=sys.stderr) as bar:
        results: list[Result | None] = [None] * len(paths)
        jobs: dict[str, _Job] = {}
        owners: dict[str, list[int]] = {}
        distrusted: dict[Path, str] = {}
        for i, item in enumerate(_lookup_all(paths, features, idents, root, skip_bad)):
            if isinstance(item, DataError):
                results[i] = item
                counts["failed"] += 1
                bar.update()
                continue
            digest, arrays, problems = item
            _report(paths[i], problems, distrusted)
            missing = [n for n in features if n not in arrays]
            if not missing:
                results[i] = arrays
                counts["cached"] += 1
                bar.update()
                continue
            results[i] = arrays
            owners.setdefault(digest, []).append(i)
            if digest not in jobs:
                todo = tuple((n, features[n], str(_entry(root, digest, idents[n]))) for n in missing)
                jobs[digest] = _Job(paths[i], digest, todo, min_seconds, max_seconds or None)

        def finish(digest: str, outcome: Result) -> None:
            for i in owners[digest]:
                if isinstance(outcome, DataError):
                    error = outcome
                    if paths[i] != jobs[digest].path:
                        error = DataError(f"{paths[i]} has the same content as {jobs[digest].path}: {outcome}")
                    if not skip_bad:
                        raise error
                    results[i] = error
                    counts["failed"] += 1
                else:
                    results[i] = {**results[i], **outcome}
                    counts["computed"] += 1
            bar.update(len(owners[digest]))

        unsealed = sum(1 for why in distrusted.values() if why == _UNSEALED)
        if unsealed:
            warnings.warn(f"{unsealed} feature cache entr{'y' if unsealed == 1 else 'ies'} under {root} "
                          f"{'has' if unsealed == 1 else 'have'} no checksum (written by an older zoo) and "
                          f"cannot be verified: recomputing {'it' if unsealed == 1 else 'them'}", stacklevel=2)
        _run_jobs(list(jobs.values()), features, workers, finish)
    if stats is not None:
        stats.update(counts)
    return [{n: r[n] for n in features} if isinstance(r, dict) else r for r in results]


def stack(parts: Mapping[str, np.ndarray], order: Sequence[str], *,
          tolerance: int = 1) -> tuple[np.ndarray, dict[str, tuple[int, int]]]:
    """Stack ``parts[name][F_i, T_i]`` along the bin axis in ``order`` -> ``([sum F_i, T], slices)``.

    ``T`` is the shortest ``T_i``: a mel spectrogram and a chromagram of the same audio may differ
    by a frame (``tolerance``); a larger gap means the features do not share a time axis (another
    hop or sample rate) and is a DataError. ``slices[name] = (start, stop)`` rows of the result.
    """
    if not order:
        raise ConfigError("stack: no feature names given")
    missing = [n for n in order if n not in parts]
    if missing:
        raise DataError(f"stack: no array for feature(s) {', '.join(missing)}; have {', '.join(parts) or 'none'}")
    arrays = [np.asarray(parts[n]) for n in order]
    for name, a in zip(order, arrays):
        if a.ndim != 2 or a.shape[1] == 0:
            raise DataError(f"stack: feature '{name}' is not a [F, T] array with T >= 1 (shape {a.shape})")
    lengths = {n: a.shape[1] for n, a in zip(order, arrays)}
    t = min(lengths.values())
    if max(lengths.values()) - t > tolerance:
        detail = ", ".join(f"{n} T={v}" for n, v in lengths.items())
        raise DataError(
            f"stack: features differ in length by more than {tolerance} frame(s) ({detail}): they do not "
            f"share a time axis; give them the same sr and hop_length, and the same rate (frames or beats)"
        )
    out = np.empty((sum(a.shape[0] for a in arrays), t), dtype=np.float32)
    slices, row = {}, 0
    for name, a in zip(order, arrays):
        out[row:row + a.shape[0]] = a[:, :t]
        slices[name] = (row, row + a.shape[0])
        row += a.shape[0]
    return out, slices


def file_digest(path: Path) -> str:
    """sha256 of the file's bytes (hex); DataError if it is missing or unreadable."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except FileNotFoundError:
        raise DataError(f"audio file {path} does not exist; check the path (and the data set's manifest)") from None
    except OSError as exc:
        raise DataError(f"audio file {path} cannot be read: {exc.strerror or exc}") from exc
    return h.hexdigest()


def feature_identity(feature: Any) -> str:
    """Everything that decides a feature's output, as a canonical JSON string (part of cache keys)."""
    ident = {
        "format": CACHE_FORMAT,
        "feature": feature.name,
        "class": f"{type(feature).__module__}.{type(feature).__qualname__}",
        "provider": provider_version(feature),
        "settings": dict(feature.settings()),
    }
    return json.dumps(ident, sort_keys=True, default=repr)


def provider_version(feature: Any) -> str:
    """``distribution==version`` of the package that defines ``feature``'s class."""
    return _module_provider(type(feature).__module__.split(".")[0])


@functools.lru_cache(maxsize=None)
def _module_provider(top: str) -> str:
    for dist in md.packages_distributions().get(top, []):
        try:
            return f"{dist}=={md.version(dist)}"
        except md.PackageNotFoundError:
            continue
    # A class defined outside any installed distribution (a script, a test): its module stands in.
    return f"{top}==unversioned"


def _feature_cache(cache_dir: Path) -> Path:
    return Path(cache_dir) / "features"


def _entry(root: Path, digest: str, ident: str) -> Path:
    key = hashlib.sha256(f"{digest}\n{ident}".encode()).hexdigest()
    return root / key[:2] / f"{key}.npy"


class _Cached(NamedTuple):
    """What the cache holds for one file: its digest, the sound entries, and ``(feature, entry, why)``
    for each entry present but not trusted."""

    digest: str
    arrays: dict[str, np.ndarray]
    problems: list[tuple[str, Path, str]]


def _lookup_all(paths: list[Path], features: dict[str, Any], idents: dict[str, str], root: Path,
                skip_bad: bool) -> Iterator[_Cached | DataError]:
    """Hash every file and load its cached features, in order (threads: this is reading and hashing)."""

    def lookup(path: Path) -> _Cached | DataError:
        try:
            digest = file_digest(path)
        except DataError as exc:
            return exc
        arrays, problems = {}, []
        for name, feature in features.items():
            entry = _entry(root, digest, idents[name])
            cached, why = _load(entry, feature.n_bins)
            if cached is not None:
                arrays[name] = cached
            elif why is not None:
                problems.append((name, entry, why))
        return _Cached(digest, arrays, problems)

    with ThreadPoolExecutor(max_workers=max(1, min(8, len(paths)))) as pool:
        for item in pool.map(lookup, paths):
            if isinstance(item, DataError) and not skip_bad:
                pool.shutdown(wait=True, cancel_futures=True)
                raise item
            yield item


def _report(path: Path, problems: list[tuple[str, Path, str]], distrusted: dict[Path, str]) -> None:
    """Warn once per distrusted entry (entries without a seal are counted, and told in one line)."""
    for name, entry, why in problems:
        if entry in distrusted:
            continue  # two paths with the same content share their entries
        distrusted[entry] = why
        if why != _UNSEALED:
            warnings.warn(f"feature cache entry {entry} (feature '{name}' of {path}) {why}: recomputing it "
                          f"from the audio", stacklevel=3)


def _load(entry: Path, n_bins: int) -> tuple[np.ndarray | None, str | None]:
    """``(array, None)`` for a sound entry, ``(None, None)`` when there is none, ``(None, why)`` when
    the entry cannot be trusted (it is then recomputed and overwritten)."""
    try:
        with open(entry, "rb") as f:
            buf = np.empty(os.fstat(f.fileno()).st_size, np.uint8)  # not zero-filled, unlike a bytearray
            got = f.readinto(buf)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    if got != len(buf):
        return None, f"changed size while it was read ({got} of {len(buf)} bytes)"
    sealed = len(buf) >= _SEAL_SIZE and buf[-_SEAL_SIZE:-4].tobytes() == _SEAL
    body = buf[:-_SEAL_SIZE] if sealed else buf
    if sealed and zlib.crc32(body) != int.from_bytes(buf[-4:].tobytes(), "little"):
        return None, "fails its checksum (its bytes changed after it was written)"
    try:
        head = io.BytesIO(body[:_NPY_HEAD].tobytes())
        version = np.lib.format.read_magic(head)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read_header is None:
            raise ValueError(f".npy format version {version}, where the cache writes 1.0")
        shape, fortran, dtype = read_header(head)
    except (ValueError, TypeError, EOFError, SyntaxError) as exc:
        return None, f"cannot be parsed as an array ({exc})"
    offset, count = head.tell(), int(np.prod(shape, dtype=np.int64))
    expected = offset + count * dtype.itemsize
    if len(body) != expected:
        return None, (f"is truncated or damaged ({len(buf)} bytes; a complete entry of shape {shape} has "
                      f"{expected + _SEAL_SIZE})")
    if not sealed:
        return None, _UNSEALED
    if len(shape) != 2 or dtype != np.float32 or fortran or shape[0] != n_bins or shape[1] == 0:
        return None, f"holds a {dtype} array of shape {shape}, not float32 [{n_bins}, T]"
    a = np.frombuffer(body, dtype=dtype, count=count, offset=offset).reshape(shape)
    if not np.isfinite(a).all():
        return None, "holds NaN or infinite values"
    return a, None


@functools.lru_cache(maxsize=4096)
def _reap_once(folder: str) -> None:
    """What writers killed mid-write left in a cache folder, removed the first time this process writes there."""
    reap_temporaries(folder)


def _save(entry: Path, array: np.ndarray) -> None:
    """Write ``array`` and its seal to ``entry`` atomically; a cache that cannot be written only costs speed."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    blob = buf.getbuffer()
    seal = _SEAL + zlib.crc32(blob).to_bytes(4, "little")
    tmp = temp_path(entry)
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        _reap_once(str(entry.parent))
        # No fsync: an entry that a crash leaves incomplete fails its seal and is recomputed.
        with open(tmp, "wb") as f:
            f.write(blob)
            f.write(seal)
        os.replace(tmp, entry)
    except OSError as exc:
        warnings.warn(f"feature cache {entry.parent} cannot be written ({exc}); results are not cached", stacklevel=2)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)  # gone after the rename; what a failed write left otherwise


@dataclass(frozen=True)
class _Job:
    """One file to compute: its path, content digest and ``(name, feature, cache entry)`` to do."""

    path: Path
    digest: str
    todo: tuple[tuple[str, Any, str], ...]
    min_seconds: float = 1.0
    max_seconds: float | None = None


def _compute_many(jobs: tuple[_Job, ...]) -> list[Result]:
    """Decode each file once per sample rate, compute its missing features and cache them.

    Runs in a worker process: returns (not raises) a file's DataError so the parent decides whether
    to skip the file; any other ZooError is a setup problem and is raised. A feature that batches
    (:class:`~zoo.protocols.BatchesAudio`) gets the files that need it in one ``from_audio_batch``
    call; any other feature, or the files of a call that failed, ``from_audio`` one file at a time,
    so every failure names its file.
    """
    waves: list[dict[int, np.ndarray]] = [{} for _ in jobs]
    out: list[Result] = [{} for _ in jobs]
    for name in dict.fromkeys(n for job in jobs for n, _, _ in job.todo):
        todo = [(i, feature, entry) for i, job in enumerate(jobs) if isinstance(out[i], dict)
                for n, feature, entry in job.todo if n == name]
        batch = _batched(jobs, name, todo, waves)
        for k, (i, feature, entry) in enumerate(todo):
            ready = batch[k] if batch is not None else None
            got = ready if ready is not None else _one(jobs[i], name, feature, waves[i])
            arrays = out[i]
            if isinstance(got, DataError):
                out[i] = got
            elif isinstance(arrays, dict):  # always: todo holds no failed file
                arrays[name] = got
                _save(Path(entry), got)
    return out


def _wave(job: _Job, sr: int, waves: dict[int, np.ndarray]) -> np.ndarray:
    """The file of ``job`` at ``sr`` Hz, decoded on first use and kept in ``waves``."""
    if sr not in waves:
        waves[sr] = load_audio(job.path, sr, min_seconds=job.min_seconds, max_seconds=job.max_seconds)
    return waves[sr]


def _one(job: _Job, name: str, feature: Any, waves: dict[int, np.ndarray]) -> np.ndarray | DataError:
    """Feature ``name`` of one file with ``from_audio``, checked; or the DataError that says why not."""
    sr = int(feature.sample_rate)
    try:
        return _checked(job.path, name, feature, feature.from_audio(_wave(job, sr, waves), sr))
    except DataError as exc:
        if shown(job.path) in str(exc):  # load_audio named the file (escaped, if not UTF-8)
            return exc
        return _named(DataError(f"{job.path}: feature '{name}': {exc}"), exc)
    except ZooError:
        raise
    except Exception as exc:  # numerical libraries raise many types on odd input: report, don't crash
        return _named(DataError(
            f"{job.path}: feature '{name}' failed: {type(exc).__name__}: {exc} (if every file fails "
            f"like this, the feature's plugin is at fault)"), exc)


def _batched(jobs: tuple[_Job, ...], name: str, todo: list[tuple[int, Any, str]],
             waves: list[dict[int, np.ndarray]]) -> list[np.ndarray | None] | None:
    """Feature ``name`` of the files of ``todo`` in one ``from_audio_batch`` call: per file its checked
    array, or None where the file is left to ``from_audio`` alone (it does not decode, or is shorter
    than the feature's ``min_samples``); None for all when the feature does not batch, fewer than two
    files are left, or the call fails (then each file is computed alone, which says why)."""
    feature = todo[0][1] if todo else None
    if len(todo) < 2 or not isinstance(feature, BatchesAudio):
        return None
    sr = int(todo[0][1].sample_rate)
    need = feature.min_samples if isinstance(feature, NeedsSamples) else 1
    ys: dict[int, np.ndarray] = {}
    for k, (i, _, _) in enumerate(todo):
        try:
            ys[k] = _wave(jobs[i], sr, waves[i])
        except DataError:
            continue  # computed alone, the file's error is reported there
    chosen = [k for k, y in ys.items() if y.shape[-1] >= need]
    if len(chosen) < 2:
        return None
    try:
        arrays = list(feature.from_audio_batch([ys[k] for k in chosen], sr))
        if len(arrays) != len(chosen):
            raise PluginError(
                f"feature '{name}' returned {len(arrays)} arrays from from_audio_batch for {len(chosen)} clips; "
                f"the plugin ({provider_version(feature)}) is broken: report it or upgrade it")
        out: list[np.ndarray | None] = [None] * len(todo)
        for k, a in zip(chosen, arrays):
            out[k] = _checked(jobs[todo[k][0]].path, name, feature, a)
        return out
    except DataError:
        return None
    except ZooError:
        raise
    except Exception:  # the files alone say which one the feature cannot take
        return None


def _named(error: DataError, cause: Exception) -> DataError:
    error.__cause__ = cause
    return error


def _checked(path: Path, name: str, feature: Any, array: Any) -> np.ndarray:
    a = np.asarray(array)
    if a.ndim != 2 or a.shape[0] != feature.n_bins:
        raise PluginError(
            f"feature '{name}' returned shape {a.shape} for {path}, but promises [{feature.n_bins}, T]; "
            f"the plugin ({provider_version(feature)}) is broken: report it or upgrade it"
        )
    if a.shape[1] == 0 or not np.all(np.isfinite(a)):
        raise DataError(f"{path}: feature '{name}' gave no frames or NaN/infinite values (shape {a.shape})")
    return np.ascontiguousarray(a, dtype=np.float32)


def _run_jobs(jobs: list[_Job], features: Mapping[str, Any], workers: int | None, finish) -> None:
    """Run ``jobs`` in this process or a spawned pool; ``finish(digest, result)`` as each ends."""
    if workers is None:
        # A spawned worker spends seconds importing librosa and loading its compiled code: by
        # default start one only for every few files it will have to do.
        n = min(os.cpu_count() or 1, -(-len(jobs) // _FILES_PER_WORKER))
    else:
        n = min(workers, len(jobs))
    if n > 1:
        try:
            pickle.dumps(tuple(features.values()))
        except Exception as exc:  # a feature that cannot travel to workers still works here
            warnings.warn(f"features cannot be sent to worker processes ({exc}); computing in this process",
                          stacklevel=3)
            n = 1
    size = _files_per_call(features, len(jobs), max(n, 1))
    chunks = [tuple(jobs[i:i + size]) for i in range(0, len(jobs), size)]
    n = min(n, len(chunks))
    if n <= 1:
        for chunk in chunks:
            for job, outcome in zip(chunk, _compute_many(chunk)):
                finish(job.digest, outcome)
        return
    import multiprocessing

    from ..processes import die_with_parent

    # spawn, not fork: the parent may hold torch / BLAS thread pools that a fork would copy broken.
    # A worker blocks on its task queue forever once the parent is gone (it holds the queue's write
    # end itself): die_with_parent ends it when the parent dies, SIGKILL and OOM included.
    with ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"),
                             initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(_compute_many, chunk): chunk for chunk in chunks}
        try:
            for fut in as_completed(futures):
                for job, outcome in zip(futures[fut], fut.result()):
                    finish(job.digest, outcome)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _files_per_call(features: Mapping[str, Any], files: int, workers: int) -> int:
    """Files one call computes: the largest ``batch_size`` a feature declares (BatchesAudio), at most
    an even share of ``files`` over the ``workers``; 1 when no feature batches (``from_audio`` per file)."""
    sizes = []
    for name, feature in features.items():
        if isinstance(feature, BatchesAudio):
            size = feature.batch_size
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise PluginError(
                    f"feature '{name}' declares batch_size {size!r}, where an int >= 1 is needed; the plugin "
                    f"({provider_version(feature)}) is broken: report it or upgrade it")
            sizes.append(size)
    return max(1, min(max(sizes, default=1), -(-files // workers)))
