"""The vector store: raw float16 vectors on disk plus a search index in memory, keyed by catalog
image id.

Files in the store's directory: the raw log (:mod:`finder.store.raw`: ``manifest.json``,
``vectors-g.f16``, ``ids-g.i64``, ``dead-g.i64``), and the saved search index::

    index.json        which tier and index files are current, the rows they cover, checksums
    index-T.*         the files of that index (persistent tiers only; flat is rebuilt from raw)

The raw files are the truth; the index is derived from them and rebuilt or brought up to date
when it is missing, damaged or stale (an index file covering fewer rows gets the missing rows
added). Which index serves a library of a given size under a memory budget is
:func:`finder.store.tiers.plan`'s choice; every tier offers candidates and the store rescores
them exactly from the raw vectors (:func:`~finder.store.exact.exact_scores`), so the scores
returned are always exact, and threshold queries (``min_score``) are complete.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from finder.errors import Arg, LibraryError
from finder.store import files, tiers
from finder.store.exact import exact_scores, one_thread, rescore
from finder.store.raw import CHUNK, RawLog
from finder.store.tiers import Tier, TierOptions, saved

__all__ = ["CHUNK", "StoreStats", "UnknownVectors", "VectorStore", "exact_scores"]


class UnknownVectors(LibraryError, KeyError):
    """Some of the ids asked for have no vector in the store."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "unknown vector ids"


@dataclass(frozen=True)
class StoreStats:
    count: int
    dim: int
    index: str
    bytes_in_memory: int
    bytes_on_disk: int
    rows: int
    dead_rows: int


