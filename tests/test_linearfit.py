"""Linear heads fitted to convergence on the ``stats`` backbone: scikit-learn's answers on the same arrays.

The zoo and scikit-learn see the same clips: the zoo through ``zoo.engine.runner.run`` (its
normalisation, its backbone, its fit), scikit-learn through numpy's per-bin mean, standard deviation
and mean absolute difference of the raw arrays, standardised by a ``StandardScaler`` fitted on the
training clips. (The zoo standardises each bin before pooling; that moves and scales every statistic
by a per-column constant, which the scaler undoes, so both fit the same inputs.)
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import spearmanr

from zoo.data.preparedset import Prepared
from zoo.engine import linearfit
from zoo.engine.reporting import ConsoleReporter
from zoo.engine.request import RunRequest, SeedPlan
from zoo.engine.runner import run
from zoo.engine.trainconfig import TrainConfig
from zoo.registry import Registry


@pytest.fixture(scope="module")
def registry():
    return Registry()


def gaussian_set(n_per_class: int = 50, n_classes: int = 4, bins: int = 12, *, seed: int = 0, shift: float = 0.35,
                 fractions: tuple[float, float] = (0.6, 0.2), noise_bins: int = 0) -> Prepared:
    """``n_per_class`` clips per class of ``[bins + noise_bins, T]`` Gaussian frames (T from 12 to 60):
    class c moves every informative bin's level and spread by its own random offsets (``shift`` their
    size, so the classes overlap); ``noise_bins`` more bins carry nothing. ``valence`` is a noisy
    linear function of three bins' levels. Split per class: ``fractions`` train and val, the rest test."""
    rng = np.random.default_rng(seed)
    level = rng.normal(size=(n_classes, bins)) * shift
    spread = np.exp(rng.normal(size=(n_classes, bins)) * shift * 0.5)
    xs, labels, splits, valence = [], [], [], []
    for c in range(n_classes):
        for i in range(n_per_class):
            T = int(rng.integers(12, 61))
            own = rng.normal(size=bins) * 0.5
            x = rng.normal(size=(bins, T)) * spread[c][:, None] + (level[c] + own)[:, None]
            if noise_bins:
                x = np.concatenate([x, rng.normal(size=(noise_bins, T))])
            xs.append((x * 10 - 40).astype(np.float32))  # dB-like values
            labels.append(c)
            valence.append(0.5 + 0.15 * (own[0] - own[1 % bins] + 0.5 * own[2 % bins]) + rng.normal() * 0.05)
            frac = i / n_per_class
            splits.append("train" if frac < fractions[0] else "val" if frac < sum(fractions) else "test")
    order = rng.permutation(len(xs))
    return Prepared(
        ids=[f"clip{i:03d}" for i in order], x=[xs[i] for i in order], splits=np.asarray(splits)[order],
        labels=np.asarray(labels, dtype=np.int64)[order], classes=tuple(f"class{c}" for c in range(n_classes)),
        targets={"valence": np.asarray(valence, dtype=np.float32)[order]}, rate="frames",
        fingerprint=f"gaussian-{n_per_class}-{n_classes}-{bins}-{seed}-{shift}-{fractions}-{noise_bins}",
        description=f"Gaussian classes ({n_classes} x {n_per_class}, seed {seed})",
        feature_slices={"chroma": (0, bins + noise_bins)},
    )


def numpy_statistics(prepared: Prepared) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per split: mean, std and mean |delta| of every bin (statistic-major, as the backbone lays them
    out), standardised with the training split's scaler; and the rows of each split."""
    from sklearn.preprocessing import StandardScaler
    stats = np.stack([np.concatenate([x.mean(1), x.std(1), np.abs(np.diff(x, axis=1)).mean(1)])
                      for x in (a.astype(np.float64) for a in prepared.x)])
    rows = {s: np.flatnonzero(prepared.splits == s) for s in ("train", "val", "test")}
    scaler = StandardScaler().fit(stats[rows["train"]])
    return {s: scaler.transform(stats[r]) for s, r in rows.items()}, rows


