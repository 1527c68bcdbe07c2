"""``zoo ui`` (the MLflow web UI on the zoo's store) and ``zoo compare`` (a table of tracked runs)."""
from __future__ import annotations

import json

from ..processes import StopSignal, stop_signals
from .argtypes import PORT
from ..tracking.credentials import redact_uri


def register(sub) -> None:
    ui = sub.add_parser("ui", help="open the MLflow web UI on the zoo's run store",
                        description="Run `mlflow server` (one worker) on the zoo's tracking store and artifact "
                                    "folder, print its address, and serve until Ctrl-C, SIGTERM or SIGHUP (each "
                                    "stops the server and frees the port). Runs left RUNNING by a process that "
                                    "is gone are first ended KILLED, with the reason. With MLFLOW_TRACKING_URI "
                                    "set to a tracking server (http://HOST:PORT, e.g. zoo server), it prints "
                                    "that server's addresses instead and starts none.")
    ui.add_argument("--port", type=PORT, default=5000, help="port (default 5000)")
    ui.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1: this machine only)")
    ui.add_argument("--background", action="store_true", help="start it, print its pid and return")
    ui.add_argument("--experiment", default="music-zoo",
                    help="the experiment whose address and newest run's address are printed (default: music-zoo)")
    ui.set_defaults(func=run_ui)
    srv = sub.add_parser("server", help="serve one MLflow tracking server on a database for every node",
                         description="Run `mlflow server` on a database (PostgreSQL for a team or a cluster) with "
                                     "the artifacts served through it (--serve-artifacts), one worker, and this "
                                     "machine's names allowed as Host; then every node sets "
                                     "MLFLOW_TRACKING_URI=http://HOST:PORT (docs/scale.md). The database URI is "
                                     "passed to the server in its environment, never on a command line, and shown "
                                     "without its password; keep the password in PGPASSWORD or ~/.pgpass. Serves "
                                     "until Ctrl-C, SIGTERM or SIGHUP.")
    srv.add_argument("--db", metavar="URI", default=None,
                     help="the database, e.g. postgresql://mlflow@dbhost:5432/mlflow (default: $MLFLOW_BACKEND_STORE_URI)")
    srv.add_argument("--artifacts", metavar="DIR_OR_URI",
                     help="where the server keeps artifacts: a folder on its machine or s3://... "
                          "(default: ZOO_HOME/mlflow/served-artifacts)")
    srv.add_argument("--host", default="0.0.0.0",
                     help="interface to listen on (default 0.0.0.0: reachable from the other nodes)")
    srv.add_argument("--port", type=PORT, default=5000, help="port (default 5000)")
    srv.add_argument("--workers", type=PORT, default=1, help="web worker processes (default 1: about 0.5 GB)")
    srv.add_argument("--allowed-hosts", default="", metavar="LIST",
                     help="more Host headers to accept, comma-separated (e.g. 'mlflow.lab.org:*'); this machine's "
                          "names and addresses on --port are always accepted")
    srv.add_argument("--background", action="store_true", help="start it, print its pid and return")
    srv.set_defaults(func=run_server)
    cmp = sub.add_parser("compare", help="table of tracked runs: spec, data, seeds, test metrics",
                         description="Read the MLflow store and print one row per composition/data/settings: "
                                     "test metrics as mean ± 95% interval over its seeds, and its run ids "
                                     "(latest first); then the unfinished runs in their own section. A run "
                                     "still RUNNING whose process on this host is gone (killed, OOM, crash) "
                                     "is first ended KILLED with the reason.")
    cmp.add_argument("--experiment", default="music-zoo", help="MLflow experiment (default: music-zoo)")
    cmp.add_argument("--spec", metavar="GLOB", help="only specs matching this pattern, e.g. 'lstm+*:genre'")
    which = cmp.add_mutually_exclusive_group()
    which.add_argument("--failed", action="store_true",
                       help="list the runs that failed or were killed, with the reason")
    which.add_argument("--unfinished", action="store_true",
                       help="list only the unfinished runs: running, or found dead and ended KILLED now")
    cmp.add_argument("--sort", metavar="METRIC",
                     help="order the rows by this test metric's mean, best first (e.g. accuracy, genre.macro_f1, "
                          "valence.mae: errors lowest first); default: latest first")
    cmp.add_argument("--runs", action="store_true",
                     help="list every run of each row (seed and full run id, which other commands accept)")
    cmp.add_argument("--baseline", action="store_true",
                     help="beside each row, the stats baseline's score on the same data, split and task (the "
                          "latest finished, full stats+ run: never a sweep trial or a --limit run; named below the "
                          "table), and NOT ABOVE where the row's mean (with seeds: its interval's lower end) does "
                          "not beat it; rows with no baseline on their data say so and how to train one")
    cmp.add_argument("--sweep", metavar="RUN", help="the leaderboard of the sweep RUN (zoo sweep; its id or a unique prefix): every trial, best first")
    cmp.add_argument("--json", action="store_true", help="print JSON (each row lists run_ids and run_seeds); "
                                                         "the same as --format json")
    cmp.add_argument("--format", choices=("table", "csv", "json"), default="table",
                     help="table (default: fits 120 columns, the data as D1, D2... explained below it), csv (one "
                          "line per row, each metric's mean, ci95 and n: for scripts) or json")
    cmp.add_argument("--wide", action="store_true",
                     help="the table with every column in full (data description, full run ids), however wide")
    cmp.set_defaults(func=run_compare)


