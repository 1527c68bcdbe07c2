"""Writing the files the zoo later trusts: atomically, or with a one-line error naming the path and the free space.

Reading back what torch saved (weights, training checkpoints) is :func:`read_torch`: as data only,
whatever the file says, so a tampered file runs no code.

Every file a later step reads back as the truth (``weights.pt``, ``zoo_model.json``, reports,
figures) is written to a temporary file in its own folder, flushed to disk, then renamed over
the final name: a full disk, a crash or Ctrl-C leave the old file or none, never half of one.
A write that fails raises :class:`~zoo.errors.StorageError`: one line with the path, what is
wrong (no space, read-only, no permission), the free space there and the fix.

:func:`shown` turns any name a file system allows (bytes that are not UTF-8 included, which
Python keeps as lone surrogates) into text every terminal, CSV, JSON or database accepts.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import pickle
import shutil
import socket
import time
import uuid
import warnings
from pathlib import Path
from typing import IO, Any, Iterator

from .errors import ConfigError, StorageError, ZooError
from .processes import pid_exists

_NO_SPACE = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
_READ_ONLY = (errno.EROFS,)
_DENIED = (errno.EACCES, errno.EPERM)


def shown(name: Any) -> str:
    """``name`` (str, path or bytes) as printable text: bytes that are not UTF-8 become ``\\xNN``.

    A file named ``b"caf\\xe9.wav"`` (Latin-1) reaches Python as ``"caf\\udce9.wav"``; writing
    that to a UTF-8 stream fails. Here it becomes ``caf\\xe9.wav``. Valid text is unchanged, and
    ``shown(shown(x)) == shown(x)``.
    """
    if isinstance(name, bytes):
        return name.decode("utf-8", "backslashreplace")
    text = os.fspath(name) if isinstance(name, os.PathLike) else str(name)
    if isinstance(text, bytes):
        return text.decode("utf-8", "backslashreplace")
    if text.isascii():
        return text
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # surrogates that do not stand for undecodable bytes
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover


def free_space(path: Path | str) -> str:
    """Free space on the file system holding ``path`` (or its nearest existing folder), e.g. "1.2 GB"."""
    here = Path(path)
    for candidate in (here, *here.parents):
        try:
            return _size(shutil.disk_usage(candidate).free)
        except OSError:
            continue
    return "unknown"


def _blocker(path: Any) -> str:
    """The file that stands where ``path`` needs a folder (for ENOTDIR)."""
    if path is None:
        return "a part of the path"
    for parent in Path(os.fsdecode(path)).parents:
        if parent.exists() and not parent.is_dir():
            return shown(parent)
    return "a part of the path"


def _reason_and_fix(exc: OSError) -> tuple[str, str]:
    """What went wrong with a file system call, in words, and what to do about it."""
    elsewhere = "or set ZOO_HOME (or the output folder) to"
    code = exc.errno
    if code in _NO_SPACE:
        return "no space left on the device", f"free some space, {elsewhere} a disk with room"
    if code in _READ_ONLY:
        return "the file system is read-only", f"remount it writable, {elsewhere} a writable folder"
    if code in _DENIED:
        return "permission denied", f"make it writable for this user, {elsewhere} a folder you own"
    if code == errno.ENOTDIR:
        blocker = _blocker(exc.filename)
        return f"{blocker} is a file where a folder is needed", f"move that file away, {elsewhere} another folder"
    return shown(exc.strerror or exc), f"check the path, {elsewhere} another folder"


def storage_error(exc: OSError, path: Path | str, what: str) -> StorageError:
    """The one-line :class:`StorageError` for ``exc`` raised while writing ``what`` at ``path``."""
    reason, fix = _reason_and_fix(exc)
    error = StorageError(f"cannot write {what} {shown(path)}: {reason} ({free_space(path)} free there); {fix}")
    error.__cause__ = exc
    return error


def describe_os_error(exc: OSError) -> str:
    """One line for an OSError nothing else explained (the CLI's last resort): path, reason, free space, fix."""
    reason, fix = _reason_and_fix(exc)
    if exc.filename is None:
        return f"{reason}; {fix}"
    return f"{shown(exc.filename)}: {reason} ({free_space(exc.filename)} free there); {fix}"


MOUNT_PARENTS = ("/mnt", "/media", "/Volumes", "/run/media")
"""Folders whose sub-folders are mount points: a missing one there is a disk not mounted, not a folder to make."""


def under_missing_root(path: Path | str) -> Path | None:
    """The missing top of ``path`` when making ``path`` would create a folder at the top of the file system
    or where a disk is mounted (``/data/...`` or ``/mnt/usb/...`` with ``/data`` or ``/mnt/usb`` missing:
    likely a disk that is not mounted); None when ``path``'s nearest existing folder is an ordinary one."""
    path = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
    missing = None
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing = folder
    else:
        return None
    if missing is None:
        return None
    top = missing.parent
    mount_parent = str(top) in MOUNT_PARENTS or str(top.parent) == "/run/media"
    return missing if top == Path(top.anchor) or mount_parent else None


def refuse_missing_root(path: Path | str, what: str, fix: str) -> None:
    """ConfigError when writing ``what`` at ``path`` would create folders under a missing root (see
    :func:`under_missing_root`): nothing is created there."""
    missing = under_missing_root(path)
    if missing is not None:
        raise ConfigError(f"{what} {shown(path)} is under {shown(missing)}, which does not exist (a disk not mounted?); "
                          f"the zoo creates no folder there: mount it or create it (mkdir -p {shown(missing)}), or "
                          f"{fix}")


def ensure_dir(path: Path | str, what: str = "folder") -> Path:
    """Create the folder ``path`` (and its parents) unless it exists; StorageError if it cannot be."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, path, what) from exc
    return path


def make_new_dir(path: Path | str, what: str = "folder") -> Path:
    """Create the folder ``path``, which must not exist yet (its parents may); StorageError if it cannot be."""
    path = Path(path)
    ensure_dir(path.parent, what)
    try:
        path.mkdir()
    except FileExistsError:
        raise  # a clash of names, not a storage fault: the caller picks another name
    except OSError as exc:
        raise storage_error(exc, path, what) from exc
    return path


def _os_error_in(exc: BaseException) -> OSError | None:
    """The OSError behind ``exc``: itself, or one it was raised from or during (torch.save, for one,
    turns a failed write into a RuntimeError raised while handling the OSError)."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (not every file system can: then it is left to the OS)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


LEGACY_TEMP_AGE = 24 * 3600.0
"""Seconds after which a temporary named the old way (no host in its name) whose pid is gone is removed."""


def temp_path(path: Path | str) -> Path:
    """The hidden temporary a writer fills before renaming it to ``path``:
    ``.<name>~<host>~<pid>~<token>.tmp`` beside it. The host and pid let :func:`reap_temporaries` tell
    what a killed writer left from what a live one is writing."""
    path = Path(path)
    return path.with_name(f".{path.name}~{socket.gethostname()}~{os.getpid()}~{uuid.uuid4().hex[:8]}.tmp")


def _dead_writer(entry: os.DirEntry, host: str, now: float) -> bool:
    """Whether ``entry`` is a temporary whose writer is gone (never one of a live process or another host)."""
    name = entry.name
    if not (name.startswith(".") and name.endswith(".tmp")):
        return False
    parts = name[:-4].split("~")
    if len(parts) >= 4:  # .<name>~<host>~<pid>~<token>.tmp
        return parts[-3] == host and parts[-2].isdigit() and not pid_exists(int(parts[-2]))
    old = name[:-4].rsplit(".", 2)  # .<name>.<pid>.<hex>.tmp, as older versions named them (no host)
    if len(old) != 3 or not old[1].isdigit() or pid_exists(int(old[1])):
        return False
    try:  # its host is unknown: only one a day old, so a writer on another host sharing the disk is long done
        return now - entry.stat(follow_symlinks=False).st_mtime > LEGACY_TEMP_AGE
    except OSError:
        return False


def reap_temporaries(folder: Path | str) -> list[Path]:
    """Remove the temporaries (files or folders) in ``folder`` that writers killed mid-write left
    (SIGKILL, power loss): those of this host whose pid no longer exists. Returns what was removed.
    A live writer's temporary, and any of another host, are left alone."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    host, now, removed = socket.gethostname(), time.time(), []
    for entry in entries:
        if not _dead_writer(entry, host, now):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed


@contextlib.contextmanager
def atomic_file(path: Path | str, what: str = "file", *, text: bool = False) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path`` for writing; on a clean exit it is flushed, fsynced and
    renamed to ``path``. On any error the temporary file is removed and ``path`` is left as it was;
    an OSError becomes a :class:`StorageError` naming ``path`` and the free space. ``text``: open it
    as UTF-8 text (write :func:`shown` text), else binary."""
    path = Path(path)
    ensure_dir(path.parent, f"the folder for {what}")
    reap_temporaries(path.parent)
    tmp = temp_path(path)
    try:
        try:
            with (open(tmp, "w", encoding="utf-8", newline="") if text else open(tmp, "wb")) as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except Exception as exc:
            cause = None if isinstance(exc, ZooError) else _os_error_in(exc)
            if cause is None:
                raise
            raise storage_error(cause, path, what) from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)  # gone after the rename; what a failed write left otherwise
    _fsync_dir(path.parent)


