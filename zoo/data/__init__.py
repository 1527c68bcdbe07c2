"""Data: data-set layouts, audio decoding, feature extraction with an on-disk cache, packing.

Modules, one job each:

- :mod:`~zoo.data.layout`       opening a data set: ``--layout``, or the registered layout that recognises it
- :mod:`~zoo.data.readers`      the zoo's own data-set readers: embedded, Kaggle, FMA, any audio folder
- :mod:`~zoo.data.synth`        the synthesiser that renders the embedded set
- :mod:`~zoo.data.audio`        decoding any audio file to a checked float32 mono waveform
- :mod:`~zoo.data.labarray`     reading the lab's precomputed ``[140, T]`` arrays (a clip's ``array``)
- :mod:`~zoo.data.multiheader`  reading columns of a CSV whose header spans several rows
- :mod:`~zoo.data.splits`       seeded, stratified validation / test splits and ``--limit`` subsets
- :mod:`~zoo.data.select`       choosing the clips a run uses
- :mod:`~zoo.data.extract`      feature extraction in parallel, cached on disk
- :mod:`~zoo.data.pack`         many ``[F, T_i]`` arrays in one file
- :mod:`~zoo.data.prepare`      a data set and features in, a :class:`~zoo.data.preparedset.Prepared` out
- :mod:`~zoo.data.preparedset`  ``Prepared``: the stacked arrays, splits, labels and targets the engine trains on
- :mod:`~zoo.data.datastats`    what is in a data set: clips per class and split, lengths, targets (``zoo data stats``)
- :mod:`~zoo.data.plots`        pictures of data: class counts, spectrogram / chromagram panels
"""
