"""One training invocation: carry out a :class:`~zoo.engine.request.RunRequest` (compose, prepare, train per seed, log).

Every seed's run is tracked; with several seeds they nest under a parent run that logs the mean
and 95 % t-interval of each test metric. Reports and the packaged model of each seed go to a
folder under the request's ``out_dir`` (default: the workspace's ``runs`` folder) and are logged as
the run's ``reports/`` and ``model/`` artifacts. The runner prints nothing: what a user sees goes
through a :class:`~zoo.engine.reporting.Reporter`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..config import make_config
from ..data.preparedset import Prepared, parse_budget
from ..data.select import task_needs
from ..errors import ConfigError, DataError
from ..fsio import make_new_dir, write_json, write_text
from .checkpoint import Checkpoint
from ..model.building import Built, ObjectBuilt, build_components, resolved_configs
from ..model.model import build_model
from ..protocols import OwnsClasses, metric_direction, metric_directions
from ..spec import parse_spec
from ..tracking import DataInputs, Tracker, flatten, tracked_run, untracked
from . import intervals
from .batches import Normaliser, class_lookup, describe_paths, make_splits, tag_note, task_classes, unscaled_rows
from .device import pick_device
from .metrics import flat, predict_split, split_metrics
from .package import prepared_meta, save_model
from .reporting import QuietReporter, Reporter
from .reports import jsonable, write_reports
from .request import DataRequest, RunRequest
from .runconfig import CONFIG_FILE, config_yaml, run_config
from .seeds import seed_everything
from .trainconfig import TrainConfig, task_weight_map
from .transfer import TransferSource, adopt_settings, check_input, load_backbone_weights

if TYPE_CHECKING:
    from ..workspace import Workspace

# Settings that change speed or placement, not the model a run produces: not part of its group.
_NOT_GROUPED = ("device", "refresh_steps", "eval_batch_size", "precision", "threads", "memory_budget")


@dataclass
class SeedResult:
    """One trained model (one seed): its metrics, history, files and run.

    ``val`` and ``test`` are flat ``{"genre.accuracy": 0.41, ...}`` of the restored best model;
    ``test`` is empty for an overfit check, whose outcome is ``overfit``.
    """

    seed: int
    run_id: str | None
    val: dict[str, float]
    test: dict[str, float]
    history: list[dict[str, float]]
    best_epoch: int
    stopped_early: bool
    seconds: float
    folder: Path
    reports: dict[str, Path]
    model: Any = field(repr=False, default=None)
    model_dir: Path | None = None
    report_text: str = ""
    overfit: dict[str, Any] | None = None


@dataclass
class RunResult:
    """What :func:`run` (and ``zoo.train``) returns.

    ``results``: one :class:`SeedResult` per seed. With one seed, ``val``, ``test``,
    ``history``, ``model`` and ``reports`` are that seed's; with several, ``val``/``test``
    are means over the seeds and ``summary`` has mean, std and 95 % half-width per metric.
    """

    spec: str
    results: list[SeedResult]
    parent_run_id: str | None
    summary: dict[str, dict[str, float]]
    data: dict[str, Any]
    device: str
    classes: tuple[str, ...]
    targets: tuple[str, ...]
    tracking: str
    folder: Path

    @property
    def run_id(self) -> str | None:
        """The parent run with several seeds, else the single run."""
        return self.parent_run_id or self.results[0].run_id

    @property
    def run_ids(self) -> list[str | None]:
        return [r.run_id for r in self.results]

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.results]

    def _mean(self, attr: str) -> dict[str, float]:
        if len(self.results) == 1:
            return dict(getattr(self.results[0], attr))
        return {k: v["mean"] for k, v in intervals.summarise(getattr(r, attr) for r in self.results).items()}

    @property
    def val(self) -> dict[str, float]:
        return self._mean("val")

    @property
    def test(self) -> dict[str, float]:
        return self._mean("test")

    @property
    def history(self) -> list[dict[str, float]]:
        return self.results[0].history

    @property
    def model(self) -> Any:
        return self.results[0].model

    @property
    def reports(self) -> dict[str, Path]:
        return self.results[0].reports

    @property
    def overfit(self) -> dict[str, Any] | None:
        return self.results[0].overfit

    @property
    def ok(self) -> bool:
        """False only for an overfit check that did not reach its loss threshold."""
        return all(r.overfit is None or r.overfit["reached"] for r in self.results)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able summary (no model), as printed by ``zoo run --json``."""
        return {
            "spec": self.spec, "run_id": self.run_id, "run_ids": self.run_ids, "seeds": self.seeds,
            "val": self.val, "test": self.test, "summary": self.summary, "data": self.data,
            "device": self.device, "classes": list(self.classes), "targets": list(self.targets),
            "tracking": self.tracking, "folder": str(self.folder), "ok": self.ok,
            "per_seed": [{"seed": r.seed, "run_id": r.run_id, "val": r.val, "test": r.test,
                          "best_epoch": r.best_epoch, "epochs": len(r.history), "stopped_early": r.stopped_early,
                          "seconds": round(r.seconds, 2), "overfit": r.overfit,
                          "reports": {k: str(v) for k, v in r.reports.items()},
                          "model_dir": str(r.model_dir) if r.model_dir else None} for r in self.results],
        }


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]


