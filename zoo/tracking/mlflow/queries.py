"""Look-ups in the MLflow store for :mod:`zoo.refs`: runs by id or prefix, latest and seed runs, registered versions.

Each function takes an ``MlflowClient`` (:func:`~zoo.tracking.mlflow.store.client`) and answers
None or an empty list for "not there"; only copying files here raises, naming what is missing. The
few that take a store's ``uri`` instead (``run_tags``, ``run_by_id``, ``runs_by_ref``,
``experiment_name_of``) are for callers outside :mod:`zoo.tracking`, which never hold a client; one
that asks a store many things (:mod:`zoo.refs`) holds a :class:`Store`, whose methods are these
look-ups on one store, opened on the first of them.
Deciding what a reference means, and saying so when it means nothing, is :mod:`zoo.refs`'s job.
"""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from ...errors import RunError
from .. import PARENT_TAG
from .store import client, get_experiment

TRAINING_KINDS = ("run", "seeds")
"""``zoo.kind`` of the runs that trained models: one seed, or the parent of several."""


def get_run(c: Any, run_id: str) -> Any | None:
    """Run ``run_id``, or None when the store does not know it."""
    try:
        return c.get_run(run_id)
    except Exception:  # MLflow raises its own exception for "not found" (or a malformed id): no such run
        return None


def experiment_ids(c: Any, experiment: str | None) -> list[str]:
    """The id of ``experiment`` ([] when it does not exist), or of every active experiment when None."""
    if experiment:
        exp = get_experiment(c, experiment, create=False)
        return [exp.experiment_id] if exp is not None else []
    return [e.experiment_id for e in c.search_experiments()]


def runs_with_prefix(c: Any, prefix: str, experiment: str | None = None, most: int = 20) -> list[Any]:
    """Up to ``most`` runs whose id starts with ``prefix`` (lowercase hex digits), in ``experiment``
    or, when None, in every experiment."""
    ids = experiment_ids(c, experiment)
    if not ids:
        return []
    return c.search_runs(ids, filter_string=f"attributes.run_id LIKE '{prefix}%'", max_results=most)


def experiment_name(c: Any, experiment_id: str) -> str:
    try:
        return c.get_experiment(experiment_id).name
    except Exception:
        return f"experiment {experiment_id}"


def latest_recipe_run(c: Any, recipe: str, experiment: str | None = None) -> Any | None:
    """The most recent FINISHED training run of ``recipe`` (tag ``zoo.recipe``) that is not one seed
    of a parent run: one seed's run, or the parent of several. In ``experiment`` or, when None, in
    every experiment. None if there is none."""
    ids = experiment_ids(c, experiment)
    if not ids:
        return None
    clause = (f"attributes.status = 'FINISHED' and tags.`zoo.recipe` = '{recipe}' "
              f"and tags.`{PARENT_TAG}` IS NULL")
    runs = c.search_runs(ids, filter_string=clause, order_by=["attributes.start_time DESC"], max_results=100)
    return next((r for r in runs if r.data.tags.get("zoo.kind") in TRAINING_KINDS), None)


