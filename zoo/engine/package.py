"""The packaged model: a folder with ``zoo_model.json`` (everything needed to rebuild and feed the
model) and ``weights.pt`` (its ``state_dict``). This layout is a contract; see docs/python-api.md.

``zoo_model.json`` (format 1) holds:

- ``spec``, ``composition`` {backbone, features, tasks}
- ``settings``: the overrides given per scope; ``configs``: every component's full config
  (defaults included) under ``backbone``, ``feature.<name>``, ``task.<name>``
- ``feature_settings``: each feature's ``settings()``; ``feature_slices``: its rows in the stack
- ``rate``, ``n_bins``, ``sample_rate``, ``hop_length``; ``lengths``: {median, min, max} of the
  training clips in frames (or beats)
- ``tasks``: per task {kind, target, classes, primary_metric, greater_is_better}; ``classes``;
  ``targets`` (regression target names)
- ``normalisation``: {mean, std} per bin, from the training split: feed ``(x - mean) / std``
- ``train``: the TrainConfig; ``precision`` (fp32, bf16, fp16) and ``channels_last``: what training
  ran in, which evaluation and prediction follow (absent before they were recorded: fp32); ``seed``;
  ``providers``: ``{"backbone.lstm": "music-zoo-lstm==0.1.0"}``
- ``zoo_version``, ``created``, ``data`` {fingerprint, description, counts}, ``metrics``
  {val, test}, ``run_id``, ``rebuildable`` (False for compositions of Python objects)
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Mapping

from ..data.preparedset import Prepared
from ..errors import ConfigError, PluginError, RunError, UnknownComponentError
from ..model.building import Built, ObjectBuilt, resolved_configs
from ..model.model import build_model
from .batches import Normaliser
from .trainconfig import task_weight_map

FORMAT = "music-zoo-model"
FORMAT_VERSION = 1
META_FILE = "zoo_model.json"
WEIGHTS_FILE = "weights.pt"
INIT_ONLY_SETTINGS = ("weights",)
"""Backbone settings that only seed the initial weights (a pretrained-weights file): a packaged
model's ``weights.pt`` replaces them, so they are cleared when the model is rebuilt."""


def prepared_meta(prepared: Prepared) -> dict[str, Any]:
    """What a packaged model records about its training data."""
    counts = {s: int((prepared.splits == s).sum()) for s in ("train", "val", "test")}
    return {
        "classes": list(prepared.classes), "targets": sorted(prepared.targets), "rate": prepared.rate,
        "n_bins": prepared.n_bins, "fingerprint": prepared.fingerprint, "description": prepared.description,
        "counts": counts, "skipped": len(prepared.skipped),
        "feature_slices": {k: list(v) for k, v in prepared.feature_slices.items()},
        "lengths": _train_lengths(prepared),
    }


def _train_lengths(prepared: Prepared) -> dict[str, int]:
    """Median, shortest and longest training clip in frames or beats: ``zoo predict`` cuts long
    files into windows of the median."""
    import numpy as np
    lengths = prepared.lengths[prepared.indices("train")]
    if lengths.size == 0:
        lengths = prepared.lengths
    if lengths.size == 0:
        return {}
    return {"median": int(np.median(lengths)), "min": int(lengths.min()), "max": int(lengths.max())}


