"""The embedded data set: music the zoo synthesises itself, the default when no ``--data`` is given.

On first use the set is rendered from its seed into ``<root>/embedded-v1-<size>-seed<seed>/``
(``root`` is ``zoo.paths.data_dir()`` unless a folder is given)::

    manifest.json      format marker, settings, target formulas, one record per clip
    audio/<id>.wav     22050 Hz mono 16-bit PCM, e.g. audio/hip-hop-0007.wav

Rendering goes into a hidden temporary folder that is renamed into place only once every file
and the manifest are written, so an interrupted run never leaves a set that looks finished; a
later run finds the finished set and reuses it. The same seed gives byte-identical files.
Splits are fixed per genre (70/15/15, seeded), so every run on the set sees the same test clips.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ...errors import ConfigError, DataError
from ...protocols import Clip, ComponentSpec

FORMAT = "music-zoo-embedded"
VERSION = 1
MANIFEST = "manifest.json"
TARGETS = ("valence", "energy", "danceability")
SAMPLE_RATE = 22050
SIZES = {"tiny": (8, 3.0), "small": (24, 5.0), "default": (60, 6.0), "large": (150, 10.0)}
"""Size name -> (clips per genre, seconds per clip)."""
SPLIT_FRACTIONS = {"val": 0.15, "test": 0.15}
RATES = ("frames", "beats")


@dataclass(frozen=True)
class EmbeddedConfig:
    """``size``: tiny (8 clips per genre of 3 s, for tests), small (24 x 5 s), default (60 x 6 s)
    or large (150 x 10 s). ``seconds``: clip length overriding the size's (2-60 s). ``seed``: which
    set (each seed is its own set, cached separately). ``workers``: processes that render (0: one
    for a few minutes of audio, else one per core); it never changes the result."""

    size: Literal["tiny", "small", "default", "large"] = "default"
    seconds: float | None = None
    seed: int = 0
    workers: int = 0

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise ConfigError(f"dataset 'embedded' setting 'size': {self.size!r} is not one of {', '.join(SIZES)}")
        if self.seconds is not None and not 2.0 <= float(self.seconds) <= 60.0:
            raise ConfigError(f"dataset 'embedded' setting 'seconds': {self.seconds} is outside 2-60 s; "
                              f"give a clip length in that range, or leave it unset for the size's own "
                              f"({SIZES[self.size][1]:g} s for {self.size!r})")
        if self.seed < 0:
            raise ConfigError(f"dataset 'embedded' setting 'seed': {self.seed} is negative; use 0 or more")
        if self.workers < 0:
            raise ConfigError(f"dataset 'embedded' setting 'workers': {self.workers} is negative; use 0 (all cores) or more")

    @property
    def clips_per_genre(self) -> int:
        return SIZES[self.size][0]

    @property
    def clip_seconds(self) -> float:
        return float(self.seconds) if self.seconds is not None else SIZES[self.size][1]

    @property
    def folder_name(self) -> str:
        """``embedded-v1-<size>-seed<seed>``, with ``-<seconds>s`` when the length is not the size's."""
        length = "" if self.clip_seconds == SIZES[self.size][1] else f"-{self.clip_seconds:g}s"
        return f"embedded-v{VERSION}-{self.size}{length}-seed{self.seed}"


def is_embedded_set(folder: Path) -> bool:
    """Whether ``folder`` holds an embedded-set manifest (reads only its first bytes)."""
    path = Path(folder) / MANIFEST
    try:
        with open(path, "rb") as fh:
            head = fh.read(256)
    except OSError:
        return False
    return f'"format": "{FORMAT}"'.encode() in head


def clip_id(genre: str, index: int) -> str:
    return f"{genre.lower()}-{index:04d}"


def assign_splits(n: int, seed: int, genre_index: int) -> list[str]:
    """Train/val/test for clips ``0..n-1`` of one genre: 15 % val, 15 % test (at least one each
    once there are 3 clips), the rest train; which clips go where is seeded."""
    import numpy as np
    counts = {k: (max(1, int(f * n + 0.5)) if n >= 3 else 0) for k, f in SPLIT_FRACTIONS.items()}
    order = np.random.default_rng(np.random.SeedSequence([seed, genre_index, 7])).permutation(n)
    out = ["train"] * n
    for pos, i in enumerate(order):
        if pos < counts["test"]:
            out[i] = "test"
        elif pos < counts["test"] + counts["val"]:
            out[i] = "val"
    return out


