"""``zoo server``: one MLflow tracking server for a lab or a cluster, on a database, serving the artifacts.

Every node sets ``MLFLOW_TRACKING_URI=http://HOST:PORT`` and the zoo works as it does on its own
sqlite store: runs, metrics and the model registry go to the database behind the server (PostgreSQL
for a team: sqlite is safe on one machine only), artifacts (reports, packaged models) are uploaded
through the server (``--serve-artifacts``, experiments rooted at ``mlflow-artifacts:/``), so no node
needs another's disk. The settings are the ones measured to work (docs/scale.md):

* the database URI travels in ``MLFLOW_BACKEND_STORE_URI``, never on the command line, where ``ps``
  would show its password to every user of the machine; a password may equally stay in libpq's
  ``PGPASSWORD`` or ``~/.pgpass`` and out of the URI;
* ``postgresql://`` is given the driver that is installed (``psycopg`` 3, from the ``server`` extra,
  or ``psycopg2``), and a missing one is a clear error, not SQLAlchemy's traceback;
* MLflow 3 answers only requests whose ``Host`` header it allows (a guard against DNS rebinding):
  this machine's names and addresses on the port are allowed, plus any ``--allowed-hosts``, so
  other nodes reach it by hostname or address;
* one web worker (``--workers``) and no GenAI job runner: the zoo's traffic is small batches.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import IO

from ...errors import ConfigError
from ...processes import bind_to_this_process
from ..credentials import redact_uri
from .ui import port_free
from ...workspace import SERVER_DB_ENV as DB_ENV

DRIVERS = (("psycopg", "postgresql+psycopg"), ("psycopg2", "postgresql+psycopg2"))
"""PostgreSQL drivers SQLAlchemy can use, in the order the zoo prefers them."""
INSTALL = 'pip install -e ".[server]"  (or: pip install "psycopg[binary]")'


def _installed(module: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(module) is not None


def database_uri(uri: str) -> str:
    """``uri`` as SQLAlchemy needs it: ``postgres://`` and ``postgresql://`` get the installed driver;
    a driver named but missing, or none installed, is a :class:`ConfigError` that says what to install."""
    if not uri:
        raise ConfigError(f"zoo server: no database: pass --db postgresql://USER@HOST:PORT/DB or set {DB_ENV} "
                          f"(put the password in PGPASSWORD or ~/.pgpass, not on the command line)")
    scheme, sep, rest = uri.partition("://")
    if not sep:
        raise ConfigError(f"zoo server: --db {redact_uri(uri)} is not a database URI; give one such as "
                          f"postgresql://USER@HOST:5432/mlflow or sqlite:////PATH/mlflow.db")
    base, _, driver = scheme.partition("+")
    if base not in ("postgres", "postgresql"):
        return uri
    if driver:
        module = {"psycopg": "psycopg", "psycopg2": "psycopg2"}.get(driver, driver)
        if not _installed(module):
            raise ConfigError(f"zoo server: --db {redact_uri(uri)} names the PostgreSQL driver {driver}, which is "
                              f"not installed; {INSTALL}")
        return f"postgresql+{driver}://{rest}"
    for module, prefix in DRIVERS:
        if _installed(module):
            return f"{prefix}://{rest}"
    raise ConfigError(f"zoo server: no PostgreSQL driver is installed for --db {redact_uri(uri)}; {INSTALL}")


def allowed_hosts(host: str, port: int, extra: str = "") -> str:
    """The ``Host`` headers the server accepts: this machine's names and addresses on ``port`` (all of
    them when it listens on every interface), and ``extra`` (comma-separated, MLflow's syntax)."""
    names = {"localhost", "127.0.0.1", host}
    if host in ("0.0.0.0", "::", ""):
        names.discard(host)
        names.update({socket.gethostname(), socket.getfqdn(), this_machine()})
        try:
            names.update(str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None))
        except OSError:
            pass
    hosts = sorted(f"[{n}]:{port}" if ":" in n else f"{n}:{port}" for n in names if n)
    return ",".join(hosts + [h.strip() for h in extra.split(",") if h.strip()])


def command(host: str, port: int, artifacts: str, *, workers: int = 1, allowed: str = "") -> list[str]:
    """The ``mlflow server`` command line (the database comes from the environment: :func:`environment`)."""
    return [sys.executable, "-m", "mlflow", "server", "--host", host, "--port", str(port),
            "--workers", str(workers), "--serve-artifacts", "--artifacts-destination", artifacts,
            "--allowed-hosts", allowed_hosts(host, port, allowed)]


def environment(db: str) -> dict[str, str]:
    return {**os.environ, DB_ENV: db, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def artifacts_destination(value: str | None, home: Path) -> str:
    """Where the server keeps artifacts: a folder (made here) or an object store URI (``s3://...``)."""
    if value and "://" in value:
        return value
    folder = Path(value).expanduser().absolute() if value else home / "mlflow" / "served-artifacts"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"zoo server: cannot make the artifact folder {folder}: {exc.strerror or exc}; pass "
                          f"--artifacts with a writable folder (or an s3:// / gs:// URI)") from exc
    return str(folder)


def start(db: str, host: str, port: int, artifacts: str, *, workers: int = 1, allowed: str = "",
          log: IO | None = None, bound: bool = True) -> subprocess.Popen:
    """Start the server in its own process group (see :func:`zoo.tracking.mlflow.ui.start_server`)."""
    if not port_free(host, port):
        raise ConfigError(f"zoo server: port {port} on {host} is already in use; pass --port with a free one "
                          f"(e.g. {port + 1})")
    out = log if log is not None else subprocess.DEVNULL
    return subprocess.Popen(command(host, port, artifacts, workers=workers, allowed=allowed), stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True, env=environment(database_uri(db)),
                            preexec_fn=bind_to_this_process(signal.SIGTERM) if bound else None)


def tracking_address(host: str, port: int) -> str:
    """The address the other nodes put in ``MLFLOW_TRACKING_URI``."""
    if host in ("0.0.0.0", "::", ""):
        name = this_machine()
        return f"http://{f'[{name}]' if ':' in name else name}:{port}"
    return f"http://{host}:{port}"


def this_machine() -> str:
    """A name or address of this machine that other machines can use: its full or short host name where
    that resolves to an address other than loopback, else the address of the interface that carries
    its outgoing traffic (a host name often maps to 127.0.0.1 in /etc/hosts, where it names nothing
    to another machine), else the host name."""
    for name in (socket.getfqdn(), socket.gethostname()):
        if name and name != "localhost" and not _loopback(name):
            return name
    outbound = _outbound_address()
    return outbound if outbound and not _loopback(outbound) else socket.gethostname()


def _loopback(name: str) -> bool:
    """Whether ``name`` resolves to loopback addresses only (or does not resolve)."""
    import ipaddress
    try:
        return all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback
                   for info in socket.getaddrinfo(name, None))
    except (OSError, ValueError):
        return True


def _outbound_address() -> str:
    """The local address of the interface a packet to another network would leave by ("" if none):
    a UDP socket's connect only picks the route, it sends nothing."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            return str(s.getsockname()[0])
        except OSError:
            return ""
