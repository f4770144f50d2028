"""The library's k-NN graph (finder.store.graph): exact, kept up to date incrementally as
vectors come and go, written so that a kill leaves the old graph or the new one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from store_data import DIM, SMALL, clustered

from finder.store import graph as graphs
from finder.store.vectors import VectorStore


def brute(store: VectorStore, k: int = graphs.K) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every stored vector's k nearest others by cosine, by brute force."""
    ids = np.sort(store.ids())
    X = store.get(ids).astype(np.float64)
    S = X @ X.T
    np.fill_diagonal(S, -np.inf)
    top = np.argsort(-S, axis=1, kind="stable")[:, :k]
    return ids, ids[top], np.take_along_axis(S, top, axis=1)


def same_as_brute(g: graphs.Graph, store: VectorStore) -> None:
    """Each list the nearest others, as many as it knows (at least NEED, or all there are)."""
    ids, nbr, sim = brute(store, g.k)
    np.testing.assert_array_equal(g.ids, ids)
    known = g.nbr >= 0
    assert (known.sum(axis=1) >= min(graphs.NEED, len(ids) - 1)).all()
    assert (known[:, :-1] >= known[:, 1:]).all()  # known ones first
    np.testing.assert_allclose(g.sim[known], sim[known], atol=1e-5)
    # the same neighbours, ties aside (equal cosines may come in either order)
    assert (g.nbr[known] == nbr[known]).mean() > 0.999


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graphs, "BLOCK", 37)  # many blocks, a short last one


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_the_graph_is_every_vectors_nearest_others(tmp_path: Path, small_blocks) -> None:
    store = VectorStore(tmp_path / "v", DIM)
    store.add(np.arange(10, 310), clustered(300))
    g = graphs.build(store)
    assert g.nbr.shape == (300, graphs.K) and not np.isin(g.nbr, -1).any()
    assert not (g.nbr == g.ids[:, None]).any()  # never its own neighbour
    same_as_brute(g, store)
    assert g.fresh(store)
    nbr, sim = g.neighbours(np.array([12, 10]), 10)
    np.testing.assert_array_equal(nbr, g.nbr[[2, 0], :10])
    with pytest.raises(KeyError):
        g.neighbours(np.array([5]), 10)


def test_a_library_smaller_than_k_pads_its_lists(tmp_path: Path) -> None:
    store = VectorStore(tmp_path / "v", DIM)
    store.add(np.arange(5), clustered(5))
    g = graphs.build(store)
    assert (g.nbr[:, :4] >= 0).all() and (g.nbr[:, 4:] == -1).all()
    assert np.isneginf(g.sim[:, 4:]).all()


def test_added_removed_and_changed_vectors_give_the_graph_a_rebuild_gives(
    tmp_path: Path, small_blocks
) -> None:
    rng = np.random.default_rng(1)
    store = VectorStore(tmp_path / "v", DIM)
    store.add(np.arange(400), clustered(400, seed=3))
    g = graphs.build(store)
    store.add(np.arange(400, 460), unit(rng, 60))  # new photos
    store.remove(np.arange(0, 400, 50))  # some gone
    store.add(np.array([7, 99, 123]), unit(rng, 3))  # changed: another vector, the same id
    assert not g.fresh(store)
    g2, redone = graphs.update(g, store)
    same_as_brute(g2, store)
    assert g2.fresh(store)
    assert 63 <= redone < 200  # the new and changed, and the lists left with fewer than NEED
    assert (g2.nbr < 0).any()  # some lists know fewer than 16 now
    # a compaction moves every row: the same vectors are known by their bytes
    store.commit()
    store.compact()
    assert not g2.fresh(store)
    g3, redone = graphs.update(g2, store)
    assert redone == 0 and g3.fresh(store)
    np.testing.assert_array_equal(g3.nbr, g2.nbr)
    # and after it, a change is found again
    store.add(np.array([401]), unit(rng, 1))
    store.commit()
    store.compact()
    g4, redone = graphs.update(g3, store)
    assert redone >= 1
    same_as_brute(g4, store)