def save_model(folder: Path, model: Any, built: Built, prepared_meta: Mapping[str, Any], norm_stats: Normaliser,
               train_config: Any, *, registry: Any = None, metrics: Mapping[str, Any] | None = None,
               seed: int | None = None, run_id: str | None = None, precision: str = "fp32",
               channels_last: bool = False) -> Path:
    """Write ``folder/zoo_model.json`` and ``folder/weights.pt``; return ``folder``.

    ``prepared_meta`` comes from :func:`prepared_meta`; ``norm_stats`` is the training split's
    :class:`~zoo.engine.batches.Normaliser`; ``precision`` and ``channels_last`` are what training
    ran in (evaluation and ``zoo predict`` follow them); ``registry`` resolves full component configs
    (default: a fresh ``Registry()``). Both files are written atomically (:mod:`zoo.fsio`), the
    weights first: a folder holds the complete model, or no ``zoo_model.json`` at all. A write
    that fails (full disk, read-only folder) raises :class:`~zoo.errors.StorageError`.
    """
    import torch

    from .. import __version__
    from ..fsio import atomic_file, ensure_dir, storage_error, write_text
    from ..registry import Registry
    folder = ensure_dir(Path(folder), "the model folder")
    comp = built.composition
    features = built.features
    first = next(iter(features.values()))
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "spec": str(comp),
        "composition": {"backbone": comp.backbone, "features": list(comp.features), "tasks": list(comp.tasks)},
        "settings": built.settings,
        "configs": resolved_configs(built, registry or Registry()),
        "feature_settings": {n: dict(f.settings()) for n, f in features.items()},
        "feature_slices": dict(prepared_meta.get("feature_slices") or _slices(features)),
        "lengths": dict(prepared_meta.get("lengths") or {}),
        "rate": built.rate, "n_bins": built.n_bins,
        "sample_rate": int(first.sample_rate), "hop_length": int(first.hop_length),
        "tasks": {n: {"kind": s.kind, "target": model.tasks[n].target, "classes": list(s.classes),
                      "primary_metric": model.tasks[n].primary_metric,
                      "greater_is_better": bool(model.tasks[n].greater_is_better)}
                  for n, s in model.schemas.items()},
        "classes": list(prepared_meta.get("classes", [])), "targets": list(prepared_meta.get("targets", [])),
        "normalisation": norm_stats.to_json(),
        "train": dataclasses.asdict(train_config) if dataclasses.is_dataclass(train_config) else dict(train_config),
        "seed": seed, "providers": dict(built.providers), "zoo_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "data": {k: prepared_meta.get(k) for k in ("fingerprint", "description", "counts")},
        "metrics": dict(metrics or {}), "run_id": run_id,
        "rebuildable": not isinstance(built, ObjectBuilt),
        "precision": precision, "channels_last": bool(channels_last),
    }
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    text = json.dumps(meta, indent=2, default=_json_default)  # before any write: a bad value writes nothing
    try:  # a stale description must not outlive new weights
        (folder / META_FILE).unlink(missing_ok=True)
    except OSError as exc:
        raise storage_error(exc, folder / META_FILE, "the model description") from exc
    with atomic_file(folder / WEIGHTS_FILE, "the model weights") as f:
        torch.save(state, f)
    write_text(folder / META_FILE, text, "the model description")
    return folder


def _slices(features: Mapping[str, Any]) -> dict[str, list[int]]:
    out, start = {}, 0
    for name, f in features.items():
        out[name] = [start, start + f.n_bins]
        start += f.n_bins
    return out


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def read_meta(folder: Path) -> dict[str, Any]:
    """The parsed ``zoo_model.json`` of ``folder``, checked for format and version."""
    path = Path(folder) / META_FILE
    if not path.is_file():
        raise RunError(f"{folder} is not a packaged zoo model: {META_FILE} is missing (expected {META_FILE} "
                       f"and {WEIGHTS_FILE}, as written by `zoo run`)")
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RunError(f"{path} cannot be read as JSON ({exc}); the model folder is damaged: re-run training") from exc
    if meta.get("format") != FORMAT or not isinstance(meta.get("format_version"), int):
        raise RunError(f"{path} is not a {FORMAT} file (format {meta.get('format')!r})")
    if meta["format_version"] > FORMAT_VERSION:
        raise RunError(f"{path} has format version {meta['format_version']}; this zoo reads up to "
                       f"{FORMAT_VERSION}: upgrade music-zoo")
    return meta


def find_model_folder(path: Path) -> Path | None:
    """The folder holding ``zoo_model.json``: ``path`` itself (or the file), ``path/model`` (a run's
    seed folder), or ``path/artifacts/<one>/`` (an MLflow pyfunc model); None if there is none."""
    path = Path(path)
    if path.is_file() and path.name == META_FILE:
        return path.parent
    for candidate in (path, path / "model"):
        if (candidate / META_FILE).is_file():
            return candidate
    found = sorted(path.glob(f"artifacts/*/{META_FILE}"))
    return found[0].parent if len(found) == 1 else None