def write_text(path: Path | str, text: str, what: str = "file") -> Path:
    """Write ``text`` (names in it escaped by :func:`shown`) to ``path`` atomically, as UTF-8."""
    with atomic_file(path, what, text=True) as f:
        f.write(shown(text))
    return Path(path)


def write_json(path: Path | str, doc: Any, what: str = "file", **dumps: Any) -> Path:
    """Write ``doc`` as JSON (``json.dumps(doc, **dumps)``, indent 2 by default) to ``path`` atomically."""
    dumps.setdefault("indent", 2)
    return write_text(path, json.dumps(doc, **dumps), what)


def read_torch(path: Path | str, what: str, fix: str, error: type[ZooError] = ZooError) -> Any:
    """What ``torch.save`` wrote at ``path``, read as data only (tensors, numbers, strings, containers).

    ``torch.load(weights_only=True)`` refuses any object that would name a function to call, so a
    tampered or foreign file (a ``__reduce__`` payload) runs nothing. Every failure (missing, empty,
    not a torch file, holds code) is one ``error`` naming ``what``, the path and ``fix``.
    """
    import torch
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise error(f"{what} {shown(path)} is missing; {fix}") from None
    except OSError as exc:
        raise error(f"{what} {shown(path)} cannot be read ({describe_os_error(exc)}); {fix}") from exc
    if size == 0:
        raise error(f"{what} {shown(path)} is empty (0 bytes); {fix}")
    try:
        with warnings.catch_warnings():  # torch's note about a foreign pickle protocol: the error below says it
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        refused = _refused_object(exc)
        if refused:
            raise error(f"{what} {shown(path)} holds more than tensors and plain values ({refused}); the zoo reads "
                        f"such files as data only, so it was not loaded and nothing in it ran; {fix}") from None
        raise error(f"{what} {shown(path)} is not a file torch.save wrote ({_first_line(exc)}); {fix}") from None
    except Exception as exc:
        raise error(f"{what} {shown(path)} cannot be read ({type(exc).__name__}: {_first_line(exc)}); "
                    f"{fix}") from exc


def _refused_object(exc: Exception) -> str:
    """The line of a data-only load's refusal naming the object the file asked for, or ""."""
    for line in str(exc).splitlines():
        if "GLOBAL" in line or "Unsupported operand" in line:  # an object to build, or a pickle opcode it refuses
            return line.strip().removeprefix("WeightsUnpickler error:").strip().rstrip(".")
    return ""


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if lines and "Weights only load failed" in lines[0]:  # torch's preamble; the cause is its last line but the link
        text = ([line for line in lines[1:] if not line.startswith("Check the documentation")] or lines)[-1]
    else:
        text = lines[0] if lines else ""
    return (text[:200] + "...") if len(text) > 200 else text or type(exc).__name__
