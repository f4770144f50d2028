"""Vectors for the store's tests: clustered unit vectors with a decaying spectrum."""

from __future__ import annotations

import numpy as np

DIM = 32

# Small thresholds so a few hundred vectors cross from flat to IVF, and IVF searches every list
# so that results can be compared exactly across tiers.
SMALL = dict(flat_max=200, pca_dim=8, nprobe=10_000, rescore=10_000, compact_min=50)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(12, dim)) * 2.0
    scale = 1.0 / np.arange(1, dim + 1) ** 0.5  # a decaying spectrum, like real embeddings
    return unit(centres[rng.integers(0, 12, n)] + rng.normal(size=(n, dim)) * scale + 3.0)


def as_stored(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float16).astype(np.float32)


def exact_top(x: np.ndarray, ids: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    return ids[np.argsort(-(as_stored(x) @ q), kind="stable")[:k]]
