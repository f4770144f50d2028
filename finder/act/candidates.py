"""Candidate pairs for near-duplicates: pairs of stored vectors whose cosine similarity reaches
a threshold, with that similarity computed exactly from the raw float16 vectors.

Two ways, one answer shape (:class:`Pairs`):

* :func:`exact_pairs`: every pair, compared block by block (a matrix product per pair of blocks
  of ``BLOCK`` vectors). Complete; time grows with the square of the library.
* :func:`index_pairs`: candidates from the library's IVF search tier
  (:meth:`finder.store.tiers.ivf.IvfTier.pairs`: each vector against the ``PROBES`` inverted
  lists nearest to it, on the 8-bit PCA codes, kept when an upper bound on the cosine that the
  codes' error bounds give reaches the threshold), then the exact cosine of each candidate from
  the raw vectors. Time grows about linearly; a pair whose two photos fall into lists that
  neither probes is missed (``scripts/bench_dupes.py --scale N`` measures how many).

:func:`near_pairs` picks: the exact way while the store searches exactly (its flat tier, up to
10,000 vectors) or the images compared are at most ``exact_below``, else the index. Both ways
score with :func:`cosines` (FAISS's float16 kernel), so they agree on every pair they share.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from finder.store.exact import exact_scores, one_thread

if TYPE_CHECKING:
    from finder.store.vectors import VectorStore

#: Vectors compared at a time by the exact way (a 4096 x 4096 block of similarities: 64 MB).
BLOCK = 4096
#: Inverted lists each vector is compared with by the index way, the nearest to it (at
#: 1,000,000 vectors in 4096 lists, 10 lists hold about 2,400 vectors: ~1/400 of the library).
PROBES = 10
#: Pairs whose exact cosine is computed at a time.
RESCORE = 8192


@dataclass(frozen=True)
class Pairs:
    """Pairs of image ids (``a < b``, sorted) and their exact cosine similarity."""

    a: np.ndarray
    b: np.ndarray
    cosine: np.ndarray

    def __len__(self) -> int:
        return len(self.a)

    def as_dict(self) -> dict[tuple[int, int], float]:
        pairs = zip(self.a.tolist(), self.b.tolist(), strict=True)
        return dict(zip(pairs, self.cosine.tolist(), strict=True))

    @staticmethod
    def of(a: np.ndarray, b: np.ndarray) -> Pairs:
        """Unscored pairs, ordered (smaller id first), sorted, without repeats."""
        a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        order = np.lexsort((hi, lo))
        lo, hi = lo[order], hi[order]
        first = np.ones(len(lo), dtype=bool)
        first[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
        return Pairs(lo[first], hi[first], np.zeros(int(first.sum()), np.float32))


def _queries(ids: np.ndarray, within: Sequence[int] | np.ndarray | None) -> np.ndarray:
    if within is None:
        return ids
    return np.intersect1d(ids, np.asarray(within, dtype=np.int64))


def exact_pairs(
    store: VectorStore,
    ids: Sequence[int] | np.ndarray,
    min_cosine: float,
    *,
    within: Sequence[int] | np.ndarray | None = None,
) -> Pairs:
    """Every pair of ``ids`` whose stored vectors have cosine similarity >= ``min_cosine``
    (with ``within``: only the pairs with at least one of those ids): by blocks of ``BLOCK``
    vectors read from the store, so memory stays at a few blocks."""
    ids = np.unique(np.asarray(ids, dtype=np.int64))
    queries = _queries(ids, within)
    everyone = within is None
    is_query = np.isin(ids, queries, assume_unique=True)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    # float32 products select (with a margin for their rounding); :func:`cosines` decides, as
    # it does for the index way, so that both give the same pairs and the same scores
    limit = np.float32(min_cosine - 1e-4)
    for qi in range(0, len(queries), BLOCK):
        left = queries[qi : qi + BLOCK]
        x = store.get(left)
        # With every id a query, each pair of blocks once (the upper triangle).
        start = np.searchsorted(ids, left[0]) if everyone else 0
        for bj in range(start, len(ids), BLOCK):
            right = ids[bj : bj + BLOCK]
            y = x if everyone and bj == start and np.array_equal(right, left) else store.get(right)
            sims = x @ y.T
            rows, cols = np.nonzero(sims >= limit)
            a, b = left[rows], right[cols]
            # a pair once: a < b when both are queries, else from the query's side
            keep = (a < b) | ~is_query[bj + cols] if not everyone else a < b
            parts.append((a[keep], b[keep]))
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return Pairs(empty, empty.copy(), np.zeros(0, dtype=np.float32))
    found = Pairs.of(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return _scored(store, found.a, found.b, min_cosine)


def _scored(store: VectorStore, a: np.ndarray, b: np.ndarray, min_cosine: float) -> Pairs:
    """The pairs (sorted) whose exact cosine reaches ``min_cosine``, with it."""
    cos = cosines(store, a, b)
    keep = cos >= np.float32(min_cosine)
    return Pairs(a[keep], b[keep], cos[keep])


def cosines(store: VectorStore, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The exact cosine similarity (inner product of the stored unit vectors, FAISS's float16
    kernel: :func:`~finder.store.exact.exact_scores`) of each pair ``(a[i], b[i])``, for pairs
    sorted by ``a``: ``RESCORE`` pairs at a time, each ``a`` against its ``b``s, on a thread per
    core (reads and FAISS release the GIL)."""
    from finder.embed.runtime import cpu_count

    out = np.empty(len(a), dtype=np.float32)
    raw = store.raw

    def score(start: int) -> None:
        pa, pb = a[start : start + RESCORE], b[start : start + RESCORE]
        firsts, first = np.unique(pa, return_index=True)
        va = store.get(firsts)
        rows, back = np.unique(raw.lookup(pb), return_inverse=True)
        vb = raw.read_rows(rows)[back]  # read in file order: the page cache reads ahead
        cuts = np.append(first, len(pa))
        for k in range(len(firsts)):
            lo, hi = cuts[k], cuts[k + 1]
            out[start + lo : start + hi] = exact_scores(vb[lo:hi], va[k])

    with one_thread(), ThreadPoolExecutor(cpu_count()) as pool:
        list(pool.map(score, range(0, len(a), RESCORE)))
    return out


