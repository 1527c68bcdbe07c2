"""Data loading: the zoo's packed format against one .npy file per clip.

The same float32 ``[F, T_i]`` arrays are written once as a pack (:func:`zoo.data.pack.write_pack`)
and once as one ``np.save`` file per clip; then :func:`zoo.data.pack.read_pack` (one read into one
buffer) is timed against ``[np.load(f) for f in files]``. Both read from the OS page cache
(the files were just written and read once): a cold disk is not measured, as dropping the
page cache would disturb every other program on a shared machine.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .common import Section, interleaved, loadavg, row

SECTION = "loading"


@dataclass(frozen=True)
class LoadCase:
    """``clips`` arrays of ``bins`` x about ``frames`` (90-100 % of it)."""

    name: str
    clips: int
    frames: int
    bins: int = 140


def arrays(case: LoadCase, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    lo = max(1, int(0.9 * case.frames))
    return [rng.standard_normal((case.bins, int(rng.integers(lo, case.frames + 1)))).astype(np.float32)
            for _ in range(case.clips)]


def write_both(case: LoadCase, folder: Path) -> tuple[Path, list[Path]]:
    """The arrays of ``case`` as one pack and as one .npy per clip, under ``folder``."""
    from zoo.data.pack import write_pack
    data = arrays(case)
    pack = folder / f"{case.name}.pack"
    write_pack(pack, data, {"case": case.name})
    npy_dir = folder / case.name
    npy_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for i, a in enumerate(data):
        files.append(npy_dir / f"{i:05d}.npy")
        np.save(files[-1], a)
    return pack, files


def read_npy(files: list[Path]) -> list[np.ndarray]:
    return [np.load(f) for f in files]


def read_packed(pack: Path) -> list[np.ndarray]:
    from zoo.data.pack import read_pack
    return read_pack(pack)[0]


def run(cases: list[LoadCase], workdir: Path, reps: int, echo=print) -> Section:
    section = Section(SECTION)
    start_load, t_start = loadavg(), time.perf_counter()
    for case in cases:
        pack, files = write_both(case, workdir)
        read_npy(files), read_packed(pack)  # page cache, and the first-call costs of both

        def rate(fn) -> float:
            t0 = time.perf_counter()
            fn()
            return case.clips / (time.perf_counter() - t0)

        z, b = interleaved(lambda: rate(lambda: read_packed(pack)), lambda: rate(lambda: read_npy(files)), reps)
        mb = sum(f.stat().st_size for f in files) / 2**20
        r = row(SECTION, f"{case.name}: {case.clips} clips of {case.bins}x~{case.frames} ({mb:.0f} MiB)", z, b,
                 "clips/s", baseline="one .npy per clip", goal=1.0)
        section.rows.append(r)
        echo(f"  {case.name}: pack {r.zoo:.0f} clips/s, npy {r.base:.0f} clips/s, ratio {r.ratio:.2f}, "
             f"load {loadavg():.2f}")
    section.load = (start_load, loadavg())
    section.seconds = time.perf_counter() - t_start
    section.notes.append(
        f"Warm OS page cache for both; {reps} interleaved repetitions. The pack's advantage is per file: "
        "one open and one read instead of one per clip, so it grows as clips get smaller (beat-synchronous)."
    )
    return section


QUICK = [LoadCase("short clips", clips=40, frames=60)]
FULL = [LoadCase("full clips (30 s)", clips=300, frames=1292),
        LoadCase("beat-synchronous clips", clips=3000, frames=90)]
