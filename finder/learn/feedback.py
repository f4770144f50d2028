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
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from finder.errors import Arg, UsageError
from finder.learn.background import Pool
from finder.learn.estimate import Mark, estimate
from finder.learn.evaluate import check_dataset
from finder.learn.feedback_means import FIGURES, HEAD_KEYS, feedback_means, trial_estimates
from finder.learn.head import Head
from finder.learn.metric import Metric
from finder.learn.origin import EXAMPLE, RANDOM, STRIP, TOP, sample_mask, strips_of
from finder.learn.scores import answer_scores, precision_recall
from finder.learn.smooth import Smooth, neighbours, smooth_graph
from finder.learn.strip import DEFAULT_PLAN, StripPlan, choose_strip, top_picks
from finder.learn.train import BACKGROUND_SIZE, train_head

SHOWN: tuple[str, ...] = ("top", "review")
HOLDOUT: float = 0.3
"""The share of the library held out (drawn per trial, the same share of every class): never
marked, every figure scored on it."""
SMOOTH: Smooth = Smooth()
"""The answer measured by default: re-ranked near the cut by its neighbours."""
MIN_LEFT: int = 10
"""Without a held-out share: after clicks, a class is scored only if at least this many of its
photos are left to find."""


class Teacher(Protocol):
    def learn(
        self,
        name: str,
        positives: np.ndarray,
        negatives: np.ndarray,
        *,
        seed: int,
        origins: Sequence[str] | None = None,
    ) -> Head:
        """Teach class ``name`` these new examples and counter-examples (row positions of the
        library; they add to what it was taught before); return the class's head. ``origins``:
        where each mark (positives, then negatives) comes from (:mod:`finder.learn.origin`;
        None: every one an example the person gave)."""
        ...

    def forget(self, name: str) -> None: ...

    def held_out(self, name: str) -> Mapping[int, float]:
        """The marks' logits under heads not trained on them (row position → logit), as the
        class's last learning measured them; empty when it did not."""
        ...


@dataclass
class ArrayTeacher:
    """Learns as ``Library.learn`` does, on vectors in memory: marks accumulate (the latest
    label of a photo wins), the background and the fresh sample are drawn with the seed,
    excluding every marked photo, as ``Library.learn`` draws them (a
    :class:`~finder.learn.background.Pool`); the head is trained from the marks as they are
    (nothing of the previous head carries over)."""

    X: np.ndarray
    trainer: Callable[..., Head] | None = None
    background_size: int | None = None
    metric: Metric | None = None  # the library's (finder.learn.metric.library_metric(X))
    _marks: dict[str, dict[int, int]] = field(default_factory=dict)
    _origins: dict[str, dict[int, str]] = field(default_factory=dict)
    _heads: dict[str, Head] = field(default_factory=dict)
    _held: dict[str, dict[int, float]] = field(default_factory=dict)
    _pools: dict[tuple[int, int], Pool] = field(default_factory=dict)  # by (seed, size)

    def learn(
        self,
        name: str,
        positives: np.ndarray,
        negatives: np.ndarray,
        *,
        seed: int,
        origins: Sequence[str] | None = None,
    ) -> Head:
        new = [(int(i), 1) for i in positives] + [(int(i), 0) for i in negatives]
        marks = self._marks.setdefault(name, {})  # position -> 1 (✓) or 0 (✗), latest wins
        marks.update(new)
        whence = self._origins.setdefault(name, {})  # position -> origin, latest wins
        whence.update(zip([i for i, _ in new], origins or [EXAMPLE] * len(new), strict=True))
        pos = sorted(i for i, label in marks.items() if label == 1)  # in any order: one head
        neg = sorted(i for i, label in marks.items() if label == 0)
        size = self.background_size or BACKGROUND_SIZE
        known = np.asarray(pos + neg, dtype=np.int64)
        pool = self._pools.get((seed, size))
        if pool is None:
            pool = Pool(len(self.X), seed, lambda rows: self.X[rows], self.metric, size=size)
            self._pools[(seed, size)] = pool
        _, _, background, fresh, prepared = pool.draw(known)
        train = self.trainer or train_head
        extra: dict[str, Any] = {} if self.metric is None else {"metric": self.metric}
        extra["sample"] = sample_mask([whence[i] for i in pos])  # which ✓ may size the class
        extra["pool"] = len(self.X) - len(known)  # what the background was drawn from
        extra["strips"] = strips_of([whence[i] for i in pos + neg], [whence[i] for i in pos])
        if getattr(train, "func", train) is train_head:  # the library's way, or a variant of it
            extra["prepared"] = prepared
        head = train(
            self.X[pos],
            self.X[neg].reshape(-1, self.X.shape[1]),
            background,
            seed=seed,
            fresh=fresh,
            **extra,
        )
        self._heads[name] = head
        held = head.params.pop("held_out_logits", None)
        self._held[name] = dict(zip(pos + neg, held, strict=True)) if held else {}
        return head

    def forget(self, name: str) -> None:
        self._marks.pop(name, None)
        self._origins.pop(name, None)
        self._heads.pop(name, None)
        self._held.pop(name, None)

    def held_out(self, name: str) -> Mapping[int, float]:
        return self._held.get(name, {})


