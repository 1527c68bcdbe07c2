"""A real PostgreSQL and a real MLflow tracking server (``zoo server``) on it, for the shared-store tests and bench/.

:class:`Postgres` runs the distribution's ``initdb`` / ``pg_ctl`` into a temporary folder on a free
port, with a password (scram-sha-256 over TCP) and one database; PostgreSQL refuses to run as root,
so as root it runs as the unprivileged user ``nobody``. :class:`Server` is ``zoo server`` on that
database, on a free port, its password handed over in ``PGPASSWORD`` as a lab would. Both stop
everything they started (:meth:`stop`) and say which processes those were (``pids``), so a test can
check that none is left. :func:`unavailable` says why PostgreSQL cannot run here (None when it can).
"""
from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

USER = "zoo"
DATABASE = "mlflow"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bin_dir() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl`` (Debian keeps them per version, off PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("initdb")
    return Path(which).parent if which else None


def _runner() -> dict:
    """``subprocess`` arguments that run PostgreSQL's programs as an unprivileged user when this is root."""
    if os.geteuid() != 0:
        return {}
    nobody = pwd.getpwnam("nobody")
    return {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}


def unavailable() -> str | None:
    """Why a PostgreSQL server cannot be started here, or None."""
    if bin_dir() is None:
        return "PostgreSQL is not installed (Debian: apt-get install -y postgresql; .ci/run installs it)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return 'no PostgreSQL driver: pip install -e ".[server]" (the README\'s install command has it)'
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("nobody")
        except KeyError:
            return "running as root with no user 'nobody' to run PostgreSQL as (it refuses root)"
    return None


class Postgres:
    """A throw-away PostgreSQL cluster: ``uri`` (with its password), ``uri_without_password``, ``password``."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="zoo-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.password = "pw-" + secrets.token_hex(12)
        self.log = self.folder / "postgres.log"
        self.pids: list[int] = []

    @property
    def uri(self) -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def uri_without_password(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    def start(self) -> Postgres:
        as_user = _runner()
        if as_user:
            os.chown(self.folder, as_user["user"], as_user["group"])
        pwfile = self.folder / "pw"
        pwfile.write_text(self.password + "\n")
        if as_user:
            os.chown(pwfile, as_user["user"], as_user["group"])
        tools = bin_dir()
        self._run([tools / "initdb", "-D", self.data, "-U", USER, "--pwfile", pwfile, "-E", "UTF8",
                   "--auth-local=trust", "--auth-host=scram-sha-256", "--no-instructions"], as_user)
        pwfile.unlink()
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run([tools / "pg_ctl", "-D", self.data, "-o", options, "-l", self.log, "-w", "-t", "60", "start"],
                  as_user)
        self.pids = [int((self.data / "postmaster.pid").read_text().split()[0])]
        import psycopg
        with psycopg.connect(host="127.0.0.1", port=self.port, user=USER, password=self.password,
                             dbname="postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        return self

    def _run(self, argv: list, as_user: dict) -> None:
        done = subprocess.run([str(a) for a in argv], cwd=self.folder, capture_output=True, text=True,
                              timeout=120, **as_user)
        if done.returncode:
            raise RuntimeError(f"{Path(str(argv[0])).name} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
                               + (self.log.read_text() if self.log.exists() else ""))

    def stop(self) -> None:
        if self.data.exists() and (self.data / "postmaster.pid").exists():
            subprocess.run([str(bin_dir() / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
                           cwd=self.folder, capture_output=True, timeout=60, **_runner())
        for pid in self.pids:  # pg_ctl waited for the postmaster; make sure, as a killed test might not have
            _kill_and_reap(pid)
        shutil.rmtree(self.folder, ignore_errors=True)


class Server:
    """``zoo server`` on ``db`` on a free port of 127.0.0.1: ``uri`` is what a node's MLFLOW_TRACKING_URI is set to.

    The password reaches it in ``PGPASSWORD`` (the URI it is given has none), as docs/scale.md advises.
    ``output`` is what ``zoo server`` printed; ``pids`` the server's process group.
    """

    def __init__(self, db: Postgres, home: Path, *, env: dict[str, str] | None = None) -> None:
        self.db, self.home = db, home
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.env = {**(env or os.environ), "ZOO_HOME": str(home), "PGPASSWORD": db.password}
        self.env.pop("MLFLOW_TRACKING_URI", None)
        self.proc: subprocess.Popen | None = None
        self.output = ""

    def start(self, timeout: float = 120.0) -> Server:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zoo", "server", "--db", self.db.uri_without_password, "--host", "127.0.0.1",
             "--port", str(self.port)], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + timeout
        lines = []
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line and self.proc.poll() is not None:
                raise RuntimeError(f"zoo server exited ({self.proc.returncode}):\n{''.join(lines)}")
            lines.append(line)
            if line.startswith("on every node:"):
                self.output = "".join(lines)
                return self
        self.stop()
        raise RuntimeError(f"zoo server did not start within {timeout:.0f} s:\n{''.join(lines)}")

    @property
    def group(self) -> int:
        """The process group of the MLflow server (``zoo server`` prints its leader's pid)."""
        import re
        return int(re.search(r"pid (\d+)\)", self.output).group(1))

    def pids(self) -> list[int]:
        """The live processes of the server's group (``mlflow server`` and its web worker)."""
        return group_members(self.group)

    def stop(self) -> str:
        """SIGTERM to ``zoo server`` (as a user's Ctrl-C or a scheduler would); returns what it printed."""
        if self.proc is None:
            return self.output
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rest, _ = self.proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rest, _ = self.proc.communicate()
            self.output += rest or ""
        return self.output


def _kill_and_reap(pid: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def group_members(pgid: int) -> list[int]:
    """The pids of live (not zombie) processes in process group ``pgid`` (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and int(fields[2]) == pgid:
                out.append(int(entry.name))
    return out
