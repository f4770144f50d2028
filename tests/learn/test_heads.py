"""Properties of few-shot heads: linear, separating, serialisable, with a sane cut-off."""

from __future__ import annotations

import json

import numpy as np
import pytest

from finder.errors import LibraryError, UsageError
from finder.learn.heads import (
    BACKGROUND_SIZE,
    DEFAULT_CONFIG,
    PLAIN_CONFIG,
    Head,
    background_indices,
    knn_diffusion,
    train_head,
)

CONFIGS = [pytest.param(DEFAULT_CONFIG, id="default"), pytest.param(PLAIN_CONFIG, id="plain")]


def _unit(a: np.ndarray) -> np.ndarray:
    return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)


def library(n_classes=5, per_class=40, dim=48, spread=0.15, seed=0):
    """Unit vectors in clusters around orthogonal directions; returns (X, class index)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), per_class)
    X = np.eye(dim)[y] + spread * rng.standard_normal((len(y), dim))
    return _unit(X), y


def split(X, y, cls=0, k=5, seed=0):
    rng = np.random.default_rng(seed)
    ex = rng.choice(np.flatnonzero(y == cls), size=k, replace=False)
    bg = background_indices(len(X), ex, rng)
    return ex, bg


@pytest.mark.parametrize("config", CONFIGS)
def test_separable_data_is_separated_and_the_cut_off_finds_the_class(config):
    X, y = library()
    ex, bg = split(X, y)
    head = train_head(X[ex], np.zeros((0, X.shape[1]), np.float32), X[bg], config=config)
    z = head.logits(X)
    assert z[y == 0].min() > z[y != 0].max()  # AP 1.0 over the whole library
    assert np.all(np.isfinite(head.w)) and np.isfinite(head.b)
    assert 0.0 < head.threshold < 1.0


def test_on_well_separated_clusters_the_default_output_is_the_class():
    X, y = library(spread=0.05, seed=10)
    ex, bg = split(X, y)
    head = train_head(X[ex], X[:0], X[bg])
    # unlabelled members of the class in the background are returned too
    assert np.array_equal(head.proba(X) >= head.threshold, y == 0)


def test_the_background_is_unlabelled_not_negative():
    """A third of the background belongs to the class: the default head still returns them all,
    the plain head's 0.5 cut-off does not (the problem the issue describes)."""
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1, 2], [100, 100, 100])
    centres = _unit(rng.standard_normal((3, 64)))
    X = _unit(centres[y] + 0.09 * rng.standard_normal((300, 64)))
    ex, bg = split(X, y, k=3, seed=2)
    rest = np.setdiff1d(np.arange(300), ex)
    default = train_head(X[ex], X[:0], X[bg])
    recall = np.mean(default.proba(X[rest][y[rest] == 0]) >= default.threshold)
    precision = np.mean(y[rest][default.proba(X[rest]) >= default.threshold] == 0)
    assert recall > 0.95 and precision > 0.95
    plain = train_head(X[ex], X[:0], X[bg], config=PLAIN_CONFIG)
    assert np.mean(plain.proba(X[rest][y[rest] == 0]) >= 0.5) < recall


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


def test_one_example_works():
    X, y = library(spread=0.05, seed=5)
    ex, bg = split(X, y, k=1)
    head = train_head(X[ex], X[:0], X[bg])
    assert 0 < head.threshold < 1
    z = head.logits(X)
    assert z[y == 0].min() > z[y != 0].max()


def test_no_background_falls_back_to_a_plain_head_with_cut_off_one_half():
    X, y = library(seed=6)
    head = train_head(X[y == 0][:3], X[y == 1][:4], np.zeros((0, X.shape[1]), np.float32))
    assert head.threshold == 0.5
    assert head.params["n_background"] == 0 and head.params["method"] == "plain"
    assert head.proba(X[y == 0]).min() > 0.5 > head.proba(X[y == 1]).max()


def test_explicit_negatives_weigh_more_than_background():
    X, y = library(seed=7)
    ex, bg = split(X, y)
    target = X[y == 1][0]  # another class, put once among the background, once as a negative
    others = X[bg][~np.all(X[bg] == target, axis=1)]
    as_background = train_head(X[ex], X[:0], np.vstack([others, target]), config=PLAIN_CONFIG)
    as_negative = train_head(X[ex], target[None], others, config=PLAIN_CONFIG)
    assert as_negative.logits(target) < as_background.logits(target)
    default = train_head(X[ex], target[None], others)
    assert default.proba(target) < default.threshold


def test_bad_input_is_a_usage_error():
    X, y = library(seed=8)
    empty = np.zeros((0, X.shape[1]), np.float32)
    with pytest.raises(UsageError, match="at least one example"):
        train_head(empty, empty, X)
    with pytest.raises(UsageError, match="dimension"):
        train_head(X[:2], empty, X[:, :10])
    with pytest.raises(UsageError):
        train_head(X[:2], empty, empty)
    bad = X[:2].copy()
    bad[0, 0] = np.nan
    with pytest.raises(UsageError, match="non-finite"):
        train_head(bad, empty, X)
    head = train_head(X[:2], empty, X[10:])
    with pytest.raises(UsageError, match="dimension"):
        head.logits(X[:, :5])


def test_background_indices_exclude_examples_and_are_deterministic():
    exclude = np.array([0, 5, 17, 999])
    a = background_indices(5000, exclude, np.random.default_rng(3))
    b = background_indices(5000, exclude, np.random.default_rng(3))
    c = background_indices(5000, exclude, np.random.default_rng(4))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert len(a) == BACKGROUND_SIZE == len(np.unique(a))
    assert not np.isin(exclude, a).any()
    assert a.min() >= 0 and a.max() < 5000 and np.all(np.diff(a) > 0)
    small = background_indices(30, np.array([1, 2]), np.random.default_rng(0), size=100)
    assert np.array_equal(small, np.setdiff1d(np.arange(30), [1, 2]))
    assert len(background_indices(100, np.array([], int), np.random.default_rng(0), size=10)) == 10


def test_knn_diffusion_stays_within_a_cluster():
    X, y = library(n_classes=3, per_class=20, seed=9)
    f = knn_diffusion(X, np.flatnonzero(y == 1)[:2])
    assert f[y == 1].min() > f[y != 1].max()


def test_size_logit_cut_is_higher_for_a_small_class_than_for_a_large_one():
    """The "size-logit" rule moves the cut against the estimated class size: a class that takes
    a tenth of the library is cut lower than the plain 0.5 rule would, one of 1 % higher."""
    from finder.learn.heads import HeadConfig

    rng = np.random.default_rng(3)
    y = np.repeat([0, 1, 2, 3], [60, 60, 60, 6])
    centres = _unit(rng.standard_normal((4, 64)))
    X = _unit(centres[y] + 0.12 * rng.standard_normal((len(y), 64)))
    rule = HeadConfig(threshold="size-logit", size_offset=0.0, size_slope=0.3, size_ref=0.1)
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


def test_database_side_augmentation_keeps_unit_rows_and_one_neighbour_is_identity():
    from finder.learn.heads import augment

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
    from finder.learn.heads import HeadConfig

    X, y = library()
    ex, bg = split(X, y)
    head = train_head(X[ex], X[:0], X[bg], config=HeadConfig(**options))
    z = head.logits(X)
    assert z[y == 0].min() > z[y != 0].max()
