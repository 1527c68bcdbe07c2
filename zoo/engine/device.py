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

    @property
    def type(self) -> str:
        return self.device.type

    def describe(self) -> str:
        """E.g. ``cuda:0 (NVIDIA H100, bf16 autocast)`` or ``cpu (fp32, 2 threads)``."""
        import torch
        if self.device.type == "cuda":
            name = torch.cuda.get_device_name(self.device)
            mode = {None: "fp32", torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast + loss scaling"}
            return f"{self.device} ({name}, {mode[self.amp_dtype]})"
        n = torch.get_num_threads()
        return f"cpu (fp32, {n} thread{'s' if n > 1 else ''} of {os.cpu_count()} cores)"

    def autocast(self):
        """The autocast context for forward passes (a no-op in fp32)."""
        import torch
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)


def cpu_threads(requested: int = 0) -> int:
    """How many threads torch should use on the CPU.

    ``requested`` > 0 is taken as is. Otherwise: the cores that the 1-minute load average says are
    idle, at least one. Torch's threads meet at a barrier after every small operation (an LSTM has
    several per time step); when other programs keep a core busy, each barrier waits for a
    descheduled thread, and a 2-thread LSTM step measured 400x slower than a 1-thread one.
    """
    if requested > 0:
        return requested
    cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except (OSError, AttributeError):
        busy = 0.0
    return max(1, min(cores, int(cores - busy + 0.5)))


def pick_device(name: str = "auto", *, amp: bool = True, threads: int = 0) -> DeviceChoice:
    """``name``: "auto" (cuda when available), "cpu" or "cuda"; ``amp`` allows mixed precision on cuda.

    On the CPU, also sets torch's thread count (:func:`cpu_threads` of ``threads``).
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
        return DeviceChoice(torch.device("cpu"))
    device = torch.device("cuda", torch.cuda.current_device())
    if not amp:
        return DeviceChoice(device)
    if torch.cuda.is_bf16_supported():
        return DeviceChoice(device, torch.bfloat16, scaler=False)
    return DeviceChoice(device, torch.float16, scaler=True)
