"""A learned class: a logistic model, linear in the unit-norm embedding, and its cut-off.

A :class:`Head` scores a vector ``x`` as ``logit = w·x + b`` and a probability
``sigmoid(logit)``; ``threshold`` is the probability cut-off of the default ``find`` output.
Everything the training does is folded into ``w`` and ``b``, so ``find`` can use ``w`` as a
maximum-inner-product query. The head is stored as JSON (:meth:`Head.to_dict`); the cut-off is
part of it and stored nowhere else.

This module imports numpy only (never TensorFlow).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from finder.errors import LibraryError, UsageError


def logit(p: float) -> float:
    """The inverse of the sigmoid, for a probability clipped into (0, 1)."""
    t = min(max(float(p), 1e-12), 1 - 1e-12)
    return float(np.log(t / (1 - t)))


def sigmoid(z: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-z))`` in float64, without overflow."""
    z = np.asarray(z, dtype=np.float64)
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


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
        return logit(self.threshold)

    def logits(self, X: np.ndarray) -> np.ndarray:
        """``X @ w + b`` for ``X`` of shape ``[n, dim]`` (or one vector ``[dim]``)."""
        X = np.asarray(X, dtype=np.float32)
        if X.shape[-1] != self.dim:
            raise UsageError(f"vectors have dimension {X.shape[-1]}, this head expects {self.dim}")
        return X @ self.w + np.float32(self.b)

    def proba(self, X: np.ndarray) -> np.ndarray:
        """``sigmoid(logits(X))``, computed without overflow."""
        return sigmoid(self.logits(X))

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
