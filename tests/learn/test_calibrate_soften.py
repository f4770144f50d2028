"""Softening a calibration fitted on few marks (finder.learn.calibrate.soften): the probabilities
averaged over the fits the marks allow are closer to the truth while the marks are few, and left
as they are once they are many; the head keeps its answer."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from finder.learn.calibrate import platt, soften
from finder.learn.head import sigmoid
from finder.learn.train import HeadConfig, train_head
from tests.learn.synthetic import six_checks_three_crosses


def _truth() -> np.ndarray:
    """A library's logits that are its photos' true probabilities: the class N(2, 1.5²), the
    rest N(-4, 2²)."""
    rng = np.random.default_rng(0)
    return np.concatenate([rng.normal(2, 1.5, 600), rng.normal(-4, 2, 2400)])


def _fits(n: int, reps: int) -> list[tuple[float, float, float]]:
    """``reps`` times: ``n`` marks drawn near the cut (|logit| < 3), labelled from the true
    probabilities, a Platt fit on them, then softened. Returns (k, the expected log-loss of the
    fit over the library, the same softened)."""
    x = _truth()
    p = sigmoid(x)

    def loss(q: np.ndarray) -> float:
        q = np.clip(q, 1e-12, 1 - 1e-12)
        return float(-(p * np.log(q) + (1 - p) * np.log(1 - q)).mean())

    out = []
    for rep in range(reps):
        rng = np.random.default_rng([n, rep])
        m = rng.choice(np.flatnonzero(np.abs(x) < 3), n, replace=False)
        y = (rng.uniform(size=n) < p[m]).astype(float)
        a, c = platt(x[m], y, prior=(1.0, 0.0), strength=0.1)
        h = a * x + c
        k, d = soften(h[m], h)
        out.append((k, loss(sigmoid(h)), loss(sigmoid(k * h + d))))
    return out


def test_softened_probabilities_are_closer_to_the_truth_after_few_marks() -> None:
    got = np.asarray(_fits(25, 60))
    assert np.median(got[:, 0]) < 0.95  # flatter
    assert got[:, 2].mean() < got[:, 1].mean() - 0.003  # the expected log-loss falls


def test_many_marks_leave_the_probabilities_nearly_as_they_are() -> None:
    got = np.asarray(_fits(400, 10))
    assert np.median(got[:, 0]) > 0.98
    assert abs(got[:, 2].mean() - got[:, 1].mean()) < 1e-3


def test_the_class_size_stays_and_separated_marks_soften_but_not_to_nothing() -> None:
    z = np.r_[np.linspace(3, 9, 10), np.linspace(-9, -3, 15)]  # marks that separate perfectly
    background = np.random.default_rng(1).normal(-5, 3, 2000)
    k, d = soften(z, background)
    assert 0.1 < k < 1.0
    assert sigmoid(k * background + d).sum() == pytest.approx(sigmoid(background).sum(), rel=1e-6)
    k_many, _ = soften(np.tile(np.linspace(-2, 2, 41), 20), background)
    assert k_many > 0.97


def test_a_head_calibrated_on_marks_is_softened_and_keeps_its_answer() -> None:
    X, _, pos, neg, bg = six_checks_three_crosses()
    head = train_head(X[pos], X[neg], X[bg])
    sharp = train_head(X[pos], X[neg], X[bg], config=replace(HeadConfig(), marks_soften=False))
    k, d = head.params["softened"]
    assert 0 < k <= 1 and "softened" not in sharp.params
    np.testing.assert_allclose(head.logits(X), k * sharp.logits(X) + d, atol=1e-3)
    answer = head.logits(X) >= head.logit_threshold
    np.testing.assert_array_equal(answer, sharp.logits(X) >= sharp.logit_threshold)
    held, held_sharp = (np.asarray(h.params["held_out_logits"]) for h in (head, sharp))
    np.testing.assert_allclose(held, k * held_sharp + d, atol=1e-3)
