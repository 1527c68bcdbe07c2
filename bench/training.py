"""Training throughput: the zoo's engine against a bare PyTorch loop, same model and data.

Zoo: :func:`zoo.engine.batches.make_splits` (normalised, padded, resident data) and
:func:`zoo.engine.train.fit` exactly as ``zoo run`` calls them: random batches gathered from
the resident split, AdamW with its two parameter groups, the cosine schedule stepped per batch,
gradient clipping, running losses kept on the device, the progress bar (written to /dev/null).

Bare: the same ``ZooModel`` (same seed, so the same weights), ``torch.optim.AdamW``, the same
gradient clipping, over batches built before the clock starts (``x[B, F, T]`` cut to each
batch's longest clip, exactly the shapes the zoo draws): forward, cross-entropy, backward,
clip, step. Nothing else.

Steady state: the zoo's split is wrapped so that each ``batch()`` call records the time; the
gap between two calls is one full step of the engine's loop. The first ``warmup`` steps and the
step before validation are left out. The bare loop's clock runs over the same step numbers.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .common import Section, interleaved, loadavg, row

CLASSES = tuple(f"genre{i}" for i in range(10))
SECTION = "training"


@dataclass(frozen=True)
class TrainCase:
    """One backbone at one input shape: clips of ``bins`` x about ``frames`` (90-100 % of it)."""

    backbone: str
    frames: int = 300
    bins: int = 128
    batch_size: int = 32
    steps: int = 4
    warmup: int = 1
    settings: dict = field(default_factory=dict)
    """Backbone settings (``--set backbone.KEY``); empty: the plugin's default sizes."""
    probe: bool = False
    """A tiny model whose steps take milliseconds, so the engine's fixed cost per step shows:
    informative, no goal (the goal is for default sizes on realistic shapes)."""

    @property
    def label(self) -> str:
        size = "default size" if not self.settings else ", ".join(f"{k}={v}" for k, v in self.settings.items())
        probe = " [probe: fixed cost per step]" if self.probe else ""
        return f"{self.backbone} ({size}), {self.bins}x{self.frames}, batch {self.batch_size}{probe}"


def synthetic(case: TrainCase, seed: int = 0):
    """A :class:`~zoo.data.preparedset.Prepared` of mel-shaped clips: ``(warmup + steps + 1)``
    batches of training clips, and a small batch each for validation and test."""
    from zoo.data.preparedset import Prepared
    rng = np.random.default_rng(seed)
    n_train = case.batch_size * (case.warmup + case.steps + 1)
    n_eval = 4
    n = n_train + 2 * n_eval
    lo = max(1, int(0.9 * case.frames))
    x = [rng.normal(-40.0, 15.0, size=(case.bins, int(rng.integers(lo, case.frames + 1)))).astype(np.float32)
         for _ in range(n)]
    labels = rng.integers(0, len(CLASSES), size=n).astype(np.int64)
    splits = np.array(["train"] * n_train + ["val"] * n_eval + ["test"] * n_eval)
    return Prepared(ids=[f"clip{i}" for i in range(n)], x=x, splits=splits, labels=labels, classes=CLASSES,
                    targets={}, rate="frames", fingerprint=f"bench-{case}", description="benchmark clips",
                    feature_slices={"mel": (0, case.bins)})


class _Setup:
    """What both loops of one case share: the composition, the clips, the normaliser and the rows
    of every batch (drawn as ``fit`` draws them). The zoo's resident splits are built on first use."""

    def __init__(self, case: TrainCase, registry: Any, device: Any, seed: int = 0):
        from zoo.model.building import build_components
        from zoo.spec import parse_spec
        from zoo.engine.batches import Normaliser, random_batches
        self.case, self.registry, self.device, self.seed = case, registry, device, seed
        # The mel feature's bands decide how many bins the backbone is built for.
        settings = {"backbone": dict(case.settings), "mel": {"n_mels": case.bins}}
        self.built = build_components(parse_spec(f"{case.backbone}+mel:genre", registry), registry, settings)
        self.prepared = synthetic(case, seed)
        self.train_rows = self.prepared.indices("train")
        self.norm = Normaliser.fit([self.prepared.x[i] for i in self.train_rows])
        # fit draws its batches with default_rng(seed): the bare loop gets the same groups of rows.
        self.rows = list(random_batches(self.prepared.lengths[self.train_rows], case.batch_size,
                                        np.random.default_rng(seed)))
        self._splits = None
        self.setup_seconds = float("nan")

    @property
    def splits(self):
        """The engine's resident, normalised, padded splits (``make_splits``), built once."""
        if self._splits is None:
            from zoo.engine.batches import make_splits
            t0 = time.perf_counter()
            self._splits = make_splits(self.prepared, self.built.tasks, self.norm, self.device.device)
            self.setup_seconds = time.perf_counter() - t0
        return self._splits

    def model(self):
        """A fresh ``ZooModel`` in training mode on the device, the same weights every call."""
        from zoo.model.model import build_model
        from zoo.engine.seeds import seed_everything
        seed_everything(self.seed)
        schemas = {n: t.schema(CLASSES) for n, t in self.built.tasks.items()}
        model = build_model(self.built.make_backbone(self.registry), self.built.tasks, schemas)
        return self.device.place(model).train()


