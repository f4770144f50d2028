"""The experiment-only head options of scripts/heads_variants.py (docs/heads.md's rows)."""

from __future__ import annotations

import numpy as np
import pytest

from scripts.heads_variants import VariantConfig, augment, train_variant
from tests.learn.synthetic import library, split


def test_database_side_augmentation_keeps_unit_rows_and_one_neighbour_is_identity():
    X, _ = library(n_classes=3, per_class=10, seed=5)
    assert np.allclose(augment(X, 1), X, atol=1e-6)
    Z = augment(X, 4)
    assert Z.shape == X.shape
    assert np.allclose(np.linalg.norm(Z, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "options",
    [
        {"dba": 5, "knn": 10},
        {"refine_rediffuse": True},
        {"refine_mix": 1.0},
        {"count_quantile": 0.75, "count_factor": 1.0},
    ],
    ids=["dba", "rediffuse", "refine-mix", "count-quantile"],
)
def test_experimental_ranking_options_still_separate_clusters(options):
    """Training-time options of issue 6's second round (not the default) keep a linear head
    that ranks a well-separated class first."""
    X, y = library()
    ex, bg = split(X, y)
    head = train_variant(X[ex], X[:0], X[bg], config=VariantConfig(**options))
    z = head.logits(X)
    assert z[y == 0].min() > z[y != 0].max()
