"""The training engine on small synthetic data: it learns, stops, restores, packages, and fails loudly."""
from __future__ import annotations

import importlib.metadata as md
import json
import math

import numpy as np
import pytest
import torch

from enginefixtures import CLASSES, TINY_LSTM, separable
from zoo.model.building import build_components
from zoo.spec import parse_spec
from zoo.engine.batches import Normaliser, make_split, make_splits, random_batches, task_targets
from zoo.engine.trainconfig import TrainConfig, train_config, with_overrides
from zoo.engine.device import pick_device
from zoo.engine.metrics import predict_split, split_metrics
from zoo.engine.package import META_FILE, WEIGHTS_FILE, load_model, read_meta
from zoo.engine.request import RunRequest, SeedPlan
from zoo.engine.runner import run
from zoo.engine.intervals import summarise, t_interval
from zoo.errors import ConfigError, DataError, PluginError, RunError
from zoo.registry import Registry

FAST = dict(batch_size=16, lr=1e-2, patience=0, warmup=0.0)


@pytest.fixture(scope="module")
def registry():
    return Registry()


def train_quick(spec, prepared, tmp_path, registry, *, settings=TINY_LSTM, **config):
    return run(RunRequest(spec, settings=settings, train=TrainConfig(**{**FAST, **config}), data=prepared,
                          out_dir=tmp_path), registry=registry)


# -- batches and normalisation ------------------------------------------------------------------
def test_normaliser_matches_numpy_over_all_frames():
    rng = np.random.default_rng(1)
    arrays = [rng.normal(3.0, 2.0, size=(5, int(t))).astype(np.float32) for t in rng.integers(3, 20, size=7)]
    arrays[0][2] = 0.0
    for a in arrays:
        a[4] = 7.0  # a constant bin
    norm = Normaliser.fit(arrays)
    frames = np.concatenate(arrays, axis=1).astype(np.float64)
    np.testing.assert_allclose(norm.mean, frames.mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(norm.std[:4], frames.std(axis=1)[:4], rtol=1e-4)
    assert norm.std[4] == 1.0  # constant bins keep their scale instead of dividing by ~0
    again = Normaliser.from_json(json.loads(json.dumps(norm.to_json())))
    np.testing.assert_allclose(again.apply(arrays[1]), norm.apply(arrays[1]))


def test_random_batches_cover_every_row_once_and_bucketing_pads_less():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 200, size=65)
    for bucket in (False, True):
        chunks = list(random_batches(lengths, 16, np.random.default_rng(3), bucket))
        rows = np.concatenate(chunks)
        assert sorted(rows.tolist()) == list(range(65))
        assert min(len(c) for c in chunks) > 1  # the single leftover row joined the previous batch

    def padding(chunks):
        return sum(int(lengths[c].max()) * len(c) - int(lengths[c].sum()) for c in chunks)

    plain = padding(random_batches(lengths, 16, np.random.default_rng(3), False))
    bucketed = padding(random_batches(lengths, 16, np.random.default_rng(3), True))
    assert bucketed < plain / 2


def test_split_batches_are_cut_to_their_longest_clip_resident_or_not():
    prepared = separable(5)
    tasks = build_components(parse_spec("lstm+chroma:genre,valence"), Registry()).tasks
    norm = Normaliser.fit([prepared.x[i] for i in prepared.indices("train")])
    targets = task_targets(prepared, tasks)
    rows = prepared.indices("train")
    resident = make_split("train", prepared, rows, targets, norm, torch.device("cpu"))
    streamed = make_split("train", prepared, rows, targets, norm, torch.device("cpu"), budget=0)
    assert resident.resident and not streamed.resident
    pick = np.array([0, 3, 5])
    a, b = resident.batch(pick), streamed.batch(pick)
    longest = max(prepared.x[rows[i]].shape[1] for i in pick)
    assert a.x.shape == (3, 12, longest)
    torch.testing.assert_close(a.x, b.x)
    assert a.lengths.tolist() == [prepared.x[rows[i]].shape[1] for i in pick]
    assert a.y["genre"].tolist() == prepared.labels[rows[pick]].tolist()
    first = norm.apply(prepared.x[rows[0]])
    np.testing.assert_allclose(a.x[0, :, : first.shape[1]].numpy(), first, rtol=1e-6)
    assert float(a.x[0, :, first.shape[1]:].abs().sum()) == 0.0  # padding stays zero


