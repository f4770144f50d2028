"""Which marks are a sample of their class, and whether a class's marks came from a strip."""

from __future__ import annotations

import numpy as np

from finder.learn.origin import EXAMPLE, RANDOM, STRIP, TOP, sample_mask, strips_of


def test_examples_and_random_draws_are_a_sample_and_an_unknown_origin_tells_nothing():
    mask = sample_mask([EXAMPLE, TOP, STRIP, RANDOM])
    assert mask is not None and mask.tolist() == [True, False, False, True]
    assert sample_mask([EXAMPLE, None]) is None
    assert isinstance(sample_mask([]), np.ndarray)


def test_marks_from_the_top_alone_are_told_from_a_strips_and_from_examples():
    assert strips_of([EXAMPLE, TOP, TOP], [EXAMPLE, TOP]) is False  # grid clicks only
    assert strips_of([EXAMPLE, TOP, RANDOM], [EXAMPLE, TOP]) is True  # a strip's ✗ among them
    assert strips_of([EXAMPLE, TOP], [EXAMPLE]) is None  # counter-examples beside examples
    assert strips_of([None, TOP], [None, TOP]) is False
