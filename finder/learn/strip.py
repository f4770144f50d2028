"""Which photos a strip holds: the photos a person is asked to judge at once, ✓ or ✗ each.

A strip (:func:`choose_strip`) is ``n`` photos among the candidates (the library's photos not yet
marked and not skipped), each pre-set to finder's guess (✓ above the cut, ✗ below). Two kinds of
photos make it up (:class:`StripPlan`):

* **chosen** photos, the ones whose verdict teaches the head most: near the cut-off and unlike
  each other (:func:`near_cut`, :func:`spread`; what ``find NAME --review`` offered before strips);
* **drawn** photos, drawn at random with a known chance (:func:`draw_pps`: systematic sampling
  with probability proportional to ``sqrt(p·(1 − p)) + floor`` of the head's calibrated
  probability ``p``, over the candidates ordered by score, so the draws spread from the top of the
  answer to far below the cut, denser near it). A drawn photo's chance is recorded with the
  strip; from the marks of drawn photos and their chances, :mod:`finder.learn.estimate` says how
  good the answer is over the whole library (a chosen photo says nothing about the photos not
  chosen; a drawn one speaks for ``1 / chance`` of them).

numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from finder.learn.calibrate import sharpen
from finder.learn.head import sigmoid


@dataclass(frozen=True)
class StripPlan:
    """How a strip of ``size`` photos is made: ``drawn`` of them drawn at random (the rest
    chosen), the draws' chance proportional to ``sqrt(p·(1 − p)) + floor``.

    The chosen ones (:func:`review_picks`) come from the ``window`` × (their number) unmarked
    photos nearest ``cut + offset`` (a logit; > 0 leans to the photos above the cut); with
    ``typical`` > 0 the choice favours photos typical of the photos near the cut (their mean
    cosine similarity to their nearest neighbours among the ``window`` × 4 × n nearest,
    raised to ``typical``), so a strip spends fewer labels on outliers. The defaults are the
    choice as it was; docs/heads.md ("Fifth session: which photos a strip asks about")
    measures the others: ``typical=1`` wins the flowers on tf_flowers and the combined library
    but lifts fine's ECE after strip 1 past 0.05, so it stays off."""

    size: int = 20
    drawn: int = 6
    floor: float = 0.05
    window: float = 4.0
    offset: float = 0.0
    typical: float = 0.0


DEFAULT_PLAN = StripPlan()


@dataclass(frozen=True)
class Strip:
    """A strip: ``picks`` (positions into the candidates given to :func:`choose_strip`, in the
    order to show them), ``guess`` (finder's own verdict on each: above the cut), ``chance``
    (the probability with which a drawn photo was drawn, in (0, 1]; NaN for a chosen one)."""

    picks: np.ndarray
    guess: np.ndarray
    chance: np.ndarray

    @property
    def random(self) -> np.ndarray:
        """Which photos were drawn at random (their marks are what the estimate stands on)."""
        return np.isfinite(self.chance)

    def __len__(self) -> int:
        return len(self.picks)


def choose_strip(
    z: np.ndarray,
    cut: float,
    vectors: Callable[[np.ndarray], np.ndarray],
    *,
    rng: np.random.Generator,
    plan: StripPlan = DEFAULT_PLAN,
    softened: Sequence[float] | None = None,
) -> Strip:
    """A strip over the candidates whose logits under the class's (calibrated) head are ``z``
    (every photo not marked and not skipped: the draws need them all), ``cut`` the head's cut as
    a logit. ``vectors(positions)`` gives the unit vectors of some candidates (those near the
    cut, to pick ones unlike each other). ``rng`` draws the random part. ``softened``: the
    head's ``(k, d)`` when its probabilities were softened (``Head.params["softened"]``): the
    strip is drawn by the fit before softening (:func:`~finder.learn.calibrate.sharpen`), as
    the estimate models it, so that softening changes nothing a head is taught.

    The chosen photos are picked first (:func:`review_picks` over all candidates), then the
    drawn ones among the others (:func:`draw_pps`), so a photo's chance is its chance among the
    candidates the chosen ones left. Chosen first, drawn after, each group nearest the cut first.
    """
    z = np.asarray(sharpen(z, softened), dtype=np.float64)
    cut = sharpen(cut, softened)
    n = min(plan.size, len(z))
    n_drawn = min(plan.drawn, n)
    chosen = review_picks(
        z,
        cut,
        vectors,
        np.arange(len(z)),
        n - n_drawn,
        window=plan.window,
        offset=plan.offset,
        typical=plan.typical,
    )
    n_drawn = n - len(chosen)  # fewer to choose near the cut than asked: the draws fill it
    free = np.ones(len(z), dtype=bool)
    free[chosen] = False
    rest = np.flatnonzero(free)  # the others, in order (a mask: no sort of every candidate)
    drawn, chance = draw_pps(usefulness(z[rest], plan.floor), n_drawn, rng, order=z[rest])
    drawn = rest[drawn]
    near = np.argsort(np.abs(z[drawn] - cut), kind="stable")
    picks = np.concatenate([chosen, drawn[near]]).astype(np.int64)
    chances = np.concatenate([np.full(len(chosen), np.nan), chance[near]])
    return Strip(picks, z[picks] >= cut, chances)


