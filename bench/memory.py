"""Peak memory of each benchmark's work, zoo and baseline, each in its own fresh process.

How: a child process (``python -m bench.memory CASE JSON``) imports what it needs, builds its
inputs and warms up; then it resets the kernel's high-water mark of its resident memory
(writing ``5`` to ``/proc/self/clear_refs``), does the work once, and reports
``VmHWM - VmRSS before``: the growth of resident memory at its peak, everything included
(numpy, torch, librosa, the allocator's slack). Where the reset is not allowed it reports
``ru_maxrss`` after minus before, which can only miss a peak lower than an earlier one.
For numpy-only work (extraction, loading) it then repeats the work under ``tracemalloc`` and
reports the peak of Python-level allocations (numpy registers its buffers with tracemalloc;
torch does not, so training reports resident memory only).
"""
from __future__ import annotations

import gc
import json
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable

from .common import ROOT, Row, Section, loadavg

SECTION = "memory"
MIB = 2**20


def _status_kib(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def measure(work: Callable[[], Any], *, traced: bool) -> dict[str, Any]:
    """Peak resident growth of one ``work()`` call and, if ``traced``, tracemalloc's peak of another."""
    gc.collect()
    before_rss = _status_kib("VmRSS")
    reset = before_rss is not None and _reset_peak()
    before_max = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    work()  # the high-water mark keeps the peak, whether or not the result is still held
    if reset:
        rss = (_status_kib("VmHWM") - before_rss) * 1024 / MIB
        method = "VmHWM after reset - VmRSS before"
    else:
        rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before_max) * 1024 / MIB
        method = "ru_maxrss delta"
    out = {"rss_mib": max(rss, 0.0), "method": method, "traced_mib": None}
    if traced:
        gc.collect()
        tracemalloc.start()
        work()
        out["traced_mib"] = tracemalloc.get_traced_memory()[1] / MIB
        tracemalloc.stop()
    return out


# -- the children's work ---------------------------------------------------------------------------
def _train(args: dict[str, Any], of_zoo: bool) -> dict[str, Any]:
    from zoo.engine import train as engine_train
    from zoo.engine.device import pick_device
    if args.get("malloc_defaults"):
        engine_train.steady_heap = lambda: False
    from zoo.registry import Registry

    from . import training
    case = training.TrainCase(**args["case"])
    device = pick_device(args["device"], threads=args["threads"])
    setup = training._Setup(case, Registry(), device)
    config = training.train_config(case, args["device"], args["threads"])
    # Modules the engine imports on first use (metrics, progress bar): loaded before measuring, so
    # that their code is not counted as training memory.
    import scipy.stats  # noqa: F401
    import sklearn.metrics  # noqa: F401
    import tqdm.auto  # noqa: F401
    if of_zoo:
        return measure(lambda: (setup.splits, training.zoo_steps(setup, config)), traced=False)
    # The same allocator settings as the engine's process, so that only the loops differ.
    if not args.get("malloc_defaults"):
        engine_train.steady_heap()
    return measure(lambda: training.bare_steps(setup, training.bare_batches(setup), config), traced=False)


def _extract(args: dict[str, Any], of_zoo: bool) -> dict[str, Any]:
    import tempfile

    from . import extraction
    paths = [Path(p) for p in args["paths"]]
    feats = extraction.features()
    workdir = Path(args["workdir"])
    extraction.plain(paths[:1])  # compile and build the filter banks outside the measurement
    extraction.zoo(paths[:1], feats, Path(tempfile.mkdtemp(dir=workdir)), workers=1)
    if of_zoo:
        return measure(lambda: extraction.zoo(paths, feats, Path(tempfile.mkdtemp(dir=workdir)), workers=1),
                       traced=True)
    return measure(lambda: extraction.plain(paths), traced=True)


def _load(args: dict[str, Any], of_zoo: bool) -> dict[str, Any]:
    from . import loading
    if of_zoo:
        return measure(lambda: loading.read_packed(Path(args["pack"])), traced=True)
    return measure(lambda: loading.read_npy([Path(f) for f in args["files"]]), traced=True)


