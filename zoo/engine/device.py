"""Which device and numeric precision a run uses. The engine chooses; backbones never do."""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError


@dataclass(frozen=True)
class DeviceChoice:
    """The torch device of a run and its mixed-precision mode.

    ``amp_dtype`` is None (fp32), ``torch.bfloat16`` or ``torch.float16``; ``scaler`` says
    whether the loss must be scaled (fp16 only: its small range underflows gradients).
    """

    device: Any
    amp_dtype: Any = None
    scaler: bool = False
    threads_set: bool = False
    """On the CPU: the thread count was set by the user (``train.threads``), not chosen here."""

    @property
    def type(self) -> str:
        return self.device.type

    def describe(self) -> str:
        """E.g. ``cuda:0 (NVIDIA H100, bf16 autocast)``, ``cpu (fp32, 2 threads: one per usable core)``
        or ``cpu (fp32, 1 thread set by train.threads, 2 usable cores)``."""
        import torch
        if self.device.type == "cuda":
            name = torch.cuda.get_device_name(self.device)
            mode = {None: "fp32", torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast + loss scaling"}
            return f"{self.device} ({name}, {mode[self.amp_dtype]})"
        n, cores = torch.get_num_threads(), usable_cores()
        threads = f"{n} thread{'s' if n > 1 else ''}"
        if self.threads_set:
            return f"cpu (fp32, {threads} set by train.threads, {cores} usable core{'s' if cores > 1 else ''})"
        return f"cpu (fp32, {threads}: one per usable core)"

    def autocast(self):
        """The autocast context for forward passes (a no-op in fp32)."""
        import torch
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)


def usable_cores() -> int:
    """How many cores this process may run on: its CPU affinity (``os.sched_getaffinity``, which a
    container's cpuset, ``taskset`` or a cluster's scheduler narrow), else every core the OS reports."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity call on this OS (macOS, Windows)
        return max(1, os.cpu_count() or 1)


def cpu_threads(requested: int = 0) -> int:
    """How many threads torch should use on the CPU: ``requested`` when > 0, else :func:`usable_cores`.

    Chosen once per run. The 1-minute load average is not read: it says how busy the machine was
    when the run started, not over the hours it trains, and a run that took 1 thread of 2 because
    another job was finishing kept the other core idle to its end. On a machine shared with other
    CPU-heavy jobs, torch's threads can wait on each other (they meet at a barrier after every
    small operation): set ``train.threads`` then (docs/benchmarks.md measures both choices).
    """
    if requested > 0:
        return requested
    return usable_cores()


def pick_device(name: str = "auto", *, amp: bool = True, threads: int = 0) -> DeviceChoice:
    """``name``: "auto" (cuda when available), "cpu" or "cuda"; ``amp`` allows mixed precision on cuda.

    On the CPU, also sets torch's thread count (:func:`cpu_threads` of ``threads``; 0: one per usable core).
    """
    import torch
    if name not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device {name!r} is not one of 'auto', 'cpu', 'cuda'; pass --device cpu or --device cuda")
    has_cuda = torch.cuda.is_available()
    if name == "cuda" and not has_cuda:
        raise ConfigError(
            "device 'cuda' was asked for but torch sees no CUDA GPU "
            f"(torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'}); "
            "use --device cpu, or install a CUDA build of torch on a machine with a GPU"
        )
    if name == "cpu" or not has_cuda:
        torch.set_num_threads(cpu_threads(threads))
        return DeviceChoice(torch.device("cpu"), threads_set=threads > 0)
    device = torch.device("cuda", torch.cuda.current_device())
    if not amp:
        return DeviceChoice(device)
    if torch.cuda.is_bf16_supported():
        return DeviceChoice(device, torch.bfloat16, scaler=False)
    return DeviceChoice(device, torch.float16, scaler=True)
