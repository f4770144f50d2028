"""The estimate of how good an answer is: a difference (model-assisted) estimator over the head's
probabilities of the unmarked photos, the strips' random draws correcting it. Simulated libraries
whose truth is known: its range holds the truth about as often as it says, it is narrower than
the draws alone (Horvitz-Thompson) when the probabilities are calibrated, and stays honest when
they are not."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from finder.learn.estimate import NEAR, Mark, _t, estimate, horvitz_thompson
from finder.learn.strip import StripPlan, choose_strip
from tests.learn.synthetic import _unit

SHARE = 0.2


def _library(seed: int, n: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    """Labels and calibrated logits (the exact posterior) of a library: the class 20 %, its
    photos' scores N(2, 1.5), the others' N(-3, 1.5)."""
    rng = np.random.default_rng(seed)
    y = rng.uniform(size=n) < SHARE
    x = np.where(y, rng.normal(2.0, 1.5, n), rng.normal(-3.0, 1.5, n))
    logit = np.log(SHARE / (1 - SHARE)) + ((x + 3) ** 2 - (x - 2) ** 2) / (2 * 1.5**2)
    return y, logit


def _teach(seed: int, strips: int, shift: float = 0.0, drawn: int = 6):
    """``strips`` strips of 20 (``drawn`` of them drawn) over the library of ``seed``, marked
    from its labels. The head's scores are the calibrated logits + ``shift`` and its cut
    1.5 + ``shift``: the same answer, its probabilities too high by ``shift`` logits. Returns
    the estimate, the Horvitz-Thompson one, and the truth (precision, recall)."""
    y, logit = _library(seed)
    s, cut = logit + shift, 1.5 + shift
    rng = np.random.default_rng([seed, 1])
    V = _unit(rng.standard_normal((len(y), 8)))
    marked = np.zeros(len(y), dtype=bool)
    marks: list[Mark] = []
    for r in range(strips):
        rest = np.flatnonzero(~marked)
        strip = choose_strip(
            s[rest], cut, lambda p, rest=rest: V[rest[p]], rng=rng, plan=StripPlan(drawn=drawn)
        )
        for i, c in zip(rest[strip.picks], strip.chance, strict=True):
            marks.append(Mark(int(y[i]), float(s[i]), r + 1, r, float(c)))
        marked[rest[strip.picks]] = True
    answer = s >= cut
    tp = (answer & y).sum()
    truth = (tp / answer.sum(), tp / y.sum())
    return estimate(marks, cut, unmarked=s[~marked]), horvitz_thompson(marks, cut), truth


def _record(runs: list) -> dict:
    out = {}
    for i, key in enumerate(("precision", "recall")):
        got = [(e, truth[i]) for e, _, truth in runs]
        out[f"{key}_held"] = np.mean(
            [e[f"{key}_range"][0] <= t <= e[f"{key}_range"][1] for e, t in got]
        )
        out[f"{key}_half"] = np.median([np.diff(e[f"{key}_range"])[0] / 2 for e, _ in got])
        out[f"{key}_ht_half"] = np.median([np.diff(h[f"{key}_range"])[0] / 2 for _, h, _ in runs])
        out[f"{key}_bias"] = np.mean([e[key] - t for e, t in got])
    return out


@pytest.fixture(scope="module")
def calibrated() -> dict:
    return _record([_teach(seed, strips=5) for seed in range(60)])


def test_the_range_holds_the_truth_about_as_often_as_it_says(calibrated: dict) -> None:
    # stated 90 %: 60 libraries, so 0.8 leaves room for chance, not for a broken range
    assert calibrated["precision_held"] >= 0.8 and calibrated["recall_held"] >= 0.8


def test_calibrated_probabilities_make_the_range_narrower_than_the_draws_alone(
    calibrated: dict,
) -> None:
    for key in ("precision", "recall"):
        assert calibrated[f"{key}_half"] < 0.7 * calibrated[f"{key}_ht_half"]
    assert abs(calibrated["precision_bias"]) < 0.02 and abs(calibrated["recall_bias"]) < 0.02


def test_the_estimate_stays_honest_when_the_probabilities_are_not() -> None:
    # the head's probabilities 1.5 logits too high (the same answer): the draws correct the
    # model's sum, and the range widens with what they see
    runs = [_teach(seed, strips=5, shift=1.5) for seed in range(40)]
    got = _record(runs)
    assert abs(got["precision_bias"]) < 0.04 and abs(got["recall_bias"]) < 0.04
    assert got["precision_held"] >= 0.75 and got["recall_held"] >= 0.75


def test_without_the_unmarked_scores_it_is_horvitz_thompson_and_none_before_enough_draws() -> None:
    y, logit = _library(0)
    est, ht, _ = _teach(0, strips=1)  # 6 draws < 10
    assert est is None and ht is None
    est, ht, _ = _teach(0, strips=2)
    assert est is not None and ht is not None and est["marks"] == ht["marks"] == 12
    assert set(est) == {"precision", "precision_range", "recall", "recall_range", "marks"}
    for key in ("precision", "recall"):
        lo, hi = est[f"{key}_range"]
        assert 0.0 <= lo <= est[key] <= hi <= 1.0
    marks = [Mark(1, 2.0, 1, 0, 0.5)] * 3 + [Mark(0, -2.0, 1, 0, 0.1)] * 9
    assert estimate(marks, 0.0) == horvitz_thompson(marks, 0.0)
    assert estimate(marks[:9], 0.0, unmarked=logit) is None
    assert estimate([], 0.0, unmarked=logit) is None


def test_student_t_quantiles() -> None:
    assert _t(0.9, 1e9) == pytest.approx(1.6449, abs=1e-3)
    assert _t(0.9, 10) == pytest.approx(1.8125, abs=2e-3)
    assert _t(0.9, 5) == pytest.approx(2.0150, abs=3e-3)
    assert _t(0.95, 20) == pytest.approx(2.0860, abs=2e-3)


def test_a_softened_head_is_estimated_with_the_fit_before_softening() -> None:
    # finder.learn.calibrate.soften: the head's logits k·z + d (the same answer); given (k, d),
    # the estimate works in the scale of the fit before (the strips drew in it): the estimate
    # of the sharp logits, where the softened probabilities taken as the model differ
    y, logit = _library(3)
    rng = np.random.default_rng(3)
    V = _unit(rng.standard_normal((len(y), 8)))
    marked = np.zeros(len(y), dtype=bool)
    marks: list[Mark] = []
    for r in range(3):
        rest = np.flatnonzero(~marked)
        strip = choose_strip(logit[rest], 1.5, lambda p, rest=rest: V[rest[p]], rng=rng)
        for i, c in zip(rest[strip.picks], strip.chance, strict=True):
            marks.append(Mark(int(y[i]), float(logit[i]), r + 1, r, float(c)))
        marked[rest[strip.picks]] = True
    k, d = 0.6, -0.4
    soft = [Mark(m.label, k * m.score + d, m.known_from, m.strip, m.chance) for m in marks]
    sharp = estimate(marks, 1.5, unmarked=logit[~marked])
    got = estimate(soft, 1.5 * k + d, unmarked=k * logit[~marked] + d, softened=(k, d))
    flat = estimate(soft, 1.5 * k + d, unmarked=k * logit[~marked] + d)
    assert sharp is not None and got is not None and flat is not None
    for key in ("precision", "recall"):  # the same estimate, its range too
        assert got[key] == pytest.approx(sharp[key], abs=1e-9)
        assert got[f"{key}_range"] == pytest.approx(sharp[f"{key}_range"], abs=1e-9)
    assert any(flat[key] != pytest.approx(sharp[key], abs=1e-3) for key in ("precision", "recall"))


def _marks_and_scores(seed: int, strips: int) -> tuple[list[Mark], np.ndarray, float]:
    """The marks of ``strips`` strips over the library of ``seed`` and the unmarked scores."""
    y, logit = _library(seed)
    rng = np.random.default_rng([seed, 2])
    V = _unit(rng.standard_normal((len(y), 8)))
    marked = np.zeros(len(y), dtype=bool)
    marks: list[Mark] = []
    for r in range(strips):
        rest = np.flatnonzero(~marked)
        strip = choose_strip(logit[rest], 1.5, lambda p, rest=rest: V[rest[p]], rng=rng)
        for i, c in zip(rest[strip.picks], strip.chance, strict=True):
            marks.append(Mark(int(y[i]), float(logit[i]), r + 1, r, float(c)))
        marked[rest[strip.picks]] = True
    return marks, logit[~marked], 1.5


def test_near_the_cut_the_model_speaks_and_a_draw_there_only_for_itself() -> None:
    # a draw near the cut counts as itself (its chance does not matter); a far one stands for
    # 1/π photos; with near=0 every draw stands for 1/π photos (the design-based estimate)
    marks, unmarked, cut = _marks_and_scores(5, strips=4)
    drawn = [i for i, m in enumerate(marks) if m.drawn]
    close = next(i for i in drawn if abs(marks[i].score - cut) < NEAR)
    far = next(i for i in drawn if abs(marks[i].score - cut) > NEAR)

    def with_chance(i: int, near: float) -> dict:
        moved = list(marks)
        moved[i] = replace(marks[i], chance=marks[i].chance / 2)
        got = estimate(moved, cut, unmarked=unmarked, near=near)
        assert got is not None
        return got

    base = estimate(marks, cut, unmarked=unmarked)
    design = estimate(marks, cut, unmarked=unmarked, near=0.0)
    assert base is not None and design is not None
    assert with_chance(close, NEAR) == base
    assert with_chance(close, 0.0) != design
    assert with_chance(far, NEAR) != base


def test_the_model_near_the_cut_narrows_the_range_and_it_still_holds() -> None:
    # calibrated probabilities: the near band by the model is narrower than the draws alone
    # correcting every photo (near=0), and the range still holds the truth (60 libraries)
    runs = []
    for seed in range(60):
        marks, unmarked, cut = _marks_and_scores(seed, strips=5)
        y, logit = _library(seed)
        answer = logit >= cut
        tp = (answer & y).sum()
        truth = (tp / answer.sum(), tp / y.sum())
        runs.append(
            (
                estimate(marks, cut, unmarked=unmarked),
                estimate(marks, cut, unmarked=unmarked, near=0.0),
                truth,
            )
        )
    for i, key in enumerate(("precision", "recall")):
        near = np.median([np.diff(e[f"{key}_range"])[0] for e, _, _ in runs])
        design = np.median([np.diff(d[f"{key}_range"])[0] for _, d, _ in runs])
        held = np.mean([e[f"{key}_range"][0] <= t[i] <= e[f"{key}_range"][1] for e, _, t in runs])
        assert near < design
        assert held >= 0.8
