"""The Free Music Archive (FMA) as a zoo data set: metadata CSVs plus MP3s in ``fma_small/`` or ``fma_medium/``.

Labels: ``track.genre_top`` (a track without one has no label). Targets: valence, energy and
danceability from ``echonest.csv`` where it has the track. Splits: FMA's official
``set.split`` (training / validation / test). Audio: ``<subset folder>/AAA/AAABBB.mp3``. A listed
file that is missing or corrupt is reported by :func:`zoo.data.prepare.prepare` (an error, or
skipped and listed with ``--skip-bad``), never dropped silently.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ...errors import ConfigError, DataError
from ...protocols import Clip, ComponentSpec
from ..multiheader import read_columns

SUBSETS = {"small": ("small",), "medium": ("small", "medium")}
"""Which ``set.subset`` values each audio folder holds (fma_medium includes the small tracks)."""
SPLIT_NAMES = {"training": "train", "validation": "val", "test": "test"}
TARGETS = ("valence", "energy", "danceability")


@dataclass(frozen=True)
class FMAConfig:
    """``subset``: read ``fma_small/`` or ``fma_medium/``; "auto" takes the larger one present."""

    subset: Literal["small", "medium", "auto"] = "auto"


def metadata_root(root: Path) -> Path | None:
    """The folder holding ``fma_metadata/`` (``root`` or, if ``root`` is fma_metadata, its parent)."""
    root = Path(root)
    if (root / "fma_metadata" / "tracks.csv").is_file():
        return root
    if root.name == "fma_metadata" and (root / "tracks.csv").is_file():
        return root.parent
    return None


def audio_path(folder: Path, track_id: int) -> Path:
    """``folder/AAA/AAABBB.mp3`` for track ``AAABBB`` (zero-padded to six digits)."""
    name = f"{track_id:06d}"
    return folder / name[:3] / f"{name}.mp3"


class FMADataset:
    """FMA at ``root``: ``fma_metadata/`` beside ``fma_small/`` and/or ``fma_medium/``."""

    name = "fma"

    def __init__(self, config: FMAConfig, root: Path):
        self.config = config
        base = metadata_root(Path(root))
        if base is None:
            raise DataError(f"{root} is not an FMA folder: {Path(root) / 'fma_metadata' / 'tracks.csv'} is missing; "
                            f"unpack fma_metadata.zip there, or point --data at the folder that holds fma_metadata/")
        self.root = base
        self.subset = self._subset()
        self.audio_dir = base / f"fma_{self.subset}"
        self._clips: list[Clip] | None = None
        self._note = ""

    def _subset(self) -> str:
        present = [s for s in ("medium", "small") if (self.root / f"fma_{s}").is_dir()]
        wanted = self.config.subset
        if wanted == "auto":
            if not present:
                raise DataError(f"FMA at {self.root} has no audio folder (fma_small/ or fma_medium/); "
                                f"unpack fma_small.zip or fma_medium.zip there")
            return present[0]
        if wanted not in present:
            raise DataError(f"FMA at {self.root} has no fma_{wanted}/ (subset={wanted}); present: "
                            f"{', '.join(f'fma_{s}/' for s in present) or 'none'}; unpack fma_{wanted}.zip "
                            f"or set --set dataset.subset=auto")
        return wanted

    def clips(self, rate: str) -> list[Clip]:
        """Every track of the subset (audio clips: both rates come from the same MP3)."""
        if rate not in ("frames", "beats"):
            raise ConfigError(f"rate {rate!r} is not one of frames, beats")
        if self._clips is None:
            self._clips = self._load()
        return list(self._clips)

    def describe(self) -> str:
        self.clips("frames")
        return f"fma data at {self.root}, subset {self.subset} (fma_{self.subset}/): {self._note}"

    def _load(self) -> list[Clip]:
        meta = self.root / "fma_metadata"
        tracks = read_columns(meta / "tracks.csv", {
            "genre": ("track", "genre_top"), "subset": ("set", "subset"), "split": ("set", "split")})
        echonest_file = meta / "echonest.csv"
        emotion = {}
        if echonest_file.is_file():
            emotion = read_columns(echonest_file, {t: ("audio_features", t) for t in TARGETS})
        keep = SUBSETS[self.subset]
        clips = []
        splits: Counter[str] = Counter()
        for tid, subset in sorted(tracks["subset"].items()):
            if subset not in keep:
                continue
            raw = tracks["split"][tid]
            split = SPLIT_NAMES.get(raw) if raw else None
            if raw and split is None:
                raise DataError(f"{meta / 'tracks.csv'}: track {tid} has set.split {raw!r}; expected one of "
                                f"{', '.join(SPLIT_NAMES)}; fix the file or download fma_metadata.zip again")
            targets = {}
            for t in TARGETS:
                cell = emotion.get(t, {}).get(tid, "")
                if cell:
                    try:
                        targets[t] = float(cell)
                    except ValueError:
                        raise DataError(f"{echonest_file}: track {tid} has {t} {cell!r}, not a number") from None
            genre = tracks["genre"][tid] or None
            clips.append(Clip(id=str(tid), split=split, label=genre, targets=targets,
                              audio=audio_path(self.audio_dir, tid)))
            splits[split or "none"] += 1
        if not clips:
            raise DataError(f"{meta / 'tracks.csv'} lists no track of subset {self.subset}; "
                            f"check the file or choose --set dataset.subset=...")
        genres = Counter(c.label for c in clips if c.label)
        n_targets = sum(1 for c in clips if c.targets)
        self._note = (f"{len(clips)} tracks (" + " / ".join(f"{s} {n}" for s, n in splits.items()) + f"), "
                      f"{len(genres)} top genres, {len(clips) - sum(genres.values())} without a top genre, "
                      f"{n_targets} with echonest targets"
                      + ("" if echonest_file.is_file() else " (no echonest.csv)"))
        return clips


def detect(root: Path) -> bool:
    """True when ``root`` holds ``fma_metadata/tracks.csv`` (or is ``fma_metadata``)."""
    try:
        return metadata_root(Path(root)) is not None
    except OSError:
        return False


spec = ComponentSpec(
    kind="dataset", name="fma", config=FMAConfig, detect=detect,
    build=lambda config, root: FMADataset(config, root),
    summary="the Free Music Archive: fma_metadata/ (genre_top, official split, echonest targets) + fma_small|medium MP3s",
)
