"""The shared tracking server against the local sqlite store: runs per minute two writers sustain, the
per-epoch logging cost of a remote store against the local one, and the server's memory.

A "run" here is the tracking traffic of a small zoo run without its training: the zoo's tracker
(:class:`zoo.tracking.mlflow.tracker.MlflowTracker`) opens a run with its tags and process record,
logs 60 parameters, ``--epochs`` rows of 12 per-epoch metrics, the final metrics and tags, and ends
it. Two writer processes do that in a loop for ``--seconds`` against each store, the stores taken in
turn (sqlite, server, server, sqlite, ...) so that the machine's load weighs on both alike. The
per-epoch cost is one ``log_metrics`` of one epoch's row, timed in one process against both stores
in alternating blocks; the ratio remote / local is the median of the per-block ratios. The server is
``zoo server`` (one worker) on a real PostgreSQL (tests/pgstack.py), all on this machine.

    .venv/bin/python bench/tracking_server.py              # about 3 minutes on 2 busy cores
    .venv/bin/python bench/tracking_server.py --quick      # the harness only (about 1 minute)
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # pgstack: the PostgreSQL and zoo server the tests start

PARAMS = {f"backbone.setting_{i}": i for i in range(60)}
EPOCH_ROW = {"train.loss": 0.5, "train.genre.loss": 0.5, "val.loss": 0.6, "val.genre.accuracy": 0.7,
             "val.genre.macro_f1": 0.6, "val.genre.weighted_f1": 0.65, "lr": 1e-3, "seconds": 1.0,
             "task_weight.genre": 1.0, "val.genre.top3": 0.9, "val.genre.loss": 0.6, "epoch_time": 1.0}


def one_run(tracker, epochs: int, n: int) -> None:
    run_id = tracker.start_run(f"bench run {n}", {"zoo.spec": "lstm+mel:genre", "zoo.kind": "run"})
    tracker.log_params(run_id, PARAMS)
    for epoch in range(1, epochs + 1):
        tracker.log_metrics(run_id, EPOCH_ROW, step=epoch)
    tracker.log_metrics(run_id, {"test.genre.accuracy": 0.7, "test.genre.macro_f1": 0.6, "best_epoch": 3})
    tracker.set_tags(run_id, {"zoo.dataset": "bench", "zoo.group": "bench"})
    tracker.end_run(run_id, "FINISHED")


def writer(uri: str, experiment: str, epochs: int, seconds: float, start_at: float, out) -> None:
    from zoo.tracking.mlflow.tracker import MlflowTracker
    tracker = MlflowTracker(experiment, uri=uri)
    tracker.experiment_id  # noqa: B018 - the experiment exists before the clock starts
    while time.time() < start_at:
        time.sleep(0.01)
    n, deadline = 0, start_at + seconds
    while time.time() < deadline:
        one_run(tracker, epochs, n)
        n += 1
    out.put(n)


def runs_per_minute(uri: str, epochs: int, seconds: float, tag: str) -> float:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 8.0  # both writers have imported MLflow and opened the store by then
    procs = [ctx.Process(target=writer, args=(uri, f"bench-{tag}", epochs, seconds, start_at, out)) for _ in range(2)]
    for p in procs:
        p.start()
    total = sum(out.get(timeout=seconds + 300) for _ in procs)
    for p in procs:
        p.join()
    return total * 60.0 / seconds


def per_epoch_ratio(remote: str, local: str, blocks: int, calls: int) -> tuple[float, float, list[float]]:
    from zoo.tracking.mlflow.tracker import MlflowTracker
    trackers = {k: MlflowTracker("bench-epoch", uri=u) for k, u in (("remote", remote), ("local", local))}
    runs = {k: t.start_run("bench epoch cost") for k, t in trackers.items()}
    times: dict[str, list[float]] = {"remote": [], "local": []}
    for b in range(blocks):
        for k in (("remote", "local") if b % 2 == 0 else ("local", "remote")):
            t0 = time.perf_counter()
            for i in range(calls):
                trackers[k].log_metrics(runs[k], EPOCH_ROW, step=b * calls + i)
            times[k].append((time.perf_counter() - t0) / calls)
    for k, t in trackers.items():
        t.end_run(runs[k], "FINISHED")
    ratios = [r / l for r, l in zip(times["remote"], times["local"])]
    return statistics.median(times["remote"]), statistics.median(times["local"]), ratios


def rss_mib(pids) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks the harness runs")
    ap.add_argument("--json", metavar="FILE", help="write the numbers as JSON too")
    args = ap.parse_args(argv)
    import pgstack
    why = pgstack.unavailable()
    if why:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    seconds, reps, epochs = (5.0, 1, 3) if args.quick else (20.0, 2, 10)
    blocks, calls = (4, 5) if args.quick else (10, 20)
    work = Path(tempfile.mkdtemp(prefix="zoo-bench-server-"))
    db = pgstack.Postgres().start()
    server = None
    try:
        server = pgstack.Server(db, work / "server-home").start()
        idle = rss_mib(server.pids())
        local = f"sqlite:///{work / 'mlflow.db'}"
        rates: dict[str, list[float]] = {"server": [], "sqlite": []}
        order = ["sqlite", "server", "server", "sqlite"] * reps
        for i, kind in enumerate(order[: 2 * reps]):
            rates[kind].append(runs_per_minute(server.uri if kind == "server" else local, epochs, seconds, f"{kind}{i}"))
        loaded = rss_mib(server.pids())
        remote_s, local_s, ratios = per_epoch_ratio(server.uri, local, blocks, calls)
        doc = {
            "runs_per_minute": {k: statistics.median(v) for k, v in rates.items()},
            "runs_per_minute_all": rates, "epochs_per_run": epochs, "writers": 2, "seconds": seconds,
            "per_epoch_log_ms": {"server": remote_s * 1e3, "sqlite": local_s * 1e3},
            "per_epoch_ratio": statistics.median(ratios), "per_epoch_ratio_range": [min(ratios), max(ratios)],
            "server_rss_mib": {"idle": idle, "after_load": loaded, "processes": len(server.pids())},
            "load_average": os.getloadavg()[0],
        }
    finally:
        if server is not None:
            server.stop()
        db.stop()
    r = doc["runs_per_minute"]
    print(f"runs per minute, 2 writers x {epochs} epochs: server (PostgreSQL) {r['server']:.0f}, sqlite {r['sqlite']:.0f}"
          f" (ratio {r['server'] / r['sqlite']:.2f})")
    e = doc["per_epoch_log_ms"]
    print(f"per-epoch log_metrics: server {e['server']:.1f} ms, sqlite {e['sqlite']:.1f} ms; ratio remote/local "
          f"{doc['per_epoch_ratio']:.2f} ({doc['per_epoch_ratio_range'][0]:.2f}-{doc['per_epoch_ratio_range'][1]:.2f})")
    m = doc["server_rss_mib"]
    print(f"server RSS ({m['processes']} processes): idle {m['idle']:.0f} MiB, after the writers {m['after_load']:.0f} MiB")
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
