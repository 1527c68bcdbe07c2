"""A reader of TensorFlow's checkpoint format (a tensor bundle): names, shapes and values, without TensorFlow.

A checkpoint ``PREFIX`` is two kinds of file, both documented in TensorFlow's sources
(``tensorflow/core/util/tensor_bundle/tensor_bundle.h`` and ``tensor_bundle.proto``):

- ``PREFIX.index``: an SSTable (LevelDB's table format: data blocks of prefix-compressed
  key/value entries, an index block of block handles, a 48-byte footer ending in a magic number).
  The key ``""`` holds a ``BundleHeaderProto`` (number of shards, endianness); every other key is
  a tensor's name and holds a ``BundleEntryProto`` (dtype, shape, shard, offset, size, crc32c).
- ``PREFIX.data-SSSSS-of-NNNNN``: the tensors' raw bytes, little-endian, at those offsets.

The musicnn checkpoints are small (a few MB) and uncompressed; this reader handles exactly what
such a bundle holds (plain, unsliced tensors of numeric types) and refuses anything else with a
:class:`CheckpointFormatError` naming what it met. The protobuf messages are decoded by hand
(a handful of varint and length-delimited fields), so the reader needs only numpy.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.errors import ZooError

TABLE_MAGIC = 0xDB4775248B80FB57
"""The last 8 bytes of every LevelDB / TensorFlow table (little-endian)."""
FOOTER_SIZE = 48
BLOCK_TRAILER_SIZE = 5  # 1 byte compression type + 4 bytes crc32c, after each block
DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8, 9: np.int64,
          10: np.bool_, 17: np.uint16, 19: np.float16, 22: np.uint32, 23: np.uint64}
"""TensorFlow's ``DataType`` enum values (``types.proto``) that map to a numpy dtype."""


class CheckpointFormatError(ZooError):
    """A file that is not a tensor bundle this reader understands."""


@dataclass(frozen=True)
class Entry:
    """One tensor's ``BundleEntryProto``: where its bytes are and what they are."""

    name: str
    dtype: int
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """A protobuf / LevelDB base-128 varint at ``pos`` -> (value, position after it)."""
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise CheckpointFormatError("a varint runs past the end of its buffer")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise CheckpointFormatError("a varint is longer than 10 bytes")


def _fields(buf: bytes):
    """The fields of one protobuf message: yields ``(number, wire type, value)`` (bytes for length-delimited)."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise CheckpointFormatError(f"protobuf wire type {wire} (field {number}) is not supported")
        yield number, wire, value


def _shape(buf: bytes) -> tuple[int, ...]:
    """A ``TensorShapeProto``: its dims' sizes (field 2, each a ``Dim`` with ``size`` in field 1)."""
    dims = []
    for number, _, value in _fields(buf):
        if number == 2:
            size = 0
            for n, _, v in _fields(value):
                if n == 1:
                    size = v
            dims.append(size)
        elif number == 3 and value:
            raise CheckpointFormatError("a tensor of unknown rank cannot be read")
    return tuple(dims)


def _entry(name: str, buf: bytes) -> Entry:
    got = {"dtype": 0, "shape": (), "shard": 0, "offset": 0, "size": 0}
    for number, _, value in _fields(buf):
        if number == 1:
            got["dtype"] = value
        elif number == 2:
            got["shape"] = _shape(value)
        elif number in (3, 4, 5):
            got[("shard", "offset", "size")[number - 3]] = value
        elif number == 7:
            raise CheckpointFormatError(f"tensor {name!r} is saved in slices, which this reader does not read")
    return Entry(name, **got)


