"""The embedded data set: music the zoo synthesises itself, the default when no ``--data`` is given.

On first use the set is rendered from its seed into ``<root>/embedded-v1-<size>-seed<seed>/``
(``root``: the workspace's data folder, ``zoo.workspace.Workspace.data_dir``, when the zoo opens it)::

    manifest.json      format marker, settings, target formulas, one record per clip
    audio/<id>.wav     22050 Hz mono 16-bit PCM, e.g. audio/hip-hop-0007.wav

Rendering goes into a hidden temporary folder that is renamed into place only once every file
and the manifest are written, so an interrupted run never leaves a set that looks finished; a
later run finds the finished set and reuses it. The same seed gives byte-identical files.
Splits are fixed per genre (70/15/15, seeded), so every run on the set sees the same test clips.

A run with ``--limit N`` (or ``zoo show embedded:ID``) needs only some clips: :meth:`EmbeddedDataset.restrict`
chooses them from the set's plan (ids, genres, splits: known without rendering) exactly as
``zoo.data.select`` would choose from the rendered set, and only those are rendered, one file at a
time (each written atomically), into ``<root>/embedded-v1-<size>-seed<seed>.clips/``. A finished
full set is always preferred.
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

from ...bounds import bounded, check_bounds
from ...errors import ConfigError, DataError
from ...fsio import reap_temporaries, temp_path
from ...protocols import Clip, ComponentSpec

FORMAT = "music-zoo-embedded"
VERSION = 1
MANIFEST = "manifest.json"
TARGETS = ("valence", "energy", "danceability")
SAMPLE_RATE = 22050
SIZES = {"tiny": (8, 3.0), "small": (24, 5.0), "default": (60, 6.0), "large": (150, 10.0)}
"""Size name -> (clips per genre, seconds per clip)."""
SPLIT_FRACTIONS = {"val": 0.15, "test": 0.15}
LAB_SHARES = {"Rock": 1.0, "Electronic": 0.7, "Pop": 0.45, "Hip-Hop": 0.3, "Folk": 0.2, "Jazz": 0.15,
              "Classical": 0.1, "Metal": 0.1, "Blues": 0.08, "Trip-Hop": 0.07}
"""``balance=lab``: the share of its clips each genre keeps, so that the largest class is about
30 % of the set, as in the lab's data (at least 3 clips per genre: one per split)."""
RATES = ("frames", "beats")


@dataclass(frozen=True)
class EmbeddedConfig:
    """``size``: tiny (8 clips per genre of 3 s, for tests), small (24 x 5 s), default (60 x 6 s)
    or large (150 x 10 s). ``seconds``: clip length overriding the size's (2-60 s). ``seed``: which
    set (each seed is its own set, cached separately). ``workers``: processes that render (0: one
    for a few minutes of audio, else one per core); it never changes the result. ``balance``: even
    (every genre the same number of clips) or lab (unbalanced like the lab's data: the largest
    genre about 30 % of the clips, the smallest a few; the same rendered clips, fewer used).
    ``sound``: genre (each genre sounds like itself: its instruments, kit, tone, distortion, room)
    or shared (each clip takes its sound from a genre drawn at random, so a genre is told only by
    how it is played over time: tempo, swing, timing, drum pattern, harmony, comping, bass line;
    a set of its own, in its own folder, where averages over time say much less)."""

    size: Literal["tiny", "small", "default", "large"] = "default"
    seconds: float | None = bounded(None, ge=2.0, le=60.0, why="seconds per clip; leave it unset for the size's own")
    seed: int = bounded(0, ge=0)
    workers: int = bounded(0, ge=0, why="0: one process for a few minutes of audio, else one per core")
    balance: Literal["even", "lab"] = "even"
    sound: Literal["genre", "shared"] = "genre"

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise ConfigError(f"dataset 'embedded' setting 'size': {self.size!r} is not one of {', '.join(SIZES)}")
        check_bounds(self, "dataset 'embedded'")
        if self.sound not in ("genre", "shared"):
            raise ConfigError(f"dataset 'embedded' setting 'sound': {self.sound!r} is not one of genre, shared "
                              f"(e.g. --set dataset.sound=shared)")

    @property
    def clips_per_genre(self) -> int:
        return SIZES[self.size][0]

    @property
    def clip_seconds(self) -> float:
        return float(self.seconds) if self.seconds is not None else SIZES[self.size][1]

    @property
    def folder_name(self) -> str:
        """``embedded-v1-<size>-seed<seed>``, with ``-<seconds>s`` when the length is not the size's
        and ``-shared-sound`` for ``sound=shared``."""
        length = "" if self.clip_seconds == SIZES[self.size][1] else f"-{self.clip_seconds:g}s"
        sound = "-shared-sound" if self.sound == "shared" else ""
        return f"embedded-v{VERSION}-{self.size}{length}{sound}-seed{self.seed}"


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


