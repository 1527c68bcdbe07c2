"""Unbalanced classes: the lab-shaped embedded set, a collapse seen in macro F1, train.balance countering it."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from enginefixtures import TINY_LSTM
from zoo.data.preparedset import Prepared
from zoo.data.readers.embedded import EmbeddedConfig, EmbeddedDataset, kept, plan
from zoo.engine.request import RunRequest
from zoo.engine.runner import run
from zoo.engine.trainconfig import TrainConfig
from zoo.errors import ConfigError
from zoo.registry import Registry


def test_the_lab_shaped_embedded_set_has_its_largest_class_near_30_percent_and_every_split_per_genre():
    config = EmbeddedConfig(size="small", balance="lab")
    ids = kept(config)
    genres = Counter(cid.rsplit("-", 1)[0] for cid in ids)
    assert 0.27 <= max(genres.values()) / len(ids) <= 0.33
    assert min(genres.values()) >= 3 and len(genres) == 10
    splits = {(g.lower(), s) for cid, g, s in plan(config) if cid in ids}
    assert len(splits) == 30  # every genre keeps a train, a val and a test clip
    assert kept(EmbeddedConfig(size="small")) is None
    # the same rendered clips: the folder is the even set's, only fewer clips are used
    assert EmbeddedDataset(config, "/nonexistent").folder.name == EmbeddedConfig(size="small").folder_name
    with pytest.raises(ConfigError, match="balance"):
        Registry().create("dataset", "embedded", {"balance": "skewed"}, "/nonexistent")


def unbalanced(counts=(60, 6, 6), shift=0.7, seed=0) -> Prepared:
    """Three classes of 12-bin arrays, 10:1:1, each lifting its own 4 bins a little (hard to see)."""
    rng = np.random.default_rng(seed)
    xs, labels, splits = [], [], []
    for c, n in enumerate(counts):
        for i in range(n):
            x = rng.normal(size=(12, 20)).astype(np.float32)
            x[4 * c: 4 * c + 4] += shift
            xs.append(x)
            labels.append(c)
            splits.append("train" if i / n < 0.6 else "val" if i / n < 0.8 else "test")
    return Prepared(ids=[f"c{i:03d}" for i in range(len(xs))], x=xs, splits=np.asarray(splits),
                    labels=np.asarray(labels, dtype=np.int64), classes=("big", "small", "rare"), targets={},
                    rate="frames", fingerprint=f"unbalanced-{counts}-{shift}-{seed}",
                    description="unbalanced synthetic set (10:1:1)", feature_slices={"chroma": (0, 12)})


def test_a_collapse_onto_the_largest_class_shows_in_macro_f1_and_class_weights_counter_it(tmp_path):
    registry = Registry()

    def train(balance):
        config = TrainConfig(batch_size=16, lr=1e-2, patience=0, warmup=0.0, epochs=12, balance=balance)
        return run(RunRequest("lstm+chroma:genre", settings=TINY_LSTM, train=config, data=unbalanced(),
                              out_dir=tmp_path), registry=registry).test

    plain = train("none")
    # accuracy looks fine because the big class is 5 in 6 of the test clips; macro F1 shows the collapse
    assert plain["genre.accuracy"] >= 0.8 and plain["genre.macro_f1"] < 0.5
    weighted = train("weights")
    assert weighted["genre.macro_f1"] >= plain["genre.macro_f1"] + 0.3
    sampled = train("sampler")
    assert sampled["genre.macro_f1"] >= plain["genre.macro_f1"] + 0.2
    # the default, auto, is the class weights when there is a classification task
    assert TrainConfig().balance == "auto"
    assert train("auto") == weighted
