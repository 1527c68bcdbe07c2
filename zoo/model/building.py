"""Building a composition's components: from a spec through the registry, or from Python objects.

Also the fully resolved settings of any composition. Torch-free until objects are sorted.
"""
from __future__ import annotations

import copy
import dataclasses
import importlib.metadata as md
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ..config import config_dict, make_config
from ..errors import ConfigError, SpecError, suggest
from ..protocols import Feature, FindsItsFiles, HasConfig, RecommendsHead, Task
from ..registry import Registry
from ..spec import Composition


def check_rates(features: Mapping[str, Any]) -> str:
    """Return the shared time rate of ``features`` or explain why they cannot be stacked."""
    rates = {name: f.rate for name, f in features.items()}
    if len(set(rates.values())) > 1:
        detail = ", ".join(f"{n} ({r})" for n, r in rates.items())
        raise SpecError(
            f"features {detail} cannot be stacked: frame-rate features have one column per "
            f"{next(iter(features.values())).hop_length}-sample frame, beat-rate ones one per beat, "
            f"so their time axes do not line up; use only frame-rate (e.g. mel+chroma) or only "
            f"beat-rate features (e.g. beat+beat-chroma)"
        )
    hops = {f.hop_length for f in features.values()}
    srs = {f.sample_rate for f in features.values()}
    if len(hops) > 1 or len(srs) > 1:
        raise SpecError(
            f"features {', '.join(features)} use different sample rates {sorted(srs)} or hops "
            f"{sorted(hops)}; set the same sr and hop_length on each (--set NAME.hop_length=...)"
        )
    return next(iter(rates.values()))


@dataclass
class Built:
    """The components of a composition, built: features, backbone factory inputs, tasks."""

    composition: Composition
    features: dict[str, Any]
    tasks: dict[str, Any]
    rate: str
    n_bins: int
    providers: dict[str, str] = field(default_factory=dict)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)

    def make_backbone(self, registry: Registry):
        return registry.create("backbone", self.composition.backbone, self.settings.get("backbone", {}), self.n_bins)


def build_components(comp: Composition, registry: Registry, settings: Mapping[str, Mapping[str, Any]] | None = None) -> Built:
    """Build the features and tasks of ``comp`` (the backbone needs the data, see ``Built``).

    ``settings`` maps a scope to overrides: ``backbone``, ``task`` (every task), ``feature``
    (every feature) or a component's own name (``mel``, ``genre``) which wins over its kind.
    """
    settings = {k: dict(v) for k, v in (settings or {}).items()}
    known = {"backbone", "feature", "task", "train", comp.backbone, *comp.features, *comp.tasks}
    for scope in settings:
        if scope not in known:
            raise ConfigError(
                f"settings scope '{scope}' names nothing in {comp}; valid: {', '.join(sorted(known))}{suggest(scope, known)}"
            )
    features = {}
    for name in comp.features:
        merged = {**settings.get("feature", {}), **settings.get(name, {})}
        features[name] = registry.create("feature", name, merged)
    rate = check_rates(features)
    tasks, task_settings = {}, {}
    recommended = head_defaults(registry, comp.backbone)
    for name in comp.tasks:
        task_settings[name] = {**task_recommendations(registry, name, recommended), **settings.get("task", {}),
                               **settings.get(name, {})}
        tasks[name] = registry.create("task", name, task_settings[name])
    providers = {f"backbone.{comp.backbone}": registry.provider("backbone", comp.backbone)}
    providers.update({f"feature.{n}": registry.provider("feature", n) for n in comp.features})
    providers.update({f"task.{n}": registry.provider("task", n) for n in comp.tasks})
    backbone_settings = {**settings.get("backbone", {}), **settings.get(comp.backbone, {})}
    resolved = {"backbone": backbone_settings}
    resolved.update({n: {**settings.get("feature", {}), **settings.get(n, {})} for n in comp.features})
    # The backbone's head_defaults too: a packaged model is rebuilt from these (resolved_configs).
    resolved.update(task_settings)
    return Built(comp, features, tasks, rate, sum(f.n_bins for f in features.values()), providers, resolved)


def head_defaults(registry: Registry, backbone: str) -> dict[str, Any]:
    """The task-head settings a backbone recommends: ``head_defaults``, an optional class attribute
    (a ``ClassVar`` mapping, not a field) of its config dataclass, e.g. ``{"pooling": "meanstd"}``.
    They sit below every ``--set`` of the tasks (``task.*``, ``TASK.*``) and recipe."""
    config_cls = registry.load("backbone", backbone).config
    defaults = config_cls.head_defaults if isinstance(config_cls, RecommendsHead) else {}
    if not isinstance(defaults, Mapping):
        raise ConfigError(f"backbone '{backbone}': head_defaults must be a mapping of task settings, "
                          f"got {type(defaults).__name__}")
    return dict(defaults)


def task_recommendations(registry: Registry, task: str, recommended: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a backbone's ``head_defaults`` that ``task``'s config has fields for (a task
    without, e.g. ``pooling``, is left as it is)."""
    config = registry.load("task", task).config
    fields = {f.name for f in dataclasses.fields(config)} if dataclasses.is_dataclass(config) else set()
    return {k: v for k, v in recommended.items() if k in fields}


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
    config = obj.config if isinstance(obj, HasConfig) else None
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
        config = make_config(spec.config, built.settings.get(scope, {}), where=f"{kind} '{name}'")
        return config_dict(config.resolved() if isinstance(config, FindsItsFiles) else config)

    return {
        "backbone": full("backbone", comp.backbone, "backbone"),
        "feature": {n: full("feature", n, n) for n in comp.features},
        "task": {n: full("task", n, n) for n in comp.tasks},
    }