def plan(config: EmbeddedConfig) -> list[tuple[str, str, str]]:
    """``(clip id, genre, split)`` of every clip of the set, in manifest order, without rendering."""
    from ..synth import GENRES
    n = config.clips_per_genre
    return [(clip_id(g, i), g, split) for gi, g in enumerate(GENRES)
            for i, split in enumerate(assign_splits(n, config.seed, gi))]


def kept(config: EmbeddedConfig) -> set[str] | None:
    """The ids ``balance=lab`` keeps of the set (per genre its first clips of each split, one val
    and one test at least); None for an even set, which keeps every clip."""
    if config.balance == "even":
        return None
    by_genre: dict[str, dict[str, list[str]]] = {}
    for cid, genre, split in plan(config):
        by_genre.setdefault(genre, {"train": [], "val": [], "test": []})[split].append(cid)
    out: set[str] = set()
    n = config.clips_per_genre
    for genre, splits in by_genre.items():
        keep = min(n, max(3, int(round(LAB_SHARES[genre] * n))))
        held = {k: max(1, int(round(f * keep))) for k, f in SPLIT_FRACTIONS.items()}
        held["train"] = keep - held["val"] - held["test"]
        for split, ids in splits.items():
            out.update(ids[: held[split]])
    return out


def choose(config: EmbeddedConfig, limit: int, seed: int) -> list[str]:
    """The ids ``--limit limit`` with ``seed`` keeps of the set: the very clips ``zoo.data.select``
    keeps of the rendered set (stratified by genre within each split; every clip has all targets)."""
    from ..select import _limit
    from ..splits import stratum_keys
    keep = kept(config)
    rows = [r for r in plan(config) if keep is None or r[0] in keep]
    if limit >= len(rows):
        return [cid for cid, _, _ in rows]
    ids = [cid for cid, _, _ in rows]
    keys = stratum_keys([g for _, g, _ in rows], [{} for _ in rows])
    return [ids[i] for i in _limit(ids, keys, [s for _, _, s in rows], limit, seed)]


def _render_job(job: tuple[str, int, int, float, str, str]) -> dict:
    """Worker: render one clip, write its wav, return its manifest record (no audio travels back).
    ``job``: genre, index, set seed, seconds, folder, sound."""
    import numpy as np
    import soundfile as sf

    from ..synth import render_clip
    genre, index, seed, seconds, folder, sound = job
    cid = clip_id(genre, index)
    path = os.path.join(folder, "audio", f"{cid}.wav")
    try:
        audio, record = render_clip(genre, seed, index, seconds, SAMPLE_RATE, sound=sound)
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
        from ...processes import die_with_parent
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                 initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
            for record in pool.map(_render_job, jobs, chunksize=4):
                records.append(record)
                bar.update()
        return records
    finally:
        bar.close()


