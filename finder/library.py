"""The façade: one library directory holding a SQLite catalog, raw vectors and a FAISS index.

    lib = Library("~/photos-library")
    lib.index(["~/Pictures"])
    lib.learn("cat", ["~/Pictures/cats-examples"])
    for m in lib.find("cat"):
        print(m.probability, m.path)

Layout of the directory: ``catalog.db`` (images, classes, examples, meta), ``vectors/`` (the
:class:`~finder.store.vectors.VectorStore`: raw float16 vectors + FAISS index) and ``lock``.

Crash safety: an index run sets ``meta.dirty`` first and clears it last. Vectors are made
durable before the catalog marks their images ``ok``. Opening a dirty library for writing
reconciles the two: vectors without an ``ok`` (or ``pending``: a changed photo keeps its old
vector until the new one replaces it) image are dropped, ``ok`` images without a vector go back
to ``pending`` and are embedded by the next index run.

Damage a crash cannot explain (a bad disk, a hand edit) is met as
:class:`~finder.errors.LibraryDamaged`, one line naming ``finder repair``. Each successful index
run backs the catalog up (``backups/``); :meth:`Library.check` lists problems and
:meth:`Library.repair` restores the newest good backup (see :mod:`finder.store.backup`).

Readers (``find``, ``similar``, ``status``, ``classes``, ``learn``'s vectors) open the catalog
and the vectors read-only and never take the writer's lock: a read never makes an index run fail,
and a read-only library answers them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from filelock import FileLock, Timeout

from finder import sync
from finder.answers import Answers, Match
from finder.by_id import ById
from finder.embed.registry import BackboneChoice, check_choice, check_precision, same_as
from finder.embed.registry import describe as describe_backbone
from finder.errors import (
    BackboneMismatch,
    FinderError,
    LibraryDamaged,
    LibraryError,
    LibraryLocked,
    UsageError,
)
from finder.health import Health
from finder.ingest import crawl
from finder.store import repair as repairs
from finder.store.catalog import OK, PENDING, Catalog, CatalogTooOld
from finder.store.facts import Filters
from finder.store.journal import JOURNAL
from finder.store.teaching import Recorder
from finder.sync import IndexSummary, Progress, ProgressFn
from finder.teach import Teaching

if TYPE_CHECKING:
    from finder.embed.base import Backbone
    from finder.embed.cluster import RaySource
    from finder.store.vectors import VectorStore


def default_library_dir() -> Path:
    """``$FINDER_LIBRARY``, else the XDG data directory (``~/.local/share/finder``)."""
    env = os.environ.get("FINDER_LIBRARY")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("finder", appauthor=False))


class Library(Teaching, Answers, ById, Health):
    """A photo library on disk. Usable from Python; ``finder.show.cli`` is a thin layer over it."""

    def __init__(
        self,
        directory: str | os.PathLike | None = None,
        *,
        backbone: BackboneChoice | None = None,
        memory_budget: int | None = None,
        batch_size: int | None = None,
        workers: int | None = None,
    ) -> None:
        self.dir = Path(directory).expanduser() if directory else default_library_dir()
        self.dir = self.dir.absolute()
        self.choice = backbone or BackboneChoice()
        if self.choice.views is not None:
            from finder.ingest.decode import check_views

            check_views(self.choice.views, "--views")
        check_precision(self.choice.precision, "--precision")
        self.batch_size = batch_size
        self.workers = workers
        if memory_budget is not None and memory_budget <= 0:
            raise UsageError(f"the memory budget must be more than 0 bytes, not {memory_budget}")
        self._memory_budget = memory_budget
        self._catalog: Catalog | None = None
        self._store: VectorStore | None = None
        self._backbone: Backbone | None = None
        self._lock: FileLock | None = None
        self._cluster: RaySource | None = None  # the embedding source of a --ray index run
        self._journal = Recorder(self.dir / JOURNAL)  # every teaching change, recorded
        self.messages: list[str] = []

    # -- opening ------------------------------------------------------------------------
    @property
    def exists(self) -> bool:
        """Whether a library is here (its catalog, or what remains of it: see ``reader``)."""
        return (self.dir / "catalog.db").exists() or repairs.lost_catalog(self.dir) is not None

    def _make_dir(self) -> None:
        if self.dir.exists() and not self.dir.is_dir():
            raise UsageError(f"the library path {self.dir} is not a folder")
        self.dir.mkdir(parents=True, exist_ok=True)

    @property
    def catalog(self) -> Catalog:
        """The catalog, open for writing (created with the library folder when new)."""
        if self._catalog is not None and self._catalog.read_only:
            self._catalog.close()
            self._catalog = None
        if self._catalog is None:
            self._make_dir()
            if lost := repairs.lost_catalog(self.dir):
                raise LibraryDamaged(lost)
            self._catalog = Catalog(self.dir / "catalog.db")
            if self._memory_budget is not None:
                self._catalog.set_meta("memory_budget", int(self._memory_budget))
        return self._catalog

    @property
    def reader(self) -> Catalog:
        """The catalog for reading: the open one, else opened read-only (nothing is written,
        no lock is taken). Raises LibraryError when there is no library yet."""
        if self._catalog is None:
            if not self.exists:
                raise LibraryError(
                    f"there is no library at {self.dir} yet; run `finder index FOLDER` first"
                )
            if lost := repairs.lost_catalog(self.dir):
                raise LibraryDamaged(lost)
            try:
                self._catalog = Catalog(self.dir / "catalog.db", read_only=True)
            except CatalogTooOld:  # an older finder's library: migrate it once, if writable
                Catalog(self.dir / "catalog.db").close()
                self._catalog = Catalog(self.dir / "catalog.db", read_only=True)
        return self._catalog

    @property
    def backbone_info(self) -> dict | None:
        return self.reader.get_meta("backbone") if self.exists else None

    def _require_indexed(self) -> dict:
        info = self.backbone_info if self.exists else None
        # pending images may hold their old vector (changed photos, or an interrupted run)
        if not info or not (
            self.reader.has_status(OK) or (self.reader.has_status(PENDING) and len(self.read_store))
        ):
            raise LibraryError(
                f"the library {self.dir} has no indexed images yet; run `finder index FOLDER` first"
            )
        return info

    def _acquire(self) -> None:
        if self.shared:
            raise LibraryLocked(
                f"the library {self.dir} is open shared (finder serve): not for writing"
            )
        if self._lock is None:
            self._make_dir()
            lock = FileLock(str(self.dir / "lock"), timeout=0)
            try:
                lock.acquire()
            except Timeout:
                raise LibraryLocked(
                    f"another finder is working on the library {self.dir}; "
                    "wait for it to finish and try again"
                ) from None
            self._lock = lock

    @property
    def store(self) -> VectorStore:
        """The vector store, opened on first use. With the library's lock (the usual case) a
        dirty library is repaired first; while another process indexes it, the store is opened
        read-only and shows what that run has committed so far."""
        if self._store is not None and self._store.read_only and self._lock is None:
            try:  # a reader's store: reopen it for writing once the lock is free
                self._acquire()
            except LibraryLocked:
                return self._store
            self._store.close()
            self._store = None
        if self._store is None:
            info = self.backbone_info
            if not info:
                raise LibraryError(f"the library {self.dir} has no vectors yet")
            try:
                self._acquire()
                read_only = False
            except (LibraryLocked, PermissionError):  # another writer, or a read-only library
                read_only = True
            self._store = self._open_store(info, read_only)
            if not read_only and (self.catalog.get_meta("dirty", False) or self._store.damage):
                self._repair()
        return self._store

    @property
    def read_store(self) -> VectorStore:
        """The vector store for reading: the open one, else opened read-only without the lock
        (what the last index run committed; a dirty library is not repaired here)."""
        if self._store is None:
            info = self.backbone_info
            if not info:
                raise LibraryError(f"the library {self.dir} has no vectors yet")
            self._store = self._open_store(info, True)
        return self._store

    def _open_store(self, info: dict, read_only: bool) -> VectorStore:
        from finder.store.vectors import VectorStore

        return VectorStore(
            self.dir / "vectors",
            int(info["dim"]),
            memory_budget=self.reader.get_meta("memory_budget"),
            on_message=self.messages.append,
            read_only=read_only,
        )

    def _settle(self, store: VectorStore) -> tuple[int, int]:
        """Make catalog and vectors agree (vectors of images not ok are dropped, ok images
        without a vector go back to pending), save the index and clear ``meta.dirty``.
        Returns (vectors dropped, images to embed again)."""
        ok = np.asarray(self.catalog.ok_ids(), dtype=np.int64)
        pending = np.asarray(self.catalog.ids_with_status(PENDING), dtype=np.int64)
        dropped, missing = store.reconcile(np.union1d(ok, pending))
        missing = np.intersect1d(missing, ok)  # a pending image need not hold a vector
        if len(missing):
            self.catalog.set_pending(missing.tolist())
        store.commit()
        store.save_index()
        self.catalog.set_meta("index_name", store.index_name())
        self.catalog.set_meta("dirty", False)
        return dropped, len(missing)

    def _repair(self) -> None:
        """After an interrupted run: settle, and say what was repaired."""
        assert self._store is not None
        dropped, missing = self._settle(self._store)
        if self._store.damage:
            self.messages.append(
                f"the stored vectors were damaged ({self._store.damage}); "
                f"{missing} images lost theirs and will be embedded again by `finder index`"
            )
        elif dropped or missing:
            self.messages.append(
                f"repaired an interrupted run: dropped {dropped} stray vectors, "
                f"{missing} images will be embedded again"
            )

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- backbone -----------------------------------------------------------------------
    def _check_choice(self, recorded: dict) -> None:
        """Refuse a backbone other than the recorded one, without building anything."""
        check_choice(self.choice, recorded, str(self.dir))

    def backbone(self) -> Backbone:
        """The backbone that made (or will make) this library's vectors. Imports TensorFlow."""
        if self._backbone is not None:
            return self._backbone
        from finder.embed import registry

        recorded = self.backbone_info if self.exists else None
        c = self.choice
        if recorded:
            self._check_choice(recorded)
            local = self._local_weights()
            if local is not None and not os.path.isfile(local):
                raise UsageError(f"no such weights file: {local}")
            bb = registry.from_info(
                registry.BackboneInfo.from_dict(recorded),
                weights=os.path.abspath(local) if local else None,
            )
        else:
            weights: Any = c.weights if c.weights is not None else "imagenet"
            if weights == "none":
                weights = None
            elif weights not in ("imagenet", None):
                if not os.path.isfile(weights):
                    raise UsageError(f"no such weights file: {weights}")
                weights = os.path.abspath(weights)
            model = c.model
            if model is not None:
                if not os.path.isfile(model):
                    raise UsageError(f"no such model file: {model}")
                model = os.path.abspath(model)
            bb = registry.build(
                c.name or "vgg16",
                weights=weights,
                model=model,
                layer=c.layer,
                views=c.views or 1,
                precision=check_precision(c.precision),
            )
        if recorded and not same_as(bb.info, recorded):
            raise BackboneMismatch(
                f"the library {self.dir} was indexed with {describe_backbone(recorded)}, "
                f"but that backbone now gives {describe_backbone(bb.info)}"
            )
        self._backbone = bb
        return bb

    def _local_weights(self) -> str | None:
        """A local weights (or model) file given for a recorded library, else None."""
        c = self.choice
        return c.weights if c.weights not in (None, "imagenet", "none") else None

    def _embed(self, items: Iterable[tuple[Any, str]], facts: bool = False):
        from finder.embed.pipeline import embed_paths

        return embed_paths(
            items, self.backbone(), batch_size=self.batch_size, workers=self.workers, facts=facts
        )

    # -- index --------------------------------------------------------------------------
    def index(
        self,
        roots: Sequence[str],
        *,
        hidden: bool = False,
        exclude: Sequence[str] = (),
        progress: ProgressFn | None = None,
        thumbnails: bool = False,
        ray: str | None = None,
    ) -> IndexSummary:
        """Bring the library up to date with ``roots``: new files embedded, changed ones
        re-embedded, moved ones keep their vector, deleted ones dropped. Incremental and
        crash-safe; Ctrl-C keeps the work done so far (``summary.interrupted``). With
        ``thumbnails``, every indexed image also gets its thumbnail (see ``thumbnail``).

        ``ray``: embed on a Ray cluster instead of here (``"local"`` starts one for the run,
        ``"auto"`` joins the one ``ray start`` made, or ``HOST:PORT``); the walk, the catalog
        and the vectors stay here (see :mod:`finder.embed.cluster`)."""
        if not roots:
            raise UsageError("name at least one folder to index")
        if ray is not None:  # a bad address or a missing Ray: said before any walk
            from finder.embed import cluster, cluster_ray

            cluster_ray.check_address(ray)
            cluster_ray.require_ray()
        resolved = []
        for root in roots:
            path = os.path.abspath(os.path.expanduser(os.fspath(root)))
            if not os.path.exists(path):
                raise UsageError(f"no such folder: {root}")
            reason = crawl.pseudo_reason(path)
            if reason:
                raise UsageError(reason)
            resolved.append(path)
        started = time.monotonic()
        summary = IndexSummary()
        if ray is not None:  # joined first: the nodes start their workers while the backbone loads
            self._cluster = cluster.RaySource(
                ray,
                {},
                weights=self._local_weights(),
                batch_size=self.batch_size,
                workers=self.workers,
            )
        try:
            if self._cluster is not None:
                self._cluster.start()
            recorded = self.backbone_info if self.exists else None
            if recorded:
                self._check_choice(recorded)
            else:  # build the backbone before anything is written: a failure leaves no library
                self.backbone()
            self._acquire()
            recorded = self.backbone_info
            if recorded is None:
                bb = self.backbone()
                if bb.precision_reason:
                    self.messages.append(f"computing in {bb.info.precision}: {bb.precision_reason}")
                self.catalog.set_meta("backbone", bb.info.to_dict())
            self._journal.indexed(self.catalog, resolved, hidden, exclude)  # roots, backbone
        except BaseException:
            if self._cluster is not None:
                self._cluster.close()
                self._cluster = None
            raise
        store = self.store
        if self._cluster is not None:
            self._cluster.info = dict(self.backbone_info or {})
        self.catalog.set_meta("dirty", True)
        progress = self._publishing(progress)
        try:
            for root in resolved:
                self._index_root(root, store, summary, hidden, exclude, progress)
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            self._settle(store)
            if self._cluster is not None:
                self._cluster.close()
                self._cluster = None
        summary.interrupted |= self._thumbnails_after_run(thumbnails, progress)
        if not summary.interrupted:
            repairs.after_index(self.catalog, self.dir)  # a backup, the image map
        summary.seconds = time.monotonic() - started
        summary.messages = list(self.messages)
        if progress:
            progress(Progress("done", summary.embedded, summary.embedded))
        return summary

    def _index_root(
        self,
        root: str,
        store: VectorStore,
        summary: IndexSummary,
        hidden: bool,
        exclude: Sequence[str],
        progress: ProgressFn | None,
    ) -> None:
        cat = self.catalog
        if progress:
            progress(Progress("walk", root=root))
        sync.apply_plan(
            cat, store, sync.plan_root(cat, root, hidden=hidden, exclude=exclude), summary
        )
        items, dirs = sync.pending_items(cat, root)
        if dirs:
            cat.record_results([], [(i, "is a directory") for i in dirs])
            summary.failed += len(dirs)
        if items:
            if self._cluster is not None:
                results = self._cluster.embed(items)
            else:
                results = self._embed(items, facts=True)
            sync.store_results(cat, store, items, results, summary, progress, root)
        sync.fill_facts(cat, root, summary, self.workers)


__all__ = [
    "BackboneChoice",
    "Filters",
    "FinderError",
    "IndexSummary",
    "Library",
    "Match",
    "Progress",
    "default_library_dir",
]