@dataclass
class LibraryTeacher:
    """Learns through ``Library.learn`` (``finder learn NAME --add ✓… --not ✗…``): the library
    ``lib`` holds the photos ``paths`` (row positions refer to them)."""

    lib: Any
    paths: Sequence[str]
    _held: dict[str, dict[int, float]] = field(default_factory=dict)

    def learn(
        self,
        name: str,
        positives: np.ndarray,
        negatives: np.ndarray,
        *,
        seed: int,
        origins: Sequence[str] | None = None,
    ) -> Head:
        marked = [self.paths[i] for i in [*positives, *negatives]]
        record = self.lib.learn(
            name,
            [self.paths[i] for i in positives],
            negatives=[self.paths[i] for i in negatives],
            seed=seed,
            origins=dict(zip(marked, origins, strict=True)) if origins is not None else None,
        )
        head = Head.from_dict(record["head"])
        held = head.params.get("held_out") or {}
        where = {p: i for i, p in enumerate(self.paths)}
        self._held[name] = {where[p]: z for p, z in held.items() if p in where}
        return head

    def forget(self, name: str) -> None:
        self.lib.forget(name)
        self._held.pop(name, None)

    def held_out(self, name: str) -> Mapping[int, float]:
        return self._held.get(name, {})


# ----------------------------------------------------------------------------- the protocol


