"""Read and check the lab's precomputed arrays: ``[140, T]`` per clip, plain ``.npy`` or gzip ``.npy.gz``.

Rows 0-127 are a mel spectrogram in dB, rows 128-139 a chromagram (DATA-FORMATS.md section 1).
Whether a file is gzip-compressed is decided by its first bytes, not its name: copies of the set
exist where ``.npy`` files are compressed and ``.npy.gz`` files are not.

An array stored time-major, ``(T, 140)``, is transposed to ``(140, T)``: nothing is lost, and the
only ambiguous case, ``T == 140``, is read frequency-major like every array of the original set.
"""
from __future__ import annotations

import gzip
import io
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError

LAB_ROWS = 140
MEL_ROWS = slice(0, 128)
CHROMA_ROWS = slice(128, 140)
_GZIP_MAGIC = b"\x1f\x8b"


def _open_bytes(path: Path) -> io.BytesIO:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"lab array {path} does not exist; check the path or the data set download") from None
    except OSError as exc:
        raise DataError(f"lab array {path} cannot be read: {exc}") from exc
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"lab array {path} is a damaged gzip file ({exc}); download it again") from exc
    return io.BytesIO(raw)


def _orient(shape: tuple[int, ...], path: Path) -> bool:
    """Check ``shape``; return True when the array must be transposed (stored as ``(T, 140)``)."""
    if len(shape) != 2:
        raise DataError(
            f"lab array {path} has shape {shape}; expected a 2-D array (140, T): 128 mel rows and 12 chroma rows"
        )
    rows, cols = shape
    if rows != LAB_ROWS and cols != LAB_ROWS:
        raise DataError(
            f"lab array {path} has shape {shape}; expected (140, T) (128 mel rows + 12 chroma rows), "
            f"or (T, 140); this is not one of the lab's fused arrays"
        )
    transpose = rows != LAB_ROWS
    if (cols if not transpose else rows) == 0:
        raise DataError(f"lab array {path} is empty (shape {shape}); the clip has no frames; remove it or re-extract it")
    return transpose


def load_lab_array(path: str | Path) -> np.ndarray:
    """Load one lab array and check it: ``-> float32 [140, T]``.

    Raises DataError naming ``path`` when the file is missing, not a .npy (plain or gzip), not
    2-D with 140 rows (or columns), empty, not numeric, or holds NaN/inf values.
    """
    path = Path(path)
    buf = _open_bytes(path)
    if buf.getbuffer()[:6].tobytes() != b"\x93NUMPY":
        raise DataError(f"lab array {path} is not a .npy file (plain or gzip-compressed): it does not start "
                        f"with the .npy signature; download it again")
    try:
        arr = np.load(buf, allow_pickle=False)
    except Exception as exc:  # numpy raises ValueError, OSError, EOFError, UnpicklingError...
        raise DataError(f"lab array {path} is not a readable .npy file ({type(exc).__name__}: {exc}); "
                        f"download it again") from exc
    if not isinstance(arr, np.ndarray):
        raise DataError(f"lab array {path} holds an archive of arrays, not one (140, T) array")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise DataError(f"lab array {path} has dtype {arr.dtype}; expected real numbers (float)")
    if _orient(arr.shape, path):
        arr = arr.T
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    bad = ~np.isfinite(arr)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataError(
            f"lab array {path} holds {int(bad.sum())} NaN/inf values (first at row {row}, frame {col}); "
            f"the file is corrupt: re-extract it, or run with --skip-bad to leave the clip out"
        )
    return arr


def lab_array_shape(path: str | Path) -> tuple[int, int]:
    """``(140, T)`` of a lab array, read from its header only (cheap; for statistics)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            gz = fh.read(2) == _GZIP_MAGIC
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as fh:
            version = np.lib.format.read_magic(fh)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, _ = reader(fh)
    except FileNotFoundError:
        raise DataError(f"lab array {path} does not exist; check the path or the data set download") from None
    except Exception as exc:
        raise DataError(f"lab array {path} has no readable .npy header ({type(exc).__name__}: {exc})") from exc
    return (shape[1], shape[0]) if _orient(tuple(shape), path) else tuple(shape)
