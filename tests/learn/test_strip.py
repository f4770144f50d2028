"""Strips: chosen photos and photos drawn with a known chance; the estimate that stands on them."""

from __future__ import annotations

import numpy as np
import pytest

from finder.learn.estimate import Mark, estimate, wilson
from finder.learn.strip import (
    StripPlan,
    choose_strip,
    draw_pps,
    review_picks,
    typicality,
    usefulness,
)
from tests.learn.synthetic import _unit


def test_draw_pps_draws_each_unit_with_its_stated_chance():
    rng = np.random.default_rng(0)
    size = np.r_[np.full(50, 1.0), np.full(10, 4.0), [60.0]]  # the last one is sure
    counts = np.zeros(len(size))
    chances = np.zeros(len(size))
    for _ in range(4000):
        picks, pi = draw_pps(size, 8, rng, order=np.arange(len(size)))
        assert len(set(picks.tolist())) == 8 == len(picks)
        counts[picks] += 1
        chances[picks] = pi
    assert chances[-1] == 1.0 and counts[-1] == 4000  # taken for certain
    # the rest: 7 draws in proportion, 1/90 and 4/90 of 7
    assert chances[0] == pytest.approx(7 / 90) and chances[55] == pytest.approx(28 / 90)
    assert counts[:50].mean() / 4000 == pytest.approx(7 / 90, rel=0.08)
    assert counts[50:60].mean() / 4000 == pytest.approx(28 / 90, rel=0.05)


def test_a_strip_holds_chosen_photos_near_the_cut_and_distinct_draws():
    rng = np.random.default_rng(1)
    V = _unit(rng.standard_normal((500, 16)))
    z = np.linspace(-8, 4, 500)
    strip = choose_strip(z, 0.0, lambda pos: V[pos], rng=rng, plan=StripPlan(size=20, drawn=6))
    assert len(strip) == 20 and len(set(strip.picks.tolist())) == 20
    chosen, drawn = strip.picks[~strip.random], strip.picks[strip.random]
    assert len(chosen) == 14 and len(drawn) == 6
    assert np.all(np.abs(z[chosen]) <= np.sort(np.abs(z))[4 * 14])  # from the pool near the cut
    assert np.all((strip.chance[strip.random] > 0) & (strip.chance[strip.random] <= 1))
    assert np.array_equal(strip.guess, z[strip.picks] >= 0.0)
    # a draw's chance follows its usefulness: nearer the cut, likelier
    u = usefulness(np.array([0.0, -6.0]), 0.05)
    assert u[0] > u[1] > 0


def test_a_strip_never_holds_more_than_the_candidates():
    rng = np.random.default_rng(2)
    V = _unit(rng.standard_normal((7, 8)))
    strip = choose_strip(np.arange(7.0) - 3, 0.0, lambda p: V[p], rng=rng)
    assert sorted(strip.picks.tolist()) == list(range(7))


def test_wilson_interval_known_values():
    lo, hi = wilson(0.5, 100, 0.95)
    assert (lo, hi) == pytest.approx((0.404, 0.596), abs=0.001)
    lo, hi = wilson(1.0, 10, 0.9)
    assert hi == 1.0 and lo == pytest.approx(10 / (10 + 1.645**2), abs=0.001)


def _simulate(seed: int, strips: int, drawn: int = 10):
    """A library of 3,000 photos whose class (20 %) and answer are fixed; strips drawn as
    ``choose_strip`` draws them, marked from the labels. Returns (marks, cut, truth)."""
    rng = np.random.default_rng(seed)
    n = 3000
    y = rng.uniform(size=n) < 0.2
    z = np.where(y, rng.normal(2.0, 1.5, n), rng.normal(-3.0, 1.5, n))
    cut = 0.5
    marked = np.zeros(n, dtype=bool)
    marks: list[Mark] = []
    V = _unit(rng.standard_normal((n, 8)))
    for s in range(strips):
        rest = np.flatnonzero(~marked)
        strip = choose_strip(
            z[rest],
            cut,
            lambda p, rest=rest: V[rest[p]],
            rng=rng,
            plan=StripPlan(size=20, drawn=drawn),
        )
        for i, c in zip(rest[strip.picks], strip.chance, strict=True):
            marks.append(Mark(int(y[i]), float(z[i]), s + 1, s, float(c)))
        marked[rest[strip.picks]] = True
    answer = z >= cut
    tp = (answer & y).sum()
    return marks, cut, (tp / answer.sum(), tp / y.sum())