def test_missing_split_and_missing_target_are_errors_that_say_what_to_do():
    prepared = separable(5)
    prepared.splits[prepared.splits == "test"] = "train"
    tasks = build_components(parse_spec("lstm+chroma:genre"), Registry()).tasks
    norm = Normaliser.fit(prepared.x)
    with pytest.raises(DataError, match=r"'test' split is empty.*--limit"):
        make_splits(prepared, tasks, norm, torch.device("cpu"))
    no_targets = separable(3, with_targets=False)
    tasks = build_components(parse_spec("lstm+chroma:energy"), Registry()).tasks
    with pytest.raises(DataError, match=r"regresses 'energy'.*no 'energy' values"):
        task_targets(no_targets, tasks)


# -- configuration and device ---------------------------------------------------------------------
def test_train_config_layers_and_typed_overrides():
    config = train_config({"lr": "0.5", "epochs": "3"}, {"epochs": 4, "schedule": "plateau"})
    assert (config.lr, config.epochs, config.schedule) == (0.5, 4, "plateau")
    assert with_overrides(config, batch_size=8, lr=None).batch_size == 8
    with pytest.raises(ConfigError, match="unknown setting 'epoch'.*did you mean 'epochs'"):
        train_config({"epoch": 1})
    with pytest.raises(ConfigError, match="'cosine', 'plateau', 'none'"):
        train_config({"schedule": "linear"})


def test_device_choice_follows_what_torch_sees():
    assert pick_device("cpu").type == "cpu"
    if torch.cuda.is_available():
        assert pick_device("auto").type == "cuda"
    else:
        assert pick_device("auto").type == "cpu"
        with pytest.raises(ConfigError, match="no CUDA GPU.*--device cpu"):
            pick_device("cuda")
    with pytest.raises(ConfigError, match="'auto', 'cpu', 'cuda'"):
        pick_device("tpu")


def test_cpu_threads_are_the_usable_cores_unless_set(monkeypatch):
    import os
    from zoo.engine import device as device_module
    before = torch.get_num_threads()
    # The load average no longer matters: a busy machine at start does not cost a core for the whole run.
    monkeypatch.setattr(os, "getloadavg", lambda: (7.0, 7.0, 7.0))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 2, 5}, raising=False)
    try:
        assert device_module.usable_cores() == 3
        auto = pick_device("cpu")
        assert torch.get_num_threads() == 3 and not auto.threads_set
        assert auto.describe() == "cpu (fp32, 3 threads: one per usable core)"
        chosen = pick_device("cpu", threads=1)
        assert torch.get_num_threads() == 1 and chosen.threads_set
        assert chosen.describe() == "cpu (fp32, 1 thread set by train.threads, 3 usable cores)"
    finally:
        torch.set_num_threads(before)


# -- training ----------------------------------------------------------------------------------------
def test_classification_learns_far_above_chance(tmp_path, registry):
    res = train_quick("lstm+chroma:genre", separable(20), tmp_path, registry, epochs=12)
    history = res.history
    assert history[-1]["train.loss"] < 0.5 * history[0]["train.loss"]
    assert res.test["genre.accuracy"] >= 0.8  # chance is 1/3
    assert set(res.test) == {"genre.accuracy", "genre.macro_f1", "genre.weighted_f1"}
    files = res.reports
    assert "calm" in files["classification_report"].read_text()
    for key in ("confusion_genre", "curves", "metrics"):
        assert files[key].stat().st_size > 0
    doc = json.loads(files["metrics"].read_text())
    assert doc["metrics"]["genre"]["accuracy"] == pytest.approx(res.test["genre.accuracy"])
    assert set(doc["per_class"]["genre"]["report"]) >= set(CLASSES) | {"macro avg", "weighted avg"}