def run_ui(args, registry, workspace) -> int:
    from ..tracking.mlflow import ui
    uri = workspace.tracking_uri
    if uri.startswith(("http://", "https://")):
        return _remote_ui(uri, args.experiment)
    if uri.startswith("databricks"):
        from ..errors import ConfigError
        raise ConfigError(f"MLFLOW_TRACKING_URI is {redact_uri(uri)}: Databricks has its own UI, open it in a "
                          f"browser; `zoo ui` serves a local store (unset MLFLOW_TRACKING_URI for the zoo's)")
    _end_ghost_runs(uri)
    url = ui.address(args.host, args.port)
    shared = _shared_address(args.host, args.port)
    log_path = workspace.mlflow_dir / f"ui-{args.port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with stop_signals():  # SIGTERM and SIGHUP stop the server as Ctrl-C does
        with open(log_path, "w") as log:
            proc = ui.start_server(uri, args.host, args.port, log=log, bound=not args.background)
        try:
            print(f"starting the MLflow UI on {redact_uri(uri)} (log: {log_path}) ...", flush=True)
            ui.wait_ready(proc, url, log_path=log_path)
        except BaseException:
            ui.stop(proc)
            raise
        if args.background:
            print(f"MLflow UI: {url}  (pid {proc.pid}; stop it with: kill -- -{proc.pid})", flush=True)
            if shared:
                print(f"from other machines: {shared}", flush=True)
            _print_addresses(uri, url, args.experiment)
            return 0
        try:  # from here on, Ctrl-C (or SIGTERM / SIGHUP) at any point stops the server
            print(f"MLflow UI: {url}  (Ctrl-C stops it)", flush=True)
            if shared:
                print(f"from other machines: {shared}", flush=True)
            _print_addresses(uri, url, args.experiment)
            proc.wait()
        except KeyboardInterrupt as exc:
            why = f" ({exc.args[0]})" if isinstance(exc, StopSignal) else ""
            print(f"stopping the MLflow UI{why}", flush=True)
        finally:
            ui.stop(proc)
    return 0


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def _shared_address(host: str, port: int) -> str:
    """For ``--host`` other than this machine's loopback: warn (stderr) that the UI is open to the network,
    and return the address other machines use ("" for a loopback host)."""
    import sys
    if host in LOCAL_HOSTS:
        return ""
    from ..tracking.mlflow.server import tracking_address
    print(f"warning: --host {host} serves the MLflow UI to every machine that reaches this one on port {port}, "
          f"without a login: anyone there can read, change and delete runs; use it on a trusted network only "
          f"(or keep 127.0.0.1 and tunnel: ssh -L {port}:127.0.0.1:{port} THIS_HOST)", file=sys.stderr, flush=True)
    return tracking_address(host, port)


def _remote_ui(uri: str, experiment: str) -> int:
    """``zoo ui`` on a tracking server (``zoo server``): that server is the UI; print it, start nothing."""
    from urllib.parse import urlsplit, urlunsplit
    parts = urlsplit(uri)
    url = urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path.rstrip("/"), "", ""))
    _end_ghost_runs(uri)
    print(f"MLflow UI: {url}  (the tracking server's own UI, from MLFLOW_TRACKING_URI: zoo ui starts no other)",
          flush=True)
    _print_addresses(uri, url, experiment)
    return 0