def _timed_split(split: Any):
    """``split`` whose ``batch()`` appends ``time.perf_counter()`` to ``.stamps`` (else unchanged)."""
    from zoo.engine.batches import SplitData

    class TimedSplit(SplitData):
        def batch(self, rows):
            self.stamps.append(time.perf_counter())
            return super().batch(rows)

    timed = TimedSplit(**{f.name: getattr(split, f.name) for f in dataclasses.fields(SplitData)})
    timed.stamps = []
    return timed


def overall(durations: list[float], rows: list, case: TrainCase) -> float:
    """Clips per second: the timed steps' clips over their total time."""
    clips = sum(len(r) for r in rows[case.warmup: case.warmup + case.steps])
    return clips / sum(durations)


def per_step(durations: list[float], rows: list, case: TrainCase) -> float:
    """Clips per second from the median step: one slow step (another program took the core)
    does not move it, where it would move the total."""
    import statistics
    return float(np.mean([len(r) for r in rows[case.warmup: case.warmup + case.steps]])) / statistics.median(durations)


def zoo_steps(setup: _Setup, config: Any, adjust: Callable[[Any], None] | None = None) -> list[float]:
    """Seconds of each timed step of ``fit`` (the gaps between consecutive ``batch()`` calls).

    ``adjust(model)``, when given, changes the fresh model before training (e.g. which path a
    backbone takes), so two variants of the same engine can be compared."""
    from zoo.engine.train import fit
    case = setup.case
    train = _timed_split(setup.splits["train"])
    model = setup.model()
    if adjust is not None:
        adjust(model)
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        fit(model, train, setup.splits["val"], config, setup.device, seed=setup.seed, progress=True)
    stamps = np.asarray(train.stamps[case.warmup: case.warmup + case.steps + 1])
    return list(np.diff(stamps))


def bare_batches(setup: _Setup) -> list[tuple[Any, Any, Any]]:
    """``(x[B, F, T], lengths[B], y[B])`` per batch, on the device, built the plain way."""
    import torch
    out = []
    clips = [setup.norm.apply(setup.prepared.x[i]) for i in setup.train_rows]
    labels = setup.prepared.labels[setup.train_rows]
    dev = setup.device.device
    for rows in setup.rows:
        t = max(clips[r].shape[1] for r in rows)
        x = np.zeros((len(rows), setup.case.bins, t), dtype=np.float32)
        for j, r in enumerate(rows):
            x[j, :, : clips[r].shape[1]] = clips[r]
        lengths = torch.tensor([clips[r].shape[1] for r in rows])
        out.append((torch.from_numpy(x).to(dev), lengths.to(dev), torch.from_numpy(labels[rows]).to(dev)))
    return out


