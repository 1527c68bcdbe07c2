"""Argument types for numeric options: a bad number is refused at parse time, in one line."""
from __future__ import annotations

import argparse
from typing import Callable

from ..config import SEED_MAX, whole
from ..config import number as real
from ..errors import ConfigError


def integer(low: int, high: int | None = None) -> Callable[[str], int]:
    """An ``int`` option in ``[low, high]`` (``high`` None: no upper bound), checked as a config file's is."""
    def parse(text: str) -> int:
        try:
            return whole(text, low, high)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    parse.__name__ = "integer"  # argparse names the type in "invalid integer value"
    return parse


def number(low: float, *, strict: bool = False) -> Callable[[str], float]:
    """A finite ``float`` option ``>= low`` (``> low`` when ``strict``), checked as a config file's is."""
    def parse(text: str) -> float:
        try:
            return real(text, low, strict=strict)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    parse.__name__ = "number"
    return parse


POSITIVE = integer(1)
NON_NEGATIVE = integer(0)
SEED = integer(0, SEED_MAX)
PORT = integer(1, 65535)
