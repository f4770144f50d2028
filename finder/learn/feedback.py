"""Teaching in rounds: what a person's ✓ / ✗ clicks do to a class, measured on labelled data.

The protocol (:func:`feedback`) is ``finder eval --feedback R --clicks N``: learn a class from k
random examples, then R rounds in each of which a simulated person marks N photos ✓ or ✗ from
their labels and the class is taught again (``learn NAME --add ✓… --not ✗…``). The N photos are
chosen as a person would see them (:data:`SHOWN`): ``top``, the best-ranked unmarked photos (what
scrolling the grid shows), or ``review``, finder's own choice (:func:`review_picks`: near the
cut-off and unlike each other; ``finder find NAME --review N``). After each round: average
precision, the default answer's precision / recall / F1 and the expected calibration error,
every marked photo left out.

Who learns is a :class:`Teacher`: :class:`ArrayTeacher` trains on vectors in memory (the
experiments), ``finder eval`` passes one that calls ``Library.learn``, the code path of
``finder learn``. This module imports numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from finder.errors import UsageError
from finder.learn.cutoff import keep_answer
from finder.learn.evaluate import average_precision, check_dataset
from finder.learn.head import Head
from finder.learn.metric import Metric
from finder.learn.train import BACKGROUND_SIZE, background_indices, train_head

SHOWN: tuple[str, ...] = ("top", "review")
MIN_LEFT: int = 10
"""After clicks, a class is scored only if at least this many of its photos are left to find."""


class Teacher(Protocol):
    def learn(self, name: str, positives: np.ndarray, negatives: np.ndarray, *, seed: int) -> Head:
        """Teach class ``name`` these new examples and counter-examples (row positions of the
        library; they add to what it was taught before); return the class's head."""
        ...

    def forget(self, name: str) -> None: ...


@dataclass
class ArrayTeacher:
    """Learns as ``Library.learn`` does, on vectors in memory: marks accumulate (the latest
    label of a photo wins), the background is ``background_indices`` drawn with the seed,
    excluding every marked photo, teaching again passes the previous head and the new marks,
    and a teaching of ✓ only keeps at least the previous answer's size (``keep_answer``)."""

    X: np.ndarray
    trainer: Callable[..., Head] | None = None
    background_size: int | None = None
    metric: Metric | None = None  # the library's (finder.learn.metric.library_metric(X))
    _marks: dict[str, dict[int, int]] = field(default_factory=dict)
    _heads: dict[str, Head] = field(default_factory=dict)

    def learn(self, name: str, positives: np.ndarray, negatives: np.ndarray, *, seed: int) -> Head:
        new = [(int(i), 1) for i in positives] + [(int(i), 0) for i in negatives]
        marks = self._marks.setdefault(name, {})  # position -> 1 (✓) or 0 (✗), latest wins
        marks.update(new)
        pos = [i for i, label in marks.items() if label == 1]
        neg = [i for i, label in marks.items() if label == 0]
        rng = np.random.default_rng(seed)
        size = self.background_size or BACKGROUND_SIZE
        bg = background_indices(len(self.X), np.asarray(pos + neg, dtype=np.int64), rng, size)
        marked = (self.X[[i for i, _ in new]], np.asarray([label for _, label in new]))
        train = self.trainer or train_head
        extra = {} if self.metric is None else {"metric": self.metric}
        head = train(
            self.X[pos],
            self.X[neg].reshape(-1, self.X.shape[1]),
            self.X[bg],
            seed=seed,
            previous=self._heads.get(name),
            marked=marked,
            **extra,
        )
        previous = self._heads.get(name)
        if previous is not None and new and all(label == 1 for _, label in new):
            kept = int((previous.logits(self.X) >= previous.logit_threshold).sum())
            head = keep_answer(head, head.logits(self.X), kept)
        self._heads[name] = head
        return head

    def forget(self, name: str) -> None:
        self._marks.pop(name, None)
        self._heads.pop(name, None)


@dataclass
class LibraryTeacher:
    """Learns through ``Library.learn`` (``finder learn NAME --add ✓… --not ✗…``): the library
    ``lib`` holds the photos ``paths`` (row positions refer to them)."""

    lib: Any
    paths: Sequence[str]

    def learn(self, name: str, positives: np.ndarray, negatives: np.ndarray, *, seed: int) -> Head:
        record = self.lib.learn(
            name,
            [self.paths[i] for i in positives],
            negatives=[self.paths[i] for i in negatives],
            seed=seed,
        )
        return Head.from_dict(record["head"])

    def forget(self, name: str) -> None:
        self.lib.forget(name)


# ----------------------------------------------------------------------------- choosing photos


