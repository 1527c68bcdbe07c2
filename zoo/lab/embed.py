"""Latent maps (lab step 11): the layer before the output for every clip, projected to 2-D, drawn and logged.

``zoo embed RUN`` loads the run's packaged model, prepares the clips it was trained and tested
on again (its data source is recorded with the run, see :mod:`zoo.engine.datasource`), takes
``ZooModel.embed`` of every clip of a split, projects the embeddings with PCA, t-SNE or UMAP and
saves a scatter (PNG) and the 2-D coordinates (CSV), both also logged to the run as artifacts
under ``embeddings/``.
"""
from __future__ import annotations

import csv
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import ConfigError, DataError
from ..tracking import DEFAULT_EXPERIMENT
from .project import METHOD_NAMES, METHODS, check_method

ARTIFACT_DIR = "embeddings"
SPLITS = ("train", "val", "test", "all")
LABEL_COLOURS = ("genre", "label")
"""Colour names meaning "the clip's class label" (the genre for the zoo's data sets)."""


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
    from ..engine.device import pick_device
    choice = pick_device(device)
    norm = Normaliser.from_json(meta["normalisation"])
    split = make_split("embed", prepared, np.asarray(rows), {}, norm, choice.device)
    model.to(choice.device)
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


def prepare_for(ref: Any, model: Any, *, data: Any = None, layout: str | None = None,
                settings: Mapping[str, Any] | None = None, limit: int | None = None, data_seed: int = 0,
                from_record: bool = True, registry: Any = None, progress: bool = True,
                echo: Callable[[str], None] = print):
    """The clips to map for the run ``ref`` (a :class:`~zoo.lab.runs.RunRef`): ``(prepared, same_data)``.

    The data set is prepared with the model's own features. Without any data argument, the run's
    recorded source is used: the same folder, layout, settings, limit and seed, hence the same clips
    and splits as in training. Otherwise ``data`` (None: the embedded set) with ``layout``,
    ``settings`` and ``limit`` is prepared.
    ``data_seed`` draws the ``limit`` subset of explicitly given data (training used its first seed).
    ``from_record=False`` always uses the arguments given (``data`` None: the embedded set).
    """
    from ..data.layout import open_dataset
    from ..data.prepare import prepare
    from ..engine.datasource import DataSource
    from ..engine.package import features_from_meta
    meta = ref.meta
    source = None
    if from_record and data is None and layout is None and not settings and limit is None:
        source = DataSource.from_tags(ref.tags)
        if source is None or source.in_memory:
            why = ("was trained on data handed over in memory" if source is not None else
                   "has no recorded data source (an untracked model folder, or a run older than the record)")
            raise ConfigError(
                f"the model {ref.label} {why}, so its clips cannot be prepared again; pass the data to map "
                f"with --data PATH (and --layout / --set dataset.KEY=VALUE as in training), or omit --data "
                f"only for runs that recorded their data"
            )
        data, layout, settings, limit = source.path, source.layout, source.settings, source.limit
    dataset = open_dataset(data, layout=layout, registry=registry, settings=dict(settings or {}))
    need = tuple(dict.fromkeys(t.target for t in model.tasks.values()))
    prepared = prepare(dataset, features_from_meta(meta, registry), rate=meta["rate"], limit=limit,
                       seed=source.seed if source else data_seed, skip_bad=bool(source.skip_bad) if source else False,
                       progress=progress, need=need)
    recorded = (meta.get("data") or {}).get("fingerprint")
    same = None if not recorded else prepared.fingerprint == recorded
    if source is not None and same is False:
        echo(f"note: {prepared.description} differs from the data {ref.label} was trained on "
             f"(the files changed since); the map shows the data as it is now")
    return prepared, same


def colour_of(prepared: Any, color: str | None, model: Any) -> str:
    """Check ``color`` against what the data has; default: genre when there are labels, else a target."""
    targets = sorted(prepared.targets)
    has_labels = len(prepared.classes) > 0 and bool((prepared.labels >= 0).any())
    valid = (list(LABEL_COLOURS[:1]) if has_labels else []) + targets
    if color is None:
        if has_labels:
            return "genre"
        regress = [t.target for t in model.tasks.values() if t.kind != "classification"]
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


def log_files(run_id: str, files: Sequence[Path]) -> None:
    """Attach ``files`` to run ``run_id`` under ``embeddings/`` (a finished run takes artifacts too)."""
    from ..tracking.mlflow.store import client
    c = client()
    for f in files:
        c.log_artifact(run_id, str(f), artifact_path=ARTIFACT_DIR)


