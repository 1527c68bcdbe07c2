"""Any folder of audio as a zoo data set: one sub-folder per label (GTZAN style) or a CSV manifest.

Label folders: ``ROOT/<label>/<file>.wav|flac|ogg|mp3|...`` (files in deeper folders of a label
folder belong to it). Manifest: a CSV with a ``path`` column (relative to the CSV), a ``label``
column and/or numeric target columns (``valence``, ``energy``...), optionally ``split``
(train / val / test) and ``id``. Other non-numeric columns are ignored and named in the
description. Without splits, ``test_fraction`` of the clips become the test split and
``val_fraction`` of the rest the validation split, stratified and seeded.

A label given to one clip only becomes a class with no validation or test clip: a typo, most
often. It is reported (a ``UserWarning`` and a note in the description, naming the label and its
line or file); ``--min-class-clips N`` turns such classes into an error (see ``zoo.data.prepare``).
File and folder names that are not UTF-8 are read as they are; clip ids and labels show their
undecodable bytes as ``\\xNN`` escapes (:func:`zoo.fsio.shown`). The manifest is read as UTF-8,
and any byte that is not (a path written by a tool on the same file system) is kept as it is.
"""
from __future__ import annotations

import csv
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from ...bounds import bounded, check_bounds
from ...errors import ConfigError, DataError
from ...fsio import shown
from ...protocols import Clip, ComponentSpec
from ..splits import assign_splits, normalise_split, stratum_keys

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".au", ".aif", ".aiff")
_SPECIAL = ("path", "label", "split", "id")
_SINGLES_SHOWN = 5


@dataclass(frozen=True)
class FolderConfig:
    """``manifest``: the CSV to read (relative to the folder; empty: a ``*.csv`` with a ``path``
    column if there is one, else label folders). Split fractions and seed as described above."""

    manifest: str = ""
    test_fraction: float = bounded(0.2, ge=0.0, lt=1.0)
    val_fraction: float = bounded(0.15, ge=0.0, lt=1.0)
    seed: int = 0

    def __post_init__(self) -> None:
        check_bounds(self, "dataset 'folder'")


def is_audio(name: str) -> bool:
    return name.lower().endswith(AUDIO_SUFFIXES) and not name.startswith(".")


def _csv_columns(path: Path) -> list[str]:
    try:
        with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
            return [c.strip().lower() for c in next(csv.reader(fh), [])]
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def find_manifest(root: Path, name: str = "") -> Path | None:
    """The manifest CSV of ``root`` (a CSV file itself, ``name``, or the one CSV with a path column)."""
    if root.is_file():
        return root if root.suffix.lower() == ".csv" else None
    if name:
        path = root / name
        if not path.is_file():
            raise DataError(f"manifest {path} does not exist; check --set dataset.manifest=...")
        return path
    found = sorted(p for p in root.glob("*.csv") if "path" in _csv_columns(p))
    if len(found) > 1:
        named = [p for p in found if p.name == "manifest.csv"]
        if named:
            return named[0]
        raise DataError(f"{root} holds several CSV manifests ({', '.join(p.name for p in found)}); choose one with "
                        f"--set dataset.manifest=NAME or pass the CSV itself as --data")
    return found[0] if found else None


def _has_audio(folder: Path) -> bool:
    try:
        with os.scandir(folder) as it:
            return any(e.is_file() and is_audio(e.name) for e in it)
    except OSError:
        return False


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


