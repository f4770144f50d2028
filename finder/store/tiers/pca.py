"""PCA training for the IVF tier: the top principal directions (uncentred, so the mean direction
is one of them) of the raw vectors, as orthonormal rows."""

from __future__ import annotations

import numpy as np

from finder.store.tiers.protocol import Scan


def moment(rows: np.ndarray, scan: Scan, dim: int) -> np.ndarray:
    """``X^T X`` (float32, dim x dim) of the raw vectors of ``rows``, read chunk by chunk."""
    out = np.zeros((dim, dim), dtype=np.float32)
    for _, x in scan(rows):
        x32 = x.astype(np.float32)
        out += x32.T @ x32
    return out


def orthonormal_columns(y: np.ndarray) -> np.ndarray:
    """Orthonormalise the columns of a tall float64 matrix through the eigen-decomposition of
    its Gram matrix, twice (numpy's QR of a 4096 x 448 matrix takes seconds here; this, ms)."""
    for _ in range(2):
        vals, vecs = np.linalg.eigh(y.T @ y)
        y = y @ (vecs / np.sqrt(np.maximum(vals, 1e-300)))
    return y


def top_eigenvectors(moment: np.ndarray, p: int, seed: int = 0) -> np.ndarray:
    """The p leading eigenvectors (as rows) of a symmetric PSD matrix. For many of them a full
    float32 eigh is fastest (4096 dimensions: ~20 s here, against ~50 s for LAPACK's subset
    driver in float64 and ~100 s for subspace iteration); for a few, subspace iteration."""
    dim = moment.shape[0]
    if dim <= 1536 or p >= dim // 4:
        vals, vecs = np.linalg.eigh(moment.astype(np.float32))
        return vecs[:, np.argsort(vals)[::-1][:p]].T.astype(np.float64)
    m64 = moment.astype(np.float64)
    width = min(dim, p + 64)
    basis = orthonormal_columns(np.random.default_rng(seed).normal(size=(dim, width)))
    for _ in range(6):
        basis = orthonormal_columns(m64 @ basis)
    vals, small = np.linalg.eigh(basis.T @ m64 @ basis)
    return (basis @ small[:, np.argsort(vals)[::-1][:p]]).T


def train_projection(moment: np.ndarray, p: int) -> np.ndarray:
    """Orthonormal (p, dim) float32 rows spanning the top principal directions (uncentred)."""
    p = max(1, min(p, moment.shape[0]))
    top = orthonormal_columns(top_eigenvectors(moment, p).T.astype(np.float64))
    return np.ascontiguousarray(top.T, dtype=np.float32)
