"""Latent maps (lab step 11): the layer before the output for every clip, projected to 2-D, drawn and logged.

``zoo embed RUN`` loads the run's packaged model, prepares the clips it was trained and tested
on again (its data source is recorded with the run, see :mod:`zoo.engine.datasource`), takes
``ZooModel.embed`` of every clip of a split, projects the embeddings with PCA, t-SNE or UMAP and
saves a scatter (PNG) and the 2-D coordinates (CSV), both also logged to the run as artifacts
under ``embeddings/``. What to draw is a frozen :class:`LatentMapRequest`, checked when it is made.
"""
from __future__ import annotations

import csv
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ..bounds import bounded, check_bounds
from ..data.select import task_needs
from ..engine.request import DataRequest
from ..errors import ConfigError, DataError
from ..tracking import DEFAULT_EXPERIMENT
from .project import METHOD_NAMES, METHODS, check_method

if TYPE_CHECKING:
    from ..engine.reporting import Reporter
    from ..workspace import Workspace

ARTIFACT_DIR = "embeddings"
SPLITS = ("train", "val", "test", "all")
LABEL_COLOURS = ("genre", "label")
"""Colour names meaning "the clip's class label" (the genre for the zoo's data sets)."""


@dataclass(frozen=True)
class LatentMapRequest:
    """What ``zoo embed`` draws: latent maps of one trained model, one per projection method.

    ``model``: any reference :func:`zoo.refs.resolve` takes (a run id or prefix, a recipe name for
    its latest run in ``experiment``, a model folder, a ``RunResult``). ``data``: the clips to map,
    a :class:`~zoo.engine.request.DataRequest` (a folder path or a ``Prepared`` is taken as one;
    its ``seed`` draws a ``limit`` subset, default 0); None: the data the run recorded, prepared
    again exactly (same folder, layout, settings, limit and seed). ``methods``: pca, tsne, umap.
    ``color``: "genre" or a target name (default: genre when the data has labels). ``split``:
    train, val, test or all. ``task``: whose last hidden layer (default: the model's first task).
    ``out_dir``: the PNG and CSV files (default: the workspace's ``embeddings/<run>``); ``log``:
    attach them to the model's MLflow run (when it has one). ``seed``: the t-SNE / UMAP layout's.
    """

    model: Any
    methods: tuple[str, ...] = ("pca",)
    color: str | None = None
    split: str = "test"
    task: str | None = None
    data: DataRequest | None = None
    out_dir: Path | None = None
    log: bool = True
    seed: int = bounded(0, ge=0, le=2 ** 32 - 1, why="the t-SNE / UMAP layout's seed")
    device: str = "auto"
    experiment: str = DEFAULT_EXPERIMENT

    def __post_init__(self) -> None:
        from ..data.preparedset import Prepared
        methods = (self.methods,) if isinstance(self.methods, str) else tuple(self.methods)
        if not methods:
            raise ConfigError(f"no projection method given; use {', '.join(METHODS)}")
        object.__setattr__(self, "methods", tuple(dict.fromkeys(check_method(m) for m in methods)))
        if self.split not in SPLITS:
            raise ConfigError(f"split '{self.split}': use one of {', '.join(SPLITS)}")
        data = self.data
        if isinstance(data, Prepared):
            data = DataRequest(prepared=data)
        elif isinstance(data, (str, Path)):
            data = DataRequest(path=data)
        if data is not None and not isinstance(data, DataRequest):
            raise ConfigError(f"data {data!r}: give a DataRequest, a data folder or a Prepared (None: the run's own)")
        object.__setattr__(self, "data", data)
        check_bounds(self, "latent map", fix=lambda name: f"set it with --{name} or {name}=...")
        if self.out_dir is not None:
            object.__setattr__(self, "out_dir", Path(self.out_dir).expanduser())


@dataclass
class LatentMap:
    """One latent map: the files written, what it shows and whether it was logged to the run."""

    png: Path
    csv: Path
    method: str
    color: str
    split: str
    task: str
    clips: int
    dim: int
    run_id: str | None
    logged: bool
    data: str
    same_data: bool | None
    """Whether the prepared clips match the model's training data (None: unknown)."""


def embeddings(model: Any, meta: Mapping[str, Any], prepared: Any, rows: np.ndarray, *, task: str | None = None,
               device: str = "auto", batch_size: int = 64) -> np.ndarray:
    """``ZooModel.embed`` of clips ``rows`` of ``prepared``: ``[len(rows), D']`` float32, in ``rows`` order.

    Inputs are normalised with the model's own training statistics, as in training.
    """
    import torch

    from ..engine.batches import Normaliser, make_split, ordered_batches
    from ..engine.device import for_model, pick_device
    choice = for_model(pick_device(device), meta)
    norm = Normaliser.from_json(meta["normalisation"])
    split = make_split("embed", prepared, np.asarray(rows), {}, norm, choice.device)
    choice.place(model)
    model.eval()
    parts, seen = [], []
    try:
        with torch.inference_mode():
            for batch_rows in ordered_batches(split.lengths_host, batch_size):
                b = split.batch(batch_rows)
                with choice.autocast():
                    z = model.embed(b.x, b.lengths, task)
                parts.append(z.float().cpu().numpy())
                seen.append(batch_rows)
    finally:
        model.to("cpu")
    order = np.concatenate(seen)
    out = np.empty((len(order), parts[0].shape[1]), dtype=np.float32)
    out[order] = np.concatenate(parts)
    return out


