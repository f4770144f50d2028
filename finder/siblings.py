"""Siblings: how a filed class shares its suggestions with the siblings that exclude it (issue 25).

Folders learned together, or keywords below one parent, exclude each other: a photo is filed
in one folder. ``Filing.suggest`` gives a photo that several of them would suggest to one: the
class whose margin (its head's logit less its cut) is the highest, or, where both classes have
``learn.joint.JOINT_MIN_FILED`` filed photos or more, the highest margin plus ``JOINT_WEIGHT``
times the joint head's log-probability (``learn.joint``: a multinomial head on their filed
photos, which says better *which* sibling a photo is like than heads trained one against the
rest), when that head is trusted: held out, it gives back to their class at least
``learn.joint.JOINT_TRUST`` of each class's filed photos on average (a folder holding photos of
two of its siblings is not told from them, and the margins alone choose). Below its cut a class
takes a photo as far as ``learn.filed.exclusive_slack`` says, and a sibling takes it from the
class where it is the likelier of the two (the photo then goes to neither where it is below
the sibling's cut).

The joint head is fitted when a class's suggestions are asked for (at most
``JOINT_PER_CLASS`` filed photos of each class, at most ``JOINT_MAX_CLASSES`` classes: those
that contest the class's photos most), and kept for the next class of the same filing
(``Siblings.joints``, keyed by the classes, their filed photos and the library's metric).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from scipy.special import log_softmax

from finder.answers import Match
from finder.errors import FinderError
from finder.folder import Folder
from finder.ingest.keywords import path_parts
from finder.learn.filed import exclusive_slack
from finder.learn.head import Head, sigmoid
from finder.learn.joint import JOINT_MIN_FILED, Joint, draw, keep_own
from finder.store.filing import FOLDER, FilingRecord
from finder.teach import Teaching

JOINT_MAX_CLASSES = 64
"""At most this many classes in one joint head (the class and the siblings that contest most
of its photos, those that pass their cut on some of them): a bound for a parent keyword over
thousands (each class then fits its own joint head: ``finder suggest`` without a name over
thousands of siblings fits thousands)."""
JOINTS_KEPT = 8
"""Joint heads kept between calls (``Siblings.joints``)."""


@dataclass(frozen=True)
class Rival:
    """An exclusive sibling: its filing and its head."""

    record: FilingRecord
    head: Head


class Siblings:
    """The exclusive siblings of the filed classes of the library in ``folder``."""

    def __init__(self, folder: Folder, teaching: Teaching) -> None:
        self.folder = folder
        self.teaching = teaching
        self.joints: dict[bytes, Joint] = {}  # by the classes, their filed photos, the metric

    def rivals(self, record: FilingRecord) -> list[Rival]:
        """The siblings that exclude class ``record.name``, those learned with the library's
        backbone."""
        siblings = set(record.siblings)
        out = []
        for f in self.folder.open_catalog().filings():
            if f.key in siblings and exclusive(record, f):
                try:
                    out.append(Rival(f, self.teaching.head(f.name)))
                except FinderError:  # another backbone's: not a rival until learned again
                    continue
        return out

    def min_prob(self, record: FilingRecord, rivals: list[Rival]) -> float:
        """The probability above which ``suggest`` looks: the class's cut lowered by its slack."""
        own = self.teaching.head(record.name)
        slack = exclusive_slack(own, [r.head for r in rivals])
        return float(sigmoid(np.asarray([own.logit_threshold - slack]))[0])

    def keep(self, record: FilingRecord, rivals: list[Rival], found: list[Match]) -> list[Match]:
        """The photos among ``found`` that no rival takes (:meth:`kept`)."""
        if not rivals or not found:
            return found
        ids = np.asarray([m.id for m in found], dtype=np.int64)
        kept = self.kept(record, rivals, self.folder.open_vectors().get(ids))
        return [m for m, k in zip(found, kept, strict=True) if k]

    def kept(self, record: FilingRecord, rivals: list[Rival], X: np.ndarray) -> np.ndarray:
        """Which of the photos ``X`` no rival takes from class ``record.name``
        (``learn.joint.keep_own``: by the margins, and the joint head where there is one)."""
        own = self.teaching.head(record.name)
        mine = own.logits(X) - own.logit_threshold
        theirs = [r.head.logits(X) - r.head.logit_threshold for r in rivals]
        log_q, joined = self._log_q(record, rivals, theirs, X)
        return keep_own(mine, theirs, log_q, joined)

    def _filed(self, record: FilingRecord) -> np.ndarray:
        """The photos filed under the class, less those the person marked ✗ for it."""
        ids = self.folder.open_catalog().source_ids(record.source, record.key)
        crossed = [m.id for m in self.teaching.marks(record.name) if m.label == 0]
        return np.setdiff1d(ids, np.asarray(crossed, dtype=np.int64)) if crossed else ids

    def _log_q(
        self, record: FilingRecord, rivals: list[Rival], theirs: list[np.ndarray], X: np.ndarray
    ) -> tuple[np.ndarray | None, list[bool]]:
        """The joint head's log-probabilities of ``X`` over the class and its rivals of
        ``JOINT_MIN_FILED`` filed photos or more (at most ``JOINT_MAX_CLASSES``: those that
        take most of its photos), the class's column first, then those rivals' in order; and
        which rivals are in it. (None, []) when the class or every rival has fewer, or the
        joint head is not trusted (``Joint.trusted``)."""
        own = self._filed(record)
        if len(own) < JOINT_MIN_FILED:
            return None, []
        filed = [self._filed(r.record) for r in rivals]
        able = [k for k, f in enumerate(filed) if len(f) >= JOINT_MIN_FILED]
        if len(able) > JOINT_MAX_CLASSES - 1:
            contested = [int(np.sum(theirs[k] >= 0)) for k in able]
            order = np.argsort(-np.asarray(contested), kind="stable")[: JOINT_MAX_CLASSES - 1]
            able = sorted(able[int(j)] for j in order if contested[int(j)] > 0)
        if not able:
            return None, []
        # one head per set of classes, whichever of them asks: its columns in name order
        members = {record.name: own, **{rivals[k].record.name: filed[k] for k in able}}
        names = sorted(members)
        groups = [draw(members[n]) for n in names]
        metric = self.teaching.metric()  # refitted as the library grows: a new key then
        key = hashlib.sha1(
            b"".join(n.encode() + b"|" + g.tobytes() for n, g in zip(names, groups, strict=True))
            + (b"" if metric is None else np.asarray(metric.s).tobytes())
        ).digest()
        joint = self.joints.get(key)
        if joint is None:
            vectors = self.folder.open_vectors()
            joint = Joint([vectors.get(g) for g in groups], metric)
            if len(self.joints) >= JOINTS_KEPT:
                self.joints.pop(next(iter(self.joints)))
            self.joints[key] = joint
        if not joint.trusted:  # it cannot tell its classes apart held out: the margins alone
            return None, []
        log_q = log_softmax(joint.scores(X), axis=1)
        columns = [names.index(record.name), *(names.index(rivals[k].record.name) for k in able)]
        joined = [False] * len(rivals)
        for k in able:
            joined[k] = True
        return log_q[:, columns], joined


def exclusive(a: FilingRecord, b: FilingRecord) -> bool:
    """Whether a photo is of one of two sibling classes at most: folders learned together (a
    photo is in one folder), keywords below one parent (``Flowers|Daisy``, ``Flowers|Rose``)."""
    if a.source == FOLDER:
        return True
    pa, pb = path_parts(a.key), path_parts(b.key)
    return len(pa) > 1 and pa[:-1] == pb[:-1]