def _render_job(job: tuple[str, int, int, float, str]) -> dict:
    """Worker: render one clip, write its wav, return its manifest record (no audio travels back)."""
    import numpy as np
    import soundfile as sf

    from ..synth import render_clip
    genre, index, seed, seconds, folder = job
    cid = clip_id(genre, index)
    path = os.path.join(folder, "audio", f"{cid}.wav")
    try:
        audio, record = render_clip(genre, seed, index, seconds, SAMPLE_RATE)
        # quantise here rather than in libsndfile so the bytes depend on numpy alone
        pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")
        sf.write(path, pcm, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    except OSError as exc:
        raise DataError(f"cannot write {path} of the embedded set: {exc}; free some disk space or set "
                        f"ZOO_HOME to another folder") from exc
    except Exception as exc:  # a fault of the synthesiser: say which clip, so it can be reproduced
        raise DataError(f"rendering embedded clip {cid} (seed {seed}, {seconds:g} s) failed: "
                        f"{type(exc).__name__}: {exc}; please report it with this message") from exc
    return {"id": cid, "file": f"audio/{cid}.wav", "genre": genre, **record}


def _run_jobs(jobs: list, workers: int, progress: bool) -> list[dict]:
    from tqdm import tqdm
    bar = tqdm(total=len(jobs), desc="synthesising the embedded set", unit="clip", disable=not progress,
               file=sys.stderr)
    records = []
    try:
        if workers <= 1:
            for job in jobs:
                records.append(_render_job(job))
                bar.update()
            return records
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor
        # spawn: the parent may hold torch / OpenMP threads, which a forked child must not inherit
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
            for record in pool.map(_render_job, jobs, chunksize=4):
                records.append(record)
                bar.update()
        return records
    finally:
        bar.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reap_stale(parent: Path, name: str) -> None:
    """Remove temporary folders of ``name`` left by generators on this host that have died."""
    host = socket.gethostname()
    for tmp in parent.glob(f".{name}.tmp-*"):
        parts = tmp.name[len(name) + 6:].split("-")  # "<host>-<pid>-<token>", host may hold "-"
        try:
            pid, tmp_host = int(parts[-2]), "-".join(parts[:-2])
        except (ValueError, IndexError):
            continue
        if tmp_host == host and not _alive(pid):
            shutil.rmtree(tmp, ignore_errors=True)


def generate(config: EmbeddedConfig, folder: Path, *, progress: bool = True) -> Path:
    """Render the set of ``config`` into ``folder`` (atomically) and return ``folder``.

    If ``folder`` appears meanwhile (another process finished first), that set is kept.
    """
    from ..synth import GENRES, GROOVE, MODE_VALENCE
    from ..synth import targets as target_formulas

    folder = Path(folder)
    parent = folder.parent
    if folder.exists() and not is_embedded_set(folder):
        raise DataError(f"{folder} exists but holds no finished embedded set (no {MANIFEST} of format "
                        f"{FORMAT!r}); the zoo never leaves such a folder, so it is not the zoo's: move or "
                        f"delete it (rm -r '{folder}') and run again")
    tmp = parent / f".{folder.name}.tmp-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        parent.mkdir(parents=True, exist_ok=True)
        _reap_stale(parent, folder.name)
        (tmp / "audio").mkdir(parents=True)
    except OSError as exc:
        raise DataError(f"cannot write the embedded data set under {parent}: {exc}; set ZOO_HOME to a "
                        f"writable folder or pass one with --data") from exc
    try:
        n, seconds = config.clips_per_genre, config.clip_seconds
        jobs = [(g, i, config.seed, seconds, str(tmp)) for g in GENRES for i in range(n)]
        # starting worker processes costs about a second each: not worth it for a few minutes of audio
        workers = config.workers or (1 if len(jobs) * seconds <= 300 else (os.cpu_count() or 1))
        records = _run_jobs(jobs, min(workers, len(jobs)), progress)
        for gi, genre in enumerate(GENRES):
            splits = assign_splits(n, config.seed, gi)
            for record in records[gi * n:(gi + 1) * n]:
                record["split"] = splits[int(record["id"].rsplit("-", 1)[1])]
        import numpy as np
        import scipy
        manifest = {
            "format": FORMAT, "version": VERSION, "size": config.size, "seed": config.seed,
            "seconds": seconds, "clips_per_genre": n, "sample_rate": SAMPLE_RATE, "genres": list(GENRES),
            "targets": list(TARGETS), "target_formulas": " ".join((target_formulas.__doc__ or "").split()),
            "target_tables": {"groove": GROOVE, "mode_valence": MODE_VALENCE},
            "made_with": {"numpy": np.__version__, "scipy": scipy.__version__},
            "clips": records,
        }
        with open(tmp / MANIFEST, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=1)
        try:
            os.rename(tmp, folder)
        except OSError:
            if not is_embedded_set(folder):
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process finished first: keep its set
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def read_manifest(folder: Path) -> dict:
    """The manifest of the set in ``folder``, checked: format, version, and every audio file."""
    path = Path(folder) / MANIFEST
    fix = f"delete the folder (rm -r '{folder}') and run again to regenerate it"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"embedded set manifest {path} cannot be read ({exc}); {fix}") from exc
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise DataError(f"{path} is not a version-{VERSION} embedded-set manifest (format "
                        f"{manifest.get('format')!r}, version {manifest.get('version')!r}); {fix}")
    for record in manifest.get("clips", []):
        if not (Path(folder) / record["file"]).is_file():
            raise DataError(f"embedded set {folder} is damaged: {record['file']} listed in {MANIFEST} is missing; {fix}")
    if not manifest.get("clips"):
        raise DataError(f"embedded set manifest {path} lists no clips; {fix}")
    return manifest


