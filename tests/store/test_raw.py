"""The raw log under the VectorStore: rows, ids, tombstones, compaction, crash repair."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from store_data import DIM, SMALL, as_stored, clustered

from finder.errors import LibraryError
from finder.store.vectors import UnknownVectors, VectorStore


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
        assert store.damage is None  # what a kill leaves is repaired, never taken for damage
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


def _five_batches(d: Path) -> tuple[np.ndarray, np.ndarray]:
    """A store of 100 vectors appended in five batches of 20 (ids 1000-1099)."""
    x = clustered(100, seed=12)
    ids = np.arange(100, dtype=np.int64) + 1000
    store = VectorStore(d, DIM)
    for b in range(5):
        store.add(ids[20 * b : 20 * b + 20], x[20 * b : 20 * b + 20])
    store.close()
    return ids, x


def _damage(d: Path, how: str) -> None:
    vec, ids = d / "vectors-0.f16", d / "ids-0.i64"
    if how == "truncated vectors":
        os.truncate(vec, vec.stat().st_size // 2)
    elif how == "truncated ids":
        os.truncate(ids, ids.stat().st_size // 2)
    elif how == "garbage ids":
        ids.write_bytes(np.random.default_rng(0).bytes(ids.stat().st_size))
    elif how == "garbage in one batch of ids":
        with open(ids, "r+b") as f:
            f.seek(40 * 8 + 16)  # inside the third batch (rows 40-59)
            f.write(b"\xff" * 8)
    elif how == "deleted vectors":
        vec.unlink()
    elif how == "deleted ids":
        ids.unlink()


LOST = {  # the rows each damage loses
    "truncated vectors": slice(50, 100),
    "truncated ids": slice(50, 100),
    "garbage ids": slice(0, 100),
    "garbage in one batch of ids": slice(40, 60),
    "deleted vectors": slice(0, 100),
    "deleted ids": slice(0, 100),
}


@pytest.mark.parametrize("how", list(LOST))
def test_damage_found_at_open_drops_exactly_the_rows_lost(tmp_path: Path, how: str) -> None:
    d = tmp_path / "v"
    ids, x = _five_batches(d)
    _damage(d, how)
    lost = ids[LOST[how]]
    kept = np.setdiff1d(ids, lost)
    store = VectorStore(d, DIM)
    assert store.damage is not None and "\n" not in store.damage
    dropped, missing = store.reconcile(ids)
    assert dropped == 0 and missing.tolist() == lost.tolist()
    assert sorted(store.ids().tolist()) == kept.tolist()
    if len(kept):
        np.testing.assert_array_equal(store.get(kept), as_stored(x[kept - 1000]))
        got, _ = store.search_similar(x[kept[0] - 1000], 1)
        assert got.tolist() == [kept[0]]
    store.add(lost, x[lost - 1000])  # the next index run embeds them again
    store.close()
    # Repaired for good: a fresh generation, found sound at the next open.
    assert not (d / "vectors-0.f16").exists() and (d / "vectors-1.f16").exists()
    store = VectorStore(d, DIM)
    assert store.damage is None and len(store) == 100
    np.testing.assert_array_equal(store.get(ids), as_stored(x))
    assert store.check() == []


def test_a_reader_sees_the_damage_and_writes_nothing(tmp_path: Path) -> None:
    d = tmp_path / "v"
    ids, _ = _five_batches(d)
    _damage(d, "garbage in one batch of ids")
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    store = VectorStore(d, DIM, read_only=True)
    assert store.damage is not None and len(store) == 80
    assert VectorStore.inspect(d, DIM) == store.damage
    store.close()
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before


def test_check_reads_the_vectors_checksums(tmp_path: Path) -> None:
    d = tmp_path / "v"
    _five_batches(d)
    assert VectorStore(d, DIM).check() == []
    with open(d / "vectors-0.f16", "r+b") as f:
        f.seek(70 * DIM * 2)  # a garbage row, same size: not seen at open, seen by check
        f.write(np.random.default_rng(1).bytes(DIM * 2))
    store = VectorStore(d, DIM)
    assert store.damage is None
    assert store.check() == ["20 vectors fail their checksum"]


def test_a_store_without_checksums_gets_them(tmp_path: Path) -> None:
    # A store written before checksums existed (or rows a kill left unrecorded) is trusted and
    # recorded at the next write, so that later damage is found.
    d = tmp_path / "v"
    ids, x = _five_batches(d)
    (d / "sums-0.i64").unlink()
    store = VectorStore(d, DIM)
    assert store.damage is None and len(store) == 100
    store.add(np.array([5000]), x[:1])
    store.close()
    _damage(d, "truncated ids")
    store = VectorStore(d, DIM)
    assert store.damage is not None and len(store) == 50


def test_files_of_other_generations_are_removed_at_open(tmp_path: Path) -> None:
    d = tmp_path / "v"
    ids, x = _five_batches(d)
    old = {p.name: p.read_bytes() for p in d.glob("*-0.*")}
    store = VectorStore(d, DIM, compact_min=10)
    store.remove(ids[:40])
    store.save_index()  # compacted: generation 1
    store.close()
    # A kill right after the switch leaves generation 0; one before it leaves generation 2.
    for name, data in old.items():
        (d / name).write_bytes(data)
    (d / "vectors-2.f16").write_bytes(b"\0" * 64)
    reader = VectorStore(d, DIM, read_only=True)
    assert len(reader) == 60 and (d / "vectors-0.f16").exists()  # readers never delete
    reader.close()
    store = VectorStore(d, DIM)
    assert len(store) == 60 and store.damage is None
    assert sorted(p.name for p in d.glob("*-*.*") if not p.name.startswith("index-")) == [
        "dead-1.i64",
        "ids-1.i64",
        "sums-1.i64",
        "vectors-1.f16",
    ]
    np.testing.assert_array_equal(store.get(ids[40:]), as_stored(x[40:]))
