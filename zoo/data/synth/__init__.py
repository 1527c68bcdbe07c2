"""The synthesiser behind the embedded data set: a genre and a seed in, a waveform and its targets out.

Modules, one job each:

- :mod:`~zoo.data.synth.sounds`  oscillators, plucked strings, drums and effects (pure numpy/scipy)
- :mod:`~zoo.data.synth.styles`  the genres: what each tends to play, one clip's drawn choices, targets
- :mod:`~zoo.data.synth.score`   composing those choices into notes and rendering them to audio

What the embedded set needs is importable from here; everything else lives in its module.
"""
from __future__ import annotations

from .score import SOUNDS, render_clip
from .styles import GENRES, GROOVE, MODE_VALENCE, Recipe, sample_recipe, targets

__all__ = ["GENRES", "GROOVE", "MODE_VALENCE", "Recipe", "SOUNDS", "render_clip", "sample_recipe", "targets"]
