"""The library's own metric: how photos of one thing vary, learned from the library unlabelled.

A photo's nearest neighbours in a library are mostly photos of the same thing, so the covariance
of the differences between photos and their neighbours estimates the *within-class* covariance
``Σ_w``: the directions along which photos of one subject differ (light, framing, background).
A head learned from five examples cannot tell those directions from the ones that matter; the
metric tells it. :func:`whitener` returns ``W = (Σ_w + s·I)^{-1/2}`` (``s`` = ``shrink`` × the
mean eigenvalue; the larger, the closer ``W`` is to the identity), scaled so that the library's
whitened vectors have a mean length of 1. Training in ``x·W`` (rotated: :class:`Metric`) and
mapping the weights back (``w = W·w'``) keeps a head linear in the stored vectors:
``w'·(x·W) = (W·w')·x``, so ``find`` still searches with ``w``. It is linear discriminant
analysis with a within-class covariance the library estimates itself (as in metric learning
from neighbours, without labels).

numpy and scipy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

SHRINK: float = 3.0
"""``s`` = SHRINK × the mean eigenvalue of ``Σ_w``."""

NEIGHBOURS: int = 5
"""Neighbours of each sampled photo whose differences estimate ``Σ_w``."""

SAMPLE: int = 4000
"""At most this many photos of the library are sampled to estimate ``Σ_w``."""

MIN_PHOTOS: int = 50
"""With fewer photos in the library there is no metric: the identity."""


@dataclass(frozen=True)
class Metric:
    """The metric as ``Σ_w``'s eigenvectors ``U`` (orthogonal ``[d, d]``) and scales ``s`` (> 0
    ``[d]``, float32). A vector ``x`` in the metric is ``x·U·diag(1/s)`` (:meth:`apply`): ``x·W``
    rotated by ``U``, which changes no inner product, so a head and the k-NN graph see the same
    thing at half the cost of ``x·W``. A head's weights go into the metric by ``diag(s)·Uᵀ·w``
    (:meth:`into`, since ``w·x = (diag(s)·Uᵀ·w)·(x·U·diag(1/s))``) and come back by
    ``U·diag(1/s)·w'`` (:meth:`back`). :attr:`W` is the symmetric whitener itself."""

    U: np.ndarray
    s: np.ndarray
    shrink: float = SHRINK  # the ``shrink`` it was made with (:func:`whitener`)

    @property
    def dim(self) -> int:
        return int(self.U.shape[0])

    @property
    def W(self) -> np.ndarray:
        return (self.U / self.s) @ self.U.T

    def apply(self, X: np.ndarray) -> np.ndarray:
        """Rows ``x`` of ``X`` in the metric: ``x·U·diag(1/s)``."""
        return (np.asarray(X, dtype=np.float32) @ self.U) / self.s

    def into(self, w: np.ndarray) -> np.ndarray:
        """Weights on stored vectors as weights in the metric: ``diag(s)·Uᵀ·w``."""
        return self.s * (self.U.T @ np.asarray(w, dtype=np.float32))

    def back(self, w: np.ndarray) -> np.ndarray:
        """Weights in the metric as weights on stored vectors: ``U·diag(1/s)·w``."""
        return self.U @ (np.asarray(w, dtype=np.float32) / self.s)


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


def whitener(V: np.ndarray, *, shrink: float = SHRINK, k: int = NEIGHBOURS) -> Metric:
    """The :class:`Metric` of a sample ``V`` of the library's unit vectors (at least two):
    the module's docstring."""
    V = np.asarray(V, dtype=np.float32)
    i, j = neighbour_pairs(V, k)
    D = V[i] - V[j]
    # LAPACK's divide and conquer: 3× numpy's default at d = 4096 (VGG16 fc1)
    ev, U = scipy.linalg.eigh(D.T @ D / np.float32(2 * len(D)), driver="evd")
    s = np.sqrt(np.maximum(ev, 0.0) + shrink * max(float(ev.mean()), 1e-12)).astype(np.float32)
    metric = Metric(U.astype(np.float32), s, shrink)
    scale = float(np.linalg.norm(metric.apply(V), axis=1).mean())
    return Metric(metric.U, s * np.float32(scale), shrink)  # the library's mean length in it: 1


def reshrunk(metric: Metric, shrink: float) -> np.ndarray:
    """Per coordinate of ``metric``, the factor that takes a vector in it to the metric of the
    same ``Σ_w`` shrunk by ``shrink`` instead (``s'² = c²·(λ + shrink·mean λ)``, ``c²·λ`` read
    back from ``s² = c²·(λ + metric.shrink·mean λ)``), before the library's mean length is
    restored (the caller's: it has the sample). ``x·U·diag(1/s')`` is ``(x·U·diag(1/s))·(s/s')``."""
    s2 = np.asarray(metric.s, dtype=np.float64) ** 2
    unit = s2.mean() / (1.0 + metric.shrink)  # c²·mean λ
    new = np.maximum(s2 - metric.shrink * unit, 0.0) + shrink * unit
    return np.sqrt(s2 / new).astype(np.float32)


def sample_positions(n: int, *, seed: int = 0, sample: int = SAMPLE) -> np.ndarray:
    """Sorted positions, among ``0..n-1``, of the random sample (at most ``sample``) of a
    library of ``n`` photos that its metric is estimated on."""
    return np.sort(np.random.default_rng(seed).permutation(n)[:sample])


def library_metric(
    X: np.ndarray, *, seed: int = 0, shrink: float = SHRINK, sample: int = SAMPLE
) -> Metric | None:
    """The metric of a library whose unit vectors are the rows of ``X``, estimated on a random
    sample of at most ``sample`` of them; None (no metric) below :data:`MIN_PHOTOS` photos."""
    if len(X) < MIN_PHOTOS:
        return None
    return whitener(X[sample_positions(len(X), seed=seed, sample=sample)], shrink=shrink)
