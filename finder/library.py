"""The façade: one library directory holding a SQLite catalog, raw vectors and a FAISS index.

    lib = Library("~/photos-library")
    lib.index(["~/Pictures"])
    lib.learn("cat", ["~/Pictures/cats-examples"])
    for m in lib.find("cat"):
        print(m.score, m.path)

Layout of the directory: ``catalog.db`` (images, classes, examples, meta), ``vectors/`` (the
:class:`~finder.store.vectors.VectorStore`: raw float16 vectors + FAISS index), ``teaching.log``
(every teaching change and the indexed roots, append-only: :mod:`finder.store.journal`),
``images.npz`` (the image map), ``backups/`` and ``lock``.

A :class:`Library` is made of parts, each handed what it needs: a :class:`~finder.folder.Folder`
(the files it holds open and the writer's lock; crash safety and repair are there), an
:class:`~finder.embedder.Embedder` (the backbone, photos' vectors), :class:`~finder.teach.Teaching`
(classes; every change to one passes through ``Teaching.apply``),
:class:`~finder.answers.Answers` (find, review, similar, dupes), :class:`~finder.by_id.ById`
(the web page's calls, by image id), :class:`~finder.health.Health` (status, check, repair),
:class:`~finder.indexing.Indexing` (index runs, thumbnails) and :class:`~finder.filing.Filing`
(classes made from the person's keywords and folders, and suggestions for the rest). The
methods below are the Python API; each hands the call to its part. Those by image id, the web
page's (``image``, ``item``, ``browse``, ``changes_since``, ``thumbnail``, ...), are
:class:`~finder.library_page.PageCalls`'s, which :class:`Library` inherits.

Damage a crash cannot explain (a bad disk, a hand edit) is met as
:class:`~finder.errors.LibraryDamaged`, one line naming ``finder repair``. Each successful index
run backs the catalog up (``backups/``) and writes the image map; every teaching change is
recorded in the teaching journal before it is committed. :meth:`Library.check` lists problems and
:meth:`Library.repair` brings the library back from the newest good backup, the image map, the
recorded roots and the journal (see :mod:`finder.store.repair`).

Readers (``find``, ``similar``, ``status``, ``classes``, ``learn``'s vectors) open the catalog
and the vectors read-only and never take the writer's lock: a read never makes an index run fail,
and a read-only library answers them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from finder.answers import Answers, Match
from finder.by_id import BrowserPhoto, ById, Changes, Moment, VideoView
from finder.carry import Carrying, ClassImport, ImportReport
from finder.embed.identity import BackboneChoice, check_precision
from finder.embedder import Embedder
from finder.errors import FinderError, UsageError
from finder.filing import DEFAULT_MIN, Filing, FilingReport
from finder.folder import Folder, default_library_dir, library_path
from finder.health import Health
from finder.indexing import Indexing
from finder.learn.origin import TOP
from finder.library_page import PageCalls
from finder.moments import format_time, parse_time
from finder.roots import Offline
from finder.store.catalog import ImageRow
from finder.store.facts import Filters
from finder.store.thumbs import ThumbCache
from finder.strips import STRIP, Strip, Strips
from finder.sync import IndexSummary, Progress, ProgressFn
from finder.teach import Change, Mark, Teaching
from finder.watching import Batch, Watcher, WatchOptions

if TYPE_CHECKING:
    from finder.act.dupes import DupeGroup
    from finder.embed.base import Backbone
    from finder.learn.metric import Metric
    from finder.store.backup import RepairReport
    from finder.store.check import Problem


class Library(PageCalls):
    """A photo library on disk. Usable from Python; ``finder.show.cli`` is a thin layer over it.

    ``backbone`` is the choice for a new library (a recorded one must agree); ``memory_budget``
    (bytes) bounds the search index (recorded); ``batch_size`` and ``workers`` are how photos
    are embedded; ``shared`` (``open_shared``) never takes the writer's lock."""

    def __init__(
        self,
        directory: str | os.PathLike | None = None,
        *,
        backbone: BackboneChoice | None = None,
        memory_budget: int | None = None,
        batch_size: int | None = None,
        workers: int | None = None,
        shared: bool = False,
    ) -> None:
        choice = backbone or BackboneChoice()
        if choice.views is not None:
            from finder.ingest.decode import check_views

            check_views(choice.views)
        check_precision(choice.precision)
        if memory_budget is not None and memory_budget <= 0:
            raise UsageError(f"the memory budget must be more than 0 bytes, not {memory_budget}")
        self.dir = library_path(directory if directory else default_library_dir())
        self.folder = Folder(self.dir, memory_budget=memory_budget, shared=shared)
        self.messages = self.folder.messages  # what repairs and index runs said, for a person
        self.embedder = Embedder(self.folder, choice, batch_size=batch_size, workers=workers)
        self.thumbs = ThumbCache(self.dir / "thumbs")
        self.teaching = Teaching(self.folder, self.embedder)
        self.carrying = Carrying(self.folder, self.teaching)
        self.answers = Answers(self.folder, self.embedder, self.teaching)
        self.strips = Strips(self.folder, self.teaching, self.answers)
        self.by_id = ById(self.folder, self.teaching, self.answers, self.thumbs)
        self.health = Health(self.folder, self.thumbs)
        self.indexing = Indexing(self.folder, self.embedder, self.thumbs)
        self.watcher = Watcher(
            self.folder, self.embedder, self.indexing, self.teaching, self.thumbs
        )
        self.filing = Filing(self.folder, self.teaching, self.answers)

    @classmethod
    def open_shared(cls, directory: str | os.PathLike | None = None) -> Library:
        """The library for ``finder serve``: never takes the writer's lock, so that ``finder
        index`` can run beside; its vectors are read-only (see ``refresh``)."""
        return cls(directory, shared=True)

    @property
    def exists(self) -> bool:
        return self.folder.exists

    @property
    def shared(self) -> bool:
        return self.folder.shared

    def close(self) -> None:
        self.folder.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def refresh(self) -> bool:
        """Let the next search see what another process indexed since the vectors were opened
        (a shared library only): they are closed, to be opened again, when their files
        changed. Returns whether they were."""
        return self.folder.close_vectors_if_changed()

    # -- index ------------------------------------------------------------------------------
    def index(
        self,
        roots: Sequence[str],
        *,
        hidden: bool = False,
        exclude: Sequence[str] = (),
        progress: ProgressFn | None = None,
        thumbnails: bool = False,
        ray: str | None = None,
        videos: bool = True,
    ) -> IndexSummary:
        """Bring the library up to date with ``roots`` (see :meth:`Indexing.index`)."""
        return self.indexing.index(
            roots,
            hidden=hidden,
            exclude=exclude,
            progress=progress,
            thumbnails=thumbnails,
            ray=ray,
            videos=videos,
        )

    def watch(
        self,
        roots: Sequence[str],
        options: WatchOptions | None = None,
        *,
        progress: ProgressFn | None = None,
        on_index: Callable[[IndexSummary], None] | None = None,
        on_batch: Callable[[Batch], None] | None = None,
        say: Callable[[str], None] | None = None,
        stop: threading.Event | None = None,
    ) -> IndexSummary:
        """:meth:`index`, then follow the roots until Ctrl-C or ``stop`` (see
        :mod:`finder.watching`); ``on_batch`` hears each batch taken in. Returns the totals."""
        hooks = dict(progress=progress, on_index=on_index, on_batch=on_batch, say=say)
        return self.watcher.watch(roots, options, stop=stop, **hooks)

    def forget_root(self, root: str) -> int:
        """Drop the photos under ``root`` (a root gone for good, e.g. an old disk) and its
        record; returns how many. Takes the writer's lock."""
        return self.indexing.forget_root(root)

    def lock(self) -> None:
        """Take the writer's lock now, kept until ``close``: ``LibraryLocked`` (with the record
        of the process that holds it) when another process has it."""
        self.folder.lock()

    def roots(self) -> list[str]:
        """The folders indexed into this library (each index run records its roots)."""
        return self.indexing.roots()

    def make_thumbnails(self, progress: ProgressFn | None = None) -> tuple[int, int]:
        """Make the missing thumbnails of every indexed image (a video's: its frames'):
        (made, failed), a video counted once."""
        return self.indexing.make_thumbnails(progress)

    def index_progress(self) -> dict[str, Any] | None:
        """The last progress published by an index run, or None."""
        return self.indexing.index_progress()

    def backbone(self) -> Backbone:
        """The backbone that made (or will make) this library's vectors. Imports TensorFlow."""
        return self.embedder.backbone()

    # -- teaching ---------------------------------------------------------------------------
    def learn(
        self,
        name: str,
        examples: Sequence[str] = (),
        *,
        negatives: Sequence[str] = (),
        drop: Sequence[str] = (),
        seed: int = 0,
        origins: Mapping[str, str] | None = None,
    ) -> dict:
        """Learn (or refine) class ``name`` from example photos or folders of them; examples
        accumulate, ``negatives`` are photos that are not of the class, ``drop`` takes the
        marks of these photos (or of the photos under these folders) back; one retraining.
        ``origins``: where some marks come from, by path given (``"top"``: a photo finder
        showed; the rest are examples). Returns the class record (see :meth:`Teaching.learn`)."""
        return self.teaching.learn(
            name, examples, negatives=negatives, drop=drop, seed=seed, origins=origins
        )

    def learn_ids(
        self,
        name: str,
        add: Sequence[int] = (),
        not_: Sequence[int] = (),
        undo: Sequence[int] = (),
        *,
        seed: int = 0,
    ) -> dict:
        """``learn`` by image id: ✓ ``add``, ✗ ``not_``, marks of ``undo`` taken back; one
        retraining, all or nothing (see :meth:`ById.learn_ids`)."""
        return self.by_id.learn_ids(name, add, not_, undo, seed=seed)

    def apply(self, change: Change) -> dict | None:
        """Apply one teaching change (see :meth:`Teaching.apply`)."""
        return self.teaching.apply(change)

    def forget(self, name: str) -> str:
        """Forget class ``name``: gone from classes, answers and the page, kept 30 days for
        ``restore``; returns its name as stored."""
        return self.teaching.forget(name)

    def restore(self, name: str) -> dict:
        """Bring back the newest forgotten class ``name`` as it was (refused while a class of
        that name exists: rename that one first). Returns its record."""
        return self.teaching.restore(name)

    def forgotten(self) -> list[dict]:
        """The forgotten classes still kept, newest first (``name``, ``n_pos``, ``n_neg``,
        ``forgotten_at``, ``kept_until``)."""
        return self.teaching.forgotten()

    def rename(self, name: str, new: str) -> dict:
        """Rename class ``name`` to ``new``; returns the class record."""
        return self.teaching.rename(name, new)

    def export_classes(
        self, file: str | os.PathLike | None = None, names: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """The classes (all, or ``names``) with their marks, fingerprints and vectors, as a
        JSON-able document (:mod:`finder.carry`), written to ``file`` when given."""
        if file is None:
            return self.carrying.export(names)
        return self.carrying.export_to(file, names)

    def import_classes(
        self, source: str | os.PathLike | dict[str, Any], names: Sequence[str] | None = None
    ) -> ImportReport:
        """Learn the classes of an exported file (or document) here, each mark matched with
        what this library indexed, by path then by fingerprint (:mod:`finder.carry`)."""
        return self.carrying.import_(source, names)

    def classes(self) -> list[dict]:
        return self.teaching.classes()

    def class_record(self, name: str) -> dict:
        """The record of class ``name`` (as ``learn`` returns it); ``UnknownClass`` if none."""
        return self.teaching.class_record(name)

    def examples(self, name: str) -> list[tuple[str, int]]:
        """(path, label) of each photo marked for class ``name``: 1 ✓, 0 ✗."""
        return self.teaching.examples(name)

    def example_origins(self, name: str) -> list[tuple[str, int, str | None]]:
        """(path, label, origin) of each photo marked for class ``name``: ``origin`` is where
        the mark comes from ("example", "top", "strip", "random"; None: not known)."""
        return self.teaching.example_origins(name)

    def marks(self, name: str) -> list[Mark]:
        """The marks of class ``name`` with the id of each indexed photo."""
        return self.teaching.marks(name)

    def metric(self) -> Metric | None:
        """The library's metric for learning (None below a few hundred photos)."""
        return self.teaching.metric()

    def vectors_for(self, paths: Sequence[str]) -> tuple[np.ndarray, list[int | None]]:
        """Unit vectors of ``paths`` (stored, else embedded now) and their ids."""
        return self.embedder.vectors_for(paths)

    # -- answers ----------------------------------------------------------------------------
    def find(
        self,
        name: str,
        *,
        top: int | None = None,
        min_prob: float | None = None,
        filters: Filters | None = None,
        sort: str = "score",
    ) -> list[Match]:
        """Library images of class ``name``, best first (see :meth:`Answers.find`)."""
        return self.answers.find(name, top=top, min_prob=min_prob, filters=filters, sort=sort)

    def review(self, name: str, n: int = 10) -> list[Match]:
        """The ``n`` photos whose verdict would teach class ``name`` most."""
        return self.answers.review(name, n)

    def strip(self, name: str, n: int = STRIP) -> Strip:
        """A strip of ``n`` photos class ``name`` wants a verdict on, each with finder's guess
        and, when drawn at random, its chance; recorded, so that their marks are known as a
        strip's (see :class:`~finder.strips.Strips`). Teach it with one ``learn_ids``."""
        return self.strips.strip(name, n)

    def skip(self, name: str, ids: Sequence[int], skipped: bool = True) -> None:
        """Photos of class ``name``'s strips skipped ("not sure": they teach nothing and are
        not offered again); ``skipped`` False offers them again."""
        self.strips.skip(name, list(ids), skipped)

    def estimate(self, name: str) -> dict | None:
        """How good class ``name``'s answer is: ``{"precision", "precision_range",
        "recall", "recall_range", "marks"}`` from the marks of random draws; None until there
        are enough (see :meth:`~finder.strips.Strips.estimate`)."""
        return self.strips.estimate(name)

    def similar(
        self,
        path: str,
        *,
        top: int = 20,
        filters: Filters | None = None,
        sort: str = "score",
        at: str | float | None = None,
    ) -> list[Match]:
        """The ``top`` library items nearest to the photo at ``path`` (or the video at ``path``
        at the moment ``at``, or ``path`` written ``clip.mp4@0:12``), best first."""
        return self.answers.similar(path, top=top, filters=filters, sort=sort, at=at)

    def vectors_under(self, root: str) -> tuple[list[str], np.ndarray]:
        """Paths and unit vectors of every indexed image under ``root``, sorted by path."""
        return self.answers.vectors_under(root)

    def dupes(self, under: str | None = None) -> list[DupeGroup]:
        """Groups of identical files and near-duplicates, the one to keep first."""
        return self.answers.dupes(under)

    # -- what the person filed --------------------------------------------------------------
    def learn_from_keywords(
        self,
        *,
        min_photos: int = DEFAULT_MIN,
        only: str | None = None,
        parents: bool = False,
        seed: int = 0,
    ) -> FilingReport:
        """A class of each keyword on at least ``min_photos`` photos, or those refreshed (see
        :meth:`Filing.learn_from_keywords`)."""
        return self.filing.learn_from_keywords(
            min_photos=min_photos, only=only, parents=parents, seed=seed
        )

    def learn_from_folders(
        self,
        root: str,
        *,
        min_photos: int = DEFAULT_MIN,
        only: str | None = None,
        parents: bool = False,
        seed: int = 0,
    ) -> FilingReport:
        """A class of each folder under ``root`` with at least ``min_photos`` photos, or those
        refreshed (see :meth:`Filing.learn_from_folders`)."""
        return self.filing.learn_from_folders(
            root, min_photos=min_photos, only=only, parents=parents, seed=seed
        )

    def suggest(
        self,
        name: str,
        *,
        top: int | None = None,
        min_prob: float | None = None,
        filters: Filters | None = None,
        sort: str = "score",
    ) -> list[Match]:
        """The photos not filed under filed class ``name`` that belong to it, best first (see
        :meth:`Filing.suggest`)."""
        return self.filing.suggest(name, top=top, min_prob=min_prob, filters=filters, sort=sort)

    def suggestion_counts(self) -> list[tuple[str, str, int]]:
        """(class, source, number of suggestions) of every filed class."""
        return self.filing.suggestion_counts()

    def apply_suggestions(
        self, name: str, photos: Sequence[str], *, dry_run: bool = False
    ) -> tuple[list, list[str]]:
        """Write keyword class ``name``'s keyword into these photos' sidecars (see
        :meth:`Filing.apply_suggestions`)."""
        return self.filing.apply_suggestions(name, photos, dry_run=dry_run)

    def unapply_suggestions(
        self, name: str, photos: Sequence[str], *, mark: bool = True
    ) -> tuple[list[str], list[str]]:
        """Take back the keyword finder wrote for ``name`` into these photos' sidecars, and
        mark them ✗ unless ``mark`` is False (see :meth:`Filing.unapply`)."""
        return self.filing.unapply(name, photos, mark=mark)

    # -- health -----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Counts, backbone, failures and the search index (see :meth:`Health.status`)."""
        return self.health.status()

    def offline_roots(self) -> dict[str, Any]:
        """``offline_roots`` and ``offline`` (the photos on them) as ``status`` says them."""
        return self.health.offline_roots()

    def failures(self) -> list[tuple[str, str]]:
        """(path, reason) of every file that failed."""
        return self.health.failures()

    def check(self) -> list[Problem]:
        """Every problem found in the library's files (none: all is well)."""
        return self.health.check()

    def repair(self) -> RepairReport:
        """Bring a damaged library back (see :meth:`Health.repair`). Takes the writer's lock."""
        return self.health.repair()


__all__ = [
    "BackboneChoice",
    "Batch",
    "BrowserPhoto",
    "Change",
    "Changes",
    "ClassImport",
    "Filters",
    "FinderError",
    "ImageRow",
    "ImportReport",
    "IndexSummary",
    "Library",
    "Mark",
    "Match",
    "Moment",
    "Offline",
    "VideoView",
    "Progress",
    "TOP",
    "WatchOptions",
    "default_library_dir",
    "format_time",
    "parse_time",
]
