"""The sqlite store's lock (zoo.tracking.mlflow.store.store_lock): held by another process it makes a zoo
command wait, then fail naming the store and the lock; a killed holder leaves it free; where the lock file
cannot be opened an existing store is used unlocked, a missing one is refused naming the folder.

The race of two first runs creating one store is tests/test_faults_runs.py's (slow); here the lock itself.
"""
from __future__ import annotations

import errno
import signal
import subprocess
import sys

import pytest

from zoo.errors import ConfigError, RunError
from zoo.tracking.mlflow.store import store_lock

HOLDER = """
import sys
from zoo.tracking.mlflow.store import store_lock
with store_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def holder(tmp_path):
    """A process holding the lock of a store in ``tmp_path`` until it is killed; yields (uri, process)."""
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, uri], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        yield uri, proc
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_a_lock_another_process_holds_times_out_naming_the_store_and_the_lock(holder, tmp_path):
    uri, _ = holder
    db = tmp_path / "store" / "mlflow.db"
    with pytest.raises(RunError) as err:
        with store_lock(uri, timeout=0.3):
            pytest.fail("the lock was taken while another process held it")
    assert str(err.value) == (f"the MLflow store {db} has been locked by another process for 0 s ({db}.lock); "
                              f"wait for the other zoo command to finish, or stop it")


def test_a_killed_holder_leaves_the_lock_free(holder):
    uri, proc = holder
    proc.send_signal(signal.SIGKILL)  # no finally, no release: the kernel drops the lock with the process
    proc.wait(timeout=30)
    entered = []
    with store_lock(uri, timeout=10):
        entered.append(True)
    assert entered == [True]


def test_the_lock_is_released_when_the_body_raises(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(KeyError):
        with store_lock(uri, timeout=1):
            raise KeyError("in the body")
    code = subprocess.run([sys.executable, "-c", "import sys\nfrom zoo.tracking.mlflow.store import store_lock\n"
                           "with store_lock(sys.argv[1], timeout=1): pass", uri], capture_output=True, text=True)
    assert code.returncode == 0, code.stderr  # another process takes it at once


def unopenable(monkeypatch):
    """Every lock file refuses to open, as in a read-only folder (root ignores chmod, so it is injected)."""
    import filelock

    def refuse(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(self.lock_file))
    monkeypatch.setattr(filelock.FileLock, "acquire", refuse)


def test_an_existing_store_whose_lock_cannot_be_opened_is_used_unlocked(tmp_path, monkeypatch):
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"")
    unopenable(monkeypatch)
    entered = []
    with store_lock(f"sqlite:///{db}"):
        entered.append(True)
    assert entered == [True]


def test_a_missing_store_whose_lock_cannot_be_opened_is_refused_naming_the_folder(tmp_path, monkeypatch):
    db = tmp_path / "mlflow.db"
    unopenable(monkeypatch)
    with pytest.raises(ConfigError) as err:
        with store_lock(f"sqlite:///{db}"):
            pytest.fail("ran without the lock although the store must be created")
    assert str(err.value) == (f"cannot create the MLflow store {db}: Permission denied ({db}.lock); "
                              f"make that folder writable, or point ZOO_HOME (or MLFLOW_TRACKING_URI) elsewhere")


@pytest.mark.parametrize("uri", ["http://127.0.0.1:5000", "sqlite:///:memory:", "postgresql://u@h/db"])
def test_stores_that_are_not_a_sqlite_file_take_no_lock(uri, monkeypatch):
    unopenable(monkeypatch)  # would raise if a lock were taken
    entered = []
    with store_lock(uri):
        entered.append(True)
    assert entered == [True]
