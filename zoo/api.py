"""The Python API: ``compose``, ``train``, ``evaluate``, ``load``, ``open_model``. The CLI is a thin layer over it.

Example::

    import zoo
    result = zoo.train("lstm+chroma:genre", epochs=5, limit=200, track=False)
    print(result.test["genre.accuracy"], result.reports["classification_report"])
    scores = zoo.evaluate(result, data="path/to/another/set")

``zoo.train`` also takes a ready :class:`RunRequest` (what to train, on which data, how). Each
call works in a :class:`~zoo.workspace.Workspace` (home folder, MLflow store, plugin switches):
the one given as ``workspace=``, else the one the environment describes, read once per call.
See docs/python-api.md for the full description.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

from .engine.reporting import ConsoleReporter, QuietReporter, Reporter
from .engine.request import DataRequest, RunRequest, SeedPlan
from .errors import ConfigError, PluginError
from .model.building import Built, build_components
from .registry import Registry
from .spec import parse_spec
from .workspace import Workspace

__all__ = ["compose", "train", "resume", "evaluate", "load", "open_model", "RunRequest", "DataRequest", "SeedPlan", "Workspace",
           "Reporter", "QuietReporter", "ConsoleReporter"]


def _workspace(workspace: Workspace | None) -> Workspace:
    """The workspace of one API call: the one given, else the environment's (read now, once)."""
    return workspace if workspace is not None else Workspace.from_env()


def _registry(registry: Registry | None, workspace: Workspace) -> Registry:
    return registry if registry is not None else workspace.registry()


def compose(spec_or_components: str | Iterable[Any], *, registry: Registry | None = None,
            settings: Mapping[str, Mapping[str, Any]] | None = None, workspace: Workspace | None = None) -> Built:
    """Build a composition: from a spec (``"cnn+mel+chroma:genre"``) through the registry, or from
    objects (one backbone ``nn.Module`` with ``out_dim``, Feature objects, Task objects).

    ``settings`` (spec only) maps a scope to overrides, e.g. ``{"backbone": {"hidden": 64}}``.
    The result's ``features``, ``tasks``, ``rate``, ``n_bins`` and ``providers`` describe it;
    ``zoo.train`` accepts it in place of a spec. ``registry`` defaults to the workspace's.
    """
    if isinstance(spec_or_components, str):
        registry = _registry(registry, _workspace(workspace))
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


