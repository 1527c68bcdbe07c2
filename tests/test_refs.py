"""zoo.refs: every form of model reference resolves to the right folder and run, in one table, against a real store."""
from __future__ import annotations

import shutil
import types
from pathlib import Path

import pytest

from predictfixtures import SPEC, trained_model
from zoo.cli import main
from zoo.errors import ConfigError, RunError
from zoo.refs import ModelRef, resolve

EXPERIMENT = "refs-tests"
TWIN = "feedbeef"
"""The id prefix two runs of the store share (an ambiguous prefix)."""

# Building the store logs a few copies of the one tiny model trained per session: marked slow with it.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("zoo_env_module")]  # zoo register reads its store from the environment


def _twin_runs(c, experiment_id: str) -> list[str]:
    """Two runs whose ids both start with :data:`TWIN` (MLflow draws run ids from uuid4)."""
    import uuid

    from mlflow.store.tracking import sqlalchemy_store
    fake = types.SimpleNamespace(uuid4=lambda: types.SimpleNamespace(hex=TWIN + uuid.uuid4().hex[len(TWIN):]))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sqlalchemy_store, "uuid", fake)
        ids = [c.create_run(experiment_id, tags={"zoo.kind": "run"}).info.run_id for _ in range(2)]
    for run_id in ids:
        c.set_terminated(run_id)
    return ids


@pytest.fixture(scope="module")
def store(tmp_path_factory, workspace):
    """The session's tiny trained model, and runs made from it in experiment :data:`EXPERIMENT`:
    ``single`` (a finished run of recipe lab-lstm-mel), ``p`` (the parent of seeds ``p0`` and ``p1``,
    whose validation accuracies 0.2 and 0.9 make ``p1`` the best; the latest run of recipe
    lab-lstm-chroma), ``q`` (the parent of ``q0`` and ``q1``, which recorded no validation score),
    the registered model refs-net (version 1 from ``single`` with alias champion, version 2 from
    ``p0``), two runs sharing the id prefix :data:`TWIN`, and local folders."""
    from mlflow.tracking import MlflowClient

    from zoo.tracking.mlflow.model_registry import register_model
    from zoo.tracking.mlflow.store import get_experiment
    trained = trained_model(tmp_path_factory, workspace)
    uri = workspace.tracking_uri
    c = MlflowClient(uri)
    exp = get_experiment(c, EXPERIMENT, create=True).experiment_id

    def logged(tags, val=None, parent=None, finish=True):
        tags = {"zoo.kind": "run", "zoo.spec": SPEC, **tags, **({"mlflow.parentRunId": parent} if parent else {})}
        run_id = c.create_run(exp, tags=tags).info.run_id
        if tags["zoo.kind"] == "run":
            c.log_artifacts(run_id, str(trained.model_dir), "model")
        if val is not None:
            c.log_metric(run_id, "final.val.genre.accuracy", val)
        if finish:
            c.set_terminated(run_id)
        return run_id

    s = types.SimpleNamespace(trained=trained, uri=uri)
    s.single = logged({"zoo.recipe": "lab-lstm-mel", "zoo.seed": "0"})
    s.p = logged({"zoo.kind": "seeds", "zoo.recipe": "lab-lstm-chroma"}, finish=False)
    s.p0 = logged({"zoo.seed": "0", "zoo.recipe": "lab-lstm-chroma"}, val=0.2, parent=s.p)
    s.p1 = logged({"zoo.seed": "1", "zoo.recipe": "lab-lstm-chroma"}, val=0.9, parent=s.p)
    c.set_terminated(s.p)
    s.q = logged({"zoo.kind": "seeds"}, finish=False)
    s.q0 = logged({"zoo.seed": "0"}, parent=s.q)
    s.q1 = logged({"zoo.seed": "1"}, parent=s.q)
    c.set_terminated(s.q)
    s.twins = _twin_runs(c, exp)
    register_model(s.single, "refs-net", alias="champion", uri=uri)
    register_model(s.p0, "refs-net", uri=uri)
    root = tmp_path_factory.mktemp("refs")
    s.pyfunc_dir = Path(c.download_artifacts(s.single, "pyfunc_model", str(root)))  # a pyfunc model folder
    s.empty = root / "empty"
    s.empty.mkdir()
    # A RunResult of two seeds, each with its own copy of the model: seed 1 validated better.
    from zoo.engine.runner import RunResult, SeedResult
    seeds = []
    for seed, accuracy in ((0, 0.3), (1, 0.7)):
        model_dir = shutil.copytree(trained.model_dir, root / f"seed{seed}" / "model")
        seeds.append(SeedResult(seed=seed, run_id=None, val={"genre.accuracy": accuracy}, test={}, history=[],
                                best_epoch=0, stopped_early=False, seconds=0.0, folder=model_dir.parent, reports={},
                                model_dir=model_dir))
    s.seeds = seeds
    s.result = RunResult(spec=SPEC, results=seeds, parent_run_id=None, summary={}, data={}, device="cpu",
                         classes=trained.classes, targets=(), tracking="", folder=root)
    return s