CHILDREN = {
    "train-zoo": lambda a: _train(a, True), "train-bare": lambda a: _train(a, False),
    "extract-zoo": lambda a: _extract(a, True), "extract-plain": lambda a: _extract(a, False),
    "load-pack": lambda a: _load(a, True), "load-npy": lambda a: _load(a, False),
}


def child(kind: str, args: dict[str, Any], timeout: float = 900) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter; its JSON result."""
    proc = subprocess.run([sys.executable, "-m", "bench.memory", kind, json.dumps(args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        raise RuntimeError(f"memory child {kind} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def pair(name: str, case: str, zoo_kind: str, base_kind: str, args: dict[str, Any], baseline: str) -> list[Row]:
    """Rows for resident (and, when measured, traced) peak memory of the zoo and its baseline."""
    z, b = child(zoo_kind, args), child(base_kind, args)
    rows = [Row(SECTION, f"{name}: {case}, peak resident growth", z["rss_mib"], b["rss_mib"], "MiB",
                (z["rss_mib"] / b["rss_mib"] if b["rss_mib"] else float("nan"),), baseline=baseline,
                higher_is_better=False, note=z["method"])]
    if z["traced_mib"] is not None:
        rows.append(Row(SECTION, f"{name}: {case}, tracemalloc peak", z["traced_mib"], b["traced_mib"], "MiB",
                        (z["traced_mib"] / b["traced_mib"] if b["traced_mib"] else float("nan"),),
                        baseline=baseline, higher_is_better=False))
    return rows


def run(*, train_cases: list, device_name: str, threads: int, audio: list[Path], load_case: Any,
        workdir: Path, malloc_defaults: bool = False, echo=print) -> Section:
    """Peak memory of training (per backbone), extraction and loading, zoo and baseline."""
    from dataclasses import asdict

    from . import loading
    section = Section(SECTION)
    start_load, t_start = loadavg(), time.perf_counter()
    for case in train_cases:
        args = {"case": asdict(case), "device": device_name, "threads": threads, "malloc_defaults": malloc_defaults}
        section.rows += pair("training", case.label, "train-zoo", "train-bare", args, "bare PyTorch loop")
        echo(f"  training {case.backbone}: zoo {section.rows[-1].zoo:.0f} MiB, bare {section.rows[-1].base:.0f} MiB")
    args = {"paths": [str(p) for p in audio], "workdir": str(workdir)}
    section.rows += pair("extraction", f"{len(audio)} clips, in-process", "extract-zoo", "extract-plain", args,
                         "plain librosa loop")
    echo(f"  extraction: zoo {section.rows[-2].zoo:.0f} MiB, plain {section.rows[-2].base:.0f} MiB (resident)")
    pack, files = loading.write_both(load_case, workdir / "memory-load")
    args = {"pack": str(pack), "files": [str(f) for f in files]}
    section.rows += pair("loading", f"{load_case.clips} clips of {load_case.bins}x~{load_case.frames}", "load-pack",
                         "load-npy", args, "one .npy per clip")
    echo(f"  loading: pack {section.rows[-2].zoo:.0f} MiB, npy {section.rows[-2].base:.0f} MiB (resident)")
    section.load = (start_load, loadavg())
    section.seconds = time.perf_counter() - t_start
    section.notes.append(
        "Each number comes from a fresh process that has already built its inputs and warmed up: the growth "
        "of its resident memory at the peak of the work (the high-water mark VmHWM, reset just before, minus "
        "VmRSS before), and for numpy-only work the peak of tracemalloc (Python and numpy allocations). "
        "Training: the zoo's row includes building its resident splits, the bare row its prebuilt batches; "
        "the modules the engine imports lazily (scikit-learn, scipy.stats, tqdm) are imported before measuring. "
        "One measurement each (memory is not disturbed by load the way time is)."
    )
    return section


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in CHILDREN:
        print(f"usage: python -m bench.memory {{{','.join(CHILDREN)}}} JSON", file=sys.stderr)
        return 2
    print(json.dumps(CHILDREN[argv[0]](json.loads(argv[1]))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
