"""Find a trained run's packaged model and its MLflow record from a run id, a recipe name or a folder."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..engine.tracking import DEFAULT_EXPERIMENT, PARENT_TAG

SEEDS_KIND = "seeds"


@dataclass
class RunRef:
    """A trained model and where it is recorded.

    ``folder`` holds ``zoo_model.json`` and ``weights.pt``; ``meta`` is the parsed
    ``zoo_model.json``; ``run_id`` the MLflow run the model belongs to (None for an untracked
    folder) and ``tags`` that run's tags; ``label`` says how the user named it.
    """

    folder: Path
    meta: dict[str, Any]
    run_id: str | None
    tags: dict[str, str] = field(default_factory=dict)
    label: str = ""


def _client():
    from ..engine.tracking import client
    return client()


def _run_tags(run_id: str) -> dict[str, str]:
    """Tags of ``run_id``, or {} when the store does not know it (a folder copied from elsewhere)."""
    try:
        return dict(_client().get_run(run_id).data.tags)
    except Exception:  # a missing run only means the folder's record is elsewhere
        return {}


def first_seed_run(parent_id: str) -> str:
    """The child run of the lowest seed under the parent run of several seeds ``parent_id``."""
    c = _client()
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


def resolve(ref: Any, *, experiment: str = DEFAULT_EXPERIMENT, workdir: Path) -> RunRef:
    """``ref``: a packaged model folder, a run id (a parent of several seeds means its first seed),
    a recipe name (its latest finished run in ``experiment``) or a ``RunResult`` / ``SeedResult``.

    A model held in MLflow is downloaded into ``workdir``.
    """
    from ..engine.package import read_meta
    from ..engine.runner import RunResult, SeedResult
    from ..engine.tracking import download_model, latest_run
    from ..recipes import load_recipes

    if isinstance(ref, RunResult):
        ref = ref.results[0]
    if isinstance(ref, SeedResult):
        if ref.model_dir is None:
            raise ConfigError(f"seed {ref.seed} has no packaged model (an overfit check saves none); train normally")
        ref = ref.model_dir
    text = str(ref)
    path = Path(text).expanduser()
    if path.is_dir():
        meta = read_meta(path)
        run_id = meta.get("run_id")
        return RunRef(path, meta, run_id, _run_tags(run_id) if run_id else {}, str(path))
    label = f"run {text}"
    if text in load_recipes():
        run = latest_run(experiment, {"zoo.recipe": text, "zoo.kind": "run"})
        if run is None:
            raise ConfigError(
                f"recipe '{text}' has no finished run in experiment '{experiment}'; train it first "
                f"(zoo run {text}), or give a run id or a model folder"
            )
        label, text = f"{text} (run {run.info.run_id})", run.info.run_id
    tags = _run_tags(text)
    if tags.get("zoo.kind") == SEEDS_KIND:
        child = first_seed_run(text)
        label, text = f"{label}, seed run {child}", child
        tags = _run_tags(child)
    folder = download_model(text, workdir / text)
    return RunRef(folder, read_meta(folder), text, tags, label)
