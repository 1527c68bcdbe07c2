"""Writers of small data sets in every layout the zoo reads, quirks included (for any test to reuse).

- :func:`write_kaggle`: the lab's Kaggle set (four parts, gzip and plain .npy, the label files'
  naming quirks, merged / dropped genres, a multitask test folder without labels);
- :func:`write_fma`: FMA metadata with its real multi-row CSV headers, and MP3s;
- :func:`write_label_folders` / :func:`write_manifest`: a folder of audio, GTZAN style or with
  a CSV manifest.

Every writer returns what it wrote, so tests derive their expectations from it.
"""
from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

SR = 22050

# Genres the lab's mapping keeps, merges (-> Rock, Metal) and drops: each kind is exercised.
KAGGLE_GENRES = ("Rock", "Psych-Rock", "Punk", "Jazz", "Indie-Rock", "Hip-Hop")


# -- signals ------------------------------------------------------------------------------
def music(seconds: float = 2.0, *, sr: int = SR, seed: int = 0, bpm: float = 120.0, root_hz: float = 220.0) -> np.ndarray:
    """A short piece with a chord and a click on every beat (so beat trackers find beats): float32 [N]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = sum(np.sin(2 * np.pi * root_hz * r * t) * a for r, a in ((1, 0.3), (1.25, 0.2), (1.5, 0.2), (2, 0.1)))
    clicks = np.zeros_like(t)
    period = int(sr * 60 / bpm)
    burst = np.exp(-np.arange(400) / 60.0) * rng.standard_normal(400)
    for start in range(0, len(t) - 400, period):
        clicks[start:start + 400] += burst
    return (0.5 * y + 0.6 * clicks + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def write_audio(path: Path, y: np.ndarray, sr: int = SR) -> Path:
    """Write ``y`` in the format its suffix names (wav, flac, ogg, mp3)."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".mp3": "MP3"}[path.suffix.lower()]
    sub = {"OGG": "VORBIS", "MP3": "MPEG_LAYER_III"}.get(fmt)
    sf.write(str(path), y, sr, format=fmt, subtype=sub)
    return path


def lab_array(frames: int, *, seed: int = 0) -> np.ndarray:
    """A float64 ``[140, T]`` array like the lab's: mel dB in [-80, 0] then chroma in [0, 1]."""
    rng = np.random.default_rng(seed)
    mel = -80.0 * rng.random((128, frames))
    chroma = rng.random((12, frames))
    return np.vstack([mel, chroma])


