"""``finder eval``: how well few-shot classes work on a labelled, folder-per-class dataset.

Two protocols, both pure numpy on the library's unit vectors (never TensorFlow):

* **few-shot** (:func:`few_shot`): what ``finder learn`` + ``finder find NAME`` give a person.
  For each class and each k, repeated trials: draw k examples of the class, draw the background
  sample with :func:`finder.learn.train.background_indices` and train with
  :func:`finder.learn.train.train_head` exactly as ``learn`` does (no explicit negatives), score the
  whole library minus the examples, and measure average precision and the precision and recall
  of the default output (``proba >= head.threshold``).
* **classic** (:func:`classic`): the protocol of the method's origin: a multinomial logistic
  regression on all features, stratified train/test split (95/5), top-1 and top-5 accuracy,
  averaged over several random splits (a 5% split of a small dataset is a handful of images).

Labels come from paths (:func:`labels_from_paths`): an image's label is the name of its
immediate parent folder, so ``photos/flowers17/daisy/1.jpg`` is ``daisy`` and
``photos/pets/cat/1.jpg`` is ``cat``. Its group (:func:`groups_from_paths`) is the folder above
(``flowers17``, ``pets``); means are reported over all classes and per group.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
from scipy.optimize import minimize

from finder.errors import UsageError
from finder.learn.head import Head
from finder.learn.metric import library_metric
from finder.learn.scores import average_precision
from finder.learn.train import BACKGROUND_SIZE, background_indices, train_head

DEFAULT_KS: tuple[int, ...] = (1, 2, 5, 10)

Trainer = Callable[..., Head]


def labels_from_paths(paths: Sequence[str]) -> list[str]:
    """The label of each image: the name of its immediate parent folder."""
    return [os.path.basename(os.path.dirname(os.path.normpath(p))) for p in paths]


def groups_from_paths(paths: Sequence[str]) -> dict[str, str]:
    """label → group, the name of the folder above the class folder (``""`` if none).

    A label seen under two different grandparents gets the first one.
    """
    groups: dict[str, str] = {}
    for p in paths:
        parent = os.path.dirname(os.path.normpath(p))
        label = os.path.basename(parent)
        groups.setdefault(label, os.path.basename(os.path.dirname(parent)))
    return groups


# ----------------------------------------------------------------------------- metrics


def _precision_recall(y: np.ndarray, returned: np.ndarray) -> tuple[float, float]:
    n_ret = int(returned.sum())
    tp = int((y & returned).sum())
    precision = tp / n_ret if n_ret else 0.0  # nothing returned counts as precision 0
    recall = tp / int(y.sum())
    return precision, recall


# ----------------------------------------------------------------------------- few-shot


def check_dataset(X: np.ndarray, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[0] == 0:
        raise UsageError(f"need a non-empty 2-d array of vectors, got shape {X.shape}")
    y = np.asarray([str(label) for label in labels])
    if len(y) != len(X):
        raise UsageError(f"{len(y)} labels for {len(X)} vectors")
    if len(np.unique(y)) < 2:
        raise UsageError("a dataset for evaluation needs at least two classes (folders)")
    return X, y


def few_shot(
    X: np.ndarray,
    labels: Sequence[str],
    *,
    ks: Sequence[int] = DEFAULT_KS,
    trials: int = 10,
    seed: int = 0,
    groups: Mapping[str, str] | None = None,
    trainer: Trainer | None = None,
    background_size: int = BACKGROUND_SIZE,
) -> dict[str, Any]:
    """The few-shot protocol over ``X`` (the library, unit vectors) labelled by ``labels``.

    For each class, each k in ``ks`` and each of ``trials`` trials (random generator seeded by
    ``(seed, class position, k, trial)``, so results do not depend on which other classes or
    ks are run): k examples, a background sample from
    :func:`~finder.learn.train.background_indices`, ``trainer(examples, no negatives, background,
    seed=...)``; measured over the library minus the examples. A class with ≤ k images is
    skipped for that k. ``trainer`` and ``background_size`` exist for experiments; their
    defaults are what ``finder learn`` uses (``train_head`` in the metric of ``X``). Returns a
    JSON-able dict: ``rows`` per class and k (means over trials), ``means`` over classes
    (``group`` "all" and each group of ``groups``).
    """
    X, y = check_dataset(X, labels)
    if trainer is None:
        trainer = partial(train_head, metric=library_metric(X))
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise UsageError("k must be positive integers")
    if trials < 1:
        raise UsageError("trials must be at least 1")
    n, d = X.shape
    classes = sorted(np.unique(y).tolist())
    empty = np.zeros((0, d), dtype=np.float32)
    rows: list[dict[str, Any]] = []
    method: dict[str, Any] = {}
    for ci, name in enumerate(classes):
        members = np.flatnonzero(y == name)
        for k in ks:
            if len(members) <= k:
                continue
            acc = np.zeros((trials, 5))
            for t in range(trials):
                rng = np.random.default_rng([seed, ci, k, t])
                examples = np.sort(rng.choice(members, size=k, replace=False))
                bg = background_indices(n, examples, rng, background_size)
                head = trainer(X[examples], empty, X[bg], seed=seed + t)
                method = head.params
                keep = np.ones(n, dtype=bool)
                keep[examples] = False
                truth = y[keep] == name
                logits = head.logits(X[keep])
                returned = head.proba(X[keep]) >= head.threshold
                precision, recall = _precision_recall(truth, returned)
                acc[t] = (
                    average_precision(truth, logits),
                    precision,
                    recall,
                    returned.sum(),
                    head.threshold,
                )
            m = acc.mean(axis=0)
            rows.append(
                {
                    "class": name,
                    "group": (groups or {}).get(name, ""),
                    "n_images": int(len(members)),
                    "k": k,
                    "ap": float(m[0]),
                    "precision": float(m[1]),
                    "recall": float(m[2]),
                    "returned": float(m[3]),
                    "threshold": float(m[4]),
                }
            )
    means = []
    group_names = ["all"] + sorted({g for g in (groups or {}).values() if g})
    for g in group_names:
        for k in ks:
            sel = [r for r in rows if r["k"] == k and (g == "all" or r["group"] == g)]
            if not sel:
                continue
            means.append(
                {
                    "group": g,
                    "k": k,
                    "n_classes": len(sel),
                    **{
                        key: float(np.mean([r[key] for r in sel]))
                        for key in ("ap", "precision", "recall", "returned")
                    },
                }
            )
    return {
        "protocol": "few-shot",
        "n_images": int(n),
        "dim": int(d),
        "n_classes": len(classes),
        "ks": ks,
        "trials": int(trials),
        "seed": int(seed),
        "background_size": int(background_size),
        "method": {k: v for k, v in method.items() if k not in ("n_pos", "n_neg", "seed")},
        "rows": rows,
        "means": means,
        "note": (
            "per class and k: mean over trials of average precision, and precision/recall of the "
            "default output (proba >= the head's threshold), over the library minus the examples; "
            "an empty output counts as precision 0"
        ),
    }


# ----------------------------------------------------------------------------- classic


def _fit_softmax(X: np.ndarray, y: np.ndarray, n_classes: int, C: float) -> np.ndarray:
    """Multinomial L2 logistic regression (``C·Σ loss + ½‖W‖²``); returns ``[d+1, c]``."""
    X1 = np.hstack([X.astype(np.float64), np.ones((len(X), 1))])
    d1 = X1.shape[1]
    Y = np.eye(n_classes)[y]
    reg = np.ones((d1, 1))
    reg[-1] = 0.0  # intercept unpenalised

    def fg(theta: np.ndarray) -> tuple[float, np.ndarray]:
        W = theta.reshape(d1, n_classes)
        Z = X1 @ W
        Z -= Z.max(axis=1, keepdims=True)
        logsum = np.log(np.exp(Z).sum(axis=1, keepdims=True))
        P = np.exp(Z - logsum)
        f = C * float(-(Y * (Z - logsum)).sum()) + 0.5 * float((reg * W * W).sum())
        G = C * (X1.T @ (P - Y)) + reg * W
        return f, G.ravel()

    res = minimize(fg, np.zeros(d1 * n_classes), jac=True, method="L-BFGS-B")
    return res.x.reshape(d1, n_classes)


def classic(
    X: np.ndarray,
    labels: Sequence[str],
    *,
    seed: int = 0,
    test_fraction: float = 0.05,
    splits: int = 10,
    C: float = 1.0,
) -> dict[str, Any]:
    """Logistic regression on all features, stratified ``1-test_fraction``/``test_fraction``
    split, top-1 and top-5 accuracy; averaged over ``splits`` random stratified splits.

    Each class puts ``round(test_fraction·n)`` of its images (at least one, and at least one left
    for training) in the test set.
    """
    X, y = check_dataset(X, labels)
    if not 0 < test_fraction < 1:
        raise UsageError("test fraction must be between 0 and 1")
    if splits < 1:
        raise UsageError("splits must be at least 1")
    classes, yi = np.unique(y, return_inverse=True)
    counts = np.bincount(yi)
    if counts.min() < 2:
        small = classes[counts.argmin()]
        raise UsageError(f"class {small!r} has one image; the classic protocol needs two per class")
    c = len(classes)
    top1, top5, n_test = [], [], []
    for s in range(splits):
        rng = np.random.default_rng([seed, s])
        test = np.zeros(len(y), dtype=bool)
        for ci in range(c):
            members = np.flatnonzero(yi == ci)
            n_c = min(max(1, round(test_fraction * len(members))), len(members) - 1)
            test[rng.choice(members, size=n_c, replace=False)] = True
        W = _fit_softmax(X[~test], yi[~test], c, C)
        scores = np.hstack([X[test], np.ones((int(test.sum()), 1))]) @ W
        truth = yi[test]
        rank = (scores > scores[np.arange(len(truth)), truth][:, None]).sum(axis=1)
        top1.append(float(np.mean(rank < 1)))
        top5.append(float(np.mean(rank < 5)))
        n_test.append(int(test.sum()))
    return {
        "protocol": "classic",
        "n_images": int(len(y)),
        "dim": int(X.shape[1]),
        "n_classes": int(c),
        "test_fraction": float(test_fraction),
        "splits": int(splits),
        "test_images_per_split": int(n_test[0]),
        "C": float(C),
        "top1": float(np.mean(top1)),
        "top5": float(np.mean(top5)),
        "top1_std": float(np.std(top1)),
        "top5_std": float(np.std(top5)),
        "note": (
            f"multinomial logistic regression on all features; mean over {splits} random "
            f"stratified {round(100 * (1 - test_fraction))}/{round(100 * test_fraction)} splits"
        ),
    }