def bare_steps(setup: _Setup, batches: list, config: Any) -> list[float]:
    """Seconds of each timed step of the plain loop (on CUDA: the mean step, timed over all of them,
    since timing single steps would need a host sync the zoo does not make)."""
    import torch
    import torch.nn.functional as F
    case = setup.case
    model = setup.model()
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    cuda = setup.device.type == "cuda"
    stamps = []
    for i, (x, lengths, y) in enumerate(batches[: case.warmup + case.steps]):
        if i >= case.warmup and (not cuda or i == case.warmup):
            if cuda:
                torch.cuda.synchronize()
            stamps.append(time.perf_counter())
        with setup.device.autocast():
            loss = F.cross_entropy(model(x, lengths)["genre"].float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
    if cuda:
        torch.cuda.synchronize()
        return [(time.perf_counter() - stamps[0]) / case.steps] * case.steps
    stamps.append(time.perf_counter())
    return list(np.diff(stamps))


def _threads() -> int:
    import torch
    return torch.get_num_threads()


def train_config(case: TrainCase, device_name: str, threads: int):
    """The engine's default training settings, one epoch, no early stopping."""
    from zoo.engine.trainconfig import TrainConfig
    return TrainConfig(epochs=1, batch_size=case.batch_size, patience=0, device=device_name, threads=threads)


def run(cases: list[TrainCase], *, device: Any, device_name: str, threads: int, reps: int,
        precisions: list[str] | tuple[str, ...] = ("fp32",), echo=print) -> Section:
    """Measure every case at every precision ("fp32", "bf16", "fp16": the same for both loops, with
    the channels-last layout where the backbone declares it); ``device`` is the
    :class:`~zoo.engine.device.DeviceChoice` already picked. bf16 is skipped on a CPU without native
    bf16 (emulated: not what anyone would train in), fp16 on a CPU."""
    from zoo.engine.device import native_cpu_bf16, resolve_precision
    from zoo.engine.runner import speed_declarations
    from zoo.model.building import build_components
    from zoo.registry import Registry
    from zoo.spec import parse_spec
    registry = Registry()
    section = Section(SECTION)
    start_load, t_start = loadavg(), time.perf_counter()
    usable = [p for p in precisions if device.type == "cuda" or p == "fp32" or (p == "bf16" and native_cpu_bf16())]
    skipped = [p for p in precisions if p not in usable]
    if skipped:
        section.notes.append(f"Not measured on this {device.type}: {', '.join(skipped)} (no native support).")
    for case, precision in [(c, p) for p in usable for c in cases]:
        declared = speed_declarations(build_components(parse_spec(f"{case.backbone}+mel:genre", registry), registry),
                                      registry)
        setup = _Setup(case, registry, resolve_precision(device, precision, channels_last=declared["channels_last"]))
        config = train_config(case, device_name, threads)
        batches = bare_batches(setup)
        measure = per_step if device.type != "cuda" else overall
        zoo, base = interleaved(lambda: measure(zoo_steps(setup, config), setup.rows, case),
                                lambda: measure(bare_steps(setup, batches, config), setup.rows, case), reps)
        split_note = f"resident split built once in {setup.setup_seconds:.2f} s"
        if case.probe:
            # From the median ratio: the engine's time per step beyond the bare loop's.
            ratio = float(np.median([z / b for z, b in zip(zoo, base)]))
            step = np.mean([len(r) for r in setup.rows]) / float(np.median(base))
            split_note = f"engine's fixed cost {step * (1 / ratio - 1) * 1e3:+.2f} ms per step; {split_note}"
        r = row(SECTION, f"{case.label}, {setup.device.precision}" + (
                ", channels_last" if setup.device.channels_last else ""), zoo, base, "clips/s",
                baseline="bare PyTorch loop",
                goal=None if case.probe else 0.9, note=split_note)
        echo(f"  {r.case}: zoo {r.zoo:.2f} clips/s, bare {r.base:.2f} clips/s, ratio {r.ratio:.3f} "
             f"({min(r.ratios):.3f}-{max(r.ratios):.3f}), load {loadavg():.2f}")
        section.rows.append(r)
    section.load = (start_load, loadavg())
    section.seconds = time.perf_counter() - t_start
    basis = ("batch size / median step time" if device.type != "cuda" else
             "clips / total time of the timed steps (CUDA: single steps cannot be timed without a sync)")
    plan = sorted({(c.warmup, c.steps) for c in cases})
    section.notes.append(
        "Steady state: " + "; ".join(f"{w} warm-up step(s) skipped, then {n} timed steps" for w, n in plan) +
        f" per measurement; clips/s = {basis}; {reps} interleaved repetitions, median ratio (min-max in brackets); "
        f"torch threads {threads or 'auto'} -> {_threads()} for both loops."
    )
    return section


def _tiny(steps: int, warmup: int, probe: bool) -> list[TrainCase]:
    shape = dict(frames=48, bins=32, batch_size=8, steps=steps, warmup=warmup, probe=probe)
    return [TrainCase("lstm", settings={"hidden": 16, "layers": 1}, **shape),
            TrainCase("cnn", settings={"channels": (8, 16)}, **shape),
            TrainCase("ast", settings={"embed_dim": 32, "depth": 1, "heads": 2, "max_frames": 64}, **shape)]


QUICK = _tiny(steps=3, warmup=1, probe=False)
"""Tiny models for a smoke test of the harness (their ratios are judged against the goal, to
exercise the report; with such short steps they mostly measure noise)."""


def full(frames: int = 300, steps: int = 4, warmup: int = 1) -> list[TrainCase]:
    """The three backbones at their default sizes on mel ``128 x frames``, batch 32, then the tiny
    probes that show the engine's fixed cost per step."""
    return ([TrainCase(b, frames=frames, steps=steps, warmup=warmup) for b in ("lstm", "cnn", "ast")]
            + _tiny(steps=40, warmup=5, probe=True))
