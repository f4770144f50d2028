"""The library's metric: learned from neighbours without labels, kept beside the catalog."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from finder.learn.evaluate import average_precision
from finder.learn.metric import MIN_PHOTOS, library_metric, reshrunk, whitener
from finder.learn.train import background_indices, train_head
from finder.library import Library
from tests.conftest import make_photo
from tests.learn.synthetic import _unit
from tests.test_library import _choice


def noisy_classes(n_classes=6, per_class=80, dim=40, seed=0):
    """Classes apart along dims 0..5; photos of one class differ more along dims 30..32 (each
    photo its own light and framing), yet a photo's nearest neighbours are of its class.
    Returns (X, y)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), per_class)
    X = 1.0 + 0.6 * np.eye(dim)[y]
    X[:, 30:33] += rng.standard_normal((len(y), 3))
    X += 0.05 * rng.standard_normal(X.shape)
    return _unit(X), y


def test_the_metric_damps_the_directions_along_which_neighbours_differ():
    X, _ = noisy_classes()
    metric = whitener(X)
    W = metric.W
    assert np.allclose(W, W.T, atol=1e-5)
    w = np.random.default_rng(0).standard_normal(40).astype(np.float32)
    assert np.allclose(metric.back(metric.into(w)), w, atol=1e-3)
    # in the metric: x·W up to a rotation (no inner product changes), weights mapped both ways
    Y = metric.apply(X[:3])
    assert np.allclose(Y @ Y.T, (X[:3] @ W) @ (X[:3] @ W).T, atol=1e-4)
    assert np.allclose(Y @ metric.into(w), X[:3] @ w, atol=1e-4)
    assert np.allclose(X[:3] @ metric.back(w), Y @ w, atol=1e-4)
    noise = np.linalg.norm(np.eye(40)[30:33] @ W, axis=1)
    signal = np.linalg.norm(np.eye(40)[0:6] @ W, axis=1)
    assert noise.max() < 0.8 * signal.min()
    assert np.linalg.norm(X @ W, axis=1).mean() == pytest.approx(1.0, rel=1e-3)


def test_a_head_learned_in_the_metric_ranks_better_and_stays_linear():
    X, y = noisy_classes(seed=1)
    W = library_metric(X)
    assert W is not None
    gains = []
    for cls in range(3):
        rng = np.random.default_rng(cls)
        ex = rng.choice(np.flatnonzero(y == cls), size=5, replace=False)
        bg = background_indices(len(X), ex, rng)
        rest = np.setdiff1d(np.arange(len(X)), ex)
        plain = train_head(X[ex], X[:0], X[bg], seed=cls)
        metric = train_head(X[ex], X[:0], X[bg], seed=cls, metric=W)
        assert metric.params["metric"] and metric.dim == X.shape[1]  # a head on stored vectors
        truth = y[rest] == cls
        gains.append(
            average_precision(truth, metric.logits(X[rest]))
            - average_precision(truth, plain.logits(X[rest]))
        )
    assert min(gains) > 0.2


def test_too_few_photos_have_no_metric():
    X, _ = noisy_classes(per_class=5)
    assert len(X) < MIN_PHOTOS and library_metric(X) is None


def test_the_library_keeps_its_metric_and_mends_a_damaged_one(tmp_path: Path, model_args):
    root = tmp_path / "photos"
    for k, kind in enumerate(("red", "blue", "green")):
        for i in range(20):
            make_photo(root / kind / f"{i}.jpg", kind, seed=100 * k + i)
    with Library(tmp_path / "lib", backbone=_choice(model_args)) as lib:
        lib.index([str(root)])
        lib.learn("red", [str(root / "red" / f"{i}.jpg") for i in range(5)])
        kept = tmp_path / "lib" / "metric.npz"
        assert kept.exists()
        metric = lib.metric()
        assert metric is not None and metric.W.shape == (lib.folder.open_vectors().dim,) * 2
        stamp = kept.stat().st_mtime_ns
        lib.learn("red", [str(root / "red" / "5.jpg")], negatives=[str(root / "blue" / "0.jpg")])
        assert kept.stat().st_mtime_ns == stamp  # read back, not computed again
        kept.write_bytes(b"not a metric")
        again = lib.learn("red", [str(root / "red" / "6.jpg")])
        assert np.allclose(lib.metric().W, metric.W) and again["head"]["params"]["metric"]
        assert kept.stat().st_mtime_ns != stamp
        bad = dict(np.load(kept))
        bad["s"] = np.zeros_like(bad["s"])  # readable, but no metric: computed again
        np.savez(kept, **bad)
        assert np.allclose(lib.metric().W, metric.W)


def test_a_metric_shrunk_otherwise_is_read_back_from_its_scales():
    """``reshrunk``: the scales of the same neighbour covariance shrunk by another amount,
    from a metric's own (``HeadConfig.marks_shrink``), equal those ``whitener`` computes."""
    X, _ = noisy_classes(seed=2)
    m3, m1 = whitener(X, shrink=3.0), whitener(X, shrink=1.0)
    assert m3.shrink == 3.0 and m1.shrink == 1.0
    s1 = m3.s / reshrunk(m3, 1.0)
    assert np.allclose(s1 / s1.mean(), m1.s / m1.s.mean(), rtol=1e-3)
    assert np.allclose(reshrunk(m3, 3.0), 1.0, rtol=1e-4)
    assert not np.allclose(s1 / s1.mean(), m3.s / m3.s.mean(), rtol=1e-2)
