"""The answer near a class's cut re-ranked by each photo's neighbours in the library
(:mod:`finder.learn.smooth` over the kept k-NN graph, :mod:`finder.store.graph`).

A photo within ``width`` logits of the cut (in the fit's scale) moves by at most ``weight``
towards what its 10 nearest library photos say: their marks for the class, else the head's own
verdict on them. ``find``'s answer (its threshold, and its top K: the page's grid) and the
estimate (:mod:`finder.strips`) are the re-ranked ones; a strip's choice and guesses stay the
head's own (as measured, docs/heads.md). Searches go down to the band's foot, the band's
neighbours come from the graph, their logits from the store (one exact scoring of their ids).

No graph (a library from before them, a damaged file) or one that is not the vectors' (an
index run interrupted before it was brought up to date): the answer is the head's, unsmoothed,
said once in the library's messages; `finder repair` computes the graph again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from finder.folder import Folder
from finder.learn.head import Head
from finder.learn.smooth import Smooth, smoothed
from finder.store import graph as graphs
from finder.store.graph import Graph, GraphDamaged
from finder.store.vectors import VectorStore
from finder.teach import Teaching

#: A search as the answers run it: ``(k, min_score)`` → vector ids and logits, best first.
RawSearch = Callable[[int | None, float | None], tuple[np.ndarray, np.ndarray]]

UNSMOOTHED = (
    "the neighbour graph is {why}: answers near a class's cut are the head's own, not "
    "re-ranked by their neighbours (nothing is lost; `finder repair` computes the graph)"
)


@dataclass
class Smoothing:
    """One head's re-rank over ``graph``: ``marks`` (vector id → 1 ✓ / 0 ✗) of its class."""

    graph: Graph
    store: VectorStore
    head: Head
    marks: dict[int, int]
    config: Smooth

    @property
    def scale(self) -> float:
        return _scale(self.head)

    @property
    def foot(self) -> float:
        """The lowest logit (head's scale) that the re-rank moves."""
        return self.head.logit_threshold - self.config.width * self.scale

    @property
    def ceiling(self) -> float:
        """No photo re-ranked reaches this logit (head's scale)."""
        return self.head.logit_threshold + (self.config.width + self.config.weight) * self.scale

    def apply(
        self,
        ids: np.ndarray,
        z: np.ndarray,
        *,
        known: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """The logits ``z`` of vectors ``ids`` re-ranked (float64, the head's scale), marked
        photos too (by their neighbours; their own mark is not among them), as ``finder eval
        --feedback`` re-ranks every photo (``learn.feedback``). ``known``: (ids, logits)
        already scored (their neighbours' logits are read from them, the rest scored)."""
        ids = np.asarray(ids, dtype=np.int64)
        out = np.asarray(z, dtype=np.float64).copy()
        cut = self.head.logit_threshold
        near = np.abs(out - cut) < self.config.width * self.scale
        k = min(self.config.k, len(self.graph) - 1)
        if not near.any() or k < 1:
            return out
        at = np.flatnonzero(near)
        nbr, sim = self.graph.neighbours(ids[at], k)
        sim = np.where(nbr >= 0, sim, -np.inf)  # (a place no neighbour is known for: none)
        uniq, inverse = np.unique(nbr, return_inverse=True)
        zu = np.zeros(len(uniq))
        todo = np.ones(len(uniq), bool)
        # logits already computed: the caller's, and the store's last complete search of this
        # head (a strip's goes 6 logits below the cut: most neighbours are in it)
        held = self.store.held_search(self.head.w, self.head.b)
        for kid, kz in [pair for pair in (known, held) if pair is not None]:
            if not todo.any():
                break
            hit, value = _lookup(kid, kz, uniq)
            hit &= todo
            zu[hit] = value[hit]
            todo &= ~hit
        if todo.any():  # every neighbour in a fresh graph has a stored vector
            got, scores = self.store.score_ids(uniq[todo], self.head.w, self.head.b)
            zu[todo] = _lookup(got, scores, uniq[todo])[1]
        nz = zu[inverse.reshape(nbr.shape)]
        label = np.full(len(uniq), np.nan)
        hit, value = _lookup(list(self.marks), list(self.marks.values()), uniq)
        label[hit] = value[hit]
        out[at] = smoothed(
            out[at],
            cut,
            nz,
            sim,
            label[inverse.reshape(nbr.shape)],
            softened=self.head.params.get("softened"),
            config=self.config,
        )
        return out

    def search(
        self, raw: RawSearch, k: int | None, min_score: float | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``raw``'s answer re-ranked: every vector re-ranked at or above ``min_score`` (k
        None), or the re-ranked top ``k`` (``min_score`` None), best first."""
        if k is None:
            low = self.foot if min_score is None else min(min_score, self.foot)
            ids, z = raw(None, low)
            z = self.apply(ids, z, known=(ids, z))
            keep = np.ones(len(z), bool) if min_score is None else z >= min_score
            return _best_first(ids[keep], z[keep])
        ids, z = raw(k, min_score)
        if len(ids) == k and float(z[-1]) >= self.ceiling:
            return ids, z  # the top k are above every photo the re-rank moves
        low = self.foot if min_score is None else max(min_score, self.foot)
        ids, z = raw(None, low)  # every photo the re-rank may move, and those above
        z = self.apply(ids, z, known=(ids, z))
        if min_score is not None:
            keep = z >= min_score
            ids, z = ids[keep], z[keep]
        if (z >= low).sum() < k:  # a photo below them may rank in the top k: those too
            more, more_z = raw(k + len(ids), min_score)
            out = ~np.isin(more, ids)
            ids = np.concatenate([ids, more[out]])
            z = np.concatenate([z, np.asarray(more_z, np.float64)[out]])
        ids, z = _best_first(ids, z)
        return ids[:k], z[:k]


def _lookup(keys, values, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which of the ids ``wanted`` are among ``keys`` (a mask), and the ``values`` (float64)
    of those that are (of the nearest key for the others; 0 where ``keys`` is empty)."""
    keys = np.asarray(keys, dtype=np.int64)
    if not len(keys):
        return np.zeros(len(wanted), bool), np.zeros(len(wanted))
    order = np.argsort(keys)
    where = np.minimum(np.searchsorted(keys[order], wanted), len(keys) - 1)
    return keys[order][where] == wanted, np.asarray(values, dtype=np.float64)[order][where]


def _scale(head: Head) -> float:
    """The head's softening of its logits (1: none): the band's width is in the fit's scale."""
    softened = head.params.get("softened")
    return 1.0 if softened is None else float(softened[0])


def _best_first(ids: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((ids, -z))
    return ids[order], z[order]


class Neighbours:
    """The kept graph of the library in ``folder`` (read again when its file changes) and the
    re-rank of ``teaching``'s classes over it."""

    def __init__(self, folder: Folder, teaching: Teaching, config: Smooth | None = None) -> None:
        self.folder = folder
        self.teaching = teaching
        self.config = config or Smooth()
        self._read: tuple[tuple, Graph | None, str | None] | None = None  # file stat, graph, why
        self._fresh: tuple[tuple, bool] | None = None  # (the store's state, graph fresh)
        self._said = False

    def graph(self) -> Graph | None:
        """The kept graph when it is the open vectors' (read when its file changed); None
        otherwise, said once in the library's messages."""
        store = self.folder.open_vectors()
        p = graphs.path(self.folder.dir)
        try:
            st = p.stat()
            key: tuple = (st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            key = ()
        if self._read is None or self._read[0] != key:
            why = None
            try:
                graph = graphs.load(self.folder.dir) if key else None
            except GraphDamaged:
                graph, why = None, "damaged"
            self._read, self._fresh = (key, graph, why), None
        _, graph, why = self._read
        if graph is not None:
            state = (id(store), store.raw.generation, store.raw.n, len(store))
            if self._fresh is None or self._fresh[0] != state:
                self._fresh = (state, graph.fresh(store))
            if self._fresh[1]:
                return graph
            why = "not the stored vectors' (an index run was interrupted)"
        elif why is None:
            why = "missing"
        if not self._said and len(store):
            self.folder.messages.append(UNSMOOTHED.format(why=why))
            self._said = True
        return None

    def for_head(self, name: str, head: Head) -> Smoothing | None:
        """Class ``name``'s re-rank under ``head``; None without a graph of the vectors."""
        graph = self.graph()
        if graph is None:
            return None
        marks = {m.id: int(m.label) for m in self.teaching.marks(name) if m.id is not None}
        return Smoothing(graph, self.folder.open_vectors(), head, marks, self.config)

    def rerank(self, name: str, head: Head, ids: np.ndarray, z: np.ndarray) -> np.ndarray:
        """The logits ``z`` of vectors ``ids`` under class ``name``'s ``head`` as ``find``
        ranks them (re-ranked near the cut; the head's own without a graph): what a photo's
        page and the live updates say of a few photos."""
        z = np.asarray(z, dtype=np.float64)
        if not (np.abs(z - head.logit_threshold) < self.config.width * _scale(head)).any():
            return z
        smoothing = self.for_head(name, head)
        return z if smoothing is None else smoothing.apply(ids, z)
