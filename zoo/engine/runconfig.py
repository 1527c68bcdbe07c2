"""A run's configuration as a file: the full resolved settings ``zoo run --config`` reads and every run keeps.

:func:`run_config` writes a request out (every component's settings, the train config and the data
options, defaults included), :func:`config_yaml` renders it, :func:`read_config` reads a file back
with its keys checked, and :func:`request_from_config` turns it into a :class:`~zoo.engine.request.RunRequest`.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

from ..config import options
from ..errors import ConfigError
from ..recipes import RECIPE_FIELDS
from ..spec import parse_spec
from .request import DataRequest, RunRequest, SeedPlan

CONFIG_FILE = "config.yaml"
"""The run's resolved configuration, in its folder and at its artifact root: ``zoo run --config`` takes it."""
RUN_FIELDS = ("data", "seed", "seeds", "tags")
"""What a config file holds beyond a recipe: the run's data, seeds and MLflow tags."""
CONFIG_FIELDS = ("spec", "settings", *RUN_FIELDS, *(f for f in RECIPE_FIELDS if f not in ("spec", "settings")))
"""Keys of a config file: a recipe's (``registry.yaml``, :data:`zoo.recipes.RECIPE_FIELDS`) plus :data:`RUN_FIELDS`."""
DATA_FIELDS = tuple(options(DataRequest))
"""Keys of a config file's ``data:`` section: the :class:`~zoo.engine.request.DataRequest` fields that declare
an :class:`~zoo.config.Option` (the same declaration makes ``zoo run``'s data options)."""


