"""Which exclusive sibling a photo goes to (``finder.learn.joint``): a multinomial head on the
siblings' filed photos, each class weighing the same, and the rule ``keep_own`` that gives a
photo to the class of the highest margin, plus the joint head's log-probability where both
classes are in it."""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax

from finder.learn.joint import JOINT_TRUST, JOINT_WEIGHT, Joint, draw, keep_own
from tests.learn.synthetic import library


def test_a_class_filed_5_times_keeps_its_photos_against_one_filed_200_times() -> None:
    """Each class weighs the same whatever its number of filed photos: the small class's
    unsorted photos are its own, not its large neighbours'."""
    X, y = library(n_classes=3, per_class=260, dim=24, spread=0.25, seed=3)
    rng = np.random.default_rng(3)
    small = rng.choice(np.flatnonzero(y == 0), size=5, replace=False)
    large = rng.choice(np.flatnonzero(y == 1), size=200, replace=False)
    other = rng.choice(np.flatnonzero(y == 2), size=200, replace=False)
    joint = Joint([X[small], X[large], X[other]])
    rest = np.setdiff1d(np.flatnonzero(y == 0), small)
    picked = np.argmax(joint.scores(X[rest]), axis=1)
    assert np.mean(picked == 0) > 0.85
    q = np.exp(log_softmax(joint.scores(X[:7]), axis=1))
    assert np.allclose(q.sum(axis=1), 1.0)


def test_a_joint_head_that_cannot_tell_its_classes_apart_held_out_is_not_trusted() -> None:
    """Held out, a joint head over three well-parted classes gives nearly every photo back to
    its class: it is trusted to choose among them. Over two classes and a folder holding
    photos of both (tests/test_filing's ``tagged/``), it gives the folder's photos to the two
    and theirs to the folder: below ``JOINT_TRUST``, the margins alone choose."""
    X, y = library(n_classes=3, per_class=60, dim=24, spread=0.25, seed=5)
    a, b, c = (X[y == k][:12] for k in range(3))
    parted = Joint([a, b, c])
    assert parted.accuracy > 0.95 and parted.trusted
    mixed = Joint([a[:6], b[:6], np.concatenate([a[6:], b[6:]])])
    assert mixed.accuracy < JOINT_TRUST and not mixed.trusted


def test_the_draw_is_bounded_and_the_same_for_the_same_ids() -> None:
    ids = np.arange(1000, 1500)
    a, b = draw(ids[::-1], 200), draw(ids, 200)
    assert len(a) == 200 and np.array_equal(a, b) and set(a) <= set(ids.tolist())
    assert np.array_equal(draw(ids[:50], 200), ids[:50])


def test_without_a_joint_head_the_higher_margin_takes_the_photo() -> None:
    mine = np.array([1.0, 0.5, -0.2, 2.0])
    theirs = [np.array([0.5, 0.9, -0.5, -3.0]), np.array([-1.0, 0.0, 0.1, 1.0])]
    assert keep_own(mine, theirs).tolist() == [True, False, False, True]


def test_a_sibling_in_the_joint_head_takes_the_photo_where_it_is_likelier() -> None:
    """Margins plus ``JOINT_WEIGHT`` times the joint log-probability decide between classes
    in the joint head (the joint head says which of them, the margins whether: a photo the
    joint head gives to a sibling below its cut goes to neither); a sibling outside the joint
    head is compared by margins."""
    mine = np.array([0.5, 0.5, 0.5, 0.5])
    rival = np.array([0.2, 0.2, -0.6, 0.9])
    log_q = np.log(np.array([[0.1, 0.9], [0.9, 0.1], [0.01, 0.99], [0.9, 0.1]]))
    kept = keep_own(mine, [rival], log_q, [True])
    # photo 0: the rival's margin is lower, but the joint head says it is the rival's by 9:1
    # photo 2: the joint head says the rival's by 99:1, though it is below the rival's cut
    # photo 3: the rival's margin is higher, but the joint head says it is ours by 9:1
    assert kept.tolist() == [False, True, False, True]
    assert JOINT_WEIGHT * np.log(9) > 0.4  # what photos 0 and 3 turn on
    outside = keep_own(mine, [rival], log_q[:, :1], [False])
    assert outside.tolist() == [True, True, True, False]
