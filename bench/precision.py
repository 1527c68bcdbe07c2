"""Precision on the CPU (or GPU): each backbone's train step in bf16 against float32, and how close
both come to the machine's own peak.

- Peak: a plain torch loop of one large matmul (``2048 x 2048``) and one 3x3 convolution layer
  (batch 16, 64 -> 64 channels, 128 x 128, forward and backward, channels-last), in float32 and
  under bf16 autocast. GFLOP/s from the operations' known FLOP counts; best of the repetitions
  (a peak: the least disturbed run).
- Backbones: the ``ZooModel`` of ``BACKBONE+mel:genre`` at its default size, on mel-shaped clips
  (``bins x frames``), batch 16, AdamW: forward, cross-entropy, backward, step. Four modes, timed
  interleaved in one process: fp32, fp32 + channels_last, bf16 autocast, bf16 autocast +
  channels_last. Each row's ratio is the mode's clips/s over fp32's (the speed-up). The step's
  FLOPs are counted once by ``torch.utils.flop_counter.FlopCounterMode`` (forward and backward),
  so each mode's GFLOP/s is also reported as a fraction of the same precision's matmul peak.

The decision it informs: a backbone declares ``cpu_bf16 = True`` (``zoo.protocols.FastInBf16``) and
``channels_last = True`` (``zoo.protocols.ChannelsLast``) on its config only where these ratios show
a real speed-up; ``train.precision=auto`` reads those declarations.
"""
from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

from .common import Section, loadavg, row

SECTION = "precision"
MODES = (("fp32", False, False), ("fp32+channels_last", False, True), ("bf16", True, False),
         ("bf16+channels_last", True, True))


@dataclass(frozen=True)
class PrecisionCase:
    backbones: tuple[str, ...] = ("cnn", "lstm", "ast")
    frames: int = 300
    bins: int = 128
    batch_size: int = 16
    steps: int = 3
    warmup: int = 1
    reps: int = 3
    matmul: int = 2048
    conv: tuple[int, int, int, int] = (16, 64, 128, 128)  # batch, channels, height, width


QUICK = PrecisionCase(backbones=("cnn",), frames=48, bins=32, batch_size=4, steps=2, reps=2, matmul=256,
                      conv=(2, 8, 32, 32))
FULL = PrecisionCase()


def _autocast(device: Any, bf16: bool):
    import torch
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def _sync(device: Any) -> None:
    import torch
    if device.type == "cuda":
        torch.cuda.synchronize()


def _best(fn: Callable[[], None], device: Any, reps: int) -> float:
    """Seconds of the fastest of ``reps`` calls (after one warm-up call)."""
    fn()
    _sync(device)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return min(times)


def matmul_peak(device: Any, bf16: bool, n: int, reps: int) -> float:
    """GFLOP/s of ``n x n @ n x n`` (2 n^3 FLOPs), float32 or under bf16 autocast."""
    import torch
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)

    def one():
        with _autocast(device, bf16):
            a @ b

    return 2 * n ** 3 / _best(one, device, reps) / 1e9


def conv_peak(device: Any, bf16: bool, shape: tuple[int, int, int, int], reps: int) -> float:
    """GFLOP/s of one 3x3 convolution's forward and backward (3 x its forward FLOPs), channels-last."""
    import torch
    bsz, ch, h, w = shape
    conv = torch.nn.Conv2d(ch, ch, 3, padding=1, bias=False).to(device).to(memory_format=torch.channels_last)
    x = torch.randn(bsz, ch, h, w, device=device).to(memory_format=torch.channels_last).requires_grad_()

    def one():
        with _autocast(device, bf16):
            y = conv(x)
        y.float().sum().backward()

    flops = 3 * 2 * bsz * ch * h * w * ch * 9
    return flops / _best(one, device, reps) / 1e9


