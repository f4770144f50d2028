"""Several weighted logistic regressions on the same rows, fitted as one problem.

A head's training fits the same vectors many times over with different weights: the folds of
the examples' held-out ranks and of the marks' cross-validated logits leave out a few rows
each. Fitted one after another, each evaluation reads the whole ``[n, d]`` matrix twice for one
weight vector (a matrix-vector product: bound by memory, not arithmetic); fitted together,
``F`` problems are one objective over their stacked weights (the sum of separate objectives:
its minimum is each one's minimum), and each evaluation reads the matrix once for all ``F``
(a matrix-matrix product). The per-problem loss is sklearn's convention, as
:func:`finder.learn.train.fit_logistic`'s: ``C·Σ sᵢ·loss + ½‖w‖²``, the intercept not
penalised; a row of weight 0 is out of that problem.

numpy and scipy only.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from finder.learn.head import sigmoid

OPTIONS: dict[str, float] = {"maxiter": 300, "gtol": 1e-5, "ftol": 1e-7}
"""L-BFGS-B's stopping rule (as ``finder.learn.train.FIT_OPTIONS``)."""


def fit_many(
    X: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray,
    C: float = 1.0,
    init: tuple[np.ndarray, float] | None = None,
) -> list[tuple[np.ndarray, float]]:
    """``F`` weighted L2 logistic regressions on the rows of ``X`` (``[n, d]``), labels ``y``
    (``[n]``, in {0, 1}) and ``weights`` (``[F, n]``, 0: the row is out of that problem),
    fitted as one; ``init``: every problem starts there. Returns ``[(w float32, b)] * F``."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.float64)[:, None]
    S = (np.asarray(weights, dtype=np.float64) * C).T  # [n, F]
    n, d = X.shape
    F = S.shape[1]

    def fg(theta: np.ndarray) -> tuple[float, np.ndarray]:
        T = theta.reshape(F, d + 1)
        W = T[:, :d]
        Z = (X @ W.T.astype(np.float32)).astype(np.float64) + T[:, d]  # [n, F]
        loss = np.logaddexp(0.0, Z) - y * Z
        R = S * (sigmoid(Z) - y)
        G = np.empty((F, d + 1))
        G[:, :d] = (R.T.astype(np.float32) @ X).astype(np.float64) + W
        G[:, d] = R.sum(axis=0)
        return float((S * loss).sum()) + 0.5 * float((W * W).sum()), G.ravel()

    theta0 = np.zeros((F, d + 1))
    if init is not None:
        theta0[:, :d], theta0[:, d] = init[0], init[1]
    res = minimize(fg, theta0.ravel(), jac=True, method="L-BFGS-B", options=OPTIONS)
    T = res.x.reshape(F, d + 1)
    return [(T[f, :d].astype(np.float32), float(T[f, d])) for f in range(F)]


def balanced(is_pos: np.ndarray, weight: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """One problem's weights as ``fit_weighted`` balances them: the rows in ``keep``, positives
    and negatives each carrying half of their count; the rest 0."""
    w = np.where(keep, np.asarray(weight, dtype=np.float64), 0.0)
    n = int(keep.sum())
    pos, neg = w * is_pos, w * ~is_pos
    return pos / pos.sum() * 0.5 * n + neg / neg.sum() * 0.5 * n
