"""The reader of the lab's Kaggle set: its clips at frame or beat rate, their splits and the lab's class mapping.

``clips("frames")`` reads ``fma_genre_spectrograms`` / ``multitask_dataset``, ``clips("beats")``
their ``_beat`` twins. Clip ids are ``genre/<id>`` and ``multitask/<id>``: the two sets share
track ids, so the set is part of the id.

Splits: the genre set's test split is the one given; its validation split is drawn from the
training clips. The multitask set gives no test labels, so its clips in ``test/`` cannot be
scored: its test and validation splits are both drawn from the training clips. Both draws are
stratified (by class, or by quartile of the mean target) and seeded (``seed``), and the
description says so.

Genres pass through the lab's class mapping (merge five, drop five, keep ten) unless
``mapping=none``; every dropped clip is counted in the description and in
:meth:`KaggleDataset.mapping_report`.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ....bounds import bounded, check_bounds
from ....errors import ConfigError, DataError
from ....protocols import Clip, ComponentSpec
from .files import CANONICAL, Part, find_parts, index_arrays, read_genre_labels, read_target_labels, resolve_array
from ...splits import assign_splits, stratum_keys

LAB_MAPPING: dict[str, str | None] = {
    "Rock": "Rock", "Psych-Rock": "Rock", "Post-Rock": "Rock",
    "Folk": "Folk", "Psych-Folk": "Folk",
    "Metal": "Metal", "Punk": "Metal",
    "Electronic": "Electronic", "Chiptune": "Electronic",
    "Trip-Hop": "Trip-Hop", "Pop": "Pop", "Hip-Hop": "Hip-Hop",
    "Classical": "Classical", "Blues": "Blues", "Jazz": "Jazz",
    "Indie-Rock": None, "Post-Punk": None, "Soundtrack": None, "International": None, "Old-Time": None,
}
"""The lab's CLASS_MAPPING: genre -> class, or None for a dropped genre (10 classes remain)."""

_RATES = ("frames", "beats")


@dataclass(frozen=True)
class KaggleConfig:
    """``task_set``: which parts to read ("auto": every part present). ``mapping``: "lab" applies
    :data:`LAB_MAPPING`, "none" keeps all 20 genres. ``unknown_genres``: a genre the mapping does
    not list is an "error" or is "drop"ped (and counted). ``val_fraction`` of the training clips
    become the validation split; ``test_fraction`` of the multitask training clips become its
    test split. ``seed`` drives both draws."""

    task_set: Literal["genre", "multitask", "auto"] = "auto"
    mapping: Literal["lab", "none"] = "lab"
    unknown_genres: Literal["error", "drop"] = "error"
    val_fraction: float = bounded(0.15, ge=0.0, lt=1.0)
    test_fraction: float = bounded(0.15, ge=0.0, lt=1.0)
    seed: int = 0

    def __post_init__(self) -> None:
        check_bounds(self, "dataset 'kaggle'")


@dataclass
class MappingReport:
    """Clips per genre before the mapping, per class after it, and dropped clips per genre."""

    before: Counter = field(default_factory=Counter)
    after: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)


def _map_genre(genre: str, config: KaggleConfig, where: str) -> tuple[bool, str | None]:
    """``(known, class)``: the class of ``genre``, None when the mapping drops it."""
    if config.mapping == "none":
        return True, genre
    if genre in LAB_MAPPING:
        return True, LAB_MAPPING[genre]
    folded = {k.lower().replace(" ", "-"): v for k, v in LAB_MAPPING.items()}
    key = genre.lower().replace(" ", "-")
    if key in folded:
        return True, folded[key]
    if config.unknown_genres == "drop":
        return False, None
    raise DataError(
        f"{where}: genre {genre!r} is not in the lab's class mapping (it knows {', '.join(sorted(LAB_MAPPING))}); "
        f"keep every genre as its own class with --set dataset.mapping=none, or leave such clips out "
        f"with --set dataset.unknown_genres=drop"
    )


