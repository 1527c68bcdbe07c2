"""Tasks that own their classes (zoo.protocols.OwnsClasses): a binary "is it Rock" task and a genre ->
family task, installed from an outside distribution as docs/writing-a-plugin.md writes them, trained
by ``zoo run`` with the default ``train.balance=auto``; class weights, reports, confusion matrices and
``zoo predict`` count the task's classes. Loss weights reach a task as an argument, never as an attribute."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from datafixtures import music, write_audio, write_label_folders
from enginefixtures import TINY_LSTM, separable
from pluginfactory import pip_install
from zoo.errors import PluginError, RunError
from zoo.protocols import OwnsClasses, takes_loss_weight
from zoo.tasks import Classification, ClassificationConfig

class _Width(torch.nn.Identity):
    out_dim = 12


DOC = Path(__file__).resolve().parents[1] / "docs" / "writing-a-plugin.md"
GENRES = ("Rock", "Metal", "Jazz", "Blues", "Electronic", "Classical")
SMALL = ["--set", "backbone.hidden=8", "--set", "backbone.layers=1", "--set", "train.batch_size=8",
         "--epochs", "2", "--no-progress", "--workers", "1"]


def _section() -> str:
    text = DOC.read_text()
    return text[text.index("## 7. Tasks with classes of their own"):text.index("## When something goes wrong")]


def _block(lang: str, marker: str) -> str:
    found = [b for b in re.findall(rf"```{lang}\n(.*?)```", _section(), flags=re.S) if marker in b]
    assert len(found) == 1, f"{len(found)} {lang} blocks contain {marker!r}"
    return found[0]


def _module():
    """The guide's module, executed as written (without installing it)."""
    namespace: dict = {"__name__": "zoo_genre_groups_doc"}
    exec(compile(_block("python", "class IsRock"), "zoo_genre_groups", "exec"), namespace)
    return namespace


# -- the engine's side, in process -------------------------------------------------------------
def test_a_task_with_its_own_classes_gets_its_labels_mapped_and_its_schema_from_them():
    from zoo.engine.batches import task_classes, task_targets
    mod = _module()
    rock = mod["is_rock"].build(ClassificationConfig())
    assert isinstance(rock, OwnsClasses) and takes_loss_weight(rock)
    prepared = separable(4, classes=("Rock", "Jazz", "Blues"))
    assert task_classes(rock, prepared) == ("Rock", "other")
    y = task_targets(prepared, {"is-rock": rock})["is-rock"]
    want = np.where(prepared.labels == 0, 0, 1)  # Rock is class 0 of the data set and of the task
    np.testing.assert_array_equal(y, want)


def test_a_label_the_task_leaves_out_is_unlabelled_and_a_bad_map_label_is_named():
    from zoo.engine.batches import task_targets
    family = _module()["genre_family"].build(ClassificationConfig())
    prepared = separable(3, classes=("Rock", "Jazz", "Polka"))
    y = task_targets(prepared, {"genre-family": family})["genre-family"]
    assert set(y[prepared.labels == 2]) == {-1}  # Polka: no family
    assert set(y[prepared.labels == 0]) == {family.classes.index("rock")}

    class Broken(Classification):
        classes = ("yes", "no")

        def map_label(self, label):
            return "maybe"
    with pytest.raises(PluginError, match=r"task 'broken': map_label\('Rock'\) .* gave 'maybe'.*yes, no"):
        task_targets(prepared, {"broken": Broken("broken", ClassificationConfig())})


def test_class_weights_span_the_tasks_classes_and_reach_the_loss_as_an_argument():
    from zoo.engine.batches import make_splits, Normaliser
    from zoo.engine.train import _set_balance
    from zoo.engine.trainconfig import TrainConfig
    from zoo.model.model import build_model
    rock = _module()["is_rock"].build(ClassificationConfig())
    prepared = separable(6, classes=("Rock", "Jazz", "Blues"))
    norm = Normaliser.fit(prepared.clips(prepared.indices("train")))
    splits = make_splits(prepared, {"is-rock": rock}, norm, torch.device("cpu"))
    model = build_model(_Width(), {"is-rock": rock}, {"is-rock": rock.schema(rock.classes)})
    labels, weights = _set_balance(model, splits["train"], TrainConfig())  # balance=auto
    train_y = splits["train"].y_host["is-rock"]
    n_rock, n_other = int((train_y == 0).sum()), int((train_y == 1).sum())
    np.testing.assert_allclose(weights["is-rock"].numpy(), [len(train_y) / (2 * n_rock), len(train_y) / (2 * n_other)],
                               rtol=1e-6)
    assert not hasattr(rock, "class_weight")  # nothing was set on the task


class _OldStyle(Classification):
    """A task written before ``loss(output, y, weight=None)``: it reads ``self.class_weight``."""

    def __init__(self):
        super().__init__("old", ClassificationConfig())
        self.class_weight = None

    def loss(self, output, y):
        return torch.nn.functional.cross_entropy(output.float(), y, weight=self.class_weight, ignore_index=-1)


