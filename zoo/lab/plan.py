"""Which lab recipes ``zoo reproduce lab`` runs, in which order, and with which extra settings."""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..errors import ConfigError
from ..recipes import Recipe

LAB_GROUP = "lab"
BASELINE_GROUP = "baseline"
"""Recipes every lab table measures against (the ``stats`` backbone); the lab plan runs them first."""
GENERAL_SCOPES = ("backbone", "feature", "task", "train", "dataset")


@dataclass(frozen=True)
class Step:
    """One experiment of the plan: a recipe, and why it is in (named, or needed by a transfer)."""

    recipe: Recipe
    needed_by: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.recipe.name

    @property
    def source(self) -> str | None:
        """What this recipe starts from (transfer): a recipe name or a run id; None without transfer."""
        src = self.recipe.transfer.get("from") if self.recipe.transfer else None
        return str(src) if src else None


def kind_of(recipe: Recipe) -> str:
    """The lab table a recipe belongs to: baseline, transfer, multitask, genre or regression."""
    comp = recipe.composition
    if recipe.group == BASELINE_GROUP:
        return "baseline"
    if recipe.transfer:
        return "transfer"
    if len(comp.tasks) > 1:
        return "multitask"
    return "genre" if comp.tasks[0] == "genre" else "regression"


def make_plan(recipes: Mapping[str, Recipe], only: Sequence[str] = (), group: str = LAB_GROUP) -> list[Step]:
    """The recipes of ``group`` (every one, or those matching a glob in ``only``), each transfer
    source recipe before the recipes that start from it (a source that ``only`` left out is added;
    a source that is a run id, not a recipe, is left to ``zoo.train``)."""
    members = [r for r in recipes.values() if r.group == group]
    if not members:
        raise ConfigError(f"no recipe has group '{group}' in the catalogue; see registry.yaml")
    patterns = [p.strip() for item in only for p in str(item).split(",") if p.strip()]
    if patterns:
        chosen = [r for r in members if any(fnmatch.fnmatchcase(r.name, p) for p in patterns)]
        unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(r.name, p) for r in members)]
        if unmatched:
            names = ", ".join(r.name for r in members)
            raise ConfigError(f"--only {unmatched[0]!r} matches no lab recipe; lab recipes: {names}")
    else:
        chosen = members
    needed: dict[str, list[str]] = {}
    order: list[str] = []

    def visit(name: str, by: str | None, trail: tuple[str, ...]) -> None:
        if name in trail:
            raise ConfigError(f"recipes {' -> '.join(trail + (name,))} start from each other in a circle; "
                              f"fix their transfer entries in registry.yaml")
        if by:
            needed.setdefault(name, []).append(by)
        if name in order:
            return
        src = recipes[name].transfer.get("from") if recipes[name].transfer else None
        if src and str(src) in recipes:
            visit(str(src), name, trail + (name,))
        order.append(name)

    for r in chosen:
        visit(r.name, None, ())
    named = {r.name for r in chosen}
    steps = [Step(recipes[n], tuple(needed.get(n, ())) if n not in named else ()) for n in order]
    return (baselines(recipes, steps) if group == LAB_GROUP else []) + steps


def baselines(recipes: Mapping[str, Recipe], steps: Sequence[Step]) -> list[Step]:
    """The baseline recipes that share a task with ``steps``, first, each needed by those steps, so
    every table of the report has the floor its models must clear."""
    out = []
    for r in recipes.values():
        if r.group != BASELINE_GROUP:
            continue
        users = tuple(s.name for s in steps if set(s.recipe.composition.tasks) & set(r.composition.tasks))
        if users:
            out.append(Step(r, users))
    return out


def settings_for(recipe: Recipe, extra: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The ``--set`` overrides that apply to ``recipe``: general scopes always, a component's own
    scope (``lstm.hidden=16``) only when the recipe uses that component."""
    comp = recipe.composition
    mine = {comp.backbone, *comp.features, *comp.tasks}
    return {scope: dict(values) for scope, values in extra.items() if scope in GENERAL_SCOPES or scope in mine}


def check_scopes(extra: Mapping[str, Any], registry: Any) -> None:
    """Refuse a ``--set`` scope that names no installed component (a typo would otherwise do nothing).

    A scope of a component that no planned recipe uses is fine: it simply applies to none.
    """
    known = set(GENERAL_SCOPES)
    for kind in ("backbone", "feature", "task"):
        known |= set(registry.names(kind))
    if any(scope not in known for scope in extra):  # a variant's name (imports the specs to list them)
        for kind in ("backbone", "feature", "task"):
            known |= set(registry.variants(kind))
    for scope in extra:
        if scope not in known:
            from ..errors import suggest
            raise ConfigError(f"--set {scope}.*: '{scope}' is neither a general scope ({', '.join(GENERAL_SCOPES)}) "
                              f"nor an installed component (see zoo list){suggest(scope, known)}")
