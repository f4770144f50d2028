"""What the library's k-NN graph (finder/store/graph.py) costs: its build, its memory, an index
run's update, and the recall of the graph built through the IVF tier.

    OMP_NUM_THREADS=1 python scripts/bench_graph.py                 # 100,000 × 4,096-d
    OMP_NUM_THREADS=1 python scripts/bench_graph.py --n 100000 --dim 1024

A vector store of ``--n`` synthetic unit vectors in clusters of about 100, as
scripts/bench_serve.py builds its library (a random centre plus noise each), indexed as finder
indexes it (flat up to 10,000 vectors, then PCA + IVF). Then:

1. ``build_s``: the graph as an index run's settle builds it (``graph.build``: exact on the
   flat tier, through the IVF lists beyond), with the peak of the memory numpy allocated for
   it (``build_peak_mb``, tracemalloc) and the file's size.
2. ``recall``: the share of each of ``--sample`` vectors' 16 true nearest (brute force over
   the whole store) that the graph holds; ``recall_at_10``: of the 10 the re-rank reads.
3. ``exact_s``: the exact build (``graph.build_exact``) of the first ``--exact-n`` vectors,
   and ``exact_s_at_n``: that time scaled by (n / exact-n)² (the work is n² · dim).
4. ``update_add_s``: ``graph.update`` after ``--add`` new vectors (their lists among all,
   and the lists they enter); ``update_remove_s``: after as many removed (the lists that
   named them computed again); ``update_save_s``: the file written.

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from finder.store import graph as graphs  # noqa: E402
from finder.store.vectors import VectorStore  # noqa: E402


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def clustered(rng: np.random.Generator, centres: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Vectors as bench_serve.py makes them: image k of cluster k mod clusters."""
    which = ids % len(centres)
    x = centres[which] + 0.045 * rng.standard_normal((len(ids), centres.shape[1])).astype(
        np.float32
    )
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def make_store(directory: Path, n: int, dim: int, seed: int = 0) -> tuple[VectorStore, np.ndarray]:
    rng = np.random.default_rng(seed)
    clusters = max(1, n // 100)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    store = VectorStore(directory, dim)
    if len(store) == n:  # a store kept in --workdir: the same vectors
        return store, centres
    for start in range(0, n, 16384):
        ids = np.arange(start, min(n, start + 16384), dtype=np.int64)
        store.add(ids, clustered(rng, centres, ids))
    store.commit()
    store.save_index()
    return store, centres


def true_neighbours(store: VectorStore, ids: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` nearest others of ``ids`` by brute force over the store."""
    every = np.sort(store.ids())
    Q = store.get(ids)
    best = np.full((len(ids), k), -np.inf, dtype=np.float32)
    best_ids = np.full((len(ids), k), -1, dtype=np.int64)
    for start in range(0, len(every), 8192):
        part = every[start : start + 8192]
        S = Q @ store.get(part).T
        S[ids[:, None] == part[None, :]] = -np.inf
        allS = np.concatenate([best, S], axis=1)
        allI = np.concatenate([best_ids, np.broadcast_to(part, S.shape)], axis=1)
        top = np.argpartition(-allS, k - 1, axis=1)[:, :k]
        best = np.take_along_axis(allS, top, axis=1)
        best_ids = np.take_along_axis(allI, top, axis=1)
    return best_ids


def recall(g: graphs.Graph, truth: np.ndarray, ids: np.ndarray, k: int) -> float:
    nbr, _ = g.neighbours(ids, k)
    return float(
        np.mean([len(set(a) & set(b[:k])) / k for a, b in zip(nbr, truth[:, :k], strict=True)])
    )


def timed(f):
    t = time.perf_counter()
    out = f()
    return out, time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="vectors in the store")
    parser.add_argument("--dim", type=int, default=4096, help="vector dimension")
    parser.add_argument("--sample", type=int, default=500, help="vectors whose recall is read")
    parser.add_argument("--exact-n", type=int, default=10_000, help="vectors built exactly")
    parser.add_argument("--add", type=int, default=1000, help="vectors added (and removed)")
    parser.add_argument("--probes", type=int, default=graphs.PROBES, help="IVF lists probed")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (kept)")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="graph-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    out: dict = {"n": args.n, "dim": args.dim}

    say(f"a store of {args.n} × {args.dim}-d in {work}")
    store, centres = make_store(work / f"vectors-{args.n}-{args.dim}", args.n, args.dim)
    out["index"] = store.index_name()
    tracemalloc.start()
    g, out["build_s"] = timed(lambda: graphs.build(store, probes=args.probes))
    out["build_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
    tracemalloc.stop()
    out["graph_mb"] = round((g.nbr.nbytes + g.sim.nbytes + g.ids.nbytes * 3) / 2**20, 1)
    _, out["save_s"] = timed(lambda: graphs.save(work, g))
    out["file_mb"] = round(graphs.path(work).stat().st_size / 2**20, 1)
    say(f"built ({out['index']}) in {out['build_s']:.1f} s")

    rng = np.random.default_rng(1)
    sample = np.sort(rng.choice(np.sort(store.ids()), min(args.sample, args.n), replace=False))
    truth, out["truth_s"] = timed(lambda: true_neighbours(store, sample, graphs.K))
    out["recall"] = round(recall(g, truth, sample, graphs.K), 4)
    out["recall_at_10"] = round(recall(g, truth, sample, 10), 4)
    say(f"recall {out['recall']} (at 10: {out['recall_at_10']})")

    m = min(args.exact_n, args.n)
    small, _ = make_store(work / f"vectors-{m}-{args.dim}", m, args.dim)
    _, out["exact_s"] = timed(lambda: graphs.build_exact(small))
    out["exact_n"] = m
    out["exact_s_at_n"] = round(out["exact_s"] * (args.n / m) ** 2, 1)
    small.close()
    say(f"exact at {m}: {out['exact_s']:.1f} s")

    new = np.arange(args.n, args.n + args.add, dtype=np.int64)
    store.add(new, clustered(rng, centres, new))
    store.commit()
    (g, redone), out["update_add_s"] = timed(lambda: graphs.update(g, store))
    out["update_add_lists"] = redone
    gone = rng.choice(np.arange(args.n), args.add, replace=False)
    store.remove(gone)
    store.commit()
    (g, redone), out["update_remove_s"] = timed(lambda: graphs.update(g, store))
    out["update_remove_lists"] = redone
    _, out["update_save_s"] = timed(lambda: graphs.save(work, g))
    say(
        f"update: +{args.add} in {out['update_add_s']:.1f} s, −{args.add} in "
        f"{out['update_remove_s']:.1f} s"
    )
    store.close()
    for key, value in out.items():
        if isinstance(value, float):
            out[key] = round(value, 3)
    out["load_avg"] = round(os.getloadavg()[0], 1)
    out["threads"] = os.environ.get("OMP_NUM_THREADS", "all")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
