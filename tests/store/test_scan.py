"""A threshold query over most of the library rescored in spans of the raw file
(``finder.store.scan``): the scores and the order the memory-mapped rescoring gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from store_data import DIM, clustered

from finder.store import scan
from finder.store.exact import exact_scores, rescore
from finder.store.vectors import VectorStore


def test_spans_score_as_the_memory_map_does(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(scan, "STEP", 64)  # many blocks from a small store
    x = clustered(3000)
    store = VectorStore(tmp_path / "v", DIM)
    store.add(np.arange(3000), x)
    store.add(np.arange(100, 200), clustered(100, seed=7))  # replaced: dead rows in the log
    store.remove(np.arange(1000, 1400))  # removed: a hole
    store.commit()
    w = np.random.default_rng(0).standard_normal(DIM).astype(np.float32)
    every = np.arange(-5, 3100)  # some ids unknown
    for cand in (every, every[::3], every[every % 7 != 0]):
        for low in (None, -1.0, 0.5):
            got = scan.dense_rescore(store.raw, cand, w, 0.25, min_score=low, threads=True)
            want = rescore(store.raw, cand, w, 0.25, min_score=low, threads=False)
            assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    live = store.ids()
    assert len(live) == 2600 and not np.isin(np.arange(1000, 1400), live).any()
    ids, scores = store.search_linear(w, 0.25)  # every vector, sorted
    truth = exact_scores(store.raw.read_rows(store.raw.lookup(ids)), w) + np.float32(0.25)
    assert sorted(ids.tolist()) == sorted(live.tolist()) and np.array_equal(scores, truth)
    assert (np.diff(scores) <= 0).all()
    low = float(np.median(scores))
    assert scan.dense(store.raw, len(live))
    got = store.search_linear(w, 0.25, min_score=low)
    keep = scores >= low
    assert np.array_equal(got[0], ids[keep]) and np.array_equal(got[1], scores[keep])
    store.close()