class FolderDataset:
    """Audio under ``root``, labelled by folder or by a CSV manifest."""

    name = "folder"

    def __init__(self, config: FolderConfig, root: Path):
        self.config = config
        self.root = Path(root)
        if not self.root.exists():
            raise DataError(f"{self.root} does not exist; check --data")
        self.manifest = find_manifest(self.root, config.manifest)
        self._clips: list[Clip] | None = None
        self._notes: list[str] = []

    def clips(self, rate: str) -> list[Clip]:
        """Every audio clip (both rates come from the audio)."""
        if rate not in ("frames", "beats"):
            raise ConfigError(f"rate {rate!r} is not one of frames, beats")
        if self._clips is None:
            self._clips = self._from_manifest() if self.manifest else self._from_folders()
        return list(self._clips)

    def describe(self) -> str:
        self.clips("frames")
        how = f"manifest {shown(self.manifest.name)}" if self.manifest else "label folders"
        return f"folder data at {shown(self.root)} ({how}): " + "; ".join(self._notes)

    # -- label folders ---------------------------------------------------------------------
    def _from_folders(self) -> list[Clip]:
        if not self.root.is_dir():
            raise DataError(f"{self.root} is neither a folder nor a .csv manifest; pass a folder of audio or a CSV")
        labelled: list[Path] = []
        empty: list[Path] = []
        for sub in _subdirs(self.root):
            (labelled if _has_audio(sub) else empty).append(sub)
        if not labelled:
            deeper = sorted({p.parent.name for sub in _subdirs(self.root) for p in _subdirs(sub) if _has_audio(p)})
            hint = (f"; the audio seems to be one level down, in {', '.join(deeper)}: point --data there"
                    if deeper else f"; put the audio ({', '.join(AUDIO_SUFFIXES)}) in one sub-folder per label, "
                                   f"or write a CSV manifest with path and label columns")
            raise DataError(f"{self.root} has no label folders with audio in them{hint}")
        ids, labels, paths = [], [], []
        for sub in labelled:
            files = sorted(Path(d) / f for d, _, fs in os.walk(sub) for f in fs if is_audio(f))
            for f in files:
                ids.append(shown(f.relative_to(self.root).with_suffix("").as_posix()))
                labels.append(shown(sub.name))
                paths.append(f)
        loose = [e for e in os.listdir(self.root) if is_audio(e)]
        notes = [f"{len(ids)} audio files in {len(labelled)} label folders"]
        if loose:
            notes.append(f"{len(loose)} audio files directly in {self.root} have no label folder and are not used")
        if empty:
            notes.append(f"folders without audio ignored: {', '.join(p.name for p in empty)}")
        return self._finish(ids, labels, [{}] * len(ids), [None] * len(ids), paths, notes, where=ids)

    # -- manifest --------------------------------------------------------------------------
    def _from_manifest(self) -> list[Clip]:
        path = self.manifest
        assert path is not None  # called only for a manifest
        with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
            reader = csv.reader(fh)
            header = [c.strip().lower() for c in next(reader, [])]
            rows = [(n, r) for n, r in enumerate(reader, 2) if any(c.strip() for c in r)]
        if "path" not in header:
            raise DataError(f"manifest {path} has no 'path' column (columns: {', '.join(header)}); "
                            f"add one with each audio file's path relative to the CSV")
        if len(set(header)) != len(header):
            raise DataError(f"manifest {path} repeats a column name ({', '.join(header)}); rename one")
        if not rows:
            raise DataError(f"manifest {path} lists no audio file; add one line per clip")
        for n, r in rows:
            if len(r) != len(header):
                raise DataError(f"manifest {path} line {n}: {len(r)} fields, the header has {len(header)}; fix the line")
        cols = {name: [r[j].strip() for _, r in rows] for j, name in enumerate(header)}
        numeric: list[str] = []
        ignored: list[str] = []
        for name in header:
            if name in _SPECIAL:
                continue
            filled = [v for v in cols[name] if v]
            (numeric if filled and all(_is_number(v) for v in filled) else ignored).append(name)
        if "label" not in header and not numeric:
            raise DataError(f"manifest {path} has neither a 'label' column nor a numeric target column "
                            f"(columns: {', '.join(header)}); add label and/or targets such as valence")
        base = path.parent
        ids, labels, targets, given, paths, lines = [], [], [], [], [], []
        seen: dict[str, int] = {}
        for k, (n, _) in enumerate(rows):
            rel = cols["path"][k]
            if not rel:
                raise DataError(f"manifest {path} line {n}: empty path; fill it in or remove the line")
            cid = cols["id"][k] if "id" in cols and cols["id"][k] else Path(rel).with_suffix("").as_posix()
            if cid in seen:
                raise DataError(f"manifest {path}: clip {cid!r} appears on lines {seen[cid]} and {n}; ids must be unique")
            seen[cid] = n
            try:
                split = normalise_split(cols["split"][k]) if "split" in cols else None
            except KeyError:
                raise DataError(f"manifest {path} line {n}: split {cols['split'][k]!r} is not train, val or test") from None
            ids.append(shown(cid))
            lines.append(f"line {n}")
            labels.append(shown(cols["label"][k]) if "label" in cols and cols["label"][k] else None)
            targets.append({t: float(cols[t][k]) for t in numeric if cols[t][k]})
            given.append(split)
            paths.append(Path(rel) if Path(rel).is_absolute() else base / rel)
        notes = [f"{len(ids)} clips listed"]
        if numeric:
            notes.append(f"targets {', '.join(numeric)}")
        if ignored:
            notes.append(f"non-numeric columns ignored: {', '.join(_why_not_numeric(name, cols[name], rows) for name in ignored)}")
        return self._finish(ids, labels, targets, given, paths, notes, where=lines)

    def _finish(self, ids, labels, targets, given, paths, notes, *, where) -> list[Clip]:
        c = self.config
        classes = sorted({lab for lab in labels if lab is not None})
        if classes:
            notes.append(f"{len(classes)} classes")
        singles = _singletons(labels, where)
        if singles:
            notes.append(f"{len(singles)} label(s) given to one clip only: {_listed(singles)}")
            source = f"manifest {shown(self.manifest)}" if self.manifest else f"{shown(self.root)}"
            warnings.warn(
                f"{source}: {len(singles)} label(s) given to one clip only, each becoming a class with no "
                f"validation or test clip: {_listed(singles)}; check the spelling (a typo?) or add clips, or "
                f"refuse such classes with --min-class-clips 2", UserWarning, stacklevel=3)
        # Also a manifest that gives only train and test still needs a validation split.
        keys = stratum_keys(labels, targets)
        splits, made = assign_splits(ids, keys, given, val_fraction=c.val_fraction,
                                     test_fraction=c.test_fraction, seed=c.seed)
        notes += made
        self._notes = notes
        return [Clip(id=i, split=s, label=lab, targets=t, audio=p)
                for i, s, lab, t, p in zip(ids, splits, labels, targets, paths)]


