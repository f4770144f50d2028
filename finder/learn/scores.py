"""How good an answer is against labels: average precision, F1 at the best cut, calibration.

The figures of ``finder eval`` (:mod:`finder.learn.evaluate`, :mod:`finder.learn.feedback`).
numpy only.
"""

from __future__ import annotations

import numpy as np

from finder.learn.head import Head, sigmoid


def average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Average precision of a ranking (ties handled like scikit-learn: one step per threshold).

    ``nan`` when there is no positive.
    """
    y = np.asarray(y_true, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    tp = np.cumsum(y)
    fp = np.cumsum(~y)
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each tie group
    tp, fp = tp[last], fp[last]
    precision = tp / (tp + fp)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def calibration_error(truth: np.ndarray, proba: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: over ``bins`` equal-width probability bins, the share of the
    photos in the bin times |fraction right − mean probability|."""
    truth = np.asarray(truth, dtype=np.float64)
    proba = np.asarray(proba, dtype=np.float64)
    which = np.minimum((proba * bins).astype(int), bins - 1)
    hit = np.bincount(which, weights=truth, minlength=bins)
    conf = np.bincount(which, weights=proba, minlength=bins)
    return float(np.abs(hit - conf).sum() / max(len(proba), 1))


def best_f1(truth: np.ndarray, z: np.ndarray) -> float:
    """The F1 of the best answer the ranking ``z`` allows (its best cut, an oracle): what is
    the ranking's and not the cut's."""
    truth = np.asarray(truth, dtype=bool)
    if not truth.any():
        return 0.0
    tp = np.cumsum(truth[np.argsort(-np.asarray(z), kind="stable")])
    return float((2 * tp / (np.arange(1, len(tp) + 1) + truth.sum())).max())


def precision_recall(truth: np.ndarray, returned: np.ndarray) -> tuple[float, float, float]:
    """Precision, recall and F1 of the answer ``returned`` (an empty answer has precision 0;
    a class without photos recall 0)."""
    truth = np.asarray(truth, dtype=bool)
    returned = np.asarray(returned, dtype=bool)
    tp = int((truth & returned).sum())
    precision = tp / int(returned.sum()) if returned.any() else 0.0
    recall = tp / max(int(truth.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    return precision, recall, f1


def answer_scores(
    truth: np.ndarray, head: Head, X: np.ndarray, z: np.ndarray | None = None
) -> dict[str, float]:
    """AP of the ranking, precision / recall / F1 of the default answer (``proba >= threshold``;
    an empty answer has precision 0), its size, the calibration error, and the F1 at the
    ranking's best cut (:func:`best_f1`), over ``X``. ``z``: the photos' logits when they are
    not the head's own (a re-rank, :mod:`finder.learn.smooth`): every figure is then the
    re-ranked answer's, the calibration error too (of ``sigmoid(z)``, the probability the
    answer shows)."""
    z = head.logits(X) if z is None else np.asarray(z, dtype=np.float32)
    returned = z >= np.float32(head.logit_threshold)
    precision, recall, f1 = precision_recall(truth, returned)
    return {
        "ap": average_precision(truth, z),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "returned": float(returned.sum()),
        "ece": calibration_error(truth, sigmoid(z)),
        "best_f1": best_f1(truth, z),
    }


METRICS = ("ap", "precision", "recall", "f1", "returned", "ece", "best_f1")
