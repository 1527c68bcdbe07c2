"""Compositions built from Python objects, and the fully resolved settings of any composition."""
from __future__ import annotations

import copy
import dataclasses
import importlib.metadata as md
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..compose import Built, Composition, check_rates
from ..config import config_dict, make_config
from ..errors import SpecError
from ..protocols import Feature, Task


def _provider(obj: Any) -> str:
    """``distribution==version`` of the package defining ``obj``'s class, else ``python:module.Class``."""
    module = type(obj).__module__
    top = module.split(".")[0]
    dists = md.packages_distributions().get(top, [])
    if dists:
        try:
            return f"{dists[0]}=={md.version(dists[0])}"
        except md.PackageNotFoundError:
            pass
    return f"python:{module}.{type(obj).__qualname__}"


def _config_of(obj: Any) -> dict[str, Any]:
    config = getattr(obj, "config", None)
    return config_dict(config) if dataclasses.is_dataclass(config) else {}


@dataclass
class ObjectBuilt(Built):
    """A composition of ready-made objects: a backbone ``nn.Module``, features and tasks.

    ``make_backbone`` returns a deep copy of the given module, so every seed starts from the
    module's weights as given (seeds then vary the heads, dropout and batch order). Such a model
    can be packaged, but not rebuilt from the registry by :func:`zoo.engine.package.load_model`.
    """

    backbone: Any = None
    configs: dict[str, Any] = field(default_factory=dict)

    def make_backbone(self, registry: Any = None):
        return copy.deepcopy(self.backbone)


def build_from_objects(objects: Iterable[Any]) -> ObjectBuilt:
    """Sort ``objects`` into one backbone (a torch module with ``out_dim``), features and tasks."""
    from torch import nn
    backbones, features, tasks = [], {}, {}
    for obj in objects:
        if isinstance(obj, nn.Module):
            backbones.append(obj)
        elif isinstance(obj, Task):
            tasks[obj.name] = obj
        elif isinstance(obj, Feature):
            features[obj.name] = obj
        else:
            raise SpecError(
                f"compose(): {type(obj).__name__} is neither a backbone (a torch.nn.Module with out_dim), "
                f"a feature (zoo.protocols.Feature) nor a task (zoo.protocols.Task)"
            )
    if len(backbones) != 1 or not features or not tasks:
        raise SpecError(
            f"compose() from objects needs exactly one backbone module, at least one feature and at least "
            f"one task; got {len(backbones)} backbone(s), {len(features)} feature(s), {len(tasks)} task(s)"
        )
    backbone = backbones[0]
    if not isinstance(getattr(backbone, "out_dim", None), int):
        raise SpecError(f"compose(): backbone {type(backbone).__name__} has no integer attribute out_dim (its embedding size D)")
    rate = check_rates(features)
    name = type(backbone).__name__.lower()
    comp = Composition(name, tuple(features), tuple(tasks))
    providers = {f"backbone.{name}": _provider(backbone)}
    providers.update({f"feature.{n}": _provider(f) for n, f in features.items()})
    providers.update({f"task.{n}": _provider(t) for n, t in tasks.items()})
    configs = {"backbone": _config_of(backbone), "feature": {n: _config_of(f) for n, f in features.items()},
               "task": {n: _config_of(t) for n, t in tasks.items()}}
    return ObjectBuilt(comp, features, tasks, rate, sum(f.n_bins for f in features.values()), providers,
                       {}, backbone=backbone, configs=configs)


def resolved_configs(built: Built, registry: Any) -> dict[str, Any]:
    """Every setting of every component, defaults included: ``{"backbone": {...}, "feature": {name: {...}},
    "task": {name: {...}}}`` (what a packaged model is rebuilt from)."""
    if isinstance(built, ObjectBuilt):
        return built.configs
    comp = built.composition

    def full(kind: str, name: str, scope: str) -> dict[str, Any]:
        spec = registry.load(kind, name)
        return config_dict(make_config(spec.config, built.settings.get(scope, {}), where=f"{kind} '{name}'"))

    return {
        "backbone": full("backbone", comp.backbone, "backbone"),
        "feature": {n: full("feature", n, n) for n in comp.features},
        "task": {n: full("task", n, n) for n in comp.tasks},
    }


def task_weight_map(tasks: Iterable[str], weights: tuple[float | str, ...]) -> dict[str, float] | None:
    """``train.task_weights`` as ``{task: weight}``: one weight per task in spec order, or
    ``NAME:WEIGHT`` items (tasks not named keep 1); None when not given."""
    from ..errors import ConfigError, suggest
    names = list(tasks)
    if not weights:
        return None
    named = [w for w in weights if isinstance(w, str) and ":" in w]
    if named and len(named) != len(weights):
        raise ConfigError(
            f"train.task_weights {list(weights)}: give either one weight per task in spec order, or NAME:WEIGHT "
            f"items (e.g. {names[-1]}:0.5), not both"
        )
    if named:
        out = dict.fromkeys(names, 1.0)
        for item in named:
            name, _, value = item.partition(":")
            name = name.strip()
            if name not in out:
                raise ConfigError(f"train.task_weights names task '{name}', but the spec's tasks are {names}"
                                  f"{suggest(name, names)}")
            try:
                out[name] = float(value)
            except ValueError:
                raise ConfigError(f"train.task_weights item {item!r}: '{value}' is not a number") from None
        return out
    if len(weights) != len(names):
        raise ConfigError(
            f"train.task_weights has {len(weights)} value(s) {list(weights)} but the spec has {len(names)} "
            f"task(s) {names}; give one weight per task in spec order, e.g. --set train.task_weights="
            + ",".join("1" for _ in names) + f", or name them: {names[-1]}:0.5"
        )
    try:
        return dict(zip(names, (float(w) for w in weights)))
    except ValueError:
        raise ConfigError(f"train.task_weights {list(weights)}: each weight must be a number, or NAME:WEIGHT") from None
