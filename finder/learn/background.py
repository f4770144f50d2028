"""The random photos a class is learned against, drawn once per library and kept ready.

Every head of ``finder learn`` is trained against a *background* (``BACKGROUND_SIZE`` random
photos of the library, the class's marked and filed photos excepted) and calibrated and cut on
a *fresh* sample (as many again, out of the training): :func:`draw`. Both are a prefix of one
random permutation of the library, fixed by the seed: the background is the first
``size`` photos of the permutation that are not excepted, the fresh sample the next ``size``.
That is a uniform random sample as any other (what the head learns from is drawn as before);
what it buys is that two classes, or one class before and after a strip, draw nearly the same
photos (only those their marks except differ), so what training needs of them can be computed
once per library and seed (a :class:`Pool`): their vectors (read from the store once, not per
retraining), the background in the library's metric, and each background photo's nearest
neighbours among the others (the k-NN graph of the diffusion, ``finder.learn.train``), of which
a retraining then computes only the rows of its own marks. The size of all of it is bounded by
``size``, whatever the size of the library.

numpy only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from finder.learn.metric import Metric

NEIGHBOURS_KEPT: int = 32
"""How many nearest neighbours of each background photo a :class:`Pool` keeps (among the
candidates of the background): the k of the diffusion (5) and room for the photos a class
excepts; a photo left with fewer than k of them is computed again in full."""


def draw(
    perm: np.ndarray, exclude: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The background and fresh samples of a library whose permutation (of its positions
    ``0..n-1``, a function of the seed) is ``perm``: the first ``size`` positions of ``perm``
    not in ``exclude``, and the next ``size``. Returns ``(background, fresh, ranks)``, ``ranks``
    the background's places in ``perm`` (what a :class:`Pool` knows them by)."""
    perm = np.asarray(perm, dtype=np.int64)
    exclude = np.asarray(exclude, dtype=np.int64).reshape(-1)
    keep = ~np.isin(perm, exclude)
    places = np.flatnonzero(keep)
    ranks = places[:size]
    fresh = places[size : 2 * size]
    return perm[ranks], perm[fresh], ranks


def permutation(n: int, seed: int) -> np.ndarray:
    """The random order of a library of ``n`` photos its samples are drawn in (seed ``seed``)."""
    return np.random.default_rng(seed).permutation(n).astype(np.int64)


