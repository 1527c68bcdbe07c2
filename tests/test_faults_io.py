"""Fault injection (the Trust issue), files and inputs: odd names, full disks, read-only homes, broken
plugins, long clips and lonely labels; each must end in a result or one clear line, never a traceback.

One section per fault class; each test injects the fault (for real where this machine allows it: a
file name of raw bytes, a tiny or read-only tmpfs when the tests run as root; by monkeypatching the
failing call otherwise) and checks the outcome: no crash after the work is done, no partial file
left as the truth, the run ended FAILED with the reason, the user told in one line.
"""
from __future__ import annotations

import csv
import errno
import io
import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from datafixtures import music, write_audio, write_label_folders, write_manifest
from enginefixtures import TINY_LSTM, separable
from zoo.cli import main
from zoo.data.prepare import prepare
from zoo.data.readers.folder import FolderConfig, FolderDataset
from zoo.engine.request import DataRequest, RunRequest
from zoo.engine.runner import run
from zoo.engine.trainconfig import TrainConfig
from zoo.errors import DataError, PluginError, StorageError
from zoo.fsio import atomic_file, shown, write_text
from zoo.protocols import ComponentSpec
from zoo.registry import EntryInfo, Registry, installed_entries
from zoo.tracking import FAILURE_TAG, NullTracker
from zoo.workspace import Workspace

SR = 22050
QUICK = ["--set", "backbone.hidden=8", "--set", "backbone.layers=1", "--set", "mel.n_mels=32", "--epochs", "1",
         "--patience", "0", "--workers", "1", "--no-progress"]
ODD = os.fsdecode(b"caf\xe9-\xff.wav")  # Latin-1 and a stray byte: no UTF-8 decoder accepts these names
ODD_SHOWN = "caf\\xe9-\\xff.wav"


def write_odd(path: Path, y: np.ndarray) -> Path:
    """Write a WAV under a name that is not UTF-8 (soundfile refuses such text names: hand it a file)."""
    import soundfile as sf
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        sf.write(fh, y, SR, format="WAV")
    return path


def strict(text: str) -> str:
    """``text``, after checking a strict UTF-8 encoder takes it (a lone surrogate would raise)."""
    text.encode("utf-8")
    return text


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("ZOO_HOME", str(folder))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
    return folder


@pytest.fixture(scope="module")
def audio(tmp_path_factory) -> Path:
    """GTZAN style, 3 labels x 3 clips of 1.5 s."""
    root = tmp_path_factory.mktemp("audio")
    write_label_folders(root, ("blues", "jazz", "rock"), per_label=3)
    return root


# -- a small file system of our own (root only), for real full-disk and read-only faults -----------
@dataclass
class Mount:
    path: Path

    def fill(self, leave: int) -> None:
        """Fill the file system up to ``leave`` bytes free."""
        import shutil
        free = shutil.disk_usage(self.path).free
        with open(self.path / "filler", "wb") as fh:
            fh.write(b"\0" * max(0, free - leave))

    def read_only(self) -> None:
        _mount("-o", "remount,ro", str(self.path))


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise OSError(done.stderr.strip() or f"mount exited {done.returncode}")


@pytest.fixture
def tmpfs(tmp_path):
    """Mount a tmpfs of the asked size under the test's folder (skipped where mounting is not allowed)."""
    made = []

    def make(size: str) -> Mount:
        where = tmp_path / f"mnt{len(made)}"
        where.mkdir()
        try:
            _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where))
        except OSError as exc:
            pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {exc}")
        made.append(where)
        return Mount(where)

    yield make
    for where in made:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


# -- names that are not UTF-8 -----------------------------------------------------------------------
def test_shown_escapes_undecodable_bytes_and_leaves_text_alone():
    assert shown(ODD) == ODD_SHOWN == shown(os.fsencode(ODD)) == shown(Path(ODD))
    assert shown("déjà vu.flac") == "déjà vu.flac" and shown(shown(ODD)) == ODD_SHOWN
    assert strict(shown("\ud800 not from bytes")) == "\\ud800 not from bytes"


