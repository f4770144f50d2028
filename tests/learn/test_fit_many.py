"""Several logistic fits over the same rows made together (``fit_logistic_many``): the fits
each would be alone, the same whatever the threads' timing, at VGG16 fc1's width too."""

from __future__ import annotations

import numpy as np
import pytest

from finder.learn import fit
from finder.learn.fit import fit_logistic, fit_logistic_many

pytestmark = pytest.mark.skipif(not fit.LOCKSTEP, reason="SciPy < 1.15: fitted one by one")


@pytest.fixture
def lockstep(monkeypatch):
    """In lockstep whatever the rows' size (these are small, to be quick)."""
    monkeypatch.setattr(fit, "LOCKSTEP_BYTES", 0)


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
def test_the_fits_made_together_are_the_fits_made_alone(d: int, lockstep) -> None:
    X, fits = folds_of(600, d, seed=d)
    init = fit_logistic(X, fits[0][0], np.ones(len(X)), 0.3)
    together = fit_logistic_many(X, fits, 1.0, init=init)
    alone = [fit_logistic(X, y, sw, 1.0, init=init) for y, sw in fits]
    assert len(together) == len(fits)
    for (w1, b1), (w2, b2) in zip(together, alone, strict=True):
        z1, z2 = X @ w1 + b1, X @ w2 + b2
        # the products' rounding apart, the same convex problem stopped by the same rule
        assert np.abs(z1 - z2).max() < 0.02 * max(1.0, np.abs(z2).max())
        assert np.corrcoef(z1, z2)[0, 1] > 0.9999
    heads = np.stack([w for w, _ in together])
    assert len({h.tobytes() for h in heads}) == len(fits)  # each fold a head of its own


def test_the_fits_made_together_do_not_depend_on_the_threads_timing(lockstep) -> None:
    X, fits = folds_of(300, 256, seed=1)
    first = fit_logistic_many(X, fits, 1.0)
    for _ in range(3):
        again = fit_logistic_many(X, fits, 1.0)
        for (w1, b1), (w2, b2) in zip(first, again, strict=True):
            assert np.array_equal(w1, w2) and b1 == b2


def test_one_fit_or_none(lockstep) -> None:
    X, fits = folds_of(200, 32, seed=2)
    assert fit_logistic_many(X, [], 1.0) == []
    ((w, b),) = fit_logistic_many(X, fits[:1], 1.0)
    w1, b1 = fit_logistic(X, *fits[0], 1.0)
    assert np.array_equal(w, w1) and b == b1


def test_a_fit_that_fails_stops_them_all_without_a_hang(lockstep) -> None:
    X, fits = folds_of(200, 32, seed=3)
    y, sw = fits[2]
    fits[2] = (y[:-1], sw[:-1])  # weights of another number of rows
    with pytest.raises(ValueError):
        fit_logistic_many(X, fits, 1.0)


def test_rows_that_fit_in_the_cache_are_fitted_one_by_one_exactly() -> None:
    X, fits = folds_of(300, 64, seed=4)  # 77 kB: below LOCKSTEP_BYTES
    together = fit_logistic_many(X, fits, 1.0)
    for (w1, b1), (y, sw) in zip(together, fits, strict=True):
        w2, b2 = fit_logistic(X, y, sw, 1.0)
        assert np.array_equal(w1, w2) and b1 == b2
