"""Where a training step's time goes: cProfile of the engine's loop, and page faults against the bare loop.

    python bench/profile_train.py --backbone lstm [--tiny] [--steps 4] [--threads 1] [--malloc-defaults]

Prints (1) the engine-side functions of ``fit`` by own time (the model's forward and backward
are torch's business and show up as ``run_backward``, ``conv2d``, ...), and (2) for one pass
of each loop: minor page faults, user and system CPU seconds and wall time, from
``getrusage``. Part (2) is how the allocator cost fixed by ``zoo.engine.train.steady_heap``
was found: with glibc's defaults the engine's loop took one to three million page faults more.
"""
from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import training  # noqa: E402

ENGINE = r"zoo/engine|zoo/model|zoo/tasks|lr_scheduler|tqdm/std|optim/optimizer|clip_grad"


def usage() -> tuple[int, float, float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_minflt, r.ru_utime, r.ru_stime, time.perf_counter()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/profile_train.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--backbone", default="lstm", choices=("lstm", "cnn", "ast"))
    p.add_argument("--tiny", action="store_true", help="the tiny probe model (the engine's fixed cost shows)")
    p.add_argument("--steps", type=int, default=0, help="timed steps (default 4, tiny 100)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--malloc-defaults", action="store_true", help="leave glibc's allocator thresholds alone")
    args = p.parse_args(argv)
    if args.malloc_defaults:
        import zoo.engine.train
        zoo.engine.train.steady_heap = lambda: False
    from zoo.engine.device import pick_device
    from zoo.engine.train import fit
    from zoo.registry import Registry
    device = pick_device("cpu", threads=args.threads)
    pool = training.full(frames=args.frames)
    case = next(c for c in pool if c.backbone == args.backbone and c.probe == args.tiny)
    case = replace(case, steps=args.steps or (100 if args.tiny else 4))
    setup = training._Setup(case, Registry(), device)
    config = training.train_config(case, "cpu", args.threads)
    batches = training.bare_batches(setup)
    training.zoo_steps(setup, config)  # warm: first-use imports, allocator, kernels

    for name, run in (("zoo", lambda: training.zoo_steps(setup, config)),
                      ("bare", lambda: training.bare_steps(setup, batches, config))):
        a = usage()
        steps = run()
        b = usage()
        print(f"{name:4s}: {b[0] - a[0]:>9,} minor page faults, user {b[1] - a[1]:6.2f} s, sys {b[2] - a[2]:5.2f} s, "
              f"wall {b[3] - a[3]:6.2f} s, median step {1e3 * sorted(steps)[len(steps) // 2]:8.2f} ms", flush=True)

    model = setup.model()
    profile = cProfile.Profile()
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        profile.enable()
        fit(model, setup.splits["train"], setup.splits["val"], config, device, progress=True)
        profile.disable()
    text = io.StringIO()
    stats = pstats.Stats(profile, stream=text)
    stats.sort_stats("tottime").print_stats(ENGINE, 25)
    print(f"\n{case.label}: {len(setup.rows)} steps of fit under cProfile, engine-side functions by own time")
    print(text.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
