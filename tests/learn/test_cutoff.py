"""The cut-off rules."""

from __future__ import annotations

import numpy as np
import pytest

from finder.learn.cutoff import CutConfig
from finder.learn.train import HeadConfig, train_head
from tests.learn.synthetic import _unit, split


def test_size_logit_cut_is_higher_for_a_small_class_than_for_a_large_one():
    """The "size-logit" rule moves the cut against the estimated class size: a class that takes
    a tenth of the library is cut lower than the plain 0.5 rule would, one of 1 % higher."""
    rng = np.random.default_rng(3)
    y = np.repeat([0, 1, 2, 3], [60, 60, 60, 6])
    centres = _unit(rng.standard_normal((4, 64)))
    X = _unit(centres[y] + 0.12 * rng.standard_normal((len(y), 64)))
    rule = HeadConfig(
        calibrate=False,
        cut=CutConfig(rule="size-logit", size_offset=0.0, size_slope=0.3, size_ref=0.1),
    )
    cuts = {}
    for cls in (0, 3):
        ex, bg = split(X, y, cls=cls, k=3, seed=4)
        head = train_head(X[ex], X[:0], X[bg], config=rule)
        zb = np.sort(head.logits(X[bg]))[::-1]
        n_past = max(1, int((zb >= 0).sum()))
        expected = -0.3 * np.log(n_past / (0.1 * len(bg)))
        assert head.logit_threshold == pytest.approx(expected, abs=1e-3)
        cuts[cls] = head.logit_threshold
    assert cuts[3] > 0 > cuts[0]
