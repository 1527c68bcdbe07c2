"""Starting and stopping the MLflow web UI on the zoo's store (one light worker).

The server runs in its own process group: :func:`stop` ends the whole group (the server forks a
web worker), and :func:`zoo.processes.stop_signals` turns SIGTERM and SIGHUP into the same interruption as
Ctrl-C, so ``zoo ui`` stops its server and frees the port however it is asked to stop. A server
started in the foreground also gets SIGTERM from the kernel if ``zoo ui`` itself is killed.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from ...errors import ConfigError, RunError
from ...processes import bind_to_this_process, group_alive
from .store import artifact_location

def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def server_command(uri: str, host: str, port: int) -> list[str]:
    """``mlflow server`` with one worker; new experiments' artifacts beside a sqlite store. The store
    ``uri`` itself goes in the environment (``MLFLOW_BACKEND_STORE_URI``), where ``ps`` does not show
    a password it may hold."""
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", host, "--port", str(port), "--workers", "1"]
    root = artifact_location(uri, "x")
    if root is not None:
        cmd += ["--default-artifact-root", root.rsplit("/", 1)[0]]
    return cmd


def start_server(uri: str, host: str = "127.0.0.1", port: int = 5000, *, log: IO | None = None,
                 bound: bool = True) -> subprocess.Popen:
    """Start ``mlflow server`` in its own process group (it forks a web server worker: :func:`stop`
    ends the whole group, and a Ctrl-C meant for the zoo does not reach it half-way).

    ``bound``: the server gets SIGTERM (which it passes on to its worker) when this process dies,
    however it dies; False for a server meant to outlive it (``zoo ui --background``).
    """
    if not port_free(host, port):
        raise ConfigError(f"port {port} on {host} is already in use; pass --port with a free one (e.g. {port + 1})")
    out = log if log is not None else subprocess.DEVNULL
    # MLflow 3 also starts a job runner with several task-queue consumers (for its GenAI features);
    # the zoo's UI only browses runs, so keep the server to its one web worker.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_BACKEND_STORE_URI": uri}
    return subprocess.Popen(server_command(uri, host, port), stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True, env=env,
                            preexec_fn=bind_to_this_process(signal.SIGTERM) if bound else None)


def address(host: str, port: int) -> str:
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"


def wait_ready(proc: subprocess.Popen, url: str, timeout: float = 90.0, log_path: Path | None = None) -> None:
    """Block until ``url`` answers the REST API (experiments search) or raise with the log's tail."""
    deadline = time.monotonic() + timeout
    probe = f"{url}/api/2.0/mlflow/experiments/search"
    body = json.dumps({"max_results": 1}).encode()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text()[-2000:] if log_path and log_path.exists() else ""
            raise RunError(f"mlflow server exited with code {proc.returncode} before answering {url}\n{tail}")
        try:
            req = urllib.request.Request(probe, data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.5)
    raise RunError(f"mlflow server did not answer {url} within {timeout:.0f} s; see {log_path or 'its output'}")


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Terminate the server's process group (SIGTERM, then SIGKILL after ``timeout`` seconds) and
    wait until no process of the group is left, so its port is free when this returns."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout)
            break
        except subprocess.TimeoutExpired:
            continue
    try:  # a worker the server forked may outlive it: sweep the group once more
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + timeout
    while group_alive(proc.pid) and time.monotonic() < deadline:  # SIGKILL is delivered asynchronously
        time.sleep(0.05)


def run_addresses(uri: str, url: str, experiment: str) -> list[str]:
    """Lines naming the UI's pages for ``experiment`` and its newest run (``url``: the server's
    address); empty when the store has no such experiment yet. MLflow's UI routes pages by
    ``#/experiments/<id>`` and ``#/experiments/<id>/runs/<run id>``."""
    from .store import client, get_experiment

    c = client(uri)
    exp = get_experiment(c, experiment, create=False)
    if exp is None:
        return []
    base = f"{url.rstrip('/')}/#/experiments/{exp.experiment_id}"
    lines = [f"experiment {experiment}: {base}"]
    newest = c.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)
    if newest:
        run = newest[0]
        name = run.data.tags.get("zoo.spec") or run.info.run_name or ""
        lines.append(f"newest run {run.info.run_id} ({name}, {run.info.status}): {base}/runs/{run.info.run_id}")
    return lines
