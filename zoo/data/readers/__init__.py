"""The zoo's own data-set readers, each registered as a ``music_zoo.datasets`` entry point.

- :mod:`~zoo.data.readers.embedded`  music the zoo synthesises itself (the default set)
- :mod:`~zoo.data.readers.kaggle`    the lab's Kaggle set of precomputed ``[140, T]`` arrays
- :mod:`~zoo.data.readers.fma`       the Free Music Archive: metadata CSVs plus MP3s
- :mod:`~zoo.data.readers.folder`    any folder of audio: label sub-folders or a CSV manifest

They register exactly as a third party's reader would (see ``pyproject.toml``), and
:mod:`zoo.data.layout` finds them through the registry, never by importing this package.
"""