@dataclass
class Prepared:
    """What a :class:`Pool` computed of a class's background, handed to ``train_head``:
    the background in ``metric`` (``metric.apply`` of its rows) and, on request, each
    background row's nearest others in a graph space (:meth:`neighbours`)."""

    metric: Metric | None
    metric_rows: np.ndarray | None
    pool: Pool
    ranks: np.ndarray  # the background's places in the pool's permutation

    def neighbours(self, graph: str, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        """For each background row, its nearest other background rows in the graph space
        ``graph`` ("metric": the metric's unit vectors; "library": the stored ones), best
        first: ``(rows [m, K], similarities [m, K])``, ``-1`` / ``-inf`` where a row has fewer
        than ``K`` (the rows it excepts; a row with fewer than ``k`` is to be computed in
        full). None when the pool cannot tell (the background reaches past its candidates)."""
        return self.pool.neighbours(graph, self.ranks, k)


@dataclass
class Pool:
    """The samples of one library (``n`` photos in the order of ``ids``) and one seed, with
    their vectors (``read(positions)``: the stored vectors at those positions) read once and
    what training needs of them computed once (:class:`Prepared`). ``metric``: the library's
    metric the background is put in (None: none)."""

    n: int
    seed: int
    read: Callable[[np.ndarray], np.ndarray]
    metric: Metric | None = None
    size: int = 2000
    margin: int = 500  # candidates of the background beyond ``size``: the excepted photos
    perm: np.ndarray = field(init=False)
    _where: np.ndarray = field(init=False)  # the place of each position in perm
    vectors: np.ndarray = field(init=False)  # the stored vectors of perm[:2·size + margin]
    _metric_rows: np.ndarray | None = field(init=False, default=None)
    _graphs: dict[str, tuple[np.ndarray, np.ndarray]] = field(init=False, default_factory=dict)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)  # heads in threads

    def __post_init__(self) -> None:
        self.perm = permutation(self.n, self.seed)
        self._where = np.empty(self.n, dtype=np.int64)
        self._where[self.perm] = np.arange(self.n)
        self.vectors = self.read(self.perm[: 2 * self.size + self.margin])

    @property
    def candidates(self) -> int:
        """How many of the permutation's first photos are known as background candidates."""
        return min(self.size + self.margin, self.n)

    def rows(self, places: np.ndarray) -> np.ndarray:
        """The stored vectors at these places of the permutation (read when beyond the pool)."""
        places = np.asarray(places, dtype=np.int64)
        inside = places < len(self.vectors)
        if inside.all():
            return self.vectors[places]
        out = np.empty((len(places), self.vectors.shape[1]), dtype=np.float32)
        out[inside] = self.vectors[places[inside]]
        out[~inside] = self.read(self.perm[places[~inside]])
        return out

    def draw(
        self, exclude: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Prepared]:
        """A class's samples, ``exclude`` its excepted positions: ``(background positions,
        fresh positions, background vectors, fresh vectors, prepared)`` (:func:`draw`)."""
        bg, fresh, ranks = draw(self.perm, exclude, self.size)
        fresh_ranks = self._where[fresh]
        B, F = self.rows(ranks), self.rows(fresh_ranks)
        metric_rows = None
        if self.metric is not None and len(ranks) and ranks[-1] < self.candidates:
            metric_rows = self._in_metric()[ranks]
        elif self.metric is not None:
            metric_rows = self.metric.apply(B)
        return bg, fresh, B, F, Prepared(self.metric, metric_rows, self, ranks)

    def _in_metric(self) -> np.ndarray:
        if self._metric_rows is None:  # under the lock or in the one thread that draws
            assert self.metric is not None
            self._metric_rows = self.metric.apply(self.vectors[: self.candidates])
        return self._metric_rows

    def _graph_rows(self, graph: str) -> np.ndarray:
        if graph == "metric" and self.metric is not None:
            Y = self._in_metric()
            return Y / (np.linalg.norm(Y, axis=1, keepdims=True) + 1e-12)
        return self.vectors[: self.candidates]

    def neighbours(
        self, graph: str, ranks: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """See :meth:`Prepared.neighbours`; ``ranks``: the background's places."""
        ranks = np.asarray(ranks, dtype=np.int64)
        if not len(ranks) or ranks[-1] >= self.candidates or k > NEIGHBOURS_KEPT:
            return None
        with self._lock:  # computed once, whichever thread asks first
            if graph not in self._graphs:
                self._graphs[graph] = nearest(self._graph_rows(graph), NEIGHBOURS_KEPT)
            idx, sims = self._graphs[graph]
        local = np.full(self.candidates, -1, dtype=np.int64)
        local[ranks] = np.arange(len(ranks))
        mapped = np.where(idx >= 0, local[np.maximum(idx, 0)], -1)[ranks]
        vals = np.where(mapped >= 0, sims[ranks], -np.inf).astype(np.float32)
        order = np.argsort(-vals, axis=1, kind="stable")  # the kept ones first, best first
        return np.take_along_axis(mapped, order, 1), np.take_along_axis(vals, order, 1)


def nearest(V: np.ndarray, k: int, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Each row of ``V``'s ``k`` most similar other rows (inner product), best first:
    ``(rows [n, k], similarities [n, k])`` (``-1`` / ``-inf`` past ``n - 1``)."""
    n = len(V)
    kk = min(k, n - 1)
    idx = np.full((n, k), -1, dtype=np.int64)
    sims = np.full((n, k), -np.inf, dtype=np.float32)
    if kk < 1:
        return idx, sims
    for start in range(0, n, block):
        S = V[start : start + block] @ V.T
        r = np.arange(len(S))
        S[r, start + r] = -np.inf
        top = np.argpartition(-S, kk - 1, axis=1)[:, :kk]
        vals = np.take_along_axis(S, top, 1)
        order = np.argsort(-vals, axis=1, kind="stable")
        idx[start : start + len(S), :kk] = np.take_along_axis(top, order, 1)
        sims[start : start + len(S), :kk] = np.take_along_axis(vals, order, 1)
    return idx, sims


def graph_neighbours(
    V: np.ndarray, k: int, known: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each row of ``V``'s ``k`` most similar other rows, ``(rows [n, k], similarities
    [n, k])`` in no particular order. ``known``: the last ``m`` rows' nearest others among
    themselves, as :meth:`Prepared.neighbours` gives them (indices among those ``m``): then
    only the first ``n - m`` rows are compared with all (the same neighbours as comparing all
    with all, ties aside); a known row left with fewer than ``k`` is compared in full."""
    n = len(V)
    k = min(k, n - 1)
    if known is None or k < 1:
        A = V @ V.T
        np.fill_diagonal(A, -np.inf)
        nbr = np.argpartition(-A, k - 1, axis=1)[:, :k]
        return nbr, np.take_along_axis(A, nbr, 1)
    idx, sims = known
    m = len(idx)
    r = n - m
    nbr = np.empty((n, k), dtype=np.int64)
    vals = np.empty((n, k), dtype=np.float32)
    if r:
        S = V[:r] @ V.T
        S[np.arange(r), np.arange(r)] = -np.inf
        top = np.argpartition(-S, k - 1, axis=1)[:, :k]
        nbr[:r], vals[:r] = top, np.take_along_axis(S, top, 1)
        cand = np.concatenate([S[:, r:].T, sims], axis=1)  # m x (r + K)
        cand_idx = np.concatenate(
            [np.broadcast_to(np.arange(r), (m, r)), np.where(idx >= 0, idx + r, -1)], axis=1
        )
    else:
        cand, cand_idx = sims, np.where(idx >= 0, idx, -1)
    top = np.argpartition(-cand, k - 1, axis=1)[:, :k]
    nbr[r:], vals[r:] = np.take_along_axis(cand_idx, top, 1), np.take_along_axis(cand, top, 1)
    short = np.flatnonzero((idx[:, :k] < 0).any(axis=1)) if idx.shape[1] >= k else np.arange(m)
    if len(short):  # rows whose kept neighbours the class excepted: compared in full
        S = V[r + short] @ V.T
        S[np.arange(len(short)), r + short] = -np.inf
        top = np.argpartition(-S, k - 1, axis=1)[:, :k]
        nbr[r + short], vals[r + short] = top, np.take_along_axis(S, top, 1)
    return nbr, vals
