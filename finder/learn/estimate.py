"""How good is this answer: its precision and recall over the library, with a range, from marks.

A class's answer is every photo at or above its cut. How much of it is right (precision) and how
much of the class it finds (recall) is known exactly for the photos a person marked, and
estimated for the rest from the photos a strip drew at random (:mod:`finder.learn.strip`): a
photo drawn with chance ``π`` speaks for ``1 / π`` photos of the library as it was when that
strip was drawn. Photos chosen because they are near the cut speak only for themselves.

:func:`estimate` is a difference (model-assisted, GREG) estimator: the head's calibrated
probability ``p`` of every unmarked photo says how many of them are of the class, and the
draws correct what it gets wrong. Strip ``r`` estimates a total over the library (the right
photos in the answer; the photos of the class) as

    T_r = Σ p over the unmarked photos (in the answer, for the first)
        + Σ m over the marks + Σ (y − m) over the marks known before strip r or chosen in it
        + Σ over its draws of (y − m) + (1/π − 1)·(y − m)

where ``m`` is a mark's probability under a head not trained on it (its cross-validated logit,
``Mark.held``: the head trained on a draw knows its label, and residuals measured with it would
be too small). Whatever ``p`` is, ``T_r`` is unbiased over the strip's draws (the draws' ``1/π``
correct it); the better ``p`` is calibrated, the smaller the residuals and the narrower the
range. The estimate pools the strips that drew photos, each weighted by its number of draws;
the answer's size is known exactly (every photo's score is), so precision is a total over a
known size, recall a ratio of two totals (variance by linearisation).

The photos near the cut (within :data:`NEAR` logits: where most photos of uncertain label are)
are the model's, not the draws': there a strip's 6 draws, each standing for ~100 photos, add
far more noise than the head's probabilities err (measured on the traces of
``scripts/replay_estimate.py``), while the marks, dense there, say how right those
probabilities are. A strip offers marks for their vectors, not their labels, so given its
held-out logit a mark's label is as likely as an unmarked photo's: the head's calibration is
refitted on the marks (all of them, as the head's own calibration is: ``sigmoid(a·held + c)``,
a maximum a posteriori Platt fit around ``(1, 0)``, ``prior`` its precision as
:func:`~finder.learn.calibrate.soften`'s), the near unmarked photos
counted by it, and their part of the range is their labels' own variance ``Σ p(1 − p)`` plus
the variance of their sum over the fit's posterior (Laplace's approximation, integrated by a
7 × 7 Gauss-Hermite rule). A draw there counts only for itself, as a mark marked since a strip
does. The draws correct the far photos (above and below the band): there the head's
probabilities are too sure (the tails the marks rarely reach) and only the draws can tell.
This part rests on the model (a logistic recalibration, right where the marks are dense), not
on the design; ``near=0`` is the design-based estimate alone (every photo corrected by the
draws), wider (after 5 strips, ±0.10-0.14 against ±0.08-0.10 on tf_flowers and fine).

The variance of each strip's far part is the larger of two: the spread of its far draws'
residuals (Hansen and Hurwitz, the draws taken with replacement), and the variance its design
would have if the head's probabilities were right (``Σ (1/π − 1)·v`` over the far photos it
could have drawn, ``v`` ``p·(1 − p)`` for the unmarked ones, the squared residual for the ones
marked since). Six draws whose residuals happen to be 0 do not make a range of width 0. The
head's probabilities are too sure far from the cut (measured on tf_flowers: the photos more than
6 logits below the cut hold a few % of the class where ``p`` says 0.05 %), so every unmarked
photo's ``v`` gets :data:`TAIL` × the class's share of the library on top. The range is the
estimate ± Student's ``t`` (degrees of freedom: the draws less the strips) × its standard
error, within [0, 1].

:func:`horvitz_thompson` is the estimate without the model (``p`` taken as 0: only the draws),
the one before: a Wilson interval at an effective size capped by Kish's. It stands when the
unmarked photos' scores are not given.

A mark (:class:`Mark`) says: its label, its score under the class's current head, how many
strips had been drawn when it was made (``known_from``), and, when a strip offered it, which
strip and with what chance (NaN for a chosen photo). The answer is ``score >= cut``.

numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist

import numpy as np

from finder.learn.calibrate import SOFTEN_PRIOR, platt, sharpen
from finder.learn.head import sigmoid
from finder.learn.strip import DEFAULT_PLAN, usefulness

LEVEL: float = 0.9
"""The range holds the truth this often (when the sampling assumptions hold)."""

MIN_DRAWS: int = 10
"""No estimate before this many marked random draws."""

TAIL: float = 0.01
"""Every unmarked photo's variance gets this × the class's share of the library: how much more
often than the head says a photo far from the cut is of the class (what the range allows for
the head's too-sure tails, which a few draws rarely reach)."""


NEAR: float = 2.0
"""The photos within this many logits of the cut are the model's (the head's probabilities
recalibrated on the marks, which are dense there); the draws correct the rest. 0: the draws
correct every photo (design-based only). Chosen on replayed traces (1 to 3 measured: docs/heads.md,
"Fifth session")."""

_NODES = 7
"""Gauss-Hermite nodes per dimension over the recalibration's posterior."""


@dataclass(frozen=True)
class Mark:
    """A marked photo of a class, as the estimate sees it.

    ``label``: 1 ✓, 0 ✗. ``score``: its logit under the class's current head. ``known_from``:
    how many strips of the class had been drawn when it was marked (0 for the first examples).
    ``strip``: the strip that offered it (its number, counting from 0), None when none did.
    ``chance``: its probability of being drawn in that strip (a random draw), NaN when the strip
    chose it. ``held``: its logit under a head not trained on it (the class's cross-validated
    logits, ``Head.params["held_out"]``), NaN when there is none (``score`` stands in)."""

    label: int
    score: float
    known_from: int
    strip: int | None = None
    chance: float = float("nan")
    held: float = float("nan")

    @property
    def drawn(self) -> bool:
        return self.strip is not None and bool(np.isfinite(self.chance))


def _z(level: float) -> float:
    """The normal quantile of a two-sided ``level`` (the standard library's: scipy.stats
    takes a second to import, which ``classes --json`` would pay)."""
    return float(NormalDist().inv_cdf(0.5 + level / 2))


def wilson(p: float, n: float, level: float = LEVEL) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``p`` seen on ``n`` (effective) draws."""
    if n <= 0:
        return 0.0, 1.0
    z = _z(level)
    denom = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return float(max(0.0, mid - half)), float(min(1.0, mid + half))


def _t(level: float, df: float) -> float:
    """Student's ``t`` quantile of a two-sided ``level`` (Cornish-Fisher from the normal's:
    within 0.1 % from 5 degrees of freedom; scipy.stats would cost ``classes --json`` a
    second's import)."""
    z = _z(level)
    if not np.isfinite(df) or df <= 0:
        return z
    z3, z5, z7 = z**3, z**5, z**7
    return float(
        z
        + (z3 + z) / (4 * df)
        + (5 * z5 + 16 * z3 + 3 * z) / (96 * df**2)
        + (3 * z7 + 19 * z5 + 17 * z3 - 15 * z) / (384 * df**3)
    )


def _spread(terms: np.ndarray) -> float:
    """The variance of a total of draws' ``terms`` taken with replacement (Hansen-Hurwitz)."""
    k = len(terms)
    return k / (k - 1) * float(((terms - terms.mean()) ** 2).sum()) if k > 1 else 0.0


def _columns(marks: Sequence[Mark], cut: float) -> tuple:
    """The marks as columns: label ``y``, in the answer ``g``, the held-out logit ``held`` (the
    score where there is none) and in the answer by it ``h``, ``known_from``, ``strip`` (−1:
    none), ``chance``, whether drawn, and the strips with at least two draws."""
    y = np.asarray([m.label for m in marks], dtype=np.float64)
    g = np.asarray([m.score >= cut for m in marks], dtype=np.float64)
    held = np.asarray([m.held if np.isfinite(m.held) else m.score for m in marks])
    h = (held >= cut).astype(np.float64)  # in the answer by a head not trained on it
    known = np.asarray([m.known_from for m in marks])
    strip = np.asarray([-1 if m.strip is None else m.strip for m in marks])
    chance = np.asarray([m.chance for m in marks], dtype=np.float64)
    drawn = (strip >= 0) & np.isfinite(chance) & (chance > 0)
    rounds = [r for r in np.unique(strip[drawn]) if (drawn & (strip == r)).sum() >= 2]
    return y, g, held, h, known, strip, chance, drawn, rounds


def estimate(
    marks: Sequence[Mark],
    cut: float,
    *,
    unmarked: np.ndarray | None = None,
    level: float = LEVEL,
    min_draws: int = MIN_DRAWS,
    tail: float = TAIL,
    floor: float = DEFAULT_PLAN.floor,
    softened: Sequence[float] | None = None,
    near: float = NEAR,
    prior: float = SOFTEN_PRIOR,
    drawn_by: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict | None:
    """``{"precision", "precision_range": [lo, hi], "recall", "recall_range": [lo, hi],
    "marks": n}`` of the answer ``score >= cut`` over the library, from ``marks`` and
    ``unmarked``, the scores under the class's head of every photo not marked (``-inf`` for
    photos too far below the cut to score: ``p`` 0), the module's docstring; ``marks`` counts
    the random draws it stands on. ``floor``: the strips' usefulness floor (their draws'
    chances, for the design's variance). ``softened``: the head's ``(k, d)`` when its
    probabilities were softened (``Head.params["softened"]``, :func:`finder.learn.calibrate.
    soften`): every logit is taken back to the fit before (:func:`~finder.learn.calibrate.
    sharpen`), the scale the strips drew in. Without ``unmarked``, :func:`horvitz_thompson`.
    None until there are ``min_draws`` marked draws, with at least one photo of the answer and
    of the class among what the estimate sees. ``near``: the band around the cut (logits) that
    is the model's (:data:`NEAR`; 0: the draws correct every photo); ``prior``: the precision
    of the recalibration's prior around ``(1, 0)``. ``drawn_by``: when the scores are a
    re-rank of the head's (:mod:`finder.learn.smooth`), the head's own logits of the unmarked
    photos and of the marks (held-out, as ``Mark.held``), which the strips drew by: the
    design's variance takes the draws' chances from them (the near band stays the re-ranked
    scores': by the head's logits it held the truth less often, docs/heads.md)."""
    if unmarked is None:
        return horvitz_thompson(marks, cut, level=level, min_draws=min_draws)
    if not marks:
        return None
    if softened is not None:  # in the scale of the fit before softening, as the strips drew
        marks = [
            replace(m, score=sharpen(m.score, softened), held=sharpen(m.held, softened))
            for m in marks
        ]
        cut, unmarked = sharpen(cut, softened), sharpen(np.asarray(unmarked), softened)
        if drawn_by is not None:
            drawn_by = (
                sharpen(np.asarray(drawn_by[0]), softened),
                sharpen(np.asarray(drawn_by[1]), softened),
            )
    y, g, held, h, known, strip, chance, drawn, rounds = _columns(marks, cut)
    q = sigmoid(held)  # its probability by a head not trained on it
    sizes = np.asarray([(drawn & (strip == r)).sum() for r in rounds], dtype=np.float64)
    n_draws = int(sizes.sum())
    if n_draws < min_draws:
        return None
    z = np.asarray(unmarked, dtype=np.float64)
    p = sigmoid(z)
    a = (z >= cut).astype(np.float64)  # the unmarked photos in the answer
    answer = float(a.sum() + g.sum())  # known exactly
    dz, dh = (
        (z, held)
        if drawn_by is None
        else (np.asarray(drawn_by[0], np.float64), np.asarray(drawn_by[1], np.float64))
    )
    u_free, u_mark = usefulness(dz, floor), usefulness(dh, floor)
    # the band near the cut is the model's (below); the draws correct the rest (far)
    far_free, far_mark = np.abs(z - cut) >= near, np.abs(held - cut) >= near
    fit, cov = _recalibrate(held, y, prior)  # as the head was calibrated: on every mark
    zn, an = z[~far_free], a[~far_free]
    p[~far_free] = sigmoid(fit[0] * zn + fit[1])
    # per total (right answers, the class): each mark as it is (f: its own answer; fh: as a
    # head not trained on it answers, for the photos a draw stands for), the model's m of it,
    # and the model's sum over the unmarked photos
    totals = {"tp": (y * g, y * h, h * q, float(p @ a)), "c": (y, y, q, float(p.sum()))}
    lam = sizes / sizes.sum()
    est = dict.fromkeys(totals, 0.0)
    parts = []
    for lr, r in zip(lam, rounds, strict=True):
        here = drawn & (strip == r)
        exact = ~here & ((known <= r) | (strip == r))  # known to it, or chosen by it
        later = ~here & ~exact  # in the library it drew from, marked since
        own = exact | ((here | later) & ~far_mark)  # what counts as itself in this strip
        terms = {}
        for key, (f, fh, m, m_free) in totals.items():
            stood = (1.0 / chance[here] - 1.0) * (fh - m)[here]
            terms[key] = ((f - m)[here] + stood) * far_mark[here]
            est[key] += lr * (m_free + m.sum() + (f - m)[own].sum() + terms[key].sum())
        # the design's 1/π − 1 of each far photo it could have drawn (chances as they are now)
        pool = u_free.sum() + u_mark[here | later].sum()
        k = float(here.sum())
        w_free = np.maximum(pool / (k * u_free) - 1.0, 0.0) * far_free
        w_later = np.maximum(pool / (k * u_mark[later]) - 1.0, 0.0) * far_mark[later]
        parts.append((lr, terms, w_free, later, w_later))
    tp, cls = est["tp"], est["c"]
    if answer <= 0 or cls <= 0:
        return None
    share = min(cls / (len(z) + len(marks)), 1.0)
    v = p * (1.0 - p) + tail * share  # an unmarked photo's residual variance, by the model
    e_tp, e_c = y * g - h * q, y - q  # a mark's residuals
    precision = min(max(tp / answer, 0.0), 1.0)
    recall = min(max(tp / cls, 0.0), 1.0)
    var_p = var_r = 0.0
    for lr, terms, w_free, later, w_later in parts:
        spread_p = _spread(terms["tp"])
        spread_r = _spread(terms["tp"] - recall * terms["c"])
        design_p = float(w_free @ (v * a) + w_later @ e_tp[later] ** 2)
        design_r = float(
            w_free @ (v * (a - recall) ** 2) + w_later @ (e_tp[later] - recall * e_c[later]) ** 2
        )
        var_p += lr * lr * max(spread_p, design_p)
        var_r += lr * lr * max(spread_r, design_r)
    if len(zn):  # the near band: its labels' own variance, and the recalibration's
        pn = p[~far_free]
        tp_k, c_k, weight = _over_posterior(zn, an, fit, cov)
        var_p += float((pn * (1 - pn)) @ an) + _wvar(tp_k, weight)
        var_r += float((pn * (1 - pn)) @ (an - recall) ** 2) + _wvar(tp_k - recall * c_k, weight)
    t = _t(level, n_draws - len(rounds))
    out: dict = {}
    for name, value, var, den in (
        ("precision", precision, var_p, answer),
        ("recall", recall, var_r, cls),
    ):
        half = t * float(np.sqrt(var)) / den
        out[name] = value
        out[f"{name}_range"] = [max(0.0, value - half), min(1.0, value + half)]
    out["marks"] = n_draws
    return out


def _recalibrate(held: np.ndarray, y: np.ndarray, prior: float) -> tuple[np.ndarray, np.ndarray]:
    """``(a, c)`` of ``sigmoid(a·held + c)`` fitted to the marks ``y`` (a maximum a posteriori
    Platt fit, ``prior`` its precision around ``(1, 0)``: the head is calibrated already, this
    only moves it where the marks say so) and the covariance of Laplace's approximation."""
    ok = np.isfinite(held)
    held, y = held[ok], y[ok]
    a, c = platt(held, y, prior=(1.0, 0.0), strength=prior) if len(y) else (1.0, 0.0)
    p = sigmoid(a * held + c)
    v = p * (1 - p)
    H = np.array([[(v * held * held).sum(), (v * held).sum()], [(v * held).sum(), v.sum()]])
    return np.array([a, c]), np.linalg.inv(H + prior * np.eye(2))


def _over_posterior(
    z: np.ndarray, a: np.ndarray, fit: np.ndarray, cov: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The right answers (``a``: in the answer) and the class among photos of logits ``z`` at
    each node of a Gauss-Hermite rule over the recalibration's posterior ``N(fit, cov)``, and
    the nodes' weights."""
    x, w = np.polynomial.hermite_e.hermegauss(_NODES)
    u, v = np.meshgrid(x, x)
    nodes = fit + np.stack([u.ravel(), v.ravel()], 1) @ np.linalg.cholesky(cov).T
    probs = sigmoid(nodes[:, :1] * z[None, :] + nodes[:, 1:])
    return probs @ a, probs.sum(1), np.outer(w, w).ravel() / w.sum() ** 2


def _wvar(x: np.ndarray, weight: np.ndarray) -> float:
    mean = float(weight @ x)
    return float(weight @ (x - mean) ** 2)


def horvitz_thompson(
    marks: Sequence[Mark], cut: float, *, level: float = LEVEL, min_draws: int = MIN_DRAWS
) -> dict | None:
    """:func:`estimate` without a model: each strip's total is the marks known before it, the
    photos it chose, and its draws each standing for ``1/π`` photos (the ones it stood for
    answered as a head not trained on it answers); pooled as :func:`estimate` pools; its range
    a Wilson interval at the effective size its variance implies, at most Kish's effective size
    of the weights (Korn and Graubard)."""
    if not marks:
        return None
    y, g, held, h, known, strip, chance, drawn, rounds = _columns(marks, cut)
    n_draws = int(sum((drawn & (strip == r)).sum() for r in rounds))
    if n_draws < min_draws:
        return None
    lam = np.asarray([(drawn & (strip == r)).sum() for r in rounds], dtype=np.float64)
    lam /= lam.sum()
    # each mark counts itself (as the current head answers it) in the strips it was known to,
    # chosen in, or drawn in; a draw also speaks for 1/π − 1 photos it stood for, answered as a
    # head not trained on it answers it (the current head is: it would flatter the estimate)
    own = np.zeros(len(marks))
    stood = np.zeros(len(marks))
    samples = []
    for lr, r in zip(lam, rounds, strict=True):
        here = drawn & (strip == r)
        own += lr * ((known <= r) | (strip == r))
        stood[here] += lr * (1.0 / chance[here] - 1.0)
        samples.append((lr, here))

    def parts(v_in: np.ndarray, v_out: np.ndarray) -> tuple[float, list]:
        t = [(lr, v_in[here] + (1.0 / chance[here] - 1.0) * v_out[here]) for lr, here in samples]
        return float(own @ v_in + stood @ v_out), t

    def variance(t: list) -> float:
        out = 0.0
        for lr, terms in t:
            k = len(terms)
            out += lr * lr * k / (k - 1) * float(((terms - terms.mean()) ** 2).sum())
        return out

    tp, t_tp = parts(y * g, y * h)
    answer, t_a = parts(g, h)
    cls, t_c = parts(y, y)
    if answer <= 0 or cls <= 0:
        return None
    out: dict = {}
    weight = own + stood
    for name, num, den, t_num, t_den, dom in (
        ("precision", tp, answer, t_tp, t_a, np.maximum(g, h)),
        ("recall", tp, cls, t_tp, t_c, y),
    ):
        r = min(max(num / den, 0.0), 1.0)
        resid = [(lr, a - r * b) for (lr, a), (_, b) in zip(t_num, t_den, strict=True)]
        var = variance(resid) / den**2
        w = weight[dom > 0]
        kish = float(w.sum() ** 2 / (w * w).sum()) if len(w) else 1.0
        n_eff = min(kish, r * (1 - r) / var) if var > 0 and 0 < r < 1 else kish
        lo, hi = wilson(r, max(n_eff, 1.0), level)
        out[name] = r
        out[f"{name}_range"] = [min(lo, r), max(hi, r)]
    out["marks"] = n_draws
    return out