def test_regression_learns_a_positive_rank_correlation(tmp_path, registry):
    settings = {**TINY_LSTM, "valence": {"loss": "mse"}}
    res = train_quick("lstm+chroma:valence", separable(20), tmp_path, registry, settings=settings, epochs=12)
    assert res.test["valence.spearman"] > 0.5
    assert {"valence.mae", "valence.mse", "valence.r2", "valence.pearson", "valence.ccc"} <= set(res.test)
    assert res.reports["scatter_valence"].stat().st_size > 0
    assert "classification_report" not in res.reports


def test_early_stopping_and_the_best_weights_are_restored(tmp_path, registry):
    prepared = separable(10)
    frozen = train_quick("lstm+chroma:genre", prepared, tmp_path, registry, epochs=6, lr=1e-12, patience=2)
    # lr 1e-12 (0 is refused) cannot move a float32 weight: the metric never improves after epoch 1,
    # so training stops after 1 + patience epochs.
    r = frozen.results[0]
    assert (r.stopped_early, r.best_epoch, len(r.history)) == (True, 1, 3)
    moving = train_quick("lstm+chroma:genre", prepared, tmp_path, registry, epochs=5, lr=3e-2)
    r = moving.results[0]
    assert r.val["genre.accuracy"] == pytest.approx(r.history[r.best_epoch - 1]["val.genre.accuracy"])
    assert r.val["genre.accuracy"] == max(h["val.genre.accuracy"] for h in r.history)


def test_same_seed_same_result_other_seed_other_result(tmp_path, registry):
    prepared = separable(8)
    runs = [run(RunRequest("lstm+chroma:genre", settings=TINY_LSTM, train=TrainConfig(**FAST, epochs=2),
                           data=prepared, seeds=SeedPlan(first=s), out_dir=tmp_path), registry=registry)
            for s in (5, 5, 6)]
    assert runs[0].history[-1]["train.loss"] == runs[1].history[-1]["train.loss"]
    assert runs[0].history[-1]["train.loss"] != runs[2].history[-1]["train.loss"]


def test_overfit_batches_reaches_near_zero_loss_and_says_when_it_does_not(tmp_path, registry):
    prepared = separable(10)
    ok = train_quick("lstm+chroma:genre", prepared, tmp_path, registry, overfit_batches=1, overfit_epochs=300,
                     overfit_loss=0.02, lr=2e-2, settings={"backbone": {"hidden": 32, "layers": 1}, "genre": {"dropout": 0.0}})
    o = ok.overfit
    assert o["reached"] and o["final_loss"] < 0.02 < o["first_loss"]
    assert ok.ok and ok.test == {} and o["batches"] == 1 and o["clips"] == 16
    short = train_quick("lstm+chroma:genre", prepared, tmp_path, registry, overfit_batches=2, overfit_epochs=2,
                        overfit_loss=1e-9)
    assert short.overfit["reached"] is False and short.overfit["epochs"] == 2 and not short.ok


def test_a_diverging_run_raises_a_clear_error(tmp_path, registry):
    prepared = separable(5)
    prepared.x[prepared.indices("train")[0]][:, :] = np.nan
    with pytest.raises(RunError, match=r"training loss became nan in epoch 1.*lower the learning rate"):
        train_quick("lstm+chroma:genre", prepared, tmp_path, registry, epochs=2)


def test_data_that_does_not_fit_the_composition_is_refused(tmp_path, registry):
    with pytest.raises(DataError, match="needs frames-rate input of 128 bins"):
        train_quick("lstm+mel:genre", separable(5), tmp_path, registry, epochs=1)


def test_task_weights_must_match_the_tasks(tmp_path, registry):
    with pytest.raises(ConfigError, match=r"task_weights has 1 value.*2 task"):
        train_quick("lstm+chroma:genre,valence", separable(5), tmp_path, registry, epochs=1, task_weights=(1.0,))


