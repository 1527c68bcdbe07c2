"""Look-ups in the MLflow store: a run's packaged model, the latest run of a recipe, a parent's seed run, tags."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ...errors import ConfigError, RunError
from .. import PARENT_TAG
from .store import client, get_experiment


def download_model(run_id: str, dst: Path, uri: str | None = None) -> Path:
    """Copy the ``model/`` artifact folder of run ``run_id`` into ``dst``; return the local folder."""
    c = client(uri)
    try:
        c.get_run(run_id)
    except Exception as exc:
        raise ConfigError(
            f"'{run_id}' is neither a model folder nor a run id in the MLflow store {c.tracking_uri} "
            f"({type(exc).__name__}); give a folder holding zoo_model.json, or a run id from `zoo compare`"
        ) from exc
    dst.mkdir(parents=True, exist_ok=True)
    try:
        local = c.download_artifacts(run_id, "model", str(dst))
    except Exception as exc:
        raise RunError(
            f"run {run_id} has no packaged model (artifact folder model/): {type(exc).__name__}: {exc}; "
            f"only finished training runs have one (not the parent of several seeds, nor an overfit check)"
        ) from exc
    return Path(local)


def latest_run(experiment: str, tags: Mapping[str, str], uri: str | None = None) -> Any | None:
    """The most recent FINISHED run of ``experiment`` carrying all ``tags`` (None if there is none)."""
    c = client(uri)
    exp = get_experiment(c, experiment, create=False)
    if exp is None:
        return None
    clauses = ["attributes.status = 'FINISHED'"] + [f"tags.`{k}` = '{v}'" for k, v in tags.items()]
    runs = c.search_runs([exp.experiment_id], filter_string=" and ".join(clauses),
                         order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None


def latest_recipe_run(c: Any, recipe: str, experiment: str | None = None) -> Any | None:
    """The most recent FINISHED training run tagged ``zoo.recipe = recipe`` (None if none), in
    ``experiment`` or, when None, in every experiment of the store of client ``c``."""
    if experiment:
        exp = get_experiment(c, experiment, create=False)
        ids = [exp.experiment_id] if exp is not None else []
    else:
        ids = [e.experiment_id for e in c.search_experiments()]
    if not ids:
        return None
    clause = f"attributes.status = 'FINISHED' and tags.`zoo.recipe` = '{recipe}' and tags.`zoo.kind` = 'run'"
    runs = c.search_runs(ids, filter_string=clause, order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None


def run_tags(run_id: str, uri: str | None = None) -> dict[str, str]:
    """Tags of ``run_id``, or {} when the store does not know it (a folder copied from elsewhere)."""
    try:
        return dict(client(uri).get_run(run_id).data.tags)
    except Exception:  # a missing run only means the folder's record is elsewhere
        return {}


def first_seed_run(parent_id: str, uri: str | None = None) -> str:
    """The child run of the lowest seed under the parent run of several seeds ``parent_id``."""
    c = client(uri)
    parent = c.get_run(parent_id)
    children = c.search_runs([parent.info.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_id}'",
                             max_results=1000)
    finished = [r for r in children if r.info.status == "FINISHED"]
    if not finished:
        raise ConfigError(
            f"run {parent_id} is the parent of several seeds but none of its seed runs finished; "
            f"give a finished seed run's id (zoo compare lists them) or re-run the training"
        )
    return min(finished, key=lambda r: int(r.data.tags.get("zoo.seed", "0") or 0)).info.run_id
