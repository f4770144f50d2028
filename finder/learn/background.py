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
a retraining then computes only the rows of its own marks, and an orthonormal basis of the
candidates' rows in the metric (:meth:`Pool.basis`, for :mod:`finder.learn.coords`). The size of
all of it is bounded by ``size``, whatever the size of the library.

numpy and scipy only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg

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


EXTRA_ROWS: int = 8000
"""How many rows beyond its candidates a pool's :class:`Universe` may hold (a filed class's
counter-examples, a background reaching past the candidates) before it starts again from the
candidates: bounds its memory (about 80 MB at d = 1,024) and the cost of growing it."""


@dataclass(frozen=True)
class Universe:
    """Photos of a pool (by place in its permutation) whose rows in the metric and whose nearest
    others among themselves are known: the background's candidates, and what the classes drawn
    from the pool added (a filed class's counter-examples, its siblings' filed photos: mostly the
    same ones for every class of a filing, so computed once, not once per class). Never changed
    once made but for the graphs computed on request: a pool grows by making another, and a head
    in training keeps the one it was prepared from."""

    places: np.ndarray  # [u] places in the pool's permutation
    index: np.ndarray  # [n] each place's row here, -1 when not here
    rows: np.ndarray  # [u, d] in the pool's metric (the stored vectors without one)
    unit: np.ndarray | None  # [u, d] those rows as unit vectors (the "metric" graph's; None
    # without a metric)
    graphs: dict[str, tuple[np.ndarray, np.ndarray]]  # graph space -> nearest others (rows, sims)


