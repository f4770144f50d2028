"""Raw vectors on disk plus a FAISS index in memory, keyed by catalog image id.

Files in the store's directory (``g`` is the generation, bumped by compaction)::

    manifest.json     {"format": 1, "dim": D, "generation": g}   written atomically, last
    vectors-g.f16     one float16 row of D values per added vector (append-only)
    ids-g.i64         the image id of each row (int64, append-only)
    dead-g.i64        row numbers that were removed or replaced (int64, append-only)
    index.json        which index file is current, the rows it covers, its checksum
    index-T.faiss     the FAISS index (IVF tier only; the flat tier is rebuilt from raw)
    index-T.npz       the PCA projection of that index and its overflow ids

The raw files are the truth; the FAISS index is derived from them and rebuilt or brought up to
date when it is missing, damaged or stale. Every write is ordered so that a process killed at any
instant leaves files the next open repairs: a partial last row is cut off, an id present twice
keeps its last row, an index file covering fewer rows gets the missing rows added.

Index tiers (chosen by size and memory budget, after autofaiss's ``get_optimal_index_keys_v2``:
exact while small, then an IVF index sized to the budget; retrained when the library has grown
``retrain_factor`` times since training):

* ``flat``: every vector in fp16 in a FAISS scalar-quantizer index: exact, 2*D bytes a vector.
  Used while the library is small (``flat_max``) and fits the budget.
* ``pca{p},ivf{nlist},sq8``: each vector projected on the top ``p`` principal directions of
  the library (uncentred, so the mean direction is one of them; ``p + 2`` a multiple of 16 for
  FAISS's SIMD kernels), plus two bound coordinates (below), 8-bit scalar-quantised, in an IVF
  index with ``nlist = 2**round(log2(4*sqrt(n)))`` lists (autofaiss's rule). ``p`` is sized to
  the memory budget (``p + 10`` bytes a vector). Top-k search takes candidates from ``nprobe``
  lists (10 per result, at least ``rescore``) and rescores them exactly from the raw float16
  vectors, so the scores returned are always exact.

Thresholds (``min_score``) are complete, never approximate: a vector x is stored as
``[y^, rho^, eps^]`` where ``y^`` is the 8-bit code of ``y = P x``, ``rho^ >= |x - P^T y|`` and
``eps^ >= |y - y^|`` (both checked after encoding). By Cauchy-Schwarz, for any w,
``w.x <= (P w).y^ + |w - P^T P w| rho^ + |P w| eps^``: the inner product of
``[P w, |w_perp|, |P w|]`` with the stored code. A range search over every list with that query
returns a superset of the vectors scoring above the threshold; rescoring those from the raw
vectors gives the exact set.

Exact scores are FAISS's fp16 inner product (:func:`exact_scores`); a query's small scans run on
one thread (:func:`one_thread`), the threshold scan on all cores.
"""

from __future__ import annotations

import json
import os
import secrets
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from math import log2, sqrt
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from finder.errors import LibraryError

faiss.omp_set_num_threads(os.cpu_count() or 1)

try:  # optional: lets one query run on one thread (threads fight on a busy 2-core machine)
    from threadpoolctl import ThreadpoolController

    _POOLS: ThreadpoolController | None = ThreadpoolController()
except Exception:  # pragma: no cover - threadpoolctl missing
    _POOLS = None

FORMAT = 1
MANIFEST = "manifest.json"
INDEX_META = "index.json"
# Principal directions kept by the IVF tier when the budget allows: 1536 one-byte codes a vector
# (with the two bound coordinates) keep search under 2 KB an image. The bound that makes
# `find --min-prob` complete grows with what the projection leaves out: on the 1M-vector benchmark
# 1534 directions leave a median slack of ~1.2 logits (30k-300k candidates to rescore), 766 leave
# several logits (nearly every vector becomes a candidate).
DEFAULT_PCA_DIM = 1534
CHUNK = 16384  # rows read from the raw file at a time when scanning or rebuilding


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


@contextmanager
def one_thread() -> Iterator[None]:
    """Run FAISS and BLAS on one thread inside the block: a single query's small scans finish
    in a millisecond on one core, while handing them to two threads of a loaded machine costs
    tens of milliseconds of waiting."""
    saved = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        if _POOLS is not None:
            with _POOLS.limit(limits=1, user_api="blas"):
                yield
        else:
            yield
    finally:
        faiss.omp_set_num_threads(saved)


def optimal_nlist(n: int) -> int:
    """autofaiss's rule: the power of two nearest to 4*sqrt(n), at least 4, at most 65536."""
    return int(min(65536, max(4, 2 ** round(log2(max(4.0 * sqrt(max(n, 1)), 1.0))))))


# -- small file helpers -------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _file_crc(path: Path) -> tuple[int, int]:
    crc = 0
    size = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            crc = zlib.crc32(block, crc)
            size += len(block)
    return crc, size


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


# -- index tiers ---------------------------------------------------------------------------------