def held_out(y: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A mask of ``round(fraction·n)`` photos of each class (of ``n``), drawn with ``rng``."""
    out = np.zeros(len(y), dtype=bool)
    if fraction <= 0:
        return out
    for name in np.unique(y):
        members = np.flatnonzero(y == name)
        out[rng.choice(members, size=int(round(fraction * len(members))), replace=False)] = True
    return out


@dataclass
class _Run:
    """One class in one trial: what the simulated person has marked, and the figures."""

    truth: np.ndarray  # bool over the library: of the class
    hold: np.ndarray  # bool over the library: held out (never marked, scored)
    floor: float = DEFAULT_PLAN.floor  # the strips' usefulness floor (the draws' chances)
    smooth: Smooth | None = None  # the answer re-ranked near the cut by its neighbours
    graph: tuple[np.ndarray, np.ndarray] | None = None  # every photo's neighbours (ids, sims)
    marked: np.ndarray = field(init=False)
    marks: list[tuple[int, int, int, int | None, float]] = field(default_factory=list)
    # (position, label, known_from, strip, chance)

    def __post_init__(self) -> None:
        self.marked = np.zeros(len(self.truth), dtype=bool)

    def mark(self, picks: np.ndarray, known_from: int, strip: int | None, chance=None) -> None:
        chance = np.full(len(picks), np.nan) if chance is None else chance
        for i, c in zip(picks.tolist(), np.asarray(chance).tolist(), strict=True):
            self.marks.append((i, int(self.truth[i]), known_from, strip, float(c)))
        self.marked[picks] = True

    def figures(
        self, head: Head, X: np.ndarray, z: np.ndarray, held: Mapping[int, float]
    ) -> dict[str, Any]:
        """Scores on the held-out photos (all of them unmarked when something is held out;
        else on every unmarked photo), and the estimate beside the truth it estimates: the
        answer over the photos a strip could show or the person has marked (the library
        without the held-out ones). With ``smooth``, the answer is the re-ranked one
        (:func:`answer`): every figure and the estimate are its (the head's own answer's
        F1, precision, recall, best-cut F1 and ECE beside them, as ``*_head``)."""
        scored = self.hold if self.hold.any() else ~self.marked
        zs, hs = self.answer(head, z, held)
        out = answer_scores(self.truth[scored], head, X[scored], None if zs is z else zs[scored])
        own = out if zs is z else answer_scores(self.truth[scored], head, X[scored])
        out |= {f"{key}_head": own[key] for key in HEAD_KEYS}
        cut = head.logit_threshold
        frame = ~self.hold
        answer = zs >= np.float32(cut)
        p, r, _ = precision_recall(self.truth[frame], answer[frame])
        out |= {"true_precision": p, "true_recall": r}
        nan = float("nan")
        marks = [
            Mark(lab, float(zs[i]), kf, s, c, hs.get(i, nan)) for i, lab, kf, s, c in self.marks
        ]
        free = frame & ~self.marked
        unmarked = zs[free]  # what the strips could draw: the model's part
        softened = head.params.get("softened")
        drawn_by = None  # a re-rank: the strips drew by the head's own logits
        if zs is not z:
            own = [held.get(i, float(z[i])) for i, *_ in self.marks]
            drawn_by = (z[free], np.asarray(own, dtype=np.float64))
        out["estimate"] = estimate(
            marks, cut, unmarked=unmarked, floor=self.floor, softened=softened, drawn_by=drawn_by
        )
        return out

    def answer(
        self, head: Head, z: np.ndarray, held: Mapping[int, float]
    ) -> tuple[np.ndarray, Mapping[int, float]]:
        """The logits the answer is ``>= cut`` of, over the library, and the marks' held-out
        logits smoothed the same way (their neighbours, their own held-out logit in place of
        their score); without ``smooth`` the head's own, ``z`` and ``held``."""
        if self.smooth is None or self.graph is None:
            return z, held
        ids, sims = self.graph
        labels = {i: lab for i, lab, *_ in self.marks}  # the latest mark wins
        cut, softened = head.logit_threshold, head.params.get("softened")
        kw = {"softened": softened, "config": self.smooth}
        zs = smooth_graph(z, cut, ids, sims, labels, **kw).astype(np.float32)
        if not held:
            return zs, held
        at = np.fromiter(held, dtype=np.int64, count=len(held))
        own = np.asarray([held[i] for i in at.tolist()], dtype=np.float64)
        hs = smooth_graph(z, cut, ids[at], sims[at], labels, own=own, **kw)
        return zs, dict(zip(at.tolist(), hs.tolist(), strict=True))


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
    holdout: float = HOLDOUT,
    plan: StripPlan | None = None,
    trace: list[dict[str, Any]] | None = None,
    smooth: Smooth | None = SMOOTH,
) -> dict[str, Any]:
    """The feedback protocol over the library ``X`` (unit vectors) labelled by ``labels``.

    For each class (all, or ``classes``) and trial: a share ``holdout`` of the library is held
    out (:func:`held_out`, generator ``(seed, trial)``: the same photos for every class of a
    trial), never shown and never marked; the class is learned from k random examples of the
    rest (generator ``(seed, class position, k, trial)``), then ``rounds`` rounds in each of
    which the simulated person marks a strip of ``clicks`` photos from their labels: ``top``,
    the best-ranked unmarked photos; ``review``, a strip of :func:`~finder.learn.strip.
    choose_strip` (``plan``, its size ``clicks``), each pre-set to finder's guess, the wrong
    ones flipped (``actions``: the flips + 1 to confirm). A held-out photo is never offered
    (the strip is filled from the next ones). After each round: AP, the default answer's
    precision / recall / F1, the calibration error and the best-cut F1 over the held-out
    photos, and the estimate (:func:`~finder.learn.estimate.estimate`) beside the truth it
    estimates. With ``holdout`` 0, the older protocol: scores over the unmarked photos, and
    after clicks only classes with :data:`MIN_LEFT` photos left are scored.

    Returns a JSON-able dict: ``rows`` (class, round: means over trials) and ``means`` (group,
    round: means over the classes scored in that round). ``trace`` (experiments) receives one
    record per class, trial and round: the marks, the head's logits over the library, the cut.
    ``smooth``: the answer re-ranked near the cut by its neighbours in the library
    (:mod:`finder.learn.smooth`, on by default; None: the head's own answer): every figure,
    the truth and the estimate are the re-ranked answer's (``*_head``: the head's own answer
    beside them); the strips are chosen by the head, as the product chooses them.
    """
    X, y = check_dataset(X, labels)
    if shown not in SHOWN:
        raise UsageError(Arg("shown"), f" must be one of {', '.join(SHOWN)}, not {shown!r}")
    if k < 1 or trials < 1 or rounds < 0 or clicks < 0:
        raise UsageError("k and trials must be at least 1, rounds and clicks at least 0")
    if not 0 <= holdout < 1:
        raise UsageError(Arg("holdout"), f" must be at least 0 and less than 1, not {holdout}")
    plan = replace(plan or DEFAULT_PLAN, size=clicks)
    n = len(X)
    names = sorted(np.unique(y).tolist())
    wanted = names if classes is None else [c for c in names if c in set(classes)]
    graph = None if smooth is None else neighbours(X, smooth.k)
    holds = [held_out(y, holdout, np.random.default_rng([seed, t, 1])) for t in range(trials)]
    rows: list[dict[str, Any]] = []
    for ci, name in enumerate(names):
        members = np.flatnonzero(y == name)
        if name not in wanted or len(members) <= k:
            continue
        cases: list[list[dict[str, Any]]] = [[] for _ in range(rounds + 1)]
        for t in range(trials):
            run = _Run(y == name, holds[t], plan.floor, smooth, graph)
            free = members[~run.hold[members]]
            if len(free) < k:
                continue
            rng = np.random.default_rng([seed, ci, k, t])
            examples = np.sort(rng.choice(free, size=k, replace=False))
            run.mark(examples, 0, None)
            label = f"eval {name} {t}"
            try:
                head = teacher.learn(label, examples, examples[:0], seed=seed + t)
                for r in range(rounds + 1):
                    z = head.logits(X)
                    case = run.figures(head, X, z, teacher.held_out(label))
                    case["labels"] = int(run.marked.sum()) - k
                    cases[r].append(case)
                    if trace is not None:
                        zs, hs = run.answer(head, z, teacher.held_out(label))
                        trace.append(
                            {
                                "class": name,
                                "trial": t,
                                "round": r,
                                "marks": list(run.marks),
                                "z": z.astype(np.float32),
                                "cut": head.logit_threshold,
                                "hold": run.hold,
                                "held": dict(teacher.held_out(label)),
                                "softened": head.params.get("softened"),
                                "smoothed": zs.astype(np.float32),
                                "held_smoothed": dict(hs),
                            }
                        )
                    if r == rounds:
                        break
                    rest = np.flatnonzero(~run.marked & ~run.hold)
                    if not len(rest):
                        break
                    cut = head.logit_threshold
                    if shown == "top":
                        pick, chance = top_picks(z, rest, clicks), None
                        whence = np.full(len(pick), TOP)
                    else:
                        strip = choose_strip(
                            z[rest],
                            cut,
                            lambda pos, rest=rest: X[rest[pos]],
                            rng=np.random.default_rng([seed, ci, k, t, r]),
                            plan=plan,
                            softened=head.params.get("softened"),
                        )
                        pick, chance = rest[strip.picks], strip.chance
                        whence = np.where(strip.random, RANDOM, STRIP)
                    guess = z[pick] >= np.float32(cut)
                    right = run.truth[pick]
                    if r + 1 < len(cases):
                        cases[r + 1].append({"actions": int((guess != right).sum()) + 1})
                    run.mark(pick, r + 1, r, chance)
                    head = teacher.learn(
                        label,
                        pick[right],
                        pick[~right],
                        seed=seed + t,
                        origins=[*whence[right].tolist(), *whence[~right].tolist()],
                    )
            finally:
                teacher.forget(label)
        big = holdout > 0 or len(members) >= k + rounds * clicks + MIN_LEFT
        for r in range(rounds + 1):
            got = [c for c in cases[r] if "f1" in c]
            if not got:
                continue
            actions = [c["actions"] for c in cases[r] if "actions" in c]
            rows.append(
                {
                    "class": name,
                    "group": (groups or {}).get(name, ""),
                    "n_images": int(len(members)),
                    "round": r,
                    "clicks": r * clicks,
                    "labels": float(np.mean([c["labels"] for c in got])),
                    "scored": bool(r == 0 or big),
                    **{key: float(np.mean([c[key] for c in got])) for key in FIGURES},
                    "actions": actions,
                    **trial_estimates(got),
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
        "holdout": float(holdout),
        "smooth": None if smooth is None else asdict(smooth),
        "strip": {"size": plan.size, "drawn": plan.drawn} if shown == "review" else None,
        "rows": rows,
        "means": feedback_means(rows, rounds),
        "note": (
            "per class and round: means over trials, over the held-out photos (never marked), "
            "of AP, the default answer's precision/recall/F1 (an empty answer has precision 0), "
            "the expected calibration error (10 bins, of the probabilities the answer shows) "
            "and the best-cut F1; with smooth, the answer re-ranked near the cut by its "
            "neighbours (*_head: the head's own answer); labels: photos "
            "marked after the k examples; actions: flips + 1 per strip; the estimate beside "
            "its truth (the answer over the library without the held-out photos)"
        ),
    }
