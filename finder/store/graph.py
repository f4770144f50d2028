"""The library's k-NN graph: each stored vector's ``K`` nearest other vectors by cosine of the
stored unit vectors (the raw log's float16 rows), with their similarities, kept in
``LIBRARY/graph.npz``. What ``find`` re-ranks the photos near a class's cut with
(:mod:`finder.neighbours`, :mod:`finder.learn.smooth`), without a search per photo.

Exact while the store's search tier is flat (10,000 vectors by default): blocks of the library
against blocks of it (one float32 product per pair of blocks, each pair once, both sides'
lists merged from it). Beyond, built through the store's IVF tier (each vector against the
vectors of the inverted lists nearest to it, exact cosines from the raw vectors: approximate,
its recall measured by ``scripts/bench_graph.py``). An index run's changes are brought in
incrementally (:func:`update`): a new or changed vector gets its neighbours among all, and
every other list it enters takes it; a list that named a removed or changed vector drops it
(those left are still the nearest) and is computed again when fewer than ``NEED`` are left.
The graph knows what it was computed from by the raw log's generation and each id's row (a
replaced vector is appended: another row) and, across a compaction, a CRC of each row.

The file is written whole under a temporary name, flushed to disk, then renamed over the old
one: a kill leaves the old graph or the new one, never a mix; its arrays carry a CRC that
:func:`load` checks, so a damaged file is reported (and read as none), never used. A missing,
damaged or stale graph is no error for a search: the answer is then not smoothed, and
``finder repair`` (or the next index run) computes it again. numpy only.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from finder.store.tiers.ivf import IvfTier
    from finder.store.vectors import VectorStore

K = 16
"""Neighbours kept per vector (the re-rank uses the first 10)."""

FILE = "graph.npz"
BLOCK = 4096
"""Rows per block of the products (4,096 × 4,096 float32 similarities: 64 MB)."""

FORMAT = 1

NEED = 10
"""A list left with fewer than this many known neighbours (the re-rank reads 10) is computed
again by :func:`update`; one with more keeps the nearest it knows."""

PROBES = 16
"""Inverted lists each vector is compared with, beyond the flat tier (:func:`build_ivf`)."""

HOLD_BYTES = 2 << 30
"""A build through the IVF lists holds the vectors in memory (float32) up to this size."""


class GraphDamaged(ValueError):
    """The graph file cannot be read back as it was written."""


@dataclass
class Graph:
    """``ids`` (sorted), each one's ``nbr`` (``[n, k]`` ids, best first; -1 where the library
    has fewer, or where a removed one was and none nearer has come: at least ``NEED`` are
    known) and ``sim`` (their cosines; -inf or the last known one's there); what they were
    computed from: the raw log's ``generation``, each id's raw ``rows`` and the CRC of its
    float16 row (``crc``)."""

    ids: np.ndarray
    nbr: np.ndarray
    sim: np.ndarray
    rows: np.ndarray
    crc: np.ndarray
    generation: int
    k: int = K

    def __len__(self) -> int:
        return len(self.ids)

    def fresh(self, store: VectorStore) -> bool:
        """Whether the graph is the one of ``store``'s vectors now (same ids, same rows)."""
        raw = store.raw
        if self.generation != raw.generation or len(self.ids) != len(store):
            return False
        return bool(np.array_equal(raw.lookup(self.ids), self.rows))

    def neighbours(self, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest (ids ``[n, k]``, cosines ``[n, k]``) of ``ids``, all in the
        graph (KeyError otherwise)."""
        ids = np.asarray(ids, dtype=np.int64)
        pos = np.searchsorted(self.ids, ids)
        pos = np.minimum(pos, max(len(self.ids) - 1, 0))
        if not len(self.ids) or (len(ids) and not np.array_equal(self.ids[pos], ids)):
            raise KeyError("ids not in the neighbour graph")
        k = min(int(k), self.nbr.shape[1])
        return self.nbr[pos, :k], self.sim[pos, :k]


# -- reading the store --------------------------------------------------------------------
def _live(store: VectorStore) -> tuple[np.ndarray, np.ndarray]:
    """(ids, rows) of the live vectors, by id."""
    rows = store.raw.live_rows()
    ids = store.raw.ids_of(rows)
    order = np.argsort(ids, kind="stable")
    return ids[order].copy(), rows[order].copy()


def _blocks(store: VectorStore, rows: np.ndarray) -> Iterator[tuple[slice, np.ndarray]]:
    """(positions, float32 vectors) of ``rows`` in blocks of ``BLOCK``."""
    for start in range(0, len(rows), BLOCK):
        part = rows[start : start + BLOCK]
        yield slice(start, start + len(part)), store.raw.read_rows(part).astype(np.float32)


def _crcs(v16: np.ndarray) -> np.ndarray:
    return np.fromiter(
        (zlib.crc32(r.tobytes()) for r in np.ascontiguousarray(v16)), np.uint32, len(v16)
    )


def row_crcs(store: VectorStore, rows: np.ndarray) -> np.ndarray:
    """The CRC-32 of each of these raw rows' float16 bytes."""
    out = np.zeros(len(rows), dtype=np.uint32)
    for start in range(0, len(rows), BLOCK):
        out[start : start + BLOCK] = _crcs(store.raw.read_rows(rows[start : start + BLOCK]))
    return out


# -- the lists ------------------------------------------------------------------------------
def _merge(nbr, sim, cand_ids, cand_sim, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of each row's list and its candidates (``cand_ids`` ``[c]`` or
    ``[n, c]``, ``cand_sim`` ``[n, c]``), best first."""
    n = len(nbr)
    if np.ndim(cand_ids) == 1:
        cand_ids = np.broadcast_to(cand_ids, (n, len(cand_ids)))
    ids = np.concatenate([nbr, cand_ids], axis=1)
    s = np.concatenate([sim, cand_sim.astype(np.float32, copy=False)], axis=1)
    if s.shape[1] > k:
        top = np.argpartition(-s, k - 1, axis=1)[:, :k]
        ids = np.take_along_axis(ids, top, axis=1)
        s = np.take_along_axis(s, top, axis=1)
    order = np.argsort(-s, axis=1, kind="stable")
    return np.take_along_axis(ids, order, axis=1), np.take_along_axis(s, order, axis=1)


def _improve(nbr, sim, at: np.ndarray, cand_ids: np.ndarray, S: np.ndarray, k: int) -> None:
    """Rows ``at`` of (``nbr``, ``sim``) take the candidates ``cand_ids`` (``S``: their cosines
    ``[len(at), c]``) that beat their k-th, in place."""
    if not len(at) or not S.shape[1]:
        return
    if S.shape[1] > k:  # only each row's best k can enter
        top = np.argpartition(-S, k - 1, axis=1)[:, :k]
        cand = cand_ids[top]
        S = np.take_along_axis(S, top, axis=1)
    else:
        cand = np.broadcast_to(cand_ids, S.shape)
    better = S.max(axis=1) > sim[at, -1]
    if not better.any():
        return
    rows = at[better]
    nbr[rows], sim[rows] = _merge(nbr[rows], sim[rows], cand[better], S[better], k)


def _empty(n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((n, k), -1, dtype=np.int64), np.full((n, k), -np.inf, dtype=np.float32)


def build(store: VectorStore, *, k: int = K, probes: int = PROBES) -> Graph:
    """The graph of ``store``'s live vectors: exact while the store's search tier is (flat,
    up to 10,000 vectors by default), else through its IVF lists (:func:`build_ivf`)."""
    tier = store.tier() if len(store) else None
    if tier is not None and getattr(tier, "kind", None) == "ivf":
        return build_ivf(store, tier, k=k, probes=probes)
    return build_exact(store, k=k)


def build_exact(store: VectorStore, *, k: int = K) -> Graph:
    """The exact graph of ``store``'s live vectors."""
    ids, rows = _live(store)
    nbr, sim = _empty(len(ids), k)
    blocks = list(range(0, len(ids), BLOCK))
    for a in blocks:
        A = store.raw.read_rows(rows[a : a + BLOCK]).astype(np.float32)
        pa = np.arange(a, a + len(A))
        for b in blocks:
            if b < a:
                continue
            B = A if b == a else store.raw.read_rows(rows[b : b + BLOCK]).astype(np.float32)
            S = A @ B.T
            if b == a:
                np.fill_diagonal(S, -np.inf)  # not its own neighbour
            pb = np.arange(b, b + len(B))
            _improve(nbr, sim, pa, ids[pb], S, k)
            if b != a:
                _improve(nbr, sim, pb, ids[pa], S.T, k)
    crc = row_crcs(store, rows)
    return Graph(ids, nbr, sim, rows, crc, store.raw.generation, k)


def build_ivf(store: VectorStore, tier: IvfTier, *, k: int = K, probes: int = PROBES) -> Graph:
    """An approximate graph through the store's IVF tier: each vector's exact cosines with
    the vectors of the ``probes`` inverted lists whose centroids are nearest to it by cosine
    (in the tier's PCA coordinates), read from the raw vectors; one product per list (the
    vectors that probe it against its own). Its recall: ``scripts/bench_graph.py``."""
    from finder.store.tiers.ivf_join import lists

    ids, rows = _live(store)
    n = len(ids)
    nbr, sim = _empty(n, k)
    probes = min(int(probes), tier.nlist)
    probe = np.empty((n, probes), dtype=np.int64)
    # every vector is read by ``probes`` lists: held in memory as float32 when that is
    # affordable (100,000 × 4,096-d: 1.6 GB), else read from the raw file each time
    held = np.empty((n, store.dim), np.float32) if n * store.dim * 4 <= HOLD_BYTES else None
    # lists by the cosine of their centroids (in the tier's PCA coordinates): by L2, as the
    # tier probes, the lists of small-norm centroids (mixed lists) are near every vector, and
    # a few of them, probed by nearly all, held thousands of vectors (100,000 × 4,096-d
    # synthetic: 19 times the work of evenly probed lists; by cosine 1.6 times, recall 1.0)
    centroids = tier.quantizer.reconstruct_n(0, tier.nlist)[:, : tier.p]
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    for part, X in _blocks(store, rows):
        if held is not None:
            held[part] = X
        C = (X @ tier.proj.T) @ centroids.T
        if probes < tier.nlist:
            probe[part] = np.argpartition(-C, probes - 1, axis=1)[:, :probes]
        else:
            probe[part] = np.arange(tier.nlist)

    def vectors(pos: np.ndarray) -> np.ndarray:
        return held[pos] if held is not None else store.raw.read_rows(rows[pos]).astype(np.float32)

    flat = probe.ravel()
    order = np.argsort(flat, kind="stable")
    bounds = np.searchsorted(flat[order], np.arange(tier.nlist + 1))
    for lst, (members, _) in enumerate(lists(tier)):
        asking = order[bounds[lst] : bounds[lst + 1]] // probes
        if not len(asking) or not len(members):
            continue
        mpos = np.searchsorted(ids, np.asarray(members, dtype=np.int64))
        mpos = mpos[(mpos < n) & (ids[np.minimum(mpos, n - 1)] == members)]
        if not len(mpos):
            continue
        M = vectors(mpos)
        for start in range(0, len(asking), BLOCK):
            qpos = asking[start : start + BLOCK]
            S = vectors(qpos) @ M.T
            S[qpos[:, None] == mpos[None, :]] = -np.inf  # not its own neighbour
            _improve(nbr, sim, qpos, ids[mpos], S, k)
    crc = row_crcs(store, rows)
    return Graph(ids, nbr, sim, rows, crc, store.raw.generation, k)


def _drop(nbr: np.ndarray, sim: np.ndarray, at: np.ndarray, gone: np.ndarray) -> None:
    """Rows ``at`` without the ids ``gone``, in place: the others move up, in order (still the
    nearest of the vectors left: a removal brings no nearer one), and the freed places say
    what the list no longer knows: id -1 and, for cosine, the list's last one before (every
    vector at least that near was in it), so that only a vector nearer than that enters."""
    if not len(at):
        return
    n, s = nbr[at], sim[at]
    keep = ~np.isin(n, gone) & (n >= 0)
    order = np.argsort(~keep, axis=1, kind="stable")
    n, s = np.take_along_axis(n, order, axis=1), np.take_along_axis(s, order, axis=1)
    freed = np.arange(n.shape[1])[None, :] >= keep.sum(axis=1)[:, None]
    floor = np.broadcast_to(sim[at, -1:], s.shape)
    n[freed], s[freed] = -1, floor[freed]
    nbr[at], sim[at] = n, s


def update(graph: Graph | None, store: VectorStore, *, k: int = K) -> tuple[Graph, int]:
    """``graph`` brought up to ``store``'s vectors: new and changed ones get their lists (and
    enter the others'), lists that named a removed or changed one drop it and are computed
    again when fewer than ``NEED`` are left. None (or another ``k``): built. Returns the graph
    and how many lists were computed."""
    if graph is None or graph.k != k:
        g = build(store, k=k)
        return g, len(g)
    ids, rows = _live(store)
    pos = np.searchsorted(graph.ids, ids)
    pos = np.minimum(pos, max(len(graph.ids) - 1, 0))
    known = (graph.ids[pos] == ids) if len(graph.ids) else np.zeros(len(ids), bool)
    same = known.copy()
    if graph.generation == store.raw.generation:
        same[known] = graph.rows[pos[known]] == rows[known]
    else:  # compacted since: rows moved; a vector is the same when its bytes are
        same[known] = graph.crc[pos[known]] == row_crcs(store, rows[known])
    kept_old = pos[same]  # the graph's positions of the unchanged vectors
    gone = np.setdiff1d(graph.ids, ids[same])  # removed or changed
    nbr, sim = _empty(len(ids), k)
    nbr[same], sim[same] = graph.nbr[kept_old], graph.sim[kept_old]
    crc = np.zeros(len(ids), dtype=np.uint32)
    crc[same] = graph.crc[kept_old]
    # lists to compute against all: the new and changed, and those left with fewer than NEED
    redo = ~same
    if len(gone):
        _drop(nbr, sim, np.flatnonzero(np.isin(nbr, gone).any(axis=1) & same), gone)
        redo |= (nbr >= 0).sum(axis=1) < min(NEED, k, len(ids) - 1)
    fresh_pos = np.flatnonzero(~same)  # their vectors enter the kept lists
    redo_pos = np.flatnonzero(redo)
    if len(redo_pos):
        nbr[redo_pos], sim[redo_pos] = _empty(len(redo_pos), k)
        Q = store.raw.read_rows(rows[redo_pos])
        crc[redo_pos] = _crcs(Q)
        Q = Q.astype(np.float32)
        is_fresh = ~same[redo_pos]
        for part, X in _blocks(store, rows):
            S = X @ Q.T  # [block, redo]
            block_pos = np.arange(part.start, part.stop)
            own = np.flatnonzero(np.isin(block_pos, redo_pos))
            if len(own):
                S[own, np.searchsorted(redo_pos, block_pos[own])] = -np.inf
            _improve(nbr, sim, redo_pos, ids[block_pos], S.T, k)
            # a new vector enters the lists kept (the redone ones see it above)
            keep = np.flatnonzero(~redo[block_pos])
            if len(keep) and is_fresh.any():
                _improve(nbr, sim, block_pos[keep], ids[fresh_pos], S[keep][:, is_fresh], k)
    g = Graph(ids, nbr, sim, rows, crc, store.raw.generation, k)
    return g, len(redo_pos)


# -- the file -------------------------------------------------------------------------------
def path(directory: Path | str) -> Path:
    return Path(directory) / FILE


def _sum(arrays: dict[str, np.ndarray]) -> int:
    c = 0
    for key in sorted(arrays):
        c = zlib.crc32(np.ascontiguousarray(arrays[key]).tobytes(), c)
    return c


def save(directory: Path | str, graph: Graph) -> None:
    """Write the graph atomically (a temporary file, flushed, renamed over the old one)."""
    arrays = {
        "ids": graph.ids,
        "nbr": graph.nbr,
        "sim": graph.sim,
        "rows": graph.rows,
        "crc": graph.crc,
        "head": np.asarray([FORMAT, graph.generation, graph.k], dtype=np.int64),
    }
    arrays["sum"] = np.asarray([_sum(arrays)], dtype=np.int64)
    final = path(directory)
    for left in final.parent.glob(f".{FILE}.*.tmp"):  # a killed writer's
        left.unlink(missing_ok=True)
    tmp = final.with_name(f".{FILE}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    try:
        fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def load(directory: Path | str) -> Graph | None:
    """The graph kept in ``directory``; None when there is none; GraphDamaged when the file
    is not what :func:`save` wrote."""
    p = path(directory)
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {key: z[key] for key in z.files}
    except FileNotFoundError:
        return None
    except Exception as e:  # a truncated or overwritten zip: any of numpy's and zipfile's errors
        raise GraphDamaged(f"the neighbour graph {p} is damaged ({e})") from None
    want = {"ids", "nbr", "sim", "rows", "crc", "head", "sum"}
    if set(arrays) != want:
        raise GraphDamaged(f"the neighbour graph {p} is not one finder wrote")
    total = arrays.pop("sum")
    if len(total) != 1 or int(total[0]) != _sum(arrays):
        raise GraphDamaged(f"the neighbour graph {p} is damaged (its checksum fails)")
    fmt, generation, k = (int(x) for x in arrays["head"])
    n = len(arrays["ids"])
    if fmt != FORMAT or arrays["nbr"].shape != (n, k) or arrays["sim"].shape != (n, k):
        raise GraphDamaged(f"the neighbour graph {p} has a shape finder does not write")
    return Graph(
        arrays["ids"],
        arrays["nbr"],
        arrays["sim"],
        arrays["rows"],
        arrays["crc"],
        generation,
        k,
    )


def refresh(directory: Path | str, store: VectorStore) -> int:
    """Bring the kept graph up to ``store``'s vectors and write it (nothing written when it is
    fresh). A damaged file is computed again. Returns how many lists were computed."""
    try:
        graph = load(directory)
    except GraphDamaged:
        graph = None
    if graph is not None and graph.fresh(store):
        return 0
    if not len(store):
        path(directory).unlink(missing_ok=True)
        return 0
    graph, redone = update(graph, store)
    save(directory, graph)
    return redone


def problems(directory: Path | str, store: VectorStore, *, settled: bool = True) -> list[str]:
    """What ``finder check`` says of the graph: damaged, missing, or not the vectors' (not
    ``settled``: an index run is going on or was interrupted, which the next one settles;
    only damage is a problem then)."""
    try:
        graph = load(directory)
    except GraphDamaged as e:
        return [f"{e}; `finder repair` computes it again"]
    if not settled:
        return []
    if graph is None:
        return (
            [f"the neighbour graph {path(directory)} is missing; `finder repair` computes it"]
            if len(store)
            else []
        )
    if not graph.fresh(store):
        return [
            f"the neighbour graph {path(directory)} is not the stored vectors'; "
            "`finder repair` brings it up to date"
        ]
    return []
