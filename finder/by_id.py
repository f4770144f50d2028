"""A library by image id: photos, their neighbours, marks and thumbnails, for the web page."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from finder.answers import Mark, Match
from finder.embed.registry import identity_key as _backbone_key
from finder.errors import (
    UnknownImage,
    UsageError,
)
from finder.learn.head import Head
from finder.store.catalog import OK
from finder.sync import Progress, ProgressFn

if TYPE_CHECKING:
    from finder.library import Library
    from finder.store.catalog import ImageRow
    from finder.store.thumbs import ThumbCache


class ById:
    """A :class:`~finder.library.Library` by image id (a part of it): what ``finder serve``
    needs. Images are named by id, never by a path taken from the caller."""

    #: Open shared (`Library.open_shared`): never take the library's lock, so that `finder
    #: index` can run beside; the vectors are read-only (refreshed by `refresh`), the catalog
    #: is written (classes and their examples) as `learn` from another process would.
    shared: bool = False
    _vectors_seen: tuple | None = None

    @classmethod
    def open_shared(cls, directory: str | os.PathLike | None = None) -> Library:
        lib = cls(directory)
        lib.shared = True
        return lib

    def refresh(self) -> bool:
        """Let the next search see what another process indexed since the vectors were opened
        (a shared library only): they are opened again when their files changed. Returns
        whether they will be."""
        folder = self.dir / "vectors"
        try:
            stats = ((e.name, e.stat()) for e in os.scandir(folder))
            seen = tuple(sorted((name, st.st_size, st.st_mtime_ns) for name, st in stats))
        except OSError:
            seen = ()
        if not self.shared or seen == self._vectors_seen:
            return False
        self._vectors_seen = seen
        if self._store is not None:
            self._store.close()
            self._store = None
            return True
        return False

    def image(self, image_id: int) -> ImageRow:
        """The catalog row of an indexed (status ok) image; ``UnknownImage`` otherwise."""
        row = self.catalog.image(image_id) if self.exists else None
        if row is None or row.status != OK:
            raise UnknownImage(f"no indexed image has the id {image_id}")
        return row

    def browse(self, offset: int = 0, limit: int = 100) -> tuple[int, list[Match]]:
        """(number of indexed images, ``limit`` of them from ``offset``, by id; score 0)."""
        if not self.exists:
            return 0, []
        total, rows = self.catalog.ok_page(max(0, offset), max(0, limit))
        return total, [Match(path, 0.0, i) for i, path in rows]

    def similar_to_id(self, image_id: int, *, top: int = 20) -> list[Match]:
        """The ``top`` indexed images nearest to indexed image ``image_id``, best first."""
        if top < 1:
            raise UsageError("--top must be at least 1")
        self.image(image_id)
        ids = np.asarray([image_id], dtype=np.int64)
        if not self.store.has(ids)[0]:
            raise UnknownImage(f"no indexed image has the id {image_id}")
        found, sims = self.store.search_similar(self.store.get(ids)[0], top, exclude_ids=ids)
        return self._matches(found, sims)

    def class_record(self, name: str) -> dict:
        """The record of class ``name`` (as ``learn`` returns it); ``UnknownClass`` if none."""
        return self._class(name)

    def class_scores(self, image_id: int) -> list[tuple[str, float, int | None]]:
        """For each class learned with this library's backbone: (name, probability of indexed
        image ``image_id``, its mark: 1 an example, 0 a counter-example, None unmarked)."""
        row = self.image(image_id)
        records = self.classes()
        if not records:
            return []
        key = _backbone_key(self._require_indexed())
        x = self.store.get(np.asarray([image_id], dtype=np.int64))
        out = []
        for record in records:
            if record["backbone"] != key:
                continue
            prob = float(Head.from_dict(record["head"]).proba(x)[0])
            mark = self.catalog.example_label(record["name"], row.path)
            out.append((record["name"], prob, mark))
        return out

    def marks(self, name: str) -> list[Mark]:
        """The examples (label 1) and counter-examples (label 0) of class ``name``, with the id
        of each that is an indexed image (None for a photo outside the library)."""
        out = []
        for path, label in self.examples(name):
            row = self.catalog.image_by_path(path)
            out.append(Mark(row.id if row is not None and row.status == OK else None, path, label))
        return out

    def learn_ids(
        self,
        name: str,
        add: Sequence[int] = (),
        not_: Sequence[int] = (),
        undo: Sequence[int] = (),
        *,
        seed: int = 0,
    ) -> dict:
        """``learn`` by image id: ``add`` are of the class (✓), ``not_`` are not (✗), and the
        marks of ``undo`` are taken back; the class is trained again once. All or nothing: a
        bad id or an impossible request raises before anything changes."""
        name = name.strip()
        add_ids, not_ids, undo_ids = (list(dict.fromkeys(map(int, i))) for i in (add, not_, undo))
        if set(add_ids) & set(not_ids):
            raise UsageError("a photo cannot be both of the class and not of it")
        if set(undo_ids) & set(add_ids + not_ids):
            raise UsageError("a photo cannot be marked and unmarked at once")
        add_paths, not_paths, undo_paths = (
            [self.image(i).path for i in ids] for ids in (add_ids, not_ids, undo_ids)
        )
        if undo_paths:
            marked = {p for p, _ in self.examples(name)}
            unmarked = [i for i, p in zip(undo_ids, undo_paths, strict=True) if p not in marked]
            if unmarked:
                raise UsageError(f"photo {unmarked[0]} is not marked for class {name!r}")
        with self.catalog.transaction():  # one commit: marks removed and the class retrained
            if undo_paths:
                self.catalog.remove_examples(name, undo_paths)
            return self.learn(name, add_paths, negatives=not_paths, seed=seed)

    @property
    def thumbs(self) -> ThumbCache:
        from finder.store.thumbs import ThumbCache

        return ThumbCache(self.dir / "thumbs")

    def thumbnail(self, image_id: int) -> Path:
        """The thumbnail file (JPEG, short side about 256 px, EXIF-oriented) of an indexed
        image, made now when missing. ``DecodeError`` when the photo cannot be read."""
        return self.thumbs.get(self.image(image_id))

    def make_thumbnails(self, progress: ProgressFn | None = None) -> tuple[int, int]:
        """Make the missing thumbnails of every indexed image: (made, failed)."""
        ids = self.catalog.ok_ids()
        last = max(ids, default=-1)
        rows = (r for lo in range(0, last + 1, 1000) for r in self.catalog.ok_rows(lo, lo + 1000))
        report = (
            (lambda done: progress(Progress("thumbnails", done, len(ids)))) if progress else None
        )
        return self.thumbs.make_many(rows, workers=self.workers, progress=report)

    def _thumbnails_after_run(self, make: bool, progress: ProgressFn | None) -> bool:
        """End of an index run: drop the thumbnails of images that changed or left, make the
        missing ones when asked. Returns True when Ctrl-C stopped it."""
        try:
            self.thumbs.sweep(self.catalog.ok_rows)
            if make:
                self.make_thumbnails(progress)
        except KeyboardInterrupt:
            return True
        return False

    def _publishing(self, progress: ProgressFn | None) -> ProgressFn:
        """``progress``, also published in the library folder for other processes."""
        from finder.store.progress import ProgressFile

        published = ProgressFile(self.dir)

        def report(event: Progress) -> None:
            published.publish(event.phase, event.done, event.total, event.root)
            if progress:
                progress(event)

        return report

    def index_progress(self) -> dict[str, Any] | None:
        """The last progress published by an index run (``running`` tells whether it still
        runs), or None."""
        from finder.store.progress import read

        return read(self.dir)