def zoo_fit(prepared: Prepared, spec: str, registry, tmp_path, **train):
    """Run ``spec`` on ``prepared``: (the RunResult, the fit as metrics.json records it, the lines it said)."""
    said: list[str] = []
    result = run(RunRequest(spec, train=TrainConfig(**train), data=prepared, out_dir=tmp_path), registry=registry,
                 reporter=ConsoleReporter(said.append, progress=False))
    doc = json.loads(result.reports["metrics"].read_text())
    return result, doc.get("linear_fit"), said


def test_the_fitted_genre_head_matches_scikit_learns_logistic_regression(registry, tmp_path):
    from sklearn.linear_model import LogisticRegression
    prepared = gaussian_set(50, 4, seed=0)
    result, fits, said = zoo_fit(prepared, "stats+chroma:genre", registry, tmp_path)
    (fit,) = fits
    assert fit["penalty"] == "C" and fit["value"] in linearfit.C_GRID and fit["metric"] == "accuracy"
    assert any(line.startswith("fit: closed-form linear heads") and f"genre C={fit['value']:g}" in line for line in said)
    Z, rows = numpy_statistics(prepared)
    y = prepared.labels
    # The same problem, solved to convergence by scikit-learn (the classes are balanced: class weights all 1).
    reference = LogisticRegression(C=fit["value"], max_iter=20000, tol=1e-10).fit(Z["train"], y[rows["train"]])
    sk_accuracy = float((reference.predict(Z["test"]) == y[rows["test"]]).mean())
    assert 0.4 < sk_accuracy < 0.99, "the set must be neither trivial nor hopeless for the comparison to mean anything"
    assert abs(result.test["genre.accuracy"] - sk_accuracy) <= 0.01
    sk_val = float((reference.predict(Z["val"]) == y[rows["val"]]).mean())
    assert abs(result.val["genre.accuracy"] - sk_val) <= 0.01
    # The same C on every point of the grid: scikit-learn's validation scores equal the zoo's path.
    for point in fit["path"]:
        m = LogisticRegression(C=point["C"], max_iter=20000, tol=1e-10).fit(Z["train"], y[rows["train"]])
        assert abs(point["accuracy"] - float((m.predict(Z["val"]) == y[rows["val"]]).mean())) <= 0.01, point


def test_the_packaged_model_predicts_what_scikit_learn_does(registry, tmp_path):
    import torch
    from sklearn.linear_model import LogisticRegression

    from zoo.engine.package import load_model
    prepared = gaussian_set(30, 3, seed=4, shift=0.5)
    result, (fit,), _ = zoo_fit(prepared, "stats+chroma:genre", registry, tmp_path)
    model, meta = load_model(result.results[0].model_dir, registry)
    Z, rows = numpy_statistics(prepared)
    reference = LogisticRegression(C=fit["value"], max_iter=20000, tol=1e-10).fit(Z["train"], prepared.labels[rows["train"]])
    from zoo.engine.batches import Normaliser
    norm = Normaliser.from_json(meta["normalisation"])
    test = [prepared.x[i] for i in rows["test"]]
    T = max(a.shape[1] for a in test)
    x = torch.zeros(len(test), test[0].shape[0], T)
    for i, a in enumerate(test):
        x[i, :, : a.shape[1]] = torch.from_numpy(norm.apply(a))
    with torch.no_grad():
        p = torch.softmax(model(x, torch.tensor([a.shape[1] for a in test]))["genre"], -1).numpy()
    np.testing.assert_allclose(p, reference.predict_proba(Z["test"]), atol=2e-3)


def test_the_fitted_regression_head_matches_scikit_learns_ridge(registry, tmp_path):
    from sklearn.linear_model import Ridge
    prepared = gaussian_set(50, 4, seed=1)
    result, (fit,), _ = zoo_fit(prepared, "stats+chroma:valence", registry, tmp_path)
    assert fit["penalty"] == "alpha" and fit["value"] in linearfit.ALPHA_GRID and fit["metric"] == "spearman"
    Z, rows = numpy_statistics(prepared)
    v = prepared.targets["valence"].astype(np.float64)
    reference = Ridge(alpha=fit["value"]).fit(Z["train"], v[rows["train"]])
    pred, truth = reference.predict(Z["test"]), v[rows["test"]]
    sk_r2 = 1 - np.mean((pred - truth) ** 2) / np.var(truth)
    assert sk_r2 > 0.3, "the target must be learnable for the comparison to mean anything"
    assert abs(result.test["valence.r2"] - sk_r2) <= 0.01
    assert abs(result.test["valence.spearman"] - spearmanr(pred, truth).statistic) <= 0.01
    # The stats recipe's regression heads are plain linear: no sigmoid, squared error.
    assert result.model.heads["valence"].bounded is False and result.model.tasks["valence"].config.loss == "mse"


