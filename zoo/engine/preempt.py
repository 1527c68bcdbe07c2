"""Preemption: SIGTERM (what SLURM sends before it kills a job) ends a run KILLED, resumable, with exit 75.

A run checkpoints at the end of every epoch (:mod:`zoo.engine.checkpoint`), atomically, so the
last whole epoch is always on disk: that is the safe point a stopped run goes on from. On SIGTERM
(or SIGHUP) ``zoo run`` raises :class:`Preempted` where the process is; the run is ended KILLED with
the reason (``zoo.failure``), and the command exits :data:`EXIT_REQUEUE` (75, ``EX_TEMPFAIL``: "try
again later"), which a batch script can tell from a failure and requeue on; ``zoo run --resume
RUN`` then continues from the start of the epoch that was cut short and ends as the uninterrupted
run would. Under torchrun every rank gets the signal; see :mod:`zoo.engine.distributed` for how
the ranks agree on why they stopped.

A rank also stops when its launcher dies, SIGKILL included (:func:`watch_launcher`): nothing is left
training with nobody to collect it.
"""
from __future__ import annotations

import os
import signal
import threading
import time

from ..errors import RunError

EXIT_REQUEUE = 75
"""The exit status of a run stopped by SIGTERM / SIGHUP: sysexits' EX_TEMPFAIL (resume it, or requeue the job)."""
GRACE_SECONDS = 30.0
"""How long a rank whose launcher died has to end its run before it exits regardless."""
_WATCH_SECONDS = 1.0
_why: list[str] = []
_orphaned = threading.Event()


class Preempted(RunError):
    """The run was stopped from outside (SIGTERM, SIGHUP, its launcher gone): it is ended KILLED, not FAILED."""

    run_status = "KILLED"


def orphaned() -> bool:
    """Whether this rank's launcher is gone (and with it the store torchrun's agent served: do not wait on it)."""
    return _orphaned.is_set()


def reason() -> str | None:
    """Why this process was asked to stop (None: it was not)."""
    return _why[0] if _why else None


def note(why: str) -> None:
    """Record why this process is stopping (the first reason wins)."""
    if not _why:
        _why.append(why)


def on_signal(signum, frame) -> None:
    """The SIGTERM / SIGHUP handler of ``zoo run``: raise :class:`Preempted` (further signals are ignored,
    so the run can be marked and the process exit)."""
    name = signal.Signals(signum).name
    note(f"stopped by {name} (a scheduler's preemption or time limit, or a kill)")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    raise Preempted(reason())


def check() -> None:
    """Raise :class:`Preempted` when a stop was asked for: for the training loop, after each step, in case
    the handler's own exception was swallowed (raised inside a finaliser, which Python only reports)."""
    if _why:
        raise Preempted(_why[0])


def watch_launcher(parent_pid: int, grace: float = GRACE_SECONDS) -> None:
    """In a rank: when the launcher ``parent_pid`` is gone (killed, even by SIGKILL), stop this rank as
    SIGTERM would, and exit after ``grace`` seconds if it has not ended by then."""
    threading.Thread(target=_watch, args=(parent_pid, grace), name="zoo-launcher-watch", daemon=True).start()


def _watch(parent_pid: int, grace: float) -> None:
    while os.getppid() == parent_pid:
        time.sleep(_WATCH_SECONDS)
    note(f"its launcher (pid {parent_pid}) is gone (killed)")
    _orphaned.set()
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(grace)
    os._exit(EXIT_REQUEUE)