# One row per reference form: (the reference, resolve's experiment, the run it must find or a folder,
# a part of its label). The reference and the expectation are read from the store fixture.
FORMS = [
    pytest.param(lambda s: str(s.trained.model_dir), None, "trained", None, id="model folder"),
    pytest.param(lambda s: s.trained.model_dir, None, "trained", None, id="model folder as a Path"),
    pytest.param(lambda s: str(s.trained.model_dir.parent), None, "trained", None, id="seed folder (its model/)"),
    pytest.param(lambda s: str(s.pyfunc_dir), None, "trained", None, id="pyfunc model folder"),
    pytest.param(lambda s: s.seeds[0], None, "seed0", None, id="SeedResult"),
    pytest.param(lambda s: s.result, None, "seed1", "the best of 2 seeds by validation genre.accuracy",
                 id="RunResult of several seeds: the best seed"),
    pytest.param(lambda s: s.single, None, "single", "run ", id="run id"),
    pytest.param(lambda s: s.single.upper(), None, "single", None, id="run id in capitals"),
    pytest.param(lambda s: s.single[:8], EXPERIMENT, "single", None, id="run id prefix in an experiment"),
    pytest.param(lambda s: s.trained.run_id[:6], None, "trained", None, id="run id prefix in any experiment"),
    pytest.param(lambda s: f"runs:/{s.single}", None, "single", None, id="runs:/ID"),
    pytest.param(lambda s: f"runs:/{s.single[:8]}/pyfunc_model", EXPERIMENT, "single", None,
                 id="runs:/PREFIX/PATH"),
    pytest.param(lambda s: "recipe:lab-lstm-mel", EXPERIMENT, "single", "recipe lab-lstm-mel (run ", id="recipe:NAME"),
    pytest.param(lambda s: "lab-lstm-chroma", EXPERIMENT, "p1", "seed 1: the best of 2 seeds",
                 id="recipe name whose latest run has several seeds"),
    pytest.param(lambda s: s.p, None, "p1", "seed 1: the best of 2 seeds by validation genre.accuracy (0.9)",
                 id="parent run: the best seed"),
    pytest.param(lambda s: s.q[:10], EXPERIMENT, "q0", "seed 0: the first of 2 seeds, none recorded",
                 id="parent run without validation scores: the first seed"),
    pytest.param(lambda s: "refs-net", None, "p0", "registered model refs-net version 2", id="NAME"),
    pytest.param(lambda s: "refs-net/1", None, "single", "version 1", id="NAME/VERSION"),
    pytest.param(lambda s: "refs-net/latest", None, "p0", "version 2", id="NAME/latest"),
    pytest.param(lambda s: "refs-net@champion", None, "single", "version 1", id="NAME@ALIAS"),
    pytest.param(lambda s: "models:/refs-net/2", None, "p0", None, id="models:/NAME/VERSION"),
    pytest.param(lambda s: "models:/refs-net@champion", None, "single", None, id="models:/NAME@ALIAS"),
    pytest.param(lambda s: "models:/refs-net", None, "p0", None, id="models:/NAME"),
]


@pytest.mark.parametrize("make, experiment, expected, label", FORMS)
def test_every_reference_form_finds_its_model(store, tmp_path, make, experiment, expected, label):
    ref = resolve(make(store), workdir=tmp_path, experiment=experiment, uri=store.uri)
    assert isinstance(ref, ModelRef) and (ref.folder / "zoo_model.json").is_file() and ref.meta["spec"] == SPEC
    if expected.startswith("seed"):  # a result of zoo.train: that seed's own folder
        assert ref.folder == store.seeds[int(expected[-1])].model_dir
    if expected.startswith("seed") or expected == "trained":  # a folder: the run its zoo_model.json names
        assert ref.run_id == store.trained.run_id and ref.tags["zoo.spec"] == SPEC
    else:
        run_id = getattr(store, expected)
        assert ref.run_id == run_id and ref.folder.is_relative_to(tmp_path)
        assert ref.tags["zoo.spec"] == SPEC and ref.tags.get("zoo.seed") == {"p1": "1", "q0": "0"}.get(expected, "0")
    assert label is None or label in ref.label, ref.label


