"""Teaching in rounds on generated vectors: what ✓ and ✗ marks do, and the eval protocol."""

from __future__ import annotations

import numpy as np
import pytest

from finder.errors import UsageError
from finder.learn.feedback import ArrayTeacher, feedback
from finder.learn.metric import library_metric
from finder.learn.scores import answer_scores, best_f1, calibration_error
from finder.learn.strip import review_picks, top_picks
from tests.learn.synthetic import _unit, library

METRIC = pytest.mark.parametrize("metric", [False, True], ids=["stored", "metric"])


def confusable(sizes=(60, 40, 100, 100), dim=32, spread=0.22, seed=0):
    """Clusters around unit directions; class 1's centre leans towards class 0's, so a head for
    class 0 ranks some of class 1 high. Returns (X, y)."""
    rng = np.random.default_rng(seed)
    centres = np.eye(dim)[: len(sizes)].copy()
    centres[1] = _unit((np.eye(dim)[0] + 1.2 * np.eye(dim)[1])[None])[0]
    y = np.repeat(np.arange(len(sizes)), sizes)
    return _unit(centres[y] + spread * rng.standard_normal((len(y), dim))), y


def teacher_for(X, metric: bool) -> ArrayTeacher:
    """Learns as ``Library.learn`` does: in the library's metric (``metric``), or on the
    stored vectors."""
    return ArrayTeacher(X, metric=library_metric(X) if metric else None)


def answer(head, X) -> np.ndarray:
    return head.proba(X) >= head.threshold


@METRIC
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_round_of_rejections_lowers_the_wrong_photos(seed, metric):
    X, y = confusable(seed=seed)
    teacher = teacher_for(X, metric)
    rng = np.random.default_rng(seed)
    ex = rng.choice(np.flatnonzero(y == 0), size=5, replace=False)
    before = teacher.learn("a", ex, ex[:0], seed=seed)
    z = before.logits(X)
    z[ex] = -np.inf
    wrong = np.flatnonzero(y != 0)
    shown = wrong[np.argsort(-z[wrong])[:10]]  # the ten best-ranked wrong photos
    after = teacher.learn("a", shown[:0], shown, seed=seed)
    assert np.all(after.logits(X[shown]) < before.logits(X[shown]))
    assert after.proba(X[shown]).max() < before.proba(X[shown]).max()
    # their look-alikes (the rest of class 1) go down with them, the class stays
    others = np.setdiff1d(np.flatnonzero(y == 1), shown)
    assert after.proba(X[others]).mean() < before.proba(X[others]).mean()
    rest = np.setdiff1d(np.flatnonzero(y == 0), ex)
    assert answer(after, X[rest]).mean() >= answer(before, X[rest]).mean() - 0.05


@pytest.mark.parametrize("seed", [0, 1])
@METRIC
def test_a_class_taught_in_rounds_is_the_class_taught_its_marks_at_once(seed, metric):
    """Nothing of a previous head carries over (issue 24, item 4): rounds of ✓ and ✗ (enough
    for the marks' own calibration) give the head that one teaching of every mark gives."""
    X, y = confusable(sizes=(60, 40, 100, 100), seed=seed)
    rounds = teacher_for(X, metric)
    rng = np.random.default_rng(seed)
    ex = rng.choice(np.flatnonzero(y == 0), size=5, replace=False)
    head = rounds.learn("a", ex, ex[:0], seed=seed)
    marked = set(ex.tolist())
    for _ in range(3):
        free = np.setdiff1d(np.arange(len(X)), list(marked))
        shown = review_picks(head.logits(X), head.logit_threshold, X, free, 8)
        marked |= set(shown.tolist())
        head = rounds.learn("a", shown[y[shown] == 0], shown[y[shown] != 0], seed=seed)
    assert "n_class_marks" in head.params  # calibrated on the marks
    everything = np.asarray(sorted(marked))
    at_once = teacher_for(X, metric).learn(
        "a", everything[y[everything] == 0], everything[y[everything] != 0], seed=seed
    )
    assert np.array_equal(head.w, at_once.w)
    assert (head.b, head.threshold) == (at_once.b, at_once.threshold)


@METRIC
def test_many_examples_keep_the_cut_sane(metric):
    """`learn --add` with many examples (here 60 of a class of 150 in 400): the answer keeps the
    class, neither collapsing to the examples nor swallowing the library."""
    X, y = confusable(sizes=(150, 50, 100, 100), seed=5)
    teacher = teacher_for(X, metric)
    members = np.random.default_rng(5).permutation(np.flatnonzero(y == 0))
    teacher.learn("a", members[:5], members[:0], seed=0)
    head = teacher.learn("a", members[5:65], members[:0], seed=0)
    rest = np.setdiff1d(np.arange(len(X)), members[:65])
    got = answer(head, X[rest])
    truth = y[rest] == 0
    assert (got & truth).sum() / truth.sum() >= 0.9  # recall
    assert (got & truth).sum() / got.sum() >= 0.85  # precision
    assert 0.05 < head.threshold < 0.95


def test_review_picks_are_near_the_cut_and_unlike_each_other():
    rng = np.random.default_rng(0)
    X = _unit(rng.standard_normal((50, 16)))
    X[11] = X[10]  # a duplicate of the photo nearest the cut
    z = np.linspace(-5, 5, 50)
    z[10], z[11] = 0.01, 0.02
    picked = review_picks(z, 0.0, X, np.arange(50), 5)
    assert picked[0] == 10 and 11 not in picked
    assert len(set(picked.tolist())) == 5
    assert np.all(np.abs(z[picked]) <= np.sort(np.abs(z))[20])  # from the pool near the cut
    assert 10 not in review_picks(z, 0.0, X, np.setdiff1d(np.arange(50), [10]), 5)
    assert np.array_equal(top_picks(z, np.arange(50), 3), [49, 48, 47])


