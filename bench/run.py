"""Run Music Zoo's benchmarks and print (and optionally write) a table of zoo / baseline ratios.

    python bench/run.py [--quick] [--out docs/benchmarks.md] [--only training,loading] [--threads N]

Sections: training (engine vs bare loop, per backbone), packing (the LSTM's fast CPU path
against its packed path, alone and in training), threads (torch threads: one per usable core
against the old load-average choice), extraction (extract_audio vs a plain
librosa loop, and the caches), loading (pack vs one .npy per clip), memory (peak of each, in
fresh processes). ``--quick`` uses tiny sizes: it checks that everything runs, its timings mean
nothing. Exit status 1 when a section failed (the others still run and are reported).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, replace
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: make the repository root importable so that ``bench`` is a package.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common, extraction, loading, memory, packing, precision, report, threads, training  # noqa: E402

SECTIONS = ("training", "precision", "packing", "threads", "extraction", "loading", "memory")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of the harness (timings meaningless)")
    p.add_argument("--out", type=Path, help="write the results into this Markdown file (e.g. docs/benchmarks.md)")
    p.add_argument("--json", type=Path, help="also write every measurement as JSON here")
    p.add_argument("--only", default=",".join(SECTIONS),
                   help=f"comma-separated sections (default: all of {', '.join(SECTIONS)})")
    p.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"), help="device for training (default cpu)")
    p.add_argument("--precision", default="fp32,bf16",
                   help="training section: the engine against the bare loop at each of these precisions (default "
                        "fp32,bf16; bf16 is skipped on a CPU without native bf16)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads for both loops; 0: the engine's automatic choice (usable cores)")
    p.add_argument("--reps", type=int, default=0, help="interleaved repetitions (default 3, quick 2)")
    p.add_argument("--frames", type=int, default=300, help="frames per training clip (mel 128 x FRAMES; default 300)")
    p.add_argument("--backbones", default="lstm,cnn,ast", help="backbones to train (default lstm,cnn,ast)")
    p.add_argument("--workdir", type=Path, help="folder for the generated files (default: a temporary folder)")
    p.add_argument("--malloc-defaults", action="store_true",
                   help="leave glibc's allocator thresholds at their defaults (the engine fixes them for CPU "
                        "training): reproduces the numbers measured before that change")
    args = p.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown or not chosen:
        p.error(f"--only {args.only!r}: unknown section(s) {', '.join(unknown) or '(none given)'}; "
                f"choose from {', '.join(SECTIONS)}")
    args.only = chosen
    if args.reps < 0 or args.threads < 0 or args.frames < 2:
        p.error("--reps and --threads must be >= 0 and --frames >= 2")
    args.reps = args.reps or (2 if args.quick else 3)
    return args


def train_cases(args: argparse.Namespace) -> list[training.TrainCase]:
    wanted = [b.strip() for b in args.backbones.split(",") if b.strip()]
    cases = training.QUICK if args.quick else training.full(frames=args.frames)
    known = {c.backbone for c in cases}
    bad = [b for b in wanted if b not in known]
    if bad:
        raise SystemExit(f"bench/run.py: --backbones {args.backbones!r}: {', '.join(bad)} not benchmarked; "
                         f"choose from {', '.join(sorted(known))}")
    return [c for c in cases if c.backbone in wanted]


def run_sections(args: argparse.Namespace, device, workdir: Path) -> tuple[list[common.Section], list[str]]:
    sections, failures = [], []
    cases = train_cases(args)
    extract_case = replace(extraction.QUICK if args.quick else extraction.FULL, reps=args.reps)
    load_cases = loading.QUICK if args.quick else loading.FULL

    def training_section():
        return training.run(cases, device=device, device_name=args.device, threads=args.threads, reps=args.reps,
                            precisions=[p.strip() for p in args.precision.split(",") if p.strip()])

    def precision_section():
        case = precision.QUICK if args.quick else replace(precision.FULL, frames=args.frames,
                                                          backbones=tuple(c.backbone for c in cases if not c.probe))
        return precision.run(replace(case, reps=args.reps), device.device)

    def packing_section():
        return packing.run(replace(packing.QUICK if args.quick else packing.FULL, reps=args.reps,
                                   **({} if args.quick else {"frames": args.frames})))

    def threads_section():
        return threads.run([c for c in cases if not c.probe], reps=args.reps)

    def extraction_section():
        folder = workdir / "extraction"
        folder.mkdir(parents=True, exist_ok=True)
        return extraction.run(extract_case, folder)

    def loading_section():
        folder = workdir / "loading"
        folder.mkdir(parents=True, exist_ok=True)
        return loading.run(load_cases, folder, args.reps)

    def memory_section():
        folder = workdir / "memory"
        folder.mkdir(parents=True, exist_ok=True)
        n, seconds = (2, 3.0) if args.quick else (4, 30.0)
        audio = extraction.write_clips(folder / "audio", n, seconds, seed=7)
        import torch
        # The children use the thread count this process settled on, not a new automatic choice.
        return memory.run(train_cases=[c for c in cases if not c.probe], device_name=args.device,
                          threads=torch.get_num_threads(), audio=audio,
                          load_case=load_cases[0], workdir=folder, malloc_defaults=args.malloc_defaults)

    runners = {"training": training_section, "precision": precision_section, "packing": packing_section, "threads": threads_section,
               "extraction": extraction_section,
               "loading": loading_section, "memory": memory_section}
    for name in args.only:
        print(f"[{name}] load average {common.loadavg():.2f}", flush=True)
        try:
            sections.append(runners[name]())
        except Exception:  # one broken section must not cost the others' results: report it, fail at the end
            text = traceback.format_exc()
            print(text, file=sys.stderr, flush=True)
            failures.append(f"{name}: {text.strip().splitlines()[-1]}")
            failed = common.Section(name)
            failed.notes.append(f"FAILED: {failures[-1]}")
            sections.append(failed)
    return sections, failures


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.malloc_defaults:
        import zoo.engine.train
        zoo.engine.train.steady_heap = lambda: False  # measurement of the engine as it was before
    from zoo.engine.device import pick_device
    device = pick_device(args.device, threads=args.threads)
    info = common.machine(device)
    info["mode"] = ("quick (tiny sizes)" if args.quick else "full") + (
        ", glibc malloc defaults (--malloc-defaults)" if args.malloc_defaults else "")
    print("machine:\n" + report.machine_text(info), flush=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="zoo-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        sections, failures = run_sections(args, device, workdir)
    info["load_average_end"] = f"{common.loadavg():.2f}"
    info["seconds"] = round(time.perf_counter() - t0)
    print("\n" + report.text_table(sections), flush=True)
    for s in sections:
        for note in s.notes:
            print(f"[{s.name}] {note}")
    if args.out:
        report.write_markdown(args.out, report.markdown(info, sections, quick=args.quick))
        print(f"written: {args.out}")
    if args.json:
        doc = {"machine": info, "sections": [{"name": s.name, "load": s.load, "seconds": s.seconds, "notes": s.notes,
                                              "rows": [dict(asdict(r), ratio=r.ratio) for r in s.rows]}
                                             for s in sections]}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2, default=str))
        print(f"written: {args.json}")
    if failures:
        print("FAILED sections: " + "; ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
