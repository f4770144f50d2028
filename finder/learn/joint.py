"""Which of its exclusive siblings a photo is most like: a multinomial head over filed classes
(issue 25).

A filed class's head (``learn/filed.py``) is one-vs-rest: it says *whether* a photo is of the
class, calibrated over the whole library, and ``Filing.suggest`` gives a photo that several
sibling heads pass to one of them. Which one is better said by a head trained on the siblings'
filed photos side by side: a multinomial logistic head (:func:`fit_joint`), each class weighing
the same whatever its number of filed photos (a class filed 5 times must not lose every photo to
one filed 200 times: the filed share is not the class's share), in the library's metric. The
one-vs-rest heads stay the gate (a photo of a kind nobody filed is of none of the siblings),
the joint head chooses among those whose gate the photo passes, and only where it tells the
siblings' filed photos apart held out (``held_out_accuracy``, ``JOINT_TRUST``).

Bounded for libraries of thousands of keywords: at most ``JOINT_PER_CLASS`` filed photos of
each class (a fixed draw), and the classes a suggestion's photos are contested by, not every
sibling. Measured in ``scripts/bench_filed.py``'s protocol: docs/heads.md, "Filed classes: the
joint head chooses among the siblings"."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax

JOINT_C = 200.0
"""The joint head's inverse regularisation (``C·Σ sᵢ·loss + ½‖W‖²`` in the metric). Replayed
on the product's heads of ``scripts/bench_filed.py`` (seeds 0-2), the combined library's 25%
gave a worst seed of 0.860 / 0.867 / 0.868 / 0.874 / 0.875 at C 3 / 10 / 30 / 100 / 200
(docs/heads.md): the siblings' filed photos part well in the metric, little regularisation
is needed."""
JOINT_PER_CLASS = 200
"""At most this many filed photos of a class train the joint head (each class weighs the same
whatever its count, so more add little but time)."""


def fit_softmax(
    X: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    C: float = JOINT_C,
    init: np.ndarray | None = None,
) -> np.ndarray:
    """Multinomial L2 logistic regression, each class carrying the same total weight;
    ``C·Σ sᵢ·loss + ½‖W‖²``, the intercepts unpenalised (from ``init`` when given). Returns
    ``[d+1, n_classes]``."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    s = (len(y) / (n_classes * np.maximum(counts, 1)))[y][:, None]
    X1 = np.hstack([X.astype(np.float64), np.ones((len(X), 1))])
    d1 = X1.shape[1]
    Y = np.eye(n_classes)[y]
    reg = np.ones((d1, 1))
    reg[-1] = 0.0

    def fg(theta: np.ndarray) -> tuple[float, np.ndarray]:
        W = theta.reshape(d1, n_classes)
        logp = log_softmax(X1 @ W, axis=1)
        f = C * float(-(s * Y * logp).sum()) + 0.5 * float((reg * W * W).sum())
        G = C * (X1.T @ (s * (np.exp(logp) - Y))) + reg * W
        return f, G.ravel()

    start = np.zeros(d1 * n_classes) if init is None else np.asarray(init, np.float64).ravel()
    res = minimize(fg, start, jac=True, method="L-BFGS-B")
    return res.x.reshape(d1, n_classes)


def draw(ids: np.ndarray, limit: int = JOINT_PER_CLASS, seed: int = 0) -> np.ndarray:
    """At most ``limit`` of ``ids``, a fixed draw (the same ids give the same draw)."""
    ids = np.sort(np.asarray(ids, dtype=np.int64))
    if len(ids) <= limit:
        return ids
    return np.sort(np.random.default_rng(seed).choice(ids, limit, replace=False))


JOINT_FOLDS = 5
"""The folds of the joint head's held-out accuracy (:func:`held_out_accuracy`)."""
JOINT_TRUST = 0.75
"""The held-out balanced accuracy below which the joint head does not choose among the
siblings (the margins alone do): over the siblings' filed photos, each held out in turn, the
share of each class's photos it gives back to their class, the mean over the classes. Measured
(``scripts/filed_replay.py``'s stored heads of ``bench_filed.py``, seeds 0-2): 0.79-0.96 on
the bench's libraries, where the joint head gains (combined 25% +0.02); 0.54 (the shared
MobileNet) and 0.67 (the tests' tiny Keras backbone) in tests/test_filing.py's library, whose
``tagged/`` folder holds reds and blues: a joint head that cannot tell red from ``tagged``
gave the reds to neither (docs/heads.md)."""