def _singletons(labels, where) -> dict[str, str]:
    """``{label: where its one clip is}`` for every label given to exactly one clip."""
    seen: dict[str, list[str]] = {}
    for label, place in zip(labels, where):
        if label is not None:
            seen.setdefault(label, []).append(place)
    return {label: places[0] for label, places in sorted(seen.items()) if len(places) == 1}


def _listed(singles: dict[str, str]) -> str:
    parts = [f"'{label}' ({place})" for label, place in list(singles.items())[:_SINGLES_SHOWN]]
    more = len(singles) - _SINGLES_SHOWN
    return ", ".join(parts) + (f" and {more} more" if more > 0 else "")


def _why_not_numeric(name: str, values: list[str], rows: list) -> str:
    """``name``, and where a column of numbers holds a cell that is not one: ``valence (line 7: 'high' is
    not a number)``, so a typo in one row is found without reading the whole file."""
    bad = [(n, v) for (n, _), v in zip(rows, values) if v and not _is_number(v)]
    if not bad or len(bad) == len([v for v in values if v]):  # no numbers at all: a text column, as meant
        return name
    (line, value), more = bad[0], len(bad) - 1
    return f"{name} (line {line}: {shown(value)!r} is not a number{f'; {more} more such line(s)' if more else ''})"


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def detect(root: Path) -> bool:
    """True for a .csv manifest, a folder holding one, or a folder with label sub-folders of audio."""
    root = Path(root)
    try:
        if root.is_file():
            return root.suffix.lower() == ".csv" and "path" in _csv_columns(root)
        if not root.is_dir():
            return False
        if any("path" in _csv_columns(p) for p in root.glob("*.csv")):
            return True
        return any(_has_audio(sub) for sub in _subdirs(root)[:200])
    except OSError:
        return False


spec = ComponentSpec(
    kind="dataset", name="folder", config=FolderConfig, detect=detect,
    build=lambda config, root: FolderDataset(config, root),
    summary="any audio: one sub-folder per label (GTZAN style) or a CSV manifest (path, label and/or targets, split)",
)
