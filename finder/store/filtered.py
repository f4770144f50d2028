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
* **Many pass, the top K** (``find --top``, ``similar``): the store's candidate pool for the
  query (the pool an unfiltered search ranks, rescored exactly) is walked best first and
  checked against the filter in growing chunks until K pass: a broad filter costs little more
  than no filter. When fewer pass (a narrow filter, or one that leaves out the best matches),
  the search tier is asked again for candidates among the ids that pass only (a FAISS
  ``IDSelector``, as many codes compared as without a filter), and those are rescored; should
  that still give fewer than K while more pass, every photo that passes is scored exactly.
"""

from __future__ import annotations

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
    threshold = min_score is not None or k is None
    if threshold:  # (the flat tier scores every vector: a filter never makes that worse)
        limit = max(FEW_THRESHOLD, store.pool_size(1, head=head))
    else:
        limit = store.pool_size(int(k) + n_ex, head=head)
    few = facts.allowed(cat, filters, limit=limit)
    if few is not None:
        return exact(few)
    if threshold:
        ids, scores = store.search_linear(w, b, min_score=min_score)
        keep = np.isin(ids, facts.passing(cat, filters, ids))
        if n_ex:
            keep &= ~np.isin(ids, exclude_ids)
        return _cut(ids[keep], scores[keep], k)
    assert k is not None
    ids, scores = store.candidates(w, k, b=b, head=head, exclude_ids=exclude_ids)
    rows = _walk(cat, filters, ids, k)
    if len(rows) >= k:
        return ids[rows[:k]], scores[rows[:k]]
    every = facts.allowed(cat, filters)  # the pool ran dry: only the ids that pass
    ids, scores = store.candidates(w, k, b=b, head=head, exclude_ids=exclude_ids, within=every)
    left = len(every) - (int(np.isin(exclude_ids, every).sum()) if n_ex else 0)
    if len(ids) >= min(k, left):
        return ids[:k], scores[:k]
    return exact(every)


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
