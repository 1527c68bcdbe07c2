"""Turn any model reference into a packaged model folder on this machine: the one resolver.

``zoo predict``, ``zoo embed``, ``zoo run --from``, ``zoo register``, ``zoo run --register`` and
the Python API (``zoo.load``, ``zoo.evaluate``, ``zoo.open_model``, ``init_from``) all call
:func:`resolve`, which accepts::

    path/to/folder           a packaged model folder (zoo_model.json), a run's seed folder (its model/)
                             or an MLflow pyfunc model folder (its artifacts/<one>/)
    RunResult, SeedResult    what zoo.train returned
    RUN_ID, PREFIX           an MLflow run, by its id or a unique prefix of it (4 or more hex digits,
                             as git takes them: `zoo compare` prints 8)
    runs:/RUN_ID[/PATH]      that run's model/ (or PATH) artifacts; RUN_ID may be a prefix
    RECIPE, recipe:RECIPE    a recipe of registry.yaml: its latest FINISHED training run
    NAME, NAME/VERSION, NAME/latest, NAME@ALIAS
                             a registered model: its latest version, that version, the alias's version
    models:/NAME[/VERSION|@ALIAS]   the same, in MLflow's spelling

Several seeds stand for one model by one rule, everywhere (a parent run, a recipe run with
``--seeds``, a RunResult): the seed with the best validation score on the first task's primary
metric (``final.val.<task>.<metric>`` of its run, ``SeedResult.val``), the lowest seed of a tie;
the first (lowest) seed when no seed recorded that score. The label says which seed and why.

A bare word may name several of these: the zoo then refuses to guess and names the explicit
forms. ``import zoo.refs`` loads neither MLflow nor torch: a reference that needs them loads them.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from .errors import ConfigError, RunError
from .tracking.credentials import redact_uri

if TYPE_CHECKING:
    from .tracking.mlflow.queries import Store

_SEEDS_KIND = "seeds"
_RUN_ID = re.compile(r"^[0-9a-fA-F]{32}$")
_PREFIX = re.compile(r"^[0-9a-fA-F]{4,31}$")
_VERSION = re.compile(r"^([^/@]+)/(\d+|latest)$")
_VAL = "final.val."
"""Prefix of a seed run's validation metrics (as the runner logs them)."""


@dataclass(frozen=True)
class ModelRef:
    """A packaged model on this machine and where it is recorded.

    ``folder`` holds ``zoo_model.json`` and ``weights.pt``; ``meta`` is the parsed
    ``zoo_model.json``; ``run_id`` the MLflow run that trained it (None for a folder no tracked run
    wrote); ``label`` says how the user named it, for people ("recipe lab-cnn-mel (run 3f2a...)").
    ``tags`` (that run's tags, {} without a run) are read from the store on first use.
    """

    folder: Path
    meta: dict[str, Any] = field(repr=False)
    run_id: str | None
    label: str
    uri: str | None = field(default=None, repr=False)
    known_tags: Mapping[str, str] | None = field(default=None, repr=False, compare=False)

    @cached_property
    def tags(self) -> dict[str, str]:
        """The tags of run ``run_id`` ({} when there is no run, or the store does not know it)."""
        if self.known_tags is not None:
            return dict(self.known_tags)
        if not self.run_id:
            return {}
        from .tracking.mlflow.queries import run_tags
        return run_tags(self.run_id, _store_uri(self.uri))


def resolve(ref: Any, *, workdir: Path, experiment: str | None = None, uri: str | None = None) -> ModelRef:
    """The packaged model ``ref`` names (any form of the module docstring), copied under ``workdir``
    when it is held in the MLflow store ``uri`` (default: the environment's, see
    :class:`~zoo.workspace.Workspace`).

    ``experiment`` limits recipe look-ups and run-id prefixes to that experiment (None: every
    experiment; a full run id or a registered name is found anywhere). Raises ConfigError when
    ``ref`` names nothing or several things, naming what was tried and the fix; RunError when what
    it names holds no packaged model.
    """
    if isinstance(ref, os.PathLike):
        return _from_folder(Path(ref).expanduser(), str(ref), uri)
    if not isinstance(ref, str):
        return _from_result(ref, uri)
    return _Lookup(Path(workdir), experiment, uri).text(ref.strip())


def _store_uri(uri: str | None) -> str:
    if uri:
        return uri
    from .workspace import Workspace
    return Workspace.from_env().tracking_uri


