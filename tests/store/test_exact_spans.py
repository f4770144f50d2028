"""Exact scores read in place from the raw file's mapping (``RawLog.span``) or copied out row by
row (``RawLog.read_rows``): the same scores, and a complete threshold search through either."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from store_data import DIM, clustered

from finder.store.exact import exact_scores, rescore, scores_of_rows
from finder.store.vectors import VectorStore


@pytest.fixture
def store(tmp_path: Path):
    s = VectorStore(tmp_path / "v", DIM)
    s.add(np.arange(3000, dtype=np.int64) + 10, clustered(3000, seed=4))
    s.remove(np.array([12, 500, 501, 502, 2999]))  # dead rows inside the spans
    s.commit()
    yield s
    s.close()


def test_span_is_the_rows_read_one_by_one(store) -> None:
    raw = store.raw
    np.testing.assert_array_equal(raw.span(5, 70), raw.read_rows(np.arange(5, 70)))
    assert raw.span(9, 9).shape == (0, DIM)
    with pytest.raises(IndexError):
        raw.span(0, raw.n + 1)


@pytest.mark.parametrize(
    "rows",
    [
        np.arange(100, 1100),  # contiguous: one span
        np.arange(0, 3000, 2),  # half the span: scored in place, every other kept
        np.array([1, 2, 700, 2500]),  # sparse: copied out
        np.array([42]),
        np.zeros(0, dtype=np.int64),
    ],
)
def test_scores_of_rows_in_place_or_copied_are_the_same(store, rows) -> None:
    w = np.random.default_rng(1).standard_normal(DIM).astype(np.float32)
    got = scores_of_rows(store.raw, rows, w)
    want = exact_scores(store.raw.read_rows(rows), w)
    assert got.dtype == np.float32 and np.array_equal(got, want)


def test_a_threshold_search_that_reads_everything_is_exact_and_complete(store) -> None:
    w = np.random.default_rng(2).standard_normal(DIM).astype(np.float32)
    live = store.raw.live_rows()
    truth = exact_scores(store.raw.read_rows(live), w) + np.float32(0.25)
    low = float(np.quantile(truth, 0.1))  # nearly every vector above it
    ids, scores = rescore(store.raw, store.ids(), w, 0.25, min_score=low)
    keep = truth >= np.float32(low)
    assert sorted(ids.tolist()) == sorted(store.raw.ids_of(live[keep]).tolist())
    by_id = dict(zip(store.raw.ids_of(live).tolist(), truth.tolist(), strict=True))
    assert np.array_equal(scores, np.asarray([by_id[i] for i in ids.tolist()], np.float32))
    assert np.all(np.diff(scores) <= 0)
