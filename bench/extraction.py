"""Feature extraction: the zoo's pipeline against a plain librosa loop over the same audio files.

Audio: synthetic music (harmonic chords, a bass line, noise-burst drums) written as 16-bit
stereo WAV at 44.1 kHz, like a ripped CD, so decoding, the mix to mono and the resampling to
22050 Hz are part of the work as they are on real files. Features: ``mel`` and ``chroma`` at the
lab's settings (the 140 rows of the lab's fused arrays).

Zoo: :func:`zoo.data.extract.extract_audio` (hash each file, look up the feature cache, decode
once, compute both features, write the cache). Plain: ``librosa.load`` then
``melspectrogram`` + ``power_to_db`` and ``chroma_cqt`` per file, in one process, nothing saved.
Torch: the features plugin's torch backend (``zoo_features.torchfeatures``), through the zoo's
own extractor ``extract_audio`` with ``backend: torch`` set on both features (in this process, and
in worker processes over the files; on a GPU the features' batch member gets a batch per call).

Warm, precisely: before any timing this process has imported librosa, compiled (or loaded
from numba's on-disk cache) every jitted function both paths use and built librosa's mel and
constant-Q filter banks, by running both paths once on an extra file; every audio file has been
read once, so the OS page cache holds it. A "cold feature cache" is an empty cache folder; worker
processes cannot be kept warm between calls (``extract_audio`` starts its pool per call), so
the worker rows include starting the pool and each worker's imports.
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .common import Section, interleaved, loadavg, row

SECTION = "extraction"
SR_FILE = 44100


@dataclass(frozen=True)
class ExtractCase:
    clips: int = 8
    seconds: float = 30.0
    reps: int = 3
    workers: int = 0
    """Worker processes for the pool rows; 0: the zoo's own default for ``clips`` files
    (:func:`default_workers`)."""
    pool_clips: int = 48
    """Files for the row that asks when a pool pays for its start: pool against in-process."""
    torch_rows: bool = True
    """Also measure the torch backend (``zoo_features.torchfeatures``) against the plain loop."""


def music(seconds: float, rng: np.random.Generator, sr: int = SR_FILE) -> np.ndarray:
    """A stereo ``[N, 2]`` float32 clip: chords, bass and drums at a random tempo."""
    n = int(seconds * sr)
    t = np.arange(n) / sr
    beat = 60.0 / rng.uniform(80, 160)
    out = np.zeros(n)
    root = rng.integers(45, 57)
    for bar_start in np.arange(0.0, seconds, 4 * beat):
        chord = root + rng.choice([0, 5, 7, -3]) + np.array([0, 4, 7, 12])
        seg = (t >= bar_start) & (t < bar_start + 4 * beat)
        for m in chord:
            f = 440.0 * 2 ** ((m - 69) / 12)
            for h in range(1, 5):
                out[seg] += 0.08 / h * np.sin(2 * np.pi * f * h * t[seg])
        bass = 440.0 * 2 ** ((chord[0] - 12 - 69) / 12)
        out[seg] += 0.2 * np.sin(2 * np.pi * bass * t[seg])
    hit = int(0.08 * sr)
    decay = np.exp(-np.arange(hit) / (0.015 * sr))
    for onset in np.arange(0.0, seconds, beat):
        i = int(onset * sr)
        k = min(hit, n - i)
        out[i:i + k] += 0.5 * rng.standard_normal(k) * decay[:k]
    out /= np.max(np.abs(out)) + 1e-9
    pan = rng.uniform(0.8, 1.0)
    return np.stack([out * pan, out * (2 - pan) / 2], axis=1).astype(np.float32) * 0.8


def write_clips(folder: Path, n: int, seconds: float, seed: int = 0) -> list[Path]:
    """``n`` WAV files in two label folders under ``folder`` (the ``folder`` layout reads them)."""
    import soundfile as sf
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / ("a" if i % 2 == 0 else "b") / f"clip{i:03d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, music(seconds, rng), SR_FILE, subtype="PCM_16")
        paths.append(path)
    return paths


def features(registry: Any = None) -> dict[str, Any]:
    """The ``mel`` and ``chroma`` features at the lab's settings with ``backend: librosa``, the same
    calls as the plain loop, so the rows measure the pipeline (the torch backend, the default since
    issue 26, has rows of its own)."""
    from zoo.registry import Registry
    registry = registry or Registry()
    return {name: registry.create("feature", name, {"backend": "librosa"}) for name in ("mel", "chroma")}


def plain(paths: list[Path]) -> list[dict[str, np.ndarray]]:
    """The baseline: one process, librosa straight, the lab's settings."""
    import librosa
    out = []
    for path in paths:
        y, sr = librosa.load(path, sr=22050, mono=True)
        mel = librosa.power_to_db(
            librosa.feature.melspectrogram(y=y, sr=sr, n_fft=2048, hop_length=512, n_mels=128, power=2.0),
            ref=np.max, top_db=80.0)
        chroma = librosa.feature.chroma_cqt(y=y, sr=sr, hop_length=512, n_chroma=12, n_octaves=7,
                                            bins_per_octave=36)
        out.append({"mel": mel.astype(np.float32), "chroma": chroma.astype(np.float32)})
    return out