def usefulness(z: np.ndarray, floor: float) -> np.ndarray:
    """How much a draw of each photo is worth: ``sqrt(p·(1 − p)) + floor``, ``p`` its
    probability. (The square root of a label's variance: the allocation that estimates a total
    of labels best, Neyman's; the floor keeps every photo drawable, the sure ones too.)"""
    p = sigmoid(np.asarray(z, dtype=np.float64))
    return np.sqrt(p * (1 - p)) + floor


def draw_pps(
    size: np.ndarray, n: int, rng: np.random.Generator, order: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` distinct positions drawn with probability proportional to ``size`` (> 0), and each
    one's chance of being drawn (its inclusion probability, exactly ``n·size / Σ size``; units
    whose chance would pass 1 are taken for certain and the rest drawn in proportion again).
    Systematic sampling over the units ordered by ``order`` (when given): a draw spreads over
    that order. Returns ``(positions, chances)``."""
    size = np.asarray(size, dtype=np.float64)
    n = min(int(n), len(size))
    if n <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    pi = np.zeros(len(size))
    sure = np.zeros(len(size), dtype=bool)
    while True:
        left = n - int(sure.sum())
        free = ~sure
        pi[free] = left * size[free] / size[free].sum() if left else 0.0
        over = free & (pi >= 1.0)
        if not over.any():
            break
        sure |= over
    pi[sure] = 1.0
    idx = np.flatnonzero(~sure)
    if order is not None:
        idx = idx[np.argsort(np.asarray(order)[idx], kind="stable")]
    cum = np.cumsum(pi[idx])
    left = n - int(sure.sum())
    hits = rng.uniform() + np.arange(left)
    drawn = idx[np.minimum(np.searchsorted(cum, hits, side="right"), len(idx) - 1)]
    picks = np.concatenate([np.flatnonzero(sure), drawn]).astype(np.int64)
    return picks, pi[picks]


def review_picks(
    z: np.ndarray,
    cut: float,
    vectors: Callable[[np.ndarray], np.ndarray] | np.ndarray,
    candidates: np.ndarray,
    n: int,
    *,
    window: float = 4.0,
    offset: float = 0.0,
    typical: float = 0.0,
) -> np.ndarray:
    """The ``n`` photos (positions into ``z``, among ``candidates``) whose verdict teaches a
    head most: near the cut-off (the ``window · n`` nearest ``cut + offset``, :func:`near_cut`)
    and unlike each other (:func:`spread`), with ``typical`` > 0 weighted by how typical each
    is of the photos near the cut (:func:`typicality`).
    ``vectors``: the unit vectors of all positions, or a function giving those of some."""
    centre = cut + offset
    size = max(int(round(window * n)), n)
    get = (lambda rows: vectors[rows]) if isinstance(vectors, np.ndarray) else vectors
    if typical > 0:
        around = near_cut(z, centre, candidates, 4 * size)
        W = get(around)
        pool, V = around[:size], W[:size]
        weight = typicality(V, W) ** typical
    else:
        pool = near_cut(z, centre, candidates, size)
        V, weight = get(pool), None
    return pool[spread(V, np.abs(np.asarray(z)[pool] - centre), n, weight)]


def typicality(V: np.ndarray, W: np.ndarray, k: int = 10) -> np.ndarray:
    """How typical each row of ``V`` is among the rows of ``W`` (unit vectors; ``V`` among
    them): its mean cosine similarity to its ``k`` nearest rows of ``W`` (itself left out),
    over the largest such mean, within (0, 1]."""
    if not len(V):
        return np.zeros(0)
    S = V @ W.T
    k = max(1, min(k, W.shape[0] - 1))
    top = -np.sort(-S, axis=1)[:, 1 : k + 1] if W.shape[0] > 1 else S
    d = np.clip(top.mean(axis=1), 1e-6, None)
    return d / d.max()


def near_cut(z: np.ndarray, cut: float, candidates: np.ndarray, size: int) -> np.ndarray:
    """The ``size`` of ``candidates`` whose score ``z`` is nearest ``cut``, nearest first."""
    candidates = np.asarray(candidates, dtype=np.int64)
    return candidates[np.argsort(np.abs(z[candidates] - cut), kind="stable")[: max(size, 0)]]


def spread(V: np.ndarray, near: np.ndarray, n: int, weight: np.ndarray | None = None) -> np.ndarray:
    """``n`` rows of ``V`` (unit vectors; ``near``: their distance to the cut) unlike each
    other: the nearest the cut first, then one at a time the row whose smallest cosine distance
    to those picked is largest (ties to the nearer the cut); with ``weight`` (> 0 per row),
    that distance times the row's weight. Returns row positions."""
    if n <= 0 or not len(V):
        return np.zeros(0, dtype=np.int64)
    first = int(np.argmin(near))
    picked = [first]
    closest = 1.0 - V @ V[first]
    while len(picked) < min(n, len(V)):
        key = (closest if weight is None else closest * weight) - 1e-6 * near
        key[picked] = -np.inf
        j = int(np.argmax(key))
        if key[j] == -np.inf:  # the rest are far below the cut (no score): not chosen
            break
        picked.append(j)
        closest = np.minimum(closest, 1.0 - V @ V[j])
    return np.asarray(picked, dtype=np.int64)


def top_picks(z: np.ndarray, candidates: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` best-ranked of ``candidates``: what a person scrolling the answer sees first."""
    candidates = np.asarray(candidates, dtype=np.int64)
    return candidates[np.argsort(-z[candidates], kind="stable")[:n]]
