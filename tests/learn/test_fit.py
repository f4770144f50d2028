"""Several logistic regressions fitted as one problem give each one's own fit."""

from __future__ import annotations

import numpy as np

from finder.learn.fit import balanced, fit_many
from finder.learn.train import fit_weighted
from tests.learn.synthetic import library


def test_folds_fitted_together_are_the_folds_fitted_one_by_one():
    X, y = library(n_classes=4, per_class=60, dim=24, spread=0.4, seed=5)
    is_pos = y == 0
    weight = np.where(is_pos, 1.0, 3.0)
    folds = np.arange(len(X)) % 4
    keeps = [folds != f for f in range(4)]
    together = fit_many(X, is_pos, [balanced(is_pos, weight, k) for k in keeps], C=0.5)
    for keep, (w, b) in zip(keeps, together, strict=True):
        P, N = X[keep & is_pos], X[keep & ~is_pos]
        w1, b1 = fit_weighted(P, weight[keep & is_pos], N, weight[keep & ~is_pos], 0.5)
        np.testing.assert_allclose(X @ w + b, X @ w1 + b1, atol=5e-3)
    # a fold that leaves rows out is not the fit with them
    ((w_all, b_all),) = fit_many(X, is_pos, [balanced(is_pos, weight, np.ones(len(X), bool))], 0.5)
    assert np.abs((X @ w_all + b_all) - (X @ together[0][0] + together[0][1])).max() > 1e-2
