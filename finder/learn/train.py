"""How ``finder learn`` trains a class: the default method of docs/heads.md, and its parts.

Everything happens in the library's metric when one is given (:mod:`finder.learn.metric`: the
vectors whitened, the weights mapped back, so a head stays linear in the stored vectors).
The background sample is unlabelled, not negative. Held-out ranks of the examples (the largest
few: confirmed top-ranked photos rank near 0) estimate how much of the background belongs to
the class, a diffusion over the k-NN graph of examples + background picks those as
pseudo-positives, and a weighted logistic regression is trained on examples + pseudo-positives
against explicit negatives + the rest, refined once; the number of background photos past logit
0 of a sharper head on the same data (``count_C``) is the class-size estimate, raised when the
median example, held out, ranks past it (``raise_at``; the head is then fitted again from the
raised size). With ✓ and ✗ enough the marks are labels: the head is calibrated on their
cross-validated logits, which also give the size (``marks_*``). Then the head is calibrated to
that estimate (:mod:`finder.learn.calibrate`) and cut by a rule of :mod:`finder.learn.cutoff`.
A head is a function of the marks, the background, the fresh photos and the seed only: nothing
of a previous head carries over (issue 24, item 4).

This module is the recipe; its ingredients, one class's problem (its rows, the logistic fits,
the diffusion, the folds), are :mod:`finder.learn.fit`'s, and the background they are drawn
against is :mod:`finder.learn.background`'s. It imports numpy and scipy only (never TensorFlow).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from finder.errors import UsageError
from finder.learn.background import Prepared
from finder.learn.calibrate import calibrate, platt, soften
from finder.learn.cutoff import CutConfig, CutInput, cut_off, gap_near_size
from finder.learn.fit import (  # noqa: F401 - the primitives, named here too
    EXPLICIT_NEGATIVE_WEIGHT,
    FIT_OPTIONS,
    Problem,
    check_vectors,
    fit_logistic,
    fit_weighted,
    knn_diffusion,
)
from finder.learn.head import Head, logit, sigmoid
from finder.learn.metric import Metric

BACKGROUND_SIZE: int = 2000
"""How many random library vectors form the background sample of ``finder learn`` (2,000
rather than 1,000 since issue 12's fourth pass: a rare class has twice the members in it;
docs/heads.md)."""


MIN_BACKGROUND: int = 20
"""Below this many background vectors the head is plain and the cut-off falls back to 0.5."""


@dataclass(frozen=True)
class HeadConfig:
    """How :func:`train_head` learns; the default is the method of docs/heads.md.
    ``method="plain"`` is the baseline: balanced logistic regression on the examples against the
    background, cut-off 0.5."""

    method: str = "pu-calibrated"  # or "plain"
    C: float = 1.0
    probe_C: float = 0.3
    pseudo_weight: float = 0.3
    count_factor: float = 1.5  # pseudo-positives = count_factor × median held-out rank
    knn: int = 5
    alpha: float = 0.8
    gamma: float = 3.0
    refine_rounds: int = 1
    refine_scale: float = 0.7  # pseudo-positives = refine_scale × the class-size estimate
    folds: int = 5
    warm_start: bool = False  # the first head's fit started from the probe's weights (the same
    # convex problem, fewer evaluations; False: from zero)
    calibrate: bool = True  # probabilities calibrated to the class-size estimate
    prior_sd: float = 1.0  # how far (logit) marks may move the previous head's estimate
    cut: CutConfig = CutConfig()
    count_C: float = 3.0  # first learning: the class size is counted past logit 0 of a head of
    # this C (0: of the head itself)
    graph: str = "metric"  # with a metric, the k-NN graph of the whitened vectors, or "library"
    raise_at: float = 2.0  # first learning: when 2 × the examples' median held-out rank exceeds
    # raise_at × the count (2: the median held-out example ranks past it), the class size is the
    # geometric mean of the count and 2 × that rank + 1 (0: never)
    raise_refit: bool = True  # when raised, the head is fitted again with refine_scale × the size
    rank_top: int = 5  # without the marks' calibration: the class size from the median of the
    # this many largest held-out ranks (0: of all; random examples rank anywhere in the class,
    # confirmed top-ranked photos near 0 and would collapse the size) ...
    rank_all_from: int = 40  # ... while the positives are fewer than this; from this many on,
    # of all: dozens of examples are a sample of the class (a folder), not a few examples and
    # clicks on the top of its ranking, and the median of their 5 largest ranks took nearly the
    # whole library (tf_flowers, 25% of a class as examples: P 0.35, R 0.996)
    rank_sample: bool = True  # when the positives' origins are known (``train_head``'s
    # ``sample``): the size from the median held-out rank of those that are a sample of the
    # class (examples given, random draws) only, never of ✓ given on photos finder showed (the
    # top of its ranking, a strip's chosen photos), whatever their number (False: the rule above)
    rank_sample_marks: bool = False  # ... also once the marks calibrate (their size is the
    # marks', the ranks then give the pseudo-positives' count)
    marks_cv: int = 5  # with marks of both kinds (enough of them): calibrated on their
    # logits under heads fitted without them (this many folds; 0: never), not on the size alone
    marks_min: int = 6  # ... once there are this many ✓ (examples included) and half as many ✗
    # (fewer: the marks are likely picked by label, five examples or a few wrong ones singled out;
    # 6 ✓ and 3 ✗: most classes after their first strip)
    marks_prior: float = 0.1  # ... towards the two-Gaussian calibration with this strength
    marks_refit: bool = False  # ... and the head fitted again from the size that gives
    marks_direct: bool = True  # ... and calibrated by that fit (False: by two Gaussians at the
    # size it gives)
    marks_soften: bool = True  # ... its probabilities then averaged over the fits the marks
    # allow (finder.learn.calibrate.soften: flatter while they are few), the answer as cut
    marks_raise: bool = False  # ... the raise rule still applies (default: not once marks fire)
    marks_top: bool = False  # ... also when no mark came from a strip (``train_head``'s
    # ``strips`` False: every ✓ and ✗ given on the top of the ranking, which says nothing of
    # the photos below it)
    marks_order: str = "diffusion"  # ... pseudo-positives in this order ("head": by a probe's
    # logits, no diffusion)
    first_fresh: bool = False  # first learning: the size counted over the fresh photos
    use_fresh: bool = True  # calibrated and cut over fresh photos (out of training) when given
    coords: float = 0.75  # with a pool: the fits on the rows' coordinates in a basis of their
    # span (finder.learn.coords: the same fits but for rounding, on narrower rows) when it is
    # at most this share of the dimension wide (0: never; a background of 2,000 and 250 marks
    # at 4,096-d: 0.55; at 1,024-d only a small library's background is narrow enough)


DEFAULT_CONFIG = HeadConfig()
PLAIN_CONFIG = HeadConfig(method="plain", C=1.0, calibrate=False, cut=CutConfig(rule="fixed"))


def background_indices(
    n: int, exclude: np.ndarray, rng: np.random.Generator, size: int = BACKGROUND_SIZE
) -> np.ndarray:
    """Positions (sorted, among ``0..n-1``) of the random background sample of ``finder learn``.

    ``exclude`` holds positions that must not be drawn (the examples). At most ``size``
    positions; fewer when the library is small.
    """
    exclude = np.asarray(exclude, dtype=np.int64).reshape(-1)
    mask = np.ones(n, dtype=bool)
    mask[exclude[(exclude >= 0) & (exclude < n)]] = False
    pool = np.flatnonzero(mask)
    if len(pool) <= size:
        return pool
    return np.sort(rng.choice(pool, size=size, replace=False))


def train_head(
    positives: np.ndarray,
    negatives: np.ndarray,
    background: np.ndarray,
    *,
    seed: int = 0,
    config: HeadConfig = DEFAULT_CONFIG,
    metric: Metric | None = None,
    fresh: np.ndarray | None = None,
    sample: np.ndarray | None = None,
    pool: int | None = None,
    strips: bool | None = None,
    prepared: Prepared | None = None,
) -> Head:
    """Learn a class from example vectors.

    ``positives``: every example ``[p, d]`` (p ≥ 1); ``negatives``: explicit counter-examples
    ``[q, d]`` (may be empty; each weighs ``EXPLICIT_NEGATIVE_WEIGHT`` background vectors);
    ``background``: an unlabelled random sample of the library ``[m, d]`` (may be empty, may
    contain members of the class); ``fresh``: another random sample of the library, out of the
    training, on which the head is calibrated and cut; ``sample``: for each positive, whether it
    is a sample of the class (an example the person gave, a random draw they marked), not a ✓
    given on a photo finder showed because it ranked high or near the cut (those rank near the
    top when held out and would shrink the size estimate; they still train the head); None:
    not known (the rule of ``rank_top``); ``pool``: how many photos the background was drawn
    from (the library less the marked ones; None: the background is all of them); ``strips``:
    whether any mark was given on a strip's photo (None: not known). The head is
    a function of these and the seed only (no previous head: a class taught, taken back and
    taught again is the class learned from what remains). The method: the module's docstring.
    ``prepared``: what a
    :class:`~finder.learn.background.Pool` computed once of ``background`` (in ``metric``):
    the same head, sooner.
    """
    cfg = config
    pb = Problem.checked(positives, negatives, background)
    if cfg.method == "plain":
        metric = None  # the baseline: on the stored vectors
    scorer = None
    F = None
    if fresh is not None and len(fresh) >= MIN_BACKGROUND and cfg.use_fresh:
        F = check_vectors("fresh vectors", fresh, pb.P.shape[1])
    if metric is not None:
        if metric.dim != pb.P.shape[1]:
            raise UsageError(f"the metric is for dimension {metric.dim}, not {pb.P.shape[1]}")
        if prepared is not None and prepared.metric is not metric:
            prepared = None  # computed in another metric
        pb = pb.in_metric(metric, cfg.graph, prepared, cfg.knn, cfg.coords)
    if F is not None:
        to_metric = pb.to_metric
        back = (lambda w: metric.back(to_metric(w))) if metric is not None else (lambda w: w)
        scorer = Fresh(lambda w, b: (F @ back(w)).astype(np.float64) + b, len(F))
    if sample is not None:
        sample = np.asarray(sample, dtype=bool).reshape(-1)
        if len(sample) != len(pb.P):
            raise UsageError(f"sample has {len(sample)} entries for {len(pb.P)} examples")
    share = min(1.0, len(pb.B) / pool) if pool else 1.0
    if strips is False and not cfg.marks_top:
        cfg = replace(cfg, marks_cv=0)  # marks on the top of the ranking only: no labels
    head = _train(pb, cfg, seed, scorer, sample, share)
    if metric is not None:
        head.w = metric.back(pb.to_metric(head.w))  # on the stored vectors (Metric.back)
        head.params["metric"] = True
    return head


@dataclass
class Fresh:
    """Photos of the library out of the training (not in the background, not marked): their
    logits under a head in training (``scores(w, b)``), and how many there are."""

    scores: Any
    n: int


def _train(
    pb: Problem,
    cfg: HeadConfig,
    seed: int,
    fresh: Fresh | None = None,
    sample: np.ndarray | None = None,
    share: float = 1.0,
) -> Head:
    p, m = len(pb.P), len(pb.B)
    rng = np.random.default_rng(seed)
    params: dict[str, Any] = {"n_pos": p, "n_neg": len(pb.N), "n_background": m, "seed": seed}
    if cfg.method == "plain" or m < MIN_BACKGROUND:
        C = cfg.C if cfg.method == "plain" else 1.0
        w, b = pb.probe(C)
        params.update(method="plain", C=C)
        if cfg.method != "plain":
            params["fallback"] = f"background of {m} < {MIN_BACKGROUND}: plain head"
        return Head(w=w, b=b, threshold=0.5, params=params)
    if cfg.method != "pu-calibrated":
        raise UsageError(f"unknown head method {cfg.method!r}")

    direct = None
    held = None
    zs = None  # the fresh photos' logits (the background's without them) under (w, b)
    marks = cfg.marks_cv and len(pb.P) >= cfg.marks_min and 2 * len(pb.N) >= cfg.marks_min
    if marks and cfg.marks_order == "head":
        w0, b0 = pb.probe(cfg.probe_C)
        order = np.argsort(-(pb.B @ w0 + b0), kind="stable")
    else:
        order = pb.diffusion_order(cfg)
    top = 0 if marks or (cfg.rank_all_from and len(pb.P) >= cfg.rank_all_from) else cfg.rank_top
    use = cfg.rank_sample and (cfg.rank_sample_marks or not marks)
    if use and sample is not None and sample.sum() >= 2:
        top = 0  # the ranks of the sample only, all of them (a sample of the class)
        params["n_sample"] = int(sample.sum())
    else:
        sample = None
    w, b, n_size = _first_head(pb, order, cfg, rng, params, top, sample, share)
    ws, bs = w, b
    cv = None
    if cfg.count_C:  # counted past 0 of a sharper head (less regularised) on the same data
        sizing = pb if sample is None else pb.sample_only(sample)  # not sized by the top's ✓
        sharp = replace(cfg, C=cfg.count_C)
        count = sizing.fit_pseudo_soon(order, params["n_pseudo"], sharp, (w, b))
        if marks and not cfg.marks_raise:  # the marks' folds start from (w, b) too: meanwhile
            cv = pb.cv_logits(order, params["n_pseudo"], cfg, (w, b), cfg.marks_cv, rng)
        ws, bs = count.result()
    n_class = float(((pb.B @ ws + bs) >= 0).sum())
    if cfg.first_fresh and fresh is not None:  # counted out of the training
        n_class = float((fresh.scores(ws, bs) >= 0).sum()) * m / fresh.n
    if not marks or cfg.marks_raise:
        n_class = _raised(n_class, params.get("median_held_out"), cfg, params)
    if cfg.raise_refit and "raised_from" in params:  # the head too, from the raised size
        params["n_pseudo"] = _pseudo_count(cfg.refine_scale * n_class, m)
        w, b = pb.fit_pseudo(order, params["n_pseudo"], cfg, (w, b))
    if marks:  # the marks are labels: calibrated (and the size read) on their held-out logits
        n_pseudo = params["n_pseudo"]
        if cv is None:
            cv = pb.cv_logits(order, n_pseudo, cfg, (w, b), cfg.marks_cv, rng)
        zc, yc = cv
        zs = pb.B @ w + b if fresh is None else fresh.scores(w, b)
        scale = 1.0 if fresh is None else m / fresh.n
        prior = calibrate(zs, float(np.clip(n_class / scale, 1.0, len(zs) / 2)))
        a, c = platt(zc, yc, prior=prior, strength=cfg.marks_prior)
        a = max(a, 1e-3)
        n_cv = float(sigmoid(a * zs + c).sum()) * scale
        params.update(n_class_marks=n_cv, n_class_count=n_class)
        if cfg.marks_refit:
            params["n_pseudo"] = _pseudo_count(cfg.refine_scale * n_cv, m)
            w, b = pb.fit_pseudo(order, params["n_pseudo"], cfg, (w, b))
            zs = None  # another head: scored again below
        if cfg.marks_direct:
            direct = (a, c)
        n_class = n_cv
        held = zc  # the marks' logits under heads not trained on them (uncalibrated)
    n_class = float(np.clip(n_class, 1.0, m / 2))
    if zs is None:  # else scored for the marks, the same head
        zs = pb.B @ w + b if fresh is None else fresh.scores(w, b)
    n_s = n_class if fresh is None else n_class * fresh.n / m
    if cfg.calibrate:
        a, c = direct or calibrate(zs, float(np.clip(n_s, 1.0, len(zs) / 2)))
        w, b = w * np.float32(a), b * a + c
        zs = zs * a + c
        params.update(calibration=[a, c])
    threshold = cut_off(CutInput(np.sort(zs)[::-1], n_size), cfg.cut)
    if cfg.calibrate and cfg.marks_soften and direct is not None:  # the same answer, softer
        k, d = soften(a * held + c, zs)
        w, b, a, c = w * np.float32(k), b * k + d, a * k, c * k + d
        threshold = float(sigmoid(np.array([k * logit(threshold) + d]))[0])
        params.update(calibration=[a, c], softened=[k, d])
    if fresh is not None:
        params["fresh"] = fresh.n
    if held is not None:
        if cfg.calibrate:  # in the calibrated head's scale
            held = a * held + c
        params["held_out_logits"] = [round(float(v), 4) for v in held]
    params.update(
        method=cfg.method,
        C=cfg.C,
        n_class_estimate=n_class,
        pseudo_weight=cfg.pseudo_weight,
        knn=cfg.knn,
        alpha=cfg.alpha,
        cut=cfg.cut.rule,
    )
    return Head(w=w, b=b, threshold=threshold, params=params)


def _raised(n_class: float, med: float | None, cfg: HeadConfig, params: dict[str, Any]) -> float:
    """The first learning's count, raised when the examples say it misses most of the class.

    The count is steady but falls short for a class the head cannot tell from its look-alikes
    (its members beyond them are trained as negatives); the examples' held-out ranks are
    unbiased for random examples (``2·median + 1`` estimates the size) but five draws. When the
    median held-out example ranks past the count (more of the background above it than the
    count), an answer of that size would miss more than half of the class: the size becomes the
    geometric mean of the two (docs/heads.md). Both are compared with the marked ✓ that are not
    a sample of the class put back (``params["marked_share"]``, their share of the background:
    they rank above the examples, and ties at the class's end must stay ties).
    """
    marked = float(params.get("marked_share", 0.0))
    med = None if med is None else med + 0.5 * marked
    if not cfg.raise_at or med is None or 2.0 * med <= cfg.raise_at * (n_class + marked):
        return n_class
    params["raised_from"] = n_class
    return float(np.sqrt(max(n_class + marked, 1.0) * (2.0 * med + 1.0))) - marked


def _pseudo_count(n: float, m: int) -> int:
    return int(min(max(round(n), 1), m // 2))


def _first_head(
    pb: Problem,
    order: np.ndarray,
    cfg: HeadConfig,
    rng: np.random.Generator,
    params: dict[str, Any],
    rank_top: int = 0,
    sample: np.ndarray | None = None,
    share: float = 1.0,
) -> tuple[np.ndarray, float, int]:
    """A class's first head: pseudo-positives counted from the examples' held-out ranks, then
    refined once from the head's own scores (``rank_top``: the median of the largest held-out
    ranks only, 0: of all; ``sample``: of these positives only, the other marked photos counted
    where they rank, ``share`` of one each, and the other ✓ then taken off the size: they are
    of the class but no longer in the background). Returns ``(w, b, n_size)``,
    ``n_size`` the class size a probe head estimates once the likely members are out of its
    negatives."""
    B, m = pb.B, len(pb.B)
    # 1. how many of the background look like the class (held-out ranks of the examples)
    probe = pb.probe(cfg.probe_C)
    if len(pb.P) >= 2:
        ranks = np.sort(pb.held_out_ranks(cfg, rng, probe, sample, share))
        med: float | None = float(np.median(ranks[-rank_top:] if rank_top else ranks))
        if sample is not None:  # 2·median + 1 sizes the class with its marked ✓: less them
            params["marked_share"] = share * float((~sample).sum())
            med = max(0.0, med - 0.5 * params["marked_share"])
        params["median_held_out"] = med
        n_pseudo = _pseudo_count(cfg.count_factor * med, m)
    else:  # one example: no held-out estimate; count what the probe head accepts
        med = None
        n_pseudo = _pseudo_count(float(((B @ probe[0] + probe[1]) >= 0).sum()), m)
    # 2. the head: examples + the best-connected pseudo-positives against the rest
    first = pb.fit_pseudo_soon(order, n_pseudo, cfg, probe if cfg.warm_start else None)
    # class size once the likely members are out of the negatives: a probe head's count
    drop = int(np.ceil(2 * med)) + 1 if med is not None else 2 * n_pseudo
    sizing = pb if sample is None else pb.sample_only(sample)
    w3, b3 = sizing.probe(cfg.probe_C, order[min(drop, m - 1) :], probe)
    w, b = first.result()
    n_size = max(1, int(((B @ w3 + b3) >= 0).sum()))
    # 3. refine: re-pick the pseudo-positives from how many the head puts past the gap
    for _ in range(cfg.refine_rounds):
        zb = np.sort(B @ w + b)[::-1]
        n_past = int((zb >= gap_near_size(CutInput(zb, n_size), cfg.cut)).sum())
        n_pseudo = _pseudo_count(cfg.refine_scale * n_past, m)
        w, b = pb.fit_pseudo(order, n_pseudo, cfg, (w, b))
    params.update(n_pseudo=n_pseudo, n_size_probe=n_size)
    return w, b, n_size
