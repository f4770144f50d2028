"""Generated vectors for the learn tests: clusters on the unit sphere."""

from __future__ import annotations

import numpy as np

from finder.learn.train import background_indices


def _unit(a: np.ndarray) -> np.ndarray:
    return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)


def library(n_classes=5, per_class=40, dim=48, spread=0.15, seed=0):
    """Unit vectors in clusters around orthogonal directions; returns (X, class index)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), per_class)
    X = np.eye(dim)[y] + spread * rng.standard_normal((len(y), dim))
    return _unit(X), y


def split(X, y, cls=0, k=5, seed=0):
    rng = np.random.default_rng(seed)
    ex = rng.choice(np.flatnonzero(y == cls), size=k, replace=False)
    bg = background_indices(len(X), ex, rng)
    return ex, bg
