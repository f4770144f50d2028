"""Pairs of vectors in the IVF tier whose inner product can reach a threshold, found on the
8-bit codes without reading the raw vectors (``finder dupes`` on a large library).

Each vector is compared with every vector of the ``probes`` inverted lists whose centroids are
nearest to it (its own list among them; they are sought among the ``REACH`` lists nearest to
its own list's centroid), and a pair is a candidate when an upper bound of its inner product
reaches the threshold. In 4096 dimensions two near vectors often sit in lists whose centroids
are far apart in the centroids' own ranking, while each is near the other's list: hence lists
chosen per vector, not per list. A pair is found when either vector probes the other's list
(with ``within``: when one of those ids probes the other's list).

The bound: with ``x = P^T y + x_perp``, ``|x_perp| <= rho^`` and ``|y - y^| <= eps^`` (what the
tier's codes guarantee, :mod:`finder.store.tiers.ivf`),
``x.x' <= y^.y'^ + rho^ rho'^ + eps^ |y'^| + (|y^| + eps^) eps'^``: the inner product of a
"left" row ``[y^, rho^, eps^, |y^| + eps^]`` with a "right" row ``[y'^, rho'^, |y'^|, eps'^]``.
The work is one matrix product per list (the vectors probing it against its own), on a thread
per core with one BLAS thread each.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import faiss
import numpy as np

if TYPE_CHECKING:
    from finder.store.tiers.ivf import IvfTier

#: Lists, nearest to a list's centroid, among which its vectors' nearest lists are sought: at
#: least this many, and an eighth of all lists (at 100,000 vectors in 1024 lists, the true
#: nearest 8 lists of each vector give 0.9964 of the pairs, those found among 256: 0.9952).
REACH = 256

_NONE = (np.zeros(0, np.int64), np.zeros(0, np.int64))


def lists(tier: IvfTier) -> list[tuple[np.ndarray, np.ndarray]]:
    """(ids, 8-bit codes) of every inverted list: views into the index, valid while it is not
    changed."""
    inv = tier.index.invlists
    size = int(inv.code_size)
    out = []
    for k in range(tier.nlist):
        n = int(inv.list_size(k))
        if n == 0:
            out.append((np.zeros(0, np.int64), np.zeros((0, size), np.uint8)))
            continue
        ids = faiss.rev_swig_ptr(inv.get_ids(k), n)
        codes = faiss.rev_swig_ptr(inv.get_codes(k), n * size).reshape(n, size)
        out.append((ids, codes))
    return out


def sides(tier: IvfTier, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The decoded codes ``[y^, rho^, eps^]`` and the left and right rows of the bound."""
    p = tier.p
    dec = tier.sq.decode(np.ascontiguousarray(codes))
    norm = np.sqrt(np.einsum("ij,ij->i", dec[:, :p], dec[:, :p]))
    left = np.empty((len(dec), p + 3), dtype=np.float32)
    left[:, : p + 2] = dec
    left[:, p + 2] = norm + dec[:, p + 1]
    right = np.empty_like(left)
    right[:, : p + 1] = dec[:, : p + 1]
    right[:, p + 1] = norm
    right[:, p + 2] = dec[:, p + 1]
    return left, right


def probed(
    tier: IvfTier,
    centroids: np.ndarray,
    codes: np.ndarray,
    own: int,
    near: np.ndarray,
    probes: int,
) -> np.ndarray:
    """For each of these codes (of list ``own``), the ``probes`` lists among ``near`` whose
    ``centroids`` are nearest to it, its own list among them: (len(codes), probes) lists."""
    dec = tier.sq.decode(np.ascontiguousarray(codes))
    cent = centroids[near]
    dist = (cent * cent).sum(axis=1)[None, :] - 2 * dec @ cent.T
    dist[:, near == own] = -np.inf
    k = min(probes, len(near))
    best = np.argpartition(dist, k - 1, axis=1)[:, :k] if k < len(near) else np.argsort(dist, 1)
    return near[best]


def pairs(
    tier: IvfTier, threshold: float, *, probes: int, within: np.ndarray | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Candidate pairs (a, b) of stored ids whose inner product can reach ``threshold`` (see
    the module's docstring); with ``within``, only pairs with one of those ids. A pair may be
    given twice, in either order; never a vector with itself."""
    from finder.embed.runtime import cpu_count
    from finder.store.exact import one_thread

    found = lists(tier)
    nlist = tier.nlist
    keep = None if within is None else np.unique(np.asarray(within, dtype=np.int64))
    limit = np.float32(threshold - 1e-3)  # float32 rounding in the products
    reach = min(nlist, max(REACH, nlist // 8))
    centroids = tier.quantizer.reconstruct_n(0, nlist)
    flat = faiss.IndexFlatL2(centroids.shape[1])
    flat.add(centroids)
    _, near_lists = flat.search(centroids, reach)

    with one_thread(), ThreadPoolExecutor(cpu_count()) as pool:

        def plan(a: int) -> tuple[np.ndarray, np.ndarray]:
            """(offsets in list a of the vectors that probe, (n, probes) lists they probe)."""
            ids, codes = found[a]
            rows = np.arange(len(ids))
            if keep is not None:
                rows = rows[np.isin(ids, keep, assume_unique=True)]
            if not len(rows):
                return rows, np.zeros((0, probes), np.int64)
            near = near_lists[a][near_lists[a] >= 0]
            return rows, probed(tier, centroids, codes[rows], a, near, probes)

        plans = list(pool.map(plan, range(nlist)))
        # Invert: for each list, the (list, offset) of the vectors that probe it.
        src_list = np.concatenate([np.full(r.size, a) for a, (r, _) in enumerate(plans)])
        src_off = np.concatenate([r for r, _ in plans])
        width = max((t.shape[1] for _, t in plans), default=0)
        target = np.concatenate(
            [np.pad(t, ((0, 0), (0, width - t.shape[1])), constant_values=-1) for _, t in plans]
        )
        del plans
        flat_src = np.repeat(np.arange(len(src_list)), width)
        flat_target = target.reshape(-1)
        ok = flat_target >= 0
        order = np.argsort(flat_target[ok], kind="stable")
        by_target = flat_src[ok][order]
        cuts = np.searchsorted(flat_target[ok][order], np.arange(nlist + 1))

        def join(b: int) -> tuple[np.ndarray, np.ndarray]:
            ids_b, codes_b = found[b]
            who = by_target[cuts[b] : cuts[b + 1]]
            if not len(ids_b) or not len(who):
                return _NONE
            lists_of, offs = src_list[who], src_off[who]
            starts = np.flatnonzero(np.r_[True, lists_of[1:] != lists_of[:-1]])
            ends = np.r_[starts[1:], len(who)]
            codes = np.concatenate(
                [found[lists_of[s]][1][offs[s:e]] for s, e in zip(starts, ends, strict=True)]
            )
            ids = np.concatenate(
                [found[lists_of[s]][0][offs[s:e]] for s, e in zip(starts, ends, strict=True)]
            )
            left, _ = sides(tier, codes)
            _, right = sides(tier, codes_b)
            rows, cols = np.nonzero(left @ right.T >= limit)
            a, b_ = ids[rows], ids_b[cols]
            differ = a != b_
            return a[differ], b_[differ]

        yield from pool.map(join, range(nlist))
