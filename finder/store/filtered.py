"""Searches narrowed by photo facts (``finder.store.facts.Filters``), exact whatever the filter.

A filtered answer is the answer over the photos that pass, never the unfiltered top K with
the failures dropped (which would return fewer than K, or miss photos further down). How it is
computed depends on how many photos pass, found out cheaply (a query that stops after
``limit + 1`` rows):

* **Few pass** (no more than the vectors the unfiltered query would score exactly: its
  candidate pool, every vector in the flat tier, ``FEW_THRESHOLD`` for a threshold): every one
  of them is scored exactly from the raw vectors; the top K, or all above the threshold, of
  those. Exact, and no more work than the unfiltered query.
* **Many pass, a threshold** (``find`` at its cut-off, ``--min-prob``): the unfiltered threshold
  search is complete (it returns every photo above the threshold, see ``finder.store.vectors``),
  so keeping those that pass gives exactly the filtered set.
* **Many pass, the top K** (``find --top``, ``similar``): when few enough pass that the
  query's candidate pool would hold fewer than about 2K of them (and at most ``WITHIN_MAX``),
  the search tier is asked for candidates among the ids that pass only (a FAISS
  ``IDSelector``, as many codes compared as without a filter), and those are rescored. When
  more pass, the store's candidate pool (the one an unfiltered search ranks, rescored exactly)
  is walked best first and checked against the filter in growing chunks until K pass: a broad
  filter costs little more than none; should the pool run dry (a filter that leaves out the
  best matches), the tier is asked for the passing ids only. Should that give fewer than K
  while more pass, every photo that passes is scored exactly.
"""

from __future__ import annotations

from math import ceil
from typing import TYPE_CHECKING

import numpy as np

from finder.store import facts

if TYPE_CHECKING:
    from finder.store.catalog import Catalog
    from finder.store.facts import Filters
    from finder.store.vectors import VectorStore

#: Threshold queries score the passing photos one by one when at most this many pass (8 KB of
#: raw vectors each at 4096-d: 64 MB); beyond, the complete index search does the work.
FEW_THRESHOLD = 8192
FIRST_CHUNK = 512  # candidates checked against the filter in the first round (then x4)
#: A narrow filter's passing ids (up to this many) go to the search tier at once, rather than
#: after a walk down the candidate pool that would likely fall short.
WITHIN_MAX = 50_000


def search(
    cat: Catalog,
    store: VectorStore,
    filters: Filters,
    w: np.ndarray,
    b: float = 0.0,
    *,
    k: int | None = None,
    min_score: float | None = None,
    head: bool = True,
    exclude_ids: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Ids and exact scores ``w.x + b`` of the photos passing ``filters``, best first: the top
    ``k``, every one with score >= ``min_score``, both, or (neither) all of them. ``head``: ``w``
    is a head's weights rather than a photo's vector (it picks the candidate pool)."""

    def exact(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        found = store.score_ids(ids, w, b, min_score=min_score, exclude_ids=exclude_ids)
        return _cut(*found, k)

    n_ex = 0 if exclude_ids is None else len(exclude_ids)
    if min_score is not None or k is None:  # a threshold (or everything): a complete set
        # (the flat tier scores every vector: a filter never makes that worse)
        few = facts.allowed(cat, filters, limit=max(FEW_THRESHOLD, store.pool_size(1, head=head)))
        if few is not None:
            return exact(few)
        ids, scores = store.search_linear(w, b, min_score=min_score)
        keep = np.isin(ids, facts.passing(cat, filters, ids))
        if n_ex:
            keep &= ~np.isin(ids, exclude_ids)
        return _cut(ids[keep], scores[keep], k)
    pool = store.pool_size(k + n_ex, head=head)
    # Narrow: so few pass that the pool would hold fewer than about 2k of them.
    narrow = max(pool, min(WITHIN_MAX, ceil(len(store) * 2 * (k + n_ex) / max(pool, 1))))
    some = facts.allowed(cat, filters, limit=narrow)
    if some is not None and len(some) <= pool:
        return exact(some)
    if some is None:
        ids, scores = store.candidates(w, k, b=b, head=head, exclude_ids=exclude_ids)
        rows = _walk(cat, filters, ids, k)
        if len(rows) >= k:
            return ids[rows[:k]], scores[rows[:k]]
        some = facts.allowed(cat, filters)  # the pool ran dry
    # the search tier, asked for the ids that pass only
    ids, scores = store.candidates(w, k, b=b, head=head, exclude_ids=exclude_ids, within=some)
    left = len(some) - (int(np.isin(exclude_ids, some).sum()) if n_ex else 0)
    if len(ids) >= min(k, left):
        return ids[:k], scores[:k]
    return exact(some)


def _walk(cat: Catalog, filters: Filters, ids: np.ndarray, k: int) -> np.ndarray:
    """Positions in ``ids`` (best first) of the first ``k`` or more that pass, checked in
    growing chunks."""
    found: list[np.ndarray] = []
    have = start = 0
    step = FIRST_CHUNK
    while start < len(ids) and have < k:
        chunk = ids[start : start + step]
        keep = np.flatnonzero(np.isin(chunk, facts.passing(cat, filters, chunk))) + start
        found.append(keep)
        have += len(keep)
        start += len(chunk)
        step *= 4
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


def _cut(ids: np.ndarray, scores: np.ndarray, k: int | None) -> tuple[np.ndarray, np.ndarray]:
    return (ids, scores) if k is None else (ids[:k], scores[:k])


def by_date(cat: Catalog, ids: np.ndarray) -> np.ndarray:
    """Positions of ``ids`` in order of the date taken, oldest first; undated ones last, in
    their original order."""
    taken = facts.dates(cat, ids.tolist())  # text order is time order (local wall-clock)
    keys = [(taken.get(int(i)) is None, taken.get(int(i)) or "", pos) for pos, i in enumerate(ids)]
    return np.asarray([pos for *_, pos in sorted(keys)], dtype=np.int64)