def test_calibration_error_known_values():
    assert calibration_error(np.array([1, 0, 1, 0]), np.array([0.5, 0.5, 0.5, 0.5])) == 0
    assert calibration_error(np.array([1, 1]), np.array([0.0, 0.0])) == pytest.approx(1.0)
    truth = np.array([1] * 8 + [0] * 2 + [0] * 10)
    proba = np.array([0.8] * 10 + [0.1] * 10)
    assert calibration_error(truth, proba) == pytest.approx(0.05)


def test_best_f1_is_the_best_cut_of_the_ranking():
    truth = np.array([1, 0, 1, 1, 0, 0], dtype=bool)
    z = np.array([6.0, 5, 4, 3, 2, 1])
    # cuts after 1, 3 and 4 photos: F1 2·1/(1+3), 2·2/(3+3), 2·3/(4+3); the last is best
    assert best_f1(truth, z) == pytest.approx(6 / 7)
    assert best_f1(truth, -z) < best_f1(truth, z)  # the reversed ranking can only do worse
    assert best_f1(np.ones(3, bool), np.array([1.0, 3, 2])) == 1.0
    assert best_f1(np.zeros(3, bool), np.array([1.0, 3, 2])) == 0.0


def test_feedback_protocol_on_separated_clusters():
    X, y = library(n_classes=4, per_class=40, dim=32, spread=0.05, seed=1)
    labels = [f"c{i}" for i in y]
    result = feedback(
        X, labels, ArrayTeacher(X), k=3, rounds=2, clicks=5, trials=2, seed=0, holdout=0
    )
    rows = result["rows"]
    assert {r["round"] for r in rows} == {0, 1, 2} and len(rows) == 4 * 3
    for r in rows:
        assert r["ap"] == 1.0 and r["f1"] > 0.95 and r["ece"] < 0.05
        assert r["best_f1"] == 1.0 and r["f1"] <= r["best_f1"]
    assert all(r["scored"] for r in rows)  # 40 >= 3 + 2·5 + 10
    means = {(m["group"], m["round"], m["set"]) for m in result["means"]}
    assert ("all", 0, "all") in means and ("all", 2, "clicked") in means


def test_feedback_scores_after_clicks_only_classes_with_photos_left():
    X, y = confusable(sizes=(20, 40, 40, 40), spread=0.05, seed=2)
    labels = [f"c{i}" for i in y]
    result = feedback(X, labels, ArrayTeacher(X), k=5, rounds=1, clicks=10, trials=1, holdout=0)
    scored = {(r["class"], r["round"]): r["scored"] for r in result["rows"]}
    assert scored[("c0", 0)] and not scored[("c0", 1)]  # 20 < 5 + 10 + 10
    assert scored[("c1", 1)]


def test_feedback_rejects_bad_input():
    X, y = confusable(sizes=(20, 20, 20, 20), seed=3)
    labels = [f"c{i}" for i in y]
    with pytest.raises(UsageError, match="shown"):
        feedback(X, labels, ArrayTeacher(X), shown="random")
    with pytest.raises(UsageError):
        feedback(X, labels, ArrayTeacher(X), trials=0)


def test_answer_scores_counts_an_empty_answer_as_precision_zero():
    X, y = confusable(sizes=(20, 20, 20, 20), seed=4)
    from finder.learn.head import Head

    head = Head(np.zeros(X.shape[1], np.float32), -10.0, threshold=0.5)
    s = answer_scores(y == 0, head, X)
    assert (s["precision"], s["recall"], s["f1"], s["returned"]) == (0.0, 0.0, 0.0, 0.0)


def test_smoothing_changes_the_answer_and_nothing_the_class_is_taught():
    """``feedback`` scores the answer re-ranked near the cut by default; the strips and the
    heads are the same as without (``smooth=None``), whose figures are the head's own
    (``*_head`` beside the smoothed ones), and the truth the estimate estimates moves with the
    answer."""
    from finder.learn.smooth import Smooth

    X, y = confusable(sizes=(60, 60, 80, 80), spread=0.3, seed=4)
    labels = [f"c{i}" for i in y]
    args = dict(k=3, rounds=2, clicks=10, shown="review", trials=2, classes=["c0", "c1"])
    plain = feedback(X, labels, ArrayTeacher(X), smooth=None, **args)
    smooth = feedback(X, labels, ArrayTeacher(X), smooth=Smooth(weight=6.0, width=4.0), **args)
    default = feedback(X, labels, ArrayTeacher(X), **args)
    assert plain["smooth"] is None and default["smooth"] == {
        "k": 10,
        "weight": 3.0,
        "width": 2.0,
        "temperature": 0.05,
    }
    pairs = list(zip(plain["rows"], smooth["rows"], strict=True))
    for a, b in pairs:
        assert (a["class"], a["round"], a["labels"]) == (b["class"], b["round"], b["labels"])
        assert a["actions"] == b["actions"]  # the same strips, the same heads
        for key in ("f1", "precision", "recall", "ece", "best_f1"):
            assert a[f"{key}_head"] == a[key] == b[f"{key}_head"]  # the head's own, unchanged
    assert any(a["f1"] != b["f1"] for a, b in pairs)  # the answer moved
    assert any(a["ece"] != b["ece"] for a, b in pairs)  # of the probabilities it shows
    assert any(a["true_recall"] != b["true_recall"] for a, b in pairs)  # the truth too
    assert [r["f1"] for r in default["rows"]] != [r["f1"] for r in plain["rows"]]
