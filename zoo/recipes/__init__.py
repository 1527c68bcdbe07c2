"""Named recipes from ``registry.yaml``: a spec plus its settings, transfer source and lab references."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from ..spec import Composition, parse_spec
from ..errors import ConfigError, unknown

@dataclass(frozen=True)
class Recipe:
    """One entry of ``registry.yaml``.

    ``settings`` maps a scope (backbone, feature, task, train or a component name) to overrides;
    ``transfer`` is ``{"from": recipe-or-run, "freeze": "none" | "backbone" | int}`` or empty;
    ``reference`` holds the lab's test numbers (flat ``{metric: value}`` for one task, or
    ``{task: {metric: value}}`` for several).
    """

    name: str
    spec: str
    summary: str = ""
    lab_step: str = ""
    group: str = ""
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    transfer: Mapping[str, Any] = field(default_factory=dict)
    reference: Mapping[str, Any] = field(default_factory=dict)

    @property
    def composition(self) -> Composition:
        return parse_spec(self.spec)

    def references(self) -> dict[str, dict[str, float]]:
        """``{task: {metric: value}}`` whatever the shape written in the file."""
        ref = dict(self.reference)
        tasks = self.composition.tasks
        if ref and all(isinstance(v, Mapping) for v in ref.values()):
            return {t: dict(v) for t, v in ref.items()}
        return {tasks[0]: ref} if ref else {}


RECIPE_FIELDS = tuple(f.name for f in fields(Recipe) if f.name != "name")
"""The keys of a recipe's body in ``registry.yaml`` (its name is the key above them): :class:`Recipe`'s fields."""


def default_path() -> Path:
    """The catalogue shipped with the zoo: ``registry.yaml``, package data beside this module.

    The project's top-level ``registry.yaml`` is a link to this file, so a checkout and a built
    wheel read the same catalogue."""
    return Path(__file__).resolve().parent / "registry.yaml"


def load_recipes(path: str | Path | None = None) -> dict[str, Recipe]:
    """Read and validate a recipe catalogue (default: the zoo's ``registry.yaml``)."""
    import yaml

    path = Path(path) if path else default_path()
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"recipe catalogue {path} does not exist; reinstall music-zoo or pass an existing file") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"recipe catalogue {path} is not valid YAML: {exc}") from exc
    entries = doc.get("recipes")
    if not isinstance(entries, Mapping):
        raise ConfigError(f"recipe catalogue {path}: expected a top-level 'recipes:' mapping")
    out = {}
    for name, body in entries.items():
        if not isinstance(body, Mapping) or "spec" not in body:
            raise ConfigError(f"recipe '{name}' in {path}: expected a mapping with at least 'spec'")
        extra = set(body) - set(RECIPE_FIELDS)
        if extra:
            key = sorted(extra)[0]
            raise ConfigError(f"recipe '{name}' in {path}: unknown field '{key}'; valid: {', '.join(sorted(RECIPE_FIELDS))}")
        recipe = Recipe(name=str(name), **{k: v for k, v in body.items()})
        recipe.composition  # parse now: a typo in the catalogue surfaces at load, not at run time
        out[recipe.name] = recipe
    return out


def get_recipe(name: str, path: str | Path | None = None) -> Recipe:
    """The recipe called ``name``; unknown names get the list and a suggestion."""
    recipes = load_recipes(path)
    if name not in recipes:
        raise ConfigError(unknown("recipe", name, recipes, "(see registry.yaml, or give a spec such as lstm+mel:genre)"))
    return recipes[name]