def run_server(args, registry, workspace) -> int:
    from ..errors import ConfigError
    from ..tracking.mlflow import server, ui
    db = args.db or workspace.server_db
    server.database_uri(db)  # a missing driver or a bad URI is one clear error, before anything starts
    if args.workers < 1:
        raise ConfigError(f"zoo server: --workers {args.workers}: give 1 or more")
    artifacts = server.artifacts_destination(args.artifacts, workspace.home)
    log_path = workspace.mlflow_dir / f"server-{args.port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    local = ui.address(args.host, args.port)
    with stop_signals():
        with open(log_path, "w") as log:
            proc = server.start(db, args.host, args.port, artifacts, workers=args.workers,
                                allowed=args.allowed_hosts, log=log, bound=not args.background)
        try:
            print(f"starting the MLflow server on {redact_uri(db)}, artifacts in {artifacts} (log: {log_path}) ...",
                  flush=True)
            ui.wait_ready(proc, local, log_path=log_path)
        except BaseException:
            ui.stop(proc)
            raise
        address = server.tracking_address(args.host, args.port)
        print(f"MLflow server: {address}  (UI and REST API; pid {proc.pid})", flush=True)
        print(f"on every node:  export MLFLOW_TRACKING_URI={address}", flush=True)
        if args.background:
            print(f"stop it with: kill -- -{proc.pid}", flush=True)
            return 0
        try:
            code = proc.wait()
            print(f"zoo server: the MLflow server exited by itself (code {code}); see {log_path}", flush=True)
            return 1
        except KeyboardInterrupt as exc:
            why = f" ({exc.args[0]})" if isinstance(exc, StopSignal) else ""
            print(f"stopping the MLflow server{why}", flush=True)
        finally:
            ui.stop(proc)
    return 0


def _print_addresses(uri: str, url: str, experiment: str) -> None:
    """The addresses of the experiment and its newest run (a failure here only warns: the UI runs)."""
    from ..tracking.mlflow import ui
    try:
        lines = ui.run_addresses(uri, url, experiment)
    except Exception as exc:  # the server is up; the addresses are a convenience
        print(f"warning: could not read the newest run ({type(exc).__name__}: {exc})", flush=True)
        return
    for line in lines or [f"experiment {experiment}: no runs yet (train one with `zoo run`)"]:
        print(line, flush=True)


def _end_ghost_runs(uri: str) -> None:
    """Before the UI shows runs: end KILLED those whose process is gone (a failure here only warns)."""
    from ..tracking.mlflow.reconcile import end_ghost_runs
    try:
        ended = end_ghost_runs(uri, by="zoo ui")
    except Exception as exc:  # the UI is still useful with a few stale RUNNING runs
        print(f"warning: could not check the store's RUNNING runs ({type(exc).__name__}: {exc})", flush=True)
        return
    if ended:
        print(f"ended {len(ended)} run(s) KILLED whose process is gone (zoo compare --failed lists them)", flush=True)


def run_compare(args, registry, workspace) -> int:
    from ..engine.reports import jsonable
    from ..errors import ConfigError
    from ..tracking.mlflow import compare
    args.json = args.json or args.format == "json"
    if args.format == "csv" and (args.sweep or args.failed or args.unfinished or args.runs):
        raise ConfigError("zoo compare --format csv writes the table of runs; for --sweep, --failed, --unfinished "
                          "or --runs use --format json")
    if args.sweep:
        rows, best = compare.sweep_rows(args.sweep, uri=workspace.tracking_uri)
        print(json.dumps(jsonable({"trials": rows, "best": best}), indent=2, default=str) if args.json
              else compare.format_sweep(rows))
        return 0
    if args.failed or args.unfinished:
        listing = compare.failed_runs if args.failed else compare.unfinished_runs
        rows = listing(args.experiment, args.spec, uri=workspace.tracking_uri)
        if args.json:
            print(json.dumps(rows, indent=2))
        elif not rows:
            print("no failed or killed runs" if args.failed else "no unfinished runs")
        else:
            print(compare.format_failed(rows))
        return 0
    # First: it says which runs it just ended.
    unfinished = compare.unfinished_runs(args.experiment, args.spec, uri=workspace.tracking_uri)
    rows = compare.compare_rows(args.experiment, args.spec, uri=workspace.tracking_uri)
    if args.sort:
        rows = compare.sort_rows(rows, args.sort)
    if args.baseline:
        # A --spec filter must not hide the baseline rows the others are held against.
        pool = compare.compare_rows(args.experiment, compare.BASELINE_PREFIX + "*", uri=workspace.tracking_uri) \
            if args.spec else rows
        compare.mark_baselines(rows, pool)
    if args.json:
        return _emit(json.dumps(jsonable(rows), indent=2, default=str))
    if args.format == "csv":
        return _emit(compare.format_csv(rows))
    text = compare.format_runs(rows, wide=args.wide) if args.runs else compare.format_table(rows, wide=args.wide)
    if args.baseline and rows and not args.runs:
        text += "\n\n" + compare.format_baseline_notes(rows)
    if unfinished:
        text += "\n\n" + compare.format_unfinished(unfinished)
    return _emit(text)


def _emit(text: str) -> int:
    """Print ``text``; a reader that stops early (``| head``) ends the output quietly, as in cat."""
    import os
    import sys
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # Python would report the pipe again when it flushes stdout at exit: point stdout at nothing
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