class VectorStore:
    """Raw float16 vectors on disk, keyed by int64 image id, with a FAISS index for search.

    ``memory_budget`` (bytes; 0 or None: none) bounds the in-memory index; the tier thresholds
    are settable for tests (see :class:`~finder.store.tiers.TierOptions`): ``flat_max``,
    ``retrain_factor``, ``pca_dim``, ``nlist``, ``nprobe``, ``rescore``, ``kmeans_iter``.
    ``scan_threads``:
    threshold scans use every core; ``compact_fraction`` and ``compact_min``: dead rows that
    trigger a rewrite of the raw files.
    """

    def __init__(
        self,
        directory: Path | str,
        dim: int,
        *,
        memory_budget: int | None = None,
        on_message: Callable[[str], None] | None = None,
        flat_max: int = 10_000,
        retrain_factor: float = 2.0,
        pca_dim: int | None = None,
        nlist: int | None = None,
        nprobe: int | None = None,
        rescore: int = 256,
        scan_threads: bool = True,
        compact_fraction: float = 0.25,
        compact_min: int = 1024,
        kmeans_iter: int = 10,
        read_only: bool = False,
    ) -> None:
        self.dir = Path(directory)
        self.read_only = bool(read_only)
        self.dim = int(dim)
        if self.dim <= 0:
            raise LibraryError(f"vector dimension must be positive, not {dim}")
        if memory_budget is not None and int(memory_budget) < 0:
            raise LibraryError(
                f"the memory budget cannot be negative ({memory_budget} bytes); "
                "set another with `finder index ",
                Arg("memory_budget", command="index"),
                " 2GB`",
            )
        self.options = TierOptions(
            memory_budget=int(memory_budget) if memory_budget else None,
            flat_max=int(flat_max),
            retrain_factor=float(retrain_factor),
            pca_dim=pca_dim,
            nlist=nlist,
            nprobe=nprobe,
            rescore=int(rescore),
            kmeans_iter=int(kmeans_iter),
        )
        self._say = on_message or (lambda _msg: None)
        self.scan_threads = bool(scan_threads)
        self.compact_fraction = float(compact_fraction)
        self.compact_min = int(compact_min)
        self._mean: np.ndarray | None = None
        # the last complete threshold search (key, ids, scores): a top-k of the same query
        # that it holds is read from it (a class's next strip, then its page: one search)
        self._complete: tuple[tuple, np.ndarray, np.ndarray, float] | None = None
        self.raw = RawLog(self.dir, self.dim, read_only=self.read_only)
        self._index: Tier | None = None
        self._rebuild_reason: str | None = None
        self._index_dirty = False
        self._load_index()

    @property
    def memory_budget(self) -> int | None:
        return self.options.memory_budget

    @property
    def rescore(self) -> int:
        """At least this many candidates (and 10 per result) are rescored exactly per query."""
        return self.options.rescore

    @rescore.setter
    def rescore(self, value: int) -> None:
        self.options.rescore = int(value)  # shared with the index tiers

    @property
    def damage(self) -> str | None:
        """What was found damaged in the raw files at open (those vectors are dropped; the
        images that lost theirs are the valid ids :meth:`reconcile` reports missing)."""
        return self.raw.damage

    def check(self) -> list[str]:
        """Every problem a full read of the raw files finds (the vectors' checksums too), one
        line each; empty when all is well. Reads every vector: for ``finder check``."""
        return self.raw.check()

    @staticmethod
    def inspect(directory: Path | str, dim: int) -> str | None:
        """The damage :attr:`damage` would report, read without writing or loading an index
        (cheap: the ids and checksums only). None when the store is sound or absent."""
        try:
            raw = RawLog(Path(directory), int(dim), read_only=True)
        except LibraryError:
            return None
        raw.close()
        return raw.damage

    # -- the saved index -------------------------------------------------------------------------
    def _load_index(self) -> None:
        if not saved.exists(self.dir):
            if len(self) and self._plan().tier.persistent:
                self._rebuild_reason = "missing or damaged"
            return
        try:
            index, generation, rows = saved.load(self.dir, self.dim, self.options)
        except saved.DAMAGE:
            self._rebuild_reason = "missing or damaged"
            return
        if index is None:
            return  # nothing saved for this tier: built from the raw vectors on first use
        self._index = index
        if generation != self.raw.generation or rows > self.raw.n:
            # Rows were renumbered (compaction) after the index was saved: re-add everything
            # with what was trained.
            index.reset()
            self._fill_index(self.raw.live_rows())
            self._say(f"search index was out of date; re-added {len(self)} stored vectors")
            self._index_dirty = True
            return
        self._catch_up(rows)

    def _catch_up(self, covered: int) -> None:
        """Bring a saved index covering rows [0, covered) up to date with the raw files."""
        raw = self.raw
        alive = raw.alive()
        old_dead = np.flatnonzero(~alive[:covered])
        new_live = covered + np.flatnonzero(alive[covered:])
        if len(old_dead) == 0 and len(new_live) == 0:
            return
        live_old_ids = raw.ids_of(np.flatnonzero(alive[:covered]))
        stale = np.setdiff1d(raw.ids_of(old_dead), live_old_ids)
        stale = np.union1d(stale, raw.ids_of(new_live))
        assert self._index is not None
        self._index.remove(stale)
        self._fill_index(new_live)
        self._index_dirty = True

    # -- writing ---------------------------------------------------------------------------------
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Append vectors (unit float32 rows); an id already present is replaced."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape != (len(ids), self.dim):
            raise LibraryError(
                f"expected {len(ids)} vectors of dimension {self.dim}, got shape {vectors.shape}"
            )
        if not len(ids):
            return
        if not np.isfinite(vectors).all():
            raise LibraryError("refusing to store vectors with NaN or infinite values")
        # Within one batch the last occurrence of an id wins.
        _, last_rev = np.unique(ids[::-1], return_index=True)
        if len(last_rev) != len(ids):
            keep = np.sort(len(ids) - 1 - last_rev)
            ids, vectors = ids[keep], vectors[keep]
        v16 = vectors.astype(np.float16)
        replaced = self.raw.append(ids, v16)
        self._mean = None
        self._index_add(ids, v16, replaced)

    def _index_add(self, ids: np.ndarray, v16: np.ndarray, replaced: np.ndarray) -> None:
        index = self._index
        if index is None:
            return
        if len(replaced):
            index.remove(replaced)
        if not index.serves(self._plan(), len(self)):
            self._index = None  # outgrown: rebuilt from the raw vectors when next needed
            self._rebuild_reason = None
            return
        index.add(ids, v16.astype(np.float32))
        self._index_dirty = True

    def remove(self, ids: np.ndarray) -> None:
        """Tombstone these ids' vectors and drop them from the index; unknown ids are ignored."""
        gone = self.raw.remove(ids)
        if not len(gone):
            return
        self._mean = None
        if self._index is not None:
            self._index.remove(gone)
            self._index_dirty = True

    def commit(self) -> None:
        """Make every add and remove so far durable (fsync the raw files)."""
        self.raw.commit()

    def compact(self) -> None:
        """Rewrite the raw files with the live vectors only (fresh checksums)."""
        self.raw.compact()
        self._index_dirty = True

    def reconcile(self, valid_ids: np.ndarray) -> tuple[int, np.ndarray]:
        """Keep exactly one vector per valid id: drop vectors of other ids (and duplicates).
        Returns (vectors dropped, valid ids that have no vector)."""
        valid = np.unique(np.asarray(valid_ids, dtype=np.int64).reshape(-1))
        live = self.ids()
        stray = np.setdiff1d(live, valid)
        if len(stray):
            self.remove(stray)
        dropped = len(stray) + self.raw.take_dups()
        missing = np.setdiff1d(valid, live)
        return dropped, missing

    # -- reading ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.raw)

    def ids(self) -> np.ndarray:
        """Live ids, in the order their vectors were stored."""
        return self.raw.ids()

    def has(self, ids: np.ndarray) -> np.ndarray:
        return self.raw.lookup(ids) >= 0

    def get(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors (float32, as float16-rounded) of these ids, in order."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        rows = self.raw.lookup(ids)
        if (rows < 0).any():
            unknown = ids[rows < 0]
            raise UnknownVectors(
                f"{len(unknown)} image ids have no stored vector (e.g. {int(unknown[0])})"
            )
        return self.raw.read_rows(rows).astype(np.float32)

    def sample(
        self, n: int, rng: np.random.Generator, exclude_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Up to n random live (ids, float32 vectors), none of them in exclude_ids."""
        rows = self.raw.live_rows()
        if exclude_ids is not None and len(exclude_ids):
            rows = rows[~np.isin(self.raw.ids_of(rows), np.asarray(exclude_ids, dtype=np.int64))]
        n = min(int(n), len(rows))
        picked = np.sort(rng.choice(rows, size=n, replace=False)) if n else rows[:0]
        return self.raw.ids_of(picked).copy(), self.raw.read_rows(picked).astype(np.float32)

    def mean(self) -> np.ndarray:
        """Mean of the live vectors (exact; one scan of the raw file, cached until a change)."""
        if self._mean is None:
            total = np.zeros(self.dim, dtype=np.float64)
            for _, x in self.raw.scan(self.raw.live_rows()):
                total += x.astype(np.float64).sum(axis=0)
            self._mean = (total / max(len(self), 1)).astype(np.float32)
        return self._mean.copy()

    # -- index management ------------------------------------------------------------------------
    def _plan(self) -> tiers.Plan:
        return tiers.plan(len(self), self.dim, self.options)

    def _fill_index(self, rows: np.ndarray) -> None:
        assert self._index is not None
        for chunk, x in self.raw.scan(rows):
            self._index.add(self.raw.ids_of(chunk), x.astype(np.float32))

    def _ensure_index(self) -> Tier:
        if self._index is not None:
            return self._index
        rows = self.raw.live_rows()
        self._index = self._plan().build(rows, self.raw.scan)
        self._fill_index(rows)
        self._index_dirty = True
        if self._rebuild_reason:
            self._say(
                f"search index was {self._rebuild_reason}; rebuilt from {len(rows)} stored vectors"
            )
            self._rebuild_reason = None
        return self._index

    def tier(self) -> Tier:
        """The search tier, built from the raw vectors if it is not in memory yet (for joins
        over the whole library: ``finder.act.candidates``)."""
        return self._ensure_index()

    def index_name(self) -> str:
        if self._index is not None:
            return self._index.name()
        return self._plan().name()

    def stats(self) -> dict[str, Any]:
        paths = [p for p in self.dir.iterdir() if p.is_file()]
        index_bytes = self._index.nbytes() if self._index is not None else 0
        return {
            "count": len(self),
            "dim": self.dim,
            "index": self.index_name(),
            "bytes_in_memory": index_bytes + self.raw.nbytes(),
            "bytes_on_disk": sum(files.size(p) for p in paths),
            "rows": self.raw.n,
            "dead_rows": self.raw.dead_count,
        }

    def rebuild_index(self) -> str:
        """Drop the in-memory index and build the right one for the current size now."""
        self._index = None
        return self._ensure_index().name()

    def save_index(self) -> None:
        """Compact the raw files if many rows are dead, then persist the index atomically."""
        if self.raw.closed or self.read_only:
            return
        self.raw.write_repairs()
        if self.raw.wants_compaction(self.compact_fraction, self.compact_min):
            self.raw.compact()
            self._index_dirty = True
        index = self._ensure_index() if len(self) else None
        if not self._index_dirty and saved.exists(self.dir):
            return  # the saved index is current
        kind = index.kind if index is not None else self._plan().tier.kind
        saved.save(self.dir, index, kind, self.raw.generation, self.raw.n)
        self._index_dirty = False

    def close(self) -> None:
        """Persist the index if it changed, make the raw files durable and release them."""
        if self.raw.closed:
            return
        try:
            if not self.read_only and (self.raw.has_pending or self._index_dirty):
                self.commit()
                self.save_index()
                self.commit()
        finally:
            self.raw.close()

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- search ----------------------------------------------------------------------------------
    def _check_query(self, q: np.ndarray) -> np.ndarray:
        q = np.asarray(q, dtype=np.float32).reshape(-1)
        if q.shape != (self.dim,):
            raise LibraryError(f"query has dimension {q.shape[0]}, the store holds {self.dim}")
        if not np.isfinite(q).all():
            raise LibraryError("query has NaN or infinite values")
        return q

    def search_similar(
        self, q: np.ndarray, k: int, *, exclude_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k stored vectors with the highest cosine similarity to the unit vector q (exact
        scores from the raw vectors), best first."""
        ids, scores = self.candidates(q, k, exclude_ids=exclude_ids)
        return ids[:k], scores[:k]

    def candidates(
        self,
        q: np.ndarray,
        k: int,
        *,
        b: float = 0.0,
        head: bool = False,
        exclude_ids: np.ndarray | None = None,
        within: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The whole candidate pool of a top-k query (``q`` a photo's vector, or a head's
        weights with ``head``), rescored exactly (``q.x + b``), best first: a top-k search keeps
        its first k; a filtered one walks further down it, or asks only for the ids ``within``
        (sorted)."""
        q = self._check_query(q)
        empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
        if k <= 0 or not len(self):
            return empty
        n_ex = 0 if exclude_ids is None else len(exclude_ids)
        index = self._ensure_index()
        with one_thread():
            cand = index.knn(q, k + n_ex, head=head, within=within)
            return rescore(
                self.raw, cand, q, float(b), exclude_ids=exclude_ids, threads=self.scan_threads
            )

    def pool_size(self, k: int, *, head: bool = False) -> int:
        """How many vectors a top-k query scores exactly (``Tier.pool``)."""
        return self._ensure_index().pool(k, head=head)

    def score_ids(
        self,
        ids: np.ndarray,
        w: np.ndarray,
        b: float = 0.0,
        *,
        min_score: float | None = None,
        exclude_ids: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact scores ``w.x + b`` of the stored vectors among ``ids`` (others are skipped),
        best first; with ``min_score``, only those at or above it. For searches restricted to
        a few ids (a filter)."""
        w = self._check_query(w)
        with one_thread():
            return rescore(
                self.raw,
                np.asarray(ids, dtype=np.int64),
                w,
                float(b),
                exclude_ids=exclude_ids,
                min_score=min_score,
                threads=self.scan_threads,
            )

    def held_search(self, w: np.ndarray, b: float = 0.0) -> tuple[np.ndarray, np.ndarray] | None:
        """The last complete threshold search of ``w.x + b`` (ids and exact scores, best first:
        every vector at or above its threshold), while the vectors are unchanged; else None."""
        if self._complete is None:
            return None
        key = (np.asarray(w, dtype=np.float32).tobytes(), float(b), self.raw.n, len(self))
        held, ids, scores, _ = self._complete
        return (ids, scores) if held == key else None

    def search_linear(
        self,
        w: np.ndarray,
        b: float = 0.0,
        *,
        k: int | None = None,
        min_score: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Ids and exact scores ``w.x + b``, best first: the top k (approximate candidates,
        exact rescoring), every vector with score >= min_score (complete, never approximate),
        both (the top k of those), or neither (all, sorted)."""
        w = self._check_query(w)
        b = float(b)
        empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
        if not len(self) or (k is not None and k <= 0):
            return empty
        index = self._ensure_index()
        key = (w.tobytes(), b, self.raw.n, len(self))  # a vector added or removed: another
        if k is not None and min_score is None and self._complete is not None:
            held, held_ids, held_scores, _ = self._complete
            if held == key and len(held_ids) >= k:  # its first k are the exact top k
                return held_ids[:k].copy(), held_scores[:k].copy()
        if min_score is not None and self._complete is not None:
            held, held_ids, held_scores, low = self._complete
            if held == key and float(min_score) >= low:  # a higher threshold: its first ones
                n = int(np.searchsorted(-held_scores, -np.float32(min_score), side="right"))
                ids, scores = held_ids[:n].copy(), held_scores[:n].copy()
                return (ids[:k], scores[:k]) if k is not None else (ids, scores)
        if min_score is not None:
            if self.scan_threads:
                cand = index.above(w, float(min_score) - b)
            else:
                with one_thread():
                    cand = index.above(w, float(min_score) - b)
            with one_thread():
                ids, scores = rescore(
                    self.raw, cand, w, b, min_score=float(min_score), threads=self.scan_threads
                )
            self._complete = (key, ids, scores, float(min_score))
        elif k is not None:
            with one_thread():
                ids, scores = rescore(
                    self.raw, index.knn(w, k, head=True), w, b, threads=self.scan_threads
                )
        else:  # every vector, sorted (read in place: scores_of_rows)
            ids, scores = rescore(self.raw, self.raw.ids(), w, b, threads=self.scan_threads)
        if k is not None:
            ids, scores = ids[:k], scores[:k]
        return ids, scores
