"""Searches narrowed by photo facts (``finder.store.facts.Filters``), exact whatever the filter.

A filtered answer is the answer over the photos that pass, never the unfiltered top K with
the failures dropped (which would return fewer than K, or miss photos further down). How it is
computed depends on how many photos pass, found out cheaply (a query that stops after
``FEW + 1`` rows):

* **Few pass** (at most ``FEW``): every one of them is scored exactly from the raw vectors;
  the top K, or all above the threshold, of those. Exact, and fast because the set is small.
* **Many pass, a threshold** (``find`` at its cut-off, ``--min-prob``): the unfiltered threshold
  search is complete (it returns every photo above the threshold, see ``finder.store.vectors``),
  so keeping those that pass gives exactly the filtered set.
* **Many pass, the top K** (``find --top``, ``similar``): the store's candidate pool for the
  query (the same pool an unfiltered search ranks, rescored exactly) is walked best first and
  checked against the filter in growing chunks until K pass. When the pool runs out first (a
  filter that passes many photos but few of the best), every photo that passes is scored
  exactly: slower, still exact.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from finder.store import facts

if TYPE_CHECKING:
    from finder.store.catalog import Catalog
    from finder.store.facts import Filters
    from finder.store.vectors import VectorStore

#: At most this many passing photos are scored one by one, exactly (8 KB of raw vectors each at
#: 4096-d: 64 MB, tens of milliseconds); beyond, the index does the work.
FEW = 8192
FIRST_CHUNK = 1024  # candidates checked against the filter in the first round (then x4)


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
    few = facts.allowed(cat, filters, limit=FEW)
    if few is not None:
        return _cut(*store.score_ids(few, w, b, min_score=min_score, exclude_ids=exclude_ids), k)
    if min_score is not None or k is None:
        ids, scores = store.search_linear(w, b, min_score=min_score)
        keep = np.isin(ids, facts.passing(cat, filters, ids))
        if exclude_ids is not None and len(exclude_ids):
            keep &= ~np.isin(ids, exclude_ids)
        return _cut(ids[keep], scores[keep], k)
    ids, scores = store.candidates(w, k, b=b, head=head, exclude_ids=exclude_ids)
    found: list[np.ndarray] = []
    have = 0
    start, step = 0, FIRST_CHUNK
    while start < len(ids) and have < k:
        chunk = ids[start : start + step]
        keep = np.flatnonzero(np.isin(chunk, facts.passing(cat, filters, chunk))) + start
        found.append(keep)
        have += len(keep)
        start += step
        step *= 4
    if have >= k:
        rows = np.concatenate(found)[:k]
        return ids[rows], scores[rows]
    every = facts.allowed(cat, filters)  # the pool ran out: score every photo that passes
    return _cut(*store.score_ids(every, w, b, exclude_ids=exclude_ids), k)


def _cut(ids: np.ndarray, scores: np.ndarray, k: int | None) -> tuple[np.ndarray, np.ndarray]:
    return (ids, scores) if k is None else (ids[:k], scores[:k])


def by_date(cat: Catalog, ids: np.ndarray) -> np.ndarray:
    """Positions of ``ids`` in order of the date taken, oldest first; undated ones last, in
    their original order."""
    taken = facts.dates(cat, ids.tolist())  # text order is time order (local wall-clock)
    keys = [(taken.get(int(i)) is None, taken.get(int(i)) or "", pos) for pos, i in enumerate(ids)]
    return np.asarray([pos for *_, pos in sorted(keys)], dtype=np.int64)