def write_lab(path: Path, array: np.ndarray, *, gz: bool | None = None) -> Path:
    """Save ``array`` as .npy; gzip-compressed when ``gz`` (default: when the name ends in .gz)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.save(buf, array)
    data = buf.getvalue()
    if gz if gz is not None else path.name.endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


# -- the lab's Kaggle set -------------------------------------------------------------------
@dataclass
class KaggleFixture:
    """What :func:`write_kaggle` wrote: genre per clip id and split, targets per multitask id."""

    root: Path
    genre_train: dict[str, str] = field(default_factory=dict)
    genre_test: dict[str, str] = field(default_factory=dict)
    multitask: dict[str, dict[str, float]] = field(default_factory=dict)
    multitask_unlabelled: list[str] = field(default_factory=list)
    frames: dict[str, int] = field(default_factory=dict)
    beats: dict[str, int] = field(default_factory=dict)
    files: dict[tuple[str, str], Path] = field(default_factory=dict)
    """(part folder name, id) -> the array file written."""


def write_kaggle(root: Path, *, genres: Sequence[str] = KAGGLE_GENRES, train_per_genre: int = 4,
                 test_per_genre: int = 2, multitask_train: int = 12, multitask_test: int = 3,
                 parts: Sequence[str] = ("fma_genre_spectrograms", "fma_genre_spectrograms_beat",
                                         "multitask_dataset", "multitask_dataset_beat"),
                 frames: tuple[int, int] = (30, 40), beats: tuple[int, int] = (4, 9), seed: int = 0) -> KaggleFixture:
    """The lab's set under ``root`` with every naming quirk: see the module docstring.

    Quirks: odd clips are stored gzip-compressed as ``.npy.gz``, even ones as plain ``.npy``;
    train label files name ``<id>.fused.full.npy.gz``, test ones ``<id>.full.fused.npy.gz``, beat
    ones ``<id>.beatsync.fused.npy.gz``; multitask ids carry no extension.
    """
    rng = np.random.default_rng(seed)
    fx = KaggleFixture(Path(root))
    next_id = 1000
    for g in genres:
        for _ in range(train_per_genre):
            fx.genre_train[str(next_id)] = g
            next_id += 7
        for _ in range(test_per_genre):
            fx.genre_test[str(next_id)] = g
            next_id += 7
    for k in range(multitask_train):
        fx.multitask[str(next_id)] = {n: round(float(rng.random()), 4) for n in ("valence", "energy", "danceability")}
        next_id += 7
    fx.multitask_unlabelled = [str(next_id + 7 * k) for k in range(multitask_test)]
    every = [*fx.genre_train, *fx.genre_test, *fx.multitask, *fx.multitask_unlabelled]
    for i in every:
        fx.frames[i] = int(rng.integers(frames[0], frames[1] + 1))
        fx.beats[i] = int(rng.integers(beats[0], beats[1] + 1))

    for part in parts:
        beat = part.endswith("_beat")
        folder = Path(root) / part
        if part.startswith("fma_genre"):
            for split, table in (("train", fx.genre_train), ("test", fx.genre_test)):
                listed = {"train": "{}.fused.full.npy.gz", "test": "{}.full.fused.npy.gz"}[split]
                if beat:
                    listed = "{}.beatsync.fused.npy.gz"
                lines = ["Id\tGenre"] + [f"{listed.format(i)}\t{g}" for i, g in table.items()]
                (folder / f"{split}_labels.txt").parent.mkdir(parents=True, exist_ok=True)
                (folder / f"{split}_labels.txt").write_text("\n".join(lines) + "\n")
                for i in table:
                    fx.files[(part, i)] = _write_clip(folder / split, i, fx, beat)
        else:
            rows = [["Id", "valence", "energy", "danceability"]]
            rows += [[i, *(t[n] for n in ("valence", "energy", "danceability"))] for i, t in fx.multitask.items()]
            folder.mkdir(parents=True, exist_ok=True)
            with open(folder / "train_labels.txt", "w", newline="") as fh:
                csv.writer(fh).writerows(rows)
            for i in fx.multitask:
                fx.files[(part, i)] = _write_clip(folder / "train", i, fx, beat)
            for i in fx.multitask_unlabelled:
                fx.files[(part, i)] = _write_clip(folder / "test", i, fx, beat)
    return fx


def _write_clip(folder: Path, cid: str, fx: KaggleFixture, beat: bool) -> Path:
    length = fx.beats[cid] if beat else fx.frames[cid]
    name = f"{cid}.fused.full.npy" + (".gz" if int(cid) % 2 else "")
    return write_lab(folder / name, lab_array(length, seed=int(cid)))


def append_line(path: Path, text: str) -> int:
    """Append one line to a text file; return its 1-based line number."""
    path = Path(path)
    body = path.read_text()
    if body and not body.endswith("\n"):
        body += "\n"
    path.write_text(body + text + "\n")
    return body.count("\n") + 1


# -- FMA ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FMATrack:
    """One track of the FMA fixture; ``emotion`` (valence, energy, danceability) or None."""

    id: int
    genre: str = ""
    subset: str = "small"
    split: str = "training"
    emotion: tuple[float, float, float] | None = None
    audio: bool = True


def fma_tracks() -> list[FMATrack]:
    """A default track list: two genres, every split, one track without a genre, one medium track."""
    return [
        FMATrack(2, "Hip-Hop", "small", "training", (0.6, 0.7, 0.8)),
        FMATrack(5, "Hip-Hop", "small", "training", (0.5, 0.4, 0.7)),
        FMATrack(140, "Folk", "small", "training", None),
        FMATrack(141, "Folk", "small", "validation", (0.3, 0.2, 0.4)),
        FMATrack(1482, "Folk", "small", "test", (0.2, 0.3, 0.3)),
        FMATrack(1483, "Hip-Hop", "small", "test", None),
        FMATrack(20001, "", "small", "training", (0.9, 0.9, 0.9)),
        FMATrack(30003, "Rock", "medium", "training", (0.4, 0.6, 0.5)),
        FMATrack(40004, "Rock", "large", "training", None, audio=False),
    ]


def write_fma(root: Path, tracks: Sequence[FMATrack] | None = None, *, audio_dirs: Sequence[str] = ("small",),
              seconds: float = 1.5, echonest: bool = True) -> list[FMATrack]:
    """``fma_metadata/tracks.csv`` (two header rows + the ``track_id`` row, a quoted title with a
    comma and a newline), ``echonest.csv`` (three header rows + ``track_id``), and one MP3 per
    track with ``audio`` in each ``fma_<name>/`` of ``audio_dirs`` that holds its subset."""
    tracks = list(tracks if tracks is not None else fma_tracks())
    meta = Path(root) / "fma_metadata"
    meta.mkdir(parents=True, exist_ok=True)
    top = ["", "album", "album", "artist", "set", "set", "track", "track", "track"]
    sub = ["", "comments", "title", "name", "split", "subset", "genre_top", "title", "genres"]
    with open(meta / "tracks.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerows([top, sub, ["track_id"] + [""] * (len(top) - 1)])
        for t in tracks:
            w.writerow([t.id, 0, "An album, live", "Someone", t.split, t.subset, t.genre,
                        f"Song {t.id}, part 1\nand part 2", "[21]"])
    if echonest:
        feats = ["acousticness", "danceability", "energy", "instrumentalness", "liveness", "speechiness", "tempo", "valence"]
        with open(meta / "echonest.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow([""] + ["echonest"] * (len(feats) + 1))
            w.writerow([""] + ["audio_features"] * len(feats) + ["metadata"])
            w.writerow([""] + feats + ["artist_name"])
            w.writerow(["track_id"] + [""] * (len(feats) + 1))
            for t in tracks:
                if t.emotion is None:
                    continue
                v, e, d = t.emotion
                w.writerow([t.id, 0.5, d, e, 0.1, 0.1, 0.05, 120.0, v, "Someone"])
    holds = {"small": ("small",), "medium": ("small", "medium")}
    for name in audio_dirs:
        for t in tracks:
            if t.audio and t.subset in holds[name]:
                tid = f"{t.id:06d}"
                write_audio(Path(root) / f"fma_{name}" / tid[:3] / f"{tid}.mp3", music(seconds, seed=t.id))
    return tracks


# -- audio folders ---------------------------------------------------------------------------
def write_label_folders(root: Path, labels: Sequence[str] = ("blues", "rock", "jazz"), per_label: int = 4, *,
                        suffixes: Sequence[str] = (".wav",), seconds: float = 1.5) -> dict[str, str]:
    """GTZAN style: ``root/<label>/<label>.0000N<suffix>``; suffixes rotate. Returns {file id: label}."""
    out = {}
    for li, label in enumerate(labels):
        for k in range(per_label):
            suffix = suffixes[(li * per_label + k) % len(suffixes)]
            name = f"{label}.{k:05d}"
            write_audio(Path(root) / label / f"{name}{suffix}", music(seconds, seed=li * 100 + k, root_hz=150 + 40 * li))
            out[f"{label}/{name}"] = label
    return out


def write_manifest(root: Path, rows: Sequence[dict], *, name: str = "manifest.csv", seconds: float = 1.5,
                   write_files: bool = True) -> Path:
    """A CSV manifest of ``rows`` (dicts with ``path`` and any other columns) under ``root``; the
    audio each ``path`` names is written too (unless ``write_files`` is False)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    path = root / name
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)
    if write_files:
        for k, r in enumerate(rows):
            target = root / r["path"]
            if not target.exists():
                write_audio(target, music(seconds, seed=k))
    return path


# -- a third-party layout (for detection tests: register it with an injected EntryInfo) ------
def _notes_detect(root) -> bool:
    return (Path(root) / "NOTES.txt").is_file()


class NotesDataset:
    """A third party's layout: ``NOTES.txt`` lists ``<file> <label>`` lines of lab arrays."""

    name = "notes"

    def __init__(self, root: Path):
        self.root = Path(root)

    def clips(self, rate: str):
        from zoo.protocols import Clip

        lines = (self.root / "NOTES.txt").read_text().split("\n")
        return [Clip(id=f, label=lab, array=self.root / f) for f, lab in (ln.split() for ln in lines if ln.strip())]

    def describe(self) -> str:
        return f"notes data at {self.root}"


def _notes_spec():
    from zoo.protocols import ComponentSpec, NoConfig

    return ComponentSpec(kind="dataset", name="notes", config=NoConfig, detect=_notes_detect,
                         build=lambda config, root: NotesDataset(root), summary="a NOTES.txt list of lab arrays")


NOTES_SPEC = _notes_spec()
"""Entry-point target ``datafixtures:NOTES_SPEC`` of the third-party ``notes`` layout."""
