"""The IVF tier: ``pca{p},ivf{nlist},sq8``.

Each vector is projected on the top ``p`` principal directions of the library (uncentred, so
the mean direction is one of them; ``p + 2`` a multiple of 16 for FAISS's SIMD kernels), plus
two bound coordinates (below), 8-bit scalar-quantised, in an IVF index with
``nlist = 2**round(log2(4*sqrt(n)))`` lists (autofaiss's rule). ``p`` is sized to the memory
budget (``p + 10`` bytes a vector). Top-k search takes candidates from ``nprobe`` lists (10 per
result, at least ``rescore``) that the store rescores exactly from the raw float16 vectors.

Thresholds (``min_score``) are complete, never approximate: a vector x is stored as
``[y^, rho^, eps^]`` where ``y^`` is the 8-bit code of ``y = P x``, ``rho^ >= |x - P^T y|`` and
``eps^ >= |y - y^|`` (both checked after encoding). By Cauchy-Schwarz, for any w,
``w.x <= (P w).y^ + |w - P^T P w| rho^ + |P w| eps^``: the inner product of
``[P w, |w_perp|, |P w|]`` with the stored code. A range search over every list with that query
returns a superset of the vectors scoring above the threshold. A vector whose bound coordinates
could not be stored safely (out of the trained range) goes on an overflow list that every
threshold query returns too.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from math import ceil, log2, sqrt
from pathlib import Path
from typing import Any, ClassVar

import faiss
import numpy as np

from finder.store import files
from finder.store.tiers.pca import moment, train_projection
from finder.store.tiers.protocol import Plan, Scan, TierDamaged, TierOptions

# Principal directions kept when the budget allows: 1536 one-byte codes a vector (with the two
# bound coordinates) keep search under 2 KB an image. The bound that makes `find --min-prob`
# complete grows with what the projection leaves out: on the 1M-vector benchmark 1534 directions
# leave a median slack of ~1.2 logits (30k-300k candidates to rescore), 766 leave several logits
# (nearly every vector becomes a candidate).
DEFAULT_PCA_DIM = 1534


def optimal_nlist(n: int) -> int:
    """autofaiss's rule: the power of two nearest to 4*sqrt(n), at least 4, at most 65536."""
    return int(min(65536, max(4, 2 ** round(log2(max(4.0 * sqrt(max(n, 1)), 1.0))))))


def _name(p: int, nlist: int) -> str:
    return f"pca{p},ivf{nlist},sq8 + exact rescoring"


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


