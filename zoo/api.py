"""The Python API: ``compose``, ``train``, ``evaluate``, ``load``. The CLI is a thin layer over it.

Example::

    import zoo
    result = zoo.train("lstm+chroma:genre", epochs=5, limit=200, track=False)
    print(result.test["genre.accuracy"], result.reports["classification_report"])
    scores = zoo.evaluate(result, data="path/to/another/set")

See docs/python-api.md for the full description.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

from .errors import ConfigError
from .model.building import Built, build_components
from .registry import Registry
from .spec import parse_spec


def _registry(registry: Registry | None) -> Registry:
    return registry if registry is not None else Registry()


def compose(spec_or_components: str | Iterable[Any], *, registry: Registry | None = None,
            settings: Mapping[str, Mapping[str, Any]] | None = None) -> Built:
    """Build a composition: from a spec (``"cnn+mel+chroma:genre"``) through the registry, or from
    objects (one backbone ``nn.Module`` with ``out_dim``, Feature objects, Task objects).

    ``settings`` (spec only) maps a scope to overrides, e.g. ``{"backbone": {"hidden": 64}}``.
    The result's ``features``, ``tasks``, ``rate``, ``n_bins`` and ``providers`` describe it;
    ``zoo.train`` accepts it in place of a spec.
    """
    if isinstance(spec_or_components, str):
        registry = _registry(registry)
        from .engine.trainconfig import split_settings
        components, _, _ = split_settings(settings)
        return build_components(parse_spec(spec_or_components, registry), registry, components)
    if settings:
        raise ConfigError("compose(): settings apply to a spec; objects carry their own configuration")
    from .model.building import build_from_objects
    return build_from_objects(spec_or_components)


def _resolve_spec(spec: str | Built, settings: Mapping[str, Mapping[str, Any]] | None):
    """(spec or Built, merged settings, recipe or None): a name without ':' is a recipe."""
    merged = {k: dict(v) for k, v in (settings or {}).items()}
    if not isinstance(spec, str) or ":" in spec:
        return spec, merged, None
    if "+" in spec:  # meant as a spec (recipe names have no '+'): let the parser explain what is missing
        parse_spec(spec)
    from .recipes import get_recipe
    recipe = get_recipe(spec.strip())
    base = {k: dict(v) for k, v in recipe.settings.items()}
    for scope, values in merged.items():
        base.setdefault(scope, {}).update(values)
    return recipe.spec, base, recipe


def _model_source(ref: Any, *, experiment: str, workdir: Path):
    """A packaged model folder for ``ref``: a folder, a RunResult / SeedResult, a recipe name, or a run id."""
    from .engine.runner import RunResult, SeedResult
    from .tracking.mlflow.queries import download_model, latest_run
    if isinstance(ref, RunResult):
        ref = ref.results[0]
    if isinstance(ref, SeedResult):
        if ref.model_dir is None:
            raise ConfigError(f"seed {ref.seed} has no packaged model (an overfit check saves none)")
        return Path(ref.model_dir), str(ref.model_dir)
    path = Path(str(ref)).expanduser()
    if path.is_dir():
        return path, str(path)
    text = str(ref)
    from .recipes import load_recipes
    if text in load_recipes():
        run = latest_run(experiment, {"zoo.recipe": text, "zoo.kind": "run"})
        if run is None:
            raise ConfigError(
                f"recipe '{text}' has no finished run in experiment '{experiment}' to start from; "
                f"train it first: zoo run {text}"
            )
        return download_model(run.info.run_id, workdir / run.info.run_id), f"{text} (run {run.info.run_id})"
    return download_model(text, workdir / text), f"run {text}"


def train(spec: str | Built, *, data: Any = None, layout: str | None = None,
          settings: Mapping[str, Mapping[str, Any]] | None = None, epochs: int | None = None, lr: float | None = None,
          batch_size: int | None = None, patience: int | None = None, overfit_batches: int | None = None,
          device: str | None = None, seed: int = 0, seeds: int = 1, limit: int | None = None, skip_bad: bool = False,
          workers: int | None = None, track: bool = True, experiment: str = "music-zoo",
          registry: Registry | None = None, prepared: Any = None, init_from: Any = None, freeze: Any = None,
          progress: bool = True, verbose: bool = False, echo: Any = None, out_dir: str | Path | None = None):
    """Train ``spec`` (a spec, a recipe name, or a :func:`compose` result); returns a ``RunResult``.

    ``data``: a data folder (layout detected, or ``layout``), None for the embedded set;
    ``prepared``: a ready :class:`zoo.data.preparedset.Prepared` instead. ``settings`` maps scopes
    (backbone, feature, task, a component name, ``train``, ``dataset``) to overrides; the keyword
    arguments ``epochs`` ... ``device`` win over ``settings["train"]``. ``seeds`` > 1 trains one
    model per seed ``seed .. seed+seeds-1`` and reports mean and 95 % interval. ``track``: log
    to MLflow (experiment ``experiment``). ``init_from``: start the backbone from a trained model
    (folder, run id, recipe name or RunResult) with ``freeze`` "none" / "backbone" / N.
    A recipe with a ``transfer`` entry sets ``init_from``/``freeze`` itself.
    """
    from .model.building import ObjectBuilt
    from .engine.trainconfig import backbone_defaults, split_settings, train_config, with_overrides
    from .engine.runner import run
    from .tracking import NullTracker
    from .tracking.mlflow.tracker import MlflowTracker
    from .engine.transfer import source_from_folder
    registry = _registry(registry)
    spec, merged, recipe = _resolve_spec(spec, settings)
    components, train_over, dataset_over = split_settings(merged)
    if isinstance(spec, ObjectBuilt):
        recommended = {}
    else:
        backbone = spec.composition.backbone if isinstance(spec, Built) else parse_spec(spec, registry).backbone
        recommended = backbone_defaults(registry, backbone)
    config = with_overrides(train_config(recommended, train_over), epochs=epochs, lr=lr, batch_size=batch_size,
                            patience=patience, overfit_batches=overfit_batches, device=device)
    tags = {"zoo.recipe": recipe.name} if recipe else {}
    if recipe and recipe.transfer and init_from is None:
        init_from = recipe.transfer.get("from")
        freeze = recipe.transfer.get("freeze", "none") if freeze is None else freeze
    if echo is None:
        echo = (lambda line: print(line, flush=True)) if verbose else None
    warn = (lambda message: echo(f"warning: {message}")) if echo else None
    tracker = MlflowTracker(experiment, warn=warn) if track else NullTracker()
    with tempfile.TemporaryDirectory(prefix="zoo-transfer-") as tmp:
        transfer = None
        if init_from is not None:
            folder, label = _model_source(init_from, experiment=experiment, workdir=Path(tmp))
            transfer = source_from_folder(folder, freeze if freeze is not None else "none", label)
        return run(spec, registry=registry, settings=components, config=config, data=data, layout=layout,
                   dataset_settings=dataset_over, prepared=prepared, seed=seed, seeds=seeds, limit=limit,
                   skip_bad=skip_bad, workers=workers, tracker=tracker, progress=progress, echo=echo,
                   out_dir=Path(out_dir) if out_dir else None, transfer=transfer, tags=tags)


def load(model_or_run: Any, *, registry: Registry | None = None, experiment: str = "music-zoo"):
    """``(model, meta)`` of a packaged model: a folder, a run id, a recipe name or a RunResult.

    ``model`` is a ``ZooModel`` on the CPU (rebuilt in eval mode, or a RunResult's own model);
    ``meta`` the parsed ``zoo_model.json``.
    """
    from .engine.package import load_model, read_meta
    from .engine.runner import RunResult, SeedResult
    if isinstance(model_or_run, tuple) and len(model_or_run) == 2:
        return model_or_run
    if isinstance(model_or_run, RunResult):
        model_or_run = model_or_run.results[0]
    if isinstance(model_or_run, SeedResult) and model_or_run.model_dir is not None:
        # The trained model is at hand: no rebuild (which Python-object compositions cannot do).
        return model_or_run.model, read_meta(model_or_run.model_dir)
    with tempfile.TemporaryDirectory(prefix="zoo-model-") as tmp:
        folder, _ = _model_source(model_or_run, experiment=experiment, workdir=Path(tmp))
        return load_model(folder, _registry(registry))


def evaluate(model_or_run: Any, data: Any = None, *, layout: str | None = None,
             settings: Mapping[str, Any] | None = None, split: str = "test", limit: int | None = None,
             skip_bad: bool = False, workers: int | None = None, device: str = "auto",
             registry: Registry | None = None, experiment: str = "music-zoo", out_dir: str | Path | None = None,
             progress: bool = False):
    """Score a trained model on a data set; returns an ``EvalResult`` (metrics, reports on disk).

    ``model_or_run``: a RunResult, a packaged model folder, a run id, a recipe name (its latest
    run) or a ``(model, meta)`` pair from :func:`load`. ``data``: a folder, None for the embedded
    set, or a ready ``Prepared``. ``settings``: the data set's settings (``{"mapping": "none"}``).
    ``split``: "test" (default), "val", "train" or "all". Labels are matched to the model's
    classes by name.
    """
    from .data.preparedset import Prepared
    from .engine.scoring import assess
    from .engine.package import features_from_meta
    from .engine.runner import run_folder
    from .paths import zoo_home
    registry = _registry(registry)
    model, meta = load(model_or_run, registry=registry, experiment=experiment)
    if isinstance(data, Prepared):
        prepared = data
    else:
        from .data.layout import open_dataset
        from .data.prepare import prepare
        dataset = open_dataset(data, layout=layout, registry=registry, settings=dict(settings or {}),
                               progress=progress)
        need = tuple(dict.fromkeys(t.target for t in model.tasks.values()))
        prepared = prepare(dataset, features_from_meta(meta, registry), rate=meta["rate"], skip_bad=skip_bad,
                           limit=limit, workers=workers, progress=progress, need=need)
    folder = Path(out_dir) if out_dir else run_folder(meta["spec"], zoo_home() / "evaluations")
    return assess(model, meta, prepared, split=split, device=device, out_dir=folder)
