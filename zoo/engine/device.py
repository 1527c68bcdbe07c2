"""Which device and numeric precision a run uses. The engine chooses; backbones never do."""
from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import ConfigError


PRECISIONS = ("auto", "fp32", "bf16", "fp16")
"""``train.precision``: auto, or the numeric format of the forward passes (autocast)."""


@dataclass(frozen=True)
class DeviceChoice:
    """The torch device of a run, its numeric precision and memory format.

    ``amp_dtype`` is None (fp32), ``torch.bfloat16`` or ``torch.float16``; ``scaler`` says
    whether the loss must be scaled (fp16 only: its small range underflows gradients).
    ``channels_last``: the model's 4-D weights are placed channels-last (NHWC). ``why``: how the
    precision was chosen, for the run header (e.g. "auto: the CPU has AVX512-BF16").
    """

    device: Any
    amp_dtype: Any = None
    scaler: bool = False
    threads_set: bool = False
    """On the CPU: the thread count was set by the user (``train.threads``), not chosen here."""
    channels_last: bool = False
    why: str = ""

    @property
    def type(self) -> str:
        return self.device.type

    @property
    def precision(self) -> str:
        """``fp32``, ``bf16`` or ``fp16``: what the run records as its precision."""
        import torch
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]

    def describe(self) -> str:
        """E.g. ``cuda:0 (NVIDIA H100, bf16 autocast)``, ``cpu (bf16 autocast, channels_last, 2 threads:
        one per usable core; auto: the CPU has AVX512-BF16)`` or ``cpu (fp32, 1 thread set by
        train.threads, 2 usable cores)``."""
        import torch
        mode = {"fp32": "fp32", "bf16": "bf16 autocast", "fp16": "fp16 autocast + loss scaling"}
        how = mode[self.precision] + (", channels_last" if self.channels_last else "")
        why = f"; {self.why}" if self.why else ""
        if self.device.type == "cuda":
            name = torch.cuda.get_device_name(self.device)
            return f"{self.device} ({name}, {how}{why})"
        n, cores = torch.get_num_threads(), usable_cores()
        threads = f"{n} thread{'s' if n > 1 else ''}"
        if self.threads_set:
            return f"cpu ({how}, {threads} set by train.threads, {cores} usable core{'s' if cores > 1 else ''}{why})"
        return f"cpu ({how}, {threads}: one per usable core{why})"

    def autocast(self):
        """The autocast context for forward passes (a no-op in fp32)."""
        import torch
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def place(self, model: Any) -> Any:
        """``model`` on this device, channels-last when chosen; returns it."""
        import torch
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return model


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> frozenset[str]:
    """The processor's feature flags: the ``flags`` (x86) or ``Features`` (Arm) line of
    ``/proc/cpuinfo`` on Linux; on macOS ``bf16`` where ``hw.optional.arm.FEAT_BF16`` is 1; else empty.
    Read once per process: every run, evaluation and prediction asks."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
        return frozenset()
    except OSError:
        pass
    import subprocess
    try:
        out = subprocess.run(["sysctl", "-n", "hw.optional.arm.FEAT_BF16"], capture_output=True, text=True,
                             timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    return frozenset({"bf16"}) if out == "1" else frozenset()


def native_cpu_bf16() -> str:
    """The CPU's native bf16 instructions, read from the processor's own flags (:func:`_cpu_flags`):
    "AMX-BF16", "AVX512-BF16", "ARM-BF16", or "" where it has none (bf16 then runs emulated,
    slower than float32)."""
    flags = _cpu_flags()
    if "amx_bf16" in flags:
        return "AMX-BF16"
    if "avx512_bf16" in flags:
        return "AVX512-BF16"
    if "bf16" in flags:
        return "ARM-BF16"
    return ""


def resolve_precision(choice: DeviceChoice, precision: str = "auto", *, cpu_bf16: bool = False,
                      channels_last: bool = False) -> DeviceChoice:
    """``choice`` with the precision a model trains and predicts in.

    ``precision``: "auto", "fp32", "bf16" or "fp16". ``cpu_bf16``: the backbone declares that bf16
    trains it faster on a CPU with native bf16 (:class:`zoo.protocols.FastInBf16`);
    ``channels_last``: it declares faster channels-last convolutions (:class:`zoo.protocols.ChannelsLast`).

    - cuda: auto is bf16 where the GPU supports it, else fp16 with loss scaling;
    - cpu: auto is bf16 where the processor has native bf16 (:func:`native_cpu_bf16`) and the
      backbone declares the gain, else fp32; fp16 is refused (emulated on a CPU: slower than fp32
      and with fp16's narrow range); bf16 without native support is allowed (the same numbers, slowly).
    """
    import torch
    from dataclasses import replace
    if precision not in PRECISIONS:
        raise ConfigError(f"train.precision {precision!r} is not one of {', '.join(PRECISIONS)}; "
                          f"set --set train.precision=auto (or fp32, bf16, fp16)")
    base = replace(choice, amp_dtype=None, scaler=False, channels_last=False, why="")
    if choice.device.type == "cuda":
        if precision == "fp32":
            return replace(base, channels_last=channels_last)
        bf16_ok = torch.cuda.is_bf16_supported()
        if precision == "bf16" and not bf16_ok:
            raise ConfigError(f"train.precision 'bf16': {torch.cuda.get_device_name(choice.device)} has no bf16; "
                              f"use --set train.precision=fp16 (or auto)")
        if precision == "fp16" or (precision == "auto" and not bf16_ok):
            return replace(base, amp_dtype=torch.float16, scaler=True, channels_last=channels_last,
                           why="auto: no bf16 on this GPU" if precision == "auto" else "")
        return replace(base, amp_dtype=torch.bfloat16, channels_last=channels_last)
    if precision == "fp16":
        raise ConfigError("train.precision 'fp16' on the CPU: torch runs it emulated, slower than fp32 and with "
                          "fp16's narrow range; use --set train.precision=bf16 (fast where the processor has "
                          "AVX-512 BF16 or AMX) or fp32")
    native = native_cpu_bf16()
    if precision == "bf16":
        why = "" if native else "set by train.precision; this CPU has no native bf16, so it runs emulated (slow)"
        return replace(base, amp_dtype=torch.bfloat16, channels_last=channels_last, why=why)
    if precision == "fp32":
        return replace(base, channels_last=channels_last)
    if not native:
        return replace(base, channels_last=channels_last, why="auto: this CPU has no native bf16")
    if not cpu_bf16:
        return replace(base, channels_last=channels_last,
                       why="auto: the backbone declares no bf16 speed-up on a CPU (cpu_bf16)")
    return replace(base, amp_dtype=torch.bfloat16, channels_last=channels_last, why=f"auto: the CPU has {native}")


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


def pick_device(name: str = "auto", *, precision: str = "fp32", threads: int = 0, cpu_bf16: bool = False,
                channels_last: bool = False) -> DeviceChoice:
    """``name``: "auto" (cuda when available), "cpu" or "cuda"; ``precision`` and the backbone's
    declarations as :func:`resolve_precision` takes them (fp32 unless asked).

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
        choice = DeviceChoice(torch.device("cpu"), threads_set=threads > 0)
    else:
        choice = DeviceChoice(torch.device("cuda", torch.cuda.current_device()))
    return resolve_precision(choice, precision, cpu_bf16=cpu_bf16, channels_last=channels_last)


def for_model(choice: DeviceChoice, meta: Mapping[str, Any]) -> DeviceChoice:
    """``choice`` with the precision a packaged model was trained in (``meta``: its ``zoo_model.json``),
    for evaluation and prediction: bf16 stays bf16 where the device runs it natively (a GPU with
    bf16, a CPU with AVX-512 BF16 or AMX) and becomes fp32 elsewhere (said in ``why``); fp16 stays
    fp16 on a GPU and is fp32 on a CPU; a model recorded before precisions were kept is fp32."""
    import torch
    from dataclasses import replace
    trained = str(meta.get("precision", "fp32"))
    layout = bool(meta.get("channels_last", False))
    if trained == "fp32":
        return resolve_precision(choice, "fp32", channels_last=layout)
    if choice.type == "cuda":
        if trained == "bf16" and not torch.cuda.is_bf16_supported():
            return replace(resolve_precision(choice, "fp16", channels_last=layout),
                           why="trained in bf16; this GPU has none")
        return resolve_precision(choice, trained, channels_last=layout)
    if trained == "bf16" and native_cpu_bf16():
        return replace(resolve_precision(choice, "bf16", channels_last=layout), why="as trained")
    return replace(resolve_precision(choice, "fp32", channels_last=layout),
                   why=f"trained in {trained}; this CPU has no native {trained}")
