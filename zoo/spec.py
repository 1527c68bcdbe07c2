"""The spec grammar: ``BACKBONE+FEATURE[+FEATURE...]:TASK[,TASK...]`` parsed into a ``Composition``.

Parsing only (no torch, numpy or model): ``import zoo`` and ``zoo list`` stay cheap. Building the
components is :mod:`zoo.model.building`; the model they form is :mod:`zoo.model.model`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import SpecError

if TYPE_CHECKING:  # annotations only: parsing must not load the registry's numpy-using protocols
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