def default_out(ref: Any) -> Path:
    from ..paths import zoo_home
    return zoo_home() / ARTIFACT_DIR / (ref.run_id or Path(ref.folder).resolve().parent.name)


def latent_maps(run: Any, *, methods: Sequence[str] = ("pca",), color: str | None = None, split: str = "test",
                task: str | None = None, data: Any = None, layout: str | None = None,
                settings: Mapping[str, Any] | None = None, limit: int | None = None, data_seed: int = 0,
                from_record: bool = True, prepared: Any = None, out_dir: str | Path | None = None,
                log: bool = True, seed: int = 0, device: str = "auto",
                experiment: str = DEFAULT_EXPERIMENT, registry: Any = None, progress: bool = True,
                echo: Callable[[str], None] | None = None) -> list[LatentMap]:
    """Latent maps of a trained model: one per method in ``methods``, from one pass of the model.

    ``run``: a run id, a recipe name (its latest run), a model folder or a ``RunResult``.
    Without ``data``, ``layout``, ``settings`` and ``limit`` the run's recorded data source is
    prepared again (``from_record=False``: the embedded set); ``data_seed`` draws a ``limit``
    subset of given data. ``prepared``: ready data instead (the data arguments are then unused).
    ``color``: "genre" or a target name (default: genre when the data has labels).
    ``task``: whose last hidden layer (default: the model's first task). ``log``: attach the
    PNG and CSV to the model's MLflow run (when it has one).
    """
    from ..engine.package import load_model
    from ..registry import Registry
    from .mapplot import scatter_map
    from .project import project
    from .runs import resolve
    registry = registry or Registry()
    echo = echo or (lambda line: None)
    methods = [check_method(m) for m in methods]
    if split not in SPLITS:
        raise ConfigError(f"split '{split}': use one of {', '.join(SPLITS)}")
    with tempfile.TemporaryDirectory(prefix="zoo-embed-") as tmp:
        ref = resolve(run, experiment=experiment, workdir=Path(tmp))
        model, meta = load_model(ref.folder, registry)
    if task is not None and task not in model.heads:
        raise ConfigError(f"task '{task}': the model {meta['spec']} has tasks {', '.join(model.heads)}")
    task = task or next(iter(model.heads))
    same = None
    if prepared is None:
        prepared, same = prepare_for(ref, model, data=data, layout=layout, settings=settings, limit=limit,
                                     data_seed=data_seed, from_record=from_record, registry=registry,
                                     progress=progress, echo=echo)
    elif prepared.n_bins != int(meta["n_bins"]) or prepared.rate != meta["rate"]:
        raise DataError(f"{prepared.description} holds {prepared.rate}-rate arrays of {prepared.n_bins} bins; the "
                        f"model {meta['spec']} needs {meta['rate']}-rate input of {meta['n_bins']} bins")
    colour = colour_of(prepared, color, model)
    rows = rows_of(prepared, split)
    z = embeddings(model, meta, prepared, rows, task=task, device=device)
    echo(f"embeddings: {len(rows)} {split} clips x {z.shape[1]} dimensions (layer before the {task} output) "
         f"of {meta['spec']}")
    out = Path(out_dir) if out_dir else default_out(ref)
    out.mkdir(parents=True, exist_ok=True)
    labels = values = None
    if colour == "genre":
        labels = prepared.labels[rows]
    else:
        values = prepared.targets[colour][rows].astype(np.float64)
    maps = []
    for method in methods:
        xy = project(z, method, seed=seed)
        stem = f"{method}-{colour}-{split}"
        title = (f"{meta['spec']}: {METHOD_NAMES[method]} of the layer before the {task} output\n"
                 f"{split} split, {len(rows)} clips, coloured by {colour}")
        png = scatter_map(xy, out / f"{stem}.png", title=title, classes=prepared.classes, labels=labels,
                          values=values, value_name=colour, axis="PC" if method == "pca" else METHOD_NAMES[method])
        table = write_csv(out / f"{stem}.csv", prepared, rows, xy)
        logged = False
        if log and ref.run_id and ref.tags:
            log_files(ref.run_id, [png, table])
            logged = True
        echo(f"{method}: {png} (+ {table.name})"
             + (f", logged to run {ref.run_id} under {ARTIFACT_DIR}/" if logged else ""))
        maps.append(LatentMap(png, table, method, colour, split, task, len(rows), int(z.shape[1]), ref.run_id,
                              logged, prepared.description, same))
    return maps


__all__ = ["LatentMap", "latent_maps", "embeddings", "METHODS", "SPLITS"]
