"""A filed class's head (``finder.learn.filed``): its size also read from its filed photos held
out against fresh photos, its probabilities calibrated and its cut chosen on that size."""

from __future__ import annotations

import numpy as np
import pytest

from finder.learn.cutoff import CutInput, cut_off
from finder.learn.filed import (
    FILED_PRIOR,
    HELD_OUT_BELOW,
    HELD_OUT_WEIGHT,
    LARGE_WEIGHT,
    filed_share,
    held_out_median_share,
    held_out_share,
    train_filed_head,
)
from finder.learn.head import sigmoid
from finder.learn.train import train_head
from finder.teach_inputs import FILED_HEAD
from tests.learn.synthetic import _unit, library


def _filed(seed: int, spread: float = 0.3, per_class: int = 400, filed: int = 100):
    """Eight classes, ``filed`` photos of each filed; the rest unsorted: a background of 2,000
    of them and the others fresh. Class 0's inputs as ``Teaching`` gives them."""
    X, y = library(n_classes=8, per_class=per_class, spread=spread, seed=seed)
    inputs, rest = _file(X, y, [filed] * 8, np.random.default_rng(seed))
    return inputs, float(np.mean(y[rest] == 0))


def _file(X: np.ndarray, y: np.ndarray, sizes: list[int], rng: np.random.Generator):
    """``sizes[c]`` photos of each class ``c`` filed, the rest unsorted (a background of 2,000
    of them, the others fresh): class 0's inputs as ``Teaching`` gives them, and the unsorted
    photos' positions."""
    done = np.concatenate(
        [rng.choice(np.flatnonzero(y == c), size=n, replace=False) for c, n in enumerate(sizes)]
    )
    rest = rng.permutation(np.setdiff1d(np.arange(len(X)), done))
    pos, neg = done[y[done] == 0], done[y[done] != 0]
    inputs = dict(
        positives=X[pos],
        negatives=X[neg],
        background=X[rest[:2000]],
        fresh=X[rest[2000:]],
        config=FILED_HEAD,
        seed=0,
        sample=np.ones(len(pos), dtype=bool),
    )
    return inputs, rest


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_filed_photos_held_out_tell_the_class_share_of_the_unsorted(seed):
    """Each filed photo held out is outranked by about half the class among the fresh photos
    (held out too): twice the mean share is near the class's share of the unsorted photos."""
    inputs, truth = _filed(seed)
    share, q = held_out_share(
        inputs["positives"],
        inputs["negatives"],
        inputs["background"],
        inputs["fresh"],
        config=FILED_HEAD,
        sample=inputs["sample"],
    )
    assert len(q) == len(inputs["positives"])
    assert truth * 0.75 < share < truth * 1.3


def test_the_head_is_calibrated_and_cut_on_the_geometric_mean_of_both_sizes():
    inputs, _ = _filed(0, filed=20)
    head = train_filed_head(**inputs)
    p = head.params
    m, f = p["n_background"], len(inputs["fresh"])
    both = (1 - HELD_OUT_WEIGHT) * np.log(p["n_class_trained"]) + HELD_OUT_WEIGHT * np.log(
        p["n_class_held_out"]
    )
    w = FILED_PRIOR / (FILED_PRIOR + len(inputs["positives"]))  # the filing's share weighed in
    want = np.exp((1 - w) * both + w * np.log(p["n_class_filed"]))
    assert p["n_class_estimate"] == pytest.approx(want, rel=1e-6)
    z = head.logits(inputs["fresh"]).astype(np.float64)
    assert sigmoid(z).sum() == pytest.approx(p["n_class_estimate"] * f / m, rel=0.02)
    cut = cut_off(CutInput(np.sort(z)[::-1], p.get("n_size_probe")), FILED_HEAD.cut)
    assert head.threshold == pytest.approx(cut, rel=1e-3)
    # the ranking is the trained head's: only its scale and its cut changed
    plain = train_head(**inputs)
    assert np.corrcoef(plain.logits(inputs["fresh"]), z)[0, 1] > 0.9999


