"""Calibration: probabilities that match frequencies, and marks that move the estimate."""

from __future__ import annotations

import numpy as np
import pytest

from finder.learn.calibrate import (
    calibrate,
    class_posterior,
    intercept_for_total,
    platt,
    size_after_marks,
)
from finder.learn.head import Head, sigmoid
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


def test_marks_move_the_estimate_most_near_the_cut():
    rng = np.random.default_rng(2)
    w = rng.standard_normal(8).astype(np.float32)
    head = Head(w, -1.0)
    B = rng.standard_normal((300, 8)).astype(np.float32)
    marked = rng.standard_normal((10, 8)).astype(np.float32)
    n0 = float(head.proba(B).sum())
    mixed = np.r_[np.ones(7), np.zeros(3)]
    up, d_up = size_after_marks(head, B, marked, mixed)
    down, d_down = size_after_marks(head, B, marked, 1 - mixed)
    assert d_up > d_down and down < up  # more ✓ among the same photos: a larger class
    # sure photos marked as expected move it little; uncertain ones move it more
    z = head.logits(marked)
    sure = np.r_[np.argsort(-z)[:3], np.argsort(z)[:1]]
    unsure = np.argsort(np.abs(z))[:4]
    label = np.r_[np.ones(3), np.zeros(1)]
    assert abs(size_after_marks(head, B, marked[sure], label)[1]) < abs(
        size_after_marks(head, B, marked[unsure], label)[1]
    )
    # all ✓ or all ✗ (picked by label): no shift; no marks: nothing changes
    assert size_after_marks(head, B, marked, np.ones(10))[1] == 0.0
    assert size_after_marks(head, B, marked, np.zeros(10))[1] == 0.0
    assert size_after_marks(head, B, marked[:0], np.ones(0)) == (pytest.approx(n0), 0.0)