def prepare_for(ref: Any, model: Any, data: DataRequest | None, *, registry: Any, workspace: Workspace,
                reporter: Reporter):
    """The clips to map for the run ``ref`` (a :class:`~zoo.refs.ModelRef`): ``(prepared, same_data)``.

    The data set is prepared with the model's own features. ``data`` None: the run's recorded
    source, hence the same clips and splits as in training; else the data ``data`` names (its
    ``prepared`` as it is, or its folder, None for the embedded set).
    """
    from ..data.layout import open_dataset
    from ..data.prepare import prepare
    from ..engine.datasource import DataSource
    from ..engine.package import features_from_meta
    meta = ref.meta
    source = None
    if data is None:
        source = DataSource.from_tags(ref.tags)
        if source is None or source.in_memory:
            why = ("was trained on data handed over in memory" if source is not None else
                   "has no recorded data source (an untracked model folder, or a run older than the record)")
            raise ConfigError(
                f"the model {ref.label} {why}, so its clips cannot be prepared again; pass the data to map "
                f"with --data PATH (and --layout / --set dataset.KEY=VALUE as in training), or omit --data "
                f"only for runs that recorded their data"
            )
        data = DataRequest(path=source.path, layout=source.layout, settings=source.settings, limit=source.limit,
                           skip_bad=source.skip_bad, seed=source.seed)
    if data.prepared is not None:
        return _checked(data.prepared, meta), None
    dataset = open_dataset(data.path, layout=data.layout, registry=registry, settings=dict(data.settings),
                           progress=reporter.progress, data_dir=workspace.data_dir, limit=data.limit,
                           seed=data.seed or 0)
    need = task_needs(model.tasks.values())
    prepared = prepare(dataset, features_from_meta(meta, registry), rate=meta["rate"], limit=data.limit,
                       seed=data.seed or 0, skip_bad=data.skip_bad, workers=data.workers,
                       progress=reporter.progress, need=need, cache_dir=workspace.cache_dir)
    recorded = (meta.get("data") or {}).get("fingerprint")
    same = None if not recorded else prepared.fingerprint == recorded
    if source is not None and same is False:
        reporter.on_note(f"note: {prepared.description} differs from the data {ref.label} was trained on "
                         f"(the files changed since); the map shows the data as it is now")
    return prepared, same


def _checked(prepared: Any, meta: Mapping[str, Any]) -> Any:
    if prepared.n_bins != int(meta["n_bins"]) or prepared.rate != meta["rate"]:
        raise DataError(f"{prepared.description} holds {prepared.rate}-rate arrays of {prepared.n_bins} bins; the "
                        f"model {meta['spec']} needs {meta['rate']}-rate input of {meta['n_bins']} bins")
    return prepared


def colour_of(prepared: Any, color: str | None, model: Any) -> str:
    """Check ``color`` against what the data has; default: genre when there are labels, else a target."""
    targets = sorted(prepared.targets)
    has_labels = len(prepared.classes) > 0 and bool((prepared.labels >= 0).any())
    valid = (list(LABEL_COLOURS[:1]) if has_labels else []) + targets
    if color is None:
        if has_labels:
            return "genre"
        regress = [t.target for t in model.tasks.values() if t.kind == "regression"]
        if regress and regress[0] in targets:
            return regress[0]
        if targets:
            return targets[0]
        raise DataError(f"{prepared.description} has neither labels nor targets to colour a latent map by")
    c = str(color).strip().lower()
    if c in LABEL_COLOURS and has_labels:
        return "genre"
    if c in targets:
        return c
    from ..errors import suggest
    raise ConfigError(f"--color {color}: {prepared.description} offers {', '.join(valid) or '(nothing)'}"
                      f"{suggest(c, valid)}")


def rows_of(prepared: Any, split: str) -> np.ndarray:
    if split not in SPLITS:
        raise ConfigError(f"split '{split}': use one of {', '.join(SPLITS)}")
    rows = np.arange(len(prepared)) if split == "all" else prepared.indices(split)
    if len(rows) < 3:
        counts = {s: int((prepared.splits == s).sum()) for s in SPLITS[:3]}
        raise DataError(f"{prepared.description}: the '{split}' split has {len(rows)} clip(s) (per split: {counts}); "
                        f"a latent map needs at least 3: choose another --split (all takes every clip)")
    return rows


