"""The library's own metric: how photos of one thing vary, learned from the library unlabelled.

A photo's nearest neighbours in a library are mostly photos of the same thing, so the covariance
of the differences between photos and their neighbours estimates the *within-class* covariance
``Σ_w``: the directions along which photos of one subject differ (light, framing, background).
A head learned from five examples cannot tell those directions from the ones that matter; the
metric tells it. :func:`whitener` returns ``W = (Σ_w + s·I)^{-1/2}`` (``s`` = ``shrink`` × the
mean eigenvalue; the larger, the closer ``W`` is to the identity), scaled so that the library's
whitened vectors have a mean length of 1. Training in ``x·W`` and mapping the weights back
(``w = W·w'``) keeps a head linear in the stored vectors: ``w'·(x·W) = (W·w')·x``, so ``find``
still searches with ``w``. It is linear discriminant analysis with a within-class covariance
the library estimates itself (as in metric learning from neighbours, without labels).

numpy only.
"""

from __future__ import annotations

import numpy as np

SHRINK: float = 3.0
"""``s`` = SHRINK × the mean eigenvalue of ``Σ_w``."""

NEIGHBOURS: int = 5
"""Neighbours of each sampled photo whose differences estimate ``Σ_w``."""

SAMPLE: int = 4000
"""At most this many photos of the library are sampled to estimate ``Σ_w``."""

MIN_PHOTOS: int = 50
"""With fewer photos in the library there is no metric: the identity."""


def neighbour_pairs(V: np.ndarray, k: int = NEIGHBOURS) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs ``(i, j)``: each row of ``V`` (unit vectors) and its ``k`` nearest others."""
    n = len(V)
    k = min(k, n - 1)
    rows, cols = [], []
    for start in range(0, n, 1024):
        S = V[start : start + 1024] @ V.T
        S[np.arange(len(S)), start + np.arange(len(S))] = -np.inf
        nbr = np.argpartition(-S, k - 1, axis=1)[:, :k]
        rows.append(np.repeat(start + np.arange(len(S)), k))
        cols.append(nbr.ravel())
    return np.concatenate(rows), np.concatenate(cols)


def whitener(V: np.ndarray, *, shrink: float = SHRINK, k: int = NEIGHBOURS) -> np.ndarray:
    """``W`` (symmetric, ``[d, d]`` float32) from a sample ``V`` of the library's unit vectors:
    the module's docstring. The identity when the sample is too small to say anything."""
    V = np.asarray(V, dtype=np.float32)
    d = V.shape[1]
    if len(V) < MIN_PHOTOS:
        return np.eye(d, dtype=np.float32)
    i, j = neighbour_pairs(V, k)
    D = (V[i] - V[j]).astype(np.float64)
    ev, U = np.linalg.eigh(D.T @ D / (2 * len(D)))
    ev = np.maximum(ev, 0.0)
    W = (U / np.sqrt(ev + shrink * ev.mean())) @ U.T
    scale = float(np.linalg.norm(V @ W.astype(np.float32), axis=1).mean())
    return (W / scale).astype(np.float32)


def library_metric(
    X: np.ndarray, *, seed: int = 0, shrink: float = SHRINK, sample: int = SAMPLE
) -> np.ndarray | None:
    """The metric of a library whose unit vectors are the rows of ``X``, estimated on a random
    sample of at most ``sample`` of them; None (no metric) below :data:`MIN_PHOTOS` photos."""
    if len(X) < MIN_PHOTOS:
        return None
    pick = np.sort(np.random.default_rng(seed).permutation(len(X))[:sample])
    return whitener(X[pick], shrink=shrink)
