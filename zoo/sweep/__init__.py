"""Hyper-parameter search (``zoo sweep``): many zoo runs of one composition on Ray Tune, nested under one MLflow run.

``space`` reads the ``--param`` grammar (no Ray), ``driver`` checks a plan, prepares the features
once and runs the trials, ``trial`` is one trial in a Ray worker. Ray is imported only when a
sweep runs (``pip install "music-zoo[sweep]"``).
"""
from __future__ import annotations

from .space import Param, parse_param, parse_params

__all__ = ["Param", "parse_param", "parse_params"]
