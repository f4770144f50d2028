"""The background a class is learned against: drawn from one seeded permutation, kept in a Pool
whose precomputed parts give the same head as computing everything again."""

from __future__ import annotations

import numpy as np

from finder.learn.background import (
    Pool,
    draw,
    graph_neighbours,
    nearest,
    permutation,
    unit_rows,
)
from finder.learn.metric import library_metric
from finder.learn.train import knn_diffusion, train_head
from finder.teach_inputs import FILED_HEAD as FILED
from tests.learn.synthetic import library


def test_draw_excepts_the_marks_and_keeps_fresh_apart_and_follows_the_seed():
    perm = permutation(5000, seed=3)
    exclude = np.arange(0, 5000, 7)
    bg, fresh, ranks = draw(perm, exclude, 300)
    assert len(bg) == len(fresh) == 300 and len(set(bg)) == 300 and len(set(fresh)) == 300
    assert not set(bg) & set(exclude) and not set(fresh) & set(exclude)
    assert not set(bg) & set(fresh)
    assert (perm[ranks] == bg).all()
    again, _, _ = draw(permutation(5000, seed=3), exclude, 300)
    other, _, _ = draw(permutation(5000, seed=4), exclude, 300)
    assert (again == bg).all() and len(set(other) & set(bg)) < 100
    # a mark more changes the sample by that photo only
    more, _, _ = draw(perm, np.concatenate([exclude, bg[:1]]), 300)
    assert set(bg) - set(more) == {bg[0]} and len(set(more) - set(bg)) == 1
    # a small library: every photo not excepted, nothing left for a fresh sample
    bg, fresh, _ = draw(permutation(30, seed=0), np.array([1, 2]), 100)
    assert sorted(bg) == sorted(set(range(30)) - {1, 2}) and len(fresh) == 0


def test_known_neighbours_give_the_same_graph_as_comparing_all_with_all():
    X, _ = library(n_classes=6, per_class=60, dim=32, spread=0.3, seed=1)
    pool = Pool(len(X), 0, lambda rows: X[rows], None, size=200, margin=100)
    marks = pool.perm[:300:3]  # a third of the candidates excepted: some rows lose neighbours
    bg, _, B, _, prepared = pool.draw(marks)
    known = prepared.neighbours("library", 5)
    assert known is not None and (known[0][:, 4] < 0).sum() == 0
    V = np.concatenate([X[marks[:20]], B])
    full_nbr, full_vals = graph_neighbours(V, 5)
    nbr, vals = graph_neighbours(V, 5, known)
    assert (np.sort(nbr, 1) == np.sort(full_nbr, 1)).all()
    np.testing.assert_allclose(np.sort(vals, 1), np.sort(full_vals, 1), atol=1e-5)
    short = known[0].copy(), known[1].copy()  # rows left with fewer than 5: computed in full
    short[0][::7, 2:], short[1][::7, 2:] = -1, -np.inf
    nbr, _ = graph_neighbours(V, 5, short)
    assert (np.sort(nbr, 1) == np.sort(full_nbr, 1)).all()
    seeds = np.arange(5)
    np.testing.assert_allclose(
        knn_diffusion(V, seeds, known=known), knn_diffusion(V, seeds), atol=1e-6
    )
    assert (nearest(B, 5)[0] >= 0).all()


def test_a_pool_gives_the_head_trained_from_scratch():
    X, y = library(n_classes=8, per_class=150, dim=48, spread=0.35, seed=2)
    metric = library_metric(X)
    reads = []

    def read(rows):
        reads.append(len(rows))
        return X[rows]

    pool = Pool(len(X), 0, read, metric, size=400, margin=100)
    assert reads == [len(X[:900])]  # read once: 2 x size + margin
    pos = np.flatnonzero(y == 0)[:8]
    neg = np.flatnonzero(y == 1)[:4]
    bg, fresh, B, F, prepared = pool.draw(np.concatenate([pos, neg]))
    assert (B == X[bg]).all() and (F == X[fresh]).all()
    assert not set(bg) & {*pos, *neg} and not set(fresh) & {*pos, *neg, *bg}
    cold = train_head(X[pos], X[neg], B, metric=metric, fresh=F)
    warm = train_head(X[pos], X[neg], B, metric=metric, fresh=F, prepared=prepared)
    np.testing.assert_allclose(warm.logits(X), cold.logits(X), atol=1e-3)
    assert abs(warm.threshold - cold.threshold) < 1e-3
    # another class of the same pool reads nothing more
    pool.draw(np.flatnonzero(y == 2)[:5])
    assert len(reads) == 1