class _FlatIndex:
    """Every vector in fp16: exact inner products (the raw store holds fp16 too)."""

    tier = "flat"

    def __init__(self, dim: int) -> None:
        self.dim = dim
        sq = faiss.IndexScalarQuantizer(
            dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
        )
        self._sq = sq
        self.index = faiss.IndexIDMap(sq)

    def name(self) -> str:
        return "flat (exact)"

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def nbytes(self) -> int:
        return self.ntotal * (2 * self.dim + 8)

    def add(self, ids: np.ndarray, x: np.ndarray) -> None:
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(x, dtype=np.float32), ids)

    def remove(self, ids: np.ndarray) -> None:
        if len(ids) and self.ntotal:
            self.index.remove_ids(faiss.IDSelectorBatch(np.asarray(ids, dtype=np.int64)))

    def knn(self, q: np.ndarray, n: int) -> np.ndarray:
        n = min(n, self.ntotal)
        if n <= 0:
            return np.zeros(0, dtype=np.int64)
        _, labels = self.index.search(q.reshape(1, -1).astype(np.float32), n)
        return labels[0][labels[0] >= 0]

    def above(self, w: np.ndarray, threshold: float) -> np.ndarray:
        if not self.ntotal:
            return np.zeros(0, dtype=np.int64)
        margin = 1e-3 * float(np.linalg.norm(w)) + 1e-6
        _, _, labels = self.index.range_search(
            w.reshape(1, -1).astype(np.float32), float(threshold - margin)
        )
        return labels


