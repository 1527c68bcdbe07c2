"""Typed configuration: build a component's frozen config dataclass from a mapping or CLI strings."""
from __future__ import annotations

import dataclasses
import functools
import math
import typing
from typing import Any, Callable, Mapping

from .bounds import Bounds, bounds, whole_fields
from .errors import ConfigError, suggest

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert ``value`` (often a CLI string) to the annotated type ``tp``; raise ConfigError."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: cannot use {value!r}")
    if origin is typing.Literal:
        for arg in args:
            if value == arg or (isinstance(value, str) and str(arg) == value):
                return arg
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}{suggest(str(value), map(str, args))}")
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v for v in value.replace(" ", "").split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        items = [_coerce(v, inner, where) for v in value] if inner is not Any else list(value)
        return tuple(items) if origin is tuple else items
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"{where}: expected true or false, got {value!r}" if where else
                          f"expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        try:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if tp is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if tp is str:
        return str(value)
    return value


SEED_MAX = 2**32 - 1
"""The largest seed numpy accepts."""


def whole(value: Any, low: int, high: int | None = None) -> int:
    """``value`` (an int, or text as on the command line) as a whole number in ``[low, high]``; else a
    ConfigError saying what is valid. The one check behind ``--seeds 0`` and ``seeds: 0`` in a config file."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(f"{value!r} is not a whole number")
    try:
        number_ = int(value)
    except ValueError:
        raise ConfigError(f"{value!r} is not a whole number") from None
    if number_ < low or (high is not None and number_ > high):
        span = f">= {low}" if high is None else f"from {low} to {high}"
        raise ConfigError(f"{number_} is out of range: give a whole number {span}")
    return number_


def number(value: Any, low: float, *, strict: bool = False) -> float:
    """``value`` (a number, or text) as a finite float ``>= low`` (``> low`` when ``strict``); else a ConfigError."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{value!r} is not a number")
    try:
        number_ = float(value)
    except ValueError:
        raise ConfigError(f"{value!r} is not a number") from None
    if not math.isfinite(number_):
        raise ConfigError(f"{value} is not a finite number")
    if number_ < low or (strict and number_ == low):
        raise ConfigError(f"{number_} is out of range: give a number {'>' if strict else '>='} {low}")
    return number_


def flag(value: Any) -> bool:
    """``value`` as true or false: a bool, 0/1, or the words true/false, yes/no, on/off (any case)."""
    return _coerce(value, bool, "")


OPTION = "zoo.option"
"""The dataclass field metadata key of an :class:`Option`."""


@dataclasses.dataclass(frozen=True)
class Option:
    """How one field of a settings dataclass is given on the command line and checked in a config file,
    declared once beside the field: ``limit: int | None = field(default=None, metadata=option(...))``.

    ``help``: the option's help; ``flag``: its command-line spelling (None: a config-file key only);
    ``check``: the one value check the option and the config file share (text or a value in, the value
    out, else a ConfigError; None: the field's type and bounds decide); ``metavar``; ``switch``: an option
    that takes no value (``--skip-bad``).
    """

    help: str
    flag: str | None = None
    check: Callable[[Any], Any] | None = None
    metavar: str | None = None
    switch: bool = False

    @property
    def dest(self) -> str | None:
        """The attribute argparse stores the option under (``--max-seconds``: ``max_seconds``)."""
        return self.flag[2:].replace("-", "_") if self.flag else None


def option(help: str, flag: str | None = None, *, check: Callable[[Any], Any] | None = None,
           metavar: str | None = None, switch: bool = False) -> dict[str, Option]:
    """Field metadata declaring an :class:`Option`."""
    return {OPTION: Option(help, flag, check, metavar, switch)}


def options(cls: type) -> dict[str, Option]:
    """``{field name: Option}`` of dataclass ``cls``, in field order (fields without one left out). An
    option declared without a ``check`` on a field with declared bounds (``bounded(..., metadata=option(...))``)
    gets the bounds' check (:func:`field_check`): one range for the option, the config file and
    the dataclass."""
    out = {}
    for f in dataclasses.fields(cls):
        if OPTION in f.metadata:
            declared = f.metadata[OPTION]
            check = declared.check or field_check(cls, f.name)
            out[f.name] = dataclasses.replace(declared, check=check) if check is not declared.check else declared
    return out