def run_folder(spec: str, root: Path) -> Path:
    """A fresh folder ``root/<time>-<spec>-<random>`` for a run's files (``root``: e.g. the workspace's runs_dir)."""
    folder = Path(root) / f"{time.strftime('%Y%m%d-%H%M%S')}-{_slug(spec)}-{uuid.uuid4().hex[:6]}"
    return make_new_dir(folder, "the run folder")


def needed_columns(built: Built) -> tuple[str, ...]:
    """What the tasks read from each clip: "label" and/or target names (:func:`~zoo.data.select.task_needs`)."""
    return task_needs(built.tasks.values())


def load_data(built: Built, registry: Any, data: DataRequest, *, seed: int, workspace: Workspace,
              progress: bool = True, memory_budget: int | None = None, shard_bytes: int | None = None) -> Prepared:
    """Open the data set of ``data`` (the embedded one, under ``workspace.data_dir``, when it names no
    folder) and prepare it for ``built``, caching features under ``workspace.cache_dir``
    (``memory_budget``, ``shard_bytes``: see :func:`~zoo.data.prepare.prepare`)."""
    from ..data.layout import open_dataset
    from ..data.prepare import prepare
    dataset = open_dataset(data.path, layout=data.layout, registry=registry, settings=dict(data.settings),
                           progress=progress, data_dir=workspace.data_dir, limit=data.limit, seed=seed)
    tagging = [t for t in built.tasks.values() if t.kind == "multilabel"]
    if tagging:  # a misnamed tag column fails now, not after the features are extracted
        names = sorted({k for c in dataset.clips(built.rate) for k in c.targets})
        for task in tagging:
            task.resolve(names, dataset.describe())
    owning = {n: t for n, t in built.tasks.items() if t.kind == "classification" and isinstance(t, OwnsClasses)}
    if owning:  # a task's label map that fails does so now, too
        labels = sorted({c.label for c in dataset.clips(built.rate) if c.label is not None})
        for name, task in owning.items():
            class_lookup(name, task, labels, dataset.describe())
    return prepare(dataset, built.features, rate=built.rate, skip_bad=data.skip_bad, limit=data.limit, seed=seed,
                   workers=data.workers, progress=progress, need=needed_columns(built), cache_dir=workspace.cache_dir,
                   max_seconds=data.max_seconds, min_class_clips=data.min_class_clips, memory_budget=memory_budget,
                   shard_bytes=shard_bytes)


def check_prepared(prepared: Prepared, built: Built) -> None:
    """The data must match the composition: rate and number of bins."""
    if len(prepared) == 0:
        raise DataError(f"{prepared.description}: no usable clips for {built.composition}")
    if prepared.rate != built.rate or prepared.n_bins != built.n_bins:
        raise DataError(
            f"{prepared.description} holds {prepared.rate}-rate arrays of {prepared.n_bins} bins, but "
            f"{built.composition} needs {built.rate}-rate input of {built.n_bins} bins; prepare the data with "
            f"this composition's features"
        )


def describe_data(prepared: Prepared) -> dict[str, Any]:
    counts = {s: int((prepared.splits == s).sum()) for s in ("train", "val", "test")}
    return {"description": prepared.description, "fingerprint": prepared.fingerprint, "counts": counts,
            "clips": len(prepared), "skipped": len(prepared.skipped), "rate": prepared.rate,
            "n_bins": prepared.n_bins, "classes": list(prepared.classes), "targets": sorted(prepared.targets)}