class _IvfIndex:
    """PCA coordinates plus two bound coordinates, 8-bit scalar-quantised, in an IVF index.

    A unit vector x is stored as ``[y^, rho^, eps^]``: ``y^`` the 8-bit code of ``y = P x``,
    ``rho^ >= |x - P^T y|`` (what the projection leaves out) and ``eps^ >= |y - y^|`` (what the
    quantization loses), both checked after encoding. Then for any w, with
    ``w_perp = w - P^T P w``: ``w.x <= (P w).y^ + |w_perp| rho^ + |P w| eps^``, the inner product
    of ``[P w, |w_perp|, |P w|]`` with the stored code. A vector whose bound coordinates could
    not be stored safely (out of the trained range) goes on an overflow list that every threshold
    query rescores."""

    tier = "ivf"

    def __init__(self, proj: np.ndarray, index, overflow: np.ndarray | None = None) -> None:
        self.proj = np.ascontiguousarray(proj, dtype=np.float32)  # (p, dim), orthonormal rows
        self.p, self.dim = self.proj.shape
        self.index = index
        self.index.parallel_mode = 1  # one query at a time: split the lists across threads
        self.nlist = int(index.nlist)
        self.quantizer = faiss.downcast_index(index.quantizer)
        self.sq = index.sq
        trained = faiss.vector_to_array(self.sq.trained)
        d = self.p + 2
        self._step = trained[d : 2 * d].astype(np.float64) / 255.0
        self._proj64: np.ndarray | None = None
        self.overflow = (
            np.zeros(0, dtype=np.int64) if overflow is None else np.asarray(overflow, np.int64)
        )
        self.nprobe = max(1, min(self.nlist, self.nlist // 16))

    @classmethod
    def create(cls, proj: np.ndarray, centroids: np.ndarray, sample: np.ndarray) -> _IvfIndex:
        """``sample``: projected training vectors ``[y, rho, 0]`` for the 8-bit ranges."""
        p = proj.shape[0]
        d = p + 2
        quantizer = faiss.IndexFlatL2(d)
        quantizer.add(np.ascontiguousarray(centroids, dtype=np.float32))
        index = faiss.IndexIVFScalarQuantizer(
            quantizer,
            d,
            len(centroids),
            faiss.ScalarQuantizer.QT_8bit,
            faiss.METRIC_INNER_PRODUCT,
            False,
        )
        index.own_fields = True
        quantizer.this.disown()
        # Pin the ranges of the bound coordinates: rho in [0, 1] (unit vectors), eps in [0, 0.05].
        pins = np.repeat(sample[:1], 2, axis=0)
        pins[0, p:] = 0.0
        pins[1, p], pins[1, p + 1] = 1.0, 0.05
        index.sq.train(np.ascontiguousarray(np.concatenate([sample, pins]), dtype=np.float32))
        index.is_trained = True
        return cls(proj, index)

    @property
    def nprobe(self) -> int:
        return int(self.index.nprobe)

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self.index.nprobe = max(1, min(self.nlist, int(value)))

    def name(self) -> str:
        return f"pca{self.p},ivf{self.nlist},sq8 + exact rescoring"

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def nbytes(self) -> int:
        d = self.p + 2
        return self.ntotal * (d + 8) + self.nlist * 4 * d + self.proj.nbytes + self.overflow.nbytes

    def project(self, x: np.ndarray) -> np.ndarray:
        """``[y, rho, 0]`` in float32, for training."""
        y = x @ self.proj.T
        # |x|^2 = |y|^2 + rho^2 (orthonormal rows). Sums in float64; the 1e-6 floor keeps rho an
        # upper bound despite rounding (it adds at most 1e-3 where rho is near 0).
        sq = np.einsum("ij,ij->i", x, x, dtype=np.float64) - np.einsum(
            "ij,ij->i", y, y, dtype=np.float64
        )
        out = np.zeros((len(x), self.p + 2), dtype=np.float32)
        out[:, : self.p] = y
        out[:, self.p] = np.sqrt(np.maximum(sq, 0.0) + 1e-6)
        return out

    def encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(vectors to add, mask of those whose bound coordinates did not fit)."""
        p = self.p
        v = self.project(x)
        rho = v[:, p].astype(np.float64)
        dec = self.sq.decode(self.sq.compute_codes(v))
        diff = v[:, :p].astype(np.float64) - dec[:, :p]
        eps = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        # One quantization step up, so that the 8-bit code decodes to at least the true value.
        v[:, p] = rho + self._step[p]
        v[:, p + 1] = eps + self._step[p + 1]
        dec = self.sq.decode(self.sq.compute_codes(v))
        bad = (dec[:, p] < rho) | (dec[:, p + 1] < eps)
        return v, bad

    def add(self, ids: np.ndarray, x: np.ndarray) -> None:
        if len(ids):
            v, bad = self.encode(np.asarray(x, dtype=np.float32))
            self.index.add_with_ids(v, ids)
            if bad.any():
                self.overflow = np.union1d(self.overflow, ids[bad])

    def remove(self, ids: np.ndarray) -> None:
        if len(ids) and self.ntotal:
            ids = np.asarray(ids, dtype=np.int64)
            self.index.remove_ids(faiss.IDSelectorBatch(ids))
            if len(self.overflow):
                self.overflow = np.setdiff1d(self.overflow, ids)

    def knn(self, q: np.ndarray, n: int) -> np.ndarray:
        """Ids of about the n best inner products with q, from ``nprobe`` lists."""
        n = min(n, self.ntotal)
        if n <= 0:
            return np.zeros(0, dtype=np.int64)
        q = np.asarray(q, dtype=np.float32)
        q = q / (float(np.linalg.norm(q)) or 1.0)
        pq = self.proj @ q
        # Lists are chosen for q as if it were a stored vector: [P q, |q - P^T P q|, 0].
        perp = sqrt(max(1.0 - float(pq @ pq), 0.0))
        coarse = np.zeros((1, self.p + 2), dtype=np.float32)
        coarse[0, : self.p] = pq
        coarse[0, self.p] = perp
        dq, iq = self.quantizer.search(coarse, self.nprobe)
        scan = np.zeros((1, self.p + 2), dtype=np.float32)
        scan[0, : self.p] = pq
        _, labels = self.index.search_preassigned(scan, n, iq, dq)
        return labels[0][labels[0] >= 0]

    def above(self, w: np.ndarray, threshold: float) -> np.ndarray:
        """Every id whose exact w.x can reach ``threshold`` (a superset, never missing one)."""
        if not self.ntotal:
            return np.zeros(0, dtype=np.int64)
        if self._proj64 is None:
            self._proj64 = self.proj.astype(np.float64)
        w64 = np.asarray(w, dtype=np.float64)
        pw = self._proj64 @ w64
        perp_vec = w64 - self._proj64.T @ pw  # computed directly: no cancellation
        wnorm = sqrt(float(w64 @ w64))
        query = np.zeros((1, self.p + 2), dtype=np.float32)
        query[0, : self.p] = pw
        query[0, self.p] = sqrt(float(perp_vec @ perp_vec)) + 1e-6 * wnorm
        query[0, self.p + 1] = sqrt(float(pw @ pw)) + 1e-6 * wnorm
        margin = 1e-3 * wnorm + 1e-6  # float32 rounding in the projection and the scan
        saved = self.index.nprobe
        self.index.nprobe = self.nlist
        try:
            _, _, labels = self.index.range_search(query, float(threshold - margin))
        finally:
            self.index.nprobe = saved
        return np.concatenate([labels, self.overflow]) if len(self.overflow) else labels


def _orthonormal_columns(y: np.ndarray) -> np.ndarray:
    """Orthonormalise the columns of a tall float64 matrix through the eigen-decomposition of
    its Gram matrix, twice (numpy's QR of a 4096 x 448 matrix takes seconds here; this, ms)."""
    for _ in range(2):
        vals, vecs = np.linalg.eigh(y.T @ y)
        y = y @ (vecs / np.sqrt(np.maximum(vals, 1e-300)))
    return y


def _top_eigenvectors(moment: np.ndarray, p: int, seed: int = 0) -> np.ndarray:
    """The p leading eigenvectors (as rows) of a symmetric PSD matrix. For many of them a full
    float32 eigh is fastest (4096 dimensions: ~20 s here, against ~50 s for LAPACK's subset
    driver in float64 and ~100 s for subspace iteration); for a few, subspace iteration."""
    dim = moment.shape[0]
    if dim <= 1536 or p >= dim // 4:
        vals, vecs = np.linalg.eigh(moment.astype(np.float32))
        return vecs[:, np.argsort(vals)[::-1][:p]].T.astype(np.float64)
    m64 = moment.astype(np.float64)
    width = min(dim, p + 64)
    basis = _orthonormal_columns(np.random.default_rng(seed).normal(size=(dim, width)))
    for _ in range(6):
        basis = _orthonormal_columns(m64 @ basis)
    vals, small = np.linalg.eigh(basis.T @ m64 @ basis)
    return (basis @ small[:, np.argsort(vals)[::-1][:p]]).T


def _train_projection(moment: np.ndarray, p: int) -> np.ndarray:
    """Orthonormal (p, dim) float32 rows spanning the top principal directions (uncentred)."""
    p = max(1, min(p, moment.shape[0]))
    top = _orthonormal_columns(_top_eigenvectors(moment, p).T.astype(np.float64))
    return np.ascontiguousarray(top.T, dtype=np.float32)


def _train_lists(codes: np.ndarray, nlist: int, *, niter: int = 10, seed: int = 1234):
    nlist = max(1, min(nlist, len(codes)))
    km = faiss.Kmeans(
        codes.shape[1],
        nlist,
        niter=niter,
        seed=seed,
        min_points_per_centroid=1,
        max_points_per_centroid=256,
        verbose=False,
    )
    km.train(np.ascontiguousarray(codes, dtype=np.float32))
    return km.centroids


# -- the store -----------------------------------------------------------------------------------


class VectorStore:
    """Raw float16 vectors on disk, keyed by int64 image id, with a FAISS index for search.

    ``memory_budget`` (bytes) bounds the in-memory index; the tier thresholds are settable for
    tests: ``flat_max`` (largest library kept flat), ``retrain_factor`` (retrain the IVF tier
    when the library outgrows its training size by this factor), ``pca_dim``, ``nlist``,
    ``nprobe``, ``rescore`` (at least this many candidates, and 10 per result, are rescored
    exactly per query), ``scan_threads`` (threshold scans use every core), ``compact_fraction`` and
    ``compact_min`` (dead rows that trigger a rewrite of the raw files).
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
        self.memory_budget = int(memory_budget) if memory_budget else None
        self._say = on_message or (lambda _msg: None)
        self.flat_max = int(flat_max)
        self.retrain_factor = float(retrain_factor)
        self.pca_dim = pca_dim
        self.nlist = nlist
        self.nprobe = nprobe
        self.rescore = int(rescore)
        self.scan_threads = bool(scan_threads)
        self.compact_fraction = float(compact_fraction)
        self.compact_min = int(compact_min)
        self.kmeans_iter = int(kmeans_iter)
        self._row_bytes = 2 * self.dim
        self._fds: dict[str, int] | None = None
        self._closed = False
        self._mean: np.ndarray | None = None
        self._pending_dups = 0
        self._pending_dead: list[int] = []

        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise LibraryError(f"cannot create the vector store {self.dir}: {e.strerror}") from None
        self._open_manifest()
        self._load_raw()
        self._index: _FlatIndex | _IvfIndex | None = None
        self._trained_n = 0
        self._rebuild_reason: str | None = None
        self._index_dirty = False
        self._load_index()

    # -- opening ---------------------------------------------------------------------------------
    def _open_manifest(self) -> None:
        path = self.dir / MANIFEST
        if path.exists():
            try:
                manifest = json.loads(path.read_text())
                self.generation = int(manifest["generation"])
                stored_dim = int(manifest["dim"])
            except (ValueError, KeyError, TypeError, OSError):
                raise LibraryError(
                    f"the vector store manifest {path} is damaged; "
                    f"delete {self.dir} and index again"
                ) from None
            if stored_dim != self.dim:
                raise LibraryError(
                    f"the vector store {self.dir} holds {stored_dim}-d vectors, not {self.dim}-d"
                )
        else:
            if self.read_only:
                raise LibraryError(f"the vector store {self.dir} holds no vectors yet")
            if any(self.dir.glob("vectors-*.f16")):
                raise LibraryError(
                    f"the vector store manifest {path} is missing; "
                    f"delete {self.dir} and index again"
                )
            self.generation = 0
            for name in self._names().values():
                (self.dir / name).touch()
            self._write_manifest()

    def _names(self, generation: int | None = None) -> dict[str, str]:
        g = self.generation if generation is None else generation
        return {"vec": f"vectors-{g}.f16", "ids": f"ids-{g}.i64", "dead": f"dead-{g}.i64"}

    def _path(self, key: str) -> Path:
        return self.dir / self._names()[key]

    def _write_manifest(self) -> None:
        data = {"format": FORMAT, "dim": self.dim, "generation": self.generation}
        _atomic_write(self.dir / MANIFEST, json.dumps(data).encode())

    def _load_raw(self) -> None:
        n = min(_size(self._path("vec")) // self._row_bytes, _size(self._path("ids")) // 8)
        self._n = int(n)
        ids = (
            np.fromfile(self._path("ids"), dtype=np.int64, count=n) if n else np.zeros(0, np.int64)
        )
        self._ids = np.zeros(max(1024, n), dtype=np.int64)
        self._ids[:n] = ids
        self._alive = np.zeros(len(self._ids), dtype=bool)
        self._alive[:n] = True
        dead_path = self._path("dead")
        dead = np.fromfile(dead_path, dtype=np.int64, count=_size(dead_path) // 8)
        dead = dead[(dead >= 0) & (dead < n)]
        self._alive[dead] = False
        # An id written twice without the older row marked dead (killed in between): last wins.
        live = np.flatnonzero(self._alive[:n])
        rev = live[::-1]
        _, first_in_rev = np.unique(self._ids[rev], return_index=True)
        keep = np.zeros(len(live), dtype=bool)
        keep[len(live) - 1 - first_in_rev] = True
        dups = live[~keep]
        if len(dups):
            self._alive[dups] = False
            self._pending_dead.extend(dups.tolist())
            self._pending_dups += len(dups)
        self._dead_count = int(n - self._alive[:n].sum())
        self._rebuild_map()

    def _rebuild_map(self) -> None:
        live = np.flatnonzero(self._alive[: self._n])
        keys = self._ids[live]
        order = np.argsort(keys, kind="stable")
        self._map_keys = keys[order]
        self._map_rows = live[order]
        self._recent: dict[int, int] = {}

    def _load_index(self) -> None:
        meta_path = self.dir / INDEX_META
        if not meta_path.exists():
            if len(self) and self._plan()[0] != "flat":
                self._rebuild_reason = "missing or damaged"
            return
        try:
            meta = json.loads(meta_path.read_text())
            tier = meta["tier"]
            if tier == "flat":
                return  # built from the raw vectors on first use
            if tier != "ivf":
                raise ValueError(tier)
            faiss_path = self.dir / meta["faiss"]
            proj_path = self.dir / meta["proj"]
            crc, size = _file_crc(faiss_path)
            if (crc, size) != (meta["faiss_crc"], meta["faiss_size"]):
                raise ValueError("checksum")
            with np.load(proj_path, allow_pickle=False) as arrays:
                proj, overflow = arrays["proj"], arrays["overflow"]
            crc_proj = zlib.crc32(overflow.tobytes(), zlib.crc32(proj.tobytes()))
            if crc_proj != meta["proj_crc"] or proj.shape[1] != self.dim:
                raise ValueError("projection")
            index = faiss.read_index(str(faiss_path))
            if not isinstance(index, faiss.IndexIVFScalarQuantizer) or index.d != proj.shape[0] + 2:
                raise ValueError("index type")
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, EOFError):
            self._rebuild_reason = "missing or damaged"
            return
        ivf = _IvfIndex(proj, index, overflow)
        self._configure(ivf)
        self._trained_n = int(meta.get("trained_n", len(self)))
        if int(meta["generation"]) != self.generation or int(meta["rows"]) > self._n:
            # Rows were renumbered (compaction) after the index was saved: re-add everything
            # with the trained projection and lists.
            ivf.index.reset()
            self._index = ivf
            self._fill_index(np.flatnonzero(self._alive[: self._n]))
            self._say(f"search index was out of date; re-added {len(self)} stored vectors")
            self._index_dirty = True
            return
        self._index = ivf
        self._catch_up(int(meta["rows"]))

    def _catch_up(self, covered: int) -> None:
        """Bring a saved index covering rows [0, covered) up to date with the raw files."""
        n = self._n
        alive = self._alive[:n]
        old_dead = np.flatnonzero(~alive[:covered])
        new_live = covered + np.flatnonzero(alive[covered:])
        if len(old_dead) == 0 and len(new_live) == 0:
            return
        live_old_ids = self._ids[:covered][alive[:covered]]
        stale = np.setdiff1d(self._ids[old_dead], live_old_ids)
        stale = np.union1d(stale, self._ids[new_live])
        assert self._index is not None
        self._index.remove(stale)
        self._fill_index(new_live)
        self._index_dirty = True

    # -- writing ---------------------------------------------------------------------------------
    def _writable(self) -> dict[str, int]:
        """Open the raw files for appending; cut a partial last row left by a crash."""
        if self._closed:
            raise LibraryError(f"the vector store {self.dir} is closed")
        if self.read_only:
            raise LibraryError(f"the vector store {self.dir} is open read-only")
        if self._fds is None:
            fds = {}
            try:
                for key in ("vec", "ids", "dead"):
                    fds[key] = os.open(self._path(key), os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            except OSError as e:
                for fd in fds.values():
                    os.close(fd)
                raise LibraryError(
                    f"cannot write the vector store {self.dir}: {e.strerror}"
                ) from None
            os.ftruncate(fds["vec"], self._n * self._row_bytes)
            os.ftruncate(fds["ids"], self._n * 8)
            dead_size = os.fstat(fds["dead"]).st_size
            if dead_size % 8:
                os.ftruncate(fds["dead"], dead_size - dead_size % 8)
            self._fds = fds
            if self._pending_dead:
                _write_all(fds["dead"], np.asarray(self._pending_dead, dtype=np.int64).tobytes())
                self._pending_dead = []
        return self._fds

    def _grow(self, extra: int) -> None:
        need = self._n + extra
        if need > len(self._ids):
            cap = max(need, 2 * len(self._ids))
            ids = np.zeros(cap, dtype=np.int64)
            ids[: self._n] = self._ids[: self._n]
            alive = np.zeros(cap, dtype=bool)
            alive[: self._n] = self._alive[: self._n]
            self._ids, self._alive = ids, alive

    def _lookup(self, ids: np.ndarray) -> np.ndarray:
        """Row of each id, -1 where the id has no live vector."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        rows = np.full(len(ids), -1, dtype=np.int64)
        if len(self._map_keys) and len(ids):
            pos = np.searchsorted(self._map_keys, ids)
            pos_c = np.minimum(pos, len(self._map_keys) - 1)
            hit = self._map_keys[pos_c] == ids
            rows[hit] = self._map_rows[pos_c[hit]]
        if self._recent:
            for i, key in enumerate(ids.tolist()):
                row = self._recent.get(key)
                if row is not None:
                    rows[i] = row
        ok = rows >= 0
        ok[ok] = self._alive[rows[ok]] & (self._ids[rows[ok]] == ids[ok])
        rows[~ok] = -1
        return rows

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
        fds = self._writable()
        old_rows = self._lookup(ids)
        v16 = vectors.astype(np.float16)
        _write_all(fds["vec"], v16.tobytes())
        _write_all(fds["ids"], ids.tobytes())
        start = self._n
        self._grow(len(ids))
        self._ids[start : start + len(ids)] = ids
        self._alive[start : start + len(ids)] = True
        self._n += len(ids)
        replaced = old_rows[old_rows >= 0]
        if len(replaced):
            self._alive[replaced] = False
            self._dead_count += len(replaced)
            _write_all(fds["dead"], replaced.astype(np.int64).tobytes())
        for k, key in enumerate(ids.tolist()):
            self._recent[key] = start + k
        if len(self._recent) > max(65536, len(self._map_keys) // 4):
            self._rebuild_map()
        self._mean = None
        self._index_add(ids, v16.astype(np.float32), replaced=self._ids[replaced])

    def _index_add(self, ids: np.ndarray, x: np.ndarray, replaced: np.ndarray) -> None:
        index = self._index
        if index is None:
            return
        if len(replaced):
            index.remove(replaced)
        plan = self._plan()
        if index.tier != plan[0] or (
            index.tier == "ivf" and len(self) > self.retrain_factor * max(self._trained_n, 1)
        ):
            self._index = None  # outgrown: rebuilt from the raw vectors when next needed
            self._rebuild_reason = None
            return
        index.add(ids, x)
        self._index_dirty = True

    def remove(self, ids: np.ndarray) -> None:
        """Tombstone these ids' vectors and drop them from the index; unknown ids are ignored."""
        ids = np.unique(np.asarray(ids, dtype=np.int64).reshape(-1))
        rows = self._lookup(ids)
        rows = rows[rows >= 0]
        if not len(rows):
            return
        fds = self._writable()
        _write_all(fds["dead"], rows.astype(np.int64).tobytes())
        self._alive[rows] = False
        self._dead_count += len(rows)
        for key in self._ids[rows].tolist():
            self._recent.pop(key, None)
        self._mean = None
        if self._index is not None:
            self._index.remove(self._ids[rows])
            self._index_dirty = True

    def commit(self) -> None:
        """Make every add and remove so far durable (fsync the raw files)."""
        if self._fds is not None:
            for fd in self._fds.values():
                os.fsync(fd)

    def reconcile(self, valid_ids: np.ndarray) -> tuple[int, np.ndarray]:
        """Keep exactly one vector per valid id: drop vectors of other ids (and duplicates).
        Returns (vectors dropped, valid ids that have no vector)."""
        valid = np.unique(np.asarray(valid_ids, dtype=np.int64).reshape(-1))
        live = self.ids()
        stray = np.setdiff1d(live, valid)
        if len(stray):
            self.remove(stray)
        if self._pending_dead:
            self._writable()  # writes the duplicate rows found at open to the dead log
        dropped = len(stray) + self._pending_dups
        self._pending_dups = 0
        missing = np.setdiff1d(valid, live)
        return dropped, missing

    # -- reading ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._n - self._dead_count)

    def ids(self) -> np.ndarray:
        """Live ids, in the order their vectors were stored."""
        return self._ids[: self._n][self._alive[: self._n]].copy()

    def has(self, ids: np.ndarray) -> np.ndarray:
        return self._lookup(ids) >= 0

    def _read_rows(self, rows: np.ndarray) -> np.ndarray:
        """float16 rows from the raw file (rows in any order). The file is mapped for this call
        only, so its pages do not stay in the process's resident set."""
        rows = np.asarray(rows, dtype=np.int64)
        if not len(rows):
            return np.zeros((0, self.dim), dtype=np.float16)
        raw = np.memmap(self._path("vec"), dtype=np.float16, mode="r", shape=(self._n, self.dim))
        try:
            return np.asarray(raw[rows])
        finally:
            del raw

    def get(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors (float32, as float16-rounded) of these ids, in order."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        rows = self._lookup(ids)
        if (rows < 0).any():
            unknown = ids[rows < 0]
            raise UnknownVectors(
                f"{len(unknown)} image ids have no stored vector (e.g. {int(unknown[0])})"
            )
        return self._read_rows(rows).astype(np.float32)

    def _live_rows(self) -> np.ndarray:
        return np.flatnonzero(self._alive[: self._n])

    def _scan(self, rows: np.ndarray):
        """Yield (rows, float16 vectors) in chunks of the raw file."""
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            yield chunk, self._read_rows(chunk)

    def sample(
        self, n: int, rng: np.random.Generator, exclude_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Up to n random live (ids, float32 vectors), none of them in exclude_ids."""
        rows = self._live_rows()
        if exclude_ids is not None and len(exclude_ids):
            rows = rows[~np.isin(self._ids[rows], np.asarray(exclude_ids, dtype=np.int64))]
        n = min(int(n), len(rows))
        picked = np.sort(rng.choice(rows, size=n, replace=False)) if n else rows[:0]
        return self._ids[picked].copy(), self._read_rows(picked).astype(np.float32)

    def mean(self) -> np.ndarray:
        """Mean of the live vectors (exact; one scan of the raw file, cached until a change)."""
        if self._mean is None:
            total = np.zeros(self.dim, dtype=np.float64)
            for _, x in self._scan(self._live_rows()):
                total += x.astype(np.float64).sum(axis=0)
            self._mean = (total / max(len(self), 1)).astype(np.float32)
        return self._mean.copy()

    # -- index management ------------------------------------------------------------------------
    def _plan(self, n: int | None = None) -> tuple[str, int, int]:
        """(tier, pca dim, nlist) for a library of n vectors under the memory budget."""
        n = len(self) if n is None else n
        flat_bytes = n * (2 * self.dim + 8)
        if n <= self.flat_max and (self.memory_budget is None or flat_bytes <= self.memory_budget):
            return "flat", self.dim, 0
        nlist = self.nlist or optimal_nlist(n)
        if self.pca_dim:
            p = int(self.pca_dim)
        else:
            p = min(self.dim, DEFAULT_PCA_DIM)
            if self.memory_budget:
                # per vector: p + 2 one-byte codes and an 8-byte id, with room to grow 25 %
                per_vector = self.memory_budget / (1.25 * max(n, 1)) - 8
                p = min(p, int(per_vector) - 2)
            p = max(min(14, self.dim), p)
            if p + 2 >= 32 and p < self.dim:
                p = (p + 2) // 16 * 16 - 2  # FAISS's 8-bit SIMD kernels need d % 16 == 0
        return "ivf", min(p, self.dim), nlist

    def _configure(self, index: _IvfIndex) -> None:
        if self.nprobe:
            index.nprobe = min(int(self.nprobe), index.nlist)

    def _fill_index(self, rows: np.ndarray) -> None:
        assert self._index is not None
        for chunk, x in self._scan(rows):
            self._index.add(self._ids[chunk], x.astype(np.float32))

    def _ensure_index(self) -> _FlatIndex | _IvfIndex:
        if self._index is not None:
            return self._index
        tier, p, nlist = self._plan()
        rows = self._live_rows()
        if tier == "flat":
            self._index = _FlatIndex(self.dim)
            self._fill_index(rows)
            self._trained_n = len(rows)
        else:
            # PCA from up to 16k rows, k-means from up to 40 rows a list (autofaiss trains
            # with 30-256), both read and projected chunk by chunk.
            rng = np.random.default_rng(len(rows))
            pca_rows = np.sort(rng.choice(rows, size=min(len(rows), 16384), replace=False))
            moment = np.zeros((self.dim, self.dim), dtype=np.float32)
            for _, x in self._scan(pca_rows):
                x32 = x.astype(np.float32)
                moment += x32.T @ x32
            proj = _train_projection(moment, p)
            del moment
            km_rows = np.sort(rng.choice(rows, size=min(len(rows), 40 * nlist), replace=False))
            pp = proj.shape[0]
            shell = _IvfIndex.create(proj, np.zeros((1, pp + 2)), np.zeros((1, pp + 2)))
            sample = np.concatenate(
                [shell.project(x.astype(np.float32)) for _, x in self._scan(km_rows)]
            )
            centroids = _train_lists(sample, nlist, niter=self.kmeans_iter)
            ivf = _IvfIndex.create(proj, centroids, sample)
            del sample, shell
            self._configure(ivf)
            self._index = ivf
            self._fill_index(rows)
            self._trained_n = len(rows)
        self._index_dirty = True
        if self._rebuild_reason:
            self._say(
                f"search index was {self._rebuild_reason}; rebuilt from {len(rows)} stored vectors"
            )
            self._rebuild_reason = None
        return self._index

    def index_name(self) -> str:
        if self._index is not None:
            return self._index.name()
        tier, p, nlist = self._plan()
        if tier == "flat":
            return "flat (exact)"
        return f"pca{p},ivf{nlist},sq8 + exact rescoring"

    def stats(self) -> dict[str, Any]:
        files = [p for p in self.dir.iterdir() if p.is_file()]
        index_bytes = self._index.nbytes() if self._index is not None else 0
        return {
            "count": len(self),
            "dim": self.dim,
            "index": self.index_name(),
            "bytes_in_memory": index_bytes
            + self._ids.nbytes
            + self._alive.nbytes
            + self._map_keys.nbytes
            + self._map_rows.nbytes,
            "bytes_on_disk": sum(_size(p) for p in files),
            "rows": self._n,
            "dead_rows": self._dead_count,
        }

    def rebuild_index(self) -> str:
        """Drop the in-memory index and build the right one for the current size now."""
        self._index = None
        return self._ensure_index().name()

    def save_index(self) -> None:
        """Compact the raw files if many rows are dead, then persist the index atomically."""
        if self._closed or self.read_only:
            return
        if self._pending_dead:
            self._writable()
        self._maybe_compact()
        index = self._ensure_index() if len(self) else None
        meta_path = self.dir / INDEX_META
        if index is None or index.tier == "flat":
            meta = {
                "format": FORMAT,
                "tier": "flat",
                "generation": self.generation,
                "rows": self._n,
            }
            _atomic_write(meta_path, json.dumps(meta).encode())
            self._index_dirty = False
            self._cleanup_index_files(keep=())
            return
        if not self._index_dirty and meta_path.exists():
            return  # the saved index is current
        assert isinstance(index, _IvfIndex)
        token = secrets.token_hex(6)
        faiss_path = self.dir / f"index-{token}.faiss"
        proj_path = self.dir / f"index-{token}.npz"
        faiss.write_index(index.index, str(faiss_path))
        with open(proj_path, "wb") as f:
            np.savez(f, proj=index.proj, overflow=index.overflow)
        for path in (faiss_path, proj_path):
            with open(path, "rb+") as f:
                os.fsync(f.fileno())
        crc, size = _file_crc(faiss_path)
        meta = {
            "format": FORMAT,
            "tier": "ivf",
            "generation": self.generation,
            "rows": self._n,
            "trained_n": self._trained_n,
            "faiss": faiss_path.name,
            "faiss_crc": crc,
            "faiss_size": size,
            "proj": proj_path.name,
            "proj_crc": zlib.crc32(index.overflow.tobytes(), zlib.crc32(index.proj.tobytes())),
        }
        _atomic_write(meta_path, json.dumps(meta).encode())
        self._index_dirty = False
        self._cleanup_index_files(keep=(faiss_path.name, proj_path.name))

    def _cleanup_index_files(self, keep: tuple[str, ...]) -> None:
        for path in list(self.dir.glob("index-*")):
            if path.name not in keep:
                path.unlink(missing_ok=True)

    def _maybe_compact(self) -> None:
        dead = self._dead_count
        if dead < self.compact_min or dead < self.compact_fraction * max(self._n, 1):
            return
        self._compact()

    def _compact(self) -> None:
        """Rewrite the live rows into the next generation's files; the manifest is the switch."""
        self.commit()
        rows = self._live_rows()
        new_gen = self.generation + 1
        names = self._names(new_gen)
        vec_tmp, ids_tmp = self.dir / names["vec"], self.dir / names["ids"]
        with open(vec_tmp, "wb") as fv:
            for _, x in self._scan(rows):
                fv.write(x.tobytes())
            fv.flush()
            os.fsync(fv.fileno())
        new_ids = self._ids[rows].copy()
        with open(ids_tmp, "wb") as fi:
            fi.write(new_ids.tobytes())
            fi.flush()
            os.fsync(fi.fileno())
        with open(self.dir / names["dead"], "wb") as fd:
            os.fsync(fd.fileno())
        _fsync_dir(self.dir)
        old = self._names()
        if self._fds is not None:
            for fd in self._fds.values():
                os.close(fd)
            self._fds = None
        self.generation = new_gen
        self._write_manifest()  # the commit point
        for name in old.values():
            (self.dir / name).unlink(missing_ok=True)
        n = len(rows)
        self._n = n
        self._ids = np.zeros(max(1024, n), dtype=np.int64)
        self._ids[:n] = new_ids
        self._alive = np.zeros(len(self._ids), dtype=bool)
        self._alive[:n] = True
        self._dead_count = 0
        self._rebuild_map()
        self._index_dirty = True

    def close(self) -> None:
        """Persist the index if it changed, make the raw files durable and release them."""
        if self._closed:
            return
        try:
            if not self.read_only and (self._fds is not None or self._index_dirty):
                self.commit()
                self.save_index()
                self.commit()
        finally:
            if self._fds is not None:
                for fd in self._fds.values():
                    os.close(fd)
                self._fds = None
            self._closed = True

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- search ----------------------------------------------------------------------------------
    def _rescore(
        self,
        cand: np.ndarray,
        w: np.ndarray,
        b: float,
        exclude_ids: np.ndarray | None = None,
        min_score: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact scores of the candidates (read from the raw file), best first."""
        cand = np.unique(np.asarray(cand, dtype=np.int64))
        if exclude_ids is not None and len(exclude_ids):
            cand = cand[~np.isin(cand, np.asarray(exclude_ids, dtype=np.int64))]
        rows = self._lookup(cand)
        ok = rows >= 0
        cand, rows = cand[ok], rows[ok]
        order = np.argsort(rows)
        cand, rows = cand[order], rows[order]
        scores = np.empty(len(rows), dtype=np.float32)
        step = 4096  # bounded memory for large candidate sets

        def score(start: int) -> None:
            faiss.omp_set_num_threads(1)
            part = rows[start : start + step]
            scores[start : start + len(part)] = exact_scores(self._read_rows(part), w)

        starts = range(0, len(rows), step)
        workers = os.cpu_count() or 1
        if len(rows) > 2 * step and workers > 1 and self.scan_threads:
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

    def _check_query(self, q: np.ndarray) -> np.ndarray:
        q = np.asarray(q, dtype=np.float32).reshape(-1)
        if q.shape != (self.dim,):
            raise LibraryError(f"query has dimension {q.shape[0]}, the store holds {self.dim}")
        if not np.isfinite(q).all():
            raise LibraryError("query has NaN or infinite values")
        return q

    def _candidates_knn(self, q: np.ndarray, k: int, *, head: bool = False) -> np.ndarray:
        """Candidates for the top k. A head's weight vector points between clusters rather than
        at one, so its best matches spread over more lists: it probes 4x the lists and rescores
        30 candidates per result (10 for a photo)."""
        index = self._ensure_index()
        if index.tier == "flat":
            return index.knn(q, k)
        if not head:
            return index.knn(q, self._pool(k, head))
        saved = index.nprobe
        index.nprobe = min(index.nlist, 4 * saved)
        try:
            return index.knn(q, self._pool(k, head))
        finally:
            index.nprobe = saved

    def _pool(self, k: int, head: bool) -> int:
        return max(self.rescore, (30 if head else 10) * k)

    def pool_size(self, k: int, *, head: bool = False) -> int:
        """How many vectors a top-k query scores exactly: every one in the flat tier, else the
        candidates it rescores."""
        return len(self) if self._ensure_index().tier == "flat" else self._pool(k, head)

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
    ) -> tuple[np.ndarray, np.ndarray]:
        """The whole candidate pool of a top-k query (``q`` a photo's vector, or a head's
        weights with ``head``), rescored exactly (``q.x + b``), best first: a top-k search keeps
        its first k; a filtered one walks further down it."""
        q = self._check_query(q)
        empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
        if k <= 0 or not len(self):
            return empty
        n_ex = 0 if exclude_ids is None else len(exclude_ids)
        self._ensure_index()
        with one_thread():
            cand = self._candidates_knn(q, k + n_ex, head=head)
            return self._rescore(cand, q, float(b), exclude_ids)

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
            return self._rescore(
                np.asarray(ids, dtype=np.int64), w, float(b), exclude_ids, min_score
            )

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
        if min_score is not None:
            if self.scan_threads:
                cand = index.above(w, float(min_score) - b)
            else:
                with one_thread():
                    cand = index.above(w, float(min_score) - b)
            with one_thread():
                ids, scores = self._rescore(cand, w, b, min_score=float(min_score))
        elif k is not None:
            with one_thread():
                ids, scores = self._rescore(self._candidates_knn(w, k, head=True), w, b)
        else:
            parts_ids, parts_scores = [], []
            for rows, x in self._scan(self._live_rows()):
                parts_ids.append(self._ids[rows])
                parts_scores.append(exact_scores(x, w) + np.float32(b))
            ids, scores = np.concatenate(parts_ids), np.concatenate(parts_scores)
            best = np.lexsort((ids, -scores))
            ids, scores = ids[best], scores[best]
        if k is not None:
            ids, scores = ids[:k], scores[:k]
        return ids, scores
