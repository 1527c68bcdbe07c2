"""Find the packaged model a user names: a folder, a run id, a registered model or a recipe.

Accepted forms of MODEL::

    path/to/folder          a folder holding zoo_model.json (or its model/ or a pyfunc model's artifacts)
    RUN_ID, runs:/RUN_ID    an MLflow run's model/ artifacts (runs:/RUN_ID/PATH for another folder)
    NAME, NAME/VERSION      a registered model: its latest version, or that version
    NAME@ALIAS              the version a registry alias points at
    models:/NAME/VERSION, models:/NAME@ALIAS, models:/NAME
    RECIPE, recipe:RECIPE   the latest FINISHED run of a recipe of registry.yaml

A bare word may be several of these: the zoo then refuses to guess and names the explicit forms.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, RunError

META_FILE = "zoo_model.json"
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_VERSION = re.compile(r"^([^/@]+)/(\d+|latest)$")


@dataclass(frozen=True)
class ModelSource:
    """A packaged model on this machine: its ``folder``, a ``label`` for people and its run."""

    folder: Path
    label: str
    run_id: str | None = None


def find_model_folder(path: Path) -> Path | None:
    """The folder holding ``zoo_model.json``: ``path`` itself, ``path/model`` (a run's seed folder),
    or ``path/artifacts/<one>/`` (an MLflow pyfunc model); None if there is none."""
    path = Path(path)
    if path.is_file() and path.name == META_FILE:
        return path.parent
    for candidate in (path, path / "model"):
        if (candidate / META_FILE).is_file():
            return candidate
    found = sorted(path.glob(f"artifacts/*/{META_FILE}"))
    return found[0].parent if len(found) == 1 else None


def resolve_model(ref: str, workdir: Path, *, experiment: str | None = None, uri: str | None = None) -> ModelSource:
    """Where the packaged model ``ref`` is, downloading it under ``workdir`` when it is tracked.

    ``experiment`` limits the recipe look-up to one experiment (default: every experiment).
    Raises ConfigError naming what was tried and the fix when ``ref`` names nothing, or names
    several things.
    """
    text = str(ref).strip()
    if not text:
        raise ConfigError("no MODEL given; give a model folder, a run id, a registered model name or a recipe name")
    if text.startswith("models:/"):
        return _registered(text[len("models:/"):], workdir, uri)
    if text.startswith("runs:/"):
        run_id, _, sub = text[len("runs:/"):].partition("/")
        return _from_run(run_id, sub.strip("/") or "model", workdir, uri, f"run {run_id}")
    if text.startswith("recipe:"):
        return _recipe(text[len("recipe:"):], workdir, experiment, uri)
    path = Path(text).expanduser()
    pathlike = "/" in text or "\\" in text or text.startswith((".", "~"))
    if path.exists():
        folder = find_model_folder(path)
        if folder is None:
            raise ConfigError(
                f"{path} holds no packaged zoo model ({META_FILE} is neither in it, in {path / 'model'}, nor in "
                f"one artifacts/* folder); give the model folder `zoo run` printed (.../seed0/model)"
            )
        if pathlike:
            return ModelSource(folder, str(path))
    elif pathlike:
        if _VERSION.match(text):
            return _registered(text, workdir, uri)
        raise ConfigError(f"model folder {path} does not exist; check the path (`zoo run` prints its model folder)")
    elif "@" in text:
        return _registered(text, workdir, uri)
    return _bare(text, path if path.exists() else None, workdir, experiment, uri)


def _bare(name: str, folder: Path | None, workdir: Path, experiment: str | None, uri: str | None) -> ModelSource:
    """A bare word: a folder here, a registered model, a recipe with a run, or a run id."""
    from ..tracking.mlflow.store import client
    c = client(uri)
    found: list[tuple[str, Any]] = []
    tried: list[str] = []
    if folder is not None:
        found.append((f"the folder ./{name}", lambda: ModelSource(find_model_folder(folder), str(folder))))
    else:
        tried.append(f"no folder ./{name} here")
    if _registered_exists(c, name):
        found.append((f"the registered model '{name}' (models:/{name})", lambda: _registered(name, workdir, uri)))
    else:
        tried.append(f"no registered model '{name}' in {c.tracking_uri} ({_registered_names(c)})")
    recipe_note = _recipe_candidate(name, c, experiment)
    if isinstance(recipe_note, str):
        tried.append(recipe_note)
    else:
        run = recipe_note
        found.append((f"recipe '{name}' (its latest finished run {run.info.run_id}; recipe:{name})",
                       lambda: _from_run(run.info.run_id, "model", workdir, uri, f"recipe {name} (run {run.info.run_id})")))
    if _RUN_ID.match(name):
        if _run_exists(c, name):
            found.append((f"run {name} (runs:/{name})", lambda: _from_run(name, "model", workdir, uri, f"run {name}")))
        else:
            tried.append(f"no run {name} in {c.tracking_uri}")
    else:
        tried.append("not a run id (32 hex digits)")
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


def _registered_exists(c: Any, name: str) -> bool:
    try:
        c.get_registered_model(name)
    except Exception:  # MLflow raises its own exception for "not found": any failure means "not there"
        return False
    return True


def _registered_names(c: Any) -> str:
    try:
        names = sorted(m.name for m in c.search_registered_models(max_results=20))
    except Exception as exc:
        return f"the registry cannot be listed: {type(exc).__name__}"
    return "registered: " + ", ".join(names) if names else "none is registered"


def _run_exists(c: Any, run_id: str) -> bool:
    try:
        c.get_run(run_id)
    except Exception:
        return False
    return True


def _recipe_candidate(name: str, c: Any, experiment: str | None):
    """The latest finished run of recipe ``name``, or a string saying why there is none."""
    from ..recipes import load_recipes
    from ..tracking.mlflow.queries import latest_recipe_run
    if name not in load_recipes():
        return "not a recipe of registry.yaml"
    run = latest_recipe_run(c, name, experiment)
    if run is None:
        where = f"experiment '{experiment}'" if experiment else "any experiment"
        return f"recipe '{name}' has no finished run in {where} (train it first: zoo run {name})"
    return run


def _recipe(name: str, workdir: Path, experiment: str | None, uri: str | None) -> ModelSource:
    from ..recipes import get_recipe
    from ..tracking.mlflow.store import client
    get_recipe(name)  # unknown names get the list and a suggestion
    result = _recipe_candidate(name, client(uri), experiment)
    if isinstance(result, str):
        raise ConfigError(result[0].upper() + result[1:])
    run_id = result.info.run_id
    return _from_run(run_id, "model", workdir, uri, f"recipe {name} (run {run_id})")


def _from_run(run_id: str, sub: str, workdir: Path, uri: str | None, label: str) -> ModelSource:
    from ..tracking.mlflow.store import client
    c = client(uri)
    try:
        c.get_run(run_id)
    except Exception as exc:
        raise ConfigError(f"no run '{run_id}' in the MLflow store {c.tracking_uri} ({type(exc).__name__}); "
                          f"pick a run id from `zoo compare`") from exc
    dst = workdir / run_id
    dst.mkdir(parents=True, exist_ok=True)
    try:
        local = Path(c.download_artifacts(run_id, sub, str(dst)))
    except Exception as exc:
        raise RunError(
            f"run {run_id} has no artifact folder '{sub}' ({type(exc).__name__}); only a finished training run "
            f"has a packaged model (not the parent of several seeds, nor an overfit check): pick one of its seeds' runs"
        ) from exc
    folder = find_model_folder(local)
    if folder is None:
        raise RunError(f"the artifacts '{sub}' of run {run_id} hold no {META_FILE}: not a zoo model")
    return ModelSource(folder, label, run_id)


def _registered(spec: str, workdir: Path, uri: str | None) -> ModelSource:
    """``NAME``, ``NAME/VERSION``, ``NAME/latest`` or ``NAME@ALIAS`` of the model registry."""
    from mlflow.artifacts import download_artifacts

    from ..tracking.mlflow.store import client
    c = client(uri)
    name, version, alias = spec.strip("/"), None, None
    if "@" in name:
        name, alias = name.split("@", 1)
    elif "/" in name:
        name, version = name.split("/", 1)
    if not name or "/" in name or (version is not None and version != "latest" and not version.isdigit()):
        raise ConfigError(f"model reference '{spec}': expected NAME, NAME/VERSION or NAME@ALIAS (e.g. genre-net/2)")
    if not _registered_exists(c, name):
        raise ConfigError(f"no registered model '{name}' in {c.tracking_uri} ({_registered_names(c)}); register a "
                          f"trained run first: zoo register RUN_ID {name}")
    try:
        if alias:
            mv = c.get_model_version_by_alias(name, alias)
        elif version and version != "latest":
            mv = c.get_model_version(name, version)
        else:
            versions = c.search_model_versions(f"name = '{name}'")
            mv = max(versions, key=lambda v: int(v.version)) if versions else None
    except Exception as exc:
        what = f"alias '{alias}'" if alias else f"version {version}"
        raise ConfigError(f"registered model '{name}' has no {what} ({_versions(c, name)}); pick one of them") from exc
    if mv is None:
        raise ConfigError(f"registered model '{name}' has no versions; register a run: zoo register RUN_ID {name}")
    dst = workdir / f"{name}-v{mv.version}"
    dst.mkdir(parents=True, exist_ok=True)
    try:
        local = Path(download_artifacts(artifact_uri=f"models:/{name}/{mv.version}", dst_path=str(dst),
                                        tracking_uri=c.tracking_uri, registry_uri=c.tracking_uri))
    except Exception as exc:
        raise RunError(f"registered model '{name}' version {mv.version} cannot be downloaded from {mv.source}: "
                       f"{type(exc).__name__}: {exc}") from exc
    folder = find_model_folder(local)
    if folder is None:
        raise RunError(f"registered model '{name}' version {mv.version} ({mv.source}) holds no {META_FILE}: it was "
                       f"not registered by the zoo (zoo register RUN NAME registers a zoo run)")
    run = f", run {mv.run_id}" if mv.run_id else ""
    return ModelSource(folder, f"registered model {name} version {mv.version}{run}", mv.run_id)


def _versions(c: Any, name: str) -> str:
    try:
        versions = sorted(int(v.version) for v in c.search_model_versions(f"name = '{name}'"))
        model = c.get_registered_model(name)
        aliases = sorted((getattr(model, "aliases", None) or {}).keys())
    except Exception:
        return "its versions cannot be listed"
    text = f"versions: {', '.join(map(str, versions)) or 'none'}"
    return text + (f"; aliases: {', '.join(aliases)}" if aliases else "")
