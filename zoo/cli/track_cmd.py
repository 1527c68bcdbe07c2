"""``zoo ui`` (the MLflow web UI on the zoo's store) and ``zoo compare`` (a table of tracked runs)."""
from __future__ import annotations

import json

from .argtypes import PORT


def register(sub) -> None:
    ui = sub.add_parser("ui", help="open the MLflow web UI on the zoo's run store",
                        description="Run `mlflow server` (one worker) on the zoo's tracking store and artifact "
                                    "folder, print its address, and serve until Ctrl-C.")
    ui.add_argument("--port", type=PORT, default=5000, help="port (default 5000)")
    ui.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1: this machine only)")
    ui.add_argument("--background", action="store_true", help="start it, print its pid and return")
    ui.set_defaults(func=run_ui)
    cmp = sub.add_parser("compare", help="table of tracked runs: spec, data, seeds, test metrics",
                         description="Read the MLflow store and print one row per composition/data/settings: "
                                     "test metrics as mean ± 95%% interval over its seeds, and its run ids "
                                     "(latest first).")
    cmp.add_argument("--experiment", default="music-zoo", help="MLflow experiment (default: music-zoo)")
    cmp.add_argument("--spec", metavar="GLOB", help="only specs matching this pattern, e.g. 'lstm+*:genre'")
    cmp.add_argument("--failed", action="store_true", help="list the runs that failed, with the reason")
    cmp.add_argument("--json", action="store_true", help="print JSON")
    cmp.set_defaults(func=run_compare)


def run_ui(args, registry) -> int:
    from ..paths import tracking_uri, zoo_home
    from ..tracking.mlflow import ui
    uri = tracking_uri()
    if uri.startswith(("http://", "https://", "databricks")):
        from ..errors import ConfigError
        raise ConfigError(f"MLFLOW_TRACKING_URI is {uri}, a tracking server that already has its own UI: open it "
                          f"in a browser; `zoo ui` serves a local store (unset MLFLOW_TRACKING_URI for the zoo's)")
    url = ui.address(args.host, args.port)
    log_path = zoo_home() / "mlflow" / f"ui-{args.port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        proc = ui.start_server(uri, args.host, args.port, log=log)
    print(f"starting the MLflow UI on {uri} (log: {log_path}) ...", flush=True)
    try:
        ui.wait_ready(proc, url, log_path=log_path)
    except BaseException:
        ui.stop(proc)
        raise
    if args.background:
        print(f"MLflow UI: {url}  (pid {proc.pid}; stop it with: kill -- -{proc.pid})", flush=True)
        return 0
    print(f"MLflow UI: {url}  (Ctrl-C stops it)", flush=True)
    try:
        proc.wait()
    except KeyboardInterrupt:
        print("stopping the MLflow UI", flush=True)
    finally:
        ui.stop(proc)
    return 0


def run_compare(args, registry) -> int:
    from ..engine.reports import jsonable
    from ..tracking.mlflow import compare
    if args.failed:
        rows = compare.failed_runs(args.experiment, args.spec)
        if args.json:
            print(json.dumps(rows, indent=2))
        elif not rows:
            print("no failed runs")
        for r in rows if not args.json else []:
            print(f"{r['run_id']}  {r['spec'] or r['name']}: {r['reason']}")
        return 0
    rows = compare.compare_rows(args.experiment, args.spec)
    if args.json:
        print(json.dumps(jsonable(rows), indent=2, default=str))
    else:
        print(compare.format_table(rows))
    return 0
