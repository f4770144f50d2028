"""A head: linear in the vectors, serialisable, its damage detected."""

from __future__ import annotations

import json

import numpy as np
import pytest

from finder.errors import LibraryError
from finder.learn.head import Head
from finder.learn.train import DEFAULT_CONFIG, PLAIN_CONFIG, train_head
from tests.learn.synthetic import library, split

CONFIGS = [pytest.param(DEFAULT_CONFIG, id="default"), pytest.param(PLAIN_CONFIG, id="plain")]


@pytest.mark.parametrize("config", CONFIGS)
def test_logits_are_linear_in_the_vectors(config):
    X, y = library(seed=3)
    ex, bg = split(X, y, cls=2)
    head = train_head(X[ex], X[:0], X[bg], config=config)
    assert head.w.dtype == np.float32 and head.w.shape == (X.shape[1],)
    assert np.array_equal(head.logits(X), X @ head.w + np.float32(head.b))
    assert np.allclose(head.proba(X), 1 / (1 + np.exp(-(X @ head.w + head.b))), atol=1e-6)
    assert head.logits(X[0]).shape == ()


def test_to_dict_from_dict_round_trip_is_exact_and_json_able():
    X, y = library(seed=4)
    ex, bg = split(X, y)
    head = train_head(X[ex], X[:0], X[bg])
    data = json.loads(json.dumps(head.to_dict()))
    again = Head.from_dict(data)
    assert np.array_equal(again.w, head.w)
    assert (again.b, again.threshold, again.params) == (head.b, head.threshold, head.params)
    assert np.array_equal(again.logits(X), head.logits(X))
    assert isinstance(data["w"], str)  # base64 of float32: compact
    assert len(data["w"]) <= 4 * X.shape[1] * 4 // 3 + 4


def test_from_dict_rejects_a_damaged_head():
    with pytest.raises(LibraryError):
        Head.from_dict({"w": "not base64!", "b": 0.0})
    with pytest.raises(LibraryError):
        Head.from_dict({"b": 0.0})
    w = Head(np.ones(4, np.float32), 0.0).to_dict()
    w["dim"] = 5
    with pytest.raises(LibraryError):
        Head.from_dict(w)
