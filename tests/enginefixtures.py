"""Small synthetic training data for the engine's tests: a separable ``Prepared`` built in memory.

Three classes of 12-bin arrays (the shape of the chroma feature, so real specs such as
``lstm+chroma:genre`` fit them); class c lifts bins 4c..4c+3. ``valence`` grows with the level of
bins 0-3, so a regression can learn it too. Lengths vary (16-32 frames) to exercise padding.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from zoo.data.preparedset import Prepared

CLASSES = ("calm", "mid", "loud")
TINY_LSTM = {"backbone": {"hidden": 16, "layers": 1, "bidirectional": False, "dropout": 0.0, "conv_layers": 0}}
"""Settings that make the LSTM backbone small enough to train in a second or two on a CPU (one
small layer, no conv front end: the plain recurrence, whose weights only the optimiser moves)."""


def separable(n_per_class: int = 20, *, seed: int = 0, shift: float = 2.0, classes=CLASSES,
              bins: int = 12, with_targets: bool = True) -> Prepared:
    """``n_per_class`` clips per class, split 60/20/20 per class (train/val/test)."""
    rng = np.random.default_rng(seed)
    xs, labels, splits, valence = [], [], [], []
    for c in range(len(classes)):
        for i in range(n_per_class):
            T = int(rng.integers(16, 33))
            x = rng.normal(size=(bins, T)).astype(np.float32)
            x[4 * c % bins: 4 * c % bins + 4] += shift
            level = rng.uniform(-1.5, 1.5)
            x[0:4] += level
            xs.append(x)
            labels.append(c)
            frac = i / n_per_class
            splits.append("train" if frac < 0.6 else "val" if frac < 0.8 else "test")
            valence.append(0.5 + 0.3 * level / 1.5)
    order = rng.permutation(len(xs))
    targets = {"valence": np.asarray(valence, dtype=np.float32)[order]} if with_targets else {}
    return Prepared(
        ids=[f"clip{i:03d}" for i in order], x=[xs[i] for i in order], splits=np.asarray(splits)[order],
        labels=np.asarray(labels, dtype=np.int64)[order], classes=tuple(classes), targets=targets,
        rate="frames", fingerprint=f"separable-{n_per_class}-{seed}-{shift}",
        description=f"separable synthetic set ({n_per_class} per class, seed {seed})",
        feature_slices={"chroma": (0, bins)},
    )


def _slow_backbone_spec():
    """The real LSTM, registered under another name with a config that recommends training settings
    (``train_defaults``), the way a backbone that is slow on a CPU asks for fewer epochs."""
    from dataclasses import dataclass

    import zoo_lstm
    from zoo.protocols import ComponentSpec

    @dataclass(frozen=True)
    class PatientLSTMConfig(zoo_lstm.LSTMConfig):
        train_defaults: ClassVar[dict] = {"epochs": 2, "lr": 0.02}

    return ComponentSpec(kind="backbone", name="patient-lstm", config=PatientLSTMConfig, build=zoo_lstm.build,
                         summary="the LSTM with recommended training settings (tests only)")


patient_lstm = _slow_backbone_spec()
