"""Fault injection: a writer killed with SIGKILL mid-write (``zoo data pack``, synthesis of the embedded
set, the feature cache, any atomic file) leaves a hidden temporary; the next start removes it.

Temporaries are named ``.<name>~<host>~<pid>~<token>.tmp`` (``zoo.fsio.temp_path``), so a later
process can tell a dead writer's leftovers (this host, pid gone) from a live writer's, which is
never touched. The kills here are real: a zoo process is SIGKILLed while its temporary exists.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from datafixtures import write_label_folders
from zoo.fsio import reap_temporaries, temp_path, write_text


def env_of(home: Path) -> dict[str, str]:
    return {**os.environ, "ZOO_HOME": str(home), "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}"}


def temporaries(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob(".*") if p.name.endswith(".tmp") or ".tmp-" in p.name)


def kill_when(proc: subprocess.Popen, condition, what: str, timeout: float = 120.0) -> None:
    """SIGKILL ``proc`` as soon as ``condition()`` holds (it must hold before ``proc`` ends)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            return
        if proc.poll() is not None:
            pytest.fail(f"the process ended (code {proc.returncode}) before {what}:\n{proc.stdout.read()}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"{what} did not happen within {timeout:.0f} s")


@pytest.fixture(scope="module")
def long_audio(tmp_path_factory) -> Path:
    """3 labels x 6 clips of 8 s: extraction by one worker lasts long enough to be killed mid-pack."""
    root = tmp_path_factory.mktemp("long-audio")
    write_label_folders(root, ("blues", "jazz", "rock"), per_label=6, seconds=8.0)
    return root


def zoo(home: Path, *argv: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "zoo", *argv], env=env_of(home), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_zoo_data_pack_killed_mid_write_leaves_a_temporary_the_next_pack_removes(tmp_path, long_audio):
    home = tmp_path / "home"
    argv = ("data", "pack", "lstm+mel:genre", "--data", str(long_audio), "--workers", "1", "--no-progress")
    proc = zoo(home, *argv)
    packs = home / "cache" / "packs"
    kill_when(proc, lambda: packs.is_dir() and any(p.name.endswith(".tmp") for p in packs.iterdir()),
              "the pack's temporary appeared")
    left = temporaries(home)
    assert left and all(f"~{socket.gethostname()}~{proc.pid}~" in p.name for p in left if p.parent == packs)
    done = subprocess.run([sys.executable, "-m", "zoo", *argv], env=env_of(home), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert temporaries(home) == []
    assert len(list(packs.glob("*.pack"))) == 1


def test_synthesis_killed_mid_clip_leaves_a_temporary_the_next_start_removes(tmp_path):
    home = tmp_path / "home"
    argv = ("data", "pack", "lstm+chroma:genre", "--limit", "40", "--workers", "1", "--no-progress")
    proc = zoo(home, *argv)
    data = home / "data"
    kill_when(proc, lambda: any(p.name.endswith(".tmp") for p in data.glob("*.clips/.*")),
              "a clip's temporary appeared")
    assert temporaries(data)
    done = subprocess.run([sys.executable, "-m", "zoo", *argv], env=env_of(home), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert temporaries(home) == []


HOLD = """
import sys
from pathlib import Path
from zoo.fsio import temp_path
tmp = temp_path(Path(sys.argv[1]))
tmp.write_bytes(b"half a file")
print(tmp, flush=True)
sys.stdin.read()
"""


def test_a_live_writers_temporary_is_kept_and_removed_once_it_is_killed(tmp_path):
    writer = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "weights.pt")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        tmp = Path(writer.stdout.readline().strip())
        assert tmp.is_file()
        write_text(tmp_path / "other.json", "{}")  # an atomic write in the same folder reaps: not a live one's
        assert reap_temporaries(tmp_path) == [] and tmp.is_file()
    finally:
        writer.kill()
        writer.wait()
    write_text(tmp_path / "other.json", "{}")
    assert not tmp.exists()


def test_another_hosts_temporary_and_a_young_old_style_one_are_left_alone(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    foreign = tmp_path / f".model.pt~another-host~{dead}~0123abcd.tmp"
    young_legacy = tmp_path / f".model.pt.{dead}.0123abcd.tmp"
    old_legacy = tmp_path / f".pack.{dead}.89abcdef.tmp"
    mine_dead = temp_path(tmp_path / "model.pt").with_name(f".model.pt~{socket.gethostname()}~{dead}~feedbeef.tmp")
    for p in (foreign, young_legacy, old_legacy, mine_dead):
        p.write_bytes(b"x")
    day_ago = time.time() - 2 * 86400
    os.utime(old_legacy, (day_ago, day_ago))
    assert sorted(reap_temporaries(tmp_path)) == sorted([old_legacy, mine_dead])
    assert foreign.exists() and young_legacy.exists()
