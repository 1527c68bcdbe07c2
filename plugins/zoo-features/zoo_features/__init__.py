"""Music Zoo's built-in features: ``mel``, ``chroma`` and the beat-synchronous ``beat``, ``beat-chroma``.

Components are registered through the ``music_zoo.features`` entry points (see
:mod:`zoo_features.specs`); nothing here runs or imports librosa until a feature computes.
"""