class EmbeddedDataset:
    """The synthesised set of ``config`` under ``root``, or the finished set ``root`` itself.

    Nothing is rendered until :meth:`clips` (or :meth:`ensure`) is first called.
    """

    name = "embedded"

    def __init__(self, config: EmbeddedConfig | None = None, root: Path | str | None = None, *, progress: bool = True):
        from ...paths import data_dir
        self.config = config or EmbeddedConfig()
        root = Path(root).expanduser() if root is not None else data_dir()
        self.given_set = is_embedded_set(root)
        self.folder = root if self.given_set else root / self.config.folder_name
        self.progress = progress
        self._manifest: dict | None = None

    def ensure(self) -> Path:
        """The set's folder, rendered first if it is not there yet."""
        if not is_embedded_set(self.folder):
            if self.given_set:
                raise DataError(f"embedded set {self.folder} disappeared while in use; run again to regenerate it")
            generate(self.config, self.folder, progress=self.progress)
        return self.folder

    def manifest(self) -> dict:
        if self._manifest is None:
            self._manifest = read_manifest(self.ensure())
        return self._manifest

    def clips(self, rate: str) -> list[Clip]:
        """Every clip (audio serves both rates): label = genre, targets = valence, energy,
        danceability, split fixed by the set."""
        if rate not in RATES:
            raise ConfigError(f"embedded data set: rate {rate!r} is not one of {', '.join(RATES)}")
        folder = self.ensure()
        return [Clip(id=r["id"], split=r["split"], label=r["genre"], audio=folder / r["file"],
                     targets={t: float(r[t]) for t in TARGETS}) for r in self.manifest()["clips"]]

    def describe(self) -> str:
        if is_embedded_set(self.folder):
            m = self.manifest()
            return (f"embedded synthesised set '{m['size']}' ({len(m['genres'])} genres x {m['clips_per_genre']} "
                    f"clips x {m['seconds']:g} s, seed {m['seed']}) at {self.folder}")
        c = self.config
        return (f"embedded synthesised set '{c.size}' (10 genres x {c.clips_per_genre} clips x "
                f"{c.clip_seconds:g} s, seed {c.seed}) at {self.folder} (rendered on first use)")


spec = ComponentSpec(
    kind="dataset", name="embedded", config=EmbeddedConfig,
    build=lambda config, root: EmbeddedDataset(config, root),
    summary="music the zoo synthesises itself (10 genres; valence, energy, danceability): the default data",
    detect=is_embedded_set,
)