# -- local references: folders and results of zoo.train -------------------------------------------
def _from_folder(path: Path, label: str, uri: str | None = None) -> ModelRef:
    from .engine.package import META_FILE, find_model_folder, read_meta
    if not path.exists():
        raise ConfigError(f"model folder {path} does not exist; check the path (`zoo run` prints its model folder)")
    folder = find_model_folder(path)
    if folder is None:
        raise ConfigError(
            f"{path} holds no packaged zoo model ({META_FILE} is neither in it, in {path / 'model'}, nor in "
            f"one artifacts/* folder); give the model folder `zoo run` printed (.../seed0/model)"
        )
    meta = read_meta(folder)
    return ModelRef(folder, meta, meta.get("run_id") or None, label, uri)


def _from_result(ref: Any, uri: str | None) -> ModelRef:
    from .engine.package import read_meta
    from .engine.runner import RunResult, SeedResult
    if isinstance(ref, SeedResult):
        if ref.model_dir is None:
            raise ConfigError(f"seed {ref.seed} has no packaged model (an overfit check saves none); train normally")
        return _from_folder(Path(ref.model_dir), str(ref.model_dir), uri)
    if isinstance(ref, RunResult):
        seeds = [r for r in ref.results if r.model_dir is not None]
        if not seeds:
            raise ConfigError("this run saved no packaged model (an overfit check saves none); train normally")
        chosen, why = _pick_seed([(r.seed, r.val, r) for r in seeds], read_meta(seeds[0].model_dir))
        found = _from_folder(Path(chosen.model_dir), str(chosen.model_dir), uri)
        return found if not why else ModelRef(found.folder, found.meta, found.run_id, f"{found.label} ({why})", uri)
    raise ConfigError(
        f"a model reference is a folder, a run id, a recipe or registered name, or a result of zoo.train; "
        f"got a {type(ref).__name__}"
    )


def _pick_seed(seeds: list[tuple[int, Mapping[str, float], Any]], meta: Mapping[str, Any]) -> tuple[Any, str]:
    """The seed rule: ``(item, why)`` of ``seeds`` (``(seed, validation metrics, item)`` with flat
    ``"genre.accuracy"`` keys); ``meta`` (any seed's ``zoo_model.json``) names the primary metric.
    ``why`` is "" for a single seed."""
    ordered = sorted(seeds, key=lambda s: s[0])
    if len(ordered) == 1:
        return ordered[0][2], ""
    tasks = meta.get("tasks") or {}
    if tasks:
        task, info = next(iter(tasks.items()))
        key = f"{task}.{info.get('primary_metric')}"
        sign = 1.0 if info.get("greater_is_better", True) else -1.0
        scored = [s for s in ordered if _finite(s[1].get(key))]
        if scored:
            best = max(scored, key=lambda s: sign * float(s[1][key]))  # max keeps the first (lowest seed) of a tie
            return best[2], (f"seed {best[0]}: the best of {len(ordered)} seeds by validation {key} "
                             f"({float(best[1][key]):.4g})")
    return ordered[0][2], f"seed {ordered[0][0]}: the first of {len(ordered)} seeds, none recorded a validation score"


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


