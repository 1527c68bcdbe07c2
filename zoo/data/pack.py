"""Packed storage: many ``[F, T_i]`` float32 arrays in one file, read back in one go.

Training reads thousands of clips; opening one small .npy per clip costs far more than the
bytes. A pack holds them all in one file:

    bytes 0-7     magic ``b"ZOOPACK2"``
    bytes 8-15    header length H (uint64, little endian)
    bytes 16-19   crc32 (uint32, little endian) of bytes 8-15, of the header and padding, and
                  of the shard table
    bytes 20-23   zeros
    next H bytes  JSON header: {"n_bins": F, "lengths": [T_0, T_1, ...], "shard": S, "meta": {...}}
    padding       zeros up to the next multiple of 64 bytes
    data          float32 little endian, C order, shape [F, sum(T_i)]: array i is the
                  column range [sum(T_<i), sum(T_<=i)).
    shard table   one crc32 (uint32, little endian) per shard: shard k is the values
                  [k*S, (k+1)*S) of the data, read as one flat array.

Files are written to a temporary name and renamed into place, so a reader never sees half a pack.
Every read checks the size, every checksum and that every value is finite (as writing does):
bytes changed on disk after the pack was written are a DataError naming the file, never training
data. The shards are checked in parallel threads (zlib and numpy release the GIL while they
work). A ``ZOOPACK1`` pack (written before the checksums) cannot be verified and is refused the
same way.
"""
from __future__ import annotations

import json
import os
import sys
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import DataError

MAGIC = b"ZOOPACK2"
_UNSEALED_MAGIC = b"ZOOPACK1"
_PREFIX = 24
_ALIGN = 64
_DTYPE = np.dtype("<f4")
_SHARD = 1 << 20  # values (4 MiB) per checksummed shard: fits a cache level, and many keep threads busy
_FIX = "delete it; the next prepare of the data set rebuilds it"


LOUD_BYTES = 500_000_000
"""A pack at least this big says so on stderr before it is written (the write shows no progress)."""


