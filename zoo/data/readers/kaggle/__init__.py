"""The lab's Kaggle data set ("patreco3-multitask-affective-music") as a zoo data set.

- :mod:`~zoo.data.readers.kaggle.dataset`  the reader: clips, splits, the lab's class mapping
- :mod:`~zoo.data.readers.kaggle.files`    the set's files: its four parts, label files and arrays

The ``music_zoo.datasets`` entry point ``kaggle`` names :data:`spec` here.
"""
from __future__ import annotations

from .dataset import LAB_MAPPING, KaggleConfig, KaggleDataset, MappingReport, detect, spec

__all__ = ["LAB_MAPPING", "KaggleConfig", "KaggleDataset", "MappingReport", "detect", "spec"]