def train(spec: str | Built | RunRequest, *, data: Any = None, layout: str | None = None,
          settings: Mapping[str, Mapping[str, Any]] | None = None, epochs: int | None = None, lr: float | None = None,
          batch_size: int | None = None, patience: int | None = None, overfit_batches: int | None = None,
          device: str | None = None, seed: int = 0, seeds: int = 1, limit: int | None = None, skip_bad: bool = False,
          workers: int | None = None, track: bool = True, experiment: str = "music-zoo",
          registry: Registry | None = None, prepared: Any = None, init_from: Any = None, freeze: Any = None,
          progress: bool = True, verbose: bool = False, echo: Any = None, out_dir: str | Path | None = None,
          workspace: Workspace | None = None, reporter: Reporter | None = None,
          max_seconds: float | None = DataRequest.max_seconds, min_class_clips: int = 0, tracker: Any = None,
          resume: Any = None):
    """Train ``spec`` (a spec, a recipe name, a :func:`compose` result or a ready :class:`RunRequest`);
    returns a ``RunResult``.

    ``data``: a data folder (layout detected, or ``layout``), None for the embedded set;
    ``prepared``: a ready :class:`zoo.data.preparedset.Prepared` instead. ``settings`` maps scopes
    (backbone, feature, task, a component name, ``train``, ``dataset``) to overrides; the keyword
    arguments ``epochs`` ... ``device`` win over ``settings["train"]``. ``seeds`` > 1 trains one
    model per seed ``seed .. seed+seeds-1`` and reports mean and 95 % interval. ``track``: log
    to MLflow (experiment ``experiment``, in the workspace's store). ``init_from``: start the
    backbone from a trained model (any reference :func:`zoo.refs.resolve` takes) with ``freeze``
    "none" / "backbone" / N. A recipe with a ``transfer`` entry sets ``init_from``/``freeze`` itself.
    ``max_seconds``: longer audio is cut to its middle ``max_seconds`` (default 30; 0: no limit);
    ``min_class_clips``: refuse classes with fewer clips (0: no check).
    With a :class:`RunRequest` the options it holds (data ... out_dir) are not given again.

    ``workspace``: home folder, store and plugin switches (default: from the environment);
    ``registry`` defaults to the workspace's. What the run says goes to ``reporter``; without one,
    ``verbose`` prints ``zoo run``'s lines, ``echo`` (a callable) receives them, and otherwise
    nothing is printed (``progress``: progress bars on stderr all the same). ``tracker``: a ready
    :class:`~zoo.tracking.Tracker` to log through instead (``track`` and ``experiment`` then unused).
    ``resume``: an :class:`~zoo.engine.runner.Resume` (use :func:`resume`, which finds it for a run).
    """
    from .engine.runner import run
    from .engine.transfer import source_from_folder
    from .tracking import NullTracker
    from .tracking.mlflow.tracker import MlflowTracker
    ws = _workspace(workspace)
    registry = _registry(registry, ws)
    if reporter is None:
        reporter = (ConsoleReporter(echo, progress=progress) if echo is not None or verbose
                    else QuietReporter(progress=progress))
    if isinstance(spec, RunRequest):
        given = {name: value for name, value, default in (
            ("data", data, None), ("layout", layout, None), ("settings", settings, None), ("epochs", epochs, None),
            ("lr", lr, None), ("batch_size", batch_size, None), ("patience", patience, None),
            ("overfit_batches", overfit_batches, None), ("device", device, None), ("seed", seed, 0),
            ("seeds", seeds, 1), ("limit", limit, None), ("skip_bad", skip_bad, False), ("workers", workers, None),
            ("prepared", prepared, None), ("out_dir", out_dir, None),
            ("max_seconds", max_seconds, DataRequest.max_seconds), ("min_class_clips", min_class_clips, 0))
            if value != default}
        if given:
            raise ConfigError(f"zoo.train(request, {', '.join(f'{k}=...' for k in given)}): a RunRequest already "
                              f"says what, on which data and how to train; change the request instead "
                              f"(request.replace(...))")
        request = spec
    else:
        request, init_from, freeze = _request(
            spec, registry=registry, reporter=reporter, data=data, layout=layout, settings=settings, epochs=epochs,
            lr=lr, batch_size=batch_size, patience=patience, overfit_batches=overfit_batches, device=device, seed=seed,
            seeds=seeds, limit=limit, skip_bad=skip_bad, workers=workers, prepared=prepared, out_dir=out_dir,
            init_from=init_from, freeze=freeze, max_seconds=max_seconds, min_class_clips=min_class_clips)
    if init_from is not None and request.transfer is not None:
        raise ConfigError("init_from given twice: the request already carries a transfer source; drop one")
    if tracker is None:
        tracker = (MlflowTracker(experiment, uri=ws.tracking_uri, warn=reporter.on_warning) if track and ws.rank == 0
                   else NullTracker())  # under torchrun only rank 0 writes to the store
        if isinstance(tracker, MlflowTracker):
            tracker.client  # a URI that names no store, or a server that does not answer: told before any work
    with tempfile.TemporaryDirectory(prefix="zoo-transfer-") as tmp:
        if init_from is not None:
            from .refs import resolve
            source = resolve(init_from, workdir=Path(tmp), experiment=experiment, uri=ws.tracking_uri)
            request = request.replace(transfer=source_from_folder(source.folder, freeze if freeze is not None
                                                                  else "none", source.label))
        return run(request, registry=registry, tracker=tracker, reporter=reporter, workspace=ws, resume=resume,
                   check=check_components)


def check_components(built: Any, registry: Any) -> None:
    """What every run checks before any data work: its backbone (built once more, then dropped) and its
    tasks pass :func:`zoo.testing.check_composition`, else a ``PluginError`` with that check's own
    message, so ``zoo run`` refuses what ``zoo.testing`` refuses (a backbone returning a bare tensor)."""
    from .testing import check_composition
    try:
        check_composition(built.make_backbone(registry), built.tasks, built.n_bins, features=built.features)
    except AssertionError as exc:
        raise PluginError(str(exc)) from None


