"""Packed storage: many ``[F, T_i]`` float32 arrays in one file, read back in one go.

Training reads thousands of clips; opening one small .npy per clip costs far more than the
bytes. A pack holds them all in one file:

    bytes 0-7     magic ``b"ZOOPACK1"``
    bytes 8-15    header length H (uint64, little endian)
    next H bytes  JSON header: {"n_bins": F, "lengths": [T_0, T_1, ...], "meta": {...}}
    padding       zeros up to the next multiple of 64 bytes
    data          float32 little endian, C order, shape [F, sum(T_i)]: array i is the
                  column range [sum(T_<i), sum(T_<=i)).

Files are written to a temporary name and renamed into place, so a reader never sees half a pack.
"""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import DataError

MAGIC = b"ZOOPACK1"
_ALIGN = 64
_DTYPE = np.dtype("<f4")


def write_pack(path: Path, arrays: Sequence[np.ndarray], meta: Mapping[str, Any]) -> None:
    """Write ``arrays`` (each ``[F, T_i]``, the same F, T_i >= 1) and the JSON-able ``meta`` to ``path``."""
    path = Path(path)
    arrays = [np.asarray(a) for a in arrays]
    n_bins = arrays[0].shape[0] if arrays and arrays[0].ndim == 2 else 0
    for i, a in enumerate(arrays):
        if a.ndim != 2 or a.shape[0] != n_bins or 0 in a.shape:
            raise DataError(
                f"write_pack {path}: array {i} has shape {a.shape}; every array must be [F, T] with "
                f"the same F as array 0 ({n_bins}), F >= 1 and T >= 1"
            )
    header = {"n_bins": n_bins, "lengths": [a.shape[1] for a in arrays], "meta": dict(meta)}
    try:
        blob = json.dumps(header, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"write_pack {path}: meta must be JSON-serialisable (str, numbers, lists, dicts): {exc}"
        ) from exc
    start = _data_offset(len(blob))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(MAGIC + len(blob).to_bytes(8, "little") + blob)
            f.write(b"\0" * (start - f.tell()))
            # Row by row: one row of every clip at a time keeps memory at one [sum T] row.
            for row in range(n_bins):
                f.write(np.concatenate([a[row] for a in arrays]).astype(_DTYPE, copy=False).tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_pack(path: Path, *, mmap: bool = False) -> tuple[list[np.ndarray], dict[str, Any]]:
    """The arrays ``[F, T_i]`` float32 and the meta of the pack at ``path``.

    The arrays are views into one ``[F, sum T]`` buffer, read in one call (``mmap=True``: mapped
    read-only from the file instead, for packs larger than memory).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"pack {path} does not exist; it is written when a data set is prepared")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(16)
        if len(head) < 16 or head[:8] != MAGIC:
            raise DataError(f"{path} is not a zoo pack (bad magic bytes); delete it and it will be rebuilt")
        length = int.from_bytes(head[8:], "little")
        try:
            if length > size:
                raise ValueError(f"header length {length} exceeds the file's {size} bytes")
            header = json.loads(f.read(length))
            n_bins, lengths, meta = int(header["n_bins"]), [int(t) for t in header["lengths"]], header["meta"]
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"pack {path} has a corrupt header ({exc}); delete it and it will be rebuilt") from exc
        start, total = _data_offset(length), sum(lengths)
        if size != start + n_bins * total * _DTYPE.itemsize:
            raise DataError(
                f"pack {path} is {size} bytes, expected {start + n_bins * total * _DTYPE.itemsize} for "
                f"{len(lengths)} arrays of {n_bins} rows: truncated or corrupt; delete it and it will be rebuilt"
            )
        if mmap and total:
            data = np.memmap(path, dtype=_DTYPE, mode="r", offset=start, shape=(n_bins, total))
        else:
            f.seek(start)
            data = np.fromfile(f, dtype=_DTYPE, count=n_bins * total).reshape(n_bins, total)
    bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    arrays = [data[:, bounds[i]:bounds[i + 1]] for i in range(len(lengths))]
    return arrays, meta


def _data_offset(header_length: int) -> int:
    raw = len(MAGIC) + 8 + header_length
    return -(-raw // _ALIGN) * _ALIGN
