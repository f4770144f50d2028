"""VectorStore: raw float16 vectors + FAISS index, tiers, exact search, crash repair."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from finder.errors import LibraryError
from finder.store.vectors import UnknownVectors, VectorStore, optimal_nlist

DIM = 32


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(12, dim)) * 2.0
    scale = 1.0 / np.arange(1, dim + 1) ** 0.5  # a decaying spectrum, like real embeddings
    return unit(centres[rng.integers(0, 12, n)] + rng.normal(size=(n, dim)) * scale + 3.0)


def as_stored(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float16).astype(np.float32)


def exact_top(x: np.ndarray, ids: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    return ids[np.argsort(-(as_stored(x) @ q), kind="stable")[:k]]


# Small thresholds so a few hundred vectors cross from flat to IVF, and IVF searches every list
# so that results can be compared exactly across tiers.
SMALL = dict(flat_max=200, pca_dim=8, nprobe=10_000, rescore=10_000, compact_min=50)


def test_add_get_has_len_and_replace(tmp_path: Path) -> None:
    x = clustered(50)
    store = VectorStore(tmp_path / "v", DIM)
    store.add(np.arange(50, dtype=np.int64) + 100, x)
    assert len(store) == 50
    np.testing.assert_array_equal(store.get(np.array([103, 100])), as_stored(x[[3, 0]]))
    assert store.has(np.array([100, 7, 149])).tolist() == [True, False, True]
    with pytest.raises(UnknownVectors) as err:
        store.get(np.array([100, 7]))
    assert isinstance(err.value, LibraryError) and "\n" not in str(err.value)
    # Adding an id again replaces its vector.
    store.add(np.array([100]), x[[9]])
    assert len(store) == 50
    np.testing.assert_array_equal(store.get(np.array([100])), as_stored(x[[9]]))
    store.close()
    reopened = VectorStore(tmp_path / "v", DIM)
    assert len(reopened) == 50
    np.testing.assert_array_equal(reopened.get(np.array([100])), as_stored(x[[9]]))
    assert sorted(reopened.ids().tolist()) == list(range(100, 150))


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


def test_compaction_rewrites_raw_files_and_keeps_everything(tmp_path: Path) -> None:
    x = clustered(300, seed=6)
    ids = np.arange(300, dtype=np.int64)
    store = VectorStore(tmp_path / "v", DIM, **SMALL)
    store.add(ids, x)
    store.save_index()
    store.remove(ids[:120])
    store.save_index()  # 120 dead rows of 300 > 25 %: compacted
    files = sorted(p.name for p in (tmp_path / "v").iterdir())
    assert "vectors-1.f16" in files and "vectors-0.f16" not in files
    assert (tmp_path / "v" / "vectors-1.f16").stat().st_size == 180 * DIM * 2
    got, _ = store.search_similar(x[200], 5)
    assert got[0] == 200
    store.close()
    messages: list[str] = []
    reopened = VectorStore(tmp_path / "v", DIM, on_message=messages.append, **SMALL)
    assert len(reopened) == 180 and messages == []
    np.testing.assert_array_equal(reopened.get(ids[120:]), as_stored(x[120:]))


def test_partial_last_row_is_cut_and_stale_index_is_caught_up(tmp_path: Path) -> None:
    x = clustered(500, seed=7)
    ids = np.arange(500, dtype=np.int64)
    d = tmp_path / "v"
    store = VectorStore(d, DIM, **SMALL)
    store.add(ids[:300], x[:300])
    store.save_index()  # the index covers 300 rows
    store.add(ids[300:450], x[300:450])
    store.remove(ids[:10])
    store.add(ids[10:12], x[[400, 401]])  # replaced after the save
    store.commit()
    # Simulate a kill: no save_index, and half a row more on the vector file.
    with open(d / "vectors-0.f16", "ab") as f:
        f.write(b"\x01" * (DIM + 3))
    with open(d / "ids-0.i64", "ab") as f:
        f.write(b"\x02" * 5)
    del store
    messages: list[str] = []
    store = VectorStore(d, DIM, on_message=messages.append, **SMALL)
    assert messages == []  # brought up to date, not rebuilt
    assert len(store) == 440
    assert store.index_name().startswith("pca8,ivf")
    got, _ = store.search_similar(x[401], 3)
    assert set(got[:3].tolist()) >= {11, 401}
    live = np.concatenate([ids[10:450]])
    vecs = as_stored(np.concatenate([x[[400, 401]], x[12:450]]))
    for q in x[[5, 320, 440]]:
        got, _ = store.search_similar(q, 10)
        expect = live[np.argsort(-(vecs @ q), kind="stable")[:10]]
        assert set(got.tolist()) == set(expect.tolist())
    store.add(ids[450:], x[450:])  # the cut row is gone for good and appends line up again
    store.close()
    assert (d / "vectors-0.f16").stat().st_size == (450 + 2 + 50) * DIM * 2


@pytest.mark.parametrize("damage", ["missing", "corrupt", "truncated"])
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


def test_reconcile_drops_strays_and_reports_missing(tmp_path: Path) -> None:
    x = clustered(20)
    store = VectorStore(tmp_path / "v", DIM)
    store.add(np.arange(20), x)
    dropped, missing = store.reconcile(np.array([0, 1, 2, 3, 50, 51]))
    assert dropped == 16 and missing.tolist() == [50, 51]
    assert sorted(store.ids().tolist()) == [0, 1, 2, 3]


def test_duplicate_rows_from_a_kill_keep_the_last(tmp_path: Path) -> None:
    x = clustered(10)
    d = tmp_path / "v"
    store = VectorStore(d, DIM)
    store.add(np.arange(10), x)
    store.close()
    # A kill between appending a replacement and marking the old row dead leaves id 3 twice.
    with open(d / "vectors-0.f16", "ab") as f:
        f.write(x[[8]].astype(np.float16).tobytes())
    with open(d / "ids-0.i64", "ab") as f:
        f.write(np.array([3], dtype=np.int64).tobytes())
    store = VectorStore(d, DIM)
    assert len(store) == 10
    np.testing.assert_array_equal(store.get(np.array([3])), as_stored(x[[8]]))
    dropped, missing = store.reconcile(np.arange(10))
    assert dropped == 1 and len(missing) == 0
    store.close()
    assert len(VectorStore(d, DIM)) == 10


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
    small_flat = VectorStore(tmp_path / "c", 64, memory_budget=10_000)
    small_flat.add(np.arange(400), x)
    assert small_flat.index_name().startswith("pca")  # flat would not fit the budget


CHILD = r"""
import sys, numpy as np
from finder.store.vectors import VectorStore
d, seed = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(seed)
store = VectorStore(d, 32, flat_max=150, pca_dim=8, compact_min=20)
print("ready", flush=True)
while True:
    ids = rng.integers(0, 400, size=int(rng.integers(1, 40)))
    x = rng.normal(size=(len(ids), 32)).astype(np.float32)
    store.add(ids, x / np.linalg.norm(x, axis=1, keepdims=True))
    if rng.random() < 0.3:
        store.remove(rng.integers(0, 400, size=10))
    if rng.random() < 0.2:
        store.commit()
    if rng.random() < 0.1:
        store.save_index()
"""


def test_sigkill_at_random_instants_leaves_a_recoverable_store(tmp_path: Path) -> None:
    d = tmp_path / "v"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    rng = np.random.default_rng(11)
    for round_ in range(6):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(d), str(round_)],
            stdout=subprocess.PIPE,
            env=env,
        )
        assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
        time.sleep(float(rng.uniform(0.05, 0.4)))
        child.send_signal(signal.SIGKILL)
        child.wait()
        store = VectorStore(d, 32, flat_max=150, pca_dim=8, compact_min=20, nprobe=10_000)
        live = store.ids()
        assert len(live) == len(set(live.tolist())) == len(store)
        vecs = store.get(live)
        norms = np.linalg.norm(vecs, axis=1)
        assert np.allclose(norms, 1.0, atol=1e-2)  # no torn rows
        if len(live):
            got, _ = store.search_similar(vecs[0], 5)
            assert got[0] == live[0]
        valid = np.arange(0, 400, 2)
        store.reconcile(valid)
        assert set(store.ids().tolist()) <= set(valid.tolist())
        store.close()