def field_check(cls: type, name: str) -> Callable[[Any], Any] | None:
    """The value check of field ``name`` of dataclass ``cls`` given alone, as a command-line option or a
    config file's key: text (or a value) read as the field's type, a whole number or a number, and held to
    its declared :class:`Bounds` (limits that name another field are left to the config); a ConfigError
    says ``0 is out of range: give a whole number >= 1``. None for a field without bounds."""
    b = bounds(cls).get(name)
    if b is None:
        return None
    is_whole = name in whole_fields(cls)
    ge, gt, le, lt = (None if isinstance(v, str) else v for v in (b.ge, b.gt, b.le, b.lt))
    alone = Bounds(ge, gt, le, lt, odd=b.odd, why=b.why, whole=is_whole)
    # the range as whole() or number() says it ("give a whole number >= 1", "from 0 to 4294967295", "> 0.0")
    lowest = ge if ge is not None else (math.floor(gt) + 1 if gt is not None else None)
    highest = le if le is not None else (math.ceil(lt) - 1 if lt is not None else None)
    first: float | None = ge if ge is not None else gt

    def check(value: Any) -> Any:
        if is_whole:
            got: float = whole(value, low=int(lowest) if lowest is not None else -(2 ** 63),
                               high=int(highest) if highest is not None else None)
        else:
            got = number(value, low=float(first) if first is not None else -math.inf,
                         strict=ge is None and gt is not None)
        if not alone.holds(got, None):  # what whole() and number() do not say: odd, an upper bound of a number
            span = alone.span(None)
            raise ConfigError(f"{got} is out of range: give {span if is_whole else 'a number ' + span}")
        return got
    return check


def whole_from(low: int, high: int | None = None) -> Callable[[Any], int]:
    """The :func:`whole` check of ``[low, high]`` as an :class:`Option` check."""
    return functools.partial(whole, low=low, high=high)


def number_from(low: float, *, strict: bool = False) -> Callable[[Any], float]:
    """The :func:`number` check of ``>= low`` (``> low`` when ``strict``) as an :class:`Option` check."""
    return functools.partial(number, low=low, strict=strict)


def text(what: str) -> Callable[[Any], str]:
    """A check that takes one piece of text (``what``: "folder", "layout name")."""
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise ConfigError(f"{value!r}: give one {what} as text")
        return value
    return check


def field_types(cls: type) -> dict[str, Any]:
    """The resolved annotation of every field of dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls)}


def make_config(cls: type, values: Mapping[str, Any] | None = None, *, where: str = "config") -> Any:
    """Instantiate dataclass ``cls`` from ``values``, converting types and refusing unknown keys.

    ``where`` names the component in messages, e.g. ``backbone 'lstm'``.
    """
    values = dict(values or {})
    types = field_types(cls)
    unknown = [k for k in values if k not in types]
    if unknown:
        key = unknown[0]
        valid = ", ".join(types) or "(none: this component takes no settings)"
        raise ConfigError(f"{where}: unknown setting '{key}'; valid: {valid}{suggest(key, types)}")
    kwargs = {k: _coerce(v, types[k], f"{where} setting '{k}'") for k, v in values.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def config_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as a plain dict (for logging and saving)."""
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config or {})


def with_former_defaults(config_cls: Any, recorded: Mapping[str, Any]) -> dict[str, Any]:
    """A component's settings as a saved model recorded them, completed for a config class that has
    gained fields since: each field the recording lacks takes its value from the class's
    ``former_defaults`` (an optional ``ClassVar[dict]``: field -> the value that behaves as the
    component did before the field existed), so a model saved before a new field, or before a
    default changed, rebuilds as it was trained. Other missing fields take today's defaults."""
    from .protocols import RemembersDefaults
    former = config_cls.former_defaults if isinstance(config_cls, RemembersDefaults) else {}
    return {**{k: v for k, v in former.items() if k not in recorded}, **recorded}


def parse_assignments(items: list[str] | None) -> dict[str, dict[str, str]]:
    """Parse CLI ``--set backbone.hidden=256`` items into ``{"backbone": {"hidden": "256"}}``.

    The scope is a kind (backbone, feature, task, train) or a component name (``mel.n_mels=64``).
    """
    out: dict[str, dict[str, str]] = {}
    for item in items or []:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(f"--set {item!r}: expected SCOPE.KEY=VALUE, e.g. backbone.hidden=256 or train.lr=0.001")
        key, value = item.split("=", 1)
        scope, name = key.split(".", 1)
        out.setdefault(scope.strip(), {})[name.strip()] = value.strip()
    return out
