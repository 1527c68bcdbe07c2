"""The LSTM backbone on a CPU: its fast unpacked path against its packed path, alone and in training.

Found while profiling the training benchmark: torch's CPU LSTM runs a packed batch fast only
when every clip has the same length. One clip shorter than the rest (the lab's full clips are
1291-1293 frames) sends it down a per-time-step path whose backward pass is many times slower.
The plugin therefore runs unpacked on the CPU (``zoo_lstm.model.unpacked_forward``: each layer
and direction of its ``nn.LSTM`` over the padded batch, the reverse direction over each clip
reversed within its length) and keeps the packed path for CUDA (cuDNN). Setting the backbone's
``packed_on_cpu`` brings back the packed path on the CPU: the "before" of every row here.

Rows: forward + backward of the backbone alone (fast path against packed path, with the
largest differences of their outputs and gradients); the packed path with equal lengths for
reference; and the engine's training throughput (``fit``, as in the training section) with the
fast path against the packed one: the before/after of adopting it.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .common import Section, interleaved, loadavg, row

SECTION = "lstm packing"


@dataclass(frozen=True)
class PackCase:
    frames: int = 300
    bins: int = 128
    batch_size: int = 32
    steps: int = 3
    reps: int = 3
    settings: tuple = ()
    """LSTM settings as (key, value) pairs; empty: the plugin's defaults. The conv front end is
    always off (:meth:`lstm_settings`): this benchmark times the recurrence."""
    train_steps: int = 4
    """Timed steps of ``fit`` per measurement in the training row (0: no training row)."""

    def lstm_settings(self) -> dict:
        return {"conv_layers": 0, **dict(self.settings)}


def set_packed(model: Any, packed: bool) -> None:
    """Make every LSTM backbone inside ``model`` take the packed path on the CPU (True) or its fast path."""
    for module in model.modules():
        if hasattr(module, "packed_on_cpu"):
            module.packed_on_cpu = packed


def _inputs(case: PackCase, seed: int = 0):
    import torch
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(case.batch_size, case.bins, case.frames, generator=g)
    lo = max(1, int(0.9 * case.frames))
    lengths = torch.randint(lo, case.frames + 1, (case.batch_size,), generator=g)
    lengths[0] = case.frames
    return x, lengths


def check(backbone: Any, x: Any, lengths: Any) -> tuple[float, float]:
    """How far the backbone's fast path is from its packed path, in eval mode: (largest absolute
    difference of the outputs, largest difference of a gradient relative to that gradient's
    largest element, over the input and every LSTM parameter)."""
    import torch
    was, was_packed = backbone.training, backbone.packed_on_cpu
    backbone.eval()
    weights = torch.randn(x.shape[0], x.shape[2], backbone.out_dim, generator=torch.Generator().manual_seed(1))
    results = []
    try:
        for packed in (False, True):
            backbone.packed_on_cpu = packed
            backbone.zero_grad(set_to_none=True)
            v = x.clone().requires_grad_(True)
            out = backbone(v, lengths).hidden
            (out * weights).sum().backward()
            results.append((out.detach(), [v.grad] + [p.grad for p in backbone.rnn.parameters()]))
    finally:
        backbone.train(was)
        backbone.packed_on_cpu = was_packed
        backbone.zero_grad(set_to_none=True)
    (a, ga), (b, gb) = results
    return (float((a - b).abs().max()),
            max(float((g - h).abs().max() / g.abs().max().clamp(min=1e-12)) for g, h in zip(ga, gb)))


def _step_seconds(backbone: Any, packed: bool, x: Any, lengths: Any, steps: int) -> float:
    """Median seconds of a forward + backward pass (one untimed pass first)."""
    backbone.packed_on_cpu = packed
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        backbone(x, lengths).hidden.square().mean().backward()
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _training_row(case: PackCase, device: Any, label: str) -> Any:
    """The engine's ``fit`` on the LSTM, fast path against packed path (interleaved)."""
    from zoo.registry import Registry
    from . import training
    tcase = training.TrainCase("lstm", frames=case.frames, bins=case.bins, batch_size=case.batch_size,
                               steps=case.train_steps, settings=case.lstm_settings())
    setup = training._Setup(tcase, Registry(), device)
    config = training.train_config(tcase, "cpu", 0)

    def rate(packed: bool) -> float:
        steps = training.zoo_steps(setup, config, adjust=lambda m: set_packed(m, packed))
        return training.per_step(steps, setup.rows, tcase)

    z, b = interleaved(lambda: rate(False), lambda: rate(True), case.reps)
    return row(SECTION, f"{label}: training throughput, the engine's fit (after / before)", z, b, "clips/s",
               baseline="the same fit on the packed path (before)",
               note=f"median of {case.train_steps} steps after 1 warm-up step, as the training section")


