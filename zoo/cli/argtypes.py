"""Argument types for numeric options: a bad number is refused at parse time, in one line."""
from __future__ import annotations

import argparse
import math
from typing import Callable


def integer(low: int, high: int | None = None) -> Callable[[str], int]:
    """An ``int`` option in ``[low, high]`` (``high`` None: no upper bound)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            span = f">= {low}" if high is None else f"from {low} to {high}"
            raise argparse.ArgumentTypeError(f"{value} is out of range: give a whole number {span}")
        return value
    parse.__name__ = "integer"  # argparse names the type in "invalid integer value"
    return parse


def number(low: float, *, strict: bool = False) -> Callable[[str], float]:
    """A finite ``float`` option ``>= low`` (``> low`` when ``strict``)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number")
        if value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"{value} is out of range: give a number {'>' if strict else '>='} {low}")
        return value
    parse.__name__ = "number"
    return parse


POSITIVE = integer(1)
NON_NEGATIVE = integer(0)
SEED = integer(0, 2**32 - 1)
PORT = integer(1, 65535)
