"""A tiny model trained once per test session on the embedded set, and audio files to predict.

Training takes most of a minute on a CPU (the tiny embedded set is synthesised, its mel spectrograms
computed, two epochs run), so test_predict.py and test_pyfunc.py share one model through
:func:`trained_model`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datafixtures import music, write_audio

SPEC = "lstm+mel:genre,valence,energy"
EXPERIMENT = "predict-tests"
SETTINGS = {
    "dataset": {"size": "tiny"},
    "backbone": {"hidden": 8, "layers": 1, "bidirectional": False, "dropout": 0.0, "conv_layers": 0},
    "mel": {"n_mels": 32},
    # whole clips, as these tests' window counts expect (the LSTM's recommended crops would make a
    # prediction average 3 s windows)
    "train": {"batch_size": 16, "patience": 0, "crop_frames": 0, "mixup": 0.0, "time_masks": 0, "freq_masks": 0},
}


@dataclass(frozen=True)
class Trained:
    """The trained run: its id, its packaged model folder, its classes, the clip length in seconds."""

    run_id: str
    model_dir: Path
    classes: tuple[str, ...]
    clip_seconds: float


_CACHE: dict[str, Trained] = {}


def trained_model(tmp_path_factory, workspace) -> Trained:
    """Train :data:`SPEC` on the tiny embedded set (tracked in the session's ``workspace``), once."""
    if "model" not in _CACHE:
        import zoo
        from zoo.data.readers.embedded import SIZES
        res = zoo.train(SPEC, settings=SETTINGS, epochs=2, experiment=EXPERIMENT, progress=False,
                        data=zoo.DataRequest(workers=1),
                        out_dir=tmp_path_factory.mktemp("predict-run"), workspace=workspace)
        seed = res.results[0]
        _CACHE["model"] = Trained(seed.run_id, seed.model_dir, res.classes, SIZES["tiny"][1])
    return _CACHE["model"]


def embedded_clips(n: int, workspace) -> list[Path]:
    """The first ``n`` audio files of the tiny embedded set (rendered in ``workspace`` by :func:`trained_model`)."""
    found = sorted(workspace.data_dir.glob("embedded-v1-tiny-seed0/audio/*.wav"))
    assert len(found) >= n, f"the tiny embedded set was not rendered under {workspace.data_dir}"
    return found[:n]


def write_inputs(folder: Path, workspace) -> dict[str, Path]:
    """Audio to predict, good and bad: ``long`` (ogg, three embedded clips end to end), ``mp3``
    (one embedded clip), ``chord`` (1.2 s wav: predicted whole), ``silent``, ``corrupt`` (text
    named .mp3), ``short`` (0.5 s) and ``missing`` (no file)."""
    import soundfile as sf
    clips = [sf.read(str(p), dtype="float32")[0] for p in embedded_clips(3, workspace)]
    sr = 22050
    out = {
        "long": write_audio(folder / "long.ogg", np.concatenate(clips), sr),
        "mp3": write_audio(folder / "clip.mp3", clips[0], sr),
        "chord": write_audio(folder / "chord.wav", music(1.2, seed=3), sr),
        "silent": write_audio(folder / "silent.wav", np.zeros(2 * sr, dtype=np.float32), sr),
        "short": write_audio(folder / "short.wav", music(0.5, seed=4), sr),
    }
    corrupt = folder / "corrupt.mp3"
    corrupt.write_bytes(b"this is no MP3, only text that claims to be one\n" * 100)
    out["corrupt"] = corrupt
    out["missing"] = folder / "missing.flac"
    return out
