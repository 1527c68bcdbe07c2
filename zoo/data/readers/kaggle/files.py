"""The files of the lab's Kaggle data set: its four parts, their label files and array files.

A *part* is a folder holding ``train/`` and ``train_labels.txt`` (and usually ``test/`` and
``test_labels.txt``): ``fma_genre_spectrograms``, ``fma_genre_spectrograms_beat``,
``multitask_dataset`` and ``multitask_dataset_beat`` (DATA-FORMATS.md section 1). A part holds
genre labels when its label file is tab-separated and emotion targets when it is
comma-separated; it holds beat-synced arrays when its name says ``beat``.

Label files name files loosely (``<id>.fused.full.npy.gz``, ``<id>.beatsync.fused.npy.gz``,
``full.fused``...), so only the id before the first dot is trusted; :func:`resolve_array` then
finds the file that is really there.
"""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path

from ....errors import DataError

CANONICAL = {
    ("genre", "frames"): "fma_genre_spectrograms",
    ("genre", "beats"): "fma_genre_spectrograms_beat",
    ("multitask", "frames"): "multitask_dataset",
    ("multitask", "beats"): "multitask_dataset_beat",
}
DEFAULT_TARGETS = ("valence", "energy", "danceability")
_PREFERRED = (".fused.full.npy", ".fused.full.npy.gz")


@dataclass(frozen=True)
class Part:
    """One folder of the set: ``kind`` "genre" or "multitask", ``rate`` "frames" or "beats"."""

    folder: Path
    kind: str
    rate: str


@dataclass(frozen=True)
class Row:
    """One labelled line: its 1-based line number, the clip id, the file name as written, and
    the genre (genre parts) or the targets (multitask parts)."""

    line: int
    id: str
    listed: str
    genre: str | None = None
    targets: tuple[tuple[str, float], ...] = ()


def clip_id(name: str) -> str:
    """The id of a listed file name: the part of its base name before the first dot."""
    return os.path.basename(name.strip()).split(".", 1)[0].strip()


def _first_line(path: Path) -> str:
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        for line in fh:
            if line.strip():
                return line
    return ""


def part_kind(folder: Path) -> str | None:
    """"genre", "multitask" or None (not a part, or a label file of neither shape)."""
    labels = folder / "train_labels.txt"
    if not ((folder / "train").is_dir() and labels.is_file()):
        return None
    try:
        line = _first_line(labels)
    except OSError:
        return None
    if "\t" in line:
        return "genre"
    if "," in line:
        return "multitask"
    return None


def find_parts(root: Path) -> list[Part]:
    """The parts in ``root``: ``root`` itself, its sub-folders, or those of ``root/data``."""
    root = Path(root)
    if not root.is_dir():
        return []
    kind = part_kind(root)
    if kind:
        return [Part(root, kind, "beats" if "beat" in root.name.lower() else "frames")]
    for base in (root, root / "data"):
        if not base.is_dir():
            continue
        parts = []
        for child in sorted(base.iterdir()):
            if child.is_dir() and (kind := part_kind(child)):
                parts.append(Part(child, kind, "beats" if "beat" in child.name.lower() else "frames"))
        if parts:
            return parts
    return []


def _has_header(first_field: str) -> bool:
    return not clip_id(first_field).isdigit()


def read_genre_labels(path: Path) -> list[Row]:
    """Rows of a genre label file (``Id<TAB>Genre`` header, then ``<file><TAB><genre>``)."""
    rows: list[Row] = []
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8-sig") as fh:
        lines = list(fh)
    for n, line in enumerate(lines, 1):
        text = line.rstrip("\r\n")
        if not text.strip():
            continue
        fields = [f.strip() for f in text.split("\t")]
        while len(fields) > 2 and not fields[-1]:  # trailing tabs left by spreadsheet exports
            fields.pop()
        if not rows and not seen and _has_header(fields[0]):
            seen[""] = n  # the header line
            continue
        if len(fields) != 2 or not fields[0] or not fields[1]:
            raise DataError(f"{path} line {n}: expected '<file><TAB><genre>', got {text!r}; fix or remove the line")
        cid = clip_id(fields[0])
        if not cid:
            raise DataError(f"{path} line {n}: cannot read a clip id from {fields[0]!r} (expected e.g. 1042.fused.full.npy.gz)")
        if cid in seen:
            raise DataError(f"{path}: clip {cid} is listed twice (lines {seen[cid]} and {n}); remove one of the lines")
        seen[cid] = n
        rows.append(Row(n, cid, fields[0], genre=fields[1]))
    return rows