def _request(spec: str | Built, *, registry: Registry, reporter: Reporter, data: Any, layout: str | None,
             settings: Mapping[str, Mapping[str, Any]] | None, epochs: int | None, lr: float | None,
             batch_size: int | None, patience: int | None, overfit_batches: int | None, device: str | None,
             seed: int, seeds: int, limit: int | None, skip_bad: bool, workers: int | None, prepared: Any,
             out_dir: str | Path | None, init_from: Any, freeze: Any, max_seconds: float | None = DataRequest.max_seconds,
             min_class_clips: int = 0) -> tuple[RunRequest, Any, Any]:
    """The :class:`RunRequest` of ``train``'s keyword arguments, and the transfer source to resolve
    (a recipe may name one): ``(request, init_from, freeze)``."""
    from .engine.trainconfig import backbone_defaults, split_settings, train_config, with_overrides
    from .model.building import ObjectBuilt
    spec, merged, recipe = _resolve_spec(spec, settings)
    if recipe is not None:
        reporter.on_recipe(recipe)
    components, train_over, dataset_over = split_settings(merged)
    if isinstance(spec, ObjectBuilt):
        recommended = {}
    else:
        backbone = spec.composition.backbone if isinstance(spec, Built) else parse_spec(spec, registry).backbone
        recommended = backbone_defaults(registry, backbone)
    config = with_overrides(train_config(recommended, train_over), epochs=epochs, lr=lr, batch_size=batch_size,
                            patience=patience, overfit_batches=overfit_batches, device=device)
    if recipe and recipe.transfer and init_from is None:
        init_from = recipe.transfer.get("from")
        freeze = recipe.transfer.get("freeze", "none") if freeze is None else freeze
    request = RunRequest(
        spec, settings=components, train=config,
        data=DataRequest(path=data, layout=layout, settings=dataset_over, limit=limit, skip_bad=skip_bad,
                         workers=workers, prepared=prepared, max_seconds=max_seconds, min_class_clips=min_class_clips),
        seeds=SeedPlan(first=seed, count=seeds), tags={"zoo.recipe": recipe.name} if recipe else {},
        out_dir=Path(out_dir) if out_dir else None)
    return request, init_from, freeze


def load(model_or_run: Any, *, registry: Registry | None = None, experiment: str = "music-zoo",
         workspace: Workspace | None = None):
    """``(model, meta)`` of a packaged model: a folder, a run id, a recipe name, a registered model or a
    RunResult (any reference :func:`zoo.refs.resolve` takes; several seeds: the seed its rule picks).

    ``model`` is a ``ZooModel`` on the CPU (rebuilt in eval mode, or a RunResult's own model);
    ``meta`` the parsed ``zoo_model.json``. Run ids and recipes are looked up in the workspace's store.
    """
    from .engine.package import load_model
    from .engine.runner import RunResult, SeedResult
    from .refs import resolve
    if isinstance(model_or_run, tuple) and len(model_or_run) == 2:
        return model_or_run
    ws = _workspace(workspace)
    with tempfile.TemporaryDirectory(prefix="zoo-model-") as tmp:
        ref = resolve(model_or_run, workdir=Path(tmp), experiment=experiment, uri=ws.tracking_uri)
        if isinstance(model_or_run, (RunResult, SeedResult)):
            # The trained model is at hand: no rebuild (which Python-object compositions cannot do).
            seeds = model_or_run.results if isinstance(model_or_run, RunResult) else [model_or_run]
            return next(s.model for s in seeds if s.model_dir == ref.folder), ref.meta
        return load_model(ref.folder, _registry(registry, ws))


def open_model(model: Any, *, registry: Registry | None = None, device: str = "auto",
               window_seconds: float | None = None, hop_seconds: float | None = None,
               experiment: str | None = None, workspace: Workspace | None = None):
    """A :class:`~zoo.predict.Predictor` for ``model``: any reference :func:`zoo.refs.resolve` takes
    (``experiment`` limits recipes and run-id prefixes to one experiment; default: every one).

    A model held in MLflow is copied to a temporary folder, removed once the model is in memory.
    ``device``: "auto", "cpu" or "cuda"; ``window_seconds`` / ``hop_seconds``: see ``zoo predict``.
    """
    from .predict import Predictor
    from .refs import resolve
    ws = _workspace(workspace)
    with tempfile.TemporaryDirectory(prefix="zoo-predict-") as tmp:
        ref = resolve(model, workdir=Path(tmp), experiment=experiment, uri=ws.tracking_uri)
        predictor = Predictor.load(ref.folder, registry=_registry(registry, ws), device=device,
                                   window_seconds=window_seconds, hop_seconds=hop_seconds)
    predictor.label = ref.label
    return predictor


