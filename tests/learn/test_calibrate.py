"""Calibration: probabilities that match frequencies, and marks that move the estimate."""

from __future__ import annotations

import numpy as np
import pytest

from finder.learn.calibrate import (
    calibrate,
    class_posterior,
    intercept_for_total,
    platt,
)
from finder.learn.head import sigmoid
from finder.learn.scores import calibration_error


def scores(n_pos=200, n_neg=800, seed=0):
    """Logits of a ranking: the class N(1, 1.5²), the rest N(-3, 1)."""
    rng = np.random.default_rng(seed)
    z = np.concatenate([rng.normal(1, 1.5, n_pos), rng.normal(-3, 1, n_neg)])
    return z, np.r_[np.ones(n_pos, bool), np.zeros(n_neg, bool)]


@pytest.mark.parametrize("n_pos", [20, 200, 400])
def test_calibrated_probabilities_match_frequencies(n_pos):
    z, truth = scores(n_pos=n_pos, seed=n_pos)
    a, c = calibrate(z, truth.sum())
    p = sigmoid(a * z + c)
    assert a > 0
    assert p.sum() == pytest.approx(truth.sum(), rel=1e-3)
    assert calibration_error(truth, p) < 0.05
    assert calibration_error(truth, sigmoid(z)) > calibration_error(truth, p)


def test_posterior_and_platt_recover_a_logistic():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 2, 5000)
    t = sigmoid(1.7 * z - 0.4)
    a, c = platt(z, t)
    assert (a, c) == (pytest.approx(1.7, abs=1e-3), pytest.approx(-0.4, abs=1e-3))
    r = class_posterior(scores()[0], 0.2)
    assert r[:200].mean() > 0.85 and r[200:].mean() < 0.05
    assert sigmoid(0.5 * z + intercept_for_total(z, 0.5, 1234.0)).sum() == pytest.approx(1234.0)


def _penalised(z, t, a, c, prior, strength):
    u = a * z + c
    loss = float((np.logaddexp(0.0, u) - t * u).sum())
    return loss + strength / 2 * ((a - prior[0]) ** 2 + (c - prior[1]) ** 2)


def test_platt_from_a_far_prior_reaches_the_minimum_and_never_overshoots():
    """Marks near a class's cut (logits of two overlapping groups) and a prior far from their
    fit: a full Newton step from the prior overshot once (seed 17 here went to a = 71,
    c = -75: every probability 0 or 1, a class's answer collapsed to 4 photos for a round).
    Every fit is the minimum of the penalised loss (checked against a grid around it)."""
    from scipy.optimize import minimize

    prior = (5.09, -1.26)
    for seed in range(20):
        rng = np.random.default_rng(seed)
        z = np.concatenate([rng.normal(0.9, 0.9, 71), rng.normal(-1.0, 0.7, 74)])
        t = np.r_[np.ones(71), np.zeros(74)]
        a, c = platt(z, t, prior=prior, strength=1.0)
        best = minimize(lambda v, z=z, t=t: _penalised(z, t, *v, prior, 1.0), x0=[1.0, 0.0]).x
        assert 0 < a < 10
        assert abs(a - best[0]) < 1e-3 and abs(c - best[1]) < 1e-3