def run(case: PackCase, echo=print) -> Section:
    """Time the plugin's fast CPU path against its packed path (and equal lengths for reference)."""
    from zoo.registry import Registry
    import torch
    section = Section(SECTION)
    start_load, t_start = loadavg(), time.perf_counter()
    backbone = Registry().create("backbone", "lstm", case.lstm_settings(), case.bins).train()
    x, lengths = _inputs(case)
    out_diff, grad_diff = check(backbone, x, lengths)
    rate = lambda packed, n: case.batch_size / _step_seconds(backbone, packed, x, n, case.steps)  # noqa: E731
    z, b = interleaved(lambda: rate(False, lengths), lambda: rate(True, lengths), case.reps)
    size = "default size" if not case.settings else dict(case.settings)
    label = f"lstm ({size}), {case.bins}x{case.frames}, batch {case.batch_size}"
    spread = f"lengths {int(lengths.min())}-{int(lengths.max())}"
    section.rows.append(row(SECTION, f"{label}, {spread}: the plugin's CPU path (unpacked)", z, b, "clips/s",
                            baseline="its packed path",
                            note=f"same numbers: outputs differ by at most {out_diff:.1g}, "
                                 f"gradients by {grad_diff:.1g} relative"))
    echo(f"  unequal lengths: unpacked {np.median(z):.1f} clips/s, packed {np.median(b):.1f} clips/s, "
         f"speed-up {section.rows[-1].ratio:.1f}x, load {loadavg():.2f}")
    equal = lengths.new_full(lengths.shape, case.frames)
    z, b = interleaved(lambda: rate(True, equal), lambda: rate(True, lengths), case.reps)
    section.rows.append(row(SECTION, f"{label}: the packed path with every length {case.frames} (reference)", z, b,
                            "clips/s", baseline="the packed path, unequal lengths"))
    echo(f"  equal lengths: packed {np.median(z):.1f} clips/s vs unequal {np.median(b):.1f} clips/s, "
         f"{section.rows[-1].ratio:.1f}x")
    if case.train_steps:
        from zoo.engine.device import DeviceChoice
        # On the CPU, whatever device the training section uses: the packed path is the CPU's problem.
        section.rows.append(_training_row(case, DeviceChoice(torch.device("cpu")), label))
        r = section.rows[-1]
        echo(f"  training: fast path {r.zoo:.1f} clips/s, packed {r.base:.1f} clips/s, {r.ratio:.2f}x")
    section.load = (start_load, loadavg())
    section.seconds = time.perf_counter() - t_start
    section.notes.append(
        "Backbone rows: forward + backward of the backbone alone (loss: mean square of its output), training mode, "
        f"median of {case.steps} steps after one untimed step. Training row: the engine's fit with its default "
        f"settings on synthetic clips of {case.bins} x 90-100 % of {case.frames} frames. {case.reps} interleaved "
        f"repetitions each; torch threads {torch.get_num_threads()}. The packed path is the plugin's own "
        "(packed_on_cpu=True): the LSTM as it trained on the CPU before the fast path."
    )
    return section


QUICK = PackCase(frames=40, bins=16, batch_size=4, steps=2, reps=2, settings=(("hidden", 8),), train_steps=2)
FULL = PackCase()
