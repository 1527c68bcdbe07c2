"""The options ``zoo run`` and ``zoo sweep`` share: where the data are and how every model trains.

Each option is declared once, beside its field (:class:`~zoo.config.Option` metadata on
:class:`~zoo.engine.request.DataRequest` and :class:`~zoo.engine.trainconfig.TrainConfig`): the same
declaration names a config file's keys and checks their values (:mod:`zoo.engine.runconfig`).
"""
from __future__ import annotations

import argparse
import typing
from typing import Any, Callable

from ..config import Option, field_types, options
from ..errors import ConfigError

SWEEP_EXCLUDES = ("overfit_batches", "precision", "count")
"""Training options ``zoo sweep`` leaves out: an overfit check is no trial, a trial's precision is the default,
and a trial trains one seed."""


def _argtype(check: Callable[[Any], Any]) -> Callable[[str], Any]:
    """An argparse type that refuses a bad value at parse time with the check's own one-line message."""
    def parse(text: str) -> Any:
        try:
            return check(text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return parse


def _add(p, declared: Option, check: Callable[[Any], Any] | None = None, choices: tuple | None = None) -> None:
    if declared.switch:
        p.add_argument(declared.flag, action="store_true", help=declared.help)
    else:
        p.add_argument(declared.flag, type=_argtype(check) if check else None, choices=choices,
                       metavar=declared.metavar, help=declared.help)


def add_data_options(p) -> None:
    """``--data --layout --limit --skip-bad --workers --max-seconds --min-class-clips``: the options of
    :class:`~zoo.engine.request.DataRequest` (defaults: None, so that a value from a config file or a
    sweep's own choice can be told from one given here)."""
    from ..engine.request import DataRequest
    for declared in options(DataRequest).values():
        if declared.flag:
            _add(p, declared, declared.check)


def add_train_options(p, *, exclude: tuple[str, ...] = ()) -> None:
    """``--epochs --batch-size --lr --patience --overfit-batches --device --precision`` (the options of
    :class:`~zoo.engine.trainconfig.TrainConfig`), ``--seed --seeds`` (:class:`~zoo.engine.request.SeedPlan`'s),
    less ``exclude`` (field names); ``--set --experiment``."""
    from ..engine.request import SeedPlan
    from ..engine.trainconfig import TrainConfig, option_check
    types = field_types(TrainConfig)
    for name, declared in options(TrainConfig).items():
        if name in exclude:
            continue
        literal = typing.get_args(types[name]) if typing.get_origin(types[name]) is typing.Literal else None
        _add(p, declared, option_check(name), literal)
    for name, declared in options(SeedPlan).items():
        if name not in exclude:
            _add(p, declared, declared.check)
    p.add_argument("--set", dest="assignments", action="append", default=[], metavar="SCOPE.KEY=VAL",
                   help="a setting: backbone.hidden=256, mel.n_mels=64, task.dropout=0.3, train.lr=3e-4, "
                        "dataset.mapping=none (repeatable)")
    p.add_argument("--experiment", default="music-zoo", help="MLflow experiment (default: music-zoo)")


def given_options(args, cls: type) -> dict[str, Any]:
    """``{field: value}`` of the options of dataclass ``cls`` given on the command line (a switch: when on)."""
    return {name: getattr(args, declared.dest) for name, declared in options(cls).items()
            if declared.flag and hasattr(args, declared.dest) and getattr(args, declared.dest) not in (None, False)}
