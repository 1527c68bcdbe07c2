"""Data bigger than memory: peak RSS and throughput of training epochs, streamed against resident.

Synthetic feature shards: random float32 clips ``[F, T]`` (default 128 x 259, a 6 s mel at the
lab's hop) written once per size with :class:`zoo.data.pack.PackWriter` in shards of
``--shard`` bytes, at 1x and 8x a forced memory budget (``--budget``, default 64 MiB): the
training split alone is that many bytes, plus small validation and test splits (64 and 16 clips).

Every case runs in a fresh child process (``python -m bench.streaming --child JSON``) that opens
the pack, fits the normaliser, builds the splits with :func:`zoo.engine.batches.make_splits` and
trains ``--epochs`` epochs with :func:`zoo.engine.train.fit`, exactly as ``zoo run`` does:

* ``streamed``: the pack opened clip by clip (``Prepared.x`` a :class:`~zoo.data.pack.PackFile`,
  every shard checked once) and the budget forced: the training split is over it, so the rule
  picks the streamed path (batches read, normalised and padded in a prefetching thread).
* ``resident``: the same pack read whole (``read_pack``) and no budget forced (a quarter of RAM):
  the training split is padded once into one tensor.

Peak RSS is the child's ``ru_maxrss`` (the prefetcher is a thread, so there are no worker
processes to add); the growth column is the high-water mark after a reset just before the data
is opened minus the resident memory then (the torch import, ~300 MiB, is common to every case).
Throughput: training clips over the seconds of the median epoch after the first (validation of
64 clips included), streamed against resident on the 8x data. Goals (issue 15): peak RSS 8x / 1x
<= 1.3; streamed / resident throughput on the same data >= 0.8.

    .venv/bin/python bench/streaming.py --threads 1         # stats backbone, 64 MiB: ~0.6 GB of shards at 8x
    .venv/bin/python bench/streaming.py --threads 1 --backbone cnn --budget 16MiB --epochs 2
    .venv/bin/python bench/streaming.py --quick             # checks the harness (16 MiB, one repetition)
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, Row, Section, loadavg  # noqa: E402

SECTION = "streaming"
MIB = 2**20
CLASSES = tuple(f"genre{i}" for i in range(10))
N_VAL, N_TEST = 64, 16


def write_shards(path: Path, n_train: int, bins: int, frames: int, shard: int, seed: int = 0) -> dict[str, Any]:
    """A pack of ``n_train + N_VAL + N_TEST`` random clips (lengths 90-100 % of ``frames``), written
    one clip at a time; the labels and splits go to its meta."""
    from zoo.data.pack import PackWriter
    rng = np.random.default_rng(seed)
    n = n_train + N_VAL + N_TEST
    with PackWriter(path, shard_bytes=shard) as w:
        for _ in range(n):
            t = int(rng.integers(int(0.9 * frames), frames + 1))
            w.add(rng.normal(-40.0, 15.0, size=(bins, t)).astype(np.float32))
        labels = rng.integers(0, len(CLASSES), size=n).tolist()
        splits = ["train"] * n_train + ["val"] * N_VAL + ["test"] * N_TEST
        w.close({"labels": labels, "splits": splits})
    return {"path": str(path), "bytes": path.stat().st_size}


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def child(args: dict[str, Any]) -> dict[str, Any]:
    """One case in this (fresh) process: open the data, build the splits, train one epoch."""
    import torch
    from zoo.data.pack import open_pack, read_pack
    from zoo.data.preparedset import Prepared
    from zoo.engine.batches import Normaliser, make_splits
    from zoo.engine.device import pick_device
    from zoo.engine.seeds import seed_everything
    from zoo.engine.train import fit
    from zoo.engine.trainconfig import TrainConfig
    from zoo.model.building import build_components
    from zoo.model.model import build_model
    from zoo.registry import Registry
    from zoo.spec import parse_spec

    if args["threads"]:
        torch.set_num_threads(args["threads"])
    device = pick_device("cpu", threads=args["threads"])
    registry = Registry()
    settings = {"backbone": dict(args["backbone_settings"]), "mel": {"n_mels": args["bins"]}}
    built = build_components(parse_spec(f"{args['backbone']}+mel:genre", registry), registry, settings)
    seed_everything(0)
    schemas = {n: t.schema(CLASSES) for n, t in built.tasks.items()}
    model = build_model(built.make_backbone(registry), built.tasks, schemas).to(device.device)
    import sklearn.metrics  # noqa: F401  (imported lazily by the metrics: not data)
    import tqdm.auto  # noqa: F401
    try:
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        reset = False
    before = _status_kib("VmRSS")
    t_open = time.perf_counter()
    if args["mode"] == "streamed":
        x: Any = open_pack(Path(args["pack"]))  # every shard checked once, in bounded chunks
        meta = x.meta
        budget = args["budget"]
    else:
        x, meta = read_pack(Path(args["pack"]))
        budget = None
    n = len(x)
    prepared = Prepared(ids=[f"c{i}" for i in range(n)], x=x, splits=np.array(meta["splits"]),
                        labels=np.array(meta["labels"], dtype=np.int64), classes=CLASSES, targets={},
                        rate="frames", fingerprint="bench", description="bench shards")
    norm = Normaliser.fit(prepared.clips(prepared.indices("train")))
    splits = make_splits(prepared, built.tasks, norm, device.device, budget)
    setup = time.perf_counter() - t_open
    config = TrainConfig(epochs=args["epochs"], batch_size=args["batch_size"], patience=0, warmup=0.0)
    with open(os.devnull, "w") as devnull:
        old, sys.stderr = sys.stderr, devnull
        try:
            result = fit(model, splits["train"], splits["val"], config, device, seed=0, progress=False)
        finally:
            sys.stderr = old
    # the median epoch after the first (allocator and page cache warm)
    seconds = float(np.median([r["seconds"] for r in result.history[1:]] or [result.history[0]["seconds"]]))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"mode": args["mode"], "paths": {k: v.path for k, v in splits.items()}, "train_clips": len(splits["train"]),
            "epoch_seconds": seconds, "clips_per_s": len(splits["train"]) / seconds, "setup_seconds": setup,
            "peak_rss_mib": peak / 1024, "growth_mib": ((_status_kib("VmHWM") - before) / 1024) if reset else None,
            "train_loss": result.history[-1]["train.loss"]}


def _run_child(args: dict[str, Any]) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "bench.streaming", "--child", json.dumps(args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode:
        raise RuntimeError(f"bench.streaming child failed ({args['mode']}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(*, budget: int = 64 * MIB, factors: tuple[float, float] = (1.0, 8.0), bins: int = 128, frames: int = 259,
        shard: int = 16 * MIB, backbone: str = "stats", backbone_settings: dict | None = None, batch_size: int = 32,
        threads: int = 0, reps: int = 1, epochs: int = 3, workdir: Path | None = None,
        say=print) -> tuple[Section, list[dict]]:
    """The section: peak RSS at ``factors`` x ``budget`` (streamed), and throughput streamed / resident on
    the larger data (``factors[1]`` x ``budget``, which a resident split must fit in RAM)."""
    section = Section(SECTION)
    load0, t0 = loadavg(), time.perf_counter()
    clip_bytes = bins * 0.95 * frames * 4
    backbone_settings = {"channels": (8, 16)} if backbone_settings is None and backbone == "cnn" else (backbone_settings or {})
    own = tempfile.TemporaryDirectory(prefix="zoo-bench-stream-") if workdir is None else None
    root = Path(workdir or own.name)
    root.mkdir(parents=True, exist_ok=True)
    records: list[dict] = []
    try:
        packs = {}
        for f in factors:
            n_train = int(np.ceil(f * budget / clip_bytes))
            packs[f] = write_shards(root / f"x{f:g}.pack", n_train, bins, frames, shard)
            say(f"shards for {f:g}x: {n_train} training clips, {packs[f]['bytes'] / MIB:.0f} MiB on disk")
        common = {"bins": bins, "backbone": backbone, "backbone_settings": backbone_settings,
                  "batch_size": batch_size, "threads": threads, "budget": budget, "epochs": epochs}

        def case(f: float, mode: str) -> dict:
            out = _run_child(dict(common, pack=packs[f]["path"], mode=mode))
            out["factor"] = f
            records.append(out)
            say(f"  {f:g}x {mode}: peak RSS {out['peak_rss_mib']:.0f} MiB, {out['clips_per_s']:.1f} clips/s, "
                f"paths {out['paths']}")
            return out

        lo, hi = factors
        rss_lo, rss_hi, speed_s, speed_r = [], [], [], []
        for rep in range(reps):  # interleaved: the order of the cases turns around every repetition
            order = [(lo, "streamed"), (hi, "streamed"), (hi, "resident")]
            for f, mode in (order if rep % 2 == 0 else order[::-1]):
                o = case(f, mode)
                if mode == "resident":
                    speed_r.append(o["clips_per_s"])
                elif f == lo:
                    rss_lo.append(o["peak_rss_mib"])
                else:
                    rss_hi.append(o["peak_rss_mib"])
                    speed_s.append(o["clips_per_s"])
        big = next(r for r in records if r["factor"] == hi)
        growth = {f: [r["growth_mib"] or 0 for r in records if r["mode"] == "streamed" and r["factor"] == f]
                  for f in factors}
        resident_rss = [r["peak_rss_mib"] for r in records if r["mode"] == "resident"]
        note = (f"budget {budget / MIB:g} MiB; growth after the torch import {lo:g}x {np.median(growth[lo]):.0f} MiB, "
                f"{hi:g}x {np.median(growth[hi]):.0f} MiB (resident {hi:g}x: peak {np.median(resident_rss):.0f} MiB)")
        section.rows.append(Row(SECTION, f"peak RSS of an epoch, streamed, data {hi:g}x / {lo:g}x the budget",
                                float(np.median(rss_hi)), float(np.median(rss_lo)), "MiB",
                                tuple(h / l for h, l in zip(rss_hi, rss_lo)), baseline=f"streamed at {lo:g}x",
                                goal=1.3, higher_is_better=False, note=note))
        section.rows.append(Row(SECTION, f"throughput of an epoch, {big['train_clips']} clips ({hi:g}x): streamed / "
                                f"resident", float(np.median(speed_s)), float(np.median(speed_r)), "clips/s",
                                tuple(s / r for s, r in zip(speed_s, speed_r)), baseline="resident split",
                                goal=0.8, note=f"{backbone} {backbone_settings}, batch {batch_size}"))
        section.notes.append(
            f"Synthetic shards: float32 clips {bins} x {int(0.9 * frames)}-{frames}, shards of {shard / MIB:g} MiB; "
            f"the training split is {lo:g}x and {hi:g}x the forced budget of {budget / MIB:g} MiB, plus {N_VAL} "
            f"validation and {N_TEST} test clips; {epochs} epoch(s) of zoo.engine.train.fit in a fresh process per case "
            f"(throughput: the median epoch after the first, validation of {N_VAL} clips included); "
            f"torch threads {threads or 'the engine default'}; "
            f"{reps} repetition(s), interleaved.")
    finally:
        if own is not None:
            own.cleanup()
    section.load = (load0, loadavg())
    section.seconds = time.perf_counter() - t0
    return section, records


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--budget", default="64MiB", help="the forced memory budget (default 64MiB)")
    p.add_argument("--factors", default="1,8", help="data sizes in budgets, low,high (default 1,8)")
    p.add_argument("--shard", default="16MiB", help="shard size of the synthetic packs (default 16MiB)")
    p.add_argument("--backbone", default="stats", help="stats (default: the data path dominates) or cnn (small)")
    p.add_argument("--epochs", type=int, default=3,
                   help="epochs per case; throughput: the median epoch after the first (default 3)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=0, help="torch threads in the children (0: the engine's choice)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="16 MiB budget, one repetition: checks the harness")
    p.add_argument("--json", type=Path, help="also write the raw records here")
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    from zoo.data.preparedset import parse_budget
    budget = parse_budget("16MiB" if args.quick else args.budget)
    lo, hi = (float(v) for v in args.factors.split(","))
    section, records = run(budget=budget, factors=(lo, hi), shard=parse_budget(args.shard), backbone=args.backbone,
                           batch_size=args.batch_size, threads=args.threads, reps=1 if args.quick else args.reps,
                           epochs=args.epochs)
    print(f"\n{'case':<72} {'zoo':>10} {'baseline':>10} {'ratio':>7}  goal")
    for r in section.rows:
        verdict = {True: "met", False: "MISSED", None: "-"}[r.meets_goal]
        sign = "<=" if not r.higher_is_better else ">="
        print(f"{r.case:<72} {r.zoo:>10.1f} {r.base:>10.1f} {r.ratio:>7.3f}  {sign} {r.goal}: {verdict}  "
              f"({', '.join(f'{v:.3f}' for v in r.ratios)}) {r.note}")
    for n in section.notes:
        print("-", n)
    if args.json:
        args.json.write_text(json.dumps({"rows": [r.__dict__ for r in section.rows], "records": records}, indent=2,
                                        default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
