"""Few-shot class heads: a logistic model, linear in the unit-norm embedding.

A :class:`Head` scores a vector ``x`` as ``logit = w·x + b`` and a probability
``sigmoid(logit)``; ``threshold`` is the probability cut-off of the default ``find`` output.
Everything the training does (centring, scaling, pseudo-labelling the background) is folded
into ``w`` and ``b``, so ``find`` can use ``w`` as a maximum-inner-product query.

This module imports numpy and scipy only (never TensorFlow).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize

from finder.errors import LibraryError, UsageError

BACKGROUND_SIZE: int = 300
"""How many random library vectors form the background sample of ``finder learn``."""

EXPLICIT_NEGATIVE_WEIGHT: float = 3.0
"""An explicit negative (the user said so) weighs this many times a background vector."""


@dataclass
class Head:
    """A learned class: ``proba(x) = sigmoid(w·x + b)``; ``find`` returns ``proba >= threshold``."""

    w: np.ndarray
    b: float
    threshold: float = 0.5
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.w = np.ascontiguousarray(self.w, dtype=np.float32).reshape(-1)
        self.b = float(self.b)
        self.threshold = float(self.threshold)

    @property
    def dim(self) -> int:
        return int(self.w.shape[0])

    @property
    def logit_threshold(self) -> float:
        """The cut-off as a logit: ``proba >= threshold`` iff ``logit >= logit_threshold``."""
        t = min(max(self.threshold, 1e-12), 1 - 1e-12)
        return float(np.log(t / (1 - t)))

    def logits(self, X: np.ndarray) -> np.ndarray:
        """``X @ w + b`` for ``X`` of shape ``[n, dim]`` (or one vector ``[dim]``)."""
        X = np.asarray(X, dtype=np.float32)
        if X.shape[-1] != self.dim:
            raise UsageError(f"vectors have dimension {X.shape[-1]}, this head expects {self.dim}")
        return X @ self.w + np.float32(self.b)

    def proba(self, X: np.ndarray) -> np.ndarray:
        """``sigmoid(logits(X))``, computed without overflow."""
        return _sigmoid(self.logits(X))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able and compact: ``w`` is base64 of its little-endian float32 bytes."""
        return {
            "dim": self.dim,
            "w": base64.b64encode(self.w.astype("<f4").tobytes()).decode("ascii"),
            "b": self.b,
            "threshold": self.threshold,
            "params": self.params,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Head:
        try:
            raw = base64.b64decode(data["w"], validate=True)
            w = np.frombuffer(raw, dtype="<f4").astype(np.float32)
            dim = int(data.get("dim", w.shape[0]))
            b = float(data["b"])
            threshold = float(data.get("threshold", 0.5))
            params = dict(data.get("params", {}))
        except (KeyError, TypeError, ValueError) as e:
            raise LibraryError(f"stored head is unreadable: {e}") from None
        if w.shape[0] != dim:
            raise LibraryError(f"stored head has {w.shape[0]} weights, expected {dim}")
        return cls(w=w, b=b, threshold=threshold, params=params)


def background_indices(
    n: int, exclude: np.ndarray, rng: np.random.Generator, size: int = BACKGROUND_SIZE
) -> np.ndarray:
    """Positions (sorted, among ``0..n-1``) of the random background sample of ``finder learn``.

    ``exclude`` holds positions that must not be drawn (the examples). At most ``size``
    positions; fewer when the library is small.
    """
    exclude = np.asarray(exclude, dtype=np.int64).reshape(-1)
    mask = np.ones(n, dtype=bool)
    mask[exclude[(exclude >= 0) & (exclude < n)]] = False
    pool = np.flatnonzero(mask)
    if len(pool) <= size:
        return pool
    return np.sort(rng.choice(pool, size=size, replace=False))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def fit_logistic(
    X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray, C: float = 1.0
) -> tuple[np.ndarray, float]:
    """Weighted L2 logistic regression (sklearn's convention: ``C·Σ sᵢ·loss + ½‖w‖²``).

    ``y`` in {0, 1} or soft labels in [0, 1]. Intercept unpenalised. Returns ``(w, b)``.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    s = np.asarray(sample_weight, dtype=np.float64) * C
    d = X.shape[1]

    def fg(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:d], theta[d]
        z = X @ w + b
        # loss = log(1+e^z) - y z, stable
        loss = np.logaddexp(0.0, z) - y * z
        r = s * (_sigmoid(z) - y)
        f = float(s @ loss) + 0.5 * float(w @ w)
        g = np.empty(d + 1)
        g[:d] = X.T @ r + w
        g[d] = r.sum()
        return f, g

    res = minimize(fg, np.zeros(d + 1), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return res.x[:d], float(res.x[d])


def _check(name: str, A: np.ndarray, dim: int | None) -> np.ndarray:
    A = np.asarray(A, dtype=np.float32)
    if A.ndim == 1 and A.size == 0:
        A = A.reshape(0, dim or 0)
    if A.ndim != 2:
        raise UsageError(f"{name} must be a 2-d array of vectors, got shape {A.shape}")
    if dim is not None and A.shape[0] and A.shape[1] != dim:
        raise UsageError(f"{name} have dimension {A.shape[1]}, examples have {dim}")
    if not np.all(np.isfinite(A)):
        raise UsageError(f"{name} contain non-finite values")
    return A.reshape(A.shape[0], dim) if dim is not None and A.shape[0] == 0 else A


def train_head(
    positives: np.ndarray,
    negatives: np.ndarray,
    background: np.ndarray,
    *,
    seed: int = 0,
) -> Head:
    """Learn a class from example vectors.

    ``positives``: the user's examples ``[p, d]`` (p ≥ 1); ``negatives``: explicit
    counter-examples ``[q, d]`` (may be empty); ``background``: an unlabelled random sample of
    the library ``[m, d]`` (may be empty, may contain positives).
    """
    P = _check("examples", positives, None)
    if P.shape[0] == 0:
        raise UsageError("a class needs at least one example")
    d = P.shape[1]
    N = _check("negatives", negatives, d)
    B = _check("background vectors", background, d)
    if N.shape[0] + B.shape[0] == 0:
        raise UsageError("a class needs negatives or a background sample to learn from")

    p, q, m = len(P), len(N), len(B)
    X = np.concatenate([P, N, B])
    y = np.concatenate([np.ones(p), np.zeros(q + m)])
    # balanced: positives carry half the total weight; explicit negatives weigh more
    neg_mass = EXPLICIT_NEGATIVE_WEIGHT * q + m
    sw = np.concatenate(
        [
            np.full(p, neg_mass / p if p else 1.0),
            np.full(q, EXPLICIT_NEGATIVE_WEIGHT),
            np.ones(m),
        ]
    )
    sw *= (p + q + m) / sw.sum()
    w, b = fit_logistic(X, y, sw, C=1.0)
    params = {"method": "plain", "n_pos": p, "n_neg": q, "n_background": m, "C": 1.0, "seed": seed}
    return Head(w=w.astype(np.float32), b=b, threshold=0.5, params=params)