def test_the_estimate_holds_the_truth_in_most_draws():
    held = {"precision": 0, "recall": 0}
    runs = 60
    for seed in range(runs):
        marks, cut, (p, r) = _simulate(seed, strips=5)
        est = estimate(marks, cut)
        assert est is not None and est["marks"] == 50
        for key, truth in (("precision", p), ("recall", r)):
            lo, hi = est[f"{key}_range"]
            assert lo <= est[key] <= hi
            held[key] += lo <= truth <= hi
    assert held["precision"] / runs >= 0.8 and held["recall"] / runs >= 0.8


def test_no_estimate_without_enough_random_draws():
    marks, cut, _ = _simulate(0, strips=1, drawn=6)
    assert estimate(marks, cut) is None  # 6 draws < 10
    chosen_only = [Mark(m.label, m.score, m.known_from, m.strip) for m in marks]
    assert estimate(chosen_only, cut) is None
    assert estimate([], 0.0) is None


def test_a_strip_is_full_and_without_repeats_when_few_photos_lie_near_the_cut():
    rng = np.random.default_rng(0)
    V = rng.normal(size=(500, 8))
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    z = np.full(500, -np.inf)  # far below the cut: not scored (finder.strips.FAR)
    z[:5] = [0.5, -0.2, 1.0, -1.0, 0.1]
    strip = choose_strip(z, 0.0, lambda pos: V[pos], rng=rng, plan=StripPlan(size=20, drawn=6))
    assert len(strip) == 20 and len(set(strip.picks.tolist())) == 20
    assert set(range(5)) <= set(strip.picks.tolist())  # the scored ones chosen
    assert int(strip.random.sum()) == 15  # the draws fill the rest, each with its chance


def test_the_choice_window_and_its_centre():
    """``window`` × n photos nearest ``cut + offset`` are what the chosen ones come from."""
    rng = np.random.default_rng(3)
    V = _unit(rng.standard_normal((400, 16)))
    z = rng.uniform(-6, 6, 400)
    order = np.argsort(np.abs(z))
    narrow = review_picks(z, 0.0, V, np.arange(400), 10, window=1)
    assert set(narrow.tolist()) == set(order[:10].tolist())  # no room to spread: the nearest
    wide = review_picks(z, 0.0, V, np.arange(400), 10, window=8)
    assert np.abs(z[wide]).max() <= np.abs(z[order[79]]) + 1e-12
    assert np.abs(z[wide]).max() > np.abs(z[order[39]])  # reaches past a window of 4
    above = review_picks(z, 0.0, V, np.arange(400), 10, offset=1.0)
    assert np.all(np.abs(z[above] - 1.0) <= np.sort(np.abs(z - 1.0))[39] + 1e-12)
    assert (z[above] > 0).all()  # the window centred a logit above the cut


def test_typical_photos_are_preferred_to_outliers_near_the_cut():
    rng = np.random.default_rng(4)
    centre = _unit(rng.standard_normal((1, 32)))
    V = _unit(centre + 0.05 * rng.standard_normal((200, 32)))  # one kind of photo ...
    V[:3] = _unit(rng.standard_normal((3, 32)))  # ... and three odd ones out
    z = np.linspace(-3, 3, 200)
    z[:3] = [0.01, -0.02, 0.03]  # the odd ones sit on the cut
    t = typicality(V[:40], V)
    assert t.max() == 1.0 and t[:3].max() < t[3:].min()
    spread_only = review_picks(z, 0.0, V, np.arange(200), 6)
    assert {0, 1, 2} <= set(spread_only.tolist())  # unlike the rest: spread picks them
    typical = review_picks(z, 0.0, V, np.arange(200), 6, typical=4.0)
    assert len(set(typical.tolist()) & {0, 1, 2}) <= 1  # the nearest is still first