def test_a_file_name_that_is_not_utf8_is_trained_on_and_predicted_with_escapes(home, tmp_path, capsys, monkeypatch):
    root = tmp_path / "odd"
    write_label_folders(root, ("blues", "jazz", "rock"), per_label=3)
    odd = write_odd(root / "rock" / ODD, music(1.5, seed=7, root_hz=230))
    broken = root / "jazz" / os.fsdecode(b"bad\xfe.wav")
    broken.write_bytes(b"RIFF, but not really" * 50)
    code = main(["run", "lstm+mel:genre", "--data", str(root), "--skip-bad", "--json", "--experiment", "odd-names",
                 *QUICK])
    out, err = capsys.readouterr()  # captured by strict UTF-8 streams: a raw name would have raised
    assert code == 0, err
    res = json.loads(out)
    assert res["data"]["clips"] == 10 and res["data"]["skipped"] == 1
    assert "jazz/bad\\xfe" in err and "\\udc" not in err
    seed = res["per_seed"][0]
    skipped = Path(seed["reports"]["skipped"]).read_bytes().decode("utf-8")
    assert skipped.startswith("jazz/bad\\xfe\t") and "bad\\xfe.wav" in skipped
    for name in ("metrics.json", "classification_report.txt"):
        strict((Path(seed["reports"]["metrics"]).parent / name).read_bytes().decode("utf-8"))
    from mlflow.tracking import MlflowClient
    record = MlflowClient(os.environ["MLFLOW_TRACKING_URI"]).get_run(res["run_id"])
    assert record.info.status == "FINISHED"
    for value in [*record.data.params.values(), *record.data.tags.values()]:
        strict(value)
    assert "1 skipped" in record.data.params["data.description"]

    model = seed["model_dir"]
    missing = tmp_path / os.fsdecode(b"nope\xfe.flac")
    good = root / "blues" / "blues.00000.wav"
    assert main(["predict", model, str(odd), str(good), str(missing), "--format", "csv", "--no-progress"]) == 1
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [Path(r["file"]).name for r in rows] == [ODD_SHOWN, "blues.00000.wav", "nope\\xfe.flac"]
    assert rows[0]["genre_1"] and rows[1]["genre_1"] and not rows[2]["genre_1"]
    assert "nope\\xfe.flac does not exist" in rows[2]["error"]
    assert main(["predict", model, str(odd), "--format", "table", "--no-progress"]) == 0
    assert f"{ODD_SHOWN}  (1.50 s, 1 window)" in capsys.readouterr().out
    assert main(["predict", model, str(odd), "--format", "json", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["files"][0]["file"].endswith(ODD_SHOWN)

    # A file whose prediction fails unexpectedly costs its own row only: the others are printed.
    from zoo.predict import Predictor
    real = Predictor.predict_file

    def flaky(self, path):
        if Path(path) == good:
            raise RuntimeError("the backend fell over")
        return real(self, path)

    monkeypatch.setattr(Predictor, "predict_file", flaky)
    assert main(["predict", model, str(odd), str(good), str(odd), "--format", "csv", "--no-progress"]) == 1
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [bool(r["genre_1"]) for r in rows] == [True, False, True]
    assert rows[1]["error"] == "RuntimeError: the backend fell over"


def test_a_manifest_may_name_files_in_bytes_that_are_not_utf8(tmp_path):
    root = tmp_path / "set"
    write_odd(root / "audio" / ODD, music(1.5, seed=1))
    rows = [{"path": f"audio/s{k}.wav", "label": "ab"[k % 2]} for k in range(6)]
    write_manifest(root, rows)
    with open(root / "manifest.csv", "ab") as fh:  # the line a tool on the same file system writes
        fh.write(b"audio/caf\xe9-\xff.wav,a\n")
    clips = FolderDataset(FolderConfig(), root).clips("frames")
    odd = [c for c in clips if c.id == f"audio/{ODD_SHOWN[:-4]}"]
    assert len(odd) == 1 and Path(odd[0].audio).is_file()


# -- a full disk --------------------------------------------------------------------------------------
def big_request(out: Path, **train) -> RunRequest:
    """A run whose weights (an LSTM of 2 x 256 units, about 8 MB) outweigh its reports (tens of KB)."""
    settings = {"backbone": {"hidden": 256, "layers": 2, "bidirectional": True, "dropout": 0.0}}
    return RunRequest("lstm+chroma:genre", settings=settings, data=separable(6, with_targets=False),
                      train=TrainConfig(epochs=1, patience=0, batch_size=8, device="cpu", **train), out_dir=out)


def no_model_left(folder: Path) -> None:
    model = next(folder.rglob("model"), None)
    left = sorted(p.name for p in model.iterdir()) if model else []
    assert left == [], f"a failed save left {left} in {model}"


def test_a_full_disk_while_the_weights_are_written_leaves_no_weights_and_fails_the_run(tmpfs):
    disk = tmpfs("2m")
    tracker = NullTracker()
    with pytest.raises(StorageError) as err:
        run(big_request(disk.path), registry=Registry(), tracker=tracker)
    message = str(err.value)
    assert "\n" not in message
    # The disk fills at the first large file: the per-epoch checkpoint or the weights, whichever comes first.
    assert re.match(r"cannot write the (model weights|training checkpoint) .*(weights|checkpoint)\.pt: no space left "
                    r"on the device \(", message), message
    assert " free there); free some space, or set ZOO_HOME" in message
    no_model_left(disk.path)
    (record,) = tracker.runs.values()
    assert record.status == "FAILED" and record.tags[FAILURE_TAG] == f"StorageError: {message}"
    assert record.model_dir is None


def test_a_write_that_fails_half_way_leaves_the_old_file_or_none(tmp_path, monkeypatch):
    """The same fault without a tmpfs: the weights' write raises ENOSPC after half of its bytes."""
    import torch

    save = torch.save

    def half_then_full(obj, f, *args, **kwargs):
        if "weights" not in str(getattr(f, "name", f)):  # the per-epoch checkpoint is written as usual
            return save(obj, f, *args, **kwargs)
        f.write(b"PK\x03\x04 half of a zip")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", half_then_full)
    tracker = NullTracker()
    request = RunRequest("lstm+chroma:genre", settings=TINY_LSTM, data=separable(6, with_targets=False),
                         train=TrainConfig(epochs=1, patience=0, device="cpu"), out_dir=tmp_path)
    with pytest.raises(StorageError, match=r"cannot write the model weights .*weights\.pt: no space left on the "
                                           r"device \(.* free there\); free some space"):
        run(request, registry=Registry(), tracker=tracker)
    no_model_left(tmp_path)
    (record,) = tracker.runs.values()
    assert record.status == "FAILED" and "weights.pt: no space left" in record.tags[FAILURE_TAG]

    target = tmp_path / "report.txt"
    write_text(target, "the old report")
    with pytest.raises(StorageError):
        with atomic_file(target, "the report", text=True) as fh:
            fh.write("the new rep")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert target.read_text() == "the old report" and sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [
        "report.txt"]


@pytest.mark.filterwarnings("ignore:feature cache .* cannot be written")  # expected: the cache only costs speed
def test_zoo_run_on_a_full_home_is_one_line_naming_the_path_and_the_free_space(tmpfs, audio, monkeypatch, capsys):
    disk = tmpfs("512k")
    disk.fill(leave=0)
    monkeypatch.setenv("ZOO_HOME", str(disk.path))
    code = main(["run", "lstm+mel:genre", "--data", str(audio), "--no-track", *QUICK])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("zoo: error:")]
    assert f"{disk.path}/runs" in line and ": no space left on the device (" in line and " free there); " in line


# -- a read-only ZOO_HOME -------------------------------------------------------------------------------
def test_a_read_only_home_is_one_line_naming_the_path(tmpfs, audio, monkeypatch, capsys):
    disk = tmpfs("1m")
    disk.read_only()
    monkeypatch.setenv("ZOO_HOME", str(disk.path))
    assert main(["run", "lstm+mel:genre", "--data", str(audio), "--no-track", *QUICK]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"zoo: error: cannot write the run folder {disk.path}/runs: the file "
                          f"system is read-only (")
    assert err.rstrip().endswith("remount it writable, or set ZOO_HOME (or the output folder) to a writable folder")


def test_a_home_under_a_file_is_one_line_naming_the_file(tmp_path, audio, monkeypatch, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where ZOO_HOME's folder should be")
    monkeypatch.setenv("ZOO_HOME", str(blocker / "zoo"))
    assert main(["run", "lstm+mel:genre", "--data", str(audio), "--no-track", *QUICK]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{blocker} is a file where a folder is needed (" in err and "move that file away" in err


def test_a_read_only_file_system_without_a_mount_is_told_the_same_way(tmp_path, monkeypatch):
    """EROFS, injected where no mount is possible: the model's folder cannot be written."""
    real_open = open

    def read_only(file, mode="r", *args, **kwargs):
        if "w" in mode and str(file).startswith(str(tmp_path)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", read_only)
    with pytest.raises(StorageError, match=r"cannot write the model description .*zoo_model\.json: the file "
                                           r"system is read-only \(.* free there\); remount it writable"):
        write_text(tmp_path / "model" / "zoo_model.json", "{}", "the model description")
    assert not (tmp_path / "model" / "zoo_model.json").exists()


# -- a plugin whose build() returns the wrong object, or fails -------------------------------------------
def _module_without_out_dim(config, n_bins):
    from torch import nn
    return nn.Linear(n_bins, 4)


def _raises(config, *args):
    raise ValueError("weights file is from another version")


@dataclass
class _HalfFeature:
    name: str = "half"
    n_bins: str = "12"
    rate: str = "frames"
    sample_rate: int = SR
    hop_length: int = 512

    def settings(self):
        return {}

    def from_audio(self, y, sr):
        return np.zeros((12, 4), np.float32)

    def from_lab(self, fused):
        return fused[:12]


FAKES = {
    "backbone": {
        "a-dict": ComponentSpec(kind="backbone", name="a-dict", build=lambda c, n: {"out_dim": 8}, summary="dict"),
        "no-out-dim": ComponentSpec(kind="backbone", name="no-out-dim", build=_module_without_out_dim, summary="x"),
        "raises": ComponentSpec(kind="backbone", name="raises", build=_raises, summary="raises"),
    },
    "feature": {"half": ComponentSpec(kind="feature", name="half", build=lambda c: _HalfFeature(), summary="half")},
    "task": {"mute": ComponentSpec(kind="task", name="mute", build=lambda c: object(), summary="no task at all")},
    "dataset": {"nothing": ComponentSpec(kind="dataset", name="nothing", build=lambda c, root: None, summary="none")},
}


def fake_registry() -> Registry:
    """The installed components plus the fakes above, as if a distribution ``zoo-fake`` provided them."""
    fakes = tuple(EntryInfo(kind, name, "zoo-fake", "0.1.0", f"test_faults_io:_fake_{kind}_{name.replace('-', '_')}")
                  for kind, specs in FAKES.items() for name in specs)
    return Registry(entries=tuple(installed_entries()) + fakes)


for _kind, _specs in FAKES.items():
    for _name, _spec in _specs.items():
        globals()[f"_fake_{_kind}_{_name.replace('-', '_')}"] = _spec


@pytest.mark.parametrize("kind, name, args, problem", [
    ("backbone", "a-dict", (12,), r"returned a builtins\.dict, not a torch\.nn\.Module"),
    ("backbone", "no-out-dim", (12,), r"returned a torch\.nn\.modules\.linear\.Linear whose out_dim is None, not a "
                                      r"whole number above 0"),
    ("feature", "half", (), r"returned a feature with n_bins='12': each must be a whole number above 0"),
    ("task", "mute", (), r"returned a builtins\.object without name, kind, target, .*so it is not a "
                         r"zoo\.protocols\.Task"),
    ("dataset", "nothing", (Path("."),), r"returned None without name, clips, describe"),
])
def test_build_returning_the_wrong_object_is_a_plugin_error_naming_the_distribution(kind, name, args, problem):
    with pytest.raises(PluginError, match=rf"^plugin zoo-fake\[{name}\] \(zoo-fake==0\.1\.0\): build\(\) of {kind} "
                                          rf"'{name}' {problem}.*upgrade or report it"):
        fake_registry().create(kind, name, None, *args)


def test_build_raising_is_a_plugin_error_naming_the_distribution_with_the_cause():
    with pytest.raises(PluginError, match=r"^plugin zoo-fake\[raises\] \(zoo-fake==0\.1\.0\): building backbone "
                                          r"'raises' failed: ValueError: weights file is from another version") as err:
        fake_registry().create("backbone", "raises", None, 12)
    assert isinstance(err.value.__cause__, ValueError)


@pytest.mark.parametrize("backbone", ["a-dict", "raises"])
def test_a_broken_backbone_fails_the_run_before_any_data_work(backbone, audio, tmp_path, monkeypatch):
    def no_data(*args, **kwargs):
        raise AssertionError("data work began before the backbone was checked")

    monkeypatch.setattr("zoo.data.layout.open_dataset", no_data)
    monkeypatch.setattr("zoo.data.prepare.prepare", no_data)
    request = RunRequest(f"{backbone}+mel:genre", data=DataRequest(path=audio), out_dir=tmp_path)
    with pytest.raises(PluginError, match=rf"plugin zoo-fake\[{backbone}\]"):
        run(request, registry=fake_registry(), workspace=Workspace(home=tmp_path / "home"))
    assert list(tmp_path.iterdir()) == []  # not even the run folder


# -- long clips -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def with_long(tmp_path_factory) -> Path:
    """3 labels x 3 clips of 1.5 s, and one of 12 s among the blues."""
    root = tmp_path_factory.mktemp("long")
    write_label_folders(root, ("blues", "jazz", "rock"), per_label=3)
    write_audio(root / "blues" / "long.wav", np.concatenate([music(3.0, seed=k) for k in range(4)]))
    return root


def test_a_long_clip_is_cut_to_its_middle_max_seconds_and_counted(with_long, tmp_path):
    from zoo.data.audio import load_audio
    mel = Registry().create("feature", "mel")
    frames = int(4.0 * SR) // mel.hop_length + 1

    def prepared(max_seconds):
        return prepare(FolderDataset(FolderConfig(), with_long), {"mel": mel}, rate="frames", progress=False,
                       workers=1, cache_dir=tmp_path, max_seconds=max_seconds)

    for attempt in ("computed", "from the pack"):
        p = prepared(4.0)
        assert p.lengths.max() == frames, attempt
        assert "1 clip(s) longer than 4 s cut to their middle 4 s (--max-seconds)" in p.description, attempt
    long = p.x[p.ids.index("blues/long")]
    y = load_audio(with_long / "blues" / "long.wav", SR)
    start = (y.size - 4 * SR) // 2
    np.testing.assert_allclose(long, mel.from_audio(y[start:start + 4 * SR], SR), atol=1e-4)
    whole = prepared(0)
    assert whole.lengths.max() == y.size // mel.hop_length + 1 and "cut" not in whole.description


def test_zoo_run_says_how_many_clips_max_seconds_cut(with_long, home, capsys):
    assert main(["run", "lstm+mel:genre", "--data", str(with_long), "--no-track", "--max-seconds", "5", *QUICK]) == 0
    assert "1 clip(s) longer than 5 s cut to their middle 5 s (--max-seconds)" in capsys.readouterr().out


# -- a label given to one clip only ------------------------------------------------------------------------
@pytest.fixture
def lonely(tmp_path) -> Path:
    rows = [{"path": f"a{k}.wav", "label": label} for k, label in enumerate("rock rock rock jazz jazz jazz".split())]
    rows.insert(4, {"path": "typo.wav", "label": "rokc"})
    write_manifest(tmp_path / "set", rows)
    return tmp_path / "set"


def test_a_label_on_one_manifest_line_is_warned_naming_the_value_and_its_line(lonely):
    dataset = FolderDataset(FolderConfig(), lonely)
    with pytest.warns(UserWarning, match=r"manifest .*manifest\.csv: 1 label\(s\) given to one clip only, each "
                                         r"becoming a class with no validation or test clip: 'rokc' \(line 6\); "
                                         r"check the spelling .*--min-class-clips 2"):
        dataset.clips("frames")
    assert "1 label(s) given to one clip only: 'rokc' (line 6)" in dataset.describe()


def test_min_class_clips_refuses_the_lonely_class_naming_it_and_the_fix(lonely, home, capsys):
    mel = Registry().create("feature", "mel")
    with pytest.warns(UserWarning), pytest.raises(DataError, match=r"1 class\(es\) have fewer than 2 clips "
                                                                   r"\(--min-class-clips 2\): 'rokc' has 1 \(typo\); "
                                                                   r"fix the labels .*lower --min-class-clips"):
        prepare(FolderDataset(FolderConfig(), lonely), {"mel": mel}, rate="frames", progress=False, workers=1,
                cache_dir=home, min_class_clips=2)
    with pytest.warns(UserWarning):
        code = main(["run", "lstm+mel:genre", "--data", str(lonely), "--no-track", "--min-class-clips", "2", *QUICK])
    err = capsys.readouterr().err
    assert code == 2 and "zoo: error: 1 class(es) have fewer than 2 clips" in err and "Traceback" not in err
