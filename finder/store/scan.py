"""Exact scores of many stored vectors at once: the threshold query's rescoring when its
candidates are most of the library (a part of :mod:`finder.store.vectors`).

A head's threshold query (``VectorStore.search_linear(min_score=...)``: a strip's complete
search) often keeps most of the library as candidates: far below a class's cut lies most of it.
:func:`finder.store.exact.rescore` reads candidates through a memory map made for each block of
rows, whose page faults cost more than the scoring itself at 4,096-d (about 1 s of CPU for
100,000 vectors against 0.4 s read into a buffer). :func:`dense_rescore` reads each block of
sorted rows as one contiguous span of the raw file into a buffer of its own (the rows it does
not need are skipped), and scores it with the same :func:`~finder.store.exact.exact_scores`:
the same scores (a row's score depends on that row only), the same order.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import faiss
import numpy as np

from finder.embed.runtime import cpu_count
from finder.store.exact import exact_scores
from finder.store.raw import RawLog

STEP = 4096
"""Rows scored at a time (a worker's buffer: 32 MB at 4,096-d)."""

DENSE = 2
"""A block of rows is read as one span when the span is at most this many times its rows."""


def dense(raw: RawLog, count: int) -> bool:
    """Whether ``count`` candidates are enough of the raw log's rows to read them in spans."""
    return count >= 2 * STEP and DENSE * count >= raw.n


def dense_rescore(
    raw: RawLog,
    cand: np.ndarray,
    w: np.ndarray,
    b: float,
    *,
    min_score: float | None = None,
    threads: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`finder.store.exact.rescore` of many candidates (ids): their exact scores
    ``w.x + b``, best first (ties by id), only those >= ``min_score`` when given."""
    cand = np.unique(np.asarray(cand, dtype=np.int64))
    rows = raw.lookup(cand)
    ok = rows >= 0
    cand, rows = cand[ok], rows[ok]
    order = np.argsort(rows)
    cand, rows = cand[order], rows[order]
    scores = np.empty(len(rows), dtype=np.float32)
    w = np.asarray(w, dtype=np.float32)
    path = raw.path("vec")
    row_bytes = 2 * raw.dim

    def score(start: int) -> None:
        faiss.omp_set_num_threads(1)  # this worker thread only
        part = rows[start : start + STEP]
        lo, hi = int(part[0]), int(part[-1]) + 1
        if hi - lo > DENSE * len(part):
            x = raw.read_rows(part)
        else:
            x = np.empty((hi - lo, raw.dim), dtype=np.float16)
            fd = os.open(path, os.O_RDONLY)
            try:
                view = memoryview(x).cast("B")
                done = 0
                while done < len(view):
                    got = os.preadv(fd, [view[done:]], lo * row_bytes + done)
                    if got <= 0:
                        raise OSError(f"{path}: the raw vectors end before row {hi}")
                    done += got
            finally:
                os.close(fd)
            if hi - lo != len(part):
                x = x[part - lo]
        scores[start : start + len(part)] = exact_scores(x, w)

    starts = range(0, len(rows), STEP)
    workers = cpu_count()
    if len(rows) > 2 * STEP and workers > 1 and threads:
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