def write_csv(path: Path, prepared: Any, rows: np.ndarray, xy: np.ndarray) -> Path:
    """One line per clip: id, split, x, y, its label and every target value."""
    names = sorted(prepared.targets)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "split", "x", "y", "label", *names])
        for j, i in enumerate(rows):
            label = prepared.classes[prepared.labels[i]] if prepared.labels[i] >= 0 else ""
            values = ["" if np.isnan(prepared.targets[n][i]) else f"{float(prepared.targets[n][i]):.6g}" for n in names]
            w.writerow([prepared.ids[i], prepared.splits[i], f"{xy[j, 0]:.6g}", f"{xy[j, 1]:.6g}", label, *values])
    return Path(path)


def log_files(run_id: str, files: Sequence[Path], *, uri: str) -> None:
    """Attach ``files`` to run ``run_id`` of the store ``uri`` under ``embeddings/`` (a finished run
    takes artifacts too)."""
    from ..tracking.mlflow.tracker import MlflowTracker
    MlflowTracker(uri=uri).log_files(run_id, files, ARTIFACT_DIR)


def default_out(ref: Any, workspace: Workspace) -> Path:
    """``<workspace>/embeddings/<run id, or the model folder's parent>``."""
    return workspace.embeddings_dir / (ref.run_id or Path(ref.folder).resolve().parent.name)


def latent_maps(request: LatentMapRequest | Any, *, workspace: Workspace | None = None, registry: Any = None,
                reporter: Reporter | None = None, **options: Any) -> list[LatentMap]:
    """Latent maps of a trained model, one per method of ``request``, from one pass of the model.

    ``request``: a :class:`LatentMapRequest`, or the model reference with the request's other
    fields as keyword ``options`` (``latent_maps(run_id, methods=("pca", "tsne"), split="all")``).
    ``workspace``: the store, data and output folders (default: from the environment); ``registry``
    defaults to the workspace's. ``reporter`` receives the lines ``zoo embed`` prints (``on_note``)
    and says whether to draw progress bars (default: quiet, no bars).
    """
    from ..engine.package import load_model
    from ..engine.reporting import QuietReporter
    from ..refs import resolve
    from ..workspace import Workspace
    from .mapplot import scatter_map
    from .project import announce, project
    if isinstance(request, LatentMapRequest):
        if options:
            raise ConfigError(f"latent_maps(request, {', '.join(f'{k}=...' for k in options)}): the request already "
                              f"says what to draw; change the request instead (dataclasses.replace)")
    else:
        request = LatentMapRequest(request, **options)
    workspace = workspace if workspace is not None else Workspace.from_env()
    registry = registry if registry is not None else workspace.registry()
    reporter = reporter or QuietReporter()
    with tempfile.TemporaryDirectory(prefix="zoo-embed-") as tmp:
        ref = resolve(request.model, workdir=Path(tmp), experiment=request.experiment, uri=workspace.tracking_uri)
        model, meta = load_model(ref.folder, registry)
    task = request.task
    if task is not None and task not in model.heads:
        raise ConfigError(f"task '{task}': the model {meta['spec']} has tasks {', '.join(model.heads)}")
    task = task or next(iter(model.heads))
    prepared, same = prepare_for(ref, model, request.data, registry=registry, workspace=workspace, reporter=reporter)
    colour = colour_of(prepared, request.color, model)
    split = request.split
    rows = rows_of(prepared, split)
    z = embeddings(model, meta, prepared, rows, task=task, device=request.device)
    reporter.on_note(f"embeddings: {len(rows)} {split} clips x {z.shape[1]} dimensions (layer before the {task} "
                     f"output) of {meta['spec']}")
    out = request.out_dir if request.out_dir is not None else default_out(ref, workspace)
    out.mkdir(parents=True, exist_ok=True)
    labels = values = None
    if colour == "genre":
        labels = prepared.labels[rows]
    else:
        values = prepared.targets[colour][rows].astype(np.float64)
    maps = []
    for method in request.methods:
        reporter.on_note(announce(method, len(z), z.shape[1]))
        xy = project(z, method, seed=request.seed)
        stem = f"{method}-{colour}-{split}"
        title = (f"{meta['spec']}: {METHOD_NAMES[method]} of the layer before the {task} output\n"
                 f"{split} split, {len(rows)} clips, coloured by {colour}")
        png = scatter_map(xy, out / f"{stem}.png", title=title, classes=prepared.classes, labels=labels,
                          values=values, value_name=colour, axis="PC" if method == "pca" else METHOD_NAMES[method])
        table = write_csv(out / f"{stem}.csv", prepared, rows, xy)
        logged = False
        if request.log and ref.run_id and ref.tags:
            log_files(ref.run_id, [png, table], uri=workspace.tracking_uri)
            logged = True
        reporter.on_note(f"{method}: {png} (+ {table.name})"
                         + (f", logged to run {ref.run_id} under {ARTIFACT_DIR}/" if logged else ""))
        maps.append(LatentMap(png, table, method, colour, split, task, len(rows), int(z.shape[1]), ref.run_id,
                              logged, prepared.description, same))
    return maps


__all__ = ["LatentMapRequest", "LatentMap", "latent_maps", "embeddings", "METHODS", "SPLITS"]
