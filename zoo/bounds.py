"""Declared value ranges of config fields: ``bounded(...)`` beside the field, checked by one function, :func:`check_bounds`.

A config says what each number may be where the field is declared, instead of an ``if`` per field in
its ``__post_init__``::

    hidden: int = bounded(128, ge=1)
    dropout: float = bounded(0.2, ge=0.0, lt=1.0)
    kernel: int = bounded(3, ge=1, odd=True, why="so a frame's window is centred on it")
    freeze: int = bounded(0, ge=0, le="depth")        # another field of the same config

and its ``__post_init__`` calls ``check_bounds(self, "backbone 'lstm'")``. A value out of range is a
``ConfigError`` that names the component, the field, the value, the range and a ``--set`` that fixes
it. A tuple field (``channels=32,64``) is checked item by item; ``None`` (an optional field unset) is
not checked. Checks between fields (``embed_dim`` divisible by ``heads``) stay in ``__post_init__``.

A field typed ``int`` takes an ``int`` only (not a bool, not 2.5), since a config is also made by hand,
not only from text; ``whole=True`` says so of a field typed otherwise, and says "a whole number" in
every message of the field (a field typed ``int`` says it where the value is no whole number). A field that is also a command-line option declares both: ``bounded(30, ge=1,
metadata=option(...))``; :func:`zoo.config.field_check` reads the bounds as the option's value check,
so the option, the config file and the dataclass share the one declaration.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from dataclasses import MISSING
from typing import Any, Callable, Mapping

from .errors import ConfigError

BOUNDS = "zoo.bounds"
"""The dataclass field metadata key of a :class:`Bounds`."""


@dataclasses.dataclass(frozen=True)
class Bounds:
    """The values one field may take: ``ge`` <= v, ``gt`` < v, v <= ``le``, v < ``lt`` (a number, or the
    name of another field of the config), ``odd``; ``why`` says the reason, after the range."""

    ge: float | str | None = None
    gt: float | str | None = None
    le: float | str | None = None
    lt: float | str | None = None
    odd: bool = False
    why: str = ""
    whole: bool = False

    def _limit(self, config: Any, bound: float | str | None) -> float | None:
        return getattr(config, bound) if isinstance(bound, str) else bound

    def holds(self, value: Any, config: Any) -> bool:
        if not _is_number(value, self.whole):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False  # nan compares false both ways; inf is no setting
        ge, gt, le, lt = (self._limit(config, b) for b in (self.ge, self.gt, self.le, self.lt))
        return ((ge is None or value >= ge) and (gt is None or value > gt) and (le is None or value <= le)
                and (lt is None or value < lt) and (not self.odd or value % 2 == 1))

    def span(self, config: Any) -> str:
        """``at least 1``, ``in [0, 1)``, ``in 0..depth (12)``, ``odd and at least 1``, ``positive``."""
        def show(bound: float | str) -> str:
            if isinstance(bound, str):
                return f"{bound} ({getattr(config, bound)})"
            return str(bound) if isinstance(bound, int) else f"{bound:g}"  # 4294967295, not 4.29497e+09
        low = self.ge if self.ge is not None else self.gt
        high = self.le if self.le is not None else self.lt
        if low is not None and high is not None:
            if self.ge is not None and self.le is not None and not any(isinstance(b, float) for b in (low, high)):
                text = f"in {show(low)}..{show(high)}"
            else:
                text = (f"in {'[' if self.ge is not None else '('}{show(low)}, {show(high)}"
                        f"{']' if self.le is not None else ')'}")
        elif self.gt is not None:
            text = "positive" if self.gt == 0 else f"greater than {show(self.gt)}"
        elif self.ge is not None:
            text = f"at least {show(self.ge)}"
        elif self.lt is not None:
            text = f"less than {show(self.lt)}"
        elif self.le is not None:
            text = f"at most {show(self.le)}"
        else:
            text = ""
        if self.whole:
            text = f"{'an odd' if self.odd else 'a'} whole number {text}".rstrip()
        elif self.odd:
            text = f"odd and {text}" if text else "odd"
        return text


def bounded(default: Any = MISSING, *, ge: float | str | None = None, gt: float | str | None = None,
            le: float | str | None = None, lt: float | str | None = None, odd: bool = False,
            why: str = "", whole: bool = False, metadata: Mapping[str, Any] | None = None) -> Any:
    """A dataclass field with ``default`` whose values are limited as :class:`Bounds` says (``metadata``:
    the field's other metadata, such as a :func:`zoo.config.option`)."""
    return dataclasses.field(default=default,
                             metadata={**(metadata or {}), BOUNDS: Bounds(ge, gt, le, lt, odd, why, whole)})


def _is_number(value: Any, whole: bool) -> bool:
    """An integer (or, unless ``whole``, any real number: numpy's too), not a bool nor text."""
    return not isinstance(value, bool) and isinstance(value, numbers.Integral if whole else numbers.Real)


def bounds(cls: Any) -> dict[str, Bounds]:
    """``{field name: Bounds}`` of a config class or instance, in field order, as declared."""
    return {f.name: f.metadata[BOUNDS] for f in dataclasses.fields(cls) if BOUNDS in f.metadata}


def whole_fields(cls: Any) -> frozenset[str]:
    """The fields of a config class or instance that take whole numbers only: declared ``whole=True``,
    or typed ``int`` (``int | None``, ``tuple[int, ...]``)."""
    cls = cls if isinstance(cls, type) else type(cls)
    return _typed_int(cls) | {name for name, b in bounds(cls).items() if b.whole}


_TYPED_INT: dict[type, frozenset[str]] = {}


def _typed_int(cls: type) -> frozenset[str]:
    """The fields of ``cls`` whose declared type holds integers only (``int``, ``int | None``,
    ``tuple[int, ...]``); read from the annotations' text where they cannot be resolved."""
    if cls not in _TYPED_INT:
        _TYPED_INT[cls] = _read_typed_int(cls)
    return _TYPED_INT[cls]


def _read_typed_int(cls: type) -> frozenset[str]:
    try:
        hints: dict[str, Any] = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - a name imported for type checking only: read the text
        hints = {f.name: f.type for f in dataclasses.fields(cls)}

    def integral(t: Any) -> bool:
        if isinstance(t, str):
            spelled = t.replace(" ", "").replace("Optional[int]", "int").replace("tuple[int,...]", "int")
            return set(spelled.split("|")) - {"None"} == {"int"}
        if t is int:
            return True
        args = set(typing.get_args(t)) - {type(None), Ellipsis}
        origin = typing.get_origin(t)
        return origin in (tuple, list, typing.Union, types.UnionType) and bool(args) and args <= {int}

    return frozenset(name for name, t in hints.items() if integral(t))


def check_bounds(config: Any, where: str, fix: Callable[[str], str] | None = None) -> None:
    """Raise ``ConfigError`` for the first field of ``config`` out of its declared range.

    ``where`` names the component as a user writes it, ``backbone 'lstm'`` or ``feature 'mel'``: the
    message's fix is then ``--set backbone.<field>=<its default>`` (``dataset.`` likewise; a feature or a
    task by its name, ``--set mel.<field>=...``, as a run may have several). ``fix(field)`` says it instead
    where the config is set otherwise (``set it with --epochs or --set train.epochs=...``).
    """
    typed_int = _typed_int(type(config))
    for name, b in bounds(config).items():
        value = getattr(config, name)
        items = value if isinstance(value, (tuple, list)) else (value,)
        held = dataclasses.replace(b, whole=True) if name in typed_int else b
        if value is None or all(v is None or held.holds(v, config) for v in items):
            continue
        if not all(v is None or _is_number(v, held.whole) for v in items):
            b = held  # 2.5 where an int is typed: "must be a whole number ..."
        span = b.span(config)
        if any(isinstance(v, float) and not math.isfinite(v) for v in items):
            span = f"finite and {span}" if span else "finite"
        elif not all(v is None or _is_number(v, b.whole) for v in items):
            span = span if b.whole else f"a number {span}".rstrip()
        said = (f"{name} {tuple(value)} must all be {_plural(span)}" if isinstance(value, (tuple, list))
                else f"{name}={value!r} must be {span}")
        then = f"; {fix(name)}" if fix else _example(config, name, where)
        raise ConfigError(f"{where}: {said}{f' ({b.why})' if b.why else ''}{then}")


def _plural(span: str) -> str:
    """What each item of a tuple must be, said of them all: "whole numbers at least 1", not "a whole number"."""
    lead = "finite and " if span.startswith("finite and ") else ""
    rest = span[len(lead):]
    for one, many in (("an odd whole number", "odd whole numbers"), ("a whole number", "whole numbers"),
                      ("a number", "numbers")):
        if rest.startswith(one):
            return lead + many + rest[len(one):]
    return span


def _example(config: Any, name: str, where: str) -> str:
    """``; e.g. --set backbone.hidden=128`` (the default as the example), or nothing without one."""
    field = next(f for f in dataclasses.fields(config) if f.name == name)
    if field.default is MISSING or field.default is None:
        return ""
    default = field.default
    shown = ",".join(map(str, default)) if isinstance(default, (tuple, list)) else default
    kind, _, quoted = where.partition(" '")
    scope = kind if kind in ("backbone", "dataset") else quoted.rstrip("'")  # the one of its kind in a run
    return f"; e.g. --set {scope}.{name}={shown}" if quoted else f"; e.g. {name}={shown}"


__all__ = ["Bounds", "bounded", "bounds", "check_bounds", "BOUNDS"]
