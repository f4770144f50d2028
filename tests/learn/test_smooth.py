"""The answer near the cut re-ranked by its neighbours (finder.learn.smooth)."""

from __future__ import annotations

import numpy as np
import pytest

from finder.learn.scores import precision_recall
from finder.learn.smooth import Smooth, smooth_rows, smoothed
from tests.learn.synthetic import _unit


def test_a_photo_near_the_cut_follows_its_neighbours_and_a_far_one_keeps_its_score():
    nan = np.nan
    z = np.array([-0.3, 0.3, -5.0, 0.1])
    nbr_z = np.array([[-4.0, -4.0], [4.0, 4.0], [6.0, 6.0], [-6.0, 6.0]])
    sim = np.full((4, 2), 0.9)
    mark = np.array([[1.0, 1.0], [0.0, 0.0], [nan, nan], [nan, nan]])  # marks outvote scores
    cfg = Smooth(k=2, weight=2.0, width=1.0)
    out = smoothed(z, 0.0, nbr_z, sim, mark, config=cfg)
    assert out[0] == pytest.approx(-0.3 + 2.0)  # two ✓ around it: above the cut
    assert out[1] == pytest.approx(0.3 - 2.0)  # two ✗: below
    assert out[2] == -5.0  # far below the cut: not moved, whatever its neighbours
    assert out[3] == pytest.approx(0.1, abs=1e-3)  # neighbours that disagree: about where it was
    # the nearer neighbour weighs more
    near_pos = smoothed(z[3:], 0.0, nbr_z[3:], np.array([[0.5, 0.9]]), mark[3:], config=cfg)
    assert near_pos[0] > 1.5
    # a softened head: the width and the move are in the fit's scale before softening
    soft = smoothed(z[:1] * 0.5, 0.0, nbr_z[:1], sim[:1], mark[:1], softened=[0.5, 0.0], config=cfg)
    assert soft[0] == pytest.approx((-0.3 + 2.0) * 0.5)


def test_smoothing_mends_a_noisy_score_near_the_cut_of_two_clusters():
    rng = np.random.default_rng(0)
    n = 400
    truth = np.arange(n) < n // 2
    centres = _unit(rng.standard_normal((2, 32)))
    X = _unit(centres[(~truth).astype(int)] + 0.15 * rng.standard_normal((n, 32)))
    z = np.where(truth, 1.0, -1.0) + 1.2 * rng.standard_normal(n)  # a noisy head
    marks = {int(i): int(truth[i]) for i in rng.choice(n, 20, replace=False)}
    rows = np.arange(n)
    out = smooth_rows(z, 0.0, X, rows, marks, config=Smooth(k=10, weight=3.0, width=2.0))
    before = precision_recall(truth, z >= 0)[2]
    after = precision_recall(truth, out >= 0)[2]
    assert after > before + 0.05
    assert np.array_equal(out[np.abs(z) >= 2.0], z[np.abs(z) >= 2.0])  # far ones untouched
    assert np.abs(out - z).max() <= 3.0 + 1e-9
