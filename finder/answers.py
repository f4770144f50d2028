"""Answers from a library: the photos of a class (``find``), the ones it most wants a verdict
on (``review``), the ones most like a photo (``similar``), as :class:`Match` records."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from finder.embedder import Embedder
from finder.errors import Arg, UsageError
from finder.folder import Folder
from finder.ingest import crawl
from finder.learn.feedback import near_cut, spread
from finder.learn.head import logit, sigmoid
from finder.store import facts as stored_facts
from finder.store import filtered
from finder.store.catalog import OK
from finder.store.facts import Filters
from finder.teach import Teaching

if TYPE_CHECKING:
    from finder.act.dupes import DupeGroup


@dataclass(frozen=True)
class Match:
    path: str
    score: float  # probability for find, cosine similarity for similar
    id: int
    taken: str | None = None  # date taken, with its UTC offset when known (finder.ingest.facts)


SORTS = ("score", "date")


def _check_sort(sort: str) -> None:
    if sort not in SORTS:
        raise UsageError(Arg("sort"), f" must be one of {', '.join(SORTS)}, not {sort!r}")


class Answers:
    """The answers of the library in ``folder``, read-only: ``find`` and ``review`` (the
    classes of ``teaching``), ``similar`` (a photo's vector through ``embedder``), ``dupes``."""

    def __init__(self, folder: Folder, embedder: Embedder, teaching: Teaching) -> None:
        self.folder = folder
        self.embedder = embedder
        self.teaching = teaching

    # -- search -------------------------------------------------------------------------
    def find(
        self,
        name: str,
        *,
        top: int | None = None,
        min_prob: float | None = None,
        filters: Filters | None = None,
        sort: str = "score",
    ) -> list[Match]:
        """Library images of class ``name``, best first. With neither ``top`` nor
        ``min_prob``: those at or above the class's learned cut-off. ``filters`` narrow the
        answer exactly (``finder.store.filtered``); ``sort="date"`` orders it by date taken."""
        if top is not None and top < 1:
            raise UsageError(Arg("top"), " must be at least 1")
        if min_prob is not None and not 0.0 <= min_prob <= 1.0:
            raise UsageError(Arg("min_prob"), " must be between 0 and 1")
        _check_sort(sort)
        head = self.teaching.head(name)
        if top is None and min_prob is None:
            min_prob = head.threshold
        min_score = None if min_prob is None or min_prob <= 0 else logit(min_prob)
        store = self.folder.open_vectors()
        if filters is not None and filters.active:
            catalog = self.folder.open_catalog()
            ids, scores = filtered.search(
                catalog, store, filters, head.w, head.b, k=top, min_score=min_score
            )
        else:
            ids, scores = store.search_linear(head.w, head.b, k=top, min_score=min_score)
        return self.matches(ids, sigmoid(scores), sort)

    def review(self, name: str, n: int = 10) -> list[Match]:
        """The ``n`` photos whose verdict (✓ or ✗, then ``learn NAME --add / --not``) would
        teach class ``name`` most: near its cut-off and unlike each other, none already marked.
        Ordered as picked (the nearest the cut first); ``score`` is the probability."""
        if n < 1:
            raise UsageError(Arg("n"), " must be at least 1")
        head = self.teaching.head(name)
        catalog, store = self.folder.open_catalog(), self.folder.open_vectors()
        marked = {
            row.id
            for e in catalog.examples(self.teaching.class_record(name)["name"])
            if (row := catalog.image_by_path(e.path)) is not None
        }
        cut = head.logit_threshold
        above, _ = store.search_linear(head.w, head.b, min_score=cut)
        ids, z = store.search_linear(head.w, head.b, k=len(above) + 4 * n + len(marked))
        free = np.flatnonzero(~np.isin(ids, np.fromiter(marked, np.int64, len(marked))))
        pool = near_cut(z, cut, free, 4 * n)
        picked = pool[spread(store.get(ids[pool]), np.abs(z[pool] - cut), n)]
        return self.matches(ids[picked], sigmoid(z[picked]))

    def similar(
        self, path: str, *, top: int = 20, filters: Filters | None = None, sort: str = "score"
    ) -> list[Match]:
        """The ``top`` library images nearest to ``path`` (cosine similarity), best first;
        ``filters`` and ``sort`` as for ``find``."""
        if top < 1:
            raise UsageError(Arg("top"), " must be at least 1")
        _check_sort(sort)
        full = os.path.abspath(os.path.expanduser(os.fspath(path)))
        need_regular_file(full, path)
        vectors, ids = self.embedder.vectors_for([full])
        exclude = np.asarray([ids[0]], dtype=np.int64) if ids[0] is not None else None
        store = self.folder.open_vectors()
        if filters is not None and filters.active:
            found, sims = filtered.search(
                self.folder.open_catalog(),
                store,
                filters,
                vectors[0],
                k=top,
                head=False,
                exclude_ids=exclude,
            )
        else:
            found, sims = store.search_similar(vectors[0], top, exclude_ids=exclude)
        return self.matches(found, sims, sort)

    def matches(self, ids: np.ndarray, scores: np.ndarray, sort: str = "score") -> list[Match]:
        """Matches of ids (best first) with their paths and dates; by date with ``sort``."""
        catalog = self.folder.open_catalog()
        if sort == "date":
            order = filtered.by_date(catalog, ids)
            ids, scores = ids[order], scores[order]
        paths = catalog.paths_for(ids.tolist(), searchable=True)
        taken = stored_facts.dates(catalog, ids.tolist())
        return [
            Match(paths[int(i)], float(s), int(i), taken.get(int(i)))
            for i, s in zip(ids, scores, strict=True)
            if int(i) in paths
        ]

    def vectors_under(self, root: str) -> tuple[list[str], np.ndarray]:
        """Paths and unit vectors of every indexed image under ``root``, sorted by path."""
        self.folder.require_indexed()
        catalog = self.folder.open_catalog()
        full = os.path.abspath(os.path.expanduser(os.fspath(root)))
        ids = catalog.ids_under(full, OK)
        paths = catalog.paths_for(ids)
        order = sorted(ids, key=lambda i: paths[i])
        vectors = self.folder.open_vectors().get(np.asarray(order, dtype=np.int64))
        return [paths[i] for i in order], vectors

    def dupes(self, under: str | None = None) -> list[DupeGroup]:
        """Groups of byte-identical files and of near-duplicates (the same shot resized,
        re-encoded, lightly cropped or edited) among the indexed images, under the folder
        ``under`` when given; each group's first file is the one suggested to keep. Never
        deletes anything. See :mod:`finder.act.dupes`."""
        from finder.act.dupes import find_dupes

        self.folder.require_indexed()
        folder = stored_facts.folder_under(under) if under is not None else None
        return find_dupes(self.folder.open_catalog(), self.folder.open_vectors(), folder)


def need_regular_file(full: str, given: str) -> None:
    """A one-line UsageError unless ``full`` is a regular file, saying what it is instead."""
    what = crawl.file_kind(full)
    if what == "missing":
        raise UsageError(f"no such file: {given}")
    if what != "file":
        raise UsageError(f"{given} is {what}, not a photo")
