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
