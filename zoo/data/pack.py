"""Packed storage: many ``[F, T_i]`` float32 arrays in one file, written as they come, read whole or clip by clip.

Training reads thousands of clips; opening one small .npy per clip costs far more than the
bytes. A pack holds them all in one file, clip after clip, in shards of a bounded size:

    bytes 0-7     magic ``b"ZOOPACK3"``
    bytes 8-63    zeros
    data          the clips one after another, each float32 little endian, C order ``[F, T_i]``
                  (clip i starts at byte 64 + 4 F sum(T_<i)). The clips are grouped into shards:
                  shard k is clips ``[first_k, first_(k+1))``, at most ``shard_bytes`` bytes
                  (a single clip larger than that is a shard of its own), checksummed alone.
    index         JSON: {"n_bins": F, "lengths": [T_0, ...], "shards": [[first_clip, crc32], ...],
                  "shard_bytes": S, "meta": {...}}
    trailer       32 bytes: index offset (uint64 LE), index length (uint64 LE), crc32 of the
                  index (uint32 LE), 4 zero bytes, the magic again.

The index comes last, so a :class:`PackWriter` writes each clip as it comes and holds at most
one clip in memory. Files are written to a temporary name and renamed into place when the
index is written, so a reader never sees half a pack, and a writer killed on the way leaves
no file a reader accepts. Every check is a DataError naming the file and what is wrong, never
training data: the size and the index are checked when a pack is opened, every shard's crc32
and that every value is finite when it is read whole (:func:`read_pack`, the shards in parallel
threads: zlib and numpy release the GIL) or, for a pack read clip by clip (:func:`open_pack`,
data bigger than memory), once per process in bounded chunks. ``ZOOPACK1`` (no checksums) and
``ZOOPACK2`` (one ``[F, sum T]`` block, which cannot be read clip by clip or written
incrementally) packs are refused the same way; ``prepare`` rebuilds them.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..errors import DataError
from ..fsio import reap_temporaries, temp_path

MAGIC = b"ZOOPACK3"
_OLDER = {b"ZOOPACK1": "without checksums", b"ZOOPACK2": "in a layout that cannot be read clip by clip"}
_START = 64
_TRAILER = 32
_DTYPE = np.dtype("<f4")
SHARD_BYTES = 256 << 20
"""Default most bytes of one checksummed shard (256 MiB): a reader checks it in chunks of ``_CHUNK``."""
_CHUNK = 4 << 20  # bytes read at a time when a shard is checked from disk
_FIX = "delete it; the next prepare of the data set rebuilds it"
_OPENING = threading.Lock()


LOUD_BYTES = 500_000_000
"""A pack at least this big says so on stderr before it is written (the write shows no progress)."""


class PackWriter:
    """Write a pack clip by clip: ``add(array)`` each ``[F, T]`` array, then ``close(meta)``.

    Holds one clip at a time: each is checked (same F, T >= 1, finite), checksummed into the
    current shard and written. Used as a context manager, an exception (or a never-called
    ``close``) removes the temporary file: no pack appears.
    """

    def __init__(self, path: Path, *, shard_bytes: int = SHARD_BYTES):
        if shard_bytes < 4:
            raise DataError(f"pack {path}: shard_bytes {shard_bytes} must be at least 4 (one value)")
        self.path = Path(path)
        self.shard_bytes = int(shard_bytes)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        reap_temporaries(self.path.parent)  # what writers killed mid-pack left
        self.tmp = temp_path(self.path)
        self.n_bins = 0
        self.lengths: list[int] = []
        self.shards: list[list[int]] = []
        self._crc, self._filled = 0, 0
        self.bytes = 0
        self._file = open(self.tmp, "wb")
        try:
            self._file.write(MAGIC + bytes(_START - len(MAGIC)))
        except BaseException:
            self.abort()
            raise

    def __len__(self) -> int:
        return len(self.lengths)

    def add(self, array: np.ndarray) -> None:
        a = np.asarray(array)
        i = len(self.lengths)
        if not self.lengths and a.ndim == 2:
            self.n_bins = a.shape[0]
        if a.ndim != 2 or a.shape[0] != self.n_bins or 0 in a.shape:
            raise DataError(
                f"write_pack {self.path}: array {i} has shape {a.shape}; every array must be [F, T] with "
                f"the same F as array 0 ({self.n_bins}), F >= 1 and T >= 1"
            )
        data = np.ascontiguousarray(a, dtype=_DTYPE)
        if not np.isfinite(data.sum(dtype=np.float64)):
            raise DataError(f"write_pack {self.path}: array {i} holds NaN or infinite values; a pack holds finite "
                            f"features only (check the clip the array came from)")
        size = data.nbytes
        if self._filled and self._filled + size > self.shard_bytes:
            self.shards[-1].append(self._crc)
            self._crc, self._filled = 0, 0
        if not self._filled:
            self.shards.append([i])
        self._crc = zlib.crc32(data, self._crc)
        self._filled += size
        self._file.write(memoryview(data).cast("B"))
        self.lengths.append(a.shape[1])
        self.bytes += size

    def close(self, meta: Mapping[str, Any]) -> Path:
        """Write the index, sync and rename into place; returns the pack's path."""
        try:
            if self._filled:
                self.shards[-1].append(self._crc)
                self._crc, self._filled = 0, 0
            index = {"n_bins": self.n_bins, "lengths": self.lengths, "shards": self.shards,
                     "shard_bytes": self.shard_bytes, "meta": dict(meta)}
            try:
                blob = json.dumps(index, separators=(",", ":")).encode()
            except (TypeError, ValueError) as exc:
                raise DataError(
                    f"write_pack {self.path}: meta must be JSON-serialisable (str, numbers, lists, dicts): {exc}"
                ) from exc
            offset = _START + self.bytes
            trailer = (offset.to_bytes(8, "little") + len(blob).to_bytes(8, "little")
                       + zlib.crc32(blob).to_bytes(4, "little") + bytes(4) + MAGIC)
            self._file.write(blob + trailer)
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Drop what was written: no pack appears."""
        try:
            self._file.close()
        finally:
            self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "PackWriter":
        return self

    def __exit__(self, kind, value, tb) -> None:
        if not self._file.closed:
            self.abort()


def write_pack(path: Path, arrays: Iterable[np.ndarray], meta: Mapping[str, Any], *,
               shard_bytes: int = SHARD_BYTES) -> None:
    """Write ``arrays`` (each ``[F, T_i]``, the same F, T_i >= 1, finite; any iterable, consumed one
    at a time) and the JSON-able ``meta`` to ``path``."""
    if isinstance(arrays, Sequence):
        size = sum(np.asarray(a).size for a in arrays) * 4
        if size > LOUD_BYTES:  # writing and checksumming takes a while and shows nothing: say what runs
            print(f"zoo: packing {len(arrays)} arrays ({size / 1e9:.1f} GB) into {Path(path).name}; this usually "
                  f"takes about {max(1, size / 300e6):.0f} s", file=sys.stderr, flush=True)
    with PackWriter(path, shard_bytes=shard_bytes) as w:
        for a in arrays:
            w.add(a)
        w.close(meta)


class PackFile(Sequence):
    """A pack read clip by clip: ``pack[i]`` reads clip i from disk (``os.pread``: no mapping, so
    nothing stays resident but what the caller keeps); ``len``, ``lengths``, ``n_bins``, ``meta``,
    ``nbytes`` come from the index. ``take(rows)``: a view of some clips, read the same way.

    Pickles as its path and index (a worker process reopens the file, and does not check it again).
    """

    def __init__(self, path: Path, index: Mapping[str, Any], rows: np.ndarray | None = None):
        self.path = Path(path)
        self.index = index
        self.n_bins = int(index["n_bins"])
        all_lengths = np.asarray(index["lengths"], dtype=np.int64)
        # byte offset of every clip, and of the end of the data
        self._starts = _START + 4 * self.n_bins * np.concatenate([[0], np.cumsum(all_lengths)]).astype(np.int64)
        self._all = all_lengths
        self.rows = np.arange(len(all_lengths)) if rows is None else np.asarray(rows, dtype=np.int64)
        self.lengths = all_lengths[self.rows]
        self.meta = index["meta"]
        self._fd: int | None = None

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def nbytes(self) -> int:
        return int(self.lengths.sum()) * self.n_bins * 4

    @property
    def shards(self) -> int:
        return len(self.index["shards"])

    def _open(self) -> int:
        if self._fd is None:
            with _OPENING:  # prefetching threads may ask at once: one descriptor per view
                if self._fd is None:
                    self._fd = os.open(self.path, os.O_RDONLY)
        return self._fd

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self.take(np.arange(len(self))[i])
        k = int(self.rows[i])
        t = int(self._all[k])
        n = 4 * self.n_bins * t
        buf = os.pread(self._open(), n, int(self._starts[k]))
        if len(buf) != n:
            raise DataError(f"pack {self.path} ended inside clip {k} (it was changed or truncated after it was "
                            f"opened); {_FIX}")
        return np.frombuffer(buf, dtype=_DTYPE).reshape(self.n_bins, t)

    def read(self, i: int, scratch: np.ndarray | None = None) -> np.ndarray:
        """Clip ``i`` as ``pack[i]`` gives it, read into ``scratch`` (a float32 buffer of at least
        ``F * T_i`` values, reused by the caller: no allocation per clip) when it is given."""
        k = int(self.rows[i])
        t = int(self._all[k])
        n = self.n_bins * t
        if scratch is None or scratch.size < n or not hasattr(os, "preadv"):
            return self[i]
        out = scratch[:n]
        got = os.preadv(self._open(), [memoryview(out).cast("B")], int(self._starts[k]))
        if got != 4 * n:
            raise DataError(f"pack {self.path} ended inside clip {k} (it was changed or truncated after it was "
                            f"opened); {_FIX}")
        return out.reshape(self.n_bins, t)

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self[i]

    def take(self, rows) -> "PackFile":
        """The clips ``rows`` (positions in this view), read from the same file."""
        return PackFile(self.path, self.index, self.rows[np.asarray(rows, dtype=np.int64)])

    def verify(self) -> None:
        """Check every shard's crc32 and that every value is finite, reading the file in chunks of
        ``_CHUNK`` bytes (a few threads at a time); a DataError naming the file and the shard."""
        shards = self.index["shards"]
        bounds = [int(self._starts[s[0]]) for s in shards] + [int(self._starts[-1])]

        def check(k: int) -> tuple[bool, bool]:
            crc, finite = 0, True
            with open(self.path, "rb", buffering=0) as f:
                f.seek(bounds[k])
                left = bounds[k + 1] - bounds[k]
                buf = bytearray(min(_CHUNK, max(left, 4)))
                while left > 0:
                    view = memoryview(buf)[:min(len(buf), left)]
                    got = f.readinto(view)
                    if not got:
                        raise DataError(f"pack {self.path} ended inside shard {k}: truncated; {_FIX}")
                    crc = zlib.crc32(view[:got], crc)
                    finite = finite and bool(np.isfinite(np.frombuffer(view[:got], _DTYPE).sum(dtype=np.float64)))
                    left -= got
            return crc == shards[k][1], finite

        results = _in_threads(check, len(shards))
        _raise_bad(self.path, [k for k, (ok, _) in enumerate(results) if not ok], shards, len(self._all),
                   not all(f for _, f in results))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "index": self.index, "rows": self.rows}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["index"], state["rows"])


def open_pack(path: Path, *, verify: bool = True) -> PackFile:
    """The pack at ``path``, read clip by clip (for data bigger than memory).

    Its size and index are checked now; with ``verify`` also every shard (read once, in bounded
    chunks: see :meth:`PackFile.verify`). A pack that fails a check is a DataError naming the file.
    """
    path = Path(path)
    pack = PackFile(path, _index(path))
    if verify:
        pack.verify()
    return pack


def read_pack(path: Path, *, mmap: bool = False) -> tuple[list[np.ndarray], dict[str, Any]]:
    """The arrays ``[F, T_i]`` float32 and the meta of the pack at ``path``.

    The arrays are views into one buffer, read in one call (``mmap=True``: mapped read-only from
    the file instead; the checks still read every page once). A pack that fails a check is a
    DataError naming the file and what is wrong.
    """
    path = Path(path)
    index = _index(path)
    n_bins, lengths = int(index["n_bins"]), [int(t) for t in index["lengths"]]
    total = sum(lengths)
    values = n_bins * total
    if mmap and values:
        flat = np.memmap(path, dtype=_DTYPE, mode="r", offset=_START, shape=(values,))
    else:
        with open(path, "rb") as f:
            f.seek(_START)
            flat = np.fromfile(f, dtype=_DTYPE, count=values)
    shards = index["shards"]
    bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64) * n_bins
    firsts = [s[0] for s in shards] + [len(lengths)]

    def check(k: int) -> tuple[bool, bool]:
        part = flat[bounds[firsts[k]]:bounds[firsts[k + 1]]]
        # A float64 sum of finite float32 values cannot overflow, and NaN or inf carry through it.
        return zlib.crc32(part) == shards[k][1], bool(np.isfinite(part.sum(dtype=np.float64)))

    results = _in_threads(check, len(shards))
    _raise_bad(path, [k for k, (ok, _) in enumerate(results) if not ok], shards, len(lengths),
               not all(f for _, f in results))
    arrays = [flat[bounds[i]:bounds[i + 1]].reshape(n_bins, lengths[i]) for i in range(len(lengths))]
    return arrays, index["meta"]


def pack_summary(path: Path) -> dict[str, Any]:
    """What the index of the pack at ``path`` says (no data read): clips, shards, bytes, n_bins, meta."""
    index = _index(Path(path))
    return {"path": str(path), "clips": len(index["lengths"]), "shards": len(index["shards"]),
            "bytes": Path(path).stat().st_size, "data_bytes": 4 * int(index["n_bins"]) * sum(index["lengths"]),
            "n_bins": int(index["n_bins"]), "shard_bytes": int(index["shard_bytes"]), "meta": index["meta"]}


def _index(path: Path) -> dict[str, Any]:
    """The checked index of the pack at ``path``: magic, trailer, index checksum and file size."""
    if not path.is_file():
        raise DataError(f"pack {path} does not exist; it is written when a data set is prepared")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(_START)
        if head[:8] in _OLDER:
            raise DataError(f"pack {path} was written by an older zoo, {_OLDER[head[:8]]}, and cannot be "
                            f"verified or streamed; {_FIX}")
        if len(head) < 8 or head[:8] != MAGIC:
            raise DataError(f"{path} is not a zoo pack (bad magic bytes); {_FIX}")
        if size < _START + _TRAILER:
            raise DataError(f"pack {path} is {size} bytes, too short for a pack: truncated; {_FIX}")
        f.seek(size - _TRAILER)
        tail = f.read(_TRAILER)
        if tail[-8:] != MAGIC:
            raise DataError(f"pack {path} does not end with its index: truncated or corrupt (a writer killed "
                            f"mid-way or a partial copy); {_FIX}")
        offset, length = int.from_bytes(tail[:8], "little"), int.from_bytes(tail[8:16], "little")
        stored = int.from_bytes(tail[16:20], "little")
        if head[8:_START] != bytes(_START - 8) or tail[20:24] != bytes(4) or offset < _START \
                or offset + length + _TRAILER != size:
            raise DataError(f"pack {path} fails its checksum: its index does not sit where its trailer says "
                            f"(offset {offset}, {length} bytes in a file of {size}): truncated or corrupt; {_FIX}")
        f.seek(offset)
        blob = f.read(length)
    if zlib.crc32(blob) != stored:
        raise DataError(f"pack {path} fails its checksum: its index changed after it was written (a disk "
                        f"fault, a partial copy or another tool); {_FIX}")
    try:
        index = json.loads(blob)
        n_bins, lengths = int(index["n_bins"]), [int(t) for t in index["lengths"]]
        shards = [[int(a), int(b)] for a, b in index["shards"]]
        int(index["shard_bytes"]), dict(index["meta"])
        if [s[0] for s in shards] != sorted({s[0] for s in shards}) or (lengths and (not shards or shards[0][0] != 0)) \
                or any(not 0 <= s[0] < len(lengths) for s in shards) or min(lengths, default=1) < 1:
            raise ValueError("the shard table does not cover the clips in order")
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"pack {path} has a corrupt header ({exc}); {_FIX}") from exc
    index["shards"] = shards
    if _START + 4 * n_bins * sum(lengths) != offset:
        raise DataError(f"pack {path} is {size} bytes, expected {_START + 4 * n_bins * sum(lengths) + length + _TRAILER} "
                        f"for {len(lengths)} arrays of {n_bins} rows: truncated or corrupt; {_FIX}")
    return index


def _in_threads(check, n: int) -> list:
    threads = min(n, os.cpu_count() or 1, 8)
    if threads <= 1:
        return [check(k) for k in range(n)]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(check, range(n)))


def _raise_bad(path: Path, bad: list[int], shards: list[list[int]], n_clips: int, nonfinite: bool) -> None:
    if bad:
        k = bad[0]
        last = (shards[k + 1][0] if k + 1 < len(shards) else n_clips) - 1
        raise DataError(f"pack {path} fails its checksum in {len(bad)} of {len(shards)} shard(s) (the first: shard "
                        f"{k}, clips {shards[k][0]}-{last}): its bytes changed after it was written (a disk fault, "
                        f"a partial copy or another tool); {_FIX}")
    if nonfinite:
        raise DataError(f"pack {path} holds NaN or infinite values, which no pack is written with; {_FIX}")