def _reap_stale(parent: Path, name: str) -> None:
    """Remove temporary folders of ``name`` left by generators on this host that have died."""
    from ...processes import pid_exists
    host = socket.gethostname()
    for tmp in parent.glob(f".{name}.tmp-*"):
        parts = tmp.name[len(name) + 6:].split("-")  # "<host>-<pid>-<token>", host may hold "-"
        try:
            pid, tmp_host = int(parts[-2]), "-".join(parts[:-2])
        except (ValueError, IndexError):
            continue
        if tmp_host == host and not pid_exists(pid):
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
        jobs = [(g, i, config.seed, seconds, str(tmp), config.sound) for g in GENRES for i in range(n)]
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
            "format": FORMAT, "version": VERSION, "size": config.size, "seed": config.seed, "sound": config.sound,
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
        if root is None:
            raise ConfigError("the embedded set needs a folder: pass root (the workspace's data_dir, "
                              "zoo.workspace.Workspace.from_env().data_dir)")
        self.config = config or EmbeddedConfig()
        root = Path(root).expanduser()
        self.given_set = is_embedded_set(root)
        self.folder = root if self.given_set else root / self.config.folder_name
        self.progress = progress
        self._manifest: dict | None = None
        self.subset: tuple[str, ...] | None = None
        self._why_subset = ""

    @property
    def clips_folder(self) -> Path:
        """Where single clips of a subset are rendered when the full set is not there."""
        return self.folder.with_name(self.folder.name + ".clips")

    def restrict(self, limit: int | None, seed: int = 0) -> None:
        """Render only the clips ``--limit limit`` (seeded by ``seed``) keeps; None: the whole set.
        A finished full set is used as it is (the selection then picks the same clips from it)."""
        if limit is None or self.given_set or limit < 1:
            self.subset = None
            return
        self.subset = tuple(choose(self.config, limit, seed))
        self._why_subset = f"--limit {limit}, stratified, seed {seed}"

    def only(self, ids) -> None:
        """Render (and list) only the clips ``ids``; an id the set does not have is a DataError."""
        known = {cid for cid, _, _ in plan(self.config)}
        wrong = [i for i in ids if i not in known]
        if wrong:
            some = ", ".join(sorted(known)[:3])
            raise DataError(f"no clip {wrong[0]!r} in the embedded set '{self.config.size}' (seed {self.config.seed}); "
                            f"ids are GENRE-NNNN with NNNN below {self.config.clips_per_genre:04d}, e.g. {some}")
        if not self.given_set:
            self.subset = tuple(ids)
            self._why_subset = "asked by id"

    def _subset_clips(self) -> list[Clip]:
        """The clips of :attr:`subset`, each rendered on first use (atomically, one file at a time)."""
        folder = self.clips_folder
        wanted = set(self.subset or ())
        rows = [(cid, genre, split) for cid, genre, split in plan(self.config) if cid in wanted]
        missing = [(cid, genre) for cid, genre, _ in rows if not (folder / "records" / f"{cid}.json").is_file()]
        if missing:
            try:
                (folder / "audio").mkdir(parents=True, exist_ok=True)
                (folder / "records").mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DataError(f"cannot write embedded clips under {folder}: {exc}; set ZOO_HOME to a writable "
                                f"folder or pass one with --data") from exc
            reap_temporaries(folder)  # what renderers killed mid-clip left
            jobs = [(genre, int(cid.rsplit("-", 1)[1]), self.config.seed, self.config.clip_seconds,
                     str(temp_path(folder / cid)), self.config.sound) for cid, genre in missing]
            for job in jobs:
                (Path(job[4]) / "audio").mkdir(parents=True, exist_ok=True)
            try:
                records = _run_jobs(jobs, 1, self.progress)
                for job, record in zip(jobs, records):
                    os.replace(Path(job[4]) / record["file"], folder / record["file"])
                    tmp_record = Path(job[4]) / "record.json"
                    tmp_record.write_text(json.dumps(record), encoding="utf-8")
                    os.replace(tmp_record, folder / "records" / f"{record['id']}.json")
            finally:
                for job in jobs:
                    shutil.rmtree(job[4], ignore_errors=True)
        out = []
        for cid, genre, split in rows:
            try:
                record = json.loads((folder / "records" / f"{cid}.json").read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise DataError(f"embedded clip record {folder / 'records' / (cid + '.json')} cannot be read ({exc}); "
                                f"delete it and run again to render the clip again") from exc
            out.append(Clip(id=cid, split=split, label=genre, audio=folder / record["file"],
                            targets={t: float(record[t]) for t in TARGETS}))
        return out

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
        if self.subset is not None and not is_embedded_set(self.folder):
            return self._subset_clips()
        folder = self.ensure()
        keep = None if self.given_set else kept(self.config)
        return [Clip(id=r["id"], split=r["split"], label=r["genre"], audio=folder / r["file"],
                     targets={t: float(r[t]) for t in TARGETS}) for r in self.manifest()["clips"]
                if keep is None or r["id"] in keep]

    def describe(self) -> str:
        text = self._describe()
        if self.config.balance == "lab" and not self.given_set:
            text += f"; unbalanced like the lab's (balance=lab: {len(kept(self.config))} clips kept)"
        shared = (self.manifest().get("sound") if is_embedded_set(self.folder) else self.config.sound) == "shared"
        if shared:
            text += "; sound=shared: each clip sounds like a random genre, only how it is played tells its own"
        return text

    def _describe(self) -> str:
        if is_embedded_set(self.folder):
            m = self.manifest()
            return (f"embedded synthesised set '{m['size']}' ({len(m['genres'])} genres x {m['clips_per_genre']} "
                    f"clips x {m['seconds']:g} s, seed {m['seed']}) at {self.folder}")
        c = self.config
        if self.subset is not None and self._why_subset == "asked by id":
            return (f"embedded synthesised set '{c.size}' ({len(self.subset)} of {10 * c.clips_per_genre} clips x "
                    f"{c.clip_seconds:g} s, seed {c.seed}; {self._why_subset}) at {self.clips_folder}")
        # The same words whether the set is rendered, not yet, or only the clips a --limit keeps: the
        # description (and the fingerprint) of the clips used must not depend on what is on disk.
        return (f"embedded synthesised set '{c.size}' (10 genres x {c.clips_per_genre} clips x "
                f"{c.clip_seconds:g} s, seed {c.seed}) at {self.folder}")


spec = ComponentSpec(
    kind="dataset", name="embedded", config=EmbeddedConfig,
    build=lambda config, root: EmbeddedDataset(config, root),
    summary="music the zoo synthesises itself (10 genres; valence, energy, danceability): the default data",
    detect=is_embedded_set,
)