def read_target_labels(path: Path) -> tuple[tuple[str, ...], list[Row]]:
    """Target names and rows of a multitask label file (``Id,valence,energy,danceability``).

    An empty cell is a missing target; a value that is not a finite number is an error.
    """
    with open(path, encoding="utf-8-sig", newline="") as fh:
        table = [(n, r) for n, r in enumerate(csv.reader(fh), 1) if any(c.strip() for c in r)]
    if not table:
        raise DataError(f"{path} is empty; expected a header 'Id,valence,energy,danceability' and one line per clip")
    names: tuple[str, ...]
    if _has_header(table[0][1][0]):
        names = tuple(c.strip() for c in table[0][1][1:])
        table = table[1:]
        if not names or not all(names):
            raise DataError(f"{path} line 1: header {','.join(names)!r} must name every target column, e.g. Id,valence,energy,danceability")
    else:
        names = DEFAULT_TARGETS
    rows: list[Row] = []
    seen: dict[str, int] = {}
    for n, fields in table:
        if len(fields) != len(names) + 1:
            raise DataError(f"{path} line {n}: expected {len(names) + 1} comma-separated fields "
                            f"(Id,{','.join(names)}), got {len(fields)}; fix or remove the line")
        cid = clip_id(fields[0])
        if not cid:
            raise DataError(f"{path} line {n}: empty clip id; fix or remove the line")
        if cid in seen:
            raise DataError(f"{path}: clip {cid} is listed twice (lines {seen[cid]} and {n}); remove one of the lines")
        seen[cid] = n
        values = []
        for name, cell in zip(names, fields[1:]):
            if not cell.strip():
                continue
            try:
                value = float(cell)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise DataError(f"{path} line {n}: {name} is {cell.strip()!r}, not a number; fix the value or leave the cell empty")
            values.append((name, value))
        rows.append(Row(n, cid, fields[0].strip(), targets=tuple(values)))
    return names, rows


def index_arrays(folder: Path) -> dict[str, list[str]]:
    """``{id: [file names]}`` of the ``.npy`` / ``.npy.gz`` files in ``folder`` (one listing)."""
    out: dict[str, list[str]] = {}
    with os.scandir(folder) as entries:
        for e in entries:
            if e.name.endswith((".npy", ".npy.gz")):
                out.setdefault(clip_id(e.name), []).append(e.name)
    return out


def resolve_array(folder: Path, index: dict[str, list[str]], row: Row, label_file: Path) -> Path:
    """The file of ``row`` in ``folder``: ``<id>.fused.full.npy``, else ``.npy.gz``, else the
    name the label file gives, else the only file with that id."""
    names = index.get(row.id, [])
    listed = os.path.basename(row.listed)
    for name in [row.id + s for s in _PREFERRED] + [listed, listed + ".gz", listed.removesuffix(".gz")]:
        if name in names:
            return folder / name
    if len(names) == 1:
        return folder / names[0]
    if names:
        raise DataError(f"{label_file} line {row.line} names clip {row.id}, and {folder} holds several files "
                        f"for it ({', '.join(sorted(names))}); keep only {row.id}.fused.full.npy")
    raise DataError(f"{label_file} line {row.line} names clip {row.id} ({row.listed}), but {folder} has no "
                    f"{row.id}.fused.full.npy or {row.id}.fused.full.npy.gz; restore the file or remove the line")
