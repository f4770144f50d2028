"""The one thread that talks to the library, and the answers the pages and the API share.

SQLite connections and the vector store belong to the thread that opened them, and a library
is not meant to be used by several threads at once: every library call of the app runs on one
worker thread (``Backend.run``), in order. Decoding thumbnails, the slow part of a page, runs
in a small pool of its own (``Backend.thumbnail``), at most one decode per core.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio

from finder.errors import Arg, FinderError, UsageError
from finder.library import Change, ImageRow, Library, Match
from finder.show.text import class_json

T = TypeVar("T")
KEY_LENGTH = 16  # hex digits of a mark's key
REFRESH_EVERY = 1.0  # seconds between two looks at whether another process added vectors
CHANGES = 500  # photos a page is told about in one answer (more: it asks again at once)
#: The files whose stats tell whether anything a page shows may have changed.
LIVE_FILES = ("catalog.db", "catalog.db-wal", "progress.json", "owner.json")


def mark_key(path: str) -> str:
    """The key the page and the API name a class's mark by (``/api/drop``): a digest of its
    path, so that a photo outside the library (no image id) can be named without sending a
    path."""
    return hashlib.sha256(os.fsencode(path)).hexdigest()[:KEY_LENGTH]


@dataclass(frozen=True)
class Ranked:
    """One page of a class's ranking with its marked photos taken out."""

    items: list[Match]
    offset: int
    before: float | None  # probability of the photo just before this page (None: first page)
    more: bool  # whether the ranking goes on after this page