def group_key(spec: str, configs: Mapping[str, Any], config: TrainConfig, fingerprint: str) -> str:
    """A short hash of everything that defines a run except its seed: runs that differ only in the
    seed share it, so ``zoo compare`` can pool them."""
    train = {k: v for k, v in dataclasses.asdict(config).items() if k not in _NOT_GROUPED}
    blob = json.dumps({"spec": spec, "configs": configs, "train": train, "data": fingerprint},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def key_metrics(built: Built, monitor: str = "") -> list[str]:
    """The test metrics ``zoo compare`` shows: each task's primary metric, plus macro F1 / MAE / ROC-AUC
    where the task declares it (:class:`~zoo.protocols.DeclaresMetrics`), plus the metric
    ``train.monitor`` names when its task declares it."""
    out = []
    for name, task in built.tasks.items():
        out.append(f"test.{name}.{task.primary_metric}")
        second = {"classification": "macro_f1", "regression": "mae", "multilabel": "roc_auc"}.get(task.kind)
        if second and second != task.primary_metric and second in metric_directions(task):
            out.append(f"test.{name}.{second}")
    if monitor and monitor != "loss":
        first = next(iter(built.tasks))
        name, metric = monitor.split(".", 1) if "." in monitor else (first, monitor)
        if name in built.tasks and metric_direction(built.tasks[name], metric) is not None:
            out.append(f"test.{name}.{metric}")
    return list(dict.fromkeys(out))


def lower_is_better(built: Built, monitor: str = "") -> list[str]:
    """The key metrics (:func:`key_metrics`) whose tasks declare lower values better: the tag
    ``zoo.lower_is_better`` that ``zoo compare`` reads, so it never guesses a direction from a name."""
    return [m for m in key_metrics(built, monitor)
            if metric_direction(built.tasks[m.split(".")[1]], m.split(".", 2)[2]) is False]


# -- resuming a run (its configuration file: zoo.engine.runconfig) ----------------
RUN_FILE = "run.json"
"""``seed<N>/run.json``: the tracker run of that seed and the data it trained on (for ``--resume``)."""
RESULT_FILE = "result.json"
"""``seed<N>/result.json``: a finished seed's result; ``--resume`` keeps such a seed as it is."""
@dataclass(frozen=True)
class Resume:
    """Go on with an unfinished run: its (top) tracker run and its folder (the run's ``zoo.folder`` tag)."""

    run_id: str
    folder: Path


def _log_file(tracker: Tracker, run_id: str, path: Path) -> None:
    """Log one file at the run's artifact root."""
    import shutil
    import tempfile
    with tempfile.TemporaryDirectory(prefix="zoo-artifact-") as tmp:
        shutil.copy2(path, Path(tmp) / path.name)
        tracker.log_artifacts(run_id, Path(tmp))


def _write_config(tracker: Tracker, run_id: str, folder: Path, doc: Mapping[str, Any] | None) -> None:
    if doc is not None:
        _log_file(tracker, run_id, write_text(folder / CONFIG_FILE, config_yaml(doc), "the run's config"))


def _finished_seed(folder: Path, registry: Any) -> SeedResult | None:
    """A seed that finished before its run was interrupted, from its ``result.json`` (None: not finished)."""
    done = folder / RESULT_FILE
    if not done.is_file():
        return None
    from .package import load_model
    doc = json.loads(done.read_text())
    doc["folder"] = Path(doc["folder"])
    doc["reports"] = {k: Path(v) for k, v in doc["reports"].items()}
    doc["model_dir"] = Path(doc["model_dir"]) if doc["model_dir"] else None
    model = load_model(doc["model_dir"], registry)[0] if doc["model_dir"] else None
    return SeedResult(model=model, **doc)


def _seed_run_id(folder: Path) -> str | None:
    record = folder / RUN_FILE
    return json.loads(record.read_text())["run_id"] if record.is_file() else None


@dataclass
class _Context:
    """What every seed of one invocation shares."""

    built: Built
    registry: Any
    config: TrainConfig
    prepared: Prepared
    norm: Normaliser
    splits: dict
    device: Any
    tracker: Tracker
    configs: dict
    base_tags: dict
    folder: Path
    reporter: Reporter
    transfer: TransferSource | None = None
    config_doc: dict | None = None
    group: Any = None
    """Under torchrun: the :class:`~zoo.engine.distributed.Group` (None in one process)."""


def _write_skipped(prepared: Prepared, folder: Path) -> Path | None:
    if not prepared.skipped:
        return None
    return write_text(folder / "skipped.txt", "".join(f"{item}\t{reason}\n" for item, reason in prepared.skipped),
                      "the list of skipped clips")


def _seed_params(ctx: _Context, seed: int) -> dict[str, Any]:
    params = {"spec": str(ctx.built.composition), "seed": seed}
    params.update(flatten(ctx.configs))
    params.update({f"train.{k}": v for k, v in dataclasses.asdict(ctx.config).items()})
    params.update({f"provider.{k}": v for k, v in ctx.built.providers.items()})
    params["device"] = ctx.device.describe()
    params["precision"] = ctx.device.precision + (", channels_last" if ctx.device.channels_last else "")
    params.update(describe_paths(ctx.splits, parse_budget(ctx.config.memory_budget)))
    if ctx.group is not None:  # train.batch_size and train.lr are global: one rank trains on its share
        params.update(ctx.group.describe())
        params["distributed.batch_size_per_rank"] = -(-ctx.config.batch_size // ctx.group.world_size)
    if ctx.transfer is not None:
        params.update({"transfer.from": ctx.transfer.label, "transfer.source_spec": ctx.transfer.spec,
                       "transfer.freeze": ctx.transfer.freeze, "transfer.source_run": ctx.transfer.source_run})
    return params


def _predict(ctx: _Context, model: Any, split: str):
    """Predictions over every clip of ``split``: in this process, or sharded over the ranks and gathered."""
    if ctx.group is not None:
        return ctx.group.predict(model, ctx.splits[split], ctx.device, ctx.config.eval_batch_size,
                                 window=ctx.config.crop_frames)
    return predict_split(model, ctx.splits[split], ctx.device, ctx.config.eval_batch_size,
                         window=ctx.config.crop_frames)


def seed_model(ctx: _Context, seed: int) -> tuple[Any, Any]:
    """The model one seed trains, the same on every rank and in one process: seeded, built from the
    composition with the task classes of the prepared data, started from the transfer source's
    weights (the same frozen blocks on every rank, or DDP's gradients would not match), placed on the
    device. Returns ``(model, what the transfer copied or None)``; the optimiser is :func:`fit`'s
    (:func:`~zoo.engine.train.make_optimizer`), so both paths get the same one too."""
    import torch
    built = ctx.built
    seed_everything(seed)
    schemas = {n: t.schema(task_classes(t, ctx.prepared)) for n, t in built.tasks.items()}
    model = build_model(built.make_backbone(ctx.registry), built.tasks, schemas,
                        task_weighting=ctx.config.task_weighting,
                        task_weights=task_weight_map(built.tasks, ctx.config.task_weights))
    copied = None
    if ctx.transfer is not None:
        backbone_config = ctx.registry.load("backbone", built.composition.backbone).config
        copied = load_backbone_weights(model, ctx.transfer, backbone_config)
    if ctx.group is not None:  # dropout and augmentation differ per rank; the weights above do not
        torch.manual_seed(ctx.group.rank_seed(seed))
    ctx.device.place(model)
    return model, copied


def _worker_seed(ctx: _Context, seed: int) -> SeedResult:
    """A seed on a rank other than 0: the same model, its share of every batch and of evaluation, and
    the same collectives as rank 0 in the same order; it writes and logs nothing."""
    from .train import fit
    model, _ = seed_model(ctx, seed)
    result = fit(model, ctx.splits["train"], ctx.splits["val"], ctx.config, ctx.device, seed=seed, progress=False,
                 group=ctx.group)
    val = split_metrics(model, _predict(ctx, model, "val"))
    test = split_metrics(model, _predict(ctx, model, "test"))
    return SeedResult(seed, None, flat(val), flat(test), result.history, result.best_epoch, result.stopped_early,
                      result.seconds, Path(), {}, model)


def _train_seed(ctx: _Context, seed: int, run_id: str) -> SeedResult:
    import torch
    if ctx.group is not None and not ctx.group.main:
        return _worker_seed(ctx, seed)
    built, tracker = ctx.built, ctx.tracker
    folder = ctx.folder / f"seed{seed}"
    reports_dir = folder / "reports"
    reports_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = Checkpoint(folder)
    resumed = checkpoint.exists()  # its params and data were logged when the seed began
    record = folder / RUN_FILE
    if record.is_file() and json.loads(record.read_text()).get("fingerprint") != ctx.prepared.fingerprint:
        raise DataError(f"the data prepared now (fingerprint {ctx.prepared.fingerprint}) differ from the data seed "
                        f"{seed} began on ({record}): the checkpoint fits only those; restore the data folder, or "
                        f"start a new run with zoo run --config {ctx.folder / CONFIG_FILE}")
    write_json(record, {"run_id": run_id, "seed": seed, "fingerprint": ctx.prepared.fingerprint}, "the seed's run")
    if not resumed:
        tracker.log_params(run_id, _seed_params(ctx, seed))
        tracker.log_inputs(run_id, DataInputs.from_summary(describe_data(ctx.prepared)))
    model, copied = seed_model(ctx, seed)
    if copied is not None:
        ctx.reporter.on_transfer(ctx.transfer, copied)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if not resumed:
        tracker.log_params(run_id, {"model.parameters": n_params})
    else:
        ctx.reporter.on_note(f"seed {seed}: resuming from {checkpoint.path}")
    ctx.reporter.on_model(str(built.composition), seed, n_params)

    from . import linearfit
    from .train import fit

    def log_epoch(epoch: int, row: Mapping[str, float]) -> None:
        tracker.log_metrics(run_id, {k: v for k, v in row.items() if k != "epoch"}, step=epoch)

    unfit = linearfit.why_not(model, ctx.config)
    if unfit and not ctx.config.overfit_batches:
        ctx.reporter.on_note(f"fit: SGD, not the closed-form fit of linear heads: {unfit}")
    result = fit(model, ctx.splits["train"], ctx.splits["val"], ctx.config, ctx.device, seed=seed,
                 progress=ctx.reporter.progress, on_epoch=log_epoch,
                 checkpoint=checkpoint if not ctx.config.overfit_batches else None, group=ctx.group)
    if result.linear is not None:
        tracker.log_params(run_id, linearfit.params(result.linear))
        ctx.reporter.on_note(linearfit.summary(result.linear))
    skipped = _write_skipped(ctx.prepared, reports_dir)
    title = f"{built.composition} seed {seed}"
    if result.overfit is not None:
        from .plots import curves
        curves(result.history, reports_dir / "curves.png", title=f"{title}: overfit check")
        write_json(reports_dir / "overfit.json", result.overfit, "the overfit report")
        tracker.log_metrics(run_id, {"overfit.final_loss": result.overfit["final_loss"],
                                     "overfit.epochs": result.overfit["epochs"]})
        tracker.set_tags(run_id, {"zoo.overfit.reached": str(result.overfit["reached"]).lower()})
        tracker.log_artifacts(run_id, reports_dir, "reports")
        reports = {"curves": reports_dir / "curves.png", "overfit": reports_dir / "overfit.json"}
        return SeedResult(seed, run_id, {}, {}, result.history, result.best_epoch, False, result.seconds,
                          folder, reports, model, None, "", result.overfit)

    val_preds = _predict(ctx, model, "val")
    val = split_metrics(model, val_preds)
    test_preds = _predict(ctx, model, "test")
    test = split_metrics(model, test_preds)
    extra = {"val": val, "spec": str(built.composition), "seed": seed, "best_epoch": result.best_epoch,
             "epochs": len(result.history), "stopped_early": result.stopped_early, "monitor": result.monitor,
             "train_seconds": result.seconds, "data": describe_data(ctx.prepared), "history": result.history}
    if result.linear is not None:
        extra["linear_fit"] = [dataclasses.asdict(f) for f in result.linear]
    reports = write_reports(reports_dir, model, test_preds, test, history=result.history, extra=extra, title=title)
    if skipped:
        reports["skipped"] = skipped
    final = {**flat(val, "final.val."), **flat(test, "test."), "test.loss": test_preds.loss,
             "best_epoch": result.best_epoch, "epochs_run": len(result.history), "train_seconds": result.seconds}
    tracker.log_metrics(run_id, final)
    metrics = {"val": flat(val), "test": flat(test)}
    model_dir = save_model(folder / "model", model, built, prepared_meta(ctx.prepared), ctx.norm, ctx.config,
                           registry=ctx.registry, metrics=metrics, seed=seed,
                           run_id=run_id if tracker.durable else None, precision=ctx.device.precision,
                           channels_last=ctx.device.channels_last)
    tracker.log_artifacts(run_id, reports_dir, "reports")
    tracker.log_model(run_id, model_dir)
    text = reports.get("classification_report")
    model.to("cpu")
    if ctx.device.type == "cuda":
        torch.cuda.empty_cache()
    done = SeedResult(seed, run_id, flat(val), flat(test), result.history, result.best_epoch, result.stopped_early,
                      result.seconds, folder, reports, model, model_dir, text.read_text() if text else "")
    record = {f.name: getattr(done, f.name) for f in dataclasses.fields(done) if f.name != "model"}
    write_json(folder / RESULT_FILE, jsonable(record), "the seed's result", default=str)
    checkpoint.remove()  # the seed is done: its model is packaged, its result recorded
    return done


def compose_request(request: RunRequest, registry: Any) -> Built:
    """The composition ``request`` trains: its Built as given, or its spec built with its settings
    (a transfer's backbone settings adopted, and its input checked against the source's)."""
    if isinstance(request.spec, Built):
        return request.spec
    comp = parse_spec(request.spec, registry)
    settings = request.settings
    transfer = request.transfer
    if transfer is not None:
        settings = adopt_settings(transfer, comp, settings, registry.load("backbone", comp.backbone).config)
    built = build_components(comp, registry, settings)
    if transfer is not None:
        check_input(transfer, built.rate, built.n_bins, comp)
    built.make_backbone(registry)  # a broken backbone plugin fails here, before any data work
    return built


def run(request: RunRequest, *, registry: Any, tracker: Tracker | None = None, reporter: Reporter | None = None,
        workspace: Workspace | None = None, resume: Resume | None = None,
        check: Callable[[Built, Any], None] | None = None) -> RunResult:
    """Carry out ``request``: train its composition once per seed, evaluate and log each.

    ``check(built, registry)``: called before any data work, to refuse components (the API passes
    :func:`zoo.api.check_components`, the contract checks of :mod:`zoo.testing`).

    The resolved configuration goes to the run's folder and artifacts as ``config.yaml``; every epoch
    a checkpoint goes to ``seed<N>/checkpoint.pt`` (removed when the seed is done). ``resume``: go on
    with that unfinished run of the same request: its finished seeds are kept, the others continue
    from their checkpoints, in the same tracker runs.

    ``tracker`` defaults to a :class:`~zoo.tracking.NullTracker`, ``reporter`` to a quiet one.
    ``workspace`` gives the embedded data's and the feature cache's folders and, when the request
    has no ``out_dir``, the runs folder; it may be left out only when the request brings its data
    prepared and an ``out_dir``. Failures end the affected runs FAILED and propagate.
    """
    tracker = tracker or untracked()
    reporter = reporter or QuietReporter()
    data, config = request.data, request.train
    if workspace is None and (data.prepared is None or request.out_dir is None):
        need = "an out_dir" if data.prepared is not None else "prepared data and an out_dir"
        raise ConfigError(f"runner.run needs a workspace (for the data, cache and runs folders) unless the request "
                          f"has {need}; pass workspace=zoo.workspace.Workspace.from_env()")
    built = compose_request(request, registry)
    text = str(built.composition)
    task_weight_map(built.tasks, config.task_weights)  # refuse a bad weight count before any work
    configs = resolved_configs(built, registry)
    device = pick_device(config.device, precision=config.precision, threads=config.threads,
                         **speed_declarations(built, registry))
    ranks = _join(workspace, device, config, resume)
    if ranks is not None:
        device = ranks.device
        if not ranks.main:  # only rank 0 writes and speaks
            tracker, reporter = untracked(), QuietReporter(progress=False)
    if ranks is not None and not ranks.main:  # another rank writes nothing, and may run on another machine
        folder = None
    elif resume is not None:
        folder = resume.folder
    else:
        folder = run_folder(text, request.out_dir if request.out_dir is not None else workspace.runs_dir)
    seed_list = request.seeds.seeds
    several = len(seed_list) > 1
    base_tags = {"zoo.spec": text, "zoo.kind": "overfit" if config.overfit_batches else "run",
                 "zoo.key_metrics": ",".join(key_metrics(built, config.monitor)),
                 "zoo.lower_is_better": ",".join(lower_is_better(built, config.monitor)), "zoo.folder": str(folder),
                 **request.tags}
    if request.transfer is not None:
        base_tags.update(request.transfer.tags())
    # Where the data came from, so the same clips can be prepared again later (zoo embed).
    base_tags.update(data.source(request.data_seed).tags())
    top_tags = dict(base_tags, **({"zoo.kind": "seeds", "zoo.seeds": ",".join(map(str, seed_list))} if several else
                                  {"zoo.seed": str(seed_list[0])}))
    top_name = f"{text} seeds {seed_list[0]}-{seed_list[-1]}" if several else f"{text} seed {seed_list[0]}"
    doc = None if isinstance(built, ObjectBuilt) else run_config(request, configs)
    guard = ranks.failures() if ranks is not None else contextlib.nullcontext()
    with tracked_run(tracker, top_name, top_tags, reopen=resume.run_id if resume else None) as top_id, guard:
        if resume is None and folder is not None:
            _write_config(tracker, top_id, folder, doc)
        if check is not None:  # before any data work, inside the run: a refusal marks it FAILED with its reason
            check(built, registry)
        budget = parse_budget(config.memory_budget)
        prepared = data.prepared
        if prepared is None:
            if ranks is not None and not ranks.main:
                ranks.barrier()  # rank 0 prepares first: the others then read its feature cache
            prepared = load_data(built, registry, data, seed=request.data_seed, workspace=workspace,
                                 progress=reporter.progress, memory_budget=budget)
            if ranks is not None and ranks.main:
                ranks.barrier()
        check_prepared(prepared, built)
        reporter.on_data(prepared)
        reporter.on_device(device.describe())
        norm = Normaliser.fit(prepared.clips(prepared.indices("train")), keep=unscaled_rows(built.features))
        splits = make_splits(prepared, built.tasks, norm, device.device, budget)
        for name, task in built.tasks.items():
            if task.kind == "multilabel":  # what the threshold made of the columns: the user's to judge
                reporter.on_note(tag_note(name, task, prepared, splits["train"].y_host[name]))
        if any(s.path != "resident" for s in splits.values()):
            reporter.on_note("data path: " + ", ".join(f"{n} {s.path}" for n, s in splits.items())
                             + f" (train.memory_budget={config.memory_budget})")
        group = group_key(text, configs, config, prepared.fingerprint)
        data_tags = {"zoo.dataset": prepared.description, "zoo.fingerprint": prepared.fingerprint, "zoo.group": group}
        tracker.set_tags(top_id, data_tags)
        if ranks is not None or resume is not None:
            # The processes that train now: a run resumed on another world size says so here (MLflow keeps
            # the params of its first leg, distributed.world_size among them).
            tracker.set_tags(top_id, {"zoo.world_size": str(ranks.world_size if ranks is not None else 1)})
        ctx = _Context(built, registry, config, prepared, norm, splits, device, tracker, configs,
                       dict(base_tags, **data_tags), folder, reporter, request.transfer, doc, ranks)
        results = []
        _record_launch(top_id, ranks, workspace.launch_record if workspace is not None else "")
        if not several:
            results.append((folder is not None and _finished_seed(folder / f"seed{seed_list[0]}", registry))
                           or _train_seed(ctx, seed_list[0], top_id))
            reporter.on_seed_end(results[-1])
        else:
            for s in seed_list:
                seed_dir = folder / f"seed{s}" if folder is not None else Path()  # another rank: not used
                done = _finished_seed(seed_dir, registry) if resume and folder is not None else None
                if ranks is not None and resume is not None and ranks.share(done is not None) and done is None:
                    done = _finished_seed_of_another_rank(s)  # rank 0 keeps it: so does this rank
                if done is not None:
                    results.append(done)
                    reporter.on_seed_end(done)
                    continue
                reopen = _seed_run_id(seed_dir) if resume else None
                with tracked_run(tracker, f"{text} seed {s}", dict(ctx.base_tags, **{"zoo.seed": str(s)}),
                                 parent=top_id, reopen=reopen) as child:
                    if reopen is None and doc is not None and folder is not None:
                        _write_config(tracker, child, seed_dir, run_config(request, configs, seed=s))
                    results.append(_train_seed(ctx, s, child))
                reporter.on_seed_end(results[-1])
        summary = intervals.summarise(r.test for r in results) if several else {}
        if several:
            _log_summary(tracker, top_id, ctx, summary, results, seed_list)
    result = RunResult(text, results, top_id if several else None, summary, describe_data(prepared),
                       device.describe(), tuple(prepared.classes),
                       tuple(t.target for t in built.tasks.values() if t.kind == "regression"),
                       tracker.where(top_id), folder)
    if ranks is not None:
        ranks.close()
    reporter.on_run_end(result)
    return result


def speed_declarations(built: Any, registry: Any) -> dict[str, bool]:
    """What the backbone declares about its speed (:class:`~zoo.protocols.FastInBf16`,
    :class:`~zoo.protocols.ChannelsLast`): on its config, made with this composition's settings (a
    declaration may depend on them, as the LSTM's bf16 does on its conv front end), or on the module
    itself when the composition was given as objects."""
    from ..protocols import ChannelsLast, FastInBf16
    if isinstance(built, ObjectBuilt):
        holder: Any = built.backbone
    else:
        name = built.composition.backbone
        holder = make_config(registry.load("backbone", name).config, built.settings.get("backbone", {}),
                             where=f"backbone '{name}'")
    return {"cpu_bf16": isinstance(holder, FastInBf16) and bool(holder.cpu_bf16),
            "channels_last": isinstance(holder, ChannelsLast) and bool(holder.channels_last)}


def _record_launch(run_id: str, ranks: Any, where: str) -> None:
    """Under ``zoo run --devices N`` (``where``: the workspace's ``launch_record``): rank 0 writes its run id
    there, so that the launcher, which alone sees how a rank ended (SIGKILL...), can say so in the run."""
    if where and (ranks is None or ranks.main):
        with contextlib.suppress(OSError):
            Path(where).write_text(run_id)


def _finished_seed_of_another_rank(seed: int) -> SeedResult:
    """On a rank other than 0: the stand-in for a seed rank 0 found finished (it reports it; this rank skips it)."""
    return SeedResult(seed, None, {}, {}, [], 0, False, 0.0, Path(), {}, None)


def _join(workspace: Workspace | None, device: Any, config: TrainConfig, resume: Resume | None) -> Any:
    """This process's :class:`~zoo.engine.distributed.Group` when torchrun started several; else None."""
    if workspace is None or workspace.world_size <= 1:
        return None
    if config.overfit_batches:
        raise ConfigError(f"--overfit-batches checks a few batches in one process, not {workspace.world_size}; "
                          f"run it without torchrun or --devices")
    from .distributed import join
    return join(workspace.rank, workspace.world_size, workspace.local_rank, workspace.local_world_size, device,
                batch_size=config.batch_size)


def _log_summary(tracker: Tracker, run_id: str, ctx: _Context, summary: Mapping[str, Mapping[str, float]],
                 results: list[SeedResult], seed_list: list[int]) -> None:
    """The parent run of several seeds: mean, std and 95 % half-width of every test metric."""
    params = {"spec": str(ctx.built.composition), "seeds": len(seed_list), "seed.first": seed_list[0]}
    params.update(flatten(ctx.configs))
    params.update({f"train.{k}": v for k, v in dataclasses.asdict(ctx.config).items()})
    params.update({f"provider.{k}": v for k, v in ctx.built.providers.items()})
    tracker.log_params(run_id, params)
    tracker.log_inputs(run_id, DataInputs.from_summary(describe_data(ctx.prepared)))
    metrics = {}
    for key, s in summary.items():
        for stat in ("mean", "std", "half_width"):
            value = s[stat]
            if value == value:  # NaN (one seed reported it) says nothing: leave it out
                metrics[f"test.{key}.{'ci95' if stat == 'half_width' else stat}"] = value
        metrics[f"test.{key}.n"] = s["n"]
    tracker.log_metrics(run_id, metrics)
    summary_dir = ctx.folder / "summary"
    summary_dir.mkdir(exist_ok=True)
    doc = {"seeds": seed_list, "summary": summary,
           "per_seed": [{"seed": r.seed, "run_id": r.run_id, "test": r.test} for r in results]}
    write_json(summary_dir / "seeds.json", jsonable(doc), "the seeds summary")
    tracker.log_artifacts(run_id, summary_dir, "summary")


def resolved_run_config(request: RunRequest, registry: Any) -> dict[str, Any]:
    """The full configuration ``request`` runs with (``zoo run --print-config``), without training:
    its composition built and every component's settings resolved, defaults included."""
    built = compose_request(request, registry)
    return run_config(request, resolved_configs(built, registry))