def test_a_pool_reads_what_lies_past_it_and_still_trains_right():
    X, y = library(n_classes=4, per_class=100, dim=24, spread=0.3, seed=3)
    pool = Pool(len(X), 1, lambda rows: X[rows], None, size=100, margin=10)
    many = pool.perm[:150]  # more excepted than the pool's margin: read from the library
    bg, fresh, B, F, prepared = pool.draw(many)
    assert not set(bg) & set(many) and len(bg) == len(fresh) == 100
    assert (B == X[bg]).all() and (F == X[fresh]).all()
    known = prepared.neighbours("library", 5)  # past its candidates: added to its universe
    assert known is not None
    V = np.concatenate([X[many[:10]], B])
    full_nbr, _ = graph_neighbours(V, 5)
    assert (np.sort(graph_neighbours(V, 5, known)[0], 1) == np.sort(full_nbr, 1)).all()
    head = train_head(X[y == 0][:5], X[:0], B, fresh=F, prepared=prepared)
    assert head.logits(X[y == 0]).mean() > head.logits(X[y != 0]).mean()


def test_a_filed_class_s_counter_examples_come_prepared_and_give_the_same_head():
    """The siblings' filed photos a filed class is trained against are put in the metric and in
    the graph by the pool (once for every class drawing them): the head is the one trained from
    scratch, and a second class drawing mostly the same counter-examples grows the pool's
    universe by the few it lacks."""
    X, y = library(n_classes=10, per_class=120, dim=40, spread=0.35, seed=4)
    metric = library_metric(X)
    pool = Pool(len(X), 0, lambda rows: X[rows], metric, size=300, margin=60)
    heads = {}
    for c in (0, 1):
        pos = np.flatnonzero(y == c)[:30]
        counter = np.flatnonzero((y != c) & (y < 6))[:200]  # its siblings' photos
        bg, fresh, B, F, prepared = pool.draw(np.concatenate([pos, counter]), counter)
        np.testing.assert_allclose(prepared.counter_rows(), metric.apply(X[counter]), atol=1e-5)
        np.testing.assert_allclose(prepared.metric_rows(), metric.apply(B), atol=1e-5)
        before = len(prepared.universe.places)
        cold = train_head(X[pos], X[counter], B, metric=metric, fresh=F, config=FILED)
        warm = train_head(
            X[pos], X[counter], B, metric=metric, fresh=F, config=FILED, prepared=prepared
        )
        np.testing.assert_allclose(warm.logits(X), cold.logits(X), atol=1e-3)
        assert abs(warm.threshold - cold.threshold) < 1e-3
        heads[c] = prepared.universe
        assert before > pool.candidates
    # the second class's counter-examples were mostly the first's: grown by the others, kept
    assert set(heads[0].places) < set(heads[1].places)
    assert len(heads[1].places) - len(heads[0].places) <= 130
    # the graph of the grown universe is the one computed from scratch
    u = pool._universe
    idx, sims = u.graphs["metric"]
    full_idx, full_sims = nearest(unit_rows(u.rows), idx.shape[1])
    np.testing.assert_allclose(sims, full_sims, atol=1e-5)
    assert (np.sort(idx[:, :5], 1) == np.sort(full_idx[:, :5], 1)).mean() > 0.99  # ties aside


def test_a_universe_past_its_bound_starts_again_from_the_candidates():
    X, y = library(n_classes=8, per_class=100, dim=24, spread=0.3, seed=5)
    pool = Pool(len(X), 0, lambda rows: X[rows], None, size=100, margin=20, extra=150)
    first = np.flatnonzero(y == 1)[:100]
    pool.draw(first, first)
    grown = len(pool._universe.places) - pool.candidates
    assert grown >= len(set(first) - set(pool.perm[: pool.candidates]))
    other = np.flatnonzero(y == 5)[:100]  # another part of the library: started again
    _, _, B, _, prepared = pool.draw(other, other)
    assert set(prepared.universe.places) >= set(pool._where[other])
    assert len(prepared.universe.places) - pool.candidates <= 150 < grown + 80
    known = prepared.neighbours("library", 5, counter=True)
    V = np.concatenate([X[other], B])
    full, _ = graph_neighbours(V, 5)
    got, _ = graph_neighbours(V, 5, (np.arange(len(V)), *known))
    assert (np.sort(got, 1) == np.sort(full, 1)).all()


def test_known_rows_anywhere_give_the_same_graph():
    X, _ = library(n_classes=5, per_class=50, dim=16, spread=0.3, seed=6)
    full_nbr, full_vals = graph_neighbours(X, 4)
    rows = np.arange(40, 250)  # the first 40 computed in full, the rest known among themselves
    idx, sims = nearest(X[rows], 8)
    nbr, vals = graph_neighbours(X, 4, (rows, idx, sims))
    assert (np.sort(nbr, 1) == np.sort(full_nbr, 1)).all()
    np.testing.assert_allclose(np.sort(vals, 1), np.sort(full_vals, 1), atol=1e-6)