def _block(table: bytes, offset: int, size: int) -> list[tuple[bytes, bytes]]:
    """The key/value entries of one table block (keys rebuilt from their shared prefixes)."""
    if offset + size + BLOCK_TRAILER_SIZE > len(table):
        raise CheckpointFormatError(f"a block at offset {offset} (size {size}) runs past the end of the index file")
    if table[offset + size] != 0:
        raise CheckpointFormatError(f"a block is compressed (type {table[offset + size]}); only uncompressed tables are read")
    data = table[offset:offset + size]
    n_restarts = struct.unpack_from("<I", data, len(data) - 4)[0]
    end = len(data) - 4 - 4 * n_restarts
    entries, key, pos = [], b"", 0
    while pos < end:
        shared, pos = _varint(data, pos)
        unshared, pos = _varint(data, pos)
        n_value, pos = _varint(data, pos)
        key = key[:shared] + data[pos:pos + unshared]
        pos += unshared
        entries.append((key, data[pos:pos + n_value]))
        pos += n_value
    return entries


def read_index(prefix: str | Path) -> tuple[int, dict[str, Entry]]:
    """``PREFIX.index`` -> (number of data shards, ``{tensor name: Entry}``)."""
    path = Path(f"{prefix}.index")
    try:
        table = path.read_bytes()
    except OSError as exc:
        raise CheckpointFormatError(f"cannot read the checkpoint index {path}: {exc.strerror or exc}") from exc
    if len(table) < FOOTER_SIZE or struct.unpack_from("<Q", table, len(table) - 8)[0] != TABLE_MAGIC:
        raise CheckpointFormatError(f"{path} is not a TensorFlow checkpoint index (no table magic number at its end)")
    footer = table[len(table) - FOOTER_SIZE:]
    _, pos = _varint(footer, 0)  # the metaindex block's offset and size: unused
    _, pos = _varint(footer, pos)
    index_offset, pos = _varint(footer, pos)
    index_size, pos = _varint(footer, pos)
    shards, entries = 1, {}
    for _, handle in _block(table, index_offset, index_size):
        offset, pos = _varint(handle, 0)
        size, _ = _varint(handle, pos)
        for key, value in _block(table, offset, size):
            if key == b"":  # the BundleHeaderProto
                for number, _, v in _fields(value):
                    if number == 1:
                        shards = v
                    elif number == 2 and v != 0:
                        raise CheckpointFormatError(f"{path} was written big-endian; only little-endian bundles are read")
                continue
            name = key.decode("utf-8")
            entries[name] = _entry(name, value)
    return shards, entries


def read_tensors(prefix: str | Path, names: list[str] | None = None) -> dict[str, np.ndarray]:
    """The tensors of checkpoint ``PREFIX`` (all, or those ``names``), as numpy arrays of their saved dtype and shape."""
    shards, entries = read_index(prefix)
    wanted = list(entries) if names is None else names
    missing = [n for n in wanted if n not in entries]
    if missing:
        raise CheckpointFormatError(f"checkpoint {prefix} has no tensor {missing[0]!r} ({len(missing)} missing); "
                                    f"it holds {len(entries)} tensors, e.g. {sorted(entries)[:3]}")
    out, files = {}, {}
    try:
        for name in wanted:
            e = entries[name]
            if e.dtype not in DTYPES:
                raise CheckpointFormatError(f"tensor {name!r} has TensorFlow dtype {e.dtype}, which this reader does not read")
            dtype = np.dtype(DTYPES[e.dtype]).newbyteorder("<")
            count = int(np.prod(e.shape, dtype=np.int64))
            if count * dtype.itemsize != e.size:
                raise CheckpointFormatError(f"tensor {name!r}: {e.size} bytes saved for shape {e.shape} of "
                                            f"{dtype.name} ({count * dtype.itemsize} expected)")
            if e.shard not in files:
                files[e.shard] = open(f"{prefix}.data-{e.shard:05d}-of-{shards:05d}", "rb")
            f = files[e.shard]
            f.seek(e.offset)
            raw = f.read(e.size)
            if len(raw) != e.size:
                raise CheckpointFormatError(f"tensor {name!r}: the data file ends before its {e.size} bytes at offset {e.offset}")
            out[name] = np.frombuffer(raw, dtype=dtype).reshape(e.shape).astype(dtype.newbyteorder("="))
    except OSError as exc:
        raise CheckpointFormatError(f"cannot read the data of checkpoint {prefix}: {exc.strerror or exc}") from exc
    finally:
        for f in files.values():
            f.close()
    return out
