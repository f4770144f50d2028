"""The folds of a cross-validation fitted at once, one thread each (``fit_logistic_many``): the
very fits made one after another, at VGG16 fc1's width too."""

from __future__ import annotations

import numpy as np
import pytest

from finder.learn import fit
from finder.learn.fit import fit_logistic, fit_logistic_many

pytestmark = pytest.mark.skipif(not fit.THREADED, reason="SciPy < 1.15: fitted one by one")


@pytest.fixture
def cores(monkeypatch):
    """Two cores at least, whatever the machine's (one core: fitted one by one)."""
    monkeypatch.setattr(fit, "cpu_count", lambda: 2)


def folds_of(n: int, d: int, seed: int) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """A class of 40 near a centre among n unit rows, and 5 folds leaving 8 of it out each."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    X[:40] += 2.0 * rng.standard_normal(d).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = np.zeros(n)
    y[:40] = 1.0
    fits = []
    for f in range(5):
        sw = np.where(y > 0, 10.0, 1.0)
        sw[8 * f : 8 * (f + 1)] = 0.0
        fits.append((y, sw))
    return X, fits


@pytest.mark.parametrize("d", [64, 4096])
def test_the_fits_made_at_once_are_the_fits_made_one_by_one(d: int, cores) -> None:
    X, fits = folds_of(600, d, seed=d)
    init = fit_logistic(X, fits[0][0], np.ones(len(X)), 0.3)
    for _ in range(2):  # whatever the threads' timing
        together = fit_logistic_many(X, fits, 1.0, init=init)
        assert len(together) == len(fits)
        for (w1, b1), (y, sw) in zip(together, fits, strict=True):
            w2, b2 = fit_logistic(X, y, sw, 1.0, init=init)
            assert np.array_equal(w1, w2) and b1 == b2
    assert len({w.tobytes() for w, _ in together}) == len(fits)  # each fold a head of its own


def test_one_fit_or_none(cores) -> None:
    X, fits = folds_of(200, 32, seed=2)
    assert fit_logistic_many(X, [], 1.0) == []
    ((w, b),) = fit_logistic_many(X, fits[:1], 1.0)
    w1, b1 = fit_logistic(X, *fits[0], 1.0)
    assert np.array_equal(w, w1) and b == b1


def test_a_fit_that_fails_is_the_error(cores) -> None:
    X, fits = folds_of(200, 32, seed=3)
    y, sw = fits[2]
    fits[2] = (y[:-1], sw[:-1])  # weights of another number of rows
    with pytest.raises(ValueError):
        fit_logistic_many(X, fits, 1.0)


def test_a_fit_made_soon_is_the_fit_made_now(cores) -> None:
    X, fits = folds_of(300, 48, seed=4)
    y, sw = fits[1]
    soon = fit.Soon(lambda: fit_logistic(X, y, sw, 1.0))
    w, b = soon.result()
    w1, b1 = fit_logistic(X, y, sw, 1.0)
    assert np.array_equal(w, w1) and b == b1
    failing = fit.Soon(lambda: fit_logistic(X, y[:-1], sw[:-1], 1.0))
    with pytest.raises(ValueError):
        failing.result()


def test_a_head_with_its_fits_in_threads_is_the_head_made_one_fit_at_a_time(monkeypatch) -> None:
    """The first head beside its sizing probe, the count beside the marks' folds: the same
    head, bit for bit, as on one core."""
    from finder.learn.metric import library_metric
    from finder.learn.train import train_head

    rng = np.random.default_rng(7)
    d, n = 96, 1500
    centres = rng.standard_normal((12, d)).astype(np.float32)
    label = rng.integers(0, 12, n)
    X = centres[label] + 1.2 * rng.standard_normal((n, d)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    mine, rest = np.flatnonzero(label == 0), np.flatnonzero(label != 0)
    P, N, B, F = X[mine[:12]], X[rest[:8]], X[rest[8:808]], X[rest[808:1208]]
    metric = library_metric(X)

    def head(cores: int):
        monkeypatch.setattr(fit, "cpu_count", lambda: cores)
        return train_head(P, N, B, metric=metric, fresh=F, strips=True, seed=1)

    one, two = head(1), head(2)
    assert "n_class_marks" in two.params  # the marks' folds ran (beside the count)
    assert np.array_equal(one.w, two.w) and one.b == two.b and one.threshold == two.threshold
    assert one.params == two.params
