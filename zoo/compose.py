"""Composition specs (``BACKBONE+FEATURE[+FEATURE...]:TASK[,TASK...]``) and the model they build."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple

from .errors import ConfigError, SpecError, suggest
from .protocols import BackboneOutput, LabelSchema
from .registry import Registry

_NAME = re.compile(r"^[a-z][a-z0-9_\-]*$")
SPEC_HELP = (
    "a spec is BACKBONE+FEATURE[+FEATURE...]:TASK[,TASK...], e.g. lstm+chroma:genre, "
    "cnn+mel+chroma:genre or ast+mel:valence,energy,danceability"
)


@dataclass(frozen=True)
class Composition:
    """A parsed spec: one backbone, the features stacked along the bin axis, one or more tasks."""

    backbone: str
    features: tuple[str, ...]
    tasks: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.backbone}+{'+'.join(self.features)}:{','.join(self.tasks)}"


def parse_spec(text: str, registry: Registry | None = None) -> Composition:
    """Parse ``text``; with a ``registry``, also check every name is installed (with suggestions)."""
    raw = text
    text = text.strip().lower()
    if text.count(":") != 1:
        raise SpecError(f"spec {raw!r}: expected exactly one ':' between the model and its tasks; {SPEC_HELP}")
    model, tasks_part = text.split(":")
    parts = [p.strip() for p in model.split("+")]
    tasks = [t.strip() for t in tasks_part.split(",")]
    if len(parts) < 2 or not all(parts):
        raise SpecError(f"spec {raw!r}: needs a backbone and at least one feature joined by '+'; {SPEC_HELP}")
    if not all(tasks):
        raise SpecError(f"spec {raw!r}: needs at least one task after ':' (comma-separated); {SPEC_HELP}")
    for name in parts + tasks:
        if not _NAME.match(name):
            raise SpecError(f"spec {raw!r}: {name!r} is not a component name (letters, digits, '-', '_'); {SPEC_HELP}")
    for group, what in ((parts[1:], "feature"), (tasks, "task")):
        dupes = {n for n in group if group.count(n) > 1}
        if dupes:
            raise SpecError(f"spec {raw!r}: {what} {sorted(dupes)[0]!r} is named twice; name each once")
    comp = Composition(parts[0], tuple(parts[1:]), tuple(tasks))
    if registry is not None:
        _check_names(comp, registry, raw)
    return comp


def _check_names(comp: Composition, registry: Registry, raw: str) -> None:
    backbones, features = registry.names("backbone"), registry.names("feature")
    # A common slip is swapping the order: say so rather than "unknown backbone 'mel'".
    if comp.backbone in features and comp.backbone not in backbones:
        raise SpecError(f"spec {raw!r}: '{comp.backbone}' is a feature; the backbone comes first ({SPEC_HELP})")
    for feat in comp.features:
        if feat in backbones and feat not in features:
            raise SpecError(f"spec {raw!r}: '{feat}' is a backbone; only one backbone, first ({SPEC_HELP})")
    registry.info("backbone", comp.backbone)
    for feat in comp.features:
        registry.info("feature", feat)
    for task in comp.tasks:
        registry.info("task", task)


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


class Batch(NamedTuple):
    """A padded batch: ``x[B, F, T]``, ``lengths[B]``, and per task its ``y[B]`` (labels or values)."""

    x: Any
    lengths: Any
    y: Mapping[str, Any]


def _model_class():
    import torch
    from torch import nn

    class ZooModel(nn.Module):
        """One backbone shared by one head per task.

        ``task_weighting`` is "fixed" (``task_weights``, default 1 each) or "uncertainty": the
        loss of task i is ``exp(-s_i) * L_i + s_i`` with ``s_i`` learned (Kendall et al. style).
        """

        def __init__(self, backbone: nn.Module, tasks: Mapping[str, Any], schemas: Mapping[str, LabelSchema],
                     task_weighting: str = "fixed", task_weights: Mapping[str, float] | None = None):
            super().__init__()
            self.backbone = backbone
            self.tasks = dict(tasks)
            self.schemas = dict(schemas)
            self.heads = nn.ModuleDict({n: t.make_head(backbone.out_dim, schemas[n]) for n, t in tasks.items()})
            if task_weighting not in ("fixed", "uncertainty"):
                raise SpecError(f"task_weighting {task_weighting!r}: use 'fixed' or 'uncertainty'")
            self.task_weighting = task_weighting
            weights = dict(task_weights or {})
            self.register_buffer("fixed_weights", torch.tensor([float(weights.get(n, 1.0)) for n in tasks]))
            self.log_vars = nn.Parameter(torch.zeros(len(tasks)), requires_grad=task_weighting == "uncertainty")

        def forward(self, x, lengths) -> dict[str, Any]:
            out = self.backbone(x, lengths)
            if not isinstance(out, BackboneOutput):
                out = BackboneOutput(*out) if isinstance(out, tuple) else BackboneOutput(out)
            return {name: head(out) for name, head in self.heads.items()}

        def embed(self, x, lengths, task: str | None = None):
            """The layer before the output layer of ``task`` (default: the first): ``[B, D']``."""
            task = task or next(iter(self.heads))
            out = self.backbone(x, lengths)
            if not isinstance(out, BackboneOutput):
                out = BackboneOutput(*out) if isinstance(out, tuple) else BackboneOutput(out)
            return self.heads[task].embed(out)

        def loss(self, outputs: Mapping[str, Any], y: Mapping[str, Any]):
            """Total loss and the per-task losses (detached floats are the caller's business)."""
            per_task = {n: self.tasks[n].loss(outputs[n], y[n]) for n in self.heads}
            losses = torch.stack([per_task[n] for n in self.heads])
            if self.task_weighting == "uncertainty":
                total = (torch.exp(-self.log_vars) * losses + self.log_vars).sum()
            else:
                total = (self.fixed_weights * losses).sum()
            return total, per_task

    return ZooModel


def build_model(backbone: Any, tasks: Mapping[str, Any], schemas: Mapping[str, LabelSchema], **kwargs: Any):
    """A ``ZooModel`` (torch module) joining ``backbone`` and one head per task."""
    return _model_class()(backbone, tasks, schemas, **kwargs)


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
    tasks = {}
    for name in comp.tasks:
        merged = {**settings.get("task", {}), **settings.get(name, {})}
        tasks[name] = registry.create("task", name, merged)
    providers = {f"backbone.{comp.backbone}": registry.provider("backbone", comp.backbone)}
    providers.update({f"feature.{n}": registry.provider("feature", n) for n in comp.features})
    providers.update({f"task.{n}": registry.provider("task", n) for n in comp.tasks})
    backbone_settings = {**settings.get("backbone", {}), **settings.get(comp.backbone, {})}
    resolved = {"backbone": backbone_settings}
    resolved.update({n: {**settings.get("feature", {}), **settings.get(n, {})} for n in comp.features})
    resolved.update({n: {**settings.get("task", {}), **settings.get(n, {})} for n in comp.tasks})
    return Built(comp, features, tasks, rate, sum(f.n_bins for f in features.values()), providers, resolved)