class _NoWeight(Classification):
    def loss(self, output, y):
        return torch.nn.functional.cross_entropy(output.float(), y, ignore_index=-1)


def _balance(task, balance):
    from zoo.engine.batches import make_splits, Normaliser
    from zoo.engine.train import _set_balance
    from zoo.engine.trainconfig import TrainConfig
    from zoo.model.model import build_model
    prepared = separable(6)
    norm = Normaliser.fit(prepared.clips(prepared.indices("train")))
    splits = make_splits(prepared, {task.name: task}, norm, torch.device("cpu"))
    model = build_model(_Width(), {task.name: task}, {task.name: task.schema(prepared.classes)})
    return _set_balance(model, splits["train"], TrainConfig(balance=balance))


def test_an_old_style_task_keeps_its_weights_with_a_deprecation_and_one_without_is_told():
    old = _OldStyle()
    with pytest.warns(FutureWarning, match="task 'old': its loss takes no weight.*deprecated.*weight=None"):
        _, weights = _balance(old, "auto")
    assert weights == {} and old.class_weight is not None and old.class_weight.shape == (3,)
    with pytest.warns(UserWarning, match="task 'plain' trains unweighted under train.balance=auto"):
        _balance(_NoWeight("plain", ClassificationConfig()), "auto")
    with pytest.raises(RunError, match="train.balance=weights cannot weigh task 'plain'.*weight=None"):
        _balance(_NoWeight("plain", ClassificationConfig()), "weights")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _balance(Classification("genre", ClassificationConfig()), "auto")  # the built-in: no warning


def test_check_task_checks_own_classes_and_the_loss_weight():
    from zoo.testing import check_task

    class TooFew(Classification):
        classes = ("only",)

        def map_label(self, label):
            return "only"
    with pytest.raises(AssertionError, match="classes must be a tuple of at least 2"):
        check_task(TooFew("few", ClassificationConfig()))

    class Ignores(Classification):
        def loss(self, output, y, weight=None):
            w = torch.linspace(1.0, 3.0, output.shape[-1]) if weight is not None else None
            return torch.nn.functional.cross_entropy(output.float(), y, weight=w, ignore_index=-1)
    with pytest.raises(AssertionError, match=r"weight=ones\(3\).*must equal loss\(output, y\)"):
        check_task(Ignores("ignores", ClassificationConfig()))
    with pytest.warns(FutureWarning, match="loss\\(output, y\\) takes no weight"):
        check_task(_NoWeight("plain", ClassificationConfig()))


# -- from an installed outside distribution, through the CLI -----------------------------------
@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    root = tmp_path_factory.mktemp("genre-groups")
    project = root / "zoo-genre-groups"
    (project / "zoo_genre_groups").mkdir(parents=True)
    (project / "zoo_genre_groups" / "__init__.py").write_text(_block("python", "class IsRock"))
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "zoo-genre-groups"\nversion = "0.1.0"\n\n'
        '[tool.setuptools]\npackages = ["zoo_genre_groups"]\n\n'
        '[project.entry-points."music_zoo.tasks"]\n'
        'is-rock = "zoo_genre_groups:is_rock"\ngenre-family = "zoo_genre_groups:genre_family"\n')
    site = root / "site"
    pip_install([project], site)
    data = root / "genres"
    write_label_folders(data, GENRES, per_label=6)
    return site, data