def test_without_fresh_photos_or_with_one_filed_photo_the_head_is_the_trained_one():
    inputs, _ = _filed(1, filed=HELD_OUT_BELOW)
    few = {"positives": inputs["positives"][:20], "sample": inputs["sample"][:20]}
    for changed in (
        {"fresh": None} | few,
        {"positives": inputs["positives"][:1], "sample": None},
    ):
        given = inputs | changed
        a, b = train_filed_head(**given), train_head(**given)
        assert np.array_equal(a.w, b.w) and a.b == b.b and a.threshold == b.threshold
        assert "n_class_held_out" not in a.params


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_large_class_with_unfiled_look_alikes_is_sized_by_its_median_held_out_photo(seed):
    """Class 1 is never filed and looks like class 0 (pulled towards it): held out, a filed
    photo of class 0 is outranked by the look-alikes too, so twice the mean share overstates
    the class, as the training's count does (it counts the look-alikes past logit 0). Above
    the median filed photo the fresh photos are mostly of the class: twice their share is
    nearer the truth, and a class of ``HELD_OUT_BELOW`` filed photos or more is sized by the
    geometric mean of it and the training's (``LARGE_WEIGHT``), without the filed share."""
    X, y = library(n_classes=8, per_class=400, spread=0.3, seed=seed)
    X = X.astype(np.float64)
    X[y == 1, 0] += 0.3
    X = _unit(X)
    inputs, rest = _file(X, y, [100, 0, 100, 100, 100, 100, 100, 100], np.random.default_rng(seed))
    truth = float(np.mean(y[rest] == 0))
    parts = [inputs[k] for k in ("positives", "negatives", "background", "fresh")]
    mean, _ = held_out_share(*parts, config=FILED_HEAD)
    median = held_out_median_share(*parts, config=FILED_HEAD)
    assert abs(np.log(median / truth)) < abs(np.log(mean / truth))
    assert 0.8 < median / truth < 1.3
    head = train_filed_head(**inputs)
    p = head.params
    want = (1 - LARGE_WEIGHT) * np.log(p["n_class_trained"]) + LARGE_WEIGHT * np.log(
        p["n_class_held_out"]
    )
    assert p["n_class_estimate"] == pytest.approx(np.exp(want), rel=1e-6)
    assert p["n_class_filed"] is None  # dozens of filed photos: the filing's share not weighed
    m = p["n_background"]
    assert abs(np.log(p["n_class_estimate"] / m / truth)) < abs(
        np.log(p["n_class_trained"] / m / truth)
    )
    plain = train_head(**inputs)  # the ranking is the trained head's
    assert np.corrcoef(plain.logits(inputs["fresh"]), head.logits(inputs["fresh"]))[0, 1] > 0.9999


def _few_filed(seed: int, filed_small: int = 2):
    """Eight classes, class 0 rare (40 photos against 400 each) and filed as often as the rest
    (``filed_small`` of its photos, 20 of each other class's): class 0's inputs."""
    X, y = library(n_classes=8, per_class=400, spread=0.3, seed=seed)
    rng = np.random.default_rng(seed)
    rare = rng.choice(np.flatnonzero(y == 0), size=40, replace=False)
    keep = np.concatenate([rare, np.flatnonzero(y != 0)])
    X, y = X[keep], y[keep]
    inputs, rest = _file(X, y, [filed_small] + [20] * 7, rng)
    return inputs, X[rest], y[rest] == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_class_of_two_filed_photos_is_sized_near_its_share_of_the_filing(seed):
    """Two filed photos held out say little (each probe trained on one photo): alone they sized
    the class at up to half the library (an answer of 1,684 photos for a class of 38). Weighed
    with the class's share of the filed photos (``FILED_PRIOR``), the answer stays within
    ten times the class."""
    inputs, X, truth = _few_filed(seed)
    head = train_filed_head(**inputs)
    p = head.params
    share = filed_share(len(inputs["positives"]), len(inputs["negatives"]))
    assert p["n_class_filed"] == pytest.approx(share * p["n_background"])
    assert p["n_class_estimate"] < 6 * truth.mean() * p["n_background"]
    answer = head.logits(X) >= head.logit_threshold
    assert answer.sum() < 10 * truth.sum()


def test_the_filing_weighs_less_the_more_photos_are_filed():
    """The weight of the filed share is ``FILED_PRIOR / (FILED_PRIOR + filed photos)``: the
    estimate moves less towards it for a class of 20 filed photos than for one of 2."""
    moved = []
    for n in (2, 20):
        inputs, _, _ = _few_filed(1, filed_small=n)
        p = train_filed_head(**inputs).params
        alone = np.exp(
            (1 - HELD_OUT_WEIGHT) * np.log(p["n_class_trained"])
            + HELD_OUT_WEIGHT * np.log(p["n_class_held_out"])
        )
        w = FILED_PRIOR / (FILED_PRIOR + n)
        want = np.exp((1 - w) * np.log(alone) + w * np.log(p["n_class_filed"]))
        assert p["n_class_estimate"] == pytest.approx(want, rel=1e-6)
        moved.append(abs(np.log(p["n_class_estimate"] / alone)))
    assert moved[0] > moved[1]
