"""Probabilities that mean what they say, and how a person's marks move them.

A trained head ranks; :func:`calibrate` turns its logits into probabilities: of the photos it
gives 0.8, about 8 in 10 are of the class. The background sample is a random sample of the
library, so calibrating on it calibrates over the library. Given the estimated number of class
members in the background ``n``, the background's logits are modelled as two Gaussians (the
class, with its share fixed at ``n / m``, and the rest); the posterior of that mixture is fitted
by a logistic ``sigmoid(a·z + c)`` (Platt scaling on soft targets), and ``c`` is set so that the
probabilities over the background add up to ``n``. The calibrated head is ``(a·w, a·b + c)``:
still linear.

:func:`platt` also calibrates a head on a person's marks (their logits under heads not trained on
them, :func:`finder.learn.train.train_head`): the marked photos were chosen by what a head showed
(its ranking, or a strip near its cut), that is by their vectors and not by their labels, so their
labels are an unbiased sample of the class probability *given* the vector (missing at random).
A fit on a few dozen marks is too sure: :func:`soften` averages the probabilities over the fits
the marks allow (Bayesian averaging, Laplace's approximation), which flattens them while the marks
are few (after a first strip of 20, by about half) and leaves them as they are once the marks are
many; :func:`sharpen` undoes it where the fit itself is wanted (the strips' draws, the estimate).

numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from finder.learn.head import sigmoid

MIN_SPREAD: float = 0.3
"""Smallest standard deviation of a mixture component (logit units)."""

SOFTEN_PRIOR: float = 0.5
"""The precision of the prior on :func:`soften`'s recalibration ``(a, c)`` around ``(1, 0)``: marks
that separate perfectly (a likelihood flat in the slope) still leave the slope about 1 ± 1.4
(replayed on the 10-trial traces after one strip, ECE tf / fine / photos / both: prior 1: 0.038 /
0.050 / 0.022 / 0.015; 0.5: 0.038 / 0.049 / 0.025 / 0.015; 0.3: 0.038 / 0.049 / 0.027 / 0.015)."""


def _log_normal(z: np.ndarray, mu: float, sd: float) -> np.ndarray:
    return -0.5 * ((z - mu) / sd) ** 2 - np.log(sd)


def class_posterior(z: np.ndarray, share: float, iters: int = 100) -> np.ndarray:
    """Posterior class membership of each logit ``z`` under two Gaussians, the upper one with
    mixing weight ``share``, started from the top ``share`` of ``z`` (EM)."""
    z = np.asarray(z, dtype=np.float64)
    m = len(z)
    r = np.zeros(m)
    r[np.argsort(-z, kind="stable")[: max(int(round(share * m)), 1)]] = 1.0
    prior = np.log(share) - np.log(1 - share)
    for _ in range(iters):
        s1, s0 = max(r.sum(), 1e-9), max((1 - r).sum(), 1e-9)
        mu1, mu0 = (r * z).sum() / s1, ((1 - r) * z).sum() / s0
        sd1 = max(float(np.sqrt((r * (z - mu1) ** 2).sum() / s1)), MIN_SPREAD)
        sd0 = max(float(np.sqrt(((1 - r) * (z - mu0) ** 2).sum() / s0)), MIN_SPREAD)
        new = sigmoid(prior + _log_normal(z, mu1, sd1) - _log_normal(z, mu0, sd0))
        if np.abs(new - r).max() < 1e-6:
            return new
        r = new
    return r


def platt(
    z: np.ndarray,
    target: np.ndarray,
    iters: int = 50,
    *,
    prior: tuple[float, float] | None = None,
    strength: float = 0.0,
) -> tuple[float, float]:
    """``(a, c)`` minimising the cross-entropy of ``sigmoid(a·z + c)`` against ``target`` (soft
    labels in [0, 1]), by Newton's method; with ``prior``, plus ``strength/2·‖(a, c) − prior‖²``
    (a maximum a posteriori fit that few labels move little)."""
    z = np.asarray(z, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    a, c = prior if prior is not None else (1.0, 0.0)
    a0, c0 = a, c
    lam = strength if prior is not None else 0.0

    def loss(a: float, c: float) -> float:
        u = a * z + c
        return float((np.logaddexp(0.0, u) - t * u).sum()) + lam / 2 * (
            (a - a0) ** 2 + (c - c0) ** 2
        )

    f = loss(a, c)
    for _ in range(iters):
        p = sigmoid(a * z + c)
        g = np.array([((p - t) * z).sum() + lam * (a - a0), (p - t).sum() + lam * (c - c0)])
        v = p * (1 - p) + 1e-9
        H = np.array([[(v * z * z).sum(), (v * z).sum()], [(v * z).sum(), v.sum()]])
        step = np.linalg.solve(H + (1e-6 + lam) * np.eye(2), g)
        s = 1.0  # backtracking: a full Newton step can overshoot far (the loss is convex)
        while s > 1e-6 and loss(a - s * step[0], c - s * step[1]) > f - 1e-4 * s * float(g @ step):
            s /= 2
        if s <= 1e-6:
            break
        a, c = a - s * step[0], c - s * step[1]
        f = loss(a, c)
        if np.abs(s * step).max() < 1e-8:
            break
    return float(a), float(c)


def intercept_for_total(z: np.ndarray, a: float, total: float) -> float:
    """``c`` such that ``sum(sigmoid(a·z + c)) = total`` (bisection; the sum grows with c)."""
    z = np.asarray(z, dtype=np.float64)
    lo, hi = -60.0, 60.0
    for _ in range(80):
        c = (lo + hi) / 2
        if sigmoid(a * z + c).sum() > total:
            hi = c
        else:
            lo = c
    return (lo + hi) / 2


def calibrate(z: np.ndarray, n_class: float) -> tuple[float, float]:
    """``(a, c)``: ``sigmoid(a·z + c)`` is the probability of the class for a photo of logit
    ``z``, given that ``n_class`` of the background (logits ``z``) belong to it."""
    m = len(z)
    share = float(np.clip(n_class / m, 0.5 / m, 0.5))
    a, _ = platt(z, class_posterior(z, share))
    a = max(a, 1e-3)  # the ranking is the head's: never reversed
    return a, intercept_for_total(z, a, share * m)


def soften(
    z: np.ndarray, background: np.ndarray, prior: float = SOFTEN_PRIOR
) -> tuple[float, float]:
    """``(k, d)``: probabilities ``sigmoid(k·z + d)`` for ``sigmoid(z)`` fitted on few marks,
    averaged over the fits the marks allow. ``z``: the marks' calibrated logits under heads not
    trained on them (the calibration was fitted on them); ``background``: the calibrated logits
    of a random sample of the library, over which ``d`` keeps the sum of the probabilities (the
    class's estimated size) as it is.

    The recalibration ``sigmoid(a·z + c)`` has, around the fit ``(1, 0)``, the posterior
    covariance ``Σ`` of Laplace's approximation (the inverse of the Hessian of the marks'
    cross-entropy plus ``prior``; it does not depend on their labels); a photo's probability
    averaged over it is about ``sigmoid(z / sqrt(1 + π·s²/8))`` (MacKay), ``s²`` the variance
    of ``a·z + c``. ``k`` is that factor's mean over the marks (the logits where the fit was
    made): about 0.5 after a first strip of 20, near 1 once the marks are many."""
    z = np.asarray(z, dtype=np.float64)
    p = sigmoid(z)
    v = p * (1 - p)
    H = np.array([[(v * z * z).sum(), (v * z).sum()], [(v * z).sum(), v.sum()]])
    S = np.linalg.inv(H + prior * np.eye(2))
    s2 = S[0, 0] * z * z + 2 * S[0, 1] * z + S[1, 1]
    k = float(np.mean(1.0 / np.sqrt(1.0 + np.pi * s2 / 8.0))) if len(z) else 1.0
    zb = np.asarray(background, dtype=np.float64)
    return k, intercept_for_total(zb, k, float(sigmoid(zb).sum()))


def sharpen(z: float | np.ndarray, softened: Sequence[float] | None) -> float | np.ndarray:
    """Logits ``z`` of a softened head (``softened``: its ``Head.params["softened"]``, the
    ``(k, d)`` of :func:`soften`) as the fit before softening gave them, ``(z − d) / k``: what
    the strips draw by and the estimate models with, so that softening changes the probabilities
    a head states and nothing it is taught. ``z`` as it is when ``softened`` is None."""
    if softened is None:
        return z
    k, d = float(softened[0]), float(softened[1])
    return (z - d) / k
