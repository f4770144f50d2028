"""The answer near the cut re-ranked by its neighbours (finder.learn.smooth)."""

from __future__ import annotations

import numpy as np
import pytest

from finder.learn.scores import precision_recall
from finder.learn.smooth import Smooth, neighbours, smooth_graph, smooth_rows, smoothed
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


def test_precomputed_neighbours_smooth_as_the_brute_force_does():
    rng = np.random.default_rng(1)
    X = _unit(rng.standard_normal((300, 16)))
    z = 1.5 * rng.standard_normal(300)
    marks = {int(i): int(rng.random() < 0.5) for i in rng.choice(300, 30, replace=False)}
    cfg = Smooth(k=5)
    ids, sims = neighbours(X, 12)  # more than k: the first k columns are the nearest
    assert (np.diff(sims, axis=1) <= 0).all() and (ids != np.arange(300)[:, None]).all()
    rows = np.arange(300)
    want = smooth_rows(z, 0.3, X, rows, marks, config=cfg)
    got = smooth_graph(z, 0.3, ids, sims, marks, config=cfg)
    assert np.allclose(got, want)
    assert not np.allclose(got, z)
    # one photo's other logit (a mark's held-out one) re-ranked among the same neighbours
    held = smooth_graph(z, 0.3, ids[[7]], sims[[7]], marks, own=np.array([0.2]), config=cfg)
    assert held[0] == pytest.approx(
        smoothed(
            np.array([0.2]),
            0.3,
            z[ids[7, :5]][None],
            sims[7:8, :5],
            np.array([[marks.get(int(j), np.nan) for j in ids[7, :5]]]),
            config=cfg,
        )[0]
    )


def test_the_estimate_of_a_smoothed_answer_covers_its_truth():
    """Review strips on two noisy clusters, the answer smoothed (strongly, so it differs from
    the head's): the estimate's ranges hold the smoothed answer's precision and recall in most
    (class, trial) cases after two strips."""
    from finder.learn.feedback import ArrayTeacher, feedback
    from tests.learn.synthetic import library

    X, y = library(n_classes=5, per_class=160, dim=32, spread=0.25, seed=3)
    labels = [f"c{i}" for i in y]
    args = dict(k=5, rounds=3, clicks=20, shown="review", trials=4, classes=["c0", "c1"])
    got = feedback(X, labels, ArrayTeacher(X), smooth=Smooth(weight=5.0, width=3.0), **args)
    late = [r for r in got["rows"] if r["round"] >= 2]
    n = sum(r["estimates"] for r in late)
    assert n >= 12  # an estimate in most cases
    for key in ("precision", "recall"):
        assert sum(r[f"{key}_covered"] for r in late) >= 0.8 * n
    assert all(r["f1"] > r["f1_head"] for r in late)  # the answer estimated is not the head's
    for r in late:  # and the estimate is of it
        assert abs(r["estimated_precision"] - r["true_precision"]) < 0.03
        assert abs(r["estimated_recall"] - r["true_recall"]) < 0.03
