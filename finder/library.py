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
reconciles the two: vectors without an ``ok`` image are dropped, ``ok`` images without a vector
go back to ``pending`` and are embedded by the next index run.
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
from finder.errors import (
    BackboneMismatch,
    FinderError,
    LibraryError,
    LibraryLocked,
    UnknownClass,
    UsageError,
)
from finder.ingest import crawl
from finder.learn import heads
from finder.store.catalog import FAILED, OK, PENDING, Catalog
from finder.sync import IndexSummary, Progress, ProgressFn

if TYPE_CHECKING:
    from finder.embed.backbones import Backbone
    from finder.embed.cluster import RaySource
    from finder.store.vectors import VectorStore


def default_library_dir() -> Path:
    """``$FINDER_LIBRARY``, else the XDG data directory (``~/.local/share/finder``)."""
    env = os.environ.get("FINDER_LIBRARY")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("finder", appauthor=False))


@dataclass(frozen=True)
class BackboneChoice:
    """What a person asked for; ``None`` everywhere means "the library's, else the default"."""

    name: str | None = None
    weights: str | None = None  # "imagenet", "none" or a file
    model: str | None = None  # a .tflite / .keras / .h5 file
    layer: str | None = None
    views: int | None = None  # test-time views an image (1, 2 or 4); see finder.decode

    @property
    def given(self) -> bool:
        return any(
            v is not None for v in (self.name, self.weights, self.model, self.layer, self.views)
        )


@dataclass(frozen=True)
class Match:
    path: str
    score: float  # probability for find, cosine similarity for similar
    id: int


def _backbone_key(info: dict) -> str:
    views = int(info.get("views", 1))
    extra = f":views{views}" if views != 1 else ""
    return f"{info['name']}:{info.get('layer')}:{info['dim']}:{info['fingerprint']}{extra}"