def seed_runs(c: Any, parent: Any) -> list[Any]:
    """The FINISHED seed runs under the parent run ``parent``, lowest seed first."""
    children = c.search_runs([parent.info.experiment_id],
                             filter_string=f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'", max_results=1000)
    finished = [r for r in children if r.info.status == "FINISHED"]
    return sorted(finished, key=lambda r: int(r.data.tags.get("zoo.seed", "0") or 0))


def download_run_files(c: Any, run_id: str, path: str, dst: Path) -> Path:
    """Copy the artifact ``path`` (a folder or a file) of run ``run_id`` into ``dst``; return the local path."""
    dst.mkdir(parents=True, exist_ok=True)
    try:
        return Path(c.download_artifacts(run_id, path, str(dst)))
    except Exception as exc:
        raise RunError(
            f"run {run_id} has no artifact '{path}' ({type(exc).__name__}); only a finished training run has a "
            f"packaged model (model/), not an overfit check nor a run that failed"
        ) from exc


def run_tags(run_id: str, uri: str | None = None) -> dict[str, str]:
    """Tags of ``run_id``, or {} when the store does not know it (a folder copied from elsewhere)."""
    run = get_run(client(uri), run_id)
    return dict(run.data.tags) if run is not None else {}


def run_by_id(run_id: str, *, uri: str | None) -> Any:
    """Run ``run_id`` of the store ``uri``; MLflow's error when the store does not know it."""
    return client(uri).get_run(run_id)


def runs_by_ref(ref: str, *, uri: str | None) -> list[Any]:
    """The run whose id is ``ref``, or else up to 20 whose id starts with it, in any experiment of ``uri``."""
    c = client(uri)
    run = get_run(c, ref)
    return [run] if run is not None else runs_with_prefix(c, ref)


def experiment_name_of(experiment_id: str, *, uri: str | None) -> str:
    """The name of experiment ``experiment_id`` of the store ``uri`` (``experiment ID`` when it has none)."""
    return experiment_name(client(uri), experiment_id)


def registered_model(c: Any, name: str) -> Any | None:
    """The registered model ``name``, or None."""
    try:
        return c.get_registered_model(name)
    except Exception:
        return None


def registered_names(c: Any) -> str:
    """A few registered model names, for a message ("registered: a, b" or why there are none)."""
    try:
        names = sorted(m.name for m in c.search_registered_models(max_results=20))
    except Exception as exc:
        return f"the registry cannot be listed: {type(exc).__name__}"
    return "registered: " + ", ".join(names) if names else "none is registered"


def model_version(c: Any, name: str, version: str | None = None, alias: str | None = None) -> Any | None:
    """Version ``version`` of the registered model ``name``, the one ``alias`` points at, or (both
    None) its latest; None when there is no such version."""
    try:
        if alias:
            return c.get_model_version_by_alias(name, alias)
        if version is not None:
            return c.get_model_version(name, version)
        versions = c.search_model_versions(f"name = '{name}'")
    except Exception:
        return None
    return max(versions, key=lambda v: int(v.version)) if versions else None


def versions_text(c: Any, name: str) -> str:
    """"versions: 1, 2; aliases: champion" of the registered model ``name``."""
    try:
        versions = sorted(int(v.version) for v in c.search_model_versions(f"name = '{name}'"))
        aliases = sorted((getattr(c.get_registered_model(name), "aliases", None) or {}).keys())
    except Exception:
        return "its versions cannot be listed"
    text = f"versions: {', '.join(map(str, versions)) or 'none'}"
    return text + (f"; aliases: {', '.join(aliases)}" if aliases else "")


def download_version(c: Any, name: str, version: Any, dst: Path) -> Path:
    """Copy version ``version.version`` of the registered model ``name`` into ``dst``; return the folder."""
    from mlflow.artifacts import download_artifacts
    dst.mkdir(parents=True, exist_ok=True)
    try:
        # Where the version's files are, asked of this store: MLflow resolves a models:/ URI in the
        # process's default registry whatever registry_uri says.
        where = c.get_model_version_download_uri(name, str(version.version))
        return Path(download_artifacts(artifact_uri=where, dst_path=str(dst), tracking_uri=c.tracking_uri))
    except Exception as exc:
        raise RunError(f"registered model '{name}' version {version.version} cannot be downloaded from "
                       f"{version.source}: {type(exc).__name__}: {exc}") from exc


class Store:
    """The look-ups above on the one MLflow store ``uri``, for callers outside :mod:`zoo.tracking`: the
    client is opened (and a sqlite store created) on the first look-up, then kept."""

    def __init__(self, uri: str):
        self.uri = uri

    @cached_property
    def _c(self) -> Any:
        return client(self.uri)

    @property
    def tracking_uri(self) -> str:
        """The store's URI as MLflow holds it (for messages: pass it through ``redact_uri``)."""
        return str(self._c.tracking_uri)

    def get_run(self, run_id: str) -> Any | None:
        return get_run(self._c, run_id)

    def experiment_ids(self, experiment: str | None) -> list[str]:
        return experiment_ids(self._c, experiment)

    def runs_with_prefix(self, prefix: str, experiment: str | None = None, most: int = 20) -> list[Any]:
        return runs_with_prefix(self._c, prefix, experiment, most)

    def experiment_name(self, experiment_id: str) -> str:
        return experiment_name(self._c, experiment_id)

    def latest_recipe_run(self, recipe: str, experiment: str | None = None) -> Any | None:
        return latest_recipe_run(self._c, recipe, experiment)

    def seed_runs(self, parent: Any) -> list[Any]:
        return seed_runs(self._c, parent)

    def download_run_files(self, run_id: str, path: str, dst: Path) -> Path:
        return download_run_files(self._c, run_id, path, dst)

    def registered_model(self, name: str) -> Any | None:
        return registered_model(self._c, name)

    def registered_names(self) -> str:
        return registered_names(self._c)

    def model_version(self, name: str, version: str | None = None, alias: str | None = None) -> Any | None:
        return model_version(self._c, name, version, alias)

    def versions_text(self, name: str) -> str:
        return versions_text(self._c, name)

    def download_version(self, name: str, version: Any, dst: Path) -> Path:
        return download_version(self._c, name, version, dst)
