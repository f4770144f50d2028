"""Exact scores and the threads they run on.

Exact scores are FAISS's fp16 inner product (:func:`exact_scores`); a query's small scans run on
one thread (:func:`one_thread`), large rescoring (:func:`rescore`) and threshold scans on every
core. Importing this module changes no thread setting.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import faiss
import numpy as np

from finder.embed.runtime import cpu_count

if TYPE_CHECKING:
    from finder.store.raw import RawLog

_POOLS: Any = None  # threadpoolctl's controller, made on first use (it scans loaded libraries)


def exact_scores(rows: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``rows @ w`` for float16 rows, computed by FAISS's fp16 inner product (each row's score
    depends on that row only). The one definition of an exact score: the store's rescoring, its
    threshold filter and the benchmark's exhaustive ground truth all use it. numpy has no fast
    float16 path (converting costs ~4 ns a value; this fused kernel is ~20x faster)."""
    rows = np.ascontiguousarray(rows, dtype=np.float16)
    n, dim = rows.shape
    out = np.empty(n, dtype=np.float32)
    if n == 0:
        return out
    index = faiss.IndexScalarQuantizer(
        dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
    )
    query = np.asarray(w, dtype=np.float32).reshape(1, dim)
    codes = rows.view(np.uint8).reshape(n, 2 * dim)
    step = 2048  # the scratch index is reused: its buffer stays warm
    for start in range(0, n, step):
        part = codes[start : start + step]
        index.reset()
        index.add_sa_codes(part)
        scores, order = index.search(query, len(part))
        out[start + order[0]] = scores[0]
    return out


def scores_of_rows(raw: RawLog, rows: np.ndarray, w: np.ndarray) -> np.ndarray:
    """:func:`exact_scores` of the raw log's ``rows`` (sorted): read in place from the file's
    mapping (:meth:`~finder.store.raw.RawLog.span`) when they fill at least half of the span
    they cover (a complete scan, a threshold the index cannot narrow: the rows in between are
    scored too and dropped), else copied out one by one. The same scores either way: a row's
    score depends on that row only."""
    rows = np.asarray(rows, dtype=np.int64)
    if not len(rows):
        return np.zeros(0, dtype=np.float32)
    lo, hi = int(rows[0]), int(rows[-1]) + 1
    if hi - lo <= 2 * len(rows):
        span = raw.span(lo, hi)
        try:
            out = exact_scores(span, w)
        finally:
            del span  # the mapping goes with it
        return out if hi - lo == len(rows) else out[rows - lo]
    return exact_scores(raw.read_rows(rows), w)


def rescore(
    raw: RawLog,
    cand: np.ndarray,
    w: np.ndarray,
    b: float,
    *,
    exclude_ids: np.ndarray | None = None,
    min_score: float | None = None,
    threads: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate ids (without ``exclude_ids``) and their exact scores ``w.x + b`` read from the
    raw log, best first (ties by id); only those >= ``min_score`` when given. Large candidate
    sets are scored on every core when ``threads``."""
    cand = np.asarray(cand, dtype=np.int64).reshape(-1)
    if exclude_ids is not None and len(exclude_ids):
        cand = cand[~np.isin(cand, np.asarray(exclude_ids, dtype=np.int64))]
    found = raw.lookup(cand)
    if len(cand) > 1024:  # each live row once, in file order: a mask, no sort of the candidates
        mask = np.zeros(raw.n, dtype=bool)
        mask[found[found >= 0]] = True
        rows = np.flatnonzero(mask)
    else:
        rows = np.unique(found[found >= 0])
    cand = raw.ids_of(rows)
    scores = np.empty(len(rows), dtype=np.float32)
    step = 4096  # bounded memory for large candidate sets

    def score(start: int) -> None:
        faiss.omp_set_num_threads(1)  # this worker thread only
        part = rows[start : start + step]
        scores[start : start + len(part)] = scores_of_rows(raw, part, w)

    starts = range(0, len(rows), step)
    workers = cpu_count()
    if len(rows) > 2 * step and workers > 1 and threads:
        with ThreadPoolExecutor(workers) as pool:  # reads and faiss release the GIL
            list(pool.map(score, starts))
    else:
        for start in starts:
            score(start)
    scores += np.float32(b)
    if min_score is not None:
        keep = scores >= np.float32(min_score)
        cand, scores = cand[keep], scores[keep]
    best = np.lexsort((cand, -scores))
    return cand[best], scores[best].astype(np.float32)


def _pools() -> Any:
    global _POOLS
    if _POOLS is None:
        try:  # optional: lets one query run on one thread
            from threadpoolctl import ThreadpoolController

            _POOLS = ThreadpoolController()
        except Exception:  # pragma: no cover - threadpoolctl missing
            _POOLS = False
    return _POOLS


@contextmanager
def one_thread() -> Iterator[None]:
    """Run FAISS and BLAS on one thread inside the block: a single query's small scans finish
    in a millisecond on one core, while handing them to two threads of a loaded machine costs
    tens of milliseconds of waiting."""
    saved = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        pools = _pools()
        if pools:
            with pools.limit(limits=1, user_api="blas"):
                yield
        else:
            yield
    finally:
        faiss.omp_set_num_threads(saved)
