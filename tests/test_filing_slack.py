"""How far below its cut ``suggest`` (``finder.filing``) takes a photo no sibling takes
(``finder.learn.filed.exclusive_slack``): the full ``EXCLUSIVE_SLACK`` where the exclusive
siblings cover the photos not of the class, less where kinds nobody filed are most of them
(issue 25: two species filed of five)."""

from __future__ import annotations

import numpy as np
import pytest

from finder.learn.filed import EXCLUSIVE_SLACK, FULL_COVER, coverage, exclusive_slack
from finder.learn.head import Head


def head(size: float | None, background: int = 2000) -> Head:
    params = {} if size is None else {"n_class_estimate": size, "n_background": background}
    return Head(w=np.zeros(4, np.float32), b=0.0, threshold=0.3, params=params)


def test_siblings_covering_the_rest_of_the_library_lower_the_cut_by_the_full_slack():
    own = head(400)  # a fifth of the library
    rivals = [head(400), head(400), head(400), head(400)]  # the other four fifths
    assert coverage(own, rivals) == pytest.approx(1.0)
    assert exclusive_slack(own, rivals) == pytest.approx(EXCLUSIVE_SLACK)
    more = rivals + [head(300)]  # sizes overstated: the cover is whole, no more
    assert exclusive_slack(own, more) == pytest.approx(EXCLUSIVE_SLACK)


def test_every_species_filed_sized_a_little_short_still_covers_the_library():
    """With every class filed the siblings' size estimates sum to a little under what the
    class leaves (each a little short: 0.92-1 in the bench): the cover is whole, the slack the
    full one; just under ``FULL_COVER`` it is the cover read."""
    own = head(400)
    short = [head(370), head(370), head(370), head(370)]  # 1480 of 1600: 0.925
    assert coverage(own, short) == 1.0
    assert exclusive_slack(own, short) == pytest.approx(EXCLUSIVE_SLACK)
    under = [head(FULL_COVER * 1600 / 4 - 10)] * 4
    assert coverage(own, under) == pytest.approx(FULL_COVER - 40 / 1600)
    assert exclusive_slack(own, under) < EXCLUSIVE_SLACK


def test_two_species_filed_of_five_lower_it_by_a_fifth_as_much_or_less():
    """tf_flowers with daisy and dandelion filed: dandelion ~21 % of the unsorted photos, daisy
    ~14 %: daisy covers under a fifth of what is not dandelion, the slack ~0.1 logit."""
    own, rivals = head(429), [head(270)]
    assert coverage(own, rivals) == pytest.approx(270 / (2000 - 429))
    slack = exclusive_slack(own, rivals)
    assert 0.05 < slack < 0.2 * EXCLUSIVE_SLACK


def test_the_slack_grows_with_the_cover_and_is_none_without_siblings():
    own = head(200)
    slacks = [exclusive_slack(own, [head(n)]) for n in (0.0, 200, 600, 1000, 1800)]
    assert slacks[0] == 0.0
    assert all(a < b for a, b in zip(slacks[:-1], slacks[1:], strict=True))
    assert exclusive_slack(own, []) == 0.0


def test_a_head_without_a_size_keeps_the_full_slack():
    """A plain head (a background too small to size the class) says nothing of its cover."""
    assert exclusive_slack(head(None), [head(300)]) == EXCLUSIVE_SLACK
    assert exclusive_slack(head(300), [head(None)]) == EXCLUSIVE_SLACK
