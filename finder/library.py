"""The façade: one library directory holding a SQLite catalog, raw vectors and a FAISS index.

    lib = Library("~/photos-library")
    lib.index(["~/Pictures"])
    lib.learn("cat", ["~/Pictures/cats-examples"])
    for m in lib.find("cat"):
        print(m.probability, m.path)

Layout of the directory: ``catalog.db`` (images, classes, examples, meta), ``vectors/`` (the
:class:`~finder.vectors.VectorStore`: raw float16 vectors + FAISS index) and ``lock``.

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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from filelock import FileLock, Timeout

from finder import sync
from finder.embed.registry import BackboneChoice, check_choice, same_as
from finder.embed.registry import describe as describe_backbone
from finder.embed.registry import identity_key as _backbone_key
from finder.errors import (
    BackboneMismatch,
    FinderError,
    LibraryDamaged,
    LibraryError,
    LibraryLocked,
    UnknownClass,
    UnknownImage,
    UsageError,
)
from finder.ingest import crawl
from finder.learn.feedback import near_cut, spread
from finder.learn.head import Head, logit, sigmoid
from finder.learn.names import class_name
from finder.learn.train import background_indices, train_head
from finder.store import backup as backups
from finder.store import check as checks
from finder.store import facts as stored_facts
from finder.store import filtered
from finder.store.catalog import FAILED, OK, PENDING, Catalog, CatalogTooOld
from finder.store.facts import Filters
from finder.sync import IndexSummary, Progress, ProgressFn

if TYPE_CHECKING:
    from finder.embed.base import Backbone
    from finder.embed.cluster import RaySource
    from finder.store.catalog import ImageRow
    from finder.store.thumbs import ThumbCache
    from finder.store.vectors import VectorStore


def default_library_dir() -> Path:
    """``$FINDER_LIBRARY``, else the XDG data directory (``~/.local/share/finder``)."""
    env = os.environ.get("FINDER_LIBRARY")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("finder", appauthor=False))


@dataclass(frozen=True)
class Match:
    path: str
    score: float  # probability for find, cosine similarity for similar
    id: int
    taken: str | None = None  # date taken, with its UTC offset when known (finder.ingest.facts)


SORTS = ("score", "date")


def _check_sort(sort: str) -> None:
    if sort not in SORTS:
        raise UsageError(f"--sort must be one of {', '.join(SORTS)}, not {sort!r}")


@dataclass(frozen=True)
class Mark:
    """A photo a person marked for a class: label 1 it is of the class, 0 it is not."""

    id: int | None  # None: the photo is not an indexed image of this library
    path: str
    label: int


class Library:
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
        self.messages: list[str] = []

    # -- opening ------------------------------------------------------------------------
    @property
    def exists(self) -> bool:
        return (self.dir / "catalog.db").exists()

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
        counts = self.reader.counts() if info else {}
        # pending images may hold their old vector (changed photos, or an interrupted run)
        if not info or not (counts[OK] or (counts[PENDING] and len(self.read_store))):
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
                c.name or "vgg16", weights=weights, model=model, layer=c.layer, views=c.views or 1
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
            from finder.embed import cluster

            cluster.check_address(ray)
            cluster.require_ray()
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
        recorded = self.backbone_info if self.exists else None
        if recorded:
            self._check_choice(recorded)
        else:  # build the backbone before anything is written: a failure leaves no library
            self.backbone()
        self._acquire()
        recorded = self.backbone_info
        if recorded is None:
            self.catalog.set_meta("backbone", self.backbone().info.to_dict())
        store = self.store
        if ray is not None:
            self._cluster = cluster.RaySource(
                ray,
                self.backbone_info or {},
                weights=self._local_weights(),
                batch_size=self.batch_size,
                workers=self.workers,
            )
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
            backups.make_backup(self.catalog, self.dir / backups.BACKUP_DIR)
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

    # -- learn --------------------------------------------------------------------------
    def _example_paths(self, examples: Sequence[str]) -> list[str]:
        out: list[str] = []
        for ex in examples:
            path = os.path.abspath(os.path.expanduser(os.fspath(ex)))
            if os.path.isdir(path):
                found = [f.path for f in crawl.walk([path]) if not f.is_dir]
                if not found:
                    raise UsageError(f"no photos in the folder {ex}")
                out.extend(found)
            elif os.path.exists(path):
                out.append(path)
            else:
                raise UsageError(f"no such file: {ex}")
        return list(dict.fromkeys(out))

    def vectors_for(self, paths: Sequence[str]) -> tuple[np.ndarray, list[int | None]]:
        """Unit vectors of ``paths``: from the store when indexed, else embedded on the fly
        (which imports TensorFlow). Raises UsageError naming a file that is not an image."""
        info = self._require_indexed()
        dim = int(info["dim"])
        out = np.zeros((len(paths), dim), dtype=np.float32)
        ids: list[int | None] = [None] * len(paths)
        todo = []
        known = []
        for k, path in enumerate(paths):
            row = self.reader.image_by_path(path)
            if row is not None and row.status != FAILED:
                ids[k] = row.id  # a pending photo's stored vector is stale: embed it anew
            if row is not None and row.status == OK:
                known.append(k)
            else:
                todo.append((k, path))
        if known:
            out[known] = self.read_store.get(np.asarray([ids[k] for k in known], dtype=np.int64))
        if todo:
            for k, vector, error in self._embed(todo):
                if vector is None:
                    raise UsageError(f"not an image: {paths[k]} ({error})")
                out[k] = sync.unit(vector[None, :])[0]
        return out, ids

    def learn(
        self,
        name: str,
        examples: Sequence[str] = (),
        *,
        negatives: Sequence[str] = (),
        seed: int = 0,
    ) -> dict:
        """Learn (or refine) class ``name`` from example photos or folders of them.

        Examples accumulate: learning a class again adds to what it was taught before.
        ``negatives`` are photos that are *not* of the class. Returns the class record.
        """
        name = class_name(name)
        info = self._require_indexed()
        pos_paths = self._example_paths(examples)
        neg_paths = self._example_paths(negatives)
        if set(pos_paths) & set(neg_paths):
            both = sorted(set(pos_paths) & set(neg_paths))[0]
            raise UsageError(f"{both} is given both as an example and with --not")
        existing = self.catalog.examples(name)
        if not pos_paths and not any(e.label == 1 for e in existing):
            raise UsageError(f"learning {name!r} needs at least one example photo")
        new_paths = pos_paths + neg_paths
        vectors, _ = self.vectors_for(new_paths)
        labels = [1] * len(pos_paths) + [0] * len(neg_paths)
        rows = [
            (p, label, vectors[k].astype(np.float32).tobytes())
            for k, (p, label) in enumerate(zip(new_paths, labels, strict=True))
        ]
        merged = {e.path: (e.label, e.vector) for e in existing}
        for p, label, vec in rows:
            merged[p] = (label, vec)
        pos = np.array(
            [np.frombuffer(v, np.float32) for lab, v in merged.values() if lab == 1],
            dtype=np.float32,
        )
        neg = np.array(
            [np.frombuffer(v, np.float32) for lab, v in merged.values() if lab == 0],
            dtype=np.float32,
        ).reshape(-1, pos.shape[1])
        background = self._background(list(merged), seed)
        head = train_head(pos, neg, background, seed=seed)
        with self.catalog.transaction():
            self.catalog.add_examples(name, rows)
            self.catalog.save_class(name, head.to_dict(), _backbone_key(info), len(pos), len(neg))
        record = self.catalog.get_class(name)
        assert record is not None
        return record

    def _background(self, example_paths: Sequence[str], seed: int) -> np.ndarray:
        store = self.read_store
        all_ids = np.sort(store.ids())
        example_ids = [
            row.id for p in example_paths if (row := self.reader.image_by_path(p)) is not None
        ]
        exclude = np.flatnonzero(np.isin(all_ids, np.asarray(example_ids, dtype=np.int64)))
        rng = np.random.default_rng(seed)
        picked = background_indices(len(all_ids), exclude, rng)
        if len(picked) == 0:
            return np.zeros((0, store.dim), dtype=np.float32)
        return store.get(all_ids[np.sort(picked)])

    # -- classes ------------------------------------------------------------------------
    def _class(self, name: str) -> dict:
        try:
            key: str | None = class_name(name)
        except UsageError:
            key = None  # refused for a new class, but one stored by an older finder is found
        record = None
        if self.exists:
            record = (key and self.reader.get_class(key)) or self.reader.get_class(name)
        if record is None:
            if key is None:
                class_name(name)  # raises the reason
            known = ", ".join(self.reader.class_names()) if self.exists else ""
            hint = f" (known: {known})" if known else " (none learned yet: see `finder learn`)"
            raise UnknownClass(f"no class named {name!r}{hint}")
        return record

    def classes(self) -> list[dict]:
        if not self.exists:
            return []
        return self.reader.classes()

    def examples(self, name: str) -> list[tuple[str, int]]:
        record = self._class(name)
        return [(e.path, e.label) for e in self.reader.examples(record["name"])]

    def forget(self, name: str) -> str:
        """Remove class ``name``; returns its name as stored."""
        record = self._class(name)
        self.catalog.forget_class(record["name"])
        return record["name"]

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
            raise UsageError("--top must be at least 1")
        if min_prob is not None and not 0.0 <= min_prob <= 1.0:
            raise UsageError("--min-prob must be between 0 and 1")
        _check_sort(sort)
        head = self._head(name)
        if top is None and min_prob is None:
            min_prob = head.threshold
        min_score = None if min_prob is None or min_prob <= 0 else logit(min_prob)
        if filters is not None and filters.active:
            ids, scores = filtered.search(
                self.reader, self.read_store, filters, head.w, head.b, k=top, min_score=min_score
            )
        else:
            ids, scores = self.read_store.search_linear(head.w, head.b, k=top, min_score=min_score)
        return self._matches(ids, sigmoid(scores), sort)

    def _head(self, name: str) -> Head:
        record = self._class(name)
        info = self._require_indexed()
        if record["backbone"] != _backbone_key(info):
            raise BackboneMismatch(
                f"class {name!r} was learned with another backbone than this library's; "
                f"learn it again"
            )
        return Head.from_dict(record["head"])

    def review(self, name: str, n: int = 10) -> list[Match]:
        """The ``n`` photos whose verdict (✓ or ✗, then ``learn NAME --add / --not``) would
        teach class ``name`` most: near its cut-off and unlike each other, none already marked.
        Ordered as picked (the nearest the cut first); ``score`` is the probability."""
        if n < 1:
            raise UsageError("--review must be at least 1")
        head = self._head(name)
        marked = {
            row.id
            for e in self.reader.examples(self._class(name)["name"])
            if (row := self.reader.image_by_path(e.path)) is not None
        }
        cut = head.logit_threshold
        above, _ = self.read_store.search_linear(head.w, head.b, min_score=cut)
        ids, z = self.read_store.search_linear(head.w, head.b, k=len(above) + 4 * n + len(marked))
        free = np.flatnonzero(~np.isin(ids, np.fromiter(marked, np.int64, len(marked))))
        pool = near_cut(z, cut, free, 4 * n)
        picked = pool[spread(self.read_store.get(ids[pool]), np.abs(z[pool] - cut), n)]
        return self._matches(ids[picked], sigmoid(z[picked]))

    def similar(
        self, path: str, *, top: int = 20, filters: Filters | None = None, sort: str = "score"
    ) -> list[Match]:
        """The ``top`` library images nearest to ``path`` (cosine similarity), best first;
        ``filters`` and ``sort`` as for ``find``."""
        if top < 1:
            raise UsageError("--top must be at least 1")
        _check_sort(sort)
        full = os.path.abspath(os.path.expanduser(os.fspath(path)))
        _need_regular_file(full, path)
        vectors, ids = self.vectors_for([full])
        exclude = np.asarray([ids[0]], dtype=np.int64) if ids[0] is not None else None
        if filters is not None and filters.active:
            found, sims = filtered.search(
                self.reader,
                self.read_store,
                filters,
                vectors[0],
                k=top,
                head=False,
                exclude_ids=exclude,
            )
        else:
            found, sims = self.read_store.search_similar(vectors[0], top, exclude_ids=exclude)
        return self._matches(found, sims, sort)

    def _matches(self, ids: np.ndarray, scores: np.ndarray, sort: str = "score") -> list[Match]:
        """Matches of ids (best first) with their paths and dates; by date with ``sort``."""
        if sort == "date":
            order = filtered.by_date(self.reader, ids)
            ids, scores = ids[order], scores[order]
        paths = self.reader.paths_for(ids.tolist(), searchable=True)
        taken = stored_facts.dates(self.reader, ids.tolist())
        return [
            Match(paths[int(i)], float(s), int(i), taken.get(int(i)))
            for i, s in zip(ids, scores, strict=True)
            if int(i) in paths
        ]

    def vectors_under(self, root: str) -> tuple[list[str], np.ndarray]:
        """Paths and unit vectors of every indexed image under ``root``, sorted by path."""
        self._require_indexed()
        full = os.path.abspath(os.path.expanduser(os.fspath(root)))
        ids = self.reader.ids_under(full, OK)
        paths = self.reader.paths_for(ids)
        order = sorted(ids, key=lambda i: paths[i])
        vectors = self.read_store.get(np.asarray(order, dtype=np.int64))
        return [paths[i] for i in order], vectors

    # -- status -------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Counts, backbone, failures and the search index, without opening the vectors."""
        if not self.exists:
            return {
                "library": str(self.dir),
                "images": 0,
                "failed": 0,
                "pending": 0,
                "backbone": None,
                "backbone_info": None,
                "classes": 0,
                "class_names": [],
                "index": None,
                "with_date": 0,
                "with_file_date": 0,
                "with_position": 0,
            }
        cat = self.reader
        problems = checks.catalog_problems(cat, quick=True)
        if problems:
            raise LibraryDamaged(
                f"the catalog {cat.path} is damaged ({problems[0].what}); run `finder repair`"
            )
        info = cat.get_meta("backbone")
        if info and self._store is None:
            from finder.store.vectors import VectorStore

            if VectorStore.inspect(self.dir / "vectors", int(info["dim"])):
                self.store  # noqa: B018 - opening repairs: images that lost their vector go pending
                cat = self.reader
        counts = cat.counts()
        names = cat.class_names()
        return {
            "library": str(self.dir),
            "images": counts[OK],
            "failed": counts[FAILED],
            "pending": counts[PENDING],
            "backbone": describe_backbone(info) if info else None,
            "backbone_info": info,
            "classes": len(names),
            "class_names": names,
            "index": cat.get_meta("index_name"),
            **cat.fact_counts(),  # with_date (EXIF), with_file_date, with_position
        }

    def failures(self) -> list[tuple[str, str]]:
        return self.reader.failed() if self.exists else []

    # -- check and repair -----------------------------------------------------------------
    def check(self) -> list[checks.Problem]:
        """Every problem found in the library's files, one line each (none: all is well):
        SQLite's integrity check and the meta, vectors against ids against the catalog, and
        learned heads against the backbone. Reads only; takes no lock."""
        if not self.exists:
            raise LibraryError(f"there is no library at {self.dir}")
        try:
            cat = self.reader
            problems = checks.catalog_problems(cat)
            info = cat.get_meta("backbone")
        except LibraryDamaged as e:
            found = backups.file_problems(self.dir / "catalog.db") or [getattr(e, "detail", e)]
            return [checks.Problem("catalog", str(line)) for line in found]
        if problems or not info:
            return problems
        try:
            store = self.read_store
            problems += checks.vector_problems(cat, store, settled=not cat.get_meta("dirty"))
        except LibraryError as e:
            problems.append(checks.Problem("vectors", str(e)))
        key, dim = _backbone_key(info), int(info["dim"])
        problems += checks.class_problems(cat, key, dim, lambda d: Head.from_dict(d).w)
        return problems

    def repair(self) -> backups.RepairReport:
        """Bring a damaged library back: the catalog from its newest good backup plus what can
        still be read from it, then reconciled with the vectors (garbage vectors dropped, ok
        images without a vector back to pending), so that the next index run re-embeds only
        what was really lost. Takes the writer's lock."""
        if not self.exists:
            raise LibraryError(f"there is no library at {self.dir}")
        self.close()
        self._acquire()
        report = backups.repair_catalog(self.dir / "catalog.db", self.dir / backups.BACKUP_DIR)
        info = self.backbone_info
        if not info:
            raise LibraryDamaged(f"the library {self.dir} has no backbone record")
        opener = lambda: self._open_store(info, False)  # noqa: E731
        self._store = store = backups.open_store(opener, self.dir / "vectors", report)
        top = backups.drop_bad_vectors(self.catalog, store, report)
        dropped, _ = self._settle(store)
        self.catalog.set_meta("next_id", max(self.catalog.next_id(), top + 1))
        backups.make_backup(self.catalog, self.dir / backups.BACKUP_DIR)
        return backups.finish_report(self.catalog, report, dropped)

    # ======================================================================================
    # By id: what `finder serve` (and any caller that names images by their catalog id) needs.
    # Images are named by id, never by a path taken from the caller.
    # ======================================================================================
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
            seen = tuple(
                sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in os.scandir(folder))
            )
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

        def paths(ids: Sequence[int]) -> list[str]:
            return [self.image(i).path for i in dict.fromkeys(int(i) for i in ids)]

        add_paths, not_paths, undo_paths = paths(add), paths(not_), paths(undo)
        if set(add_paths) & set(not_paths):
            raise UsageError("a photo cannot be both of the class and not of it")
        if set(undo_paths) & set(add_paths + not_paths):
            raise UsageError("a photo cannot be marked and unmarked at once")
        if undo_paths:
            marked = {p for p, _ in self.examples(name)}
            unmarked = [i for i, p in zip(undo, undo_paths, strict=True) if p not in marked]
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
        ok = self.catalog.counts()[OK]
        rows = (
            r
            for lo in range(0, self._max_id() + 1, 1000)
            for r in self.catalog.ok_rows(lo, lo + 1000)
        )
        report = (lambda done: progress(Progress("thumbnails", done, ok))) if progress else None
        return self.thumbs.make_many(rows, workers=self.workers, progress=report)

    def _max_id(self) -> int:
        ids = self.catalog.ok_ids()
        return max(ids) if ids else -1

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


def _need_regular_file(full: str, given: str) -> None:
    """A one-line UsageError unless ``full`` is a regular file, saying what it is instead."""
    what = crawl.file_kind(full)
    if what == "missing":
        raise UsageError(f"no such file: {given}")
    if what != "file":
        raise UsageError(f"{given} is {what}, not a photo")


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