def _zoo(args, env, cwd):
    return subprocess.run([sys.executable, "-m", "zoo", *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def _commands() -> list[list[str]]:
    return [line.split("#")[0].split()[1:] for line in _block("bash", "is-rock").splitlines() if line.strip()]


def test_the_guides_genre_groups_install_pass_the_contract_train_report_and_predict(installed, zoo_env, tmp_path):
    site, data = installed
    tests_dir = Path(__file__).resolve().parent
    env = dict(zoo_env, PYTHONPATH=os.pathsep.join([str(site), str(tests_dir)]))
    listed = _zoo(["list", "task"], env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"^\s*is-rock\s+zoo-genre-groups==0\.1\.0", listed.stdout, flags=re.M), listed.stdout
    assert re.search(r"^\s*genre-family\s+zoo-genre-groups==0\.1\.0", listed.stdout, flags=re.M), listed.stdout

    check = _block("python", "check_task(zoo_genre_groups.is_rock)") + \
        "\ntest_the_genre_groups_meet_the_task_contract()\nprint('contract ok')\n"
    ran = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert ran.returncode == 0 and "contract ok" in ran.stdout, ran.stderr[-3000:]

    rock_cmd, both_cmd = _commands()
    assert rock_cmd[:2] == ["run", "lstm+chroma:is-rock"] and both_cmd[:2] == ["run", "lstm+chroma:genre,genre-family"]
    done = _zoo([*rock_cmd, "--data", str(data), *SMALL, "--json"], env, tmp_path)  # train.balance: the default
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(done.stdout)
    reports = Path(doc["folder"]) / "seed0" / "reports"
    per_class = json.loads((reports / "metrics.json").read_text())["per_class"]["is-rock"]
    assert per_class["classes"] == ["Rock", "other"]
    confusion = np.array(per_class["confusion"])
    test_clips = doc["data"]["counts"]["test"]
    assert confusion.shape == (2, 2) and confusion.sum() == test_clips  # every test clip counted once
    assert per_class["report"]["Rock"]["support"] + per_class["report"]["other"]["support"] == test_clips
    report = (reports / "classification_report.txt").read_text()
    assert "Rock" in report and "other" in report and "Jazz" not in report
    config = (Path(doc["folder"]) / "config.yaml").read_text()
    assert "balance: auto" in config

    write_audio(tmp_path / "song.wav", music(2.0, seed=5))
    predicted = _zoo(["predict", str(Path(doc["folder"]) / "seed0" / "model"), str(tmp_path / "song.wav"),
                      "--format", "json"], env, tmp_path)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    doc_p = json.loads(predicted.stdout)
    (record,) = doc_p["files"]
    probabilities = record["predictions"]["is-rock"]["probabilities"]
    assert set(probabilities) == {"Rock", "other"} and sum(probabilities.values()) == pytest.approx(1.0, abs=1e-3)

    # Scored on genres it never saw (Punk, Pop): its own map_label places them, no data-set class to match.
    other = tmp_path / "other-genres"
    write_label_folders(other, ("Punk", "Pop", "Rock"), per_label=3)
    scored = subprocess.run([sys.executable, "-c", (
        "import sys, zoo\n"
        f"r = zoo.evaluate({str(Path(doc['folder']) / 'seed0' / 'model')!r}, {str(other)!r}, split='all', "
        f"out_dir={str(tmp_path / 'eval')!r})\n"
        "print(r.clips, sorted(r.metrics['is-rock']))\n")], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert scored.returncode == 0, scored.stderr[-3000:]
    assert scored.stdout.split()[0] == "9" and "accuracy" in scored.stdout, scored.stdout

    done = _zoo([*both_cmd, "--data", str(data), *SMALL, "--json"], env, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(done.stdout)
    per_class = json.loads((Path(doc["folder"]) / "seed0" / "reports" / "metrics.json").read_text())["per_class"]
    assert per_class["genre"]["classes"] == sorted(GENRES)
    assert per_class["genre-family"]["classes"] == ["art", "electronic", "rock", "roots"]
    assert np.array(per_class["genre-family"]["confusion"]).sum() == doc["data"]["counts"]["test"]
    assert {"genre-family.accuracy", "genre.accuracy"} <= set(doc["test"])


# -- the optional members the engine reads are declared Protocols, and zoo.testing checks them ----------
def test_the_engine_reads_no_plugin_member_by_a_name_string():
    """Every optional member is read through an isinstance check on a zoo.protocols Protocol."""
    root = Path(__file__).resolve().parents[1] / "zoo"
    names = ("former_defaults", "train_defaults", "head_defaults", "named_blocks", "restrict", "only",
             "mapping_report", "progress", "standardise", "reads_lab", "threshold", "min_samples", "batch_size", "from_audio_batch", "picture",
             "class_weight", "pos_weight", "config")
    pattern = re.compile(r"""(getattr|hasattr)\([^)]*["'](%s)["']""" % "|".join(names))
    found = [f"{p.relative_to(root)}:{i}" for p in root.rglob("*.py") if p.name != "train.py"
             for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []


def test_check_former_defaults_and_check_dataset(tmp_path):
    from datafixtures import write_kaggle
    from zoo.protocols import ComponentSpec
    from zoo.registry import Registry
    from zoo.testing import check_dataset, check_former_defaults

    check_former_defaults(Registry().load("backbone", "lstm"))  # {"conv_layers": 0}

    @dataclass(frozen=True)
    class Config:
        width: int = 4
        former_defaults: ClassVar[dict] = {"depth": 1}
    spec = ComponentSpec(kind="task", name="wide", config=Config, build=lambda c: None, summary="")
    with pytest.raises(AssertionError, match="former_defaults names depth, not fields of Config"):
        check_former_defaults(spec)

    write_kaggle(tmp_path / "kaggle")
    check_dataset(Registry().create("dataset", "kaggle", {}, tmp_path / "kaggle"))  # with mapping_report
    write_label_folders(tmp_path / "folders", ("a", "b"), per_label=2)
    check_dataset(Registry().create("dataset", "folder", {}, tmp_path / "folders"))

    class Noisy:
        name, progress = "noisy", "yes"

        def clips(self, rate):
            return []

        def describe(self):
            return "noisy"
    with pytest.raises(AssertionError, match="progress must be a bool"):
        check_dataset(Noisy())
