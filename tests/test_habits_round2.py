"""Smaller habits of the second trust round, each as a user meets it: a --max-seconds below what a clip
needs, a CSV target that is not a number on one row, a FIFO or dangling link among the audio, zoo ui
open to the network, a run that says where its features came from, and the same --limit giving the
same data description and fingerprint whether or not the full embedded set was synthesised first.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from datafixtures import write_label_folders, write_manifest
from zoo.cli import main
from zoo.workspace import Workspace

QUICK = ["--epochs", "1", "--patience", "0", "--no-progress", "--no-track", "--workers", "1",
         "--set", "backbone.hidden=8", "--set", "backbone.layers=1"]


@pytest.fixture(scope="module")
def audio(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("audio")
    write_label_folders(root, ("blues", "jazz", "rock"), per_label=3)
    return root


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path / "home"


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("zoo: error:")]
    return line


def test_a_max_seconds_below_what_a_clip_needs_says_to_raise_it(home, audio, capsys):
    assert main(["run", "lstm+mel:genre", "--data", str(audio), "--max-seconds", "0.5", *QUICK]) == 2
    line = error_line(capsys)
    assert "--max-seconds 0.5" in line and "raise it" in line and "--skip-bad" not in line


def test_a_csv_target_that_is_not_a_number_names_its_line(home, tmp_path, capsys):
    rows = [{"path": f"a{k}.wav", "label": "ab"[k % 2], "valence": str(k / 10)} for k in range(8)]
    rows[5]["valence"] = "high"
    write_manifest(tmp_path / "data", rows)
    assert main(["run", "lstm+mel:valence", "--data", str(tmp_path / "data"), *QUICK]) == 2
    assert "valence (line 7: 'high' is not a number)" in error_line(capsys)


def test_a_fifo_and_a_dangling_link_are_told_as_such_not_missing(home, audio, tmp_path, capsys):
    data = tmp_path / "odd"
    write_label_folders(data, ("blues", "jazz", "rock"), per_label=6)
    fifo = data / "jazz" / "jazz.00001.wav"
    fifo.unlink()
    os.mkfifo(fifo)
    link = data / "rock" / "rock.00017.wav"
    link.symlink_to(tmp_path / "nowhere" / "x.wav")
    assert main(["run", "lstm+mel:genre", "--data", str(data), *QUICK]) == 2
    line = error_line(capsys)
    assert f"{fifo} (a FIFO, a named pipe)" in line
    assert f"{link} (a dangling symbolic link to {tmp_path / 'nowhere' / 'x.wav'})" in line
    assert "missing" not in line
    assert main(["run", "lstm+mel:genre", "--data", str(data), "--skip-bad", *QUICK]) == 0
    out = capsys.readouterr().out
    assert f"{fifo}: a FIFO, a named pipe" in out and "a dangling symbolic link" in out


def test_zoo_ui_on_every_interface_warns_and_gives_the_address_others_use(capsys):
    from zoo.cli.track_cmd import _shared_address
    assert _shared_address("127.0.0.1", 5000) == "" and capsys.readouterr().err == ""
    address = _shared_address("0.0.0.0", 5123)
    err = capsys.readouterr().err
    assert address.startswith("http://") and address.endswith(":5123") and "0.0.0.0" not in address
    assert err.startswith("warning: --host 0.0.0.0 serves the MLflow UI to every machine") and "ssh -L 5123" in err


def _resolving(table):
    def getaddrinfo(name, port, *args, **kwargs):
        if name not in table:
            raise OSError(f"unknown host {name}")
        return [(2, 1, 6, "", (table[name], 0))]
    return getaddrinfo


def test_a_host_name_that_maps_to_loopback_is_not_the_address_others_are_given(monkeypatch):
    # /etc/hosts often maps the host name to 127.0.0.1: "http://localhost:5077" names nothing to another machine.
    from zoo.tracking.mlflow import server
    monkeypatch.setattr(server.socket, "getfqdn", lambda: "localhost")
    monkeypatch.setattr(server.socket, "gethostname", lambda: "vm")
    monkeypatch.setattr(server.socket, "getaddrinfo", _resolving({"localhost": "127.0.0.1", "vm": "127.0.1.1",
                                                                  "192.0.2.2": "192.0.2.2"}))
    monkeypatch.setattr(server, "_outbound_address", lambda: "192.0.2.2")
    assert server.tracking_address("0.0.0.0", 5077) == "http://192.0.2.2:5077"
    assert "192.0.2.2:5077" in server.allowed_hosts("0.0.0.0", 5077).split(",")


def test_a_host_name_others_can_resolve_is_the_address_they_are_given(monkeypatch):
    from zoo.tracking.mlflow import server
    monkeypatch.setattr(server.socket, "getfqdn", lambda: "gpu-7.lab.org")
    monkeypatch.setattr(server.socket, "gethostname", lambda: "gpu-7")
    monkeypatch.setattr(server.socket, "getaddrinfo", _resolving({"gpu-7.lab.org": "10.1.2.7", "gpu-7": "10.1.2.7"}))
    assert server.tracking_address("0.0.0.0", 5000) == "http://gpu-7.lab.org:5000"
    assert server.tracking_address("10.1.2.7", 5000) == "http://10.1.2.7:5000"


def test_a_run_says_its_features_came_from_the_pack_or_why_not(home, audio, capsys):
    assert main(["run", "lstm+mel:genre", "--data", str(audio), *QUICK]) == 0
    first = capsys.readouterr().out
    assert "features: extracted: no pack of these clips and settings yet" in first and "packed into " in first
    assert main(["data", "pack", "lstm+mel:genre", "--data", str(audio), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["run", "lstm+mel:genre", "--data", str(audio), *QUICK]) == 0
    assert "features: read from the feature pack " in capsys.readouterr().out


@pytest.mark.slow  # synthesises the tiny embedded set (80 clips), after 20 of its clips
def test_the_same_limit_gives_the_same_description_and_fingerprint_with_or_without_the_full_set(tmp_path):
    import zoo
    from zoo.data.readers.embedded import EmbeddedConfig, EmbeddedDataset

    ws = Workspace(home=tmp_path / "home")

    def limited():
        return zoo.train("lstm+chroma:genre", settings={"dataset": {"size": "tiny"}, "backbone": {"hidden": 8}},
                         data=zoo.DataRequest(limit=20, workers=1), epochs=1, track=False, progress=False,
                         workspace=ws).data

    before = limited()  # only the 20 clips are rendered
    assert not (ws.data_dir / "embedded-v1-tiny-seed0").exists()
    EmbeddedDataset(EmbeddedConfig(size="tiny"), ws.data_dir, progress=False).clips("frames")  # the whole set
    after = limited()  # now read from the whole set
    assert before["description"] == after["description"] and "limited to 20 clips" in after["description"]
    assert before["fingerprint"] == after["fingerprint"]


def test_devices_with_overfit_batches_is_refused_once_before_torchrun_starts(home, monkeypatch, capsys):
    import torch.distributed.run

    def no_torchrun(*args, **kwargs):
        raise AssertionError("torchrun started")

    monkeypatch.setattr(torch.distributed.run, "main", no_torchrun)
    for extra in (["--overfit-batches", "2"], ["--set", "train.overfit_batches=2"]):
        assert main(["run", "lstm+chroma:genre", "--devices", "2", *extra, "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.count("zoo: error:") == 1 and "Traceback" not in err
        assert "--overfit-batches checks a few batches in one process, not 2: drop --devices 2" in err


def test_more_devices_than_cores_warns_then_launches(home, monkeypatch, capsys):
    import zoo.cli.run_cmd as run_cmd
    launched = []
    monkeypatch.setattr(run_cmd, "_launch", lambda args: launched.append(args.devices) or 0)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert main(["run", "lstm+chroma:genre", "--devices", "4", "--device", "cpu", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert launched == [4]
    assert "warning: --devices 4 on a machine with 2 usable CPU core(s) and no GPU" in err
    assert main(["run", "lstm+chroma:genre", "--devices", "2", "--device", "cpu", "--no-progress"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_the_confusion_matrix_shows_each_rows_support_and_marks_a_class_without_test_clips(tmp_path, monkeypatch):
    import numpy as np

    from zoo.engine import plots
    figures = []
    monkeypatch.setattr(plots, "save", lambda fig, path, **kw: figures.append(fig) or path)
    matrix = np.array([[3, 1, 0], [0, 0, 0], [1, 0, 4]])
    plots.confusion(matrix, ["blues", "jazz", "rock"], tmp_path / "c.png", title="t")
    (ax, *_) = figures[0].axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["blues (n=4)", "jazz (no test clips)", "rock (n=5)"]
    (mark,) = [p for p in ax.patches if p.get_hatch()]
    assert mark.get_y() == 0.5  # the jazz row, hatched


def test_a_store_or_an_out_folder_under_a_missing_root_is_refused_and_nothing_created(home, monkeypatch, capsys,
                                                                                      audio):
    import uuid
    root = Path(f"/zoo-missing-root-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/zoo/mlflow.db")
    assert main(["compare"]) == 2
    line = error_line(capsys)
    assert f"the MLflow store {root}/zoo/mlflow.db is under {root}, which does not exist" in line
    assert f"mkdir -p {root}" in line
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert main(["data", "stats", "--data", str(audio), "--out", str(root / "plots")]) == 2
    assert f"zoo data stats --out {root}/plots is under {root}" in error_line(capsys)
    assert not root.exists()
    from zoo.fsio import under_missing_root
    assert under_missing_root(Path.cwd() / "new" / "deeper") is None  # an ordinary folder's new sub-folders: fine
    assert under_missing_root(f"/mnt/zoo-usb-{uuid.uuid4().hex[:6]}/runs") is not None  # a disk not mounted


def test_a_data_folder_copied_elsewhere_reads_the_same_pack(home, audio, tmp_path, capsys):
    import shutil
    assert main(["data", "pack", "lstm+mel:genre", "--data", str(audio), "--no-progress"]) == 0
    capsys.readouterr()
    moved = tmp_path / "elsewhere" / "audio"
    shutil.copytree(audio, moved)  # new paths, new change times: the contents are hashed again and match
    assert main(["run", "lstm+mel:genre", "--data", str(moved), *QUICK]) == 0
    assert "features: read from the feature pack " in capsys.readouterr().out