def held_out_accuracy(
    X: np.ndarray, y: np.ndarray, n_classes: int, C: float = JOINT_C, init: Any = None
) -> float:
    """The balanced accuracy of a joint head on photos it was not trained on: ``JOINT_FOLDS``
    folds, each class's photos dealt among them in a fixed shuffled order (a class of fewer
    photos than folds is held out in as many), each fold scored by a head trained on the
    others (from ``init``, the head of all of them: the same optimum, sooner); the mean over
    the classes of the share of their photos given back to them."""
    rng = np.random.default_rng(0)
    fold = np.zeros(len(y), dtype=np.int64)
    for k in range(n_classes):
        at = np.flatnonzero(y == k)
        fold[rng.permutation(at)] = np.arange(len(at)) % JOINT_FOLDS
    pred = np.full(len(y), -1)
    for f in range(JOINT_FOLDS):
        test = fold == f
        if not test.any():
            continue
        W = fit_softmax(X[~test], y[~test], n_classes, C, init)
        pred[test] = np.argmax(X[test] @ W[:-1] + W[-1], axis=1)
    return float(np.mean([np.mean(pred[y == k] == k) for k in range(n_classes)]))


class Joint:
    """A joint head over classes (their filed photos' vectors, one array per class, in the
    order given): :meth:`scores` of photos, one column per class; ``accuracy`` its held-out
    balanced accuracy, ``trusted`` whether it reaches ``JOINT_TRUST``."""

    def __init__(self, filed: Sequence[np.ndarray], metric: Any = None, C: float = JOINT_C):
        self.metric = metric
        F = np.concatenate([np.asarray(f, dtype=np.float32) for f in filed])
        y = np.concatenate([np.full(len(f), k) for k, f in enumerate(filed)])
        X = self._apply(F)
        W = fit_softmax(X, y, len(filed), C)
        self.accuracy = held_out_accuracy(X, y, len(filed), C, W)
        self.trusted = self.accuracy >= JOINT_TRUST
        self.W = W.astype(np.float32)

    def _apply(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        return X if self.metric is None else self.metric.apply(X)

    def scores(self, X: np.ndarray) -> np.ndarray:
        """The joint head's logits of ``X``, ``[n, classes]``."""
        return self._apply(X) @ self.W[:-1] + self.W[-1]


JOINT_MIN_FILED = 5
"""A class takes part in the joint choice with at least this many filed photos; with fewer (two
of a flowers17 species at 10% filed) its joint column is a guess, and it is compared by the
margins alone."""
JOINT_WEIGHT = 2.0
"""The joint head's log-probability's weight beside a class's margin (its head's logit less its
cut): a photo goes to the sibling of the highest ``margin + JOINT_WEIGHT·log q``. Replayed on
the product's heads of ``scripts/bench_filed.py`` (seeds 0-2), 1 / 1.5 / 2 / 3 gave the combined
library's 25% a worst seed of 0.863 / 0.864 / 0.867 / 0.867, and 2 lost nothing elsewhere
(docs/heads.md)."""


def keep_own(
    mine: np.ndarray,
    theirs: Sequence[np.ndarray],
    log_q: np.ndarray | None = None,
    joined: Sequence[bool] = (),
) -> np.ndarray:
    """Which photos a class keeps against its exclusive siblings: ``mine`` its margins (its
    head's logit less its cut) on them, ``theirs`` each sibling's. Without a joint head a
    sibling of a higher margin takes the photo. With one (``log_q``: the joint head's
    log-probabilities, column 0 the class's, then one per sibling with ``joined`` true, in
    order), a sibling in it takes the photo where its margin plus ``JOINT_WEIGHT·log q`` is
    the higher (the photo then goes to it, or to none of them where it is below the sibling's
    cut: the joint head says which of them, the margins whether); a sibling not in it, where
    its margin is the higher."""
    keep = np.ones(len(mine), dtype=bool)
    column = 0
    for k, other in enumerate(theirs):
        if log_q is not None and k < len(joined) and joined[k]:
            column += 1
            ours = mine + JOINT_WEIGHT * log_q[:, 0]
            keep &= ~(other + JOINT_WEIGHT * log_q[:, column] > ours)
        else:
            keep &= ~(other > mine)
    return keep