def index_candidates(
    store: VectorStore,
    ids: Sequence[int] | np.ndarray,
    min_cosine: float,
    *,
    within: Sequence[int] | np.ndarray | None = None,
    probes: int = PROBES,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Candidate pairs (a < b, sorted, unscored) among ``ids`` from the store's search tier,
    or None when the tier cannot join (it searches exactly: use :func:`exact_pairs`)."""
    tier = store.tier()
    join = getattr(tier, "pairs", None)
    if join is None:
        return None
    ids = np.unique(np.asarray(ids, dtype=np.int64))
    queries = None if within is None else _queries(ids, within)
    found = list(join(min_cosine, probes=probes, within=queries))
    if not found:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy()
    a = np.concatenate([f[0] for f in found])
    b = np.concatenate([f[1] for f in found])
    keep = np.isin(a, ids) & np.isin(b, ids) & (a != b)
    pairs = Pairs.of(a[keep], b[keep])
    return pairs.a, pairs.b


def index_pairs(
    store: VectorStore,
    ids: Sequence[int] | np.ndarray,
    min_cosine: float,
    *,
    within: Sequence[int] | np.ndarray | None = None,
    probes: int = PROBES,
) -> Pairs | None:
    """:func:`index_candidates` scored exactly, those >= ``min_cosine`` kept; None when the
    store's tier cannot join."""
    cand = index_candidates(store, ids, min_cosine, within=within, probes=probes)
    if cand is None:
        return None
    return _scored(store, cand[0], cand[1], min_cosine)


#: Up to this many images the exact way is used whatever the tier (a few seconds).
EXACT_BELOW = 10_000


def near_pairs(
    store: VectorStore,
    ids: Sequence[int] | np.ndarray,
    min_cosine: float,
    *,
    within: Sequence[int] | np.ndarray | None = None,
    exact_below: int = EXACT_BELOW,
) -> Pairs:
    """Pairs of ``ids`` (with ``within``: with at least one of those) whose cosine similarity
    is at least ``min_cosine``, exact scores: the exact way for up to ``exact_below`` images or
    an exact tier, else the index."""
    if len(ids) > exact_below:
        found = index_pairs(store, ids, min_cosine, within=within)
        if found is not None:
            return found
    return exact_pairs(store, ids, min_cosine, within=within)
