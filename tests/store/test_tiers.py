"""Index tiers: flat and IVF, the switch between them, exact and complete answers, the
memory budget, a damaged saved index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from store_data import DIM, SMALL, as_stored, clustered, exact_top, unit

from finder.errors import LibraryError
from finder.store.tiers.ivf import optimal_nlist
from finder.store.vectors import VectorStore


def test_tier_switches_as_library_grows_and_results_stay_the_same(tmp_path: Path) -> None:
    x = clustered(2500, seed=1)
    ids = np.arange(2500, dtype=np.int64) * 3 + 1
    rng = np.random.default_rng(5)
    queries = unit(rng.normal(size=(5, DIM)) + 3.0)
    w = rng.normal(size=DIM).astype(np.float32) * 4

    store = VectorStore(tmp_path / "v", DIM, **SMALL)
    names = []
    for n in (150, 300, 2500):  # flat; IVF with 64 lists; retrained with 256 lists
        start = len(store)
        for i in range(start, n, 50):
            store.add(ids[i : i + 50], x[i : i + 50])
        names.append(store.index_name())
        for q in queries:
            got, scores = store.search_similar(q, 10)
            assert set(got.tolist()) == set(exact_top(x[:n], ids[:n], q, 10).tolist())
            assert np.all(np.diff(scores) <= 0)
        top, _ = store.search_linear(w, 0.5, k=20)
        assert set(top.tolist()) == set(exact_top(x[:n], ids[:n], w, 20).tolist())
    assert names[0] == "flat (exact)"
    assert names[1].startswith("pca8,ivf64,sq8") and names[2].startswith("pca8,ivf256,sq8")


def test_min_score_is_complete_even_with_coarse_projection(tmp_path: Path) -> None:
    # Few probed lists and a tiny candidate pool: top-k is approximate, but a threshold query
    # must still return exactly the vectors an exhaustive scan finds.
    x = clustered(1500, seed=2)
    ids = np.arange(1500, dtype=np.int64)
    store = VectorStore(tmp_path / "v", DIM, flat_max=100, pca_dim=4, nprobe=1, rescore=10)
    store.add(ids, x)
    assert store.index_name().startswith("pca4,")
    rng = np.random.default_rng(3)
    for _ in range(5):
        w = rng.normal(size=DIM).astype(np.float32) * 6
        b = -1.0
        exact = as_stored(x) @ w + b
        for frac in (0.005, 0.05):
            t = float(np.quantile(exact, 1 - frac))
            got, scores = store.search_linear(w, b, min_score=t)
            assert set(got.tolist()) == set(np.flatnonzero(exact >= t).tolist())
            np.testing.assert_allclose(scores, np.sort(exact[exact >= t])[::-1], rtol=1e-5)
            top3, _ = store.search_linear(w, b, k=3, min_score=t)
            assert top3.tolist() == got[:3].tolist()
    everything, scores = store.search_linear(w, b)
    assert len(everything) == 1500 and np.all(np.diff(scores) <= 0)


def test_remove_drops_from_every_tier_and_survives_reopen(tmp_path: Path) -> None:
    x = clustered(400, seed=4)
    ids = np.arange(400, dtype=np.int64)
    q = x[0]
    for flat_max in (1000, 100):  # flat, then IVF
        d = tmp_path / f"v{flat_max}"
        store = VectorStore(d, DIM, **{**SMALL, "flat_max": flat_max})
        store.add(ids, x)
        gone = exact_top(x, ids, q, 30)[:15]
        store.remove(gone)
        assert len(store) == 385 and not store.has(gone).any()
        got, _ = store.search_similar(q, 50)
        assert not set(got.tolist()) & set(gone.tolist())
        w = q * 10
        above, _ = store.search_linear(w, 0.0, min_score=0.0)
        assert not set(above.tolist()) & set(gone.tolist()) and len(above) == 385
        store.close()
        reopened = VectorStore(d, DIM, **{**SMALL, "flat_max": flat_max})
        got, _ = reopened.search_similar(q, 50)
        assert not set(got.tolist()) & set(gone.tolist())
        keep = ~np.isin(ids, gone)
        assert set(got.tolist()) == set(exact_top(x[keep], ids[keep], q, 50).tolist())
        reopened.close()


@pytest.mark.parametrize(
    "damage", ["missing", "corrupt", "truncated", "no index.json", "garbage index.json", "no npz"]
)
def test_damaged_index_file_is_rebuilt_with_a_message(tmp_path: Path, damage: str) -> None:
    x = clustered(400, seed=8)
    ids = np.arange(400, dtype=np.int64)
    d = tmp_path / "v"
    store = VectorStore(d, DIM, **SMALL)
    store.add(ids, x)
    store.close()
    (faiss_file,) = d.glob("index-*.faiss")
    if damage == "missing":
        faiss_file.unlink()
    elif damage == "no index.json":
        (d / "index.json").unlink()
    elif damage == "garbage index.json":
        (d / "index.json").write_bytes(b'{"tier": "hnsw", "x": [')
    elif damage == "no npz":
        faiss_file.with_suffix(".npz").unlink()
    elif damage == "corrupt":
        data = bytearray(faiss_file.read_bytes())
        data[len(data) // 2] ^= 0xFF
        faiss_file.write_bytes(bytes(data))
    else:
        with open(faiss_file, "r+b") as f:
            f.truncate(100)
    messages: list[str] = []
    store = VectorStore(d, DIM, on_message=messages.append, **SMALL)
    got, _ = store.search_similar(x[7], 5)
    assert got[0] == 7
    assert messages == ["search index was missing or damaged; rebuilt from 400 stored vectors"]
    store.close()
    messages.clear()
    VectorStore(d, DIM, on_message=messages.append, **SMALL).search_similar(x[7], 5)
    assert messages == []


def test_nlist_follows_autofaiss_rule() -> None:
    assert optimal_nlist(1_000_000) == 4096
    assert optimal_nlist(100_000) == 1024
    assert optimal_nlist(10) == 16


def test_memory_budget_shrinks_the_projection(tmp_path: Path) -> None:
    x = clustered(400, dim=64)
    roomy = VectorStore(tmp_path / "a", 64, flat_max=100)
    tight = VectorStore(tmp_path / "b", 64, flat_max=100, memory_budget=400 * 40)
    for store in (roomy, tight):
        store.add(np.arange(400), x)
    assert roomy.index_name().startswith("pca64,")
    assert tight.index_name().startswith("pca22,")  # 40 bytes a vector: 40/1.25 - 8 - 2 = 22
    over = VectorStore(tmp_path / "c", 64, memory_budget=10_000)
    over.add(np.arange(2500), clustered(2500, dim=64))
    assert over.index_name().startswith("pca")  # flat would not fit the budget
    small = VectorStore(tmp_path / "d", 64, memory_budget=10_000)
    small.add(np.arange(400), x)
    assert small.index_name() == "flat (exact)"  # too small to search approximately


def test_a_tiny_library_stays_exact_whatever_the_budget(tmp_path: Path) -> None:
    # Issue 15: on 40 photos `--memory-budget 20KB` picked an IVF index that returned 3 of 10
    # neighbours and missed the nearest.
    x = clustered(40, dim=1024, seed=9)
    ids = np.arange(40, dtype=np.int64)
    store = VectorStore(tmp_path / "v", 1024, memory_budget=20 * 1024)
    store.add(ids, x)
    assert store.index_name() == "flat (exact)"
    for q in range(0, 40, 7):
        got, _ = store.search_similar(x[q], 10, exclude_ids=ids[[q]])
        keep = ids != q
        expect = exact_top(x[keep], ids[keep], x[q], 10)
        assert got[0] == expect[0] and set(got.tolist()) == set(expect.tolist())
    store.close()
    with pytest.raises(LibraryError, match="negative"):
        VectorStore(tmp_path / "v", 1024, memory_budget=-5 * 2**30)
