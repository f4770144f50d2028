"""A class's rows in coordinates of their span: the same fits on narrower rows.

A head of ``finder learn`` is made of L2-regularised logistic fits on one matrix of ``n`` rows
of dimension ``d`` in the library's metric (2,000 background photos and the marks). The
weights of such a fit lie in the span of its rows (the loss's gradient is a combination of the
rows plus the weights, so L-BFGS started at zero, or at a head fitted on the same rows, never
leaves it), and L-BFGS sees the problem only through inner products (of rows with weights, of
steps with gradients), which an orthonormal basis keeps. So a fit on the rows' coordinates in
an orthonormal basis of their span is the same fit but for rounding (and the stopping rule's
largest gradient component, which a rotation changes), on rows of ``n`` numbers at most
instead of ``d``: at ``d`` = 4,096 a retraining's 200 evaluations each read 17 MB instead of
33 (more than the cache).

The basis is made once per pool (:meth:`finder.learn.background.Pool.basis`): the Householder QR
of the first background candidates' rows in the metric (2,050), in their order in the pool's
permutation, so the photo at place ``p`` has coordinates in the first ``p + 1`` vectors only
(``Rt[p]``), and a background drawn from the first ``k`` places needs ``k`` of them. A class's
other rows (its marks and counter-examples, and background photos past those) are put in that basis
(``M·Q``) and what they hold beyond it gets coordinates of its own: the eigenvectors of their
residual's Gram matrix ``M·Mᵀ - A·Aᵀ`` (``d``-wide residuals are never formed). Directions of
that residual weaker than ``RESIDUAL_FLOOR`` of the largest squared row are dropped (below the
float32 products' rounding; a row's weights there would be as small). :meth:`Coords.to_metric`
maps a head's weights back to the metric.

numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RESIDUAL_FLOOR: float = 1e-4
"""A direction of the other rows' residual (beyond the pool's basis) is kept when its
eigenvalue exceeds this share of the largest squared length of those rows."""


@dataclass(frozen=True)
class Coords:
    """How weights on coordinates map to weights in the metric: ``w = Q·(a₁ - Aᵀ·β) + Mᵀ·β``
    with ``β = T·a₂`` (``a₁`` the first ``k`` coordinates, in the pool's basis ``Q``; ``a₂``
    the rest, along the other rows ``M``'s residual beyond it)."""

    Q: np.ndarray  # [d, k] orthonormal columns
    M: np.ndarray  # [o, d] the other rows in the metric
    A: np.ndarray  # [o, k] their coordinates in Q
    T: np.ndarray  # [o, e] the residual's coordinates to combinations of the rows M

    @property
    def width(self) -> int:
        return int(self.Q.shape[1] + self.T.shape[1])

    def to_metric(self, a: np.ndarray) -> np.ndarray:
        """Weights on coordinates as weights in the metric (float32 ``[d]``)."""
        a = np.asarray(a, dtype=np.float32)
        k = self.Q.shape[1]
        head = a[:k]
        extra = None
        if self.T.shape[1]:
            beta = self.T @ a[k:]
            head = head - self.A.T @ beta
            extra = self.M.T @ beta
        w = self.Q @ head
        return (w if extra is None else w + extra).astype(np.float32)


def other_coordinates(M: np.ndarray, Q: np.ndarray) -> tuple[np.ndarray, Coords]:
    """Rows ``M`` ``[o, d]`` (in the metric) in the basis ``Q`` ``[d, k]`` and beyond it:
    their coordinates ``[o, k + e]`` and the :class:`Coords` of the whole basis."""
    M = np.ascontiguousarray(M, dtype=np.float32)
    A = M @ Q
    k = Q.shape[1]
    if not len(M):
        return np.zeros((0, k), dtype=np.float32), Coords(Q, M, A, np.zeros((0, 0), np.float32))
    M64 = M.astype(np.float64)
    A64 = A.astype(np.float64)
    G = M64 @ M64.T - A64 @ A64.T  # the residual's Gram matrix
    lam, V = np.linalg.eigh(G)
    keep = lam > RESIDUAL_FLOOR * float(np.max(np.einsum("ij,ij->i", M64, M64)))
    lam, V = lam[keep], V[:, keep]
    C = np.empty((len(M), k + len(lam)), dtype=np.float32)
    C[:, :k] = A
    C[:, k:] = V * np.sqrt(lam)
    return C, Coords(Q, M, A, (V / np.sqrt(lam)).astype(np.float32))
