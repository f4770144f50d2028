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


def six_checks_three_crosses(seed=11):
    """Marks that calibrate a head (``HeadConfig.marks_*``): 6 ✓ of class 0, 3 ✗ of class 1, the
    rest the background. Returns (X, classes, positives, negatives, background by index)."""
    X, y = library(n_classes=4, per_class=60, spread=0.3, seed=seed)
    rng = np.random.default_rng(seed)
    pos = rng.choice(np.flatnonzero(y == 0), size=6, replace=False)
    neg = rng.choice(np.flatnonzero(y == 1), size=3, replace=False)
    bg = np.setdiff1d(np.arange(len(X)), np.concatenate([pos, neg]))
    return X, y, pos, neg, bg