def test_class_weights_of_train_balance_are_scikit_learns_class_weight(registry, tmp_path):
    from sklearn.linear_model import LogisticRegression
    full = gaussian_set(40, 3, seed=2, shift=0.3)
    keep = np.flatnonzero((full.labels != 2) | (np.arange(len(full)) % 4 == 0))  # class 2 is rare
    prepared = Prepared(ids=[full.ids[i] for i in keep], x=[full.x[i] for i in keep], splits=full.splits[keep],
                        labels=full.labels[keep], classes=full.classes, targets={}, rate="frames",
                        fingerprint=full.fingerprint + "-unbalanced", description="unbalanced Gaussian classes",
                        feature_slices=full.feature_slices)
    result, (fit,), _ = zoo_fit(prepared, "stats+chroma:genre", registry, tmp_path, balance="weights")
    Z, rows = numpy_statistics(prepared)
    y = prepared.labels
    balanced = LogisticRegression(C=fit["value"], class_weight="balanced", max_iter=20000, tol=1e-10)
    balanced.fit(Z["train"], y[rows["train"]])
    plain = LogisticRegression(C=fit["value"], max_iter=20000, tol=1e-10).fit(Z["train"], y[rows["train"]])
    assert not np.allclose(balanced.coef_, plain.coef_, atol=1e-3), "the weights must change the answer"
    W = result.model.heads["genre"].out.weight.detach().double().numpy()
    # The zoo's weights are on its own standardised inputs; compare the decisions on the test clips.
    zoo_pred = np.argmax(Z["test"] @ W.T + result.model.heads["genre"].out.bias.detach().double().numpy(), 1)
    assert (zoo_pred == balanced.predict(Z["test"])).mean() >= 0.97


def test_validation_chooses_a_heavy_penalty_where_one_is_needed_and_a_light_one_where_not(registry, tmp_path):
    # Few training clips, weak signal, many bins of noise: only a heavy penalty generalises.
    noisy = gaussian_set(80, 3, bins=6, seed=3, shift=0.2, fractions=(0.1, 0.5), noise_bins=6)
    _, (heavy,), _ = zoo_fit(noisy, "stats+chroma:genre", registry, tmp_path / "noisy")
    # Plenty of clips, well apart: the penalty only costs.
    clean = gaussian_set(40, 3, seed=3, shift=1.5)
    _, (light,), _ = zoo_fit(clean, "stats+chroma:genre", registry, tmp_path / "clean")
    for fit in (heavy, light):
        scores = [(p["accuracy"], -p["loss"]) for p in fit["path"]]
        assert fit["path"][scores.index(max(scores))]["C"] == fit["value"], "not the best point of its own path"
    assert heavy["value"] <= 0.01 < 1.0 <= light["value"]
    by_c = {p["C"]: p["accuracy"] for p in heavy["path"]}
    assert by_c[heavy["value"]] >= by_c[100.0] + 0.05


def test_one_vs_rest_logistic_per_tag_is_scikit_learns(registry):
    from sklearn.linear_model import LogisticRegression
    rng = np.random.default_rng(7)
    Z = rng.normal(size=(150, 8))
    logits = Z @ rng.normal(size=(8, 3))
    Y = (rng.uniform(size=logits.shape) < 1 / (1 + np.exp(-logits))).astype(np.float64)
    Y[rng.uniform(size=Y.shape) < 0.1] = np.nan  # unknown (clip, tag) pairs are left out of that tag's problem
    ((W, b, info),) = linearfit.logistic_path(Z, Y, 3, (0.3,), multilabel=True)
    assert info["converged"]
    for k in range(3):
        known = ~np.isnan(Y[:, k])
        ref = LogisticRegression(C=0.3, max_iter=20000, tol=1e-10).fit(Z[known], Y[known, k])
        np.testing.assert_allclose(W[:, k], ref.coef_[0], atol=1e-4)
        np.testing.assert_allclose(b[k], ref.intercept_[0], atol=1e-4)


