"""The eval protocols on small generated datasets whose answer is known."""

from __future__ import annotations

import json

import numpy as np
import pytest

from finder.errors import UsageError
from finder.learn.evaluate import (
    average_precision,
    classic,
    few_shot,
    groups_from_paths,
    labels_from_paths,
)


def _unit(a: np.ndarray) -> np.ndarray:
    return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)


def clusters(n_classes: int = 4, per_class: int = 30, dim: int = 32, spread: float = 0.05, seed=0):
    """Tight clusters around orthogonal directions on the unit sphere."""
    rng = np.random.default_rng(seed)
    centres = np.eye(dim)[:n_classes]
    X = np.repeat(centres, per_class, axis=0) + spread * rng.standard_normal(
        (n_classes * per_class, dim)
    )
    labels = [f"c{i}" for i in range(n_classes) for _ in range(per_class)]
    return _unit(X), labels


def test_average_precision_known_values():
    assert average_precision(np.array([1, 1, 0, 0]), np.array([4, 3, 2, 1])) == 1.0
    assert average_precision(np.array([0, 0, 1, 1]), np.array([4, 3, 2, 1])) == pytest.approx(
        (1 / 3 + 2 / 4) / 2
    )
    # a tie between a positive and a negative at the top counts as one step: precision 1/2
    assert average_precision(np.array([1, 0]), np.array([1.0, 1.0])) == 0.5
    assert np.isnan(average_precision(np.array([0, 0]), np.array([1.0, 2.0])))


def test_few_shot_on_separated_clusters_is_perfect():
    X, labels = clusters()
    r = few_shot(X, labels, ks=(1, 5), trials=3, seed=1)
    assert {row["k"] for row in r["rows"]} == {1, 5}
    assert len(r["rows"]) == 4 * 2
    for row in r["rows"]:
        assert row["ap"] == 1.0
        assert row["precision"] == 1.0, row
        assert row["recall"] == 1.0, row
        # returns exactly the rest of the class
        assert row["returned"] == 30 - row["k"]
    means = [m for m in r["means"] if m["group"] == "all"]
    assert [m["k"] for m in means] == [1, 5]
    assert all(m["ap"] == 1.0 and m["n_classes"] == 4 for m in means)
    json.dumps(r)  # the JSON form is the dict itself


def test_few_shot_on_noise_gives_base_rate_ap():
    rng = np.random.default_rng(3)
    X = _unit(rng.standard_normal((200, 64)))
    labels = [f"c{i % 4}" for i in range(200)]  # labels unrelated to the vectors
    r = few_shot(X, labels, ks=(5,), trials=5, seed=0)
    base = 45 / 195
    mean_ap = [m["ap"] for m in r["means"] if m["group"] == "all"][0]
    assert abs(mean_ap - base) < 0.06
    assert all(row["ap"] < 0.45 for row in r["rows"])


def test_few_shot_is_deterministic_for_a_seed_and_depends_on_it():
    X, labels = clusters(spread=0.6, seed=2)
    a = few_shot(X, labels, ks=(2,), trials=2, seed=5)
    b = few_shot(X, labels, ks=(2,), trials=2, seed=5)
    c = few_shot(X, labels, ks=(2,), trials=2, seed=6)
    assert a == b
    assert a["rows"] != c["rows"]


def test_few_shot_skips_k_larger_than_a_class_and_reports_groups():
    X, labels = clusters(n_classes=3, per_class=6)
    groups = {"c0": "g1", "c1": "g1", "c2": "g2"}
    r = few_shot(X, labels, ks=(2, 6), trials=1, groups=groups)
    assert {row["k"] for row in r["rows"]} == {2}  # a class of 6 cannot hold 6 examples out
    assert {(m["group"], m["n_classes"]) for m in r["means"]} == {("all", 3), ("g1", 2), ("g2", 1)}


def test_few_shot_rejects_bad_input():
    X, labels = clusters()
    with pytest.raises(UsageError):
        few_shot(X, labels[:-1])
    with pytest.raises(UsageError):
        few_shot(X, ["one"] * len(labels))
    with pytest.raises(UsageError):
        few_shot(X, labels, ks=(0,))


def test_classic_on_clusters_is_perfect():
    X, labels = clusters(n_classes=6, per_class=20)
    r = classic(X, labels, splits=3)
    assert r["top1"] == 1.0
    assert r["top5"] == 1.0
    assert r["test_images_per_split"] == 6  # 5% of 20 per class, stratified
    json.dumps(r)


def test_classic_on_noise_is_near_chance():
    rng = np.random.default_rng(0)
    X = _unit(rng.standard_normal((400, 16)))
    labels = [f"c{i % 10}" for i in range(400)]
    r = classic(X, labels, splits=5, test_fraction=0.25)
    assert r["top1"] < 0.25
    assert 0.3 < r["top5"] < 0.7


def test_classic_rejects_a_class_with_one_image():
    X, labels = clusters(n_classes=2, per_class=5)
    with pytest.raises(UsageError, match="one image"):
        classic(np.vstack([X, X[:1]]), labels + ["lonely"])


def test_labels_and_groups_from_paths():
    paths = ["/p/flowers17/daisy/1.jpg", "/p/pets/cat/cat.1.jpg", "rel/dog/x.png", "/p/pets/cat/2"]
    assert labels_from_paths(paths) == ["daisy", "cat", "dog", "cat"]
    assert groups_from_paths(paths) == {"daisy": "flowers17", "cat": "pets", "dog": "rel"}
