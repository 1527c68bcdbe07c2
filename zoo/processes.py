"""Process identity and lifetime: who a process is (host, pid, start time), whether it still lives,
and child processes that die with their parent.

A pid alone does not name a process: the kernel reuses pids. A process is named by its host, pid,
start time (clock ticks since boot, from ``/proc/PID/stat``; psutil's create time where there is
no ``/proc``), the boot it started in and its pid namespace, so a later check can tell "still
running" from "gone" and from "the pid now belongs to another process", and knows when it cannot
tell (another host, or a container with its own pids under the same host name).
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Iterator, NamedTuple

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_WATCH_SECONDS = 1.0


class ProcessId(NamedTuple):
    """A process as a later check can recognise it; ``started``, ``boot`` and ``pidns`` are "" when unknown."""

    host: str
    pid: int
    started: str
    boot: str
    pidns: str = ""


def this_host() -> str:
    return socket.gethostname()


def boot_id() -> str:
    """This boot of this machine (Linux), "" elsewhere: start times only compare within one boot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def pid_namespace() -> str:
    """This process's pid namespace (Linux), "" elsewhere: pids of another namespace are not ours to check."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def start_time(pid: int) -> str:
    """When ``pid`` started, as an opaque token (equal tokens: the same process); "" if it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return ""
    except OSError:
        stat = ""
    if stat:
        # The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] in ("Z", "X"):  # a zombie has ended; only its exit status waits to be collected
            return ""
        return "ticks:" + fields[19]
    try:
        import psutil
    except ImportError:
        return "alive" if pid_exists(pid) else ""
    try:
        return f"created:{psutil.Process(pid).create_time():.3f}"
    except psutil.Error:
        return ""


def identity(pid: int | None = None) -> ProcessId:
    """This process (or ``pid`` on this host) as a :class:`ProcessId`."""
    pid = os.getpid() if pid is None else pid
    return ProcessId(this_host(), pid, start_time(pid), boot_id(), pid_namespace())


def visible(proc: ProcessId) -> bool:
    """Whether this process can check ``proc``: the same host and, where recorded, the same pid namespace."""
    return proc.host == this_host() and not (proc.pidns and pid_namespace() and proc.pidns != pid_namespace())


def why_gone(proc: ProcessId) -> str | None:
    """Why ``proc`` no longer runs, in one line; None when it still runs or the zoo cannot tell
    (it ran on another host, or in another pid namespace of this one)."""
    where = f"process {proc.pid} on host {proc.host}"
    if proc.host != this_host():
        return None
    if proc.boot and boot_id() and proc.boot != boot_id():
        return f"{where} is gone: the machine restarted since the run began"
    if not visible(proc):
        return None
    now = start_time(proc.pid)
    if not now:
        return f"{where} is gone (killed, OOM or crashed)"
    if proc.started and proc.started != "alive" and now != proc.started:
        return f"{where} is gone (killed, OOM or crashed; pid {proc.pid} now belongs to another process)"
    return None


def group_alive(pgid: int) -> bool:
    """Whether a process of the process group ``pgid`` still runs (zombies, which hold nothing, do not count)."""
    if not Path("/proc").is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    return any(int(fields[2]) == pgid and fields[0] not in ("Z", "X") for _, fields in _proc_stats())


def _proc_stats():
    """(pid, the fields of ``/proc/PID/stat`` after the command name) of every process now; none
    without ``/proc``. Field 0 is the state, 1 the parent's pid, 2 the process group."""
    proc = Path("/proc")
    if not proc.is_dir():
        return
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The command name may hold spaces and parentheses: the fields start after the last ')'.
            yield int(entry.name), (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # it ended while the list was read


def pid_exists(pid: int) -> bool:
    """Whether process ``pid`` runs on this host: someone else's process counts, a zombie (ended, not yet
    collected by its parent) does not; a value that is no pid at all counts as running, so that a caller
    deciding what to clean up leaves alone what it cannot judge."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):  # no /proc (macOS), or it ended meanwhile
        return True


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux); False elsewhere."""
    prctl = _prctl()
    return prctl is not None and prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def _prctl():
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def die_with_parent(parent_pid: int, sig: int = signal.SIGKILL) -> None:
    """Make this (child) process end when ``parent_pid`` does, even when the parent is SIGKILLed.

    For a pool initializer: the kernel's parent-death signal where there is one, and everywhere a
    daemon thread that checks every second whether the parent changed (a child whose parent died is
    adopted by another process). A parent already gone ends the child at once.
    """
    set_parent_death_signal(sig)
    if os.getppid() != parent_pid:
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="zoo-parent-watch", daemon=True).start()


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(_WATCH_SECONDS)
    os._exit(1)  # the parent is gone: nobody will collect this worker's results


def bind_to_this_process(sig: int = signal.SIGTERM):
    """A ``preexec_fn`` for ``subprocess.Popen``: the child gets ``sig`` when this process dies (Linux;
    elsewhere None, which Popen takes as no function)."""
    prctl = _prctl()  # looked up here: between fork and exec the child only calls it
    if prctl is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return preexec


STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class StopSignal(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where Ctrl-C raises KeyboardInterrupt, so that both stop a long command
    (the UI, a sweep) the same way; ``signum`` gives the command's exit status (128 + signum)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_received: list[int] = []  # the stop signal this process got inside stop_signals(), if any


def _raise_stop(signum, frame) -> None:
    for sig in STOP_SIGNALS:  # one request to stop is enough: let the clean-up run uninterrupted
        signal.signal(sig, signal.SIG_IGN)
    _received[:] = [signum]
    raise StopSignal(signum)


def stop_received() -> int | None:
    """The SIGTERM or SIGHUP that :func:`stop_signals` caught, or None: a library may catch our
    :class:`StopSignal` and raise a plain KeyboardInterrupt in its place (Ray's blocking calls do)."""
    return _received[0] if _received else None


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`StopSignal` (a KeyboardInterrupt); a plain
    KeyboardInterrupt leaving the block after one of them leaves as that StopSignal.

    Signal handlers can only be set in the main thread: elsewhere the block changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    previous = {sig: signal.signal(sig, _raise_stop) for sig in STOP_SIGNALS}
    try:
        yield
    except KeyboardInterrupt as exc:
        if isinstance(exc, StopSignal) or not _received:
            raise
        raise StopSignal(_received[0]) from exc
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _received.clear()  # a later Ctrl-C, outside the block, is not this signal


@contextlib.contextmanager
def keep_signal_handlers() -> Iterator[None]:
    """This process's Python handlers of SIGINT, SIGTERM and SIGHUP as they were, again after the block,
    whatever a library called inside it put there (``ray.init`` puts its own on SIGTERM, which exits
    at once). Outside the main thread, which cannot set handlers, the block changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    kept = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, *STOP_SIGNALS)}
    try:
        yield
    finally:
        for sig, handler in kept.items():
            if handler is not None:  # None: set outside Python, not ours to put back
                signal.signal(sig, handler)


def _children_by_parent() -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for pid, fields in _proc_stats():
        found.setdefault(int(fields[1]), []).append(pid)
    return found


def children(pid: int) -> list[int]:
    """The processes ``pid`` started that run now (Linux; [] where there is no ``/proc``)."""
    return _children_by_parent().get(pid, [])


def descendants(pid: int) -> list[int]:
    """The processes ``pid`` started, and theirs, now (Linux; [] where there is no ``/proc``)."""
    by_parent = _children_by_parent()
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in by_parent.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


GUARD_START_SECONDS = 10.0
"""How long :func:`guard_descendants` waits for its guard to say it watches."""


def guard_descendants(sig: int = signal.SIGTERM, grace: float = 3.0):
    """Start a guard that ends everything this process started once this process is gone, even when it
    is SIGKILLed (Linux; None elsewhere). Returns the guard's ``Popen``; :func:`stop_guard` ends it.

    For services that outlive their owner by design or by delay, such as a local Ray's agents, which
    stay up for minutes after their driver is killed. The guard lives in a session of its own, so a
    signal to the terminal's process group reaches the owner, not the guard. It is handed the owner's
    descendants of now (with their start times, so a reused pid is never hit) and notes new ones every
    second; once the owner is gone it sends ``sig`` to those still running, waits ``grace`` seconds,
    and SIGKILLs what is left. This returns once the guard watches (at most
    :data:`GUARD_START_SECONDS`), so an owner killed right after is still covered.
    """
    if not Path("/proc").is_dir():
        return None
    import select
    import subprocess
    owner = os.getpid()
    now = [f"{pid}={start_time(pid)}" for pid in descendants(owner)]
    guard = subprocess.Popen([sys.executable, "-m", "zoo.processes", "guard", str(owner), start_time(owner),
                              str(int(sig)), str(grace), *now],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             start_new_session=True, close_fds=True)
    assert guard.stdout is not None
    if select.select([guard.stdout], [], [], GUARD_START_SECONDS)[0]:
        guard.stdout.readline()  # "watching"
    guard.stdout.close()
    return guard


def stop_guard(guard) -> None:
    """End a guard from :func:`guard_descendants` (the owner ended its services itself)."""
    if guard is None or guard.poll() is not None:
        return
    guard.kill()
    guard.wait()


def _guard(owner: int, owner_started: str, sig: int, grace: float, given: list[str]) -> None:
    me = os.getpid()
    known: dict[int, str] = {}
    for item in given:  # what the owner had started when it asked for the guard
        number, _, started = item.partition("=")
        known[int(number)] = started
    told = False
    while start_time(owner) == owner_started:
        for pid in descendants(owner):
            if pid != me and pid not in known:
                known[pid] = start_time(pid)
        if not told:
            told = True
            try:
                print("watching", flush=True)
                sys.stdout.close()
            except OSError:  # the owner stopped listening
                pass
        time.sleep(_WATCH_SECONDS)
    for pid in descendants(owner):  # what it started in its last second, if it is a zombie not yet collected
        known.setdefault(pid, start_time(pid))

    def alive() -> list[int]:
        return [pid for pid, started in known.items() if started and start_time(pid) == started]

    for pid in alive():
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    deadline = time.monotonic() + grace
    while alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in alive():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


if __name__ == "__main__" and len(sys.argv) >= 6 and sys.argv[1] == "guard":
    _guard(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), sys.argv[6:])
