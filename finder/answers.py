"""Answers from a library: the photos of a class (``find``), the ones it most wants a verdict
on (``review``), the ones most like a photo (``similar``), as :class:`Match` records."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from finder.embedder import Embedder
from finder.errors import Arg, UsageError
from finder.folder import Folder
from finder.ingest import crawl, files
from finder.learn.head import logit, sigmoid
from finder.learn.strip import near_cut, spread
from finder.moments import Items, group, parse_time, split_moment
from finder.neighbours import Neighbours
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
    kind: str = "photo"  # "photo" or "video" (scored by its best frame)
    time: float | None = None  # a video's: the best frame's time, seconds from the start
    frame: int | None = None  # a video's: the best frame's id (its vector's key)
    #: a video's other frames in the answer, best first: (frame id, time, score)
    moments: tuple[tuple[int, float, float], ...] = ()
    #: a strip's photo (``Library.strip``): finder's own verdict (above the cut), and for a
    #: photo drawn at random its chance of being drawn (None: chosen, or no strip)
    guess: bool | None = None
    chance: float | None = None

    @property
    def random(self) -> bool:
        """Whether a strip drew this photo at random (its mark then speaks for others)."""
        return self.chance is not None

    @property
    def key(self) -> int:
        """The id of the vector that stands for this item (a photo's id, a video's frame)."""
        return self.frame if self.frame is not None else self.id


SORTS = ("score", "date")
#: A search as ``Answers.items`` runs it: the ``n`` best vector ids and their scores, best first
#: (every one that qualifies when ``n`` is None).
Search = Callable[[int | None], tuple[np.ndarray, np.ndarray]]


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
        self.neighbours = Neighbours(folder, teaching)  # the re-rank near a class's cut

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
        answer exactly (``finder.store.filtered``); ``sort="date"`` orders it by date taken.
        Without ``min_prob``, the photos near the cut are re-ranked by their library
        neighbours (``finder.neighbours``; the head's own answer when the library has no
        graph of its vectors)."""
        if top is not None and top < 1:
            raise UsageError(Arg("top"), " must be at least 1")
        if min_prob is not None and not 0.0 <= min_prob <= 1.0:
            raise UsageError(Arg("min_prob"), " must be between 0 and 1")
        _check_sort(sort)
        head = self.teaching.head(name)
        smoothing = self.neighbours.for_head(name, head) if min_prob is None else None
        if top is None and min_prob is None:
            min_prob = head.threshold
        min_score = None if min_prob is None or min_prob <= 0 else logit(min_prob)
        store = self.folder.open_vectors()

        def raw(k: int | None, low: float | None) -> tuple[np.ndarray, np.ndarray]:
            if filters is not None and filters.active:
                catalog = self.folder.open_catalog()
                return filtered.search(catalog, store, filters, head.w, head.b, k=k, min_score=low)
            return store.search_linear(head.w, head.b, k=k, min_score=low)

        def search(k: int | None) -> tuple[np.ndarray, np.ndarray]:
            if smoothing is None:
                return raw(k, min_score)
            return smoothing.search(raw, k, min_score)

        items = self.items(search, top)
        items.scores = sigmoid(items.scores)
        for moments in items.moments.values():
            moments[:] = [(f, t, float(sigmoid(np.asarray([z]))[0])) for f, t, z in moments]
        return self.item_matches(items, sort)

    def items(self, search: Search, k: int | None) -> Items:
        """The ``k`` best items of a search (``search(n)`` gives the ``n`` best vector ids,
        best first, every one when ``n`` is None): frames of one video may crowd the top ids,
        so it asks again for twice as many until ``k`` items come out (or the store has no
        more). A threshold search (``k`` None) is complete already: grouping only merges."""
        catalog = self.folder.open_catalog()
        if k is None:
            return group(catalog, *search(None))
        ask = k
        while True:
            ids, scores = search(ask)
            items = group(catalog, ids, scores)
            if len(items) >= k or len(ids) < ask:
                return items.take(slice(0, k))
            ask *= 2

    def review(self, name: str, n: int = 10) -> list[Match]:
        """The ``n`` photos whose verdict (✓ or ✗, then ``learn NAME --add / --not``) would
        teach class ``name`` most: near its cut-off and unlike each other, none already marked.
        Ordered as picked (the nearest the cut first); ``score`` is the probability."""
        if n < 1:
            raise UsageError(Arg("n"), " must be at least 1")
        head = self.teaching.head(name)
        catalog, store = self.folder.open_catalog(), self.folder.open_vectors()
        marked = {m.id for m in self.teaching.marks(self.teaching.class_record(name)["name"])} - {
            None
        }
        cut = head.logit_threshold
        above, _ = store.search_linear(head.w, head.b, min_score=cut)
        # items, one frame per video (its best): a video asked about once
        items = group(
            catalog, *store.search_linear(head.w, head.b, k=len(above) + 4 * n + len(marked))
        )
        z = items.scores
        marked_ids = np.fromiter(marked, np.int64, len(marked))
        free = np.flatnonzero(~np.isin(items.keys, marked_ids) & ~np.isin(items.ids, marked_ids))
        pool = near_cut(z, cut, free, 4 * n)
        picked = pool[spread(store.get(items.keys[pool]), np.abs(z[pool] - cut), n)]
        chosen = items.take(picked)
        chosen.scores = sigmoid(chosen.scores)
        for video in chosen.moments:  # the frame asked about only
            chosen.moments[video] = [
                (f, t, float(sigmoid(np.asarray([s]))[0])) for f, t, s in chosen.moments[video][:1]
            ]
        return self.item_matches(chosen)

    def similar(
        self,
        path: str,
        *,
        top: int = 20,
        filters: Filters | None = None,
        sort: str = "score",
        at: str | float | None = None,
    ) -> list[Match]:
        """The ``top`` library items nearest to ``path`` (cosine similarity), best first:
        photos, and videos by their nearest frame; ``filters`` and ``sort`` as for ``find``.
        A video is asked about at a moment: ``at`` (seconds, ``M:SS``, ``H:MM:SS``) or
        ``clip.mp4@0:12``; an indexed one by its frame nearest that time, never decoded. The
        item asked about is left out of the answer."""
        if top < 1:
            raise UsageError(Arg("top"), " must be at least 1")
        _check_sort(sort)
        moment = split_moment(os.fspath(path)) if at is None else None
        if moment is not None:
            path, at = moment
        full = os.path.abspath(os.path.expanduser(os.fspath(path)))
        need_regular_file(full, path)
        if at is not None:
            vector, frame, video = self.embedder.vector_at(full, parse_time(at))
            exclude_list = [frame, video] if frame is not None else []
            if video is not None:
                exclude_list += self.folder.open_catalog().frame_ids_of([video])
        else:
            if crawl.is_video_name(full):
                raise UsageError(
                    f"{path} is a video: say which moment with ",
                    Arg("at"),
                    " (seconds, M:SS or H:MM:SS), or write it as clip.mp4@0:12",
                )
            vectors, ids = self.embedder.vectors_for([full])
            vector = vectors[0]
            exclude_list = [ids[0]] if ids[0] is not None else []
        return self.similar_to_vector(vector, exclude_list, top=top, filters=filters, sort=sort)

    def similar_to_vector(
        self,
        vector: np.ndarray,
        exclude: list[int],
        *,
        top: int,
        filters: Filters | None = None,
        sort: str = "score",
    ) -> list[Match]:
        """The ``top`` items nearest to ``vector``, the vector ids ``exclude`` left out."""
        ex = np.asarray(sorted(set(exclude)), dtype=np.int64) if exclude else None
        store = self.folder.open_vectors()

        def search(k: int | None) -> tuple[np.ndarray, np.ndarray]:
            assert k is not None
            if filters is not None and filters.active:
                return filtered.search(
                    self.folder.open_catalog(),
                    store,
                    filters,
                    vector,
                    k=k,
                    head=False,
                    exclude_ids=ex,
                )
            return store.search_similar(vector, k, exclude_ids=ex)

        return self.item_matches(self.items(search, top), sort)

    def matches(self, ids: np.ndarray, scores: np.ndarray, sort: str = "score") -> list[Match]:
        """Matches of vector ids (best first), grouped by item (a video by its best frame),
        with their paths and dates; by date with ``sort``."""
        return self.item_matches(group(self.folder.open_catalog(), ids, scores), sort)

    def item_matches(self, items: Items, sort: str = "score") -> list[Match]:
        """Matches of items (best first) with their paths and dates; by date with ``sort``."""
        catalog = self.folder.open_catalog()
        if sort == "date":
            items = items.take(filtered.by_date(catalog, items.ids))
        ids = items.ids.tolist()
        paths = catalog.paths_for(ids, searchable=True)
        taken = stored_facts.dates(catalog, ids)
        out = []
        for i, key, s in zip(ids, items.keys.tolist(), items.scores.tolist(), strict=True):
            if i not in paths:
                continue
            moments = items.moments.get(i)
            if moments is None:
                out.append(Match(paths[i], float(s), i, taken.get(i)))
                continue
            out.append(
                Match(
                    paths[i],
                    float(s),
                    i,
                    taken.get(i),
                    kind="video",
                    time=moments[0][1],
                    frame=key,
                    moments=tuple((f, t, float(z)) for f, t, z in moments[1:]),
                )
            )
        return out

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
        re-encoded, lightly cropped or edited) among the indexed images; with ``under`` (a
        folder), the groups with a file in it or below, each whole (its other files may be
        elsewhere). Each group's first file is the one suggested to keep, chosen over the whole
        group. Never deletes anything. See :mod:`finder.act.dupes`."""
        from finder.act.dupes import find_dupes

        self.folder.require_indexed()
        folder = stored_facts.folder_under(under) if under is not None else None
        return find_dupes(self.folder.open_catalog(), self.folder.open_vectors(), folder)


def need_regular_file(full: str, given: str) -> None:
    """A one-line UsageError unless ``full`` is a regular file, saying what it is instead."""
    what = files.file_kind(full)
    if what == "missing":
        raise UsageError(f"no such file: {given}")
    if what != "file":
        raise UsageError(f"{given} is {what}, not a photo")