ERRORS = [
    pytest.param(lambda s: "nothing-named-so", None, ConfigError,
                 "MODEL 'nothing-named-so' names no model: no folder ./nothing-named-so here; no registered model "
                 "'nothing-named-so'", id="unknown name"),
    pytest.param(lambda s: TWIN, EXPERIMENT, ConfigError, "run id prefix 'feedbeef' is ambiguous: ",
                 id="ambiguous run id prefix"),
    pytest.param(lambda s: "abc", None, ConfigError, "not a run id (32 hex digits, or a unique prefix of 4 or more)",
                 id="a prefix too short"),
    pytest.param(lambda s: "recipe:lab-cnn-mel", EXPERIMENT, ConfigError,
                 "Recipe 'lab-cnn-mel' has no finished run in experiment 'refs-tests' (train it first: zoo run "
                 "lab-cnn-mel)", id="recipe never trained"),
    pytest.param(lambda s: "recipe:lab-cnn-mell", None, ConfigError, "did you mean 'lab-cnn-mel'",
                 id="unknown recipe"),
    pytest.param(lambda s: "refs-net@nope", None, ConfigError,
                 "registered model 'refs-net' has no alias 'nope' (versions: 1, 2; aliases: champion)",
                 id="registered name without that alias"),
    pytest.param(lambda s: "refs-net/9", None, ConfigError, "has no version 9 (versions: 1, 2; aliases: champion)",
                 id="registered name without that version"),
    pytest.param(lambda s: "models:/never-registered", None, ConfigError,
                 "register a trained run first: zoo register RUN_ID never-registered", id="registered name unknown"),
    pytest.param(lambda s: str(s.empty), None, ConfigError, "holds no packaged zoo model", id="folder without a model"),
    pytest.param(lambda s: str(s.empty / "gone"), None, ConfigError, "does not exist; check the path",
                 id="folder that does not exist"),
    pytest.param(lambda s: "runs:/" + "0" * 32, None, ConfigError,
                 f"no run {'0' * 32} in the MLflow store sqlite:///", id="runs:/ID of no run"),
    pytest.param(lambda s: f"runs:/{s.twins[0]}", None, RunError, "has no artifact 'model'",
                 id="run without a model"),
]


@pytest.mark.parametrize("make, experiment, error, message", ERRORS)
def test_a_reference_that_names_nothing_says_what_was_tried_and_the_fix(store, tmp_path, make, experiment, error,
                                                                        message):
    with pytest.raises(error) as caught:
        resolve(make(store), workdir=tmp_path, experiment=experiment, uri=store.uri)
    assert message in str(caught.value)
    if "ambiguous" in message:
        assert all(run_id in str(caught.value) for run_id in store.twins)


def test_a_bare_word_that_names_two_things_is_refused_with_the_explicit_forms(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(store.trained.model_dir, tmp_path / "refs-net")
    with pytest.raises(ConfigError) as caught:
        resolve("refs-net", workdir=tmp_path / "w", uri=store.uri)
    text = str(caught.value)
    assert "MODEL 'refs-net' is ambiguous: it names the folder ./refs-net and the registered model 'refs-net'" in text
    assert "./refs-net for the folder, models:/refs-net for the registered model" in text
    assert resolve("./refs-net", workdir=tmp_path / "w", uri=store.uri).folder == Path("refs-net")
    assert resolve("models:/refs-net", workdir=tmp_path / "w", uri=store.uri).run_id == store.p0


def test_zoo_register_takes_a_prefix_of_a_parent_run_and_registers_its_best_seed(store, tmp_path, capsys):
    import json

    from mlflow.tracking import MlflowClient
    assert main(["register", store.p[:8], "refs-best"]) == 0
    assert f"registered run {store.p}, seed 1: the best of 2 seeds" in capsys.readouterr().out
    (version,) = MlflowClient(store.uri).search_model_versions("name = 'refs-best'")
    assert version.run_id == store.p1
    untracked = shutil.copytree(store.trained.model_dir, tmp_path / "model")
    meta = json.loads((untracked / "zoo_model.json").read_text())
    (untracked / "zoo_model.json").write_text(json.dumps({**meta, "run_id": None}))
    assert main(["register", str(untracked), "refs-best"]) == 2
    assert "is a model folder no tracked run wrote: only a run can be registered" in capsys.readouterr().err


def test_importing_the_resolver_loads_neither_mlflow_nor_torch():
    import subprocess
    import sys
    code = "import sys, zoo.refs; print(sorted(m for m in ('mlflow', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
