"""The ``--param`` grammar of ``zoo sweep``: ``SCOPE.KEY=KIND:ARGS`` becomes a checked :class:`Param`. No Ray here.

Kinds (the names Ray Tune gives its search spaces)::

    train.lr=loguniform:1e-4:3e-3        a number between the two, uniform in log space (both > 0)
    task.dropout=uniform:0.1:0.5         a number between the two
    backbone.layers=randint:1:3          a whole number from the first to the second, both included
    backbone.hidden=choice:128,256       one of the values, drawn at random per trial
    backbone.hidden=grid:128,256         every value, each in its own trials (multiplies --trials)

The values of ``choice`` and ``grid`` are read like ``--set`` values (each component types them).
Whether a setting exists and takes the values is checked against the composition by
:func:`zoo.sweep.driver.check_space`, before anything starts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

from ..errors import ConfigError, suggest

KINDS = ("loguniform", "uniform", "randint", "choice", "grid")
EXAMPLE = "e.g. --param train.lr=loguniform:1e-4:3e-3 or --param backbone.hidden=choice:128,256"
FIXED_SCOPES = {"dataset": "the data are prepared once for the whole sweep; give dataset settings with --set"}


@dataclass(frozen=True)
class Param:
    """One searched setting: ``scope.key`` drawn as ``kind`` over ``values``.

    ``values``: ``(low, high)`` for the ranges (floats; ints for ``randint``), the listed strings
    for ``choice`` and ``grid``.
    """

    scope: str
    key: str
    kind: str
    values: tuple[Any, ...]

    @property
    def name(self) -> str:
        return f"{self.scope}.{self.key}"

    def text(self) -> str:
        """As given on the command line (``train.lr=loguniform:0.0001:0.003``)."""
        sep = "," if self.kind in ("choice", "grid") else ":"
        return f"{self.name}={self.kind}:{sep.join(str(v) for v in self.values)}"

    def samples(self) -> list[Any]:
        """The values that bound what a trial may get: both ends of a range, every listed value."""
        return list(self.values)

    def to_tune(self) -> Any:
        """The Ray Tune search space of this parameter (imports Ray)."""
        from ray import tune
        if self.kind == "loguniform":
            return tune.loguniform(*self.values)
        if self.kind == "uniform":
            return tune.uniform(*self.values)
        if self.kind == "randint":
            return tune.randint(self.values[0], self.values[1] + 1)  # Tune's upper end is excluded
        if self.kind == "choice":
            return tune.choice(list(self.values))
        return tune.grid_search(list(self.values))


def _number(param: str, text: str, whole: bool) -> float | int:
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        what = "a whole number" if whole else "a number"
        raise ConfigError(f"--param {param}: '{text}' is not {what}; {EXAMPLE}") from None
    if not math.isfinite(value):
        raise ConfigError(f"--param {param}: '{text}' is not a finite number; give the range's ends as numbers")
    return value


def parse_param(item: str) -> Param:
    """One ``--param SCOPE.KEY=KIND:ARGS`` item, its grammar and ranges checked."""
    if "=" not in item or "." not in item.split("=", 1)[0]:
        raise ConfigError(f"--param {item!r}: expected SCOPE.KEY=KIND:ARGS, {EXAMPLE}")
    key, spec = (part.strip() for part in item.split("=", 1))
    scope, name = (part.strip() for part in key.split(".", 1))
    if not scope or not name:
        raise ConfigError(f"--param {item!r}: expected SCOPE.KEY=KIND:ARGS, {EXAMPLE}")
    if scope in FIXED_SCOPES:
        raise ConfigError(f"--param {item!r}: {FIXED_SCOPES[scope]}")
    kind, sep, args = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise ConfigError(f"--param {item!r}: unknown kind '{kind}'; valid: {', '.join(KINDS)}"
                          f"{suggest(kind, KINDS)} ({EXAMPLE})")
    if not sep or not args.strip():
        raise ConfigError(f"--param {item!r}: {kind} needs its values after '{kind}:', {EXAMPLE}")
    if kind in ("choice", "grid"):
        values = tuple(v.strip() for v in args.split(","))
        if any(not v for v in values):
            raise ConfigError(f"--param {item!r}: an empty value in the list; give {kind}:A,B[,C...]")
        if len(set(values)) != len(values):
            raise ConfigError(f"--param {item!r}: a value is listed twice; give each once")
        return Param(scope, name, kind, values)
    ends = args.split(":")
    if len(ends) != 2:
        raise ConfigError(f"--param {item!r}: {kind} takes two ends, {kind}:LOW:HIGH (got {len(ends)} value(s))")
    whole = kind == "randint"
    low, high = (_number(item, e.strip(), whole) for e in ends)
    if not low < high:
        raise ConfigError(f"--param {item!r}: the low end {low:g} must be below the high end {high:g}; "
                          f"give {kind}:LOW:HIGH")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"--param {item!r}: loguniform needs both ends > 0 (got {low:g}); use uniform for a range "
                          f"that starts at or below 0")
    return Param(scope, name, kind, (low, high))


def parse_params(items: Iterable[str]) -> tuple[Param, ...]:
    """Every ``--param`` item; at least one, each setting once."""
    params = tuple(parse_param(item) for item in items)
    if not params:
        raise ConfigError(f"nothing to search: give at least one --param, {EXAMPLE}")
    seen: dict[str, Param] = {}
    for p in params:
        if p.name in seen:
            raise ConfigError(f"--param {p.name} is given twice ({seen[p.name].text()} and {p.text()}); keep one")
        seen[p.name] = p
    return params


def settings_of(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A trial's flat ``{"train.lr": 0.001}`` as ``--set``-style scopes ``{"train": {"lr": 0.001}}``."""
    out: dict[str, dict[str, Any]] = {}
    for name, value in config.items():
        scope, key = name.split(".", 1)
        out.setdefault(scope, {})[key] = value
    return out


def merge(base: dict[str, dict[str, Any]], over: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``base`` scopes with ``over``'s values winning, key by key."""
    out = {k: dict(v) for k, v in base.items()}
    for scope, values in over.items():
        out.setdefault(scope, {}).update(values)
    return out


__all__ = ["Param", "KINDS", "parse_param", "parse_params", "settings_of", "merge"]
