"""The background samples a library's classes are learned against, kept while it is unchanged.

A :class:`~finder.learn.background.Pool` holds a library's background and fresh candidates for
one seed (their vectors read once, the background in the metric, its neighbours): every
retraining of a class (a strip confirmed, a click, a filed class refreshed) draws from it
instead of reading 4,000 random vectors from the store and putting them in the metric again.
:class:`Backgrounds` keeps the pools of the last few seeds while the library's vectors and
metric stay what they were, and makes them again when either changes (photos indexed, removed,
re-embedded, a metric recomputed). What a head learns from is what :func:`finder.learn.
background.draw` draws, cached or not.
"""

from __future__ import annotations

import hashlib

import numpy as np

from finder.learn.background import Pool, Prepared
from finder.learn.metric import Metric
from finder.store.vectors import VectorStore

KEPT: int = 2
"""Pools kept (one per seed): the page's seed and a filing's."""


class Backgrounds:
    """The pools of one library's vector store, by seed (see the module's docstring)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._pools: dict[tuple, Pool] = {}

    def draw(
        self,
        store: VectorStore,
        all_ids: np.ndarray,
        exclude: np.ndarray,
        seed: int,
        metric: Metric | None,
        counter: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, Prepared]:
        """The background and fresh vectors of a class of the library whose (sorted) ids are
        ``all_ids``, ``exclude`` the positions among them it excepts (its marked and filed
        photos), and what the pool prepared of them; ``counter``: the positions of the filed
        counter-examples it is trained against (the last rows of its negatives, in order),
        prepared too (put in the metric and in the graph once for all the classes drawing
        them)."""
        key = (
            id(store),
            store.raw.n,  # grows with every vector added (a photo re-embedded too)
            hashlib.blake2b(np.ascontiguousarray(all_ids).tobytes(), digest_size=16).digest(),
            seed,
            id(metric),
        )
        pool = self._pools.get(key)
        if pool is None or pool.metric is not metric:
            pool = Pool(
                len(all_ids),
                seed,
                lambda positions: store.get(all_ids[positions]),
                metric,
                size=self.size,
            )
            self._pools = {k: p for k, p in self._pools.items() if k[:3] == key[:3]}
            while len(self._pools) >= KEPT:
                self._pools.pop(next(iter(self._pools)))
            self._pools[key] = pool
        _, _, B, F, prepared = pool.draw(exclude, counter)
        return B, F, prepared
