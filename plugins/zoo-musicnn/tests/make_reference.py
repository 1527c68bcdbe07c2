"""Run the original musicnn (TensorFlow) on the tests' deterministic audio and save what it computes: the golden file.

Run it with an interpreter that has the reference environment (not the zoo's)::

    python3 -m venv /work/tfref
    /work/tfref/bin/pip install tensorflow-cpu==2.15.1 keras==2.15.0 'numpy<2' 'librosa==0.10.*' soundfile
    /work/tfref/bin/pip install --no-deps musicnn==0.1.0
    /work/tfref/bin/python plugins/zoo-musicnn/tests/make_reference.py plugins/zoo-musicnn/tests/musicnn_reference.npz

(tensorflow-cpu 2.21 with tf-keras runs musicnn too, but its outputs are wrong: pin 2.15.1.)
It writes one ``.npz``: the audio's settings, musicnn's log-mel (``mel [T, 96]``, its
``batch_data``), and per model ``MODEL/taggram [W, 50]`` and, for the musicnn models,
``MODEL/penultimate [W, 200]`` (as the extractor returns it: every row is the first window's,
see :func:`penultimate_windows`), ``MODEL/penultimate_windows [W, 200]`` (every window's own),
``MODEL/mean_pool`` and ``MODEL/max_pool [W, 753]``; for the VGG
models ``MODEL/pool5 [W, 256]`` (W: the non-overlapping 3 s windows). It also records the sha256
of every variable's bytes as TensorFlow's own checkpoint reader returns them
(``MODEL/variables``, JSON), so the zoo's reader of the format is checked against TensorFlow's.
The zoo's tests compare their torch port with this file (``test_musicnn_equality.py``), and run
this script themselves when ``ZOO_MUSICNN_REFERENCE_PYTHON`` names such an interpreter.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refaudio import SECONDS, SR, music  # noqa: E402

MODELS = ("MSD_musicnn", "MTT_musicnn", "MSD_vgg", "MTT_vgg")


def penultimate_windows(tf, ex, model: str, wav: str) -> np.ndarray:
    """musicnn's ``penultimate`` of every window, ``[W, 200]``, from its own graph and checkpoint.

    The extractor's ``features['penultimate']`` repeats the first window's for every later window
    (its loop concatenates the first batch's value again: musicnn 0.1.0, ``extractor.py``), so this
    runs musicnn's ``models.define_model`` on all windows at once, restored as the extractor restores it.
    """
    from musicnn import models

    batch, _ = ex.batch_data(wav, 187, 187)
    tf.compat.v1.reset_default_graph()
    with tf.name_scope("model"):
        x = tf.compat.v1.placeholder(tf.float32, [None, 187, 96])
        is_training = tf.compat.v1.placeholder(tf.bool)
        outputs = models.define_model(x, is_training, model, 50)
    with tf.compat.v1.Session() as sess:
        tf.compat.v1.train.Saver().restore(sess, os.path.join(os.path.dirname(ex.__file__), model) + "/")
        return np.asarray(sess.run(outputs[-1], feed_dict={x: batch, is_training: False}), dtype=np.float32)


def main(out: str) -> None:
    import soundfile as sf
    import tensorflow as tf
    from musicnn import extractor as ex  # musicnn's own front end and network, unchanged

    y = music()
    doc: dict[str, np.ndarray] = {"sr": np.array(SR), "seconds": np.array(SECONDS), "versions": np.array(json.dumps(
        {"tensorflow": tf.__version__, "numpy": np.__version__, "librosa": __import__("librosa").__version__}))}
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "music.wav")
        sf.write(wav, y, SR, subtype="FLOAT")  # read back bit-exact: librosa.load at 16 kHz does not resample it
        _, mel = ex.batch_data(wav, 187, 187)
        doc["mel"] = np.asarray(mel, dtype=np.float32)
        for model in MODELS:
            taggram, _, features = ex.extractor(wav, model=model, input_length=3, extract_features=True)
            doc[f"{model}/taggram"] = np.asarray(taggram, dtype=np.float32)
            keys = ("pool5",) if "vgg" in model else ("penultimate", "mean_pool", "max_pool")
            for key in keys:
                doc[f"{model}/{key}"] = np.asarray(features[key], dtype=np.float32).reshape(taggram.shape[0], -1)
            if "musicnn" in model:
                doc[f"{model}/penultimate_windows"] = penultimate_windows(tf, ex, model, wav)
            reader = tf.compat.v1.train.NewCheckpointReader(os.path.join(os.path.dirname(ex.__file__), model) + "/")
            hashes = {name: hashlib.sha256(np.ascontiguousarray(reader.get_tensor(name)).tobytes()).hexdigest()
                      for name in reader.get_variable_to_shape_map()}
            doc[f"{model}/variables"] = np.array(json.dumps(hashes, sort_keys=True))
    np.savez_compressed(out, **doc)
    print(f"wrote {out}: " + ", ".join(f"{k} {v.shape}" for k, v in doc.items() if v.ndim))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "musicnn_reference.npz")