class IvfTier:
    """PCA coordinates plus two bound coordinates, 8-bit scalar-quantised, in an IVF index."""

    kind: ClassVar[str] = "ivf"
    persistent: ClassVar[bool] = True

    def __init__(
        self,
        proj: np.ndarray,
        index,
        overflow: np.ndarray | None = None,
        options: TierOptions | None = None,
        trained_n: int = 0,
    ) -> None:
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
        self.options = options or TierOptions()
        self.trained_n = int(trained_n)
        self.nprobe = self.options.nprobe or max(1, self.nlist // 16)

    @classmethod
    def create(cls, proj: np.ndarray, centroids: np.ndarray, sample: np.ndarray, **kw) -> IvfTier:
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
        return cls(proj, index, **kw)

    # -- choosing, saving, loading -----------------------------------------------------------------
    @classmethod
    def plan(cls, n: int, dim: int, options: TierOptions) -> IvfPlan:
        nlist = options.nlist or optimal_nlist(n)
        if options.pca_dim:
            p = int(options.pca_dim)
        else:
            p = min(dim, DEFAULT_PCA_DIM)
            if options.memory_budget:
                # per vector: p + 2 one-byte codes and an 8-byte id, with room to grow 25 %
                per_vector = options.memory_budget / (1.25 * max(n, 1)) - 8
                p = min(p, int(per_vector) - 2)
            p = max(min(14, dim), p)
            if p + 2 >= 32 and p < dim:
                p = (p + 2) // 16 * 16 - 2  # FAISS's 8-bit SIMD kernels need d % 16 == 0
        return IvfPlan(dim, min(p, dim), nlist, options)

    def serves(self, plan: Plan, n: int) -> bool:
        factor = self.options.retrain_factor
        return plan.tier is IvfTier and n <= factor * max(self.trained_n, 1)

    def save(self, directory: Path, stem: str) -> dict[str, Any]:
        faiss_path = directory / f"{stem}.faiss"
        proj_path = directory / f"{stem}.npz"
        faiss.write_index(self.index, str(faiss_path))
        with open(proj_path, "wb") as f:
            np.savez(f, proj=self.proj, overflow=self.overflow)
        for path in (faiss_path, proj_path):
            files.fsync_file(path)
        crc, size = files.file_crc(faiss_path)
        return {
            "trained_n": self.trained_n,
            "faiss": faiss_path.name,
            "faiss_crc": crc,
            "faiss_size": size,
            "proj": proj_path.name,
            "proj_crc": zlib.crc32(self.overflow.tobytes(), zlib.crc32(self.proj.tobytes())),
        }

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any], dim: int, options: TierOptions) -> IvfTier:
        faiss_path = directory / meta["faiss"]
        proj_path = directory / meta["proj"]
        crc, size = files.file_crc(faiss_path)
        if (crc, size) != (meta["faiss_crc"], meta["faiss_size"]):
            raise TierDamaged("checksum")
        with np.load(proj_path, allow_pickle=False) as arrays:
            proj, overflow = arrays["proj"], arrays["overflow"]
        crc_proj = zlib.crc32(overflow.tobytes(), zlib.crc32(proj.tobytes()))
        if crc_proj != meta["proj_crc"] or proj.shape[1] != dim:
            raise TierDamaged("projection")
        index = faiss.read_index(str(faiss_path))
        if not isinstance(index, faiss.IndexIVFScalarQuantizer) or index.d != proj.shape[0] + 2:
            raise TierDamaged("index type")
        return cls(proj, index, overflow, options, trained_n=int(meta["trained_n"]))

    # -- the index ---------------------------------------------------------------------------------
    @property
    def nprobe(self) -> int:
        return int(self.index.nprobe)

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self.index.nprobe = max(1, min(self.nlist, int(value)))

    def name(self) -> str:
        return _name(self.p, self.nlist)

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

    def reset(self) -> None:
        self.index.reset()
        self.overflow = np.zeros(0, dtype=np.int64)

    def knn(
        self, q: np.ndarray, k: int, *, head: bool = False, within: np.ndarray | None = None
    ) -> np.ndarray:
        """Candidates for the top k: 10 per result (at least ``rescore``) from ``nprobe`` lists.
        A head's weight vector points between clusters rather than at one, so its best matches
        spread over more lists: it probes 4x the lists and takes 30 candidates per result.
        ``within`` (a share s of the library): only those ids, from nprobe / s lists, so that
        about as many codes are compared as without it."""
        nprobe = 4 * self.nprobe if head else self.nprobe
        if within is None:
            return self._probe(q, self.pool(k, head=head), nprobe)
        share = max(len(within), 1) / max(self.ntotal, 1)
        selector = faiss.IDSelectorBatch(np.asarray(within, dtype=np.int64))
        return self._probe(q, self.pool(k, head=head), ceil(nprobe / share), selector)

    def pool(self, k: int, *, head: bool = False) -> int:
        return max(self.options.rescore, (30 if head else 10) * k)

    def _probe(self, q: np.ndarray, n: int, nprobe: int, selector: Any | None = None) -> np.ndarray:
        """Ids of about the n best inner products with q, from ``nprobe`` lists (only the ids
        a FAISS ``selector`` accepts, when given)."""
        n = min(n, self.ntotal)
        if n <= 0:
            return np.zeros(0, dtype=np.int64)
        nprobe = max(1, min(self.nlist, nprobe))
        q = np.asarray(q, dtype=np.float32)
        q = q / (float(np.linalg.norm(q)) or 1.0)
        pq = self.proj @ q
        # Lists are chosen for q as if it were a stored vector: [P q, |q - P^T P q|, 0].
        perp = sqrt(max(1.0 - float(pq @ pq), 0.0))
        coarse = np.zeros((1, self.p + 2), dtype=np.float32)
        coarse[0, : self.p] = pq
        coarse[0, self.p] = perp
        dq, iq = self.quantizer.search(coarse, nprobe)
        scan = np.zeros((1, self.p + 2), dtype=np.float32)
        scan[0, : self.p] = pq
        saved = self.index.nprobe
        self.index.nprobe = nprobe
        try:
            if selector is None:
                _, labels = self.index.search_preassigned(scan, n, iq, dq)
            else:  # the Python wrapper takes no search parameters: the C++ call does
                params = faiss.SearchParametersIVF(nprobe=nprobe, sel=selector)
                distances = np.empty((1, n), dtype=np.float32)
                labels = np.empty((1, n), dtype=np.int64)
                iq, dq = np.ascontiguousarray(iq, np.int64), np.ascontiguousarray(dq, np.float32)
                self.index.search_preassigned_c(
                    1,
                    faiss.swig_ptr(scan),
                    n,
                    faiss.swig_ptr(iq),
                    faiss.swig_ptr(dq),
                    faiss.swig_ptr(distances),
                    faiss.swig_ptr(labels),
                    False,
                    params,
                )
        finally:
            self.index.nprobe = saved
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

    # -- pairs -------------------------------------------------------------------------------------
    def pairs(
        self, threshold: float, *, probes: int, within: np.ndarray | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Candidate pairs whose inner product can reach ``threshold``, each vector against the
        ``probes`` lists nearest to it (:func:`finder.store.tiers.ivf_join.pairs`)."""
        from finder.store.tiers.ivf_join import pairs

        return pairs(self, threshold, probes=probes, within=within)


@dataclass(frozen=True)
class IvfPlan:
    tier: ClassVar[type[IvfTier]] = IvfTier
    dim: int
    p: int
    nlist: int
    options: TierOptions

    def name(self) -> str:
        return _name(self.p, self.nlist)

    def build(self, rows: np.ndarray, scan: Scan) -> IvfTier:
        """PCA from up to 16k rows, k-means from up to 40 rows a list (autofaiss trains with
        30-256), both read and projected chunk by chunk."""
        rng = np.random.default_rng(len(rows))
        pca_rows = np.sort(rng.choice(rows, size=min(len(rows), 16384), replace=False))
        proj = train_projection(moment(pca_rows, scan, self.dim), self.p)
        km_rows = np.sort(rng.choice(rows, size=min(len(rows), 40 * self.nlist), replace=False))
        pp = proj.shape[0]
        shell = IvfTier.create(proj, np.zeros((1, pp + 2)), np.zeros((1, pp + 2)))
        sample = np.concatenate([shell.project(x.astype(np.float32)) for _, x in scan(km_rows)])
        centroids = _train_lists(sample, self.nlist, niter=self.options.kmeans_iter)
        return IvfTier.create(proj, centroids, sample, options=self.options, trained_n=len(rows))
