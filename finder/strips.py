"""Teaching by the strip: the photos a class wants a verdict on, offered ``n`` at a time, each
pre-set to finder's guess, and how good the class's answer is, from the marks.

``Strips.strip`` chooses a strip over every unmarked photo (:func:`finder.learn.strip.
choose_strip`: most chosen near the cut and unlike each other, a few drawn at random with a
known chance) and records it in the catalog (``store/strips.py``), so that a mark given later,
by the page or by ``learn``, is known as a random draw's. A strip offered since the class last
changed, none of it marked yet, is offered again rather than drawn anew (a page shown twice
asks the same). Teaching a strip is one ``learn`` (``Library.learn_ids``): one retraining.

``Strips.estimate`` is :func:`finder.learn.estimate.estimate` over the class's marks, each
with its score under the head, its cross-validated logit, the strip that offered it and its
chance, and the head's scores of every unmarked photo (exact within ``FAR`` of the cut, as a
strip scores them; the ones below, far from the class, count as probability 0): the answer's
precision and recall over the library with a range (None until enough random draws are
marked).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, replace

import numpy as np

from finder.answers import Answers, Match
from finder.errors import Arg, LibraryError, UsageError
from finder.folder import Folder
from finder.learn.estimate import MIN_DRAWS, estimate
from finder.learn.estimate import Mark as EstimateMark
from finder.learn.head import sigmoid
from finder.learn.strip import StripPlan, choose_strip
from finder.moments import Items, group
from finder.store.strips import Offer
from finder.teach import Teaching

STRIP = 20
"""Photos in a strip, by default."""

FAR = 6.0
"""Logits this far below the cut are not scored for a strip (``Strips._scored``)."""

DRAWN_SHARE = 0.3
"""The share of a strip drawn at random (6 of 20: ``learn.strip.DEFAULT_PLAN``)."""


@dataclass(frozen=True)
class Strip:
    """A strip offered for class ``name``: its ``number`` (from 0; None when the library could
    not be written to remember it) and its ``photos`` in the order to show them, each a
    :class:`Match` with its ``guess`` and ``chance``."""

    name: str
    number: int | None
    photos: list[Match]


def plan_for(n: int) -> StripPlan:
    """A strip of ``n``: 30 % of it (at least 1 from 3 photos on) drawn at random."""
    drawn = round(n * DRAWN_SHARE) if n >= 3 else 0
    return StripPlan(size=n, drawn=max(drawn, 1) if n >= 3 else 0)


class Strips:
    """Strips and estimates of the classes of ``teaching``, over ``answers``' library."""

    def __init__(self, folder: Folder, teaching: Teaching, answers: Answers) -> None:
        self.folder = folder
        self.teaching = teaching
        self.answers = answers
        self._last_scored: tuple[tuple, Items] | None = None  # (its key, the items): a strip and
        # the estimate of one head (the page's POST /api/strip asks both) share one scan

    def strip(self, name: str, n: int = STRIP) -> Strip:
        """The strip of ``n`` photos class ``name`` wants a verdict on now (recorded)."""
        if n < 1:
            raise UsageError(Arg("n"), " must be at least 1")
        record = self.teaching.class_record(name)
        name = record["name"]
        head = self.teaching.head(name)
        catalog, store = self.folder.open_catalog(), self.folder.open_vectors()
        marked = {m.id for m in self.teaching.marks(name)} - {None}
        marked |= catalog.skipped(name)  # "not sure": never offered again
        last = catalog.last_strip(name)
        if last is not None:
            offers = catalog.strip_offers(name, last)
            if (
                len(offers) == n
                and offers[0].offered >= float(record["updated"])
                and not marked & {o.image_id for o in offers}
            ):
                return self._shown(name, last, offers, head)
        cut = head.logit_threshold
        items = self._scored(head, cut - FAR)
        marked_ids = np.fromiter(marked, np.int64, len(marked))
        free = np.flatnonzero(~np.isin(items.keys, marked_ids) & ~np.isin(items.ids, marked_ids))
        rng = np.random.default_rng([len(marked), (last + 1) if last is not None else 0])
        chosen = choose_strip(
            items.scores[free].astype(np.float64),
            cut,
            lambda pos: store.get(items.keys[free[pos]]),
            rng=rng,
            plan=plan_for(n),
            softened=head.params.get("softened"),
        )
        keys = items.keys[free[chosen.picks]]
        rows = [
            (int(k), None if not np.isfinite(c) else float(c), bool(g))
            for k, c, g in zip(keys, chosen.chance, chosen.guess, strict=True)
        ]
        try:
            writer = self.folder.open_catalog_for_writing()
            number = writer.add_strip(name, rows)
        except (OSError, sqlite3.Error, LibraryError):  # a library this process cannot write
            at = time.time()
            offers = [Offer(i, -1, c, g, at) for i, c, g in rows]
            return self._shown(name, None, offers, head)  # answered, not remembered
        return self._shown(name, number, writer.strip_offers(name, number), head)

    def _scored(self, head, low: float) -> Items:
        """Every item of the library with its logit under ``head`` as the strip needs it: exact
        at or above ``low`` (a complete search), ``-inf`` below it (their ids only, ordered by
        id: no vector read). A photo below ``low`` is far below the cut: it is never among the
        chosen ones, and its worth as a draw is the floor alone (``usefulness(-inf)``), a
        design as known as any other (its chance is recorded), so the draws need no score of
        the far photos, whose scan (100,000 vectors) would cost seconds."""
        catalog, store = self.folder.open_catalog(), self.folder.open_vectors()
        key = (id(store), len(store), store.raw.n, head.w.tobytes(), float(head.b), low)
        if self._last_scored is not None and self._last_scored[0] == key:
            return self._last_scored[1]
        ids, scores = store.search_linear(head.w, head.b, min_score=low)
        every = store.ids()
        far = every[~np.isin(every, ids)]
        ids = np.concatenate([ids, far])
        scores = np.concatenate([scores.astype(np.float64), np.full(len(far), -np.inf)])
        if catalog.has_frames():  # one item per video (its best frame)
            items = group(catalog, ids, scores)
        else:  # photos only: no lookup of every id for frames
            items = Items(ids, ids.copy(), scores)
        self._last_scored = (key, items)
        return items

    def skip(self, name: str, ids: list[int], skipped: bool = True) -> None:
        """Photos (image ids, a video's by its frame) of class ``name``'s strips skipped: "not
        sure", they teach nothing and are never offered again; or, ``skipped`` False, offered
        again (a strip taken back). Ids no strip of the class offered are refused."""
        name = self.teaching.class_record(name)["name"]
        offered = {o.image_id for o in self.folder.open_catalog().strip_offers(name)}
        wrong = next((i for i in ids if i not in offered), None)
        if wrong is not None:
            raise UsageError(Arg("skip"), f": photo {wrong} was not offered in a strip of {name!r}")
        self.folder.open_catalog_for_writing().skip(name, ids, skipped)

    def _shown(self, name: str, number: int | None, offers: list[Offer], head) -> Strip:
        """The strip's photos as matches (scored by the head as it is now)."""
        catalog, store = self.folder.open_catalog(), self.folder.open_vectors()
        keys = np.asarray([o.image_id for o in offers], dtype=np.int64)
        items = group(catalog, keys, head.logits(store.get(keys)))
        items.scores = sigmoid(items.scores.astype(np.float64))
        for video in items.moments:  # the frame asked about only
            items.moments[video] = [
                (f, t, float(sigmoid(np.asarray([s]))[0])) for f, t, s in items.moments[video][:1]
            ]
        by_key = {o.image_id: o for o in offers}
        photos = [
            replace(m, guess=by_key[m.key].guess, chance=by_key[m.key].chance)
            for m in self.answers.item_matches(items)
            if m.key in by_key
        ]
        return Strip(name, number, photos)

    def estimate(self, name: str) -> dict | None:
        """How good class ``name``'s answer is (``finder.learn.estimate.estimate``), from its
        marks and the strips that offered them; None until enough random draws are marked."""
        record = self.teaching.class_record(name)
        name = record["name"]
        head = self.teaching.head(name)
        catalog = self.folder.open_catalog()
        offers: dict[int, list[Offer]] = {}
        when: dict[int, float] = {}
        for o in catalog.strip_offers(name):
            offers.setdefault(o.image_id, []).append(o)
            when.setdefault(o.strip, o.offered)
        if not offers:
            return None
        ids = {m.path: m.id for m in self.teaching.marks(name)}
        held = head.params.get("held_out") or {}
        smoothing = self.answers.neighbours.for_head(name, head)
        times = np.sort(np.fromiter(when.values(), np.float64, len(when)))
        marks = []
        rows = catalog.example_rows(name)
        for path, label, vector, added, _ in rows:
            score = float(head.logits(np.frombuffer(vector, np.float32)))
            given = [o for o in offers.get(ids.get(path), []) if o.offered <= added]  # type: ignore[arg-type]
            offer = given[-1] if given else None
            marks.append(
                EstimateMark(
                    label=int(label),
                    score=score,
                    known_from=int(np.searchsorted(times, added, side="left")),
                    strip=None if offer is None else offer.strip,
                    chance=float("nan") if offer is None or offer.chance is None else offer.chance,
                    held=float(held.get(path, float("nan"))),
                )
            )
        if sum(m.drawn for m in marks) < MIN_DRAWS:
            return None  # (before a scan of the library)
        cut = head.logit_threshold
        items = self._scored(head, cut - FAR)  # far below the cut: p 0 (the draws see to them)
        marked = set(ids.values()) - {None}
        marked_ids = np.fromiter(marked, np.int64, len(marked))
        free = ~np.isin(items.keys, marked_ids) & ~np.isin(items.ids, marked_ids)
        unmarked = items.scores[free]
        drawn_by = None
        if smoothing is not None:  # the answer's estimate: its logits re-ranked near the cut
            # the strips drew by the head's own logits (held-out for a mark, else its score)
            own = [m.held if np.isfinite(m.held) else m.score for m in marks]
            drawn_by = (unmarked, np.asarray(own, dtype=np.float64))
            exact = np.isfinite(unmarked)  # (those far below are not scored: -inf)
            known = (items.keys[free][exact], unmarked[exact])
            unmarked = smoothing.apply(items.keys[free], unmarked, known=known)
            marks = _smoothed_marks(smoothing, marks, [ids.get(p) for p, *_ in rows])
        softened = head.params.get("softened")
        return estimate(marks, cut, unmarked=unmarked, softened=softened, drawn_by=drawn_by)


def _smoothed_marks(smoothing, marks: list[EstimateMark], ids: list[int | None]):
    """The marks' logits (under the head, and cross-validated) re-ranked as an unmarked
    photo's would be, by their neighbours (a mark of a photo outside the library keeps its)."""
    at = [i for i, key in enumerate(ids) if key is not None]
    if not at:
        return marks
    keys = np.asarray([ids[i] for i in at], dtype=np.int64)
    score = smoothing.apply(keys, [marks[i].score for i in at])
    held = smoothing.apply(keys, [marks[i].held for i in at])
    out = list(marks)
    for j, i in enumerate(at):
        out[i] = replace(marks[i], score=float(score[j]), held=float(held[j]))
    return out