# -- seeds summary ------------------------------------------------------------------------------------
def test_t_interval_agrees_with_scipy():
    from scipy import stats as st
    values = [0.41, 0.38, 0.45, 0.40, 0.43]
    s = t_interval(values)
    lo, hi = st.t.interval(0.95, df=len(values) - 1, loc=np.mean(values), scale=st.sem(values))
    assert s["mean"] == pytest.approx(np.mean(values))
    assert s["std"] == pytest.approx(np.std(values, ddof=1))
    assert s["half_width"] == pytest.approx((hi - lo) / 2)
    one = t_interval([0.5])
    assert one["mean"] == 0.5 and math.isnan(one["half_width"]) and one["n"] == 1
    rows = summarise([{"a": 1.0, "b": 2.0}, {"a": 3.0}])
    assert rows["a"]["n"] == 2 and rows["b"]["n"] == 1 and rows["a"]["mean"] == 2.0


# -- packaging --------------------------------------------------------------------------------------
def test_packaged_model_round_trips_through_the_registry(tmp_path, registry):
    prepared = separable(6)
    res = train_quick("lstm+chroma:genre,valence", prepared, tmp_path, registry, epochs=2)
    folder = res.results[0].model_dir
    assert (folder / META_FILE).is_file() and (folder / WEIGHTS_FILE).is_file()
    meta = read_meta(folder)
    assert meta["spec"] == "lstm+chroma:genre,valence" and meta["classes"] == list(CLASSES)
    assert meta["providers"]["backbone.lstm"] == f"music-zoo-lstm=={md.version('music-zoo-lstm')}"
    assert meta["configs"]["backbone"]["hidden"] == 16 and meta["settings"]["backbone"]["hidden"] == 16
    # the backbone's head_defaults are part of what the model is rebuilt from
    assert meta["configs"]["task"]["genre"]["pooling"] == "meanstd"
    assert meta["feature_settings"]["chroma"] and len(meta["normalisation"]["mean"]) == 12
    assert meta["tasks"]["valence"] == {"kind": "regression", "target": "valence", "classes": [],
                                       "primary_metric": "spearman", "greater_is_better": True}
    assert meta["metrics"]["test"]["genre.accuracy"] == pytest.approx(res.test["genre.accuracy"])
    model, loaded = load_model(folder, registry)
    original = res.model.eval()
    test = make_split("test", prepared, prepared.indices("test"), task_targets(prepared, model.tasks),
                      Normaliser.from_json(loaded["normalisation"]), torch.device("cpu"))
    device = pick_device("cpu")
    a, b = predict_split(original, test, device), predict_split(model, test, device)
    for task in ("genre", "valence"):
        np.testing.assert_allclose(a.pred[task], b.pred[task], rtol=1e-5, atol=1e-6)
    assert split_metrics(model, b)["genre"]["accuracy"] == pytest.approx(res.test["genre.accuracy"])


def test_a_model_saved_before_a_setting_existed_rebuilds_with_its_former_default(tmp_path, registry):
    """An LSTM packaged before ``conv_layers`` existed (a plain LSTM, its meta without the conv_*
    settings) rebuilds as a plain LSTM whatever today's default is: ``LSTMConfig.former_defaults``."""
    import zoo_lstm

    from zoo.config import with_former_defaults
    assert zoo_lstm.LSTMConfig.former_defaults == {"conv_layers": 0}
    assert with_former_defaults(zoo_lstm.LSTMConfig, {"hidden": 8}) == {"conv_layers": 0, "hidden": 8}
    assert with_former_defaults(zoo_lstm.LSTMConfig, {"conv_layers": 2})["conv_layers"] == 2
    prepared = separable(5)
    res = train_quick("lstm+chroma:genre", prepared, tmp_path, registry, epochs=1,
                      settings={"backbone": {"hidden": 16, "conv_layers": 0}})
    folder = res.results[0].model_dir
    meta = json.loads((folder / META_FILE).read_text())
    for key in [k for k in meta["configs"]["backbone"] if k.startswith("conv_")]:
        del meta["configs"]["backbone"][key]
    (folder / META_FILE).write_text(json.dumps(meta))
    model, _ = load_model(folder, registry)
    assert model.backbone.frontend is None and model.backbone.rnn.input_size == 12
    for name, value in res.model.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], value)


