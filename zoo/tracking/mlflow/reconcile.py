"""Ghost runs: a RUNNING run whose process is gone is ended KILLED, with the reason, before runs are listed.

A process killed by SIGKILL, the OOM killer, a full disk or a crash cannot end its own run: MLflow
would show it RUNNING forever. So every run records its process when it starts
(:func:`process_tags`: host, pid, start time, boot; plus a last-seen time the tracker refreshes),
and listings (``zoo compare``, ``zoo ui``) first call :func:`reconcile`: a run whose process ran on
this host and no longer exists (or whose pid now belongs to another process) is ended KILLED with
``zoo.failure`` saying what the zoo can tell. A run of another host is left RUNNING (the zoo
cannot look at that host's processes) and listed as unfinished with its last-seen time.
"""
from __future__ import annotations

import time
from typing import Any, Iterable, Iterator, Mapping

from ...processes import ProcessId, identity, this_host, visible, why_gone
from .. import FAILURE_TAG

HOST_TAG = "zoo.process.host"
PID_TAG = "zoo.process.pid"
STARTED_TAG = "zoo.process.started"
BOOT_TAG = "zoo.process.boot"
PIDNS_TAG = "zoo.process.pidns"
SEEN_TAG = "zoo.process.seen"
"""Milliseconds since the epoch when the run's process last logged something."""


def now_ms() -> int:
    return int(time.time() * 1000)


def process_tags(proc: ProcessId | None = None) -> dict[str, str]:
    """The tags that name the process running a run (this process by default), and its last-seen time."""
    proc = proc or identity()
    return {HOST_TAG: proc.host, PID_TAG: str(proc.pid), STARTED_TAG: proc.started, BOOT_TAG: proc.boot,
            PIDNS_TAG: proc.pidns, SEEN_TAG: str(now_ms())}


def recorded_process(tags: Mapping[str, str]) -> ProcessId | None:
    """The process a run recorded (None for a run started without one: an older zoo, another tool)."""
    try:
        return ProcessId(tags[HOST_TAG], int(tags[PID_TAG]), tags.get(STARTED_TAG, ""), tags.get(BOOT_TAG, ""),
                         tags.get(PIDNS_TAG, ""))
    except (KeyError, ValueError):
        return None


def running_runs(c: Any, experiment_ids: Iterable[str]) -> Iterator[Any]:
    """Every run of ``experiment_ids`` whose status is RUNNING, latest first."""
    ids = list(experiment_ids)
    if not ids:
        return
    token = None
    while True:
        page = c.search_runs(ids, filter_string="attributes.status = 'RUNNING'",
                             order_by=["attributes.start_time DESC"], max_results=1000, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def reconcile(c: Any, experiment_ids: Iterable[str] | None = None, *, by: str = "the zoo") -> dict[str, str]:
    """End KILLED every RUNNING run of ``experiment_ids`` (default: every experiment of the store of
    client ``c``) whose process is gone; return ``{run_id: reason}`` of the runs it ended.

    ``by`` names the command that found it, for the reason (``zoo compare``). The run's end time is
    when its process was last seen. A run whose process still runs, ran on another host, or was
    not recorded is left as it is.
    """
    if experiment_ids is None:
        experiment_ids = [e.experiment_id for e in c.search_experiments()]
    ended: dict[str, str] = {}
    for run in list(running_runs(c, experiment_ids)):
        proc = recorded_process(run.data.tags)
        why = why_gone(proc) if proc is not None else None
        if why is None:
            continue
        run_id = run.info.run_id
        # Read again now that the process is known to be gone: nothing can change the run any more,
        # so a run that ended itself meanwhile is seen as ended and left alone.
        if c.get_run(run_id).info.status != "RUNNING":
            continue
        seen = _seen(run)
        reason = f"{why}; last seen {_clock(seen)}; ended KILLED by {by}"
        c.set_tag(run_id, FAILURE_TAG, reason)
        c.set_terminated(run_id, status="KILLED", end_time=seen)
        ended[run_id] = reason
    return ended


def describe_running(run: Any) -> str:
    """One line on a RUNNING run: its process, where, and whether the zoo can tell it is alive."""
    proc = recorded_process(run.data.tags)
    if proc is None:
        return ("no process recorded (started by an older zoo or another tool): if it is dead, end it in "
                "the MLflow UI (zoo ui)")
    seen = f"last seen {_ago(_seen(run))}"
    if visible(proc):
        return f"process {proc.pid} on this host ({proc.host}) is running; {seen}"
    where = (f"on host {proc.host}" if proc.host != this_host()
             else f"in another pid namespace on {proc.host} (a container?)")
    return (f"process {proc.pid} {where}, {seen}; the zoo checks only the processes it can see "
            f"(run `zoo compare` there to end it if it is gone)")


def _seen(run: Any) -> int:
    try:
        return max(int(run.data.tags[SEEN_TAG]), int(run.info.start_time or 0))
    except (KeyError, ValueError):
        return int(run.info.start_time or now_ms())


def _clock(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def _ago(ms: int) -> str:
    seconds = max(0, (now_ms() - ms) // 1000)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def end_ghost_runs(uri: str, *, by: str) -> dict[str, str]:
    """:func:`reconcile` over every experiment of the store ``uri``: for callers outside :mod:`zoo.tracking`,
    which never hold an MLflow client (``zoo ui``)."""
    from .store import client
    return reconcile(client(uri), by=by)