@dataclass
class Prepared:
    """What a :class:`Pool` computed of a class's background, handed to ``train_head``:
    the background in ``metric`` (``metric.apply`` of its rows: :meth:`metric_rows`), the
    class's counter-examples the draw named (``counter``: their places, the last rows of its
    negatives) in ``metric`` (:meth:`counter_rows`), the metric graph's unit rows of both
    (:meth:`unit_rows`), and, on request, each of those rows' nearest others in a graph space
    (:meth:`neighbours`). The rows are the universe's, copied out only where the caller puts
    them (``out``: straight into a class's matrix of rows, no copy in between)."""

    metric: Metric | None
    pool: Pool
    ranks: np.ndarray  # the background's places in the pool's permutation
    universe: Universe | None = None
    counter: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def in_metric(self) -> bool:
        """Whether the rows are known in ``metric`` (:meth:`metric_rows` and the others)."""
        u = self.universe
        return self.metric is not None and u is not None and u.unit is not None

    def metric_rows(self, out: np.ndarray | None = None) -> np.ndarray:
        """The background in ``metric``, in ``out`` when given (``[len(ranks), d]``)."""
        return self._rows(self.ranks, False, out)

    def background_rows(self, which: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The background rows ``which`` (their indices among ``ranks``) in ``metric``."""
        return self._rows(self.ranks[which], False, out)

    def counter_rows(self, out: np.ndarray | None = None) -> np.ndarray:
        """The counter-examples in ``metric``, in ``out`` when given."""
        return self._rows(self.counter, False, out)

    def unit_rows(self, counter: int, out: np.ndarray | None = None) -> np.ndarray:
        """The last ``counter`` counter-examples' and the background's rows in ``metric`` as
        unit vectors (the "metric" graph's rows), in ``out`` when given."""
        places = np.concatenate([self.counter[len(self.counter) - counter :], self.ranks])
        return self._rows(places, True, out)

    def _rows(self, places: np.ndarray, unit: bool, out: np.ndarray | None) -> np.ndarray:
        if not self.in_metric:
            raise ValueError("the pool knows no rows in a metric here")
        u = self.universe
        assert u is not None and u.unit is not None
        source = u.unit if unit else u.rows
        # every place is in the universe: "clip" changes no index, and spares take's buffer
        return np.take(source, u.index[places], axis=0, out=out, mode="clip")

    def neighbours(
        self, graph: str, k: int, counter: bool = False
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """For each background row (after each counter-example row when ``counter``), its
        nearest others among those rows in the graph space ``graph`` ("metric": the metric's
        unit vectors; "library": the stored ones), best first: ``(rows [m, K], similarities
        [m, K])``, ``-1`` / ``-inf`` where a row has fewer than ``K`` (the rows it excepts; a
        row with fewer than ``k`` is to be computed in full). None when the pool cannot tell."""
        if self.universe is None:
            return None
        places = np.concatenate([self.counter, self.ranks]) if counter else self.ranks
        return self.pool.neighbours(self.universe, graph, places, k)


@dataclass
class Pool:
    """The samples of one library (``n`` photos in the order of ``ids``) and one seed, with
    their vectors (``read(positions)``: the stored vectors at those positions) read once and
    what training needs of them computed once (:class:`Prepared`, from a :class:`Universe`).
    ``metric``: the library's metric the background is put in (None: none)."""

    n: int
    seed: int
    read: Callable[[np.ndarray], np.ndarray]
    metric: Metric | None = None
    size: int = 2000
    margin: int = 500  # candidates of the background beyond ``size``: the excepted photos
    extra: int = EXTRA_ROWS  # rows beyond the candidates its universe may hold
    perm: np.ndarray = field(init=False)
    _where: np.ndarray = field(init=False)  # the place of each position in perm
    vectors: np.ndarray = field(init=False)  # the stored vectors of perm[:2·size + margin]
    _base: Universe | None = field(init=False, default=None)  # the candidates alone
    _universe: Universe | None = field(init=False, default=None)  # the latest, grown from _base
    _basis: tuple[np.ndarray, np.ndarray] | None = field(init=False, default=None)  # basis()
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
        self, exclude: np.ndarray, counter: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Prepared]:
        """A class's samples, ``exclude`` its excepted positions: ``(background positions,
        fresh positions, background vectors, fresh vectors, prepared)`` (:func:`draw`).
        ``counter``: positions of counter-examples the class is trained against (a filed
        class's siblings' photos, excepted too), prepared as the background is."""
        bg, fresh, ranks = draw(self.perm, exclude, self.size)
        B, F = self.rows(ranks), self.rows(self._where[fresh])
        cp = np.zeros(0, dtype=np.int64)
        if counter is not None:
            cp = self._where[np.asarray(counter, dtype=np.int64).reshape(-1)]
        if not len(ranks):
            return bg, fresh, B, F, Prepared(self.metric, self, ranks)
        with self._lock:  # grown in the thread that draws, read by the heads' threads
            u = self._grown(np.concatenate([cp, ranks]))
        return bg, fresh, B, F, Prepared(self.metric, self, ranks, u, cp)

    @property
    def in_basis(self) -> int:
        """How many of the first candidates :meth:`basis` spans: the background's size and a
        tenth of the margin (a class's background reaches past ``size`` by its excepted photos
        among the first ones: a few for a strip's class)."""
        return min(self.candidates, self.size + self.margin // 10)

    def basis(self) -> tuple[np.ndarray, np.ndarray]:
        """An orthonormal basis of the first :attr:`in_basis` candidates' rows (in the metric),
        made once: ``(Q [d, r], Rt [c, r])``, the rows ``Rt·Qᵀ`` (Householder QR of their
        transpose, in their order), so the candidate at place ``p`` has coordinates ``Rt[p]``
        in the first ``p + 1`` columns of ``Q`` only (``r = min(d, c)``;
        :mod:`finder.learn.coords`). Call it once a class has drawn from the pool."""
        with self._lock:
            if self._basis is None:
                assert self._base is not None, "the pool has not drawn yet"
                rows = self._base.rows[: self.in_basis]
                Q, R = scipy.linalg.qr(rows.T, mode="economic", check_finite=False)
                self._basis = (Q, np.ascontiguousarray(R.T))
            return self._basis

    def _grown(self, need: np.ndarray) -> Universe:
        """The universe holding the places ``need``: the latest one, grown by those it lacks;
        from the candidates alone when it would pass ``extra`` rows beyond them or when most of
        ``need`` is new (another part of the library: what it held is of no use)."""
        if self._base is None:
            self._base = self._universe = self._extended(None, np.arange(self.candidates))
        u = self._universe or self._base
        missing = np.unique(need[u.index[need] < 0])
        if len(missing) and (
            len(u.places) - self.candidates + len(missing) > self.extra
            or 2 * len(missing) > len(need)
        ):
            u = self._base
            missing = np.unique(need[u.index[need] < 0])
        if len(missing):
            u = self._extended(u, missing)
        self._universe = u
        return u

    def _extended(self, u: Universe | None, places: np.ndarray) -> Universe:
        """``u`` with the rows at ``places`` (not in it) added, and its graphs (the metric's,
        when there is one) grown with them: the same as computed from scratch, ties aside."""
        R = self.rows(places)
        Y = self.metric.apply(R) if self.metric is not None else R
        unit = unit_rows(Y) if self.metric is not None else None
        if u is None:
            index = np.full(self.n, -1, dtype=np.int64)
            index[places] = np.arange(len(places))
            made = Universe(places, index, Y, unit, {})
            if unit is not None:
                made.graphs["metric"] = nearest(unit, NEIGHBOURS_KEPT)
            return made
        old = len(u.places)
        index = u.index.copy()
        index[places] = old + np.arange(len(places))
        grown = Universe(
            np.concatenate([u.places, places]),
            index,
            np.concatenate([u.rows, Y]),
            None if unit is None or u.unit is None else np.concatenate([u.unit, unit]),
            {},
        )
        for space, (idx, sims) in u.graphs.items():
            grown.graphs[space] = _grow_graph(
                self._graph_rows(u, space), self._graph_rows(grown, space)[old:], idx, sims
            )
        return grown

    def _graph_rows(self, u: Universe, graph: str) -> np.ndarray:
        if self.metric is None:
            return u.rows
        if graph == "metric":
            return u.unit if u.unit is not None else unit_rows(u.rows)
        return self.rows(u.places)

    def neighbours(
        self, u: Universe, graph: str, places: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """See :meth:`Prepared.neighbours`: ``places`` (all in ``u``) the rows asked for."""
        places = np.asarray(places, dtype=np.int64)
        if not len(places) or k > NEIGHBOURS_KEPT:
            return None
        with self._lock:  # computed once per universe, whichever thread asks first
            if graph not in u.graphs:
                u.graphs[graph] = nearest(self._graph_rows(u, graph), NEIGHBOURS_KEPT)
            idx, sims = u.graphs[graph]
        at = u.index[places]
        local = np.full(len(u.places), -1, dtype=np.int64)
        local[at] = np.arange(len(places))
        mine = idx[at]
        mapped = np.where(mine >= 0, local[np.maximum(mine, 0)], -1)
        vals = np.where(mapped >= 0, sims[at], -np.inf).astype(np.float32)
        order = np.argsort(-vals, axis=1, kind="stable")  # the kept ones first, best first
        return np.take_along_axis(mapped, order, 1), np.take_along_axis(vals, order, 1)


def unit_rows(Y: np.ndarray) -> np.ndarray:
    """The rows of ``Y`` scaled to length 1 (the k-NN graph's rows in the metric)."""
    return Y / (np.sqrt(np.einsum("ij,ij->i", Y, Y))[:, None] + np.float32(1e-12))


def _best(S: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row of ``S``'s ``k`` largest columns, best first: ``(columns, values)`` (``-1`` /
    ``-inf`` past its columns and where the value is ``-inf``)."""
    r, c = S.shape
    idx = np.full((r, k), -1, dtype=np.int64)
    vals = np.full((r, k), -np.inf, dtype=np.float32)
    kk = min(k, c)
    if kk < 1 or r == 0:
        return idx, vals
    top = np.argpartition(-S, kk - 1, axis=1)[:, :kk] if kk < c else np.tile(np.arange(c), (r, 1))
    v = np.take_along_axis(S, top, 1)
    order = np.argsort(-v, axis=1, kind="stable")
    idx[:, :kk] = np.take_along_axis(top, order, 1)
    vals[:, :kk] = np.take_along_axis(v, order, 1)
    idx[~np.isfinite(vals)] = -1
    return idx, vals


def _grow_graph(
    G_old: np.ndarray, G_new: np.ndarray, idx: np.ndarray, sims: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The nearest-others lists ``(idx, sims)`` of the rows ``G_old`` with the rows ``G_new``
    appended (numbered after them): the new rows compared with all, the old rows' lists merged
    with their similarities to the new ones."""
    u, e, k = len(G_old), len(G_new), idx.shape[1]
    new_idx = np.empty((e, k), dtype=np.int64)
    new_sims = np.empty((e, k), dtype=np.float32)
    cols_new, sims_new = [], []
    G_all = np.concatenate([G_old, G_new])
    for start in range(0, e, 1024):
        S = G_new[start : start + 1024] @ G_all.T
        r = np.arange(len(S))
        S[r, u + start + r] = -np.inf
        new_idx[start : start + len(S)], new_sims[start : start + len(S)] = _best(S, k)
        c, v = _best(np.ascontiguousarray(S[:, :u].T), k)  # the old rows against these new
        cols_new.append(np.where(c >= 0, c + u + start, -1))
        sims_new.append(v)
    cand = np.concatenate([sims, *sims_new], axis=1)
    cand_idx = np.concatenate([idx, *cols_new], axis=1)
    top, vals = _best(cand, k)
    old_idx = np.where(top >= 0, np.take_along_axis(cand_idx, np.maximum(top, 0), 1), -1)
    return np.concatenate([old_idx, new_idx]), np.concatenate([vals, new_sims])


def nearest(V: np.ndarray, k: int, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Each row of ``V``'s ``k`` most similar other rows (inner product), best first:
    ``(rows [n, k], similarities [n, k])`` (``-1`` / ``-inf`` past ``n - 1``)."""
    n = len(V)
    idx = np.full((n, k), -1, dtype=np.int64)
    sims = np.full((n, k), -np.inf, dtype=np.float32)
    if n < 2:
        return idx, sims
    for start in range(0, n, block):
        S = V[start : start + block] @ V.T
        r = np.arange(len(S))
        S[r, start + r] = -np.inf
        idx[start : start + len(S)], sims[start : start + len(S)] = _best(S, k)
    return idx, sims


def graph_neighbours(
    V: np.ndarray, k: int, known: tuple[np.ndarray, ...] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each row of ``V``'s ``k`` most similar other rows, ``(rows [n, k], similarities
    [n, k])`` in no particular order. ``known``: some rows' nearest others among themselves, as
    :meth:`Prepared.neighbours` gives them, ``(rows, idx, sims)`` (``rows``: the rows of ``V``
    they are; ``idx``: among those rows) or ``(idx, sims)`` for the last ``len(idx)`` rows:
    then only the other rows are compared with all (the same neighbours as comparing all with
    all, ties aside); a known row left with fewer than ``k`` is compared in full."""
    n = len(V)
    k = min(k, n - 1)
    if known is None or k < 1:
        A = V @ V.T
        np.fill_diagonal(A, -np.inf)
        nbr = np.argpartition(-A, k - 1, axis=1)[:, :k]
        return nbr, np.take_along_axis(A, nbr, 1)
    if len(known) == 2:
        rows, (idx, sims) = np.arange(n - len(known[0]), n), known
    else:
        rows, idx, sims = known
    rows = np.asarray(rows, dtype=np.int64)
    m = len(rows)
    is_known = np.zeros(n, dtype=bool)
    is_known[rows] = True
    other = np.flatnonzero(~is_known)
    nbr = np.empty((n, k), dtype=np.int64)
    vals = np.empty((n, k), dtype=np.float32)
    mapped = np.where(idx >= 0, rows[np.maximum(idx, 0)], -1)
    if len(other):
        S = V[other] @ V.T
        S[np.arange(len(other)), other] = -np.inf
        top = np.argpartition(-S, k - 1, axis=1)[:, :k]
        nbr[other], vals[other] = top, np.take_along_axis(S, top, 1)
        cand = np.concatenate([S[:, rows].T, sims], axis=1)  # m x (others + K)
        cand_idx = np.concatenate([np.broadcast_to(other, (m, len(other))), mapped], axis=1)
    else:
        cand, cand_idx = sims, mapped
    top = np.argpartition(-cand, k - 1, axis=1)[:, :k]
    nbr[rows], vals[rows] = np.take_along_axis(cand_idx, top, 1), np.take_along_axis(cand, top, 1)
    short = np.flatnonzero((idx[:, :k] < 0).any(axis=1)) if idx.shape[1] >= k else np.arange(m)
    if len(short):  # rows whose kept neighbours the class excepted: compared in full
        S = V[rows[short]] @ V.T
        S[np.arange(len(short)), rows[short]] = -np.inf
        top = np.argpartition(-S, k - 1, axis=1)[:, :k]
        nbr[rows[short]], vals[rows[short]] = top, np.take_along_axis(S, top, 1)
    return nbr, vals