def test_the_ridge_path_is_scikit_learns_for_every_alpha():
    from sklearn.linear_model import Ridge
    rng = np.random.default_rng(8)
    Z = rng.normal(size=(60, 90))  # more statistics than clips
    y = Z[:, 0] - 0.5 * Z[:, 3] + rng.normal(size=60) * 0.3
    y[5] = np.nan
    for alpha, (w, b, _) in zip(linearfit.ALPHA_GRID, linearfit.ridge_path(Z, y, linearfit.ALPHA_GRID)):
        ref = Ridge(alpha=alpha).fit(np.delete(Z, 5, 0), np.delete(y, 5))
        np.testing.assert_allclose(w[:, 0], ref.coef_, atol=1e-6, rtol=1e-5)
        np.testing.assert_allclose(b[0], ref.intercept_, atol=1e-6)


def test_hidden_layers_or_linear_fit_sgd_train_by_sgd_and_say_why(registry, tmp_path):
    prepared = gaussian_set(15, 3, seed=5)
    quick = {"epochs": 3, "patience": 0}
    result, fits, said = zoo_fit(prepared, "stats+chroma:genre", registry, tmp_path / "sgd", linear_fit="sgd", **quick)
    assert fits is None and len(result.history) == 3
    assert not any(line.startswith("fit:") for line in said)  # asked for: nothing to explain
    said = []
    result = run(RunRequest("stats+chroma:genre,valence", settings={"genre": {"hidden": 8}},
                            train=TrainConfig(**quick), data=prepared, out_dir=tmp_path / "mlp"),
                 registry=registry, reporter=ConsoleReporter(said.append, progress=False))
    assert len(result.history) == 3
    assert "fit: SGD, not the closed-form fit of linear heads: the head of task 'genre' has a hidden layer " \
           "(genre.hidden=8): not a linear model" in said
    bounded = run(RunRequest("stats+chroma:valence", settings={"valence": {"bounded": True}}, train=TrainConfig(**quick),
                             data=prepared, out_dir=tmp_path / "bounded"),
                  registry=registry, reporter=ConsoleReporter(said.append, progress=False))
    assert len(bounded.history) == 3 and any("is bounded (a sigmoid on its output)" in line for line in said)


def test_every_seed_gets_the_same_fit(registry, tmp_path):
    prepared = gaussian_set(20, 3, seed=6)
    result = run(RunRequest("stats+chroma:genre,valence", train=TrainConfig(), data=prepared, out_dir=tmp_path,
                            seeds=SeedPlan(0, 2)),
                 registry=registry)
    a, b = (r.model.state_dict() for r in result.results)
    for key in a:
        assert np.array_equal(a[key].numpy(), b[key].numpy()), key
    assert result.results[0].test == result.results[1].test


def test_zoo_run_logs_the_chosen_penalty_and_the_model_predicts(zoo_env, audio_folder, capsys):
    from mlflow.tracking import MlflowClient

    from zoo.cli import main
    from zoo.workspace import Workspace
    assert main(["run", "stats+mel:genre", "--data", str(audio_folder), "--experiment", "linear-fit", "--workers", "1",
                 "--no-progress", "--limit", "18"]) == 0
    out = capsys.readouterr().out
    assert "fit: closed-form linear heads" in out and "genre C=" in out
    client = MlflowClient(Workspace.from_env().tracking_uri)
    (r,) = client.search_runs([client.get_experiment_by_name("linear-fit").experiment_id])
    params = r.data.params
    assert params["fit.method"] == "closed-form" and params["fit.genre.chosen_on"] == "val.accuracy"
    assert float(params["fit.genre.C"]) in linearfit.C_GRID and params["train.linear_fit"] == "auto"
    assert r.data.metrics["epochs_run"] == 1
    song = next(audio_folder.glob("*/*.wav"))
    assert main(["predict", r.info.run_id, str(song), "--format", "json", "--no-progress"]) == 0
    (record,) = json.loads(capsys.readouterr().out)["files"]
    probabilities = record["predictions"]["genre"]["probabilities"]
    assert set(probabilities) == {"blues", "jazz", "rock"} and abs(sum(probabilities.values()) - 1) < 1e-4