def torch_features(registry: Any = None) -> dict[str, Any]:
    """``mel`` and ``chroma`` at the lab's settings with ``backend: torch``."""
    from zoo.registry import Registry
    registry = registry or Registry()
    return {name: registry.create("feature", name, {"backend": "torch"}) for name in ("mel", "chroma")}


def zoo(paths: list[Path], feats: dict[str, Any], cache: Path, workers: int) -> list[dict[str, np.ndarray]]:
    from zoo.data.extract import extract_audio
    return extract_audio(paths, feats, cache_dir=cache, workers=workers, progress=False)


def _largest_difference(a: list[dict[str, np.ndarray]], b: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """Per feature, the largest absolute difference between the two paths' arrays."""
    out = {}
    for name in a[0]:
        out[name] = max(float(np.max(np.abs(x[name] - y[name]))) if x[name].shape == y[name].shape else float("inf")
                        for x, y in zip(a, b))
    return out


def _rate(n: int, fn) -> float:
    """Clips per second of one call of ``fn`` over ``n`` clips."""
    t0 = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t0)


def default_workers(files: int) -> int:
    """The pool size ``extract_audio`` picks by itself: one per 4 files, at most one per core."""
    return max(1, min(os.cpu_count() or 1, -(-files // 4)))


def torch_section_rows(section: Section, case: ExtractCase, paths: list[Path], registry: Any, workdir: Path,
                       out: dict[str, Any], echo=print) -> None:
    """The torch backend's rows: ``extract_audio`` with ``backend: torch`` (cold feature cache) in
    worker processes over every usable core and in this process, each against the plain librosa loop."""
    from zoo.engine.device import usable_cores
    n = len(paths)
    tfeats = torch_features(registry)
    cores = usable_cores()
    # Warm, as the plain loop's librosa: kernels compiled, and the filters of these clips' tunings built
    # (once per tuning, one of 101 values: on a real data set, after its first few dozen files).
    zoo(paths, tfeats, Path(tempfile.mkdtemp(dir=workdir)), workers=1)
    for w in sorted({cores, 1}, reverse=True):
        z, b = interleaved(
            lambda: _rate(n, lambda: out.__setitem__("torch", zoo(paths, tfeats, Path(tempfile.mkdtemp(dir=workdir)),
                                                                  workers=w))),
            lambda: _rate(n, lambda: out.__setitem__("plain", plain(paths))), case.reps)
        diff = _largest_difference(out["torch"], out["plain"])
        where = "in this process" if w == 1 else f"{w} worker processes over the files (pool start included)"
        section.rows.append(row(
            SECTION, f"torch backend through zoo.data.extract.extract_audio, {where}, cold feature cache: "
                     "--set mel.backend=torch --set chroma.backend=torch (decode, mel, chroma)", z, b, "clips/s",
            # The goal is the backend's own speed-up: in-process. Worker rows include the pool's start, where
            # each spawned worker imports torch and librosa and builds the constant-Q filters anew.
            baseline="plain librosa loop", goal=1.8 if w == 1 else None,
            note="largest difference to the baseline's arrays: " + ", ".join(f"{k} {v:.2g}" for k, v in diff.items())
                 + (" (mel in dB)" if "mel" in diff else "")))
        echo(f"  torch, workers={w}: {np.median(z):.2f} clips/s, plain {np.median(b):.2f} clips/s, "
             f"ratio {section.rows[-1].ratio:.3f}, load {loadavg():.2f}")


def run(case: ExtractCase, workdir: Path, echo=print) -> Section:
    """Measure the zoo's extraction against the plain loop, and the on-disk caches' speed-ups."""
    from zoo.data.layout import open_dataset
    from zoo.data.prepare import prepare
    from zoo.registry import Registry
    section = Section(SECTION)
    start_load, t_start = loadavg(), time.perf_counter()
    audio = workdir / "audio"
    paths = write_clips(audio, case.clips, case.seconds)
    n = len(paths)
    registry = Registry()
    feats = features(registry)
    for p in paths:
        p.read_bytes()  # into the page cache
    warm = write_clips(workdir / "warm", 1, min(case.seconds, 5.0), seed=99)
    for _ in range(2):
        plain(warm)
        zoo(warm, feats, Path(tempfile.mkdtemp(dir=workdir, prefix="cache-")), workers=1)

    def fresh() -> Path:
        return Path(tempfile.mkdtemp(dir=workdir, prefix="cache-"))

    out: dict[str, Any] = {}

    def zoo_first() -> float:
        out["cache"] = fresh()
        return _rate(n, lambda: out.__setitem__("zoo", zoo(paths, feats, out["cache"], workers=1)))

    def plain_once() -> float:
        return _rate(n, lambda: out.__setitem__("plain", plain(paths)))

    first, base = interleaved(zoo_first, plain_once, case.reps)
    diff = _largest_difference(out["zoo"], out["plain"])
    section.rows.append(row(SECTION, f"{n} clips x {case.seconds:g} s, mel+chroma, in-process (workers=1), "
                                     f"cold feature cache", first, base, "clips/s", baseline="plain librosa loop",
                            goal=0.9, note="largest difference to the baseline's arrays: " +
                            ", ".join(f"{k} {v:.2g}" for k, v in diff.items())))
    echo(f"  in-process: zoo {np.median(first):.2f} clips/s, plain {np.median(base):.2f} clips/s, "
         f"ratio {section.rows[-1].ratio:.3f}, load {loadavg():.2f}")

    if case.torch_rows:
        torch_section_rows(section, case, paths, registry, workdir, out, echo)

    workers = case.workers or default_workers(n)
    z, b = interleaved(lambda: _rate(n, lambda: zoo(paths, feats, fresh(), workers=workers)),
                       lambda: _rate(n, lambda: plain(paths)), case.reps)
    section.rows.append(row(SECTION, f"same, {workers} worker process(es) (pool start included)", z, b,
                            "clips/s", baseline="plain librosa loop"))
    echo(f"  {workers} workers: zoo {np.median(z):.2f} clips/s, plain {np.median(b):.2f} clips/s, "
         f"ratio {section.rows[-1].ratio:.3f}, load {loadavg():.2f}")

    # Starting a pool costs seconds (each worker imports librosa and builds its filter banks):
    # with more files, does it pay?
    more = paths + write_clips(workdir / "more", max(0, case.pool_clips - n), case.seconds, seed=1)
    for p in more:
        p.read_bytes()
    m = len(more)
    z, b = interleaved(lambda: _rate(m, lambda: zoo(more, feats, fresh(), workers=workers)),
                       lambda: _rate(m, lambda: zoo(more, feats, fresh(), workers=1)), case.reps)
    section.rows.append(row(SECTION, f"{m} clips: {workers} worker process(es) against in-process", z, b,
                            "clips/s", baseline="zoo in-process (workers=1)",
                            note=f"the zoo's default for {m} files: {default_workers(m)} worker(s)"))
    echo(f"  {m} clips, {workers} workers: {np.median(z):.2f} clips/s vs in-process {np.median(b):.2f} clips/s, "
         f"ratio {section.rows[-1].ratio:.3f}, load {loadavg():.2f}")

    # A second pass over the same files: every feature comes from the cache. Its baseline is the
    # first pass measured above (rep for rep), as a new cold pass would cost minutes more.
    hits = [_rate(n, lambda: zoo(paths, feats, out["cache"], workers=1)) for _ in range(case.reps)]
    section.rows.append(row(SECTION, "second pass: features from the on-disk cache", hits, first, "clips/s",
                            baseline="first pass (cold cache, in-process)"))
    echo(f"  cache hit: {np.median(hits):.1f} clips/s vs first pass {np.median(first):.2f} clips/s, "
         f"speed-up {section.rows[-1].ratio:.0f}x")

    # prepare() packs the stacked arrays of the whole set into one file: its second call reads that
    # file alone (after checking the files' sizes and times), where a second extract_audio hashes
    # every audio file and opens one cache entry per clip and feature.
    pack_cache = fresh()
    prepare(open_dataset(audio, layout="folder", registry=registry), feats, rate="frames", cache_dir=pack_cache,
            progress=False, workers=1)
    packed = [_rate(n, lambda: prepare(open_dataset(audio, layout="folder", registry=registry), feats,
                                       rate="frames", cache_dir=pack_cache, progress=False, workers=1))
              for _ in range(case.reps)]
    section.rows.append(row(SECTION, "prepare() again: the stacked set from one pack file", packed, first,
                            "clips/s", baseline="first pass (cold cache, in-process)",
                            note=f"{np.median(packed) / np.median(hits):.2f}x the per-clip cache's rate"))
    echo(f"  pack hit: {np.median(packed):.1f} clips/s, speed-up {section.rows[-1].ratio:.0f}x")
    section.load = (start_load, loadavg())
    section.seconds = time.perf_counter() - t_start
    section.notes.append(
        f"{n} synthetic clips of {case.seconds:g} s (16-bit stereo WAV, 44.1 kHz, resampled to 22050 Hz); "
        f"features mel (128 x T) and chroma (12 x T) at the lab's settings; {case.reps} interleaved repetitions. "
        "Warm: librosa imported, jitted code compiled and filter banks built by running both paths on an "
        "extra file before timing; the audio files in the OS page cache. The feature cache starts empty "
        "for every first-pass measurement; worker processes start with each call (pool start included)."
    )
    if case.torch_rows:
        section.notes.append(
            "Torch rows: the features plugin's torch backend on the CPU through the zoo's extractor (extract_audio, "
            "cold feature cache), which decodes each file once and computes its mel and chroma one clip at a time on "
            "one torch thread per process (on a CPU the features' batch_size is 1); warm: run once over the same files "
            "first (kernels compiled, the filters of their tunings built)."
        )
    return section


QUICK = ExtractCase(clips=2, seconds=3.0, reps=2, workers=2, pool_clips=3)
FULL = ExtractCase()
