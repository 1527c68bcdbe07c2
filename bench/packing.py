"""The LSTM backbone's packed sequences on a CPU: the plugin's forward against an equivalent one.

Found while profiling the training benchmark: torch's CPU LSTM runs a packed batch fast only
when every clip has the same length. One clip shorter than the rest (the lab's full clips are
1291-1293 frames) sends it down a per-time-step path whose backward pass is many times slower.
Both loops of the training benchmark run the same model, so this cost is in both and does not
show in their ratio; this benchmark shows it.

Equivalent formulation (same parameters, same outputs): run each layer and direction of the
plugin's ``nn.LSTM`` unpacked over the padded batch. The forward direction needs nothing more,
since padding comes after a clip's last step; the reverse direction runs over each clip reversed
within its own length (padding stays at the end) and its output is reversed back. Steps past a
clip's length are zeroed, as ``pad_packed_sequence`` leaves them. The check below compares the
outputs and the gradients of both in eval mode (no dropout), then times training steps.
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
    """LSTM settings as (key, value) pairs; empty: the plugin's defaults."""


def flip_within(h: Any, lengths: Any) -> Any:
    """``h[B, T, D]`` with the first ``lengths[b]`` steps of row b reversed, the rest in place."""
    import torch
    t = torch.arange(h.shape[1], device=h.device)[None, :]
    last = lengths[:, None] - 1
    index = torch.where(t <= last, last - t, t)
    return h.gather(1, index[:, :, None].expand(-1, -1, h.shape[2]))


def unpacked(rnn: Any, x: Any, lengths: Any) -> Any:
    """What ``LSTMBackbone.forward(x[B, F, T], lengths[B]).hidden`` gives, computed unpacked: ``[B, T, D]``."""
    import torch
    import torch.nn.functional as F
    h = x.transpose(1, 2)
    B, T, _ = h.shape
    lengths = lengths.to(device=h.device, dtype=torch.int64)
    directions = ("", "_reverse") if rnn.bidirectional else ("",)
    for layer in range(rnn.num_layers):
        outs = []
        for suffix in directions:
            params = [getattr(rnn, f"{name}_l{layer}{suffix}")
                      for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            zeros = h.new_zeros(1, B, rnn.hidden_size)
            inp = flip_within(h, lengths) if suffix else h
            out = torch.lstm(inp, (zeros, zeros), params, True, 1, 0.0, rnn.training, False, True)[0]
            outs.append(flip_within(out, lengths) if suffix else out)
        h = torch.cat(outs, dim=-1)
        if layer < rnn.num_layers - 1 and rnn.dropout:
            h = F.dropout(h, rnn.dropout, rnn.training)
    valid = torch.arange(T, device=h.device)[None, :] < lengths[:, None]
    return h * valid[:, :, None].to(h.dtype)


def _inputs(case: PackCase, seed: int = 0):
    import torch
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(case.batch_size, case.bins, case.frames, generator=g)
    lo = max(1, int(0.9 * case.frames))
    lengths = torch.randint(lo, case.frames + 1, (case.batch_size,), generator=g)
    lengths[0] = case.frames
    return x, lengths


def check(backbone: Any, x: Any, lengths: Any) -> tuple[float, float]:
    """How far :func:`unpacked` is from the plugin, in eval mode: (largest absolute difference of the
    outputs, largest difference of a gradient relative to that gradient's largest element, over
    the input and every LSTM parameter)."""
    import torch
    was = backbone.training
    backbone.eval()
    weights = torch.randn(x.shape[0], x.shape[2], backbone.out_dim, generator=torch.Generator().manual_seed(1))
    results = []
    try:
        for forward in (lambda v: backbone(v, lengths).hidden, lambda v: unpacked(backbone.rnn, v, lengths)):
            backbone.zero_grad(set_to_none=True)
            v = x.clone().requires_grad_(True)
            out = forward(v)
            (out * weights).sum().backward()
            results.append((out.detach(), [v.grad] + [p.grad for p in backbone.rnn.parameters()]))
    finally:
        backbone.train(was)
        backbone.zero_grad(set_to_none=True)
    (a, ga), (b, gb) = results
    return (float((a - b).abs().max()),
            max(float((g - h).abs().max() / g.abs().max().clamp(min=1e-12)) for g, h in zip(ga, gb)))


def _step_seconds(fn, x, lengths, steps: int) -> float:
    """Median seconds of a forward + backward pass (one untimed pass first)."""
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        fn(x, lengths).square().mean().backward()
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run(case: PackCase, echo=print) -> Section:
    """Time the plugin's packed forward against :func:`unpacked` (and equal lengths for reference)."""
    from zoo.registry import Registry
    section = Section(SECTION)
    start_load, t_start = loadavg(), time.perf_counter()
    backbone = Registry().create("backbone", "lstm", dict(case.settings), case.bins).train()
    x, lengths = _inputs(case)
    out_diff, grad_diff = check(backbone, x, lengths)
    plugin = lambda x, n: backbone(x, n).hidden  # noqa: E731
    mine = lambda x, n: unpacked(backbone.rnn, x, n)  # noqa: E731
    rate = lambda fn, n: case.batch_size / _step_seconds(fn, x, n, case.steps)  # noqa: E731
    z, b = interleaved(lambda: rate(mine, lengths), lambda: rate(plugin, lengths), case.reps)
    size = "default size" if not case.settings else dict(case.settings)
    label = f"lstm ({size}), {case.bins}x{case.frames}, batch {case.batch_size}"
    spread = f"lengths {int(lengths.min())}-{int(lengths.max())}"
    section.rows.append(row(SECTION, f"{label}, {spread}: unpacked equivalent", z, b, "clips/s",
                            baseline="the plugin's packed forward",
                            note=f"same numbers: outputs differ by at most {out_diff:.1g}, "
                                 f"gradients by {grad_diff:.1g} relative"))
    echo(f"  unequal lengths: unpacked {np.median(z):.1f} clips/s, packed {np.median(b):.1f} clips/s, "
         f"speed-up {section.rows[-1].ratio:.1f}x, load {loadavg():.2f}")
    equal = lengths.new_full(lengths.shape, case.frames)
    z, b = interleaved(lambda: rate(plugin, equal), lambda: rate(plugin, lengths), case.reps)
    section.rows.append(row(SECTION, f"{label}: the plugin with every length {case.frames} (reference)", z, b,
                            "clips/s", baseline="the plugin, unequal lengths"))
    echo(f"  equal lengths: packed {np.median(z):.1f} clips/s vs unequal {np.median(b):.1f} clips/s, "
         f"{section.rows[-1].ratio:.1f}x")
    section.load = (start_load, loadavg())
    section.seconds = time.perf_counter() - t_start
    section.notes.append(
        "Forward + backward of the backbone alone (loss: mean square of its output), training mode, median of "
        f"{case.steps} steps after one untimed step, {case.reps} interleaved repetitions. 'Unpacked equivalent' "
        "is bench/packing.py:unpacked, which uses the plugin's own nn.LSTM parameters."
    )
    return section


QUICK = PackCase(frames=40, bins=16, batch_size=4, steps=2, reps=2, settings=(("hidden", 8),))
FULL = PackCase()