def test_the_file_round_trips_and_damage_is_found_not_used(tmp_path: Path) -> None:
    store = VectorStore(tmp_path / "v", DIM)
    store.add(np.arange(50), clustered(50))
    assert graphs.load(tmp_path) is None
    assert graphs.problems(tmp_path, store) == [
        f"the neighbour graph {tmp_path / 'graph.npz'} is missing; `finder repair` computes it"
    ]
    assert graphs.refresh(tmp_path, store) == 50
    assert graphs.problems(tmp_path, store) == []
    g = graphs.load(tmp_path)
    assert g is not None and g.fresh(store)
    assert graphs.refresh(tmp_path, store) == 0  # fresh: not written again
    store.add(np.array([50]), clustered(51)[50:])
    assert "not the stored vectors'" in graphs.problems(tmp_path, store)[0]
    assert graphs.problems(tmp_path, store, settled=False) == []  # an index run's: not yet
    p = graphs.path(tmp_path)
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a flipped byte in the middle of the arrays
    p.write_bytes(bytes(data))
    with pytest.raises(graphs.GraphDamaged):
        graphs.load(tmp_path)
    assert "damaged" in graphs.problems(tmp_path, store, settled=False)[0]
    p.write_bytes(data[:100])  # cut short
    with pytest.raises(graphs.GraphDamaged):
        graphs.load(tmp_path)
    assert graphs.refresh(tmp_path, store) == 51  # computed again
    g = graphs.load(tmp_path)
    assert g is not None and g.fresh(store)


WRITER = """
import sys
import numpy as np
from finder.store import graph as graphs
n = 200_000
ids = np.arange(n, dtype=np.int64)
for i in range(10**9):
    fill = i % 2
    g = graphs.Graph(ids, np.full((n, 16), fill, np.int64), np.full((n, 16), fill, np.float32),
                     ids, np.zeros(n, np.uint32), fill)
    graphs.save(sys.argv[1], g)
    print(i, flush=True)
"""


def test_a_kill_while_writing_leaves_the_old_graph_or_the_new_one(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(graphs.__file__).parents[2])}
    for attempt in range(4):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path)],
            stdout=subprocess.PIPE,
            env=env,
        )
        assert proc.stdout is not None
        for _ in range(2 + attempt):  # some whole writes, then one under way
            proc.stdout.readline()
        time.sleep(0.01 * attempt)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        g = graphs.load(tmp_path)  # never damaged, never a mix
        assert g is not None and len(g) == 200_000
        fill = g.generation
        assert (g.nbr == fill).all() and (g.sim == fill).all()
    assert [p.name for p in tmp_path.iterdir()] == ["graph.npz"] or all(
        p.name == "graph.npz" or p.name.endswith(".tmp") for p in tmp_path.iterdir()
    )


def test_beyond_the_flat_tier_the_graph_comes_through_the_ivf_lists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = VectorStore(tmp_path / "v", DIM, **{**SMALL, "nlist": 16})
    store.add(np.arange(600), clustered(600, seed=2))
    assert store.tier().kind == "ivf"
    every = graphs.build(store, probes=16)  # every list probed: the exact graph
    same_as_brute(every, store)
    few = graphs.build(store, probes=1)  # its own list only
    monkeypatch.setattr(graphs, "HOLD_BYTES", 0)  # the vectors read from the file each time
    np.testing.assert_array_equal(graphs.build(store, probes=1).nbr, few.nbr)
    _, nbr, _ = brute(store)
    recall = np.mean([len(set(a) & set(b)) / graphs.K for a, b in zip(few.nbr, nbr, strict=True)])
    assert 0.5 < recall < 1.0, recall  # approximate, and mostly right
    # brought up to date exactly
    store.add(np.arange(600, 620), clustered(20, seed=9))
    g, _ = graphs.update(every, store)
    same_as_brute(g, store)


def test_a_higher_threshold_is_answered_from_the_last_complete_search(tmp_path: Path) -> None:
    """The band's search (``cut − 2``) is read from the strip's (``cut − 6``), exactly."""
    store = VectorStore(tmp_path / "v", DIM)
    store.add(np.arange(500), clustered(500, seed=4))
    w = clustered(1, seed=5)[0] * 8.0
    low_ids, low_z = store.search_linear(w, -1.0, min_score=-2.0)
    for t in (-2.0, 0.0, float(np.median(low_z)), float(low_z[3]), 50.0):
        got = store.search_linear(w, -1.0, min_score=t)
        store._complete = None  # noqa: SLF001  the same search from the tier
        want = store.search_linear(w, -1.0, min_score=t)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        store.search_linear(w, -1.0, min_score=-2.0)
    top = store.search_linear(w, -1.0, k=7, min_score=0.0)
    np.testing.assert_array_equal(top[0], low_ids[low_z >= np.float32(0.0)][:7])