def write_pack(path: Path, arrays: Sequence[np.ndarray], meta: Mapping[str, Any]) -> None:
    """Write ``arrays`` (each ``[F, T_i]``, the same F, T_i >= 1, finite) and the JSON-able ``meta`` to ``path``."""
    path = Path(path)
    arrays = [np.asarray(a) for a in arrays]
    n_bins = arrays[0].shape[0] if arrays and arrays[0].ndim == 2 else 0
    for i, a in enumerate(arrays):
        if a.ndim != 2 or a.shape[0] != n_bins or 0 in a.shape:
            raise DataError(
                f"write_pack {path}: array {i} has shape {a.shape}; every array must be [F, T] with "
                f"the same F as array 0 ({n_bins}), F >= 1 and T >= 1"
            )
        if not np.isfinite(a).all():
            raise DataError(f"write_pack {path}: array {i} holds NaN or infinite values; a pack holds finite "
                            f"features only (check the clip the array came from)")
    size = sum(a.size for a in arrays) * 4
    if size > LOUD_BYTES:  # writing and checksumming takes a while and shows nothing: say what runs
        print(f"zoo: packing {len(arrays)} arrays ({size / 1e9:.1f} GB) into {path.name}; this usually "
              f"takes about {max(1, size / 300e6):.0f} s", file=sys.stderr, flush=True)
    header = {"n_bins": n_bins, "lengths": [a.shape[1] for a in arrays], "shard": _SHARD, "meta": dict(meta)}
    try:
        blob = json.dumps(header, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"write_pack {path}: meta must be JSON-serialisable (str, numbers, lists, dicts): {exc}"
        ) from exc
    start = _data_offset(len(blob))
    length = len(blob).to_bytes(8, "little")
    head = blob + b"\0" * (start - _PREFIX - len(blob))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(MAGIC + length + bytes(8) + head)
            shards = _Shards()
            # Row by row: one row of every clip at a time keeps memory at one [sum T] row.
            for row in range(n_bins):
                data = np.concatenate([a[row] for a in arrays]).astype(_DTYPE, copy=False)
                shards.update(data)
                f.write(data.tobytes())
            table = shards.table()
            f.write(table)
            f.seek(16)
            f.write(zlib.crc32(table, zlib.crc32(head, zlib.crc32(length))).to_bytes(4, "little"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_pack(path: Path, *, mmap: bool = False) -> tuple[list[np.ndarray], dict[str, Any]]:
    """The arrays ``[F, T_i]`` float32 and the meta of the pack at ``path``.

    The arrays are views into one ``[F, sum T]`` buffer, read in one call (``mmap=True``: mapped
    read-only from the file instead, for packs larger than memory; the checks still read every
    page once). A pack that fails a check is a DataError naming the file and what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"pack {path} does not exist; it is written when a data set is prepared")
    size = path.stat().st_size
    with open(path, "rb") as f:
        prefix = f.read(_PREFIX)
        if prefix[:8] == _UNSEALED_MAGIC:
            raise DataError(f"pack {path} was written by an older zoo, without checksums, and cannot be "
                            f"verified; {_FIX}")
        if len(prefix) < _PREFIX or prefix[:8] != MAGIC:
            raise DataError(f"{path} is not a zoo pack (bad magic bytes); {_FIX}")
        length, stored = int.from_bytes(prefix[8:16], "little"), int.from_bytes(prefix[16:20], "little")
        try:
            if length > size:
                raise ValueError(f"header length {length} exceeds the file's {size} bytes")
            start = _data_offset(length)
            head = f.read(start - _PREFIX)
            header = json.loads(head[:length])
            n_bins, lengths, meta = int(header["n_bins"]), [int(t) for t in header["lengths"]], header["meta"]
            shard = int(header["shard"])
            if shard < 1:
                raise ValueError(f"shard size {shard}")
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"pack {path} has a corrupt header ({exc}); {_FIX}") from exc
        total = sum(lengths)
        n_shards = -(-n_bins * total // shard)
        expected = start + n_bins * total * _DTYPE.itemsize + 4 * n_shards
        if size != expected:
            raise DataError(
                f"pack {path} is {size} bytes, expected {expected} for {len(lengths)} arrays of {n_bins} "
                f"rows: truncated or corrupt; {_FIX}"
            )
        f.seek(expected - 4 * n_shards)
        table = f.read(4 * n_shards)
        if zlib.crc32(table, zlib.crc32(head, zlib.crc32(prefix[8:16]))) != stored:
            raise DataError(f"pack {path} fails its checksum: its header changed after it was written (a disk "
                            f"fault, a partial copy or another tool); {_FIX}")
        if mmap and total:
            data = np.memmap(path, dtype=_DTYPE, mode="r", offset=start, shape=(n_bins, total))
        else:
            f.seek(start)
            data = np.fromfile(f, dtype=_DTYPE, count=n_bins * total).reshape(n_bins, total)
    bad, nonfinite = _check_shards(data.reshape(-1), shard, np.frombuffer(table, "<u4"))
    if bad:
        raise DataError(f"pack {path} fails its checksum in {len(bad)} of {n_shards} shard(s) (the first: "
                        f"values {bad[0] * shard}-{min((bad[0] + 1) * shard, n_bins * total) - 1}): its bytes "
                        f"changed after it was written (a disk fault, a partial copy or another tool); {_FIX}")
    if nonfinite:
        raise DataError(f"pack {path} holds NaN or infinite values, which no pack is written with; {_FIX}")
    bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    arrays = [data[:, bounds[i]:bounds[i + 1]] for i in range(len(lengths))]
    return arrays, meta


class _Shards:
    """The crc32 of each run of ``_SHARD`` values of a stream written in pieces of any length."""

    def __init__(self) -> None:
        self.crcs: list[int] = []
        self.crc, self.filled = 0, 0

    def update(self, values: np.ndarray) -> None:
        i = 0
        while i < len(values):
            take = min(_SHARD - self.filled, len(values) - i)
            self.crc = zlib.crc32(values[i:i + take], self.crc)
            self.filled += take
            i += take
            if self.filled == _SHARD:
                self.crcs.append(self.crc)
                self.crc, self.filled = 0, 0

    def table(self) -> bytes:
        crcs = self.crcs + ([self.crc] if self.filled else [])
        return np.asarray(crcs, dtype="<u4").tobytes()


def _check_shards(flat: np.ndarray, shard: int, crcs: np.ndarray) -> tuple[list[int], bool]:
    """``(indices of the shards whose crc32 differs from crcs, whether any value is not finite)``."""

    def check(k: int) -> tuple[bool, bool]:
        part = flat[k * shard:(k + 1) * shard]
        # A float64 sum of finite float32 values cannot overflow, and NaN or inf carry through it.
        return zlib.crc32(part) == crcs[k], bool(np.isfinite(part.sum(dtype=np.float64)))

    threads = min(len(crcs), os.cpu_count() or 1, 8)
    if threads <= 1:
        results = [check(k) for k in range(len(crcs))]
    else:
        with ThreadPoolExecutor(threads) as pool:
            results = list(pool.map(check, range(len(crcs))))
    return [k for k, (ok, _) in enumerate(results) if not ok], not all(finite for _, finite in results)


def _data_offset(header_length: int) -> int:
    raw = _PREFIX + header_length
    return -(-raw // _ALIGN) * _ALIGN