def evaluate(model_or_run: Any, data: Any = None, *, layout: str | None = None,
             settings: Mapping[str, Any] | None = None, split: str = "test", limit: int | None = None,
             skip_bad: bool = False, workers: int | None = None, device: str = "auto",
             registry: Registry | None = None, experiment: str = "music-zoo", out_dir: str | Path | None = None,
             progress: bool = False, workspace: Workspace | None = None):
    """Score a trained model on a data set; returns an ``EvalResult`` (metrics, reports on disk).

    ``model_or_run``: a RunResult, a packaged model folder, a run id, a recipe name (its latest
    run) or a ``(model, meta)`` pair from :func:`load`. ``data``: a folder, None for the embedded
    set, or a ready ``Prepared``. ``settings``: the data set's settings (``{"mapping": "none"}``).
    ``split``: "test" (default), "val", "train" or "all". Labels are matched to the model's
    classes by name. The reports go to ``out_dir`` (default: a new folder under the workspace's
    ``evaluations_dir``).
    """
    from .data.preparedset import Prepared
    from .engine.scoring import assess
    from .engine.package import features_from_meta
    from .engine.runner import run_folder
    ws = _workspace(workspace)
    registry = _registry(registry, ws)
    model, meta = load(model_or_run, registry=registry, experiment=experiment, workspace=ws)
    if isinstance(data, Prepared):
        prepared = data
    else:
        from .data.layout import open_dataset
        from .data.prepare import prepare
        from .data.select import task_needs
        dataset = open_dataset(data, layout=layout, registry=registry, settings=dict(settings or {}),
                               progress=progress, data_dir=ws.data_dir, limit=limit)
        need = task_needs(model.tasks.values())
        prepared = prepare(dataset, features_from_meta(meta, registry), rate=meta["rate"], skip_bad=skip_bad,
                           limit=limit, workers=workers, progress=progress, need=need, cache_dir=ws.cache_dir)
    folder = Path(out_dir) if out_dir else run_folder(meta["spec"], ws.evaluations_dir)
    return assess(model, meta, prepared, split=split, device=device, out_dir=folder)


def resume(run: str, *, registry: Registry | None = None, workspace: Workspace | None = None,
           reporter: Reporter | None = None, progress: bool = True, verbose: bool = False):
    """Go on with an interrupted or killed run (``zoo run --resume RUN``); returns its ``RunResult``.

    ``run``: its id or a unique prefix (a seed run of several stands for its parent). The run's
    folder (its ``zoo.folder`` tag) holds its ``config.yaml`` and each unfinished seed's
    ``checkpoint.pt``; training goes on from the last saved epoch in the same MLflow run (RUNNING
    again, this process recorded), so the result equals an uninterrupted run's. Finished seeds are
    kept. A FINISHED run, or one whose process still runs, is refused.
    """
    from .engine.runconfig import CONFIG_FILE, read_config, request_from_config
    from .engine.runner import Resume
    from .processes import visible, why_gone
    from .refs import find_run
    from .tracking import PARENT_TAG
    from .tracking.mlflow.queries import experiment_name_of
    from .tracking.mlflow.reconcile import recorded_process
    ws = _workspace(workspace)
    registry = _registry(registry, ws)
    found = find_run(run, uri=ws.tracking_uri)
    parent = found.data.tags.get(PARENT_TAG)
    top = find_run(parent, uri=ws.tracking_uri) if parent else found
    run_id, status, tags = top.info.run_id, top.info.status, top.data.tags
    if status == "FINISHED":
        raise ConfigError(f"run {run_id} is FINISHED: there is nothing to resume; to train it again, "
                          f"zoo run --config {Path(tags.get('zoo.folder', '<its folder>')) / CONFIG_FILE}")
    proc = recorded_process(tags)
    # Under torchrun rank 0 reopens the run first: the other ranks' check would find it running.
    if status == "RUNNING" and proc is not None and visible(proc) and why_gone(proc) is None and ws.rank == 0:
        raise ConfigError(f"run {run_id} is still running (process {proc.pid} on {proc.host}); stop it first "
                          f"(kill {proc.pid}), then zoo run --resume {run_id}")
    if "zoo.folder" not in tags:
        raise ConfigError(f"run {run_id} has no zoo.folder tag: it was not started by zoo run, so there is no "
                          f"checkpoint to resume from")
    folder = Path(tags["zoo.folder"])
    if not (folder / CONFIG_FILE).is_file():
        raise ConfigError(f"run {run_id}: its folder {folder} holds no {CONFIG_FILE} (moved or deleted, or an older "
                          f"zoo began it); it cannot be resumed, start it again with zoo run")
    request, init_from, freeze = request_from_config(read_config(folder / CONFIG_FILE), registry)
    experiment = experiment_name_of(top.info.experiment_id, uri=ws.tracking_uri)
    return train(request, init_from=init_from, freeze=freeze, experiment=experiment, registry=registry,
                 workspace=ws, reporter=reporter or (ConsoleReporter(progress=progress) if verbose
                                                     else QuietReporter(progress=progress)),
                 resume=Resume(run_id, folder))
