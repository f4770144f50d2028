"""Filtered searches (real SQLite catalog, real FAISS store) against a brute-force filter of a
full scan: every path of finder.store.filtered gives exactly the brute-force answer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from finder.ingest.crawl import FileFact
from finder.store import facts, filtered
from finder.store.catalog import Catalog
from finder.store.facts import Filters
from finder.store.vectors import VectorStore, exact_scores
from tests.store.test_stored_facts import brute, random_facts
from tests.store.test_vectors import DIM, clustered

N = 1500
FILTERS = [
    {"after": "2016"},
    {"camera": "nikon"},
    {"after": "2012", "before": "2020", "camera": "canon"},
    {"near": "20,30", "within_km": 6000},
]


@pytest.fixture(scope="module", params=["flat", "ivf"])
def library(request, tmp_path_factory):
    """A catalog of N ok images with random facts and a store of their vectors (flat or IVF;
    the IVF searches every list, so that its top K is exact too)."""
    tmp = tmp_path_factory.mktemp(request.param)
    root = tmp / "photos"
    for sub in ("a/b", "a/b2"):
        (root / sub).mkdir(parents=True)
    cat = Catalog(tmp / "c.db")
    paths = [str(root / ("a/b", "a/b2")[k % 2] / f"{k}.jpg") for k in range(N)]
    ids = np.asarray(cat.insert_pending([FileFact(p, 1, 1) for p in paths]), dtype=np.int64)
    rng = np.random.default_rng(1)
    rows = {
        int(i): (p, random_facts(rng, k)) for k, (i, p) in enumerate(zip(ids, paths, strict=True))
    }
    cat.record_results([(int(i), None) for i in ids], [], [(i, r[1]) for i, r in rows.items()])
    # the IVF tier keeps every direction, so that its candidate ranking is nearly exact
    kwargs = {"flat_max": 10_000} if request.param == "flat" else {"flat_max": 100, "pca_dim": DIM}
    store = VectorStore(tmp / "v", DIM, nprobe=10_000, rescore=10_000, **kwargs)
    store.add(ids, clustered(N, seed=3))
    store.save_index()
    assert store.index_name().startswith("flat" if request.param == "flat" else "pca")
    yield cat, store, rows, root
    store.close()
    cat.close()


def truth(store, rows, f: Filters, w, b=0.0, exclude=()) -> tuple[np.ndarray, np.ndarray]:
    """Every image scored from the raw vectors, brute-force filtered, best first."""
    ids = np.asarray([i for i in brute(rows, f) if i not in set(exclude)], dtype=np.int64)
    scores = exact_scores(store.get(ids).astype(np.float16), w) + np.float32(b)
    order = np.lexsort((ids, -scores))
    return ids[order], scores[order]


def small_pools(monkeypatch, store: VectorStore, rescore: int, nprobe: int | None = None) -> None:
    """The store's candidate pools made small (fewer rescored, fewer lists probed)."""
    options = dataclasses.replace(store.options, rescore=rescore)
    monkeypatch.setattr(store, "options", options)
    index = store._ensure_index()
    if hasattr(index, "options"):
        monkeypatch.setattr(index, "options", options)
    if nprobe is not None and index.kind == "ivf":
        monkeypatch.setattr(index, "nprobe", nprobe)


def head(seed: int) -> tuple[np.ndarray, float]:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=DIM) * 3).astype(np.float32), -1.0


@pytest.mark.parametrize("few", [True, False], ids=["few-path", "pool-path"])
@pytest.mark.parametrize("kwargs", FILTERS)
def test_threshold_and_top_k_equal_a_brute_force_filter(library, kwargs, few, monkeypatch):
    cat, store, rows, _ = library
    if not few:  # small pools: more photos pass than the query would score
        monkeypatch.setattr(filtered, "FEW_THRESHOLD", 10)
        small_pools(monkeypatch, store, 20)
    f = Filters(**kwargs)
    w, b = head(7)
    want_ids, want_scores = truth(store, rows, f, w, b)
    assert len(want_ids) > 20
    cut = float(np.median(want_scores))  # about half of those that pass
    ids, scores = filtered.search(cat, store, f, w, b, min_score=cut)
    np.testing.assert_array_equal(ids, want_ids[want_scores >= cut])
    np.testing.assert_allclose(scores, want_scores[want_scores >= cut], rtol=1e-6)
    ids, _ = filtered.search(cat, store, f, w, b, k=15)
    np.testing.assert_array_equal(ids, want_ids[:15])
    ids, _ = filtered.search(cat, store, f, w, b, k=5, min_score=cut)
    np.testing.assert_array_equal(ids, want_ids[:5])
    # similar: a stored photo's vector, the photo itself left out
    q_id = int(want_ids[3])
    q = store.get(np.asarray([q_id]))[0]
    want, _ = truth(store, rows, f, q, exclude=(q_id,))
    got, _ = filtered.search(
        cat, store, f, q, k=10, head=False, exclude_ids=np.asarray([q_id], dtype=np.int64)
    )
    np.testing.assert_array_equal(got, want[:10])