def _needs(meta: Mapping[str, Any], kind: str, name: str, registry: Any, folder: Path) -> None:
    """Fail clearly when a component of the model is not installed."""
    try:
        registry.info(kind, name)
    except UnknownComponentError as exc:
        provider = meta.get("providers", {}).get(f"{kind}.{name}", "")
        dist = provider.split("==")[0] if provider else ""
        fix = f"install it: pip install '{provider}'" if dist else "install the plugin that provides it"
        raise PluginError(
            f"the model in {folder} needs {kind} '{name}' from {provider or 'an unknown distribution'}, "
            f"which is not installed here ({exc}); {fix}"
        ) from exc


def features_from_meta(meta: Mapping[str, Any], registry: Any = None) -> dict[str, Any]:
    """The model's features rebuilt with their recorded configs, in stacking order."""
    from ..registry import Registry
    registry = registry or Registry()
    configs = meta["configs"]["feature"]
    return {n: registry.create("feature", n, recorded_settings(registry, "feature", n, configs[n]))
            for n in meta["composition"]["features"]}


def recorded_settings(registry: Any, kind: str, name: str, recorded: Mapping[str, Any]) -> dict[str, Any]:
    """The settings a packaged model recorded for component ``kind``/``name``, completed with its
    config class's ``former_defaults`` (:func:`zoo.config.with_former_defaults`)."""
    from ..config import with_former_defaults
    return with_former_defaults(registry.load(kind, name).config, recorded)


def load_model(folder: Path, registry: Any = None) -> tuple[Any, dict[str, Any]]:
    """Rebuild the packaged model in ``folder`` through ``registry``: ``(model in eval mode, meta)``.

    ``meta`` is the parsed ``zoo_model.json``; ``meta["installed"]`` adds the installed
    ``distribution==version`` of every component (they may differ from ``meta["providers"]``).
    """
    from ..fsio import read_torch
    from ..registry import Registry
    folder = Path(folder)
    meta = read_meta(folder)
    if not meta.get("rebuildable", True):
        raise RunError(
            f"the model in {folder} was composed from Python objects, not registry components, so it cannot be "
            f"rebuilt by name; rebuild the same objects in code and load {WEIGHTS_FILE} with model.load_state_dict"
        )
    registry = registry or Registry()
    comp = meta["composition"]
    wanted = [("backbone", comp["backbone"])] + [("feature", n) for n in comp["features"]]
    wanted += [("task", n) for n in comp["tasks"]]
    for kind, name in wanted:
        _needs(meta, kind, name, registry, folder)
    meta["installed"] = {f"{k}.{n}": registry.provider(k, n) for k, n in wanted}
    configs = meta["configs"]
    tasks = {n: registry.create("task", n, recorded_settings(registry, "task", n, configs["task"][n]))
             for n in comp["tasks"]}
    schemas = {n: tasks[n].schema(tuple(meta["tasks"][n]["classes"])) for n in comp["tasks"]}
    recorded = recorded_settings(registry, "backbone", comp["backbone"], configs["backbone"])
    backbone_config = {k: v for k, v in recorded.items() if k not in INIT_ONLY_SETTINGS}
    backbone = registry.create("backbone", comp["backbone"], backbone_config, int(meta["n_bins"]))
    train = meta.get("train", {})
    try:
        weights = task_weight_map(comp["tasks"], tuple(train.get("task_weights") or ()))
    except ConfigError as exc:
        raise RunError(f"{folder / META_FILE}: {exc}") from exc
    model = build_model(backbone, tasks, schemas, task_weighting=train.get("task_weighting", "fixed"),
                        task_weights=weights)
    path = folder / WEIGHTS_FILE
    state = read_torch(path, "the model weights", "the model folder is damaged or incomplete: re-run training "
                       "or copy the folder again", RunError)
    if not isinstance(state, Mapping):
        raise RunError(f"{path} holds {type(state).__name__}, not a mapping of tensor names to tensors; the model "
                       f"folder is damaged: re-run training or copy the folder again")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        changed = [k for k in meta["installed"] if meta["installed"][k] != meta.get("providers", {}).get(k)]
        hint = (f"installed versions differ from the recorded ones for {', '.join(changed)}: install "
                + ", ".join(repr(meta.get("providers", {}).get(k)) for k in changed)) if changed else "the folder may be damaged"
        raise RunError(f"the weights in {path} do not fit the rebuilt model ({exc}); {hint}") from exc
    model.eval()
    return model, meta
