"""Summaries over seeds: mean, sample standard deviation and the 95 % Student-t interval."""
from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence


def t_interval(values: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
    """``{"mean", "std", "half_width", "n"}`` of ``values`` (NaNs ignored).

    ``half_width`` is ``t_{(1+confidence)/2, n-1} * std / sqrt(n)``: the mean lies in
    ``mean ± half_width`` with the given confidence if the values are roughly normal. It is NaN
    for fewer than two values (one seed says nothing about the spread).
    """
    xs = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    n = len(xs)
    if n == 0:
        return {"mean": float("nan"), "std": float("nan"), "half_width": float("nan"), "n": 0}
    mean = sum(xs) / n
    if n < 2:
        return {"mean": mean, "std": float("nan"), "half_width": float("nan"), "n": 1}
    from scipy.stats import t
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = float(t.ppf((1 + confidence) / 2, n - 1)) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "half_width": half, "n": n}


def summarise(per_seed: Iterable[Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Per metric name, the :func:`t_interval` over the seeds that report it."""
    rows = list(per_seed)
    keys = sorted({k for r in rows for k in r})
    return {k: t_interval([r[k] for r in rows if k in r]) for k in keys}


def plus_minus(s: Mapping[str, float], digits: int = 3) -> str:
    """``0.412 ± 0.018`` (or just the mean when the spread is unknown)."""
    if math.isnan(s.get("mean", float("nan"))):
        return "n/a"
    spread = s.get("half_width", float("nan"))
    return f"{s['mean']:.{digits}f}" + ("" if math.isnan(spread) else f" ± {spread:.{digits}f}")