def describe_backbone(info: dict | None) -> str:
    if not info:
        return "none yet"
    parts = [info["name"]]
    if info.get("layer"):
        parts.append(info["layer"])
    parts.append(f"{info['dim']}-d")
    if int(info.get("views", 1)) != 1:
        parts.append(f"{info['views']} views")
    weights = info.get("weights")
    if weights and weights not in ("imagenet",):
        parts.append(f"weights {weights}")
    return " ".join(parts)


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

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            if self.dir.exists() and not self.dir.is_dir():
                raise UsageError(f"the library path {self.dir} is not a folder")
            self.dir.mkdir(parents=True, exist_ok=True)
            self._catalog = Catalog(self.dir / "catalog.db")
            if self._memory_budget is not None:
                self._catalog.set_meta("memory_budget", int(self._memory_budget))
        return self._catalog

    @property
    def backbone_info(self) -> dict | None:
        return self.catalog.get_meta("backbone")

    def _require_indexed(self) -> dict:
        info = self.backbone_info if self.exists else None
        if not info or not self.catalog.counts()[OK]:
            raise LibraryError(
                f"the library {self.dir} has no indexed images yet; run `finder index FOLDER` first"
            )
        return info

    def _acquire(self) -> None:
        if self._lock is None:
            self.catalog  # noqa: B018 - creates the directory
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
        if self._store is None:
            info = self.backbone_info
            if not info:
                raise LibraryError(f"the library {self.dir} has no vectors yet")
            try:
                self._acquire()
                read_only = False
            except LibraryLocked:
                read_only = True
            from finder.store.vectors import VectorStore

            self._store = VectorStore(
                self.dir / "vectors",
                int(info["dim"]),
                memory_budget=self.catalog.get_meta("memory_budget"),
                on_message=self.messages.append,
                read_only=read_only,
            )
            if not read_only and self.catalog.get_meta("dirty", False):
                self._repair()
        return self._store

    def _settle(self, store: VectorStore) -> tuple[int, int]:
        """Make catalog and vectors agree (vectors of images not ok are dropped, ok images
        without a vector go back to pending), save the index and clear ``meta.dirty``.
        Returns (vectors dropped, images to embed again)."""
        valid = np.asarray(self.catalog.ok_ids(), dtype=np.int64)
        dropped, missing = store.reconcile(valid)
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
        if dropped or missing:
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
        c = self.choice
        if not c.given:
            return
        want = "tflite" if c.model and c.model.endswith(".tflite") else c.name
        if c.model and not c.model.endswith(".tflite"):
            want = "keras-file"
        mismatch = (
            (want is not None and want != recorded["name"])
            or (c.layer is not None and c.layer != recorded.get("layer"))
            or (c.views is not None and c.views != int(recorded.get("views", 1)))
        )
        if c.model and not mismatch:  # a model file is recorded as the backbone's weights
            mismatch = os.path.abspath(c.model) != recorded.get("weights")
        if mismatch:
            raise BackboneMismatch(
                f"the library {self.dir} was indexed with {describe_backbone(recorded)}; "
                "it cannot mix in vectors of another backbone (use another --library)"
            )

    def backbone(self) -> Backbone:
        """The backbone that made (or will make) this library's vectors. Imports TensorFlow."""
        if self._backbone is not None:
            return self._backbone
        from finder.embed import backbones

        recorded = self.backbone_info
        c = self.choice
        if recorded:
            self._check_choice(recorded)
            local = self._local_weights()
            if local is not None and not os.path.isfile(local):
                raise UsageError(f"no such weights file: {local}")
            bb = backbones.from_info(
                backbones.BackboneInfo.from_dict(recorded),
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
            bb = backbones.build(
                c.name or "vgg16", weights=weights, model=model, layer=c.layer, views=c.views or 1
            )
        if recorded and not _backbone_key(bb.info.to_dict()) == _backbone_key(recorded):
            raise BackboneMismatch(
                f"the library {self.dir} was indexed with {describe_backbone(recorded)}, "
                f"but that backbone now gives {describe_backbone(bb.info.to_dict())}"
            )
        self._backbone = bb
        return bb

    def _local_weights(self) -> str | None:
        """A local weights (or model) file given for a recorded library, else None."""
        c = self.choice
        return c.weights if c.weights not in (None, "imagenet", "none") else None

    def _embed(self, items: Iterable[tuple[Any, str]]):
        from finder.embed.pipeline import embed_paths

        return embed_paths(items, self.backbone(), batch_size=self.batch_size, workers=self.workers)

    # -- index --------------------------------------------------------------------------
    def index(
        self,
        roots: Sequence[str],
        *,
        hidden: bool = False,
        exclude: Sequence[str] = (),
        progress: ProgressFn | None = None,
        ray: str | None = None,
    ) -> IndexSummary:
        """Bring the library up to date with ``roots``: new files embedded, changed ones
        re-embedded, moved ones keep their vector, deleted ones dropped. Incremental and
        crash-safe; Ctrl-C keeps the work done so far (``summary.interrupted``).

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
            resolved.append(path)
        started = time.monotonic()
        summary = IndexSummary()
        recorded = self.backbone_info if self.exists else None
        if recorded:
            self._check_choice(recorded)
        self._acquire()
        if recorded is None:
            info = self.backbone().info.to_dict()
            self.catalog.set_meta("backbone", info)
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
            embed = self._cluster.embed if self._cluster is not None else self._embed
            sync.store_results(cat, store, items, embed(items), summary, progress, root)

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
        for k, path in enumerate(paths):
            row = self.catalog.image_by_path(path)
            if row is not None and row.status == OK:
                ids[k] = row.id
            else:
                todo.append((k, path))
        known = [k for k, i in enumerate(ids) if i is not None]
        if known:
            out[known] = self.store.get(np.asarray([ids[k] for k in known], dtype=np.int64))
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
        name = name.strip()
        if not name:
            raise UsageError("a class needs a name")
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
        head = heads.train_head(pos, neg, background, seed=seed)
        with self.catalog.transaction():
            self.catalog.add_examples(name, rows)
            self.catalog.save_class(
                name, head.to_dict(), _backbone_key(info), head.threshold, len(pos), len(neg)
            )
        record = self.catalog.get_class(name)
        assert record is not None
        return record

    def _background(self, example_paths: Sequence[str], seed: int) -> np.ndarray:
        store = self.store
        all_ids = np.sort(store.ids())
        example_ids = [
            row.id for p in example_paths if (row := self.catalog.image_by_path(p)) is not None
        ]
        exclude = np.flatnonzero(np.isin(all_ids, np.asarray(example_ids, dtype=np.int64)))
        rng = np.random.default_rng(seed)
        picked = heads.background_indices(len(all_ids), exclude, rng)
        if len(picked) == 0:
            return np.zeros((0, store.dim), dtype=np.float32)
        return store.get(all_ids[np.sort(picked)])

    # -- classes ------------------------------------------------------------------------
    def _class(self, name: str) -> dict:
        record = self.catalog.get_class(name) if self.exists else None
        if record is None:
            known = ", ".join(self.catalog.class_names()) if self.exists else ""
            hint = f" (known: {known})" if known else " (none learned yet: see `finder learn`)"
            raise UnknownClass(f"no class named {name!r}{hint}")
        return record

    def classes(self) -> list[dict]:
        if not self.exists:
            return []
        return self.catalog.classes()

    def examples(self, name: str) -> list[tuple[str, int]]:
        self._class(name)
        return [(e.path, e.label) for e in self.catalog.examples(name)]

    def forget(self, name: str) -> None:
        self._class(name)
        self.catalog.forget_class(name)

    # -- search -------------------------------------------------------------------------
    def find(
        self, name: str, *, top: int | None = None, min_prob: float | None = None
    ) -> list[Match]:
        """Library images of class ``name``, best first. With neither ``top`` nor
        ``min_prob``: those at or above the class's learned cut-off."""
        record = self._class(name)
        info = self._require_indexed()
        if record["backbone"] != _backbone_key(info):
            raise BackboneMismatch(
                f"class {name!r} was learned with another backbone than this library's; "
                f"learn it again"
            )
        if top is not None and top < 1:
            raise UsageError("--top must be at least 1")
        if min_prob is not None and not 0.0 <= min_prob <= 1.0:
            raise UsageError("--min-prob must be between 0 and 1")
        head = heads.Head.from_dict(record["head"])
        if top is None and min_prob is None:
            min_prob = head.threshold
        min_score = None if min_prob is None or min_prob <= 0 else heads.logit(min_prob)
        ids, scores = self.store.search_linear(head.w, head.b, k=top, min_score=min_score)
        probs = heads.sigmoid(scores)
        paths = self.catalog.paths_for(ids.tolist(), ok_only=True)
        return [
            Match(paths[int(i)], float(p), int(i))
            for i, p in zip(ids, probs, strict=True)
            if int(i) in paths
        ]

    def similar(self, path: str, *, top: int = 20) -> list[Match]:
        """The ``top`` library images nearest to ``path`` (cosine similarity), best first."""
        if top < 1:
            raise UsageError("--top must be at least 1")
        full = os.path.abspath(os.path.expanduser(os.fspath(path)))
        if not os.path.isfile(full):
            raise UsageError(f"no such file: {path}")
        vectors, ids = self.vectors_for([full])
        exclude = np.asarray([ids[0]], dtype=np.int64) if ids[0] is not None else None
        found, sims = self.store.search_similar(vectors[0], top, exclude_ids=exclude)
        paths = self.catalog.paths_for(found.tolist(), ok_only=True)
        return [
            Match(paths[int(i)], float(s), int(i))
            for i, s in zip(found, sims, strict=True)
            if int(i) in paths
        ]

    def vectors_under(self, root: str) -> tuple[list[str], np.ndarray]:
        """Paths and unit vectors of every indexed image under ``root``, sorted by path."""
        self._require_indexed()
        full = os.path.abspath(os.path.expanduser(os.fspath(root)))
        ids = self.catalog.ids_under(full, OK)
        paths = self.catalog.paths_for(ids)
        order = sorted(ids, key=lambda i: paths[i])
        vectors = self.store.get(np.asarray(order, dtype=np.int64))
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
            }
        cat = self.catalog
        counts = cat.counts()
        info = cat.get_meta("backbone")
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
        }

    def failures(self) -> list[tuple[str, str]]:
        return self.catalog.failed() if self.exists else []


__all__ = [
    "BackboneChoice",
    "FinderError",
    "IndexSummary",
    "Library",
    "Match",
    "Progress",
    "default_library_dir",
]
