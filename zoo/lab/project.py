"""Projections of embeddings ``[N, D]`` to 2-D: PCA, t-SNE and UMAP (lab step 11)."""
from __future__ import annotations

import warnings

import numpy as np

from ..errors import ConfigError

METHODS = ("pca", "tsne", "umap")
METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
PRE_PCA = 50
"""t-SNE and UMAP first reduce wider embeddings to this many principal components: the usual
practice, it removes noise dimensions and makes both much faster."""


def check_method(method: str) -> str:
    m = str(method).strip().lower()
    if m not in METHODS:
        from ..errors import suggest
        raise ConfigError(f"projection method '{method}': use one of {', '.join(METHODS)}{suggest(m, METHODS)}")
    return m


def _standardise(z: np.ndarray) -> np.ndarray:
    """Centre every dimension and scale it to unit variance (constant dimensions stay 0)."""
    z = z.astype(np.float64)
    std = z.std(axis=0)
    std[std < 1e-12] = 1.0
    return (z - z.mean(axis=0)) / std


def _pca(z: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA
    k = min(k, z.shape[0], z.shape[1])
    out = PCA(n_components=k, random_state=seed).fit_transform(z)
    if out.shape[1] < 2:  # a one-dimensional embedding or a single clip: pad the missing axis
        out = np.hstack([out, np.zeros((out.shape[0], 2 - out.shape[1]))])
    return out


def announce(method: str, n: int, d: int) -> str:
    """One line saying what a fit runs and about how long it usually takes (t-SNE and UMAP print
    nothing while they fit; PCA is instant), for the caller to show before :func:`project`."""
    name = METHOD_NAMES.get(method, method)
    if method == "pca":
        return f"{name}: projecting {n} clips x {d} dimensions (under a second)"
    # Rough CPU figures: t-SNE (Barnes-Hut) ~1 s per 1,000 clips plus start-up; UMAP compiles with
    # numba on its first use in a process (~10-20 s), then ~1 s per 1,000 clips.
    per_1000, start = (1.5, 2) if method == "tsne" else (1.0, 15)
    guess = start + per_1000 * n / 1000
    return (f"{name}: fitting {n} clips x {d} dimensions; it prints nothing while it runs and usually takes "
            f"about {guess:.0f} s here{' (most of it compiling UMAP on first use)' if method == 'umap' else ''}")


def project(z: np.ndarray, method: str = "pca", *, seed: int = 0) -> np.ndarray:
    """``z: [N, D]`` -> ``[N, 2]`` float64.

    Dimensions are standardised first, so that no single wide-ranging unit decides the map.
    t-SNE's perplexity and UMAP's neighbourhood shrink with small N (they must stay below N).
    """
    method = check_method(method)
    z = np.asarray(z)
    if z.ndim != 2 or z.shape[0] < 3:
        raise ConfigError(
            f"a latent map needs at least 3 clips with one embedding each, got an array of shape {list(z.shape)}; "
            f"use a larger split (--split all) or more data"
        )
    z = _standardise(z)
    if method == "pca":
        return _pca(z, 2, seed)[:, :2]
    if z.shape[1] > PRE_PCA:
        z = _pca(z, PRE_PCA, seed)
    n = z.shape[0]
    if method == "tsne":
        from sklearn.manifold import TSNE
        perplexity = float(min(30.0, max(2.0, (n - 1) / 3)))
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(z)
    try:
        import umap
    except ImportError as exc:
        raise ConfigError(
            "the UMAP projection needs the umap-learn package, which is not installed; install it "
            "(pip install 'music-zoo[maps]' or pip install umap-learn), or use --method pca or tsne"
        ) from exc
    neighbours = int(min(15, max(2, n - 1)))
    with warnings.catch_warnings():
        # A fixed random_state (reproducible maps) makes UMAP single-threaded, and it warns so each time.
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        return umap.UMAP(n_components=2, n_neighbors=neighbours, random_state=seed).fit_transform(z)
