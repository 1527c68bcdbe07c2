"""Find a trained run's packaged model and its MLflow record from a run id, a recipe name or a folder."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..tracking import DEFAULT_EXPERIMENT

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


def resolve(ref: Any, *, experiment: str = DEFAULT_EXPERIMENT, workdir: Path) -> RunRef:
    """``ref``: a packaged model folder, a run id (a parent of several seeds means its first seed),
    a recipe name (its latest finished run in ``experiment``) or a ``RunResult`` / ``SeedResult``.

    A model held in MLflow is downloaded into ``workdir``.
    """
    from ..engine.package import read_meta
    from ..engine.runner import RunResult, SeedResult
    from ..recipes import load_recipes
    from ..tracking.mlflow.queries import download_model, first_seed_run, latest_run, run_tags

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
        return RunRef(path, meta, run_id, run_tags(run_id) if run_id else {}, str(path))
    label = f"run {text}"
    if text in load_recipes():
        run = latest_run(experiment, {"zoo.recipe": text, "zoo.kind": "run"})
        if run is None:
            raise ConfigError(
                f"recipe '{text}' has no finished run in experiment '{experiment}'; train it first "
                f"(zoo run {text}), or give a run id or a model folder"
            )
        label, text = f"{text} (run {run.info.run_id})", run.info.run_id
    tags = run_tags(text)
    if tags.get("zoo.kind") == SEEDS_KIND:
        child = first_seed_run(text)
        label, text = f"{label}, seed run {child}", child
        tags = run_tags(child)
    folder = download_model(text, workdir / text)
    return RunRef(folder, read_meta(folder), text, tags, label)