def review_picks(
    z: np.ndarray, cut: float, X: np.ndarray, candidates: np.ndarray, n: int
) -> np.ndarray:
    """The ``n`` photos (positions into ``z`` / ``X``, among ``candidates``) whose verdict teaches
    a head most: near the cut-off (:func:`near_cut`) and unlike each other (:func:`spread`)."""
    pool = near_cut(z, cut, candidates, 4 * n)
    return pool[spread(X[pool], np.abs(z[pool] - cut), n)]


def near_cut(z: np.ndarray, cut: float, candidates: np.ndarray, size: int) -> np.ndarray:
    """The ``size`` of ``candidates`` whose score ``z`` is nearest ``cut``, nearest first."""
    candidates = np.asarray(candidates, dtype=np.int64)
    return candidates[np.argsort(np.abs(z[candidates] - cut), kind="stable")[: max(size, 0)]]


def spread(V: np.ndarray, near: np.ndarray, n: int) -> np.ndarray:
    """``n`` rows of ``V`` (unit vectors; ``near``: their distance to the cut) unlike each
    other: the nearest the cut first, then one at a time the row whose smallest cosine distance
    to those picked is largest (ties to the nearer the cut). Returns row positions."""
    if n <= 0 or not len(V):
        return np.zeros(0, dtype=np.int64)
    first = int(np.argmin(near))
    picked = [first]
    closest = 1.0 - V @ V[first]
    while len(picked) < min(n, len(V)):
        key = closest - 1e-6 * near
        key[picked] = -np.inf
        j = int(np.argmax(key))
        picked.append(j)
        closest = np.minimum(closest, 1.0 - V @ V[j])
    return np.asarray(picked, dtype=np.int64)