class Backend:
    """A library opened shared (``Library.open_shared``) behind one worker thread."""

    def __init__(self, directory: str | os.PathLike | None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="finder-library")
        self.lib: Library = self._pool.submit(Library.open_shared, directory).result()
        self.thumbs = self.lib.thumbs  # files of the library folder: any thread reads them
        self._decoders = anyio.CapacityLimiter(max(1, os.cpu_count() or 1))
        self._refreshed = 0.0
        self._refresh_every = REFRESH_EVERY
        self._reader: Library | None = None

    def image(self, image_id: int) -> ImageRow:
        """``Library.image`` answered on the event loop's own thread, from a catalog connection
        of its own: a thumbnail's lookup (a few microseconds) never waits for the library's
        thread, nor for the hand-over between threads (milliseconds on a busy machine)."""
        if self._reader is None:
            self._reader = Library.open_shared(self.lib.dir)
        return self._reader.image(image_id)

    def item(self, key: int) -> tuple[ImageRow, int | None, float | None]:
        """``Library.item`` answered on the event loop's thread, as ``image`` is."""
        if self._reader is None:
            self._reader = Library.open_shared(self.lib.dir)
        return self._reader.item(key)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on the library's thread."""
        return await asyncio.wrap_future(self._pool.submit(self._call, fn, args, kwargs))

    def _call(self, fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
        now = time.monotonic()
        if now - self._refreshed > self._refresh_every:
            self._refreshed = now
            if self.lib.refresh():  # another process changed the vectors: they open again
                result = fn(*args, **kwargs)
                # A large library takes long to open: while an index run keeps changing it,
                # look again only after ten times what opening (and answering) took.
                self._refresh_every = max(REFRESH_EVERY, 10 * (time.monotonic() - now))
                return result
        return fn(*args, **kwargs)

    async def thumbnail(
        self, row: ImageRow, frame: int | None = None, seconds: float | None = None
    ) -> Path:
        """The thumbnail file of ``row`` (of its video's frame ``frame``, at ``seconds``),
        decoded now (off the event loop) when missing."""
        if frame is not None and seconds is not None:
            path = self.thumbs.frame_file(row, frame)
            if not path.is_file():
                path = await anyio.to_thread.run_sync(
                    self.thumbs.frame, row, frame, seconds, limiter=self._decoders
                )
            return path
        path = self.thumbs.cached(row)
        if path is None:
            path = await anyio.to_thread.run_sync(self.thumbs.make, row, limiter=self._decoders)
        return path

    def close(self) -> None:
        """Close the library; call from the event loop's thread (the reader's)."""
        if self._reader is not None:
            self._reader.close()
        self._pool.submit(self.lib.close).result()
        self._pool.shutdown()

    # -- live updates: what changed since a page was shown ------------------------------------
    def files_key(self) -> str:
        """What the library's files look like now (the catalog and its log, the progress and
        the writer's record: a few stats, any thread): while it stays the same, nothing a page
        shows has changed, and a page's poll costs no more than this."""
        parts = []
        for name in LIVE_FILES:
            try:
                st = os.stat(self.lib.dir / name)
                parts.append(f"{st.st_size}.{st.st_mtime_ns}")
            except OSError:
                parts.append("-")
        return hashlib.blake2b("/".join(parts).encode(), digest_size=8).hexdigest()

    def stamp(self) -> str:
        """The stamp of a page shown now (on the library's thread, before what it shows is
        read): its next ``changes`` are asked since it. The catalog is opened first: the
        first opening may make its log file, which is no change."""
        self.lib.last_change()
        return f"{self.files_key()}:{self.lib.last_change()!r}"

    def changes(self, key: str, since: float) -> dict[str, Any]:
        """What changed since the moment ``since``, for a page (``/api/changes``): the photos
        embedded since, which of them each class finds, the counts, the offline photos, the
        progress of an index run. ``key`` (``files_key``, read before) goes into the stamp
        unless more is to come (then the next poll asks again at once)."""
        lib = self.lib
        found = lib.changes_since(since, CHANGES)
        counts = found.counts
        return {
            "stamp": f"{key if found.complete else 'again'}:{found.stamp!r}",
            "changed": True,
            "again": not found.complete,
            "images": counts.get("ok", 0),
            "pending": counts.get("pending", 0),
            "failed": counts.get("failed", 0),
            **lib.offline_roots(),
            "added": found.added,
            "classes": found.classes,
            "progress": lib.index_progress(),
        }

    def cards(self, ids: list[int]) -> list[Match]:
        """The indexed photos among ``ids`` (others left out), for cards added to a page."""
        out = []
        for i in ids:
            try:
                row = self.lib.image(i)
            except FinderError:
                continue
            out.append(Match(row.path, 0.0, row.id))
        return out

    # -- what each page shows, in one call on the library thread ------------------------------
    def home(self, offset: int, limit: int) -> dict[str, Any]:
        lib = self.lib
        stamp = self.stamp()
        total, photos = lib.browse(offset, limit)
        classes = lib.classes()
        return {
            "status": lib.status(),
            "classes": classes,
            "sizes": {c["name"]: self._size(c["name"]) for c in classes},
            "photos": photos,
            "total": total,
            "progress": lib.index_progress(),
            "forgotten": lib.forgotten(),
            "stamp": stamp,
        }

    def classes_json(self) -> list[dict[str, Any]]:
        """The classes as ``classes --json`` gives them, each with its ``estimate``."""
        out = []
        for record in self.lib.classes():
            try:
                estimate = self.lib.estimate(record["name"])
            except FinderError:  # learned with another backbone
                estimate = None
            out.append(class_json(record) | {"estimate": estimate})
        return out

    # -- a class's life ------------------------------------------------------------------------
    def rename(self, name: str, new: str) -> dict[str, Any]:
        return self.lib.rename(self.lib.class_record(name)["name"], new)

    def forget(self, name: str) -> dict[str, Any]:
        """Forget class ``name``; its record as ``Library.forgotten`` now lists it."""
        stored = self.lib.forget(name)
        return next(r for r in self.lib.forgotten() if r["name"] == stored)

    def drop(self, name: str, ids: list[int], keys: list[str]) -> dict[str, Any]:
        """Take back the marks of class ``name`` on the images ``ids`` and those named by their
        ``keys`` (``mark_key``): one retraining, all or nothing."""
        marks = self.lib.marks(name)
        by_id = {m.id: m.path for m in marks if m.id is not None}
        by_key = {mark_key(m.path): m.path for m in marks}
        for i in ids:
            if i not in by_id:
                raise UsageError(Arg("ids"), f": photo {i} is not marked for class {name!r}")
        for k in keys:
            if k not in by_key:
                raise UsageError(Arg("marks"), f": {k!r} is not a mark of class {name!r}")
        paths = [by_id[i] for i in ids] + [by_key[k] for k in keys]
        if not any(m.label == 1 and m.path not in set(paths) for m in marks):
            raise UsageError(
                f"that takes back every example of {name!r}: a class needs one (forget "
                "removes the class)"
            )
        record = self.lib.apply(
            Change(self.lib.class_record(name)["name"], undo=tuple(dict.fromkeys(paths)))
        )
        assert record is not None
        return record

    def _size(self, name: str) -> int | None:
        """How many photos class ``name`` holds (at or above its cut-off); None when it
        cannot say (learned with another backbone, no vectors yet)."""
        try:
            return len(self.lib.find(name))
        except FinderError:
            return None

    def class_view(self, name: str, offset: int, limit: int) -> dict[str, Any]:
        """The class record, its marks and one page of its ranking without the marked photos.
        (The photos to review come apart, ``review_view``: at 100,000 images they take a
        second, the rest a few milliseconds.)"""
        lib = self.lib
        stamp = self.stamp()
        record = lib.class_record(name)
        marks = lib.marks(name)
        marked = {m.id for m in marks if m.id is not None}
        top = offset + limit + 1 + len(marked)
        ranked = [m for m in lib.find(name, top=top) if m.key not in marked]
        before = ranked[offset - 1].score if 0 < offset <= len(ranked) else None
        page = Ranked(ranked[offset : offset + limit], offset, before, len(ranked) > offset + limit)
        return {
            "record": record,
            "marks": marks,
            "ranked": page,
            "review": None,  # fetched apart (review_view), or given by teach_class
            "strip": None,  # fetched apart (strip_view), or given by teach_strip
            "estimate": lib.estimate(record["name"]),
            "classes": lib.classes(),
            "stamp": stamp,
        }

    def teach_class(
        self, name: str, marks: dict[str, list[int]], limit: int, n: int
    ) -> dict[str, Any]:
        """A ✓, ✗ or undo on the class page (``marks``: ``add``, ``not``, ``undo`` ids), and the
        class page after it: one request a click. (The strip on the page stays as it is, the
        person's flips on it kept: ``n`` is not used since strips replaced the review row.)"""
        record = self.lib.learn_ids(name, marks["add"], marks["not"], marks["undo"])
        return self.class_view(record["name"], 0, limit)

    def strip_view(self, name: str, n: int) -> dict[str, Any]:
        """The strip of ``n`` photos class ``name`` wants a verdict on (``Library.strip``)."""
        record = self.lib.class_record(name)
        return {"record": record, "strip": self.lib.strip(record["name"], n)}

    def strip_taught(self, name: str, marks: dict[str, list[int]]) -> str:
        """A strip's verdicts given (``add``, ``not``, ``skip``) or taken back (``undo``,
        ``unskip``): one retraining at most. Returns the class's stored name."""
        name = self.lib.class_record(name)["name"]
        if marks.get("skip"):  # "not sure": teaches nothing, never offered again
            self.lib.skip(name, marks["skip"])
        if marks.get("unskip"):  # a strip taken back: its skipped photos offered again
            self.lib.skip(name, marks["unskip"], skipped=False)
        if marks["add"] or marks["not"] or marks["undo"]:
            self.lib.learn_ids(name, marks["add"], marks["not"], marks["undo"])
        return name

    def teach_strip(
        self, name: str, marks: dict[str, list[int]], limit: int, n: int
    ) -> dict[str, Any]:
        """A strip confirmed (``add``: its ✓, ``not``: its ✗, ``skip``: its "not sure") or
        taken back (``undo``, ``unskip``): every photo of it taught at once, one retraining,
        and the class page after it with the next strip of ``n``."""
        name = self.strip_taught(name, marks)
        strip = self.lib.strip(name, n)  # first: its complete search serves the page's top too
        view = self.class_view(name, 0, limit)
        view["strip"] = strip
        return view

    def teach_photo(
        self, image_id: int, name: str, marks: dict[str, list[int]], limit: int
    ) -> dict[str, Any]:
        """A ✓, ✗ or undo of class ``name`` on a photo's page, and the page after it."""
        self.lib.learn_ids(name, marks["add"], marks["not"], marks["undo"])
        return self.photo_view(image_id, 0, limit)

    def review_view(self, name: str, n: int) -> dict[str, Any]:
        return {
            "record": self.lib.class_record(name),
            "review": self.review(name, n),
            "classes": self.lib.classes(),
        }

    def review(self, name: str, n: int) -> list[Match]:
        """The photos finder most wants a verdict on, when the library offers them."""
        review = getattr(self.lib, "review", None)
        return list(review(name, n)) if review is not None else []

    def photo_view(self, image_id: int, offset: int, limit: int) -> dict[str, Any]:
        """The photo's row, its probability in each class and one page of similar photos."""
        lib = self.lib
        row = lib.item(image_id)[0]
        similar = lib.similar_to_id(image_id, top=offset + limit + 1)[offset:]
        return {
            "row": row,
            "offline": lib.offline(row.id) if offset == 0 else None,
            "video": lib.video_view(image_id) if offset == 0 else None,
            "scores": lib.class_scores(image_id) if offset == 0 else [],
            "similar": similar[:limit],
            "more": len(similar) > limit,
            "classes": lib.classes(),
        }
