"""VectorStore façade: bad input, reconcile, sample, mean, stats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from store_data import DIM, as_stored, clustered

from finder.errors import LibraryError
from finder.store.vectors import VectorStore


def test_bad_input_and_other_dim_refused(tmp_path: Path) -> None:
    store = VectorStore(tmp_path / "v", DIM)
    with pytest.raises(LibraryError):
        store.add(np.arange(3), np.zeros((3, DIM + 1), dtype=np.float32))
    with pytest.raises(LibraryError):
        store.add(np.arange(1), np.full((1, DIM), np.nan, dtype=np.float32))
    with pytest.raises(LibraryError):
        store.search_similar(np.zeros(DIM + 2, dtype=np.float32), 3)
    store.add(np.arange(3), clustered(3))
    store.close()
    with pytest.raises(LibraryError, match="32-d"):
        VectorStore(tmp_path / "v", 64)


def test_reconcile_drops_strays_and_reports_missing(tmp_path: Path) -> None:
    x = clustered(20)
    store = VectorStore(tmp_path / "v", DIM)
    store.add(np.arange(20), x)
    dropped, missing = store.reconcile(np.array([0, 1, 2, 3, 50, 51]))
    assert dropped == 16 and missing.tolist() == [50, 51]
    assert sorted(store.ids().tolist()) == [0, 1, 2, 3]


def test_sample_mean_stats(tmp_path: Path) -> None:
    x = clustered(100)
    store = VectorStore(tmp_path / "v", DIM)
    store.add(np.arange(100), x)
    ids, vecs = store.sample(30, np.random.default_rng(0), exclude_ids=np.arange(50))
    assert len(set(ids.tolist())) == 30 and ids.min() >= 50
    np.testing.assert_array_equal(vecs, as_stored(x[ids]))
    np.testing.assert_allclose(store.mean(), as_stored(x).mean(axis=0), atol=1e-6)
    stats = store.stats()
    assert stats["count"] == 100 and stats["index"] == "flat (exact)"
    assert stats["bytes_on_disk"] >= 100 * DIM * 2


def test_a_top_k_after_a_complete_search_of_the_same_query_is_its_head(tmp_path: Path) -> None:
    x = clustered(3000)
    store = VectorStore(tmp_path / "v", DIM, flat_max=500, nlist=16, nprobe=1)  # IVF: approximate
    store.add(np.arange(3000), x)
    w = (x[7] + x[8]) * 2.0
    exact = np.sort(as_stored(x) @ w)[::-1]
    ids, scores = store.search_linear(w, 0.5, min_score=float(exact[200]) + 0.5)
    top_ids, top_scores = store.search_linear(w, 0.5, k=50)
    assert (top_ids == ids[:50]).all() and np.allclose(top_scores, exact[:50] + 0.5, atol=1e-4)
    # another query, or the same after a vector is added, is searched anew
    best = (w / np.linalg.norm(w)).astype(np.float32)[None]
    store.add(np.array([5000]), best)
    assert store.search_linear(w, 0.5, k=1)[0].tolist() == [5000]
    other = store.search_linear(x[9], 0.0, k=3)[0]
    assert 9 in other.tolist()