def top_picks(z: np.ndarray, candidates: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` best-ranked of ``candidates``: what a person scrolling the answer sees first."""
    candidates = np.asarray(candidates, dtype=np.int64)
    return candidates[np.argsort(-z[candidates], kind="stable")[:n]]


# ----------------------------------------------------------------------------- metrics


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


def answer_scores(truth: np.ndarray, head: Head, X: np.ndarray) -> dict[str, float]:
    """AP of the ranking, precision / recall / F1 of the default answer (``proba >= threshold``;
    an empty answer has precision 0), its size, the calibration error, and the F1 at the
    ranking's best cut (:func:`best_f1`), over ``X``."""
    z = head.logits(X)
    returned = z >= np.float32(head.logit_threshold)
    tp = int((truth & returned).sum())
    precision = tp / int(returned.sum()) if returned.any() else 0.0
    recall = tp / max(int(truth.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    return {
        "ap": average_precision(truth, z),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "returned": float(returned.sum()),
        "ece": calibration_error(truth, head.proba(X)),
        "best_f1": best_f1(truth, z),
    }


METRICS = ("ap", "precision", "recall", "f1", "returned", "ece", "best_f1")


# ----------------------------------------------------------------------------- the protocol


def feedback(
    X: np.ndarray,
    labels: Sequence[str],
    teacher: Teacher,
    *,
    k: int = 5,
    rounds: int = 2,
    clicks: int = 10,
    shown: str = "top",
    trials: int = 10,
    seed: int = 0,
    groups: Mapping[str, str] | None = None,
    classes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The feedback protocol over the library ``X`` (unit vectors) labelled by ``labels``.

    For each class (all, or ``classes``) and trial (examples drawn as :func:`few_shot` draws
    them, generator ``(seed, class position, k, trial)``): learn from k examples, then ``rounds``
    rounds of ``clicks`` photos chosen by ``shown`` and marked from their labels. Round r's
    scores are over the photos not marked by then. A class is scored after clicks only if at
    least :data:`MIN_LEFT` of its photos are left whatever the clicks were (size ≥ k +
    rounds·clicks + MIN_LEFT). Returns a JSON-able dict: ``rows`` (class, round: means over
    trials) and ``means`` (group, round: means over the classes scored in that round).
    """
    X, y = check_dataset(X, labels)
    if shown not in SHOWN:
        raise UsageError(f"--shown must be one of {', '.join(SHOWN)}, not {shown!r}")
    if k < 1 or trials < 1 or rounds < 0 or clicks < 0:
        raise UsageError("k and trials must be at least 1, rounds and clicks at least 0")
    n = len(X)
    names = sorted(np.unique(y).tolist())
    wanted = names if classes is None else [c for c in names if c in set(classes)]
    rows: list[dict[str, Any]] = []
    for ci, name in enumerate(names):
        members = np.flatnonzero(y == name)
        if name not in wanted or len(members) <= k:
            continue
        acc = np.zeros((trials, rounds + 1, len(METRICS)))
        for t in range(trials):
            rng = np.random.default_rng([seed, ci, k, t])
            examples = np.sort(rng.choice(members, size=k, replace=False))
            marked = np.zeros(n, dtype=bool)
            marked[examples] = True
            label = f"eval {name} {t}"
            try:
                head = teacher.learn(label, examples, examples[:0], seed=seed + t)
                for r in range(rounds + 1):
                    rest = np.flatnonzero(~marked)
                    scores = answer_scores(y[rest] == name, head, X[rest])
                    acc[t, r] = [scores[m] for m in METRICS]
                    if r == rounds:
                        break
                    z = head.logits(X)
                    if shown == "top":
                        pick = top_picks(z, rest, clicks)
                    else:
                        pick = review_picks(z, head.logit_threshold, X, rest, clicks)
                    marked[pick] = True
                    right = y[pick] == name
                    head = teacher.learn(label, pick[right], pick[~right], seed=seed + t)
            finally:
                teacher.forget(label)
        m = acc.mean(axis=0)
        big = len(members) >= k + rounds * clicks + MIN_LEFT
        for r in range(rounds + 1):
            rows.append(
                {
                    "class": name,
                    "group": (groups or {}).get(name, ""),
                    "n_images": int(len(members)),
                    "round": r,
                    "clicks": r * clicks,
                    "scored": bool(r == 0 or big),
                    **{key: float(v) for key, v in zip(METRICS, m[r], strict=True)},
                }
            )
    return {
        "protocol": "feedback",
        "n_images": int(n),
        "k": int(k),
        "rounds": int(rounds),
        "clicks": int(clicks),
        "shown": shown,
        "trials": int(trials),
        "seed": int(seed),
        "rows": rows,
        "means": feedback_means(rows, rounds),
        "note": (
            "per class and round: means over trials, over the photos not marked by then, of AP, "
            "the default answer's precision/recall/F1 (an empty answer has precision 0) and the "
            f"expected calibration error (10 bins); after clicks only classes with >= {MIN_LEFT} "
            "photos left are scored, and round means are over the classes scored in every round"
        ),
    }


def feedback_means(rows: Sequence[Mapping[str, Any]], rounds: int) -> list[dict[str, Any]]:
    """Means over classes per group (``all`` and each group) and round. Round 0 is over every
    class; ``"after clicks"`` rows (``set == "clicked"``) are over the classes scored in every
    round, round 0 included, so that rounds compare like with like."""
    out = []
    groups = ["all"] + sorted({r["group"] for r in rows if r["group"]})
    for g in groups:
        sel = [r for r in rows if g == "all" or r["group"] == g]
        clicked = {r["class"] for r in sel if r["round"] == rounds and r["scored"]}
        for r in range(rounds + 1):
            sets = [("all", None)] if r == 0 else []
            if rounds > 0:
                sets.append(("clicked", clicked))
            for set_name, keep in sets:
                part = [
                    row
                    for row in sel
                    if row["round"] == r and (keep is None or row["class"] in keep)
                ]
                if not part:
                    continue
                out.append(
                    {
                        "group": g,
                        "round": r,
                        "set": set_name,
                        "n_classes": len(part),
                        **{key: float(np.mean([row[key] for row in part])) for key in METRICS},
                    }
                )
    return out


def render_feedback(result: Mapping[str, Any]) -> list[Any]:
    """Rich tables of a :func:`feedback` result: per class and round, then the means."""
    from finder.learn.evaluate import table

    cols = ["AP", "precision", "recall", "F1", "ECE", "best-cut F1"]
    keys = ("ap", "precision", "recall", "f1", "ece", "best_f1")
    title = (
        f"feedback: {result['n_images']} images, k={result['k']}, {result['trials']} trials, "
        f"{result['rounds']} rounds of {result['clicks']} clicks ({result['shown']}), seed "
        f"{result['seed']} — marked photos left out"
    )
    per_class = [
        [r["class"], str(r["clicks"])]
        + [f"{r[key]:.3f}" for key in keys]
        + [f"{r['returned']:.1f}"]
        for r in result["rows"]
        if r["scored"]
    ]
    means = [
        [r["group"], r["set"], str(r["round"]), str(r["n_classes"])]
        + [f"{r[key]:.3f}" for key in keys]
        for r in result["means"]
    ]
    return [
        table(title, ["class", "clicks"] + cols + ["returned"], per_class),
        table(
            "feedback: means over classes (clicked: the classes scored after clicks)",
            ["classes", "set", "round", "n"] + cols,
            means,
        ),
    ]