def _plain(value: Any) -> Any:
    """YAML-safe: tuples become lists, paths strings."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def run_config(request: RunRequest, configs: Mapping[str, Any], *, seed: int | None = None) -> dict[str, Any]:
    """The full resolved configuration of ``request`` (``configs``: :func:`resolved_configs` of its
    composition): every component's settings, the train config and the data options, defaults
    included, as ``zoo run --config`` reads it back. ``seed``: the config of that one seed of the request."""
    built = request.spec
    spec = built if isinstance(built, str) else str(built.composition)
    settings: dict[str, Any] = {"backbone": configs.get("backbone", {})}
    settings.update(configs.get("feature", {}))
    settings.update(configs.get("task", {}))
    settings["train"] = dataclasses.asdict(request.train)
    settings["dataset"] = dict(request.data.settings)
    data = request.data
    path = None if data.path is None else str(Path(data.path).expanduser().resolve())
    doc: dict[str, Any] = {
        "spec": spec, "settings": settings,
        "data": {**{name: getattr(data, name) for name in DATA_FIELDS}, "path": path,
                 "seed": data.seed if seed is None else request.data_seed},
        "seed": request.seeds.first if seed is None else seed, "seeds": request.seeds.count if seed is None else 1,
    }
    if request.transfer is not None:
        doc["transfer"] = {"from": request.transfer.source_run or str(request.transfer.folder),
                           "freeze": request.transfer.freeze}
    if request.tags:
        doc["tags"] = dict(request.tags)
    return _plain(doc)


def config_yaml(doc: Mapping[str, Any]) -> str:
    """``doc`` as the YAML ``zoo run --config`` reads (keys in their given order)."""
    import yaml
    head = "# zoo run --config FILE: a run's full resolved settings (CLI options override them)\n"
    return head + yaml.safe_dump(dict(doc), sort_keys=False, default_flow_style=False)


def read_config(path: str | Path) -> dict[str, Any]:
    """A config file (:data:`CONFIG_FIELDS`) as a mapping, its keys checked."""
    import yaml
    from ..errors import suggest
    path = Path(path).expanduser()
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; write one with zoo run SPEC --print-config > "
                          f"{path.name}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                          f"{exc.start}); give a YAML file, such as zoo run SPEC --print-config writes") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}; give a YAML file, such as "
                          f"zoo run SPEC --print-config writes") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {' '.join(str(exc).split())}") from exc
    if not isinstance(doc, Mapping) or "spec" not in doc:
        raise ConfigError(f"config file {path}: expected a mapping with at least 'spec' (the shape of a recipe in "
                          f"registry.yaml; zoo run SPEC --print-config writes one)")
    for key in doc:
        if key not in CONFIG_FIELDS:
            raise ConfigError(f"config file {path}: unknown key '{key}'; valid: {', '.join(CONFIG_FIELDS)}"
                              f"{suggest(str(key), CONFIG_FIELDS)}")
    for key in doc.get("data") or {}:
        if key not in DATA_FIELDS:
            raise ConfigError(f"config file {path}: unknown key 'data.{key}'; valid: {', '.join(DATA_FIELDS)}"
                              f"{suggest(str(key), DATA_FIELDS)}")
    for key in ("settings", "data", "transfer", "tags"):
        if doc.get(key) is not None and not isinstance(doc[key], Mapping):
            raise ConfigError(f"config file {path}: '{key}' must be a mapping, not {doc[key]!r}")
    try:
        return checked_values(doc)
    except ConfigError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None





def checked_values(doc: Mapping[str, Any]) -> dict[str, Any]:
    """``doc`` (a config mapping) with every value of ``spec``, ``seed``, ``seeds``, ``data`` and ``transfer``
    checked by the same rules as the command line's options (:mod:`zoo.config`), text such as ``"3"`` or
    ``"false"`` converted as the options convert it; a ConfigError names the key and the valid values.
    Component and train settings are checked when their configs are made."""
    out = dict(doc)
    data = dict(doc.get("data") or {})
    if not isinstance(out.get("spec"), str) or not out["spec"].strip():
        raise ConfigError(f"spec {out.get('spec')!r}: give one spec or recipe name as text, e.g. lstm+chroma:genre")
    for declared in options(SeedPlan).values():  # seed, seeds: the options' names
        key, check = declared.dest, declared.check
        if key is None or check is None:  # each of SeedPlan's options has a flag and a check
            continue
        if out.get(key) is not None:
            try:
                out[key] = check(out[key])
            except ConfigError as exc:
                raise ConfigError(f"{key}: {exc} (as {declared.flag})") from None
    for name, declared in options(DataRequest).items():
        if data.get(name) is not None and declared.check is not None:
            try:
                data[name] = declared.check(data[name])
            except ConfigError as exc:
                raise ConfigError(f"data.{name}: {exc} (as {declared.flag or declared.help})") from None
    if "data" in doc:
        out["data"] = data
    for scope, values in (doc.get("settings") or {}).items():
        if values is not None and not isinstance(values, Mapping):
            raise ConfigError(f"settings.{scope} {values!r}: give a mapping of settings, e.g. {{hidden: 64}}")
    source = (doc.get("transfer") or {}).get("from")
    if source is not None and not isinstance(source, str):
        raise ConfigError(f"transfer.from {source!r}: give one model (a run id, a folder, a name) as text (as --from)")
    return out


def request_from_config(doc: Mapping[str, Any], registry: Any) -> tuple[RunRequest, Any, Any]:
    """The request a config mapping (:func:`read_config`, :func:`run_config`) describes, and its transfer
    source still to resolve: ``(request, init_from or None, freeze or None)``. A ``spec`` that names a
    recipe brings the recipe's settings and transfer, under the file's own."""
    from .trainconfig import backbone_defaults, split_settings, train_config
    doc = checked_values(doc)  # what the command line merged in is checked as the file was
    spec = str(doc["spec"]).strip()
    settings = {str(k): dict(v or {}) for k, v in (doc.get("settings") or {}).items()}
    transfer = dict(doc.get("transfer") or {})
    tags = {str(k): str(v) for k, v in (doc.get("tags") or {}).items()}
    if ":" not in spec and "+" not in spec:
        from ..recipes import get_recipe
        recipe = get_recipe(spec)
        spec, base = recipe.spec, {k: dict(v) for k, v in recipe.settings.items()}
        for scope, values in settings.items():
            base.setdefault(scope, {}).update(values)
        settings, transfer = base, transfer or dict(recipe.transfer)
        tags.setdefault("zoo.recipe", recipe.name)
    components, train_over, dataset_over = split_settings(settings)
    config = train_config(backbone_defaults(registry, parse_spec(spec, registry).backbone), train_over)
    data = {k: v for k, v in (doc.get("data") or {}).items()}
    data.setdefault("max_seconds", DataRequest.max_seconds)
    data.setdefault("min_class_clips", 0)
    data.setdefault("skip_bad", False)
    request = RunRequest(spec, settings=components, train=config,
                         data=DataRequest(settings=dataset_over, **data),
                         seeds=SeedPlan(first=_or(doc.get("seed"), 0), count=_or(doc.get("seeds"), 1)), tags=tags)
    return request, transfer.get("from"), transfer.get("freeze")


def _or(value: Any, default: Any) -> Any:
    """``value``, or ``default`` when it is None (0 is a value: ``seeds: 0`` is refused, not made 1)."""
    return default if value is None else value
