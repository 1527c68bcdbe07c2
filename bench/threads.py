"""Torch's CPU threads: the engine's choice (one per usable core) against the load-average choice it replaced.

Until issue 15 the engine took the cores the 1-minute load average called idle when a run
started and kept that count for the whole run; now it takes every core the process may run on
(``zoo.engine.device.usable_cores``), unless ``train.threads`` says otherwise. Both counts train
the same model with the engine's ``fit`` (as in the training section), interleaved, so the ratio
says what the new default gains or loses on this machine under its present load.

The old choice is computed once, from the load average when the section starts, as a run
starting then would have: taking it again before each measurement would count this benchmark's
own load. When both choices give the same count the row still runs (its ratio should be 1).
"""
from __future__ import annotations

import os
import time
from typing import Any

from .common import Section, interleaved, loadavg, row
from . import training

SECTION = "threads"


def loadavg_threads() -> int:
    """The engine's choice before issue 15: the cores the 1-minute load average leaves idle, at least one."""
    cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except (OSError, AttributeError):
        busy = 0.0
    return max(1, min(cores, int(cores - busy + 0.5)))


def run(cases: list[training.TrainCase], *, reps: int, echo=print) -> Section:
    """For each case: ``fit`` with one thread per usable core against ``fit`` with the load-average choice."""
    import torch
    from zoo.engine.device import DeviceChoice, usable_cores
    from zoo.registry import Registry
    section = Section(SECTION)
    start_load, t_start = loadavg(), time.perf_counter()
    old, new = loadavg_threads(), usable_cores()
    before = torch.get_num_threads()
    registry = Registry()
    device = DeviceChoice(torch.device("cpu"))

    def rate(setup: Any, config: Any, threads: int) -> float:
        torch.set_num_threads(threads)
        return training.per_step(training.zoo_steps(setup, config), setup.rows, setup.case)

    try:
        for case in cases:
            setup = training._Setup(case, registry, device)
            config = training.train_config(case, "cpu", 0)
            z, b = interleaved(lambda: rate(setup, config, new), lambda: rate(setup, config, old), reps)
            r = row(SECTION, f"{case.label}: {new} thread(s), one per usable core", z, b, "clips/s",
                    baseline=f"{old} thread(s), the load-average choice",
                    note="same count: ratio 1 expected" if old == new else "")
            section.rows.append(r)
            echo(f"  {r.case}: {r.zoo:.2f} clips/s against {r.base:.2f} clips/s, ratio {r.ratio:.3f} "
                 f"({min(r.ratios):.3f}-{max(r.ratios):.3f}), load {loadavg():.2f}")
    finally:
        torch.set_num_threads(before)
    section.load = (start_load, loadavg())
    section.seconds = time.perf_counter() - t_start
    section.notes.append(
        f"The engine's fit (default settings, one epoch) with torch threads set to the usable cores ({new} of "
        f"{os.cpu_count()}, os.sched_getaffinity) against the count the load average gave at the section's start "
        f"({old}, load {start_load:.2f}); clips/s = batch size / median step time; {reps} interleaved repetitions."
    )
    return section