class KaggleDataset:
    """The lab's data set at ``root`` (the folder of the four parts, or one part)."""

    name = "kaggle"

    def __init__(self, config: KaggleConfig, root: Path):
        self.config = config
        self.root = Path(root)
        self.parts = find_parts(self.root)
        if not self.parts:
            wanted = ", ".join(sorted(set(CANONICAL.values())))
            raise DataError(f"{self.root} is not the lab's Kaggle data set: found none of its parts ({wanted}), "
                            f"each a folder with train/ and train_labels.txt; point --data at the folder holding them")
        self._loaded: dict[str, tuple[list[Clip], list[str], MappingReport]] = {}
        self._last_rate: str | None = None

    def _select(self, rate: str) -> list[Part]:
        if rate not in _RATES:
            raise ConfigError(f"rate {rate!r} is not one of {', '.join(_RATES)}")
        kinds = ("genre", "multitask") if self.config.task_set == "auto" else (self.config.task_set,)
        chosen = [p for p in self.parts if p.rate == rate and p.kind in kinds]
        present = ", ".join(f"{p.folder.name}/ ({p.kind}, {p.rate})" for p in self.parts)
        missing = [k for k in kinds if not any(p.kind == k for p in chosen)]
        if (self.config.task_set != "auto" and missing) or not chosen:
            need = " or ".join(CANONICAL[(k, rate)] + "/" for k in (missing or kinds))
            alt = "frame-rate features (mel, chroma)" if rate == "beats" else "beat-rate features (beat, beat-chroma)"
            raise DataError(f"the Kaggle data at {self.root} has no {need}, needed for {rate[:-1]}-rate features "
                            f"(task_set={self.config.task_set}); present: {present}; download that folder too, or "
                            f"use {alt}")
        for kind in kinds:
            same = [p for p in chosen if p.kind == kind]
            if len(same) > 1:
                raise DataError(f"the Kaggle data at {self.root} holds several {kind} {rate}-rate parts "
                                f"({', '.join(str(p.folder) for p in same)}); keep one, or point --data at one of them")
        return chosen

    def clips(self, rate: str) -> list[Clip]:
        """The labelled clips of every selected part at ``rate``, each with ``array`` set."""
        if rate not in self._loaded:
            self._loaded[rate] = self._load(rate)
        self._last_rate = rate
        return list(self._loaded[rate][0])

    def mapping_report(self, rate: str = "frames") -> MappingReport:
        """Counts before / after the class mapping (genre parts at ``rate``)."""
        self.clips(rate)
        return self._loaded[rate][2]

    def describe(self) -> str:
        rate = self._last_rate or ("frames" if any(p.rate == "frames" for p in self.parts) else "beats")
        self.clips(rate)
        notes = self._loaded[rate][1]
        return f"kaggle data at {self.root} ({rate} rate): " + " | ".join(notes)

    # -- reading ----------------------------------------------------------------------------
    def _load(self, rate: str) -> tuple[list[Clip], list[str], MappingReport]:
        clips: list[Clip] = []
        notes: list[str] = []
        report = MappingReport()
        chosen = self._select(rate)
        for part in chosen:
            if part.kind == "genre":
                got, note = self._genre(part, report)
            else:
                got, note = self._multitask(part)
            clips += got
            notes.append(note)
        # a set that is present only at the other rate is named, not silently absent
        for kind in sorted({p.kind for p in self.parts} - {p.kind for p in chosen}):
            if self.config.task_set in ("auto", kind):
                notes.append(f"{kind} set: no {rate[:-1]}-rate folder ({CANONICAL[(kind, rate)]}/), not used")
        return clips, notes, report

    def _rows(self, part: Part, split: str):
        label_file = part.folder / f"{split}_labels.txt"
        folder = part.folder / split
        if not label_file.is_file():
            return label_file, folder, None
        if not folder.is_dir():
            raise DataError(f"{label_file} lists clips but the folder {folder} is missing; restore it from the download")
        rows = read_genre_labels(label_file) if part.kind == "genre" else read_target_labels(label_file)[1]
        return label_file, folder, rows

    def _labelled(self, part: Part):
        """Every labelled row of ``part``'s train and test label files, each clip listed once:
        yields ``(split, label_file, row, locate)`` where ``locate()`` finds the row's array file
        (called only for the rows kept); a missing train label file or a clip in both is an error."""
        seen: dict[str, str] = {}
        for split in ("train", "test"):
            label_file, folder, rows = self._rows(part, split)
            if rows is None:
                if split == "train":
                    raise DataError(f"{label_file} is missing; the {part.kind} set needs it")
                continue
            index = index_arrays(folder)
            for row in rows:
                if row.id in seen:
                    raise DataError(f"clip {row.id} is listed in both {seen[row.id]} and {label_file}; remove one")
                seen[row.id] = str(label_file)
                yield split, label_file, row, lambda row=row, f=folder, i=index, lf=label_file: resolve_array(f, i, row, lf)

    def _genre(self, part: Part, report: MappingReport) -> tuple[list[Clip], str]:
        c = self.config
        ids, labels, given, paths = [], [], [], []
        counts: Counter[str] = Counter()
        for split, label_file, row, locate in self._labelled(part):
            known, cls = _map_genre(row.genre, c, f"{label_file} line {row.line}")
            report.before[row.genre] += 1
            counts[split] += 1
            if cls is None:
                report.dropped[row.genre if known else f"{row.genre} (unknown)"] += 1
                continue
            report.after[cls] += 1
            ids.append(f"genre/{row.id}")
            labels.append(cls)
            given.append(split)
            paths.append(locate())
        keys = stratum_keys(labels, [{}] * len(labels))
        splits, made = assign_splits(ids, keys, given, val_fraction=c.val_fraction, test_fraction=c.test_fraction, seed=c.seed)
        clips = [Clip(id=i, split=s, label=lab, array=p) for i, s, lab, p in zip(ids, splits, labels, paths)]
        note = (f"genre set {part.folder.name}/: {counts['train']} train + {counts['test']} test clips in "
                f"{len(report.before)} genres")
        if c.mapping == "lab":
            dropped = sum(report.dropped.values())
            detail = ", ".join(f"{g} {n}" for g, n in sorted(report.dropped.items()))
            note += f"; lab class mapping -> {len(report.after)} classes, {dropped} clips dropped" + (f" ({detail})" if dropped else "")
        else:
            note += "; no class mapping"
        return clips, note + "".join(f"; {m}" for m in made)

    def _multitask(self, part: Part) -> tuple[list[Clip], str]:
        c = self.config
        ids, targets, given, paths = [], [], [], []
        for split, _, row, locate in self._labelled(part):
            ids.append(f"multitask/{row.id}")
            targets.append(dict(row.targets))
            given.append(split)
            paths.append(locate())
        keys = stratum_keys([None] * len(ids), targets)
        splits, made = assign_splits(ids, keys, given, val_fraction=c.val_fraction,
                                     test_fraction=c.test_fraction, seed=c.seed)
        clips = [Clip(id=i, split=s, targets=t, array=p) for i, s, t, p in zip(ids, splits, targets, paths)]
        names = sorted({k for t in targets for k in t})
        note = f"multitask set {part.folder.name}/: {len(ids)} labelled clips ({', '.join(names)})"
        test_dir = part.folder / "test"
        if "test" not in given and test_dir.is_dir():
            n_test = sum(len(v) for v in index_arrays(test_dir).values())
            note += f"; its {n_test} clips in test/ have no labels and are not used (the set gives no test labels)"
        return clips, note + "".join(f"; {m}" for m in made)


def detect(root: Path) -> bool:
    """True when ``root`` holds (or is) a part of the lab's Kaggle set."""
    try:
        return bool(find_parts(Path(root)))
    except OSError:
        return False


spec = ComponentSpec(
    kind="dataset", name="kaggle", config=KaggleConfig, detect=detect,
    build=lambda config, root: KaggleDataset(config, root),
    summary="the lab's Kaggle set (fma_genre_spectrograms*, multitask_dataset*): precomputed [140, T] arrays",
)
