"""Where a file is cut into analysis windows, and how long a window is by default.

A model sees, in training, clips of a typical length; a longer file is analysed in windows of
that length (half a window apart by default) and the windows' predictions are averaged.
"""
from __future__ import annotations

from typing import Any, Mapping

MIN_SECONDS = 1.0
"""The shortest audio the zoo predicts (the same floor ``zoo.data.audio.load_audio`` applies)."""
FALLBACK_WINDOW_SECONDS = 30.0
"""Window for a packaged model that does not record its training clips' length: the length of
the lab's clips (30 s FMA excerpts)."""
SECONDS_PER_BEAT = 0.5
"""A beat-rate model records its clips' length in beats; 120 beats per minute turns that into
seconds (the tempo of a file is not known before its beats are tracked)."""
_EPS = 1e-6


def default_window_seconds(meta: Mapping[str, Any]) -> tuple[float, str]:
    """``(seconds, why)``: the window the packaged model ``meta`` was trained on.

    A model trained on random crops (``train.crop_frames`` > 0) saw windows of that many steps, and
    its validation and test scores average half-overlapping windows of that size: predicting does
    the same. Otherwise the median training clip. Lengths are in frames (``* hop_length /
    sample_rate``) or beats (``* SECONDS_PER_BEAT``), following ``meta["rate"]``; never below
    :data:`MIN_SECONDS`.
    """
    crop = int((meta.get("train") or {}).get("crop_frames") or 0)
    if crop > 0:
        return _seconds(meta, crop, f"train.crop_frames: the {crop}-{_unit(meta)} window the model was trained on")
    median = (meta.get("lengths") or {}).get("median")
    if not median:
        return FALLBACK_WINDOW_SECONDS, "the model records no training clip length: the lab's 30 s"
    return _seconds(meta, median, f"median training clip: {median} {_unit(meta)}s"
                                  + (" at 120 BPM" if meta.get("rate") == "beats" else ""))


def _unit(meta: Mapping[str, Any]) -> str:
    return "beat" if meta.get("rate") == "beats" else "frame"


def _seconds(meta: Mapping[str, Any], steps: float, why: str) -> tuple[float, str]:
    """``steps`` frames or beats of ``meta``'s rate in seconds, never below :data:`MIN_SECONDS`."""
    if meta.get("rate") == "beats":
        seconds = float(steps) * SECONDS_PER_BEAT
    else:
        seconds = float(steps) * int(meta["hop_length"]) / int(meta["sample_rate"])
    return max(MIN_SECONDS, round(seconds, 3)), why


def window_spans(duration: float, window: float, hop: float) -> list[tuple[float, float]]:
    """``[(start, end), ...]`` seconds covering ``duration``.

    A file no longer than ``window`` is one span (the whole file). Otherwise spans of ``window``
    start every ``hop`` seconds; when they stop short of the end, one more span ends exactly at
    the end, so the tail of the file is never left out.
    """
    if duration <= window + _EPS:
        return [(0.0, float(duration))]
    spans = []
    start = 0.0
    while start + window <= duration + _EPS:
        spans.append((start, start + window))
        start += hop
    if spans[-1][1] < duration - _EPS:
        spans.append((duration - window, float(duration)))
    return [(round(s, 6), round(e, 6)) for s, e in spans]
