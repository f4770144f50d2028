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
