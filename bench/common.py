"""What every benchmark shares: the machine record, interleaved repetitions and result rows.

Every number the benchmarks report is a ratio of the zoo's measurement to a baseline's, both
taken in the same process, interleaved (zoo, baseline, then baseline, zoo, ...), so that load
from other programs, CPU frequency and caches weigh on both alike. The median over the
repetitions is reported, with the lowest and highest ratio beside it.
"""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Row:
    """One line of a results table.

    ``zoo`` and ``base`` are medians of the two measurements (``unit``); ``ratios`` the per-repetition
    ``zoo / base``. ``higher_is_better`` says how to read the ratio against ``goal`` (None: no goal,
    only informative).
    """

    section: str
    case: str
    zoo: float
    base: float
    unit: str
    ratios: tuple[float, ...]
    baseline: str = ""
    goal: float | None = None
    higher_is_better: bool = True
    note: str = ""

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios) if self.ratios else float("nan")

    @property
    def meets_goal(self) -> bool | None:
        if self.goal is None or self.ratio != self.ratio:
            return None
        return self.ratio >= self.goal if self.higher_is_better else self.ratio <= self.goal


@dataclass
class Section:
    """The rows of one benchmark plus what it wants said about them (setup, definitions)."""

    name: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    load: tuple[float, float] = (float("nan"), float("nan"))
    """1-minute load average when the section started and when it ended."""
    seconds: float = 0.0


def loadavg() -> float:
    """The 1-minute load average (NaN where the system does not report one)."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return float("nan")


def interleaved(measure_zoo: Callable[[], float], measure_base: Callable[[], float],
                reps: int) -> tuple[list[float], list[float]]:
    """Run both measurements ``reps`` times, alternating which goes first; their values in order."""
    zoo, base = [], []
    for rep in range(reps):
        if rep % 2 == 0:
            zoo.append(measure_zoo())
            base.append(measure_base())
        else:
            base.append(measure_base())
            zoo.append(measure_zoo())
    return zoo, base


def row(section: str, case: str, zoo: list[float], base: list[float], unit: str, **kw: Any) -> Row:
    """A :class:`Row` from the paired measurements of :func:`interleaved`."""
    ratios = tuple(z / b if b else float("nan") for z, b in zip(zoo, base))
    return Row(section, case, statistics.median(zoo), statistics.median(base), unit, ratios, **kw)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    except (ValueError, OSError, AttributeError):
        return float("nan")


def _version(dist: str) -> str:
    import importlib.metadata as md
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "not installed"


def _commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if out.returncode:
        return "unknown"
    return out.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")


def machine(device: Any = None) -> dict[str, Any]:
    """What the numbers were measured on: CPU, cores, RAM, versions, torch threads and device."""
    import torch
    info = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": round(_ram_gib(), 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": _version("numpy"),
        "librosa": _version("librosa"),
        "torch_threads": torch.get_num_threads(),
        "device": device.describe() if device is not None else "cpu",
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none visible",
        "load_average": ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a",
        "commit": _commit(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    return info
