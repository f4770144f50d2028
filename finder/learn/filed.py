"""A filed class's size read from its filed photos held out, and how far its exclusive siblings
lower its cut where none of them takes a photo (issue 25).

A class made from filing (``finder.filing``) has dozens to hundreds of examples that are a random
sample of it. :func:`train_filed_head` trains it as ``train_head`` does (``FILED_HEAD``), then
reads its size a second way: each filed photo held out (``FILED_FOLDS`` folds, a probe head
trained on the others, the siblings' filed photos and the background), the share of the *fresh*
photos (a random sample of the library out of the training) that outrank it. Held out on both
sides, a random member of the class is outranked by about half the class when the class parts
well from the rest (and by more when not), so twice the mean share is an estimate of the
class's share of the photos the suggestions come from (the mean, not the median: for a handful
of filed photos it varies less). It is unbiased where the training's own
estimates are not: the background's members of the class are trained as negatives (their logits
pushed down: the held-out filed photos outrank them and ``train_head``'s ranks fall short), and
the count past logit 0 takes in the class's look-alikes (flowers17's yellow species counted 3×
their size). It is noisy for a class of few filed photos (the mean of five draws), so the size
the head is calibrated to is the geometric mean of the two (``HELD_OUT_WEIGHT`` ½ in the log),
and the cut is the head's rule (expected F1) on the fresh photos calibrated to it. A class of a
handful of filed photos is also sized by the filing itself (``FILED_PRIOR``): its share of the
filed photos, weighed against those two by how few its filed photos are. A class of dozens
(``HELD_OUT_BELOW``) is sized by its median held-out photo instead of the mean: twice the share
of the fresh photos above it, where the class's look-alikes that nobody filed count less.

Measured in ``scripts/bench_filed.py``'s protocol: docs/heads.md, "Filed classes: the size
held out"."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from finder.learn.calibrate import calibrate
from finder.learn.cutoff import CutInput, cut_off
from finder.learn.fit import Problem
from finder.learn.head import Head
from finder.learn.train import MIN_BACKGROUND, HeadConfig, train_head

FILED_FOLDS = 5
"""At most this many probe heads per class, each trained without a fifth of its filed photos."""
HELD_OUT_WEIGHT = 0.5
"""The held-out size's weight against the training's (a geometric mean: ½ each)."""
FILED_PRIOR = 3.0
"""How many filed photos the filing's own evidence of a small class's size is worth: its filed
photos' share of all the filed ones (its own and its counter-examples: ``filed_share``) is
weighed in the log against the estimate above with ``FILED_PRIOR / (FILED_PRIOR + filed
photos)`` (0.6 for 2 photos, 0.375 for 5, 0.07 for 39). With 2 filed photos the held-out
estimate is one probe trained on one photo: the combined library's iris (2 filed, 18 unsorted)
was sized at half the library and answered 227 photos (precision 0.07); the filed share says
18. It assumes the classes are filed about as often as each other, which the bench's trees do
and a person's need not: weighed so, a share off by 20× (a class filed 10 times less often than
its siblings) still gives a smaller error than two photos held out (tests/learn/test_filed.py).
Measured in ``scripts/bench_filed.py``'s protocol (combined library, mean F1, seed 0, weights 0
/ 3 / 8): 25% filed 0.830 / 0.848 / 0.855, 10% 0.702 / 0.724 / 0.721 (docs/heads.md)."""
HELD_OUT_BELOW = 40
"""A class of fewer filed photos than this is sized by the mean held-out share
(:func:`held_out_share`, with the filing's share: ``FILED_PRIOR``); with more, by the median
one (:func:`held_out_median_share`, ``LARGE_WEIGHT``). The mean over every held-out photo counts
the look-alikes that outrank the class's weakest members, which dozens of filed photos can
afford to leave out: with two tf_flowers species filed and three not, daisy sized by the mean
lost precision (0.82 to 0.76). With fewer (flowers17's 5 of 20) the median of a fold is one
or two photos, and the training's count was off by 3× either way."""
LARGE_WEIGHT = HELD_OUT_WEIGHT
"""A class of ``HELD_OUT_BELOW`` filed photos or more: the weight in the log of its held-out
median share (:func:`held_out_median_share`) against the training's size, whose count past
logit 0 falls short where the class has look-alikes nobody filed (tf_flowers' daisy with two
species filed: 441 for 556, recall 0.71 at precision 0.98). Replayed on the bench's stored
heads (``scripts/filed_replay.py``, seeds 0-2), weights 0 / 0.4 / 0.5 / 0.6 / 0.7 gave the
two-species bar (P ≥ 0.85, R ≥ 0.80) in 4 / 5 / 6 / 6 / 5 of its 6 cases (1: the combined
library's daisy at precision 0.81, seed 0); at ½ tf_flowers' 25% and 10% gain 0.001-0.004 and
the combined library's cases move within 0.004 (docs/heads.md, issue 25, seventh pass)."""

EXCLUSIVE_SLACK = 1.0
"""How far (a logit) below its cut ``suggest`` takes a photo for a class whose siblings exclude it,
when no sibling ranks the photo higher above its own cut, where the siblings cover the photos
not of the class (less where they cover less: ``exclusive_slack``). A head's probability near
its cut counts the siblings' look-alikes among its wrong answers (it is calibrated over the
whole library), but among the photos no sibling takes those are gone, so the odds of the class
are higher there than the probability says: e¹ ≈ 2.7 times when the siblings' photos are most of
the wrong answers. Measured in ``scripts/bench_filed.py``'s protocol on the same heads, 3 draws
of the filed photos each, mean F1: tf_flowers 25% filed +0.005 to +0.007, 10% +0.006 to +0.011,
two species filed (three unfiled species among the rest) +0.000 to +0.010 at precision 0.94 or
more; the combined library 25% -0.001 to +0.002, 10% +0.002 to +0.014, two species +0.001 to
+0.015. A larger slack gains little more on tf_flowers and costs precision where unfiled kinds
are near the cut (``docs/heads.md``, issue 25)."""


FULL_COVER = 0.85
"""A cover of at least this is whole (``coverage``): with every class of the library filed the
heads' size estimates sum to 0.92-1 of what a class leaves (each a little short), and the slack
is the full one there (tf_flowers 10% filed, seeds 1 / 2: 0.8795 / 0.8784 at the cover read,
0.8807 / 0.8804 at 1); two species filed of five cover 0.15-0.25, unchanged."""


def coverage(own: Head, rivals: Sequence[Head]) -> float:
    """The share of the photos not of class ``own`` that its exclusive siblings (``rivals``)
    cover: the sum of their sizes (each head's class-size estimate, a share of its background)
    over what the class leaves, at most 1, and 1 from ``FULL_COVER`` (the sizes fall a little
    short where the siblings are the library: every species filed); low where kinds nobody
    filed are most of it (two species filed of five: about 0.2). 1 when a head has no size (a
    plain head): the slack as it was."""
    sizes = []
    for head in (own, *rivals):
        n, m = head.params.get("n_class_estimate"), head.params.get("n_background")
        if n is None or not m:
            return 1.0
        sizes.append(float(n) / float(m))
    rest = 1.0 - sizes[0]
    if rest <= 0:
        return 1.0
    c = float(np.clip(sum(sizes[1:]) / rest, 0.0, 1.0))
    return 1.0 if c >= FULL_COVER else c


def exclusive_slack(own: Head, rivals: Sequence[Head]) -> float:
    """How far (a logit) below its cut ``suggest`` takes a photo for class ``own`` that no
    rival ranks higher: ``EXCLUSIVE_SLACK`` where the siblings cover the library, less where
    they cover less of it (``coverage`` c). The odds of the class among the photos no sibling
    takes are those of the whole library times ``1/(1-φ)``, φ the share of its wrong answers
    near the cut that the siblings take; ``EXCLUSIVE_SLACK`` is that factor's log at full
    cover (φ = 1 - e⁻¹), and φ is taken to shrink with the cover: ``-log(1 - (1 - e⁻¹)·c)``.
    With two species filed among five, a sunflower neither takes kept dandelion's cut lowered
    by the full logit: dandelion's precision 0.82 (tf_flowers, seed 0), 0.89 without the slack."""
    if not rivals:
        return 0.0
    c = coverage(own, rivals)
    return float(-np.log1p(-(1.0 - np.exp(-EXCLUSIVE_SLACK)) * c))


def filed_share(n_filed: int, n_counter: int) -> float | None:
    """The class's share of the photos not filed, were it filed as often as the classes its
    counter-examples are filed under: its filed photos' share of all the filed ones (its own
    and its counter-examples). None without counter-examples."""
    if n_counter < 1 or n_filed < 1:
        return None
    return n_filed / (n_filed + n_counter)


def _held_out_folds(
    positives: np.ndarray,
    negatives: np.ndarray,
    background: np.ndarray,
    fresh: np.ndarray,
    *,
    config: HeadConfig,
    seed: int = 0,
    metric: Any = None,
    sample: np.ndarray | None = None,
    prepared: Any = None,
) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """Each fold's fresh logits (sorted) and its held-out examples' logits under a probe head
    trained without them (those ``sample`` marks, all when None; at most ``FILED_FOLDS``
    folds). None with fewer than two such examples or too few fresh photos."""
    pb = Problem.checked(positives, negatives, background)
    idx = np.arange(len(pb.P)) if sample is None else np.flatnonzero(sample)
    if len(idx) < 2 or fresh is None or len(fresh) < MIN_BACKGROUND:
        return None
    back = (lambda w: w) if metric is None else metric.back
    if metric is not None:
        pb = pb.in_metric(metric, config.graph, prepared, config.knn)
    F = np.asarray(fresh, dtype=np.float32)
    init = pb.probe(config.probe_C)
    y, weight = pb.labels()
    rng = np.random.default_rng(seed)
    out = []
    for held in np.array_split(rng.permutation(len(idx)), min(len(idx), FILED_FOLDS)):
        kept = weight.copy()
        kept[idx[held]] = 0.0
        w, b = pb.fit_rows(y, kept, config.probe_C, init)
        out.append((np.sort(F @ back(w) + b), pb.P[idx[held]] @ w + b))
    return out


def held_out_share(
    positives: np.ndarray,
    negatives: np.ndarray,
    background: np.ndarray,
    fresh: np.ndarray,
    **options: Any,
) -> tuple[float, np.ndarray] | None:
    """The class's share of the photos ``fresh`` is a sample of, from its examples held out
    (``_held_out_folds``'s options), and each one's share of ``fresh`` that outranks it under
    a probe head trained without it (see the module docstring). None with fewer than two such
    examples or too few fresh photos."""
    folds = _held_out_folds(positives, negatives, background, fresh, **options)
    if folds is None:
        return None
    shares = [1.0 - np.searchsorted(zf, zp, side="right") / len(zf) for zf, zp in folds]
    q = np.sort(np.concatenate(shares))
    return _doubled(np.mean(q), len(folds[0][0])), q


def held_out_median_share(
    positives: np.ndarray,
    negatives: np.ndarray,
    background: np.ndarray,
    fresh: np.ndarray,
    **options: Any,
) -> float | None:
    """A large class's share of the photos ``fresh`` is a sample of: twice the share of them
    that outrank the median of its held-out examples, each fold's probe head on its own
    examples, the mean over the folds. Above the median example the fresh photos that outrank
    it are mostly of the class (half of it), where the mean of every example's share
    (:func:`held_out_share`) also counts the look-alikes that outrank the class's weakest
    members. None as :func:`held_out_share`."""
    folds = _held_out_folds(positives, negatives, background, fresh, **options)
    if folds is None:
        return None
    shares = [1.0 - np.searchsorted(zf, np.median(zp), side="right") / len(zf) for zf, zp in folds]
    return _doubled(np.mean(shares), len(folds[0][0]))


def _doubled(share: float, f: int) -> float:
    """The class's share of ``f`` fresh photos from the mean share ``share`` of them that
    outranks a held-out example: twice it (an example ranks, on average, in the middle of its
    class), plus one photo."""
    return float((2.0 * share * f + 1.0) / f)


def train_filed_head(**inputs: Any) -> Head:
    """``train_head(**inputs)`` (a filed class's inputs: ``FILED_HEAD``, fresh photos), its
    probabilities then calibrated to the geometric mean of its size estimate and the held-out
    one (:func:`held_out_share`, weighed with its share of the filed photos: ``FILED_PRIOR``;
    from ``HELD_OUT_BELOW`` filed photos on, :func:`held_out_median_share` at
    ``LARGE_WEIGHT``), and cut again by its rule; the head as trained when there is no
    held-out estimate (fewer than two filed photos, no fresh photos, a plain head)."""
    head = train_head(**inputs)
    config: HeadConfig = inputs["config"]
    fresh = inputs.get("fresh")
    if head.params.get("method") != "pu-calibrated" or "n_class_estimate" not in head.params:
        return head
    sample = inputs.get("sample")
    n_filed = len(inputs["positives"]) if sample is None else int(np.sum(sample))
    options = dict(
        config=config,
        seed=int(inputs.get("seed", 0)),
        metric=inputs.get("metric"),
        sample=sample,
        prepared=inputs.get("prepared"),
    )
    parts = (inputs["positives"], inputs["negatives"], inputs["background"], fresh)
    large = n_filed >= HELD_OUT_BELOW
    if large and not LARGE_WEIGHT:
        return head
    if large:
        share = held_out_median_share(*parts, **options)
        weight_held, filed = LARGE_WEIGHT, None
    else:
        got = held_out_share(*parts, **options)
        share = None if got is None else got[0]
        weight_held = HELD_OUT_WEIGHT
        filed = filed_share(n_filed, len(inputs["negatives"]))
    if share is None:
        return head
    zf = head.logits(fresh).astype(np.float64)
    f, m = len(zf), float(head.params["n_background"])
    trained = float(head.params["n_class_estimate"]) / m  # its share of the background
    log_n = (1 - weight_held) * np.log(trained) + weight_held * np.log(share)
    weight = FILED_PRIOR / (FILED_PRIOR + n_filed)
    if filed is not None:
        log_n = (1 - weight) * log_n + weight * np.log(filed)
    n = float(np.clip(np.exp(log_n) * f, 1.0, f / 2))
    a, c = calibrate(zf, n)
    head.w = head.w * np.float32(a)
    head.b = float(head.b * a + c)
    zs = np.sort(zf * a + c)[::-1]
    head.threshold = cut_off(CutInput(zs, head.params.get("n_size_probe")), config.cut)
    head.params.update(
        n_class_trained=head.params["n_class_estimate"],
        n_class_held_out=share * m,
        n_class_estimate=n * m / f,
        n_class_filed=None if filed is None else filed * m,
        held_out_calibration=[float(a), float(c)],
    )
    return head