@pytest.mark.parametrize("tier", ["flat", "ivf"])
@pytest.mark.parametrize("nprobe", [10_000, 1])
@pytest.mark.parametrize("as_head", [True, False])
def test_a_filter_that_leaves_out_the_best_matches_searches_only_the_passing_ids(
    tmp_path: Path, monkeypatch, tier: str, nprobe: int, as_head: bool
) -> None:
    """500 photos near the query, 100 (in far/) opposite it: the query's candidate pool holds
    none of far/, so the search asks the tier for far/ ids only (every list, or one list then
    every far/ photo scored): the exact answer either way."""
    root = tmp_path / "photos"
    (root / "far").mkdir(parents=True)
    (root / "near").mkdir()
    cat = Catalog(tmp_path / "c.db")
    paths = [str(root / ("far" if k < 100 else "near") / f"{k}.jpg") for k in range(600)]
    ids = np.asarray(cat.insert_pending([FileFact(p, 1, 1) for p in paths]), dtype=np.int64)
    facts_of = [(int(i), random_facts(np.random.default_rng(int(i)), 1)) for i in ids]
    cat.record_results([(int(i), None) for i in ids], [], facts_of)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(600, DIM)) * 0.3
    x[:100, 0] -= 3.0
    x[100:, 0] += 3.0
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    kwargs = {"flat_max": 10_000} if tier == "flat" else {"flat_max": 100, "pca_dim": DIM}
    store = VectorStore(tmp_path / "v", DIM, nprobe=nprobe, rescore=1, **kwargs)
    store.add(ids, x)
    store.save_index()
    monkeypatch.setattr(filtered, "FIRST_CHUNK", 4)
    calls = []
    candidates = store.candidates
    monkeypatch.setattr(
        store, "candidates", lambda *a, **kw: calls.append(kw) or candidates(*a, **kw)
    )
    f = Filters(under=root / "far")
    w = np.zeros(DIM, dtype=np.float32)
    w[0] = 5.0
    k = 8
    got, _ = filtered.search(cat, store, f, w, 0.0, k=k, head=as_head)
    far = ids[:100]
    scores = exact_scores(store.get(far).astype(np.float16), w)
    want = far[np.lexsort((far, -scores))][:k]
    np.testing.assert_array_equal(got, want)
    if store.pool_size(k, head=as_head) < 100:  # not few: the tier, asked for far/ ids only
        assert np.array_equal(calls[-1]["within"], far)
        # a head's pool is large: the walk down it comes first, and runs dry
        assert [("within" in kw) for kw in calls] == ([False, True] if as_head else [True])
    store.close()
    cat.close()


def test_under_a_folder_leaves_out_the_sibling_prefix_folder(library) -> None:
    cat, store, rows, root = library
    w, b = head(5)
    f = Filters(under=root / "a" / "b")
    ids, _ = filtered.search(cat, store, f, w, b, k=N)
    paths = cat.paths_for(ids.tolist())
    assert len(ids) == N // 2
    assert all("/a/b/" in paths[int(i)] for i in ids)


def test_sorting_by_date_keeps_the_answer_and_orders_it(library) -> None:
    cat, store, rows, _ = library
    ids, _ = filtered.search(cat, store, Filters(camera="apple"), *head(2), k=40)
    order = filtered.by_date(cat, ids)
    dated = [facts.dates(cat, [int(i)])[int(i)][:19] for i in ids[order]]
    assert sorted(ids[order].tolist()) == sorted(ids.tolist())
    assert dated == sorted(dated)
