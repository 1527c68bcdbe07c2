"""The Python API: ``compose``, ``train``, ``evaluate``, ``load``, ``open_model``. The CLI is a thin layer over it.

Example::

    import zoo
    result = zoo.train("lstm+chroma:genre", epochs=5, data=zoo.DataRequest(limit=200), track=False)
    print(result.test["genre.accuracy"], result.reports["classification_report"])
    scores = zoo.evaluate(result, data="path/to/another/set")

``zoo.train`` takes its settings in the groups of a :class:`RunRequest` (``data=``, ``train=``,
``seeds=``), or a ready request. Each
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
from .engine.trainconfig import TrainConfig
from .errors import ConfigError, PluginError
from .model.building import Built, build_components
from .registry import Registry
from .spec import parse_spec
from .workspace import Workspace

__all__ = ["compose", "train", "resume", "evaluate", "load", "open_model", "RunRequest", "DataRequest", "SeedPlan",
           "TrainConfig", "Workspace", "Reporter", "QuietReporter", "ConsoleReporter"]


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


MOVED = {
    **{name: f"train={{'{name}': ...}} (or a TrainConfig)" for name in ("lr", "batch_size", "patience",
                                                                     "overfit_batches", "device")},
    **{name: f"data=DataRequest(path=..., {name}=...)" for name in ("layout", "limit", "skip_bad", "workers",
                                                                  "max_seconds", "min_class_clips")},
    "prepared": "data=prepared (a Prepared is taken as the data)",
    "seed": "seeds=SeedPlan(first=..., count=...)",
    "verbose": "reporter=ConsoleReporter()",
    "echo": "reporter=ConsoleReporter(echo)",
}
"""Keyword arguments ``train`` took before its settings were grouped, and how each is written now."""


def train(spec: str | Built | RunRequest, *, data: str | Path | DataRequest | Any = None,
          train: TrainConfig | Mapping[str, Any] | None = None, seeds: SeedPlan | int = 1,
          settings: Mapping[str, Mapping[str, Any]] | None = None, epochs: int | None = None,
          init_from: Any = None, freeze: Any = None, track: bool = True, experiment: str = "music-zoo",
          tracker: Any = None, reporter: Reporter | None = None, progress: bool = True,
          workspace: Workspace | None = None, registry: Registry | None = None, out_dir: str | Path | None = None,
          resume: Any = None, **moved: Any):
    """Train ``spec`` (a spec, a recipe name, a :func:`compose` result or a ready :class:`RunRequest`);
    returns a ``RunResult``.

    What to train, on which data and how come in three groups, the fields of a :class:`RunRequest`:

    - ``data``: a :class:`DataRequest` (folder, layout, limit, workers, ...), or just a data folder,
      or a ready :class:`zoo.data.preparedset.Prepared`; None: the embedded set.
    - ``train``: a mapping of :class:`~zoo.engine.trainconfig.TrainConfig` fields (``{"lr": 3e-4}``)
      over the backbone's recommended settings and ``settings["train"]``; or a whole ``TrainConfig``,
      which replaces the defaults (the recommended settings do not apply) under ``settings["train"]``.
    - ``seeds``: a :class:`SeedPlan`, or a count: ``3`` trains seeds 0, 1, 2 and reports mean and
      95 % interval.

    ``settings`` maps scopes (backbone, feature, task, a component name, ``train``, ``dataset``) to
    overrides, as ``--set`` does (a recipe's settings under them); ``epochs``, the one shortcut, wins
    over ``train`` and ``settings``. ``init_from``: start the backbone from a trained model (any reference
    :func:`zoo.refs.resolve` takes) with ``freeze`` "none" / "backbone" / N; a recipe with a
    ``transfer`` entry sets them itself. With a :class:`RunRequest` none of ``data`` ...
    ``epochs`` and ``out_dir`` is given again.

    ``track``: log to MLflow (experiment ``experiment``, in the workspace's store); ``tracker``: a
    ready :class:`~zoo.tracking.Tracker` to log through instead. What the run says goes to
    ``reporter`` (default: nothing printed; ``progress``: progress bars on stderr all the same;
    :class:`ConsoleReporter` prints ``zoo run``'s lines). ``workspace``: home folder, store and
    plugin switches (default: from the environment); ``registry`` defaults to the workspace's.
    ``out_dir``: where the run's folder goes. ``resume``: an :class:`~zoo.engine.runner.Resume`
    (use :func:`resume`, which finds it for a run).

    The keywords of the ungrouped signature (``lr``, ``limit``, ``prepared``, ``seed``, ...: :data:`MOVED`)
    are a ``TypeError`` that names the new spelling.
    """
    from .engine.runner import run
    from .engine.transfer import source_from_folder
    from .tracking import NullTracker
    from .tracking.mlflow.tracker import MlflowTracker
    if moved:
        name = next(iter(moved))
        if name not in MOVED:
            raise TypeError(f"train() got an unexpected keyword argument '{name}'")
        raise TypeError(f"zoo.train(..., {name}=...) is now written {MOVED[name]}; "
                        f"see help(zoo.train) for the grouped settings")
    ws = _workspace(workspace)
    registry = _registry(registry, ws)
    if reporter is None:
        reporter = QuietReporter(progress=progress)
    if isinstance(spec, RunRequest):
        given = [name for name, value, default in (
            ("data", data, None), ("settings", settings, None), ("train", train, None), ("epochs", epochs, None),
            ("seeds", seeds, 1), ("out_dir", out_dir, None)) if value is not default and value != default]
        if given:
            raise ConfigError(f"zoo.train(request, {', '.join(f'{k}=...' for k in given)}): a RunRequest already "
                              f"says what, on which data and how to train; change the request instead "
                              f"(request.replace(...))")
        request = spec
    else:
        request, init_from, freeze = _request(spec, registry=registry, reporter=reporter, data=data, train=train,
                                              seeds=seeds, settings=settings, epochs=epochs, out_dir=out_dir,
                                              init_from=init_from, freeze=freeze)
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


def grouped(flat: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`train`'s grouped keyword arguments from flat option values, as ``zoo run``, ``zoo sweep`` and
    ``zoo reproduce lab`` hold them: the :class:`DataRequest` option fields (``path``, or ``data`` as
    ``--data`` spells it, ``limit``, ``workers``, ...) become ``data=DataRequest(...)``, :class:`TrainConfig`
    fields ``train={...}``, ``seed`` and ``seeds`` ``seeds=SeedPlan(...)``; any other key (``experiment``,
    ``workspace``, ...) passes as it is. None values are left out (not given)."""
    import dataclasses

    from .config import options
    given = {k: v for k, v in flat.items() if v is not None}
    if "data" in given:
        given["path"] = given.pop("data")
    data_fields = {k for k, o in options(DataRequest).items() if o.flag}  # "seed" is the run's first seed
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    data = {k: given.pop(k) for k in list(given) if k in data_fields}
    if data:
        given["data"] = DataRequest(**data)
    train = {k: given.pop(k) for k in list(given) if k in train_fields}
    if train:
        given["train"] = train
    if "seed" in given or "seeds" in given:
        given["seeds"] = SeedPlan(first=given.pop("seed", 0), count=given.pop("seeds", 1))
    return given


def check_components(built: Any, registry: Any) -> None:
    """What every run checks before any data work: its backbone (built once more, then dropped) and its
    tasks pass :func:`zoo.testing.check_composition`, else a ``PluginError`` with that check's own
    message, so ``zoo run`` refuses what ``zoo.testing`` refuses (a backbone returning a bare tensor)."""
    from .testing import check_composition
    try:
        check_composition(built.make_backbone(registry), built.tasks, built.n_bins, features=built.features)
    except AssertionError as exc:
        raise PluginError(str(exc)) from None


def _request(spec: str | Built, *, registry: Registry, reporter: Reporter, data: Any,
             train: TrainConfig | Mapping[str, Any] | None, seeds: SeedPlan | int,
             settings: Mapping[str, Mapping[str, Any]] | None, epochs: int | None, out_dir: str | Path | None,
             init_from: Any, freeze: Any) -> tuple[RunRequest, Any, Any]:
    """The :class:`RunRequest` of ``train``'s groups and settings, and the transfer source to resolve
    (a recipe may name one): ``(request, init_from, freeze)``."""
    import dataclasses

    from .engine.trainconfig import backbone_defaults, split_settings, train_config, with_overrides
    from .model.building import ObjectBuilt
    spec, merged, recipe = _resolve_spec(spec, settings)
    if recipe is not None:
        reporter.on_recipe(recipe)
    components, train_over, dataset_over = split_settings(merged)
    if isinstance(train, TrainConfig):
        config = with_overrides(train, **train_over)
    elif train is None or isinstance(train, Mapping):
        if isinstance(spec, ObjectBuilt):
            recommended = {}
        else:
            backbone = spec.composition.backbone if isinstance(spec, Built) else parse_spec(spec, registry).backbone
            recommended = backbone_defaults(registry, backbone)
        config = train_config(recommended, train_over, train)
    else:
        raise ConfigError(f"train={train!r}: give a TrainConfig or a mapping of its fields, e.g. "
                          f"train={{'lr': 3e-4, 'patience': 4}}")
    config = with_overrides(config, epochs=epochs)
    if recipe and recipe.transfer and init_from is None:
        init_from = recipe.transfer.get("from")
        freeze = recipe.transfer.get("freeze", "none") if freeze is None else freeze
    if isinstance(data, DataRequest):
        if dataset_over:
            data = dataclasses.replace(data, settings={**data.settings, **dataset_over})
    elif data is None or isinstance(data, (str, Path)):
        data = DataRequest(path=data, settings=dataset_over)
    elif dataset_over:  # a Prepared: RunRequest says what it is
        raise ConfigError(f"settings['dataset'] {dataset_over} would be ignored: prepared data are used as they are")
    if isinstance(seeds, bool) or not isinstance(seeds, (SeedPlan, int)):
        raise ConfigError(f"seeds={seeds!r}: give a count (seeds=3: seeds 0, 1, 2) or SeedPlan(first=..., count=...)")
    request = RunRequest(
        spec, settings=components, train=config, data=data,
        seeds=seeds if isinstance(seeds, SeedPlan) else SeedPlan(count=seeds),
        tags={"zoo.recipe": recipe.name} if recipe else {}, out_dir=Path(out_dir) if out_dir else None)
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