def test_loading_a_model_whose_plugin_is_missing_names_the_distribution(tmp_path, registry):
    res = train_quick("lstm+chroma:genre", separable(5), tmp_path, registry, epochs=1)
    core_only = Registry(autoload=False)
    with pytest.raises(PluginError, match=r"needs backbone 'lstm' from music-zoo-lstm==.*pip install"):
        load_model(res.results[0].model_dir, core_only)


# -- compositions of Python objects and transfer -------------------------------------------------
def test_a_composition_of_python_objects_trains_and_is_marked_not_rebuildable(tmp_path, registry):
    from torch import nn

    from zoo.api import compose
    from zoo.protocols import BackboneOutput

    class MeanPool(nn.Module):
        """A deliberately simple backbone: a linear map of each frame, averaged over the true length."""

        def __init__(self, n_bins: int, out_dim: int = 8):
            super().__init__()
            self.out_dim = out_dim
            self.lin = nn.Linear(n_bins, out_dim)

        def forward(self, x, lengths):
            h = self.lin(x.transpose(1, 2))
            return BackboneOutput(h, lengths)

    chroma = registry.create("feature", "chroma")
    genre = registry.create("task", "genre")
    built = compose([MeanPool(12), chroma, genre])
    assert (built.n_bins, built.rate, str(built.composition)) == (12, "frames", "meanpool+chroma:genre")
    assert built.providers["feature.chroma"].startswith("music-zoo-features==")
    res = run(RunRequest(built, train=TrainConfig(**FAST, epochs=40), data=separable(15), out_dir=tmp_path),
              registry=registry)
    assert res.test["genre.accuracy"] >= 0.8
    with pytest.raises(RunError, match="composed from Python objects"):
        load_model(res.results[0].model_dir, registry)


def test_transfer_copies_the_backbone_and_freezing_keeps_it(tmp_path, registry):
    from zoo.engine.transfer import source_from_folder
    prepared = separable(8)
    genre = train_quick("lstm+chroma:genre", prepared, tmp_path, registry, epochs=2)
    source = source_from_folder(genre.results[0].model_dir, "backbone", label="the genre model")
    # The backbone settings come from the source.
    res = run(RunRequest("lstm+chroma:valence", train=TrainConfig(**FAST, epochs=2), data=prepared, out_dir=tmp_path,
                         transfer=source), registry=registry)
    src = torch.load(source.folder / WEIGHTS_FILE, weights_only=True)
    for k, v in res.model.backbone.state_dict().items():
        torch.testing.assert_close(v, src[f"backbone.{k}"])
    assert all(not p.requires_grad for p in res.model.backbone.parameters())
    with pytest.raises(ConfigError, match="differs from the transfer source's hidden=16"):
        run(RunRequest("lstm+chroma:valence", settings={"backbone": {"hidden": 32}},
                       train=TrainConfig(**FAST, epochs=1), data=prepared, out_dir=tmp_path, transfer=source),
            registry=registry)
    from zoo.errors import SpecError
    with pytest.raises(SpecError, match="its backbone is 'lstm'"):
        run(RunRequest("cnn+chroma:valence", train=TrainConfig(**FAST, epochs=1), data=prepared, out_dir=tmp_path,
                       transfer=source), registry=registry)


def test_partly_labelled_multitask_data_trains_without_nan(tmp_path, registry):
    prepared = separable(10)
    rows = prepared.indices("train")
    prepared.labels[rows[: len(rows) // 2]] = -1  # half the training clips have no genre ...
    prepared.targets["valence"][rows[len(rows) // 2:]] = np.nan  # ... the other half no valence
    res = train_quick("lstm+chroma:genre,valence", prepared, tmp_path, registry, epochs=3, batch_size=2,
                      bucket=True)
    assert all(math.isfinite(h["train.loss"]) for h in res.history)
    assert all(math.isfinite(v) for v in res.test.values())
