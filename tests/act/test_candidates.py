"""Candidate pairs for near-duplicates: the index way (IVF lists joined on codes, exact cosines
after) against the exact way (every pair), on a real VectorStore with planted pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from finder.act import candidates
from finder.store.vectors import VectorStore

DIM = 64
N = 3000
T = 0.8


def relu_unit(h: np.ndarray) -> np.ndarray:
    x = np.maximum(h, 0)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def planted_library(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """N non-negative unit vectors in 60 clusters (after a ReLU, as CNN features are), of
    which 100 are copies of another (30 of them moved far enough to fall below ``T``).
    Returns the vectors and the planted (original, copy) pairs."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(60, DIM))
    h = centres[rng.integers(0, 60, N)] + rng.normal(size=(N, DIM))
    copies = rng.choice(np.arange(N // 2, N), size=100, replace=False)
    originals = rng.integers(0, N // 2, 100)
    tau = np.concatenate([rng.uniform(0.05, 0.8, 70), rng.uniform(2.2, 3.0, 30)])
    h[copies] = h[originals] + tau[:, None] * rng.normal(size=(100, DIM))
    return relu_unit(h), np.stack([originals, copies], 1)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    """A store of the planted library with an IVF tier (saved, as `finder index` leaves it)."""
    d = tmp_path_factory.mktemp("pairs") / "v"
    x, pairs = planted_library()
    with VectorStore(d, DIM, flat_max=100, pca_dim=30) as store:
        store.add(np.arange(N, dtype=np.int64), x)
        store.commit()
        store.save_index()
    return d, x, pairs


def brute(x: np.ndarray, within: np.ndarray | None = None) -> set[tuple[int, int]]:
    """Every pair (a < b) at or above T, from the float16-rounded vectors (as stored)."""
    x16 = x.astype(np.float16).astype(np.float32)
    a, b = np.nonzero(np.triu(x16 @ x16.T, k=1) >= T)
    found = set(zip(a.tolist(), b.tolist(), strict=True))
    if within is not None:
        keep = set(within.tolist())
        found = {p for p in found if p[0] in keep or p[1] in keep}
    return found


def as_set(p: candidates.Pairs) -> set[tuple[int, int]]:
    return set(zip(p.a.tolist(), p.b.tolist(), strict=True))


def test_exact_way_finds_every_pair_and_only_those(planted) -> None:
    d, x, pairs = planted
    store = VectorStore(d, DIM, read_only=True)
    found = candidates.exact_pairs(store, np.arange(N), T)
    assert as_set(found) == brute(x)
    assert (found.a < found.b).all()
    # the planted copies that stay close are all there; those moved far are not
    close = {tuple(sorted(p)) for p in pairs[:70].tolist()}
    far = {tuple(sorted(p)) for p in pairs[70:].tolist()}
    assert close <= as_set(found) and not far & as_set(found)
    x16 = x.astype(np.float16).astype(np.float32)
    assert np.allclose(found.cosine, np.einsum("ij,ij->i", x16[found.a], x16[found.b]), atol=1e-4)


def test_index_way_gives_the_exact_pairs(planted) -> None:
    d, x, pairs = planted
    store = VectorStore(d, DIM, read_only=True)
    assert "ivf" in store.index_name()
    exact = candidates.exact_pairs(store, np.arange(N), T)
    # Every list joined with every other: the code bound is complete, so nothing is missed.
    every = candidates.index_pairs(store, np.arange(N), T, probes=10_000)
    assert as_set(every) == as_set(exact)
    assert np.allclose(every.cosine, exact.cosine, atol=1e-5)
    # The default: a few neighbouring lists. Never a pair the exact way does not give, and
    # the planted copies are found.
    near = candidates.index_pairs(store, np.arange(N), T)
    assert as_set(near) <= as_set(exact)
    assert len(near) >= 0.95 * len(exact)
    close = {tuple(sorted(p)) for p in pairs[:70].tolist()}
    assert close <= as_set(near)


def test_within_keeps_the_pairs_touching_those_ids(planted) -> None:
    d, x, _ = planted
    store = VectorStore(d, DIM, read_only=True)
    within = np.sort(np.random.default_rng(1).choice(N, size=300, replace=False))
    want = brute(x, within)
    assert as_set(candidates.exact_pairs(store, np.arange(N), T, within=within)) == want
    index = candidates.index_pairs(store, np.arange(N), T, within=within, probes=10_000)
    assert as_set(index) == want
    # only pairs among the ids given
    some = np.arange(0, N, 2)
    got = candidates.index_pairs(store, some, T, within=within, probes=10_000)
    assert as_set(got) == {p for p in want if p[0] % 2 == 0 and p[1] % 2 == 0}


def test_near_pairs_picks_exact_for_small_libraries_and_flat_tiers(planted, tmp_path: Path) -> None:
    d, x, _ = planted
    store = VectorStore(d, DIM, read_only=True)
    everything = np.arange(N)
    exact = as_set(candidates.exact_pairs(store, everything, T))
    # forced through the index (every list joined, so the answer is the same)
    forced = candidates.near_pairs(store, everything, T, exact_below=0)
    assert as_set(forced) <= exact and len(forced) >= 0.95 * len(exact)
    assert as_set(candidates.near_pairs(store, everything, T, exact_below=N)) == exact
    # A store searched exactly (its flat tier) has no index to join: the exact way.
    with VectorStore(tmp_path / "flat", DIM) as flat:
        flat.add(everything.astype(np.int64), x)
        assert candidates.index_pairs(flat, everything, T) is None
        assert as_set(candidates.near_pairs(flat, everything, T, exact_below=0)) == exact