# -- references held in the MLflow store ----------------------------------------------------------
class _Lookup:
    """One resolution of a text reference: where downloads go, the experiment, the store."""

    def __init__(self, workdir: Path, experiment: str | None, uri: str | None):
        self.workdir, self.experiment, self.uri = workdir, experiment, uri

    @cached_property
    def store(self) -> Store:
        """The look-ups on the MLflow store (:class:`zoo.tracking.mlflow.queries.Store`), opened on the first."""
        from .tracking.mlflow.queries import Store
        return Store(_store_uri(self.uri))

    @property
    def where(self) -> str:
        return f"experiment '{self.experiment}'" if self.experiment else "any experiment"

    def text(self, text: str) -> ModelRef:
        if not text:
            raise ConfigError("no MODEL given; give a model folder, a run id, a registered model name or a recipe name")
        if text.startswith("models:/"):
            return self.registered(text[len("models:/"):])
        if text.startswith("runs:/"):
            run_id, _, sub = text[len("runs:/"):].partition("/")
            return self.from_run(self.run(run_id), sub.strip("/") or None, "run")
        if text.startswith("recipe:"):
            return self.recipe(text[len("recipe:"):])
        path = Path(text).expanduser()
        pathlike = "/" in text or "\\" in text or text.startswith((".", "~"))
        if pathlike:
            if not path.exists() and _VERSION.match(text):
                return self.registered(text)
            return _from_folder(path, text, self.uri)
        if "@" in text and not path.exists():
            return self.registered(text)
        return self.bare(text, path if path.exists() else None)

    # A bare word: a folder here, a registered model, a recipe with a run, or a run id (prefix).
    def bare(self, name: str, folder: Path | None) -> ModelRef:
        found: list[tuple[str, Callable[[], ModelRef]]] = []
        tried: list[str] = []
        if folder is not None:
            found.append((f"the folder ./{name}", lambda: _from_folder(folder, name, self.uri)))
        else:
            tried.append(f"no folder ./{name} here")
        if self.store.registered_model(name) is not None:
            found.append((f"the registered model '{name}' (models:/{name})", lambda: self.registered(name)))
        else:
            tried.append(f"no registered model '{name}' in {redact_uri(self.store.tracking_uri)} ({self.store.registered_names()})")
        run = self.recipe_run(name)
        if isinstance(run, str):
            tried.append(run)
        else:
            found.append((f"recipe '{name}' (its latest finished run {run.info.run_id}; recipe:{name})",
                          lambda: self.from_run(run, None, f"recipe {name}")))
        if _RUN_ID.match(name) or _PREFIX.match(name):
            runs = self.runs(name)
            if len(runs) == 1:
                found.append((f"run {runs[0].info.run_id} (runs:/{runs[0].info.run_id})",
                              lambda: self.from_run(runs[0], None, "run")))
            elif runs:
                # self.run raises for an ambiguous prefix, listing the runs
                found.append((f"{len(runs)} runs whose ids start with '{name}'",
                              lambda: self.from_run(self.run(name), None, "run")))
            else:
                tried.append(self.no_run(name))
        else:
            tried.append("not a run id (32 hex digits, or a unique prefix of 4 or more)")
        if len(found) == 1:
            return found[0][1]()
        if found:
            raise ConfigError(
                f"MODEL '{name}' is ambiguous: it names {' and '.join(w for w, _ in found)}; say which: ./{name} for "
                f"the folder, models:/{name} for the registered model, recipe:{name} for the recipe, runs:/ID for a run"
            )
        raise ConfigError(
            f"MODEL '{name}' names no model: {'; '.join(tried)}. Give a model folder, a run id, a registered model "
            f"(zoo register RUN NAME) or a recipe you trained (zoo run RECIPE first)"
        )

    # Runs: by id or unique prefix.
    def runs(self, text: str) -> list[Any]:
        """The runs ``text`` (an id or a prefix, any case) may mean."""
        text = text.lower()
        if _RUN_ID.match(text):
            run = self.store.get_run(text)
            return [run] if run is not None else []
        return self.store.runs_with_prefix(text, self.experiment)

    def no_run(self, text: str) -> str:
        if _RUN_ID.match(text):
            return f"no run {text.lower()} in the MLflow store {redact_uri(self.store.tracking_uri)}"
        return f"no run in {self.where} of the MLflow store {redact_uri(self.store.tracking_uri)} has an id starting '{text.lower()}'"

    def run(self, text: str) -> Any:
        """The one run ``text`` names, or ConfigError: not a run id, no such run, or an ambiguous prefix."""
        if not (_RUN_ID.match(text) or _PREFIX.match(text)):
            raise ConfigError(f"'{text}' is not a run id: give its 32 hex digits or a unique prefix of 4 or more "
                              f"(`zoo compare` lists run ids)")
        runs = self.runs(text)
        if not runs:
            raise ConfigError(f"{self.no_run(text)}; pick a run id from `zoo compare`")
        if len(runs) > 1:
            listed = ", ".join(f"{r.info.run_id} ({r.info.run_name or 'unnamed'}, "
                               f"{self.store.experiment_name(r.info.experiment_id)})" for r in runs[:10])
            more = f" and {len(runs) - 10} more" if len(runs) > 10 else ""
            raise ConfigError(f"run id prefix '{text.lower()}' is ambiguous: {listed}{more} start with it; "
                              f"give more of the id")
        return runs[0]

    def from_run(self, run: Any, sub: str | None, how: str) -> ModelRef:
        """The model of ``run``: its ``sub`` artifacts (default model/); a parent of several seeds
        stands for the seed the seed rule picks. ``how`` starts the label ("run", "recipe NAME")."""
        from .engine.package import META_FILE, find_model_folder, read_meta
        run_id = run.info.run_id
        label = f"{how} {run_id}" if how == "run" else f"{how} (run {run_id})"
        if sub is None and run.data.tags.get("zoo.kind") == _SEEDS_KIND:
            run, why = self.best_seed(run)
            label, run_id = f"{label}, {why}, run {run.info.run_id}", run.info.run_id
        local = self.store.download_run_files(run_id, sub or "model", self.workdir / run_id)
        folder = find_model_folder(local)
        if folder is None:
            raise RunError(f"the artifacts '{sub or 'model'}' of run {run_id} hold no {META_FILE}: not a zoo model")
        return ModelRef(folder, read_meta(folder), run_id, label, self.uri, dict(run.data.tags))

    def best_seed(self, parent: Any) -> tuple[Any, str]:
        """The seed run of the parent run ``parent`` the seed rule picks, and why."""
        from .engine.package import META_FILE, read_meta
        children = self.store.seed_runs(parent)
        if not children:
            raise ConfigError(
                f"run {parent.info.run_id} is the parent of several seeds but none of its seed runs finished; "
                f"give a finished seed run's id (zoo compare lists them) or re-run the training"
            )
        if len(children) == 1:
            return children[0], f"its one finished seed {children[0].data.tags.get('zoo.seed', '?')}"
        first = children[0].info.run_id
        meta_file = self.store.download_run_files(first, f"model/{META_FILE}", self.workdir / first / "meta")
        seeds = [(int(r.data.tags.get("zoo.seed", "0") or 0),
                  {k[len(_VAL):]: v for k, v in r.data.metrics.items() if k.startswith(_VAL)}, r) for r in children]
        return _pick_seed(seeds, read_meta(meta_file.parent))

    # Recipes.
    def recipe_run(self, name: str) -> Any:
        """The latest finished run of recipe ``name``, or a string saying why there is none."""
        from .recipes import load_recipes
        if name not in load_recipes():
            return "not a recipe of registry.yaml"
        run = self.store.latest_recipe_run(name, self.experiment)
        if run is None:
            return f"recipe '{name}' has no finished run in {self.where} (train it first: zoo run {name})"
        return run

    def recipe(self, name: str) -> ModelRef:
        from .recipes import get_recipe
        get_recipe(name)  # an unknown name gets the list and a suggestion
        run = self.recipe_run(name)
        if isinstance(run, str):
            raise ConfigError(run[0].upper() + run[1:])
        return self.from_run(run, None, f"recipe {name}")

    # The model registry.
    def registered(self, spec: str) -> ModelRef:
        """``NAME``, ``NAME/VERSION``, ``NAME/latest`` or ``NAME@ALIAS`` of the model registry."""
        from .engine.package import META_FILE, find_model_folder, read_meta
        name, version, alias = spec.strip("/"), None, None
        if "@" in name:
            name, alias = name.split("@", 1)
        elif "/" in name:
            name, version = name.split("/", 1)
        if version == "latest":
            version = None
        if not name or "/" in name or (version is not None and not version.isdigit()) or alias == "":
            raise ConfigError(f"model reference '{spec}': expected NAME, NAME/VERSION or NAME@ALIAS (e.g. genre-net/2)")
        if self.store.registered_model(name) is None:
            raise ConfigError(f"no registered model '{name}' in {redact_uri(self.store.tracking_uri)} ({self.store.registered_names()}); "
                              f"register a trained run first: zoo register RUN_ID {name}")
        mv = self.store.model_version(name, version, alias)
        if mv is None:
            what = f"alias '{alias}'" if alias else f"version {version}" if version else "versions"
            raise ConfigError(f"registered model '{name}' has no {what} ({self.store.versions_text(name)}); "
                              f"pick one of them, or register a run: zoo register RUN_ID {name}")
        local = self.store.download_version(name, mv, self.workdir / f"{name}-v{mv.version}")
        folder = find_model_folder(local)
        if folder is None:
            raise RunError(f"registered model '{name}' version {mv.version} ({mv.source}) holds no {META_FILE}: it "
                           f"was not registered by the zoo (zoo register RUN NAME registers a zoo run)")
        run = f", run {mv.run_id}" if mv.run_id else ""
        label = f"registered model {name} version {mv.version}{run}"
        return ModelRef(folder, read_meta(folder), mv.run_id or None, label, self.uri)


def find_run(text: str, *, experiment: str | None = None, uri: str | None = None) -> Any:
    """The one MLflow run ``text`` names (its id, a unique prefix of 4 or more, or ``runs:/ID``), finished
    or not, with or without a model: what ``zoo run --resume`` continues. ConfigError names the fix."""
    text = str(text).strip()
    if text.startswith("runs:/"):
        text = text[len("runs:/"):].partition("/")[0]
    return _Lookup(Path("."), experiment, uri).run(text)
