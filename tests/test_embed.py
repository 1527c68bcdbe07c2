"""Latent maps (``zoo embed``): the layer before the output, projected to 2-D, saved and logged to the run."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

import zoo
from datafixtures import write_kaggle
from enginefixtures import TINY_LSTM, separable
from zoo.cli import main
from zoo.errors import ConfigError
from zoo.engine.request import DataRequest
from zoo.lab.embed import LatentMapRequest, embeddings, latent_maps
from zoo.lab.project import project

FAST = {**TINY_LSTM, "train": {"batch_size": 8, "lr": 0.01, "patience": 0, "warmup": 0.0}}
EXPERIMENT = "embed-tests"


@pytest.fixture(scope="module")
def kaggle_run(tmp_path_factory, workspace):
    """A genre model trained (and tracked) on a small Kaggle-layout set: its data source is recorded."""
    root = tmp_path_factory.mktemp("kaggle-embed")
    write_kaggle(root, train_per_genre=5, test_per_genre=2)
    res = zoo.train("lstm+chroma:genre", data=str(root), settings=FAST, epochs=2, track=True, experiment=EXPERIMENT,
                    progress=False, workspace=workspace)
    return root, res


def read_rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_embed_cli_maps_the_runs_own_clips_and_logs_png_and_csv(kaggle_run, tmp_path, capsys, zoo_env, workspace):
    root, res = kaggle_run
    out = tmp_path / "maps"
    code = main(["embed", res.run_id, "--method", "pca,tsne", "--split", "all", "--out", str(out), "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    # The recorded source gave back exactly the training data.
    assert "not the model's training data" not in printed and "differs" not in printed
    assert f"logged to run {res.run_id} under embeddings/" in printed
    for method in ("pca", "tsne"):
        png, table = out / f"{method}-genre-all.png", out / f"{method}-genre-all.csv"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        rows = read_rows(table)
        assert len(rows) == res.data["clips"]  # every clip the model was trained and tested on
        counts = {s: sum(r["split"] == s for r in rows) for s in ("train", "val", "test")}
        assert counts == res.data["counts"]
        assert {r["label"] for r in rows} == set(res.classes)
        xy = np.array([[float(r["x"]), float(r["y"])] for r in rows])
        assert np.isfinite(xy).all() and xy.std(axis=0).min() > 0
    logged = {f.path for f in MlflowClient(workspace.tracking_uri).list_artifacts(res.run_id, "embeddings")}
    assert logged == {f"embeddings/{m}-genre-all.{ext}" for m in ("pca", "tsne") for ext in ("png", "csv")}


def test_embed_explains_what_it_cannot_do(kaggle_run, tmp_path, workspace, zoo_env):
    root, res = kaggle_run
    with pytest.raises(ConfigError, match="--color valence: .* offers genre"):
        latent_maps(res.run_id, color="valence", out_dir=tmp_path, log=False, workspace=workspace)
    with pytest.raises(ConfigError, match="projection method 'pcaa'.*did you mean 'pca'"):
        LatentMapRequest(res.run_id, methods=["pcaa"], out_dir=tmp_path, log=False)
    with pytest.raises(ConfigError, match="split 'holdout': use one of train, val, test, all"):
        LatentMapRequest(res.run_id, split="holdout")
    with pytest.raises(ConfigError, match="task 'valence': the model lstm\\+chroma:genre has tasks genre"):
        latent_maps(LatentMapRequest(res.run_id, task="valence", out_dir=tmp_path, log=False), workspace=workspace)
    assert main(["embed", res.run_id, "--set", "backbone.hidden=3", "--out", str(tmp_path)]) == 2


def test_embeddings_are_the_input_of_the_output_layer_and_maps_colour_by_a_target(tmp_path, workspace):
    prepared = separable(6)
    res = zoo.train("lstm+chroma:genre,valence", data=prepared, settings=FAST, epochs=2, track=False,
                    progress=False, out_dir=tmp_path)
    model, meta = zoo.load(res)
    rows = prepared.indices("test")
    z = embeddings(model, meta, prepared, rows, task="valence", device="cpu")
    # the LSTM's heads pool mean and standard deviation (its head_defaults): twice its width
    assert z.shape == (len(rows), 2 * model.backbone.out_dim)
    # Feeding the embedding to the valence output layer must give the model's own valence output.
    from zoo.engine.batches import Normaliser, make_split
    split = make_split("test", prepared, rows, {}, Normaliser.from_json(meta["normalisation"]), torch.device("cpu"))
    batch = split.batch(np.arange(len(rows)))
    with torch.inference_mode():
        direct = model(batch.x, batch.lengths)["valence"]
        via = model.heads["valence"].output(torch.from_numpy(z))
    torch.testing.assert_close(via, direct, rtol=1e-4, atol=1e-5)
    # In-memory data cannot be prepared again from the run; given again, it maps by valence.
    with pytest.raises(ConfigError, match="trained on data handed over in memory|no recorded data source"):
        latent_maps(res, out_dir=tmp_path, log=False, workspace=workspace)
    (m,) = latent_maps(LatentMapRequest(res, data=DataRequest(prepared=prepared), color="valence", split="all",
                                        out_dir=tmp_path, log=False), workspace=workspace)
    assert (m.color, m.clips, m.logged) == ("valence", len(prepared), False)
    values = [float(r["valence"]) for r in read_rows(m.csv)]
    np.testing.assert_allclose(sorted(values), sorted(prepared.targets["valence"].tolist()), rtol=1e-5)


def test_projections_keep_structure_and_handle_few_clips():
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=10, size=(3, 20))
    z = np.vstack([c + rng.normal(size=(8, 20)) for c in centres])
    for method in ("pca", "tsne"):
        xy = project(z, method)
        assert xy.shape == (24, 2)
        # Points of one cluster stay closer to each other than to the other clusters.
        d = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
        same = np.kron(np.eye(3), np.ones((8, 8))).astype(bool)
        assert d[same].mean() < d[~same].mean() / 2
    assert project(z[:4], "tsne").shape == (4, 2)  # perplexity shrinks below the number of clips
    with pytest.raises(ConfigError, match="at least 3 clips"):
        project(z[:2], "pca")


@pytest.mark.slow
def test_umap_projection_separates_clusters():
    rng = np.random.default_rng(1)
    z = np.vstack([c + rng.normal(size=(15, 8)) for c in rng.normal(scale=8, size=(2, 8))])
    xy = project(z, "umap")
    assert xy.shape == (30, 2)
    a, b = xy[:15].mean(axis=0), xy[15:].mean(axis=0)
    spread = max(xy[:15].std(axis=0).max(), xy[15:].std(axis=0).max())
    assert np.linalg.norm(a - b) > 2 * spread