def _model(backbone: str, case: PrecisionCase, registry: Any, device: Any, channels_last: bool):
    import torch
    from zoo.engine.seeds import seed_everything
    from zoo.model.building import build_components
    from zoo.model.model import build_model
    from zoo.spec import parse_spec
    built = build_components(parse_spec(f"{backbone}+mel:genre", registry), registry, {"mel": {"n_mels": case.bins}})
    seed_everything(0)
    schemas = {n: t.schema(tuple(f"genre{i}" for i in range(10))) for n, t in built.tasks.items()}
    model = build_model(built.make_backbone(registry), built.tasks, schemas).to(device).train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def _step_fn(model: Any, device: Any, bf16: bool, case: PrecisionCase):
    import torch
    import torch.nn.functional as F
    g = torch.Generator().manual_seed(0)
    x = torch.randn(case.batch_size, case.bins, case.frames, generator=g).to(device)
    lengths = torch.full((case.batch_size,), case.frames, device=device)
    y = torch.randint(0, 10, (case.batch_size,), generator=g).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        with _autocast(device, bf16):
            out = model(x, lengths)["genre"]
        loss = F.cross_entropy(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def step_flops(model: Any, device: Any, case: PrecisionCase) -> float:
    """FLOPs of one forward and backward pass (as torch's FLOP counter counts them)."""
    from torch.utils.flop_counter import FlopCounterMode
    step = _step_fn(model, device, False, case)
    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def _steps_per_second(step: Callable[[], None], device: Any, case: PrecisionCase) -> float:
    for _ in range(case.warmup):
        step()
    _sync(device)
    times = []
    for _ in range(case.steps):
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return case.batch_size / statistics.median(times)


def run(case: PrecisionCase, device: Any, echo=print) -> Section:
    """Measure the peaks, then every backbone in every mode (``device``: a torch device)."""
    from zoo.engine.device import native_cpu_bf16
    from zoo.registry import Registry
    registry = Registry()
    section = Section(SECTION)
    start_load, t0 = loadavg(), time.perf_counter()
    peaks: dict[tuple[str, bool], float] = {}
    for kind, fn, arg in (("matmul", matmul_peak, case.matmul), ("conv", conv_peak, case.conv)):
        fp32, bf16 = [], []
        for rep in range(case.reps):
            pair = [(False, fp32), (True, bf16)]
            for half, out in (pair if rep % 2 == 0 else pair[::-1]):
                out.append(fn(device, half, arg, 3))
        peaks[(kind, False)], peaks[(kind, True)] = max(fp32), max(bf16)
        size = f"{arg} x {arg}" if kind == "matmul" else "batch {}, {} ch, {}x{}".format(*arg)
        r = row(SECTION, f"peak: {kind} ({size}), bf16 vs fp32", bf16, fp32, "GFLOP/s", baseline="fp32, same loop",
                note=f"best fp32 {max(fp32):.0f}, best bf16 {max(bf16):.0f} GFLOP/s")
        echo(f"  {r.case}: bf16 {max(bf16):.0f}, fp32 {max(fp32):.0f} GFLOP/s, ratio {r.ratio:.2f}")
        section.rows.append(r)
    for backbone in case.backbones:
        models = {name: _model(backbone, case, registry, device, cl) for name, _, cl in MODES}
        flops = step_flops(models["fp32"], device, case)
        steps = {name: _step_fn(models[name], device, half, case) for name, half, _ in MODES}
        speed: dict[str, list[float]] = {name: [] for name, _, _ in MODES}
        for rep in range(case.reps):
            order = list(MODES) if rep % 2 == 0 else list(reversed(MODES))
            for name, _, _ in order:
                speed[name].append(_steps_per_second(steps[name], device, case))
        for name, half, _ in MODES[1:]:
            gflops = statistics.median(speed[name]) / case.batch_size * flops / 1e9
            frac = gflops / peaks[("matmul", half)]
            r = row(SECTION, f"{backbone} (default size), {case.bins}x{case.frames}, batch {case.batch_size}: {name}",
                    speed[name], speed["fp32"], "clips/s", baseline="fp32",
                    note=f"{gflops:.3g} GFLOP/s = {frac:.0%} of the {'bf16' if half else 'fp32'} matmul peak")
            echo(f"  {r.case}: {r.zoo:.1f} vs {r.base:.1f} clips/s, speed-up {r.ratio:.2f} "
                 f"({min(r.ratios):.2f}-{max(r.ratios):.2f}); {r.note}")
            section.rows.append(r)
        fp32_gflops = statistics.median(speed["fp32"]) / case.batch_size * flops / 1e9
        section.notes.append(f"{backbone}: {flops / 1e9:.1f} GFLOP per step (forward + backward); fp32 at "
                             f"{fp32_gflops:.3g} GFLOP/s = {fp32_gflops / peaks[('matmul', False)]:.0%} of the fp32 "
                             f"matmul peak.")
    native = native_cpu_bf16() if device.type == "cpu" else "(GPU)"
    section.notes.append(f"Native bf16 on this processor: {native or 'none (bf16 emulated)'}. Peaks: best of "
                         f"{case.reps} x 3 calls; backbones: median of {case.steps} steps after {case.warmup} "
                         f"warm-up, {case.reps} interleaved repetitions, ratio = mode / fp32 clips/s.")
    section.load = (start_load, loadavg())
    section.seconds = time.perf_counter() - t0
    return section
