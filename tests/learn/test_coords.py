"""A class's fits on its rows' coordinates in a basis of their span (finder.learn.coords): the
same inner products, the same heads but for rounding, on rows narrower than the vectors."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from finder.learn.background import Pool
from finder.learn.coords import other_coordinates
from finder.learn.fit import Problem
from finder.learn.metric import library_metric
from finder.learn.train import DEFAULT_CONFIG, train_head
from tests.learn.synthetic import library


def test_rows_beyond_a_basis_keep_their_inner_products_and_weights_map_back():
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.standard_normal((64, 20)))
    inside = rng.standard_normal((4, 20)) @ Q.T  # in the basis's span: nothing beyond it
    M = np.concatenate([rng.standard_normal((6, 64)), inside]).astype(np.float32)
    C, coords = other_coordinates(M, Q.astype(np.float32))
    assert coords.width == 20 + 6  # the rows in the span add no direction
    np.testing.assert_allclose(C @ C.T, M @ M.T, atol=1e-4)
    a = rng.standard_normal(coords.width).astype(np.float32)
    w = coords.to_metric(a)
    np.testing.assert_allclose(M @ w, C @ a, atol=1e-4)  # the same logits
    np.testing.assert_allclose(w @ w, a @ a, rtol=1e-4)  # the same penalty


def test_a_pool_basis_gives_the_candidates_in_order():
    X, _ = library(n_classes=6, per_class=60, dim=96, spread=0.3, seed=1)
    metric = library_metric(X)
    pool = Pool(len(X), 0, lambda rows: X[rows], metric, size=40, margin=200)
    pool.draw(np.arange(3))
    Q, Rt = pool.basis()
    assert pool.in_basis == 60 and Q.shape == (96, 60) and Rt.shape == (60, 60)
    np.testing.assert_allclose(Q.T @ Q, np.eye(60), atol=1e-5)
    rows = metric.apply(X[pool.perm[:60]])
    np.testing.assert_allclose(Rt @ Q.T, rows, atol=1e-4)
    assert not np.triu(Rt, 1).any()  # the candidate at place p: the first p + 1 vectors


def test_a_head_on_coordinates_is_the_head_on_the_rows():
    X, y = library(n_classes=6, per_class=60, dim=128, spread=0.3, seed=2)
    metric = library_metric(X)
    pool = Pool(len(X), 0, lambda rows: X[rows], metric, size=60, margin=30)
    pos = np.flatnonzero(y == 0)[:8]
    neg = np.flatnonzero(y == 1)[:4]
    _, _, B, F, prepared = pool.draw(np.concatenate([pos, neg]))
    pb = Problem.checked(X[pos], X[neg], B)
    narrow = pb.in_metric(metric, "metric", prepared, 5, coords=0.75)
    assert narrow.coords is not None and narrow.rows().shape[1] < 128  # 60 + 12 at most
    assert pb.in_metric(metric, "metric", prepared, 5, coords=0.0).coords is None
    heads = [
        train_head(X[pos], X[neg], B, fresh=F, metric=metric, prepared=prepared, config=c)
        for c in (replace(DEFAULT_CONFIG, coords=0.0), DEFAULT_CONFIG)
    ]
    z0, z1 = (X @ h.w + h.b for h in heads)
    assert np.abs(z0 - z1).max() < 0.01 and abs(z0).max() > 1.0
    assert abs(heads[0].threshold - heads[1].threshold) < 0.01
