"""Teaching a library: classes learned from example photos, ✓ and ✗ marks kept as labels.

Every change to what a class was taught is a :class:`Change` (marks given, marks taken back,
the class forgotten) and passes through one method, :meth:`Teaching.apply`, which retrains the
class and writes the change to the catalog in one transaction: ``learn`` (paths), ``learn_ids``
(the page's ✓, ✗ and undo, by image id) and ``forget`` all end there. Inside that transaction
the change is also appended to the teaching journal (``folder.journal``, fsynced before the
commit: see :mod:`finder.store.teaching`), so it is durable the moment ``apply`` returns and
survives the loss of the catalog."""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from finder.embed.registry import identity_key as _backbone_key
from finder.embedder import Embedder
from finder.errors import Arg, BackboneMismatch, DecodeError, UnknownClass, UsageError
from finder.folder import Folder
from finder.ingest import crawl, decode
from finder.learn.cutoff import keep_answer
from finder.learn.head import Head
from finder.learn.metric import MIN_PHOTOS, Metric, sample_positions, whitener
from finder.learn.names import class_name
from finder.learn.train import background_indices, train_head
from finder.store import files
from finder.store.catalog import OK

METRIC_FILE = "metric.npz"
"""The library's metric (:mod:`finder.learn.metric`), derived from its vectors and kept in the
library's folder; recomputed when missing, unreadable, of another backbone, or when the library
has grown or shrunk by a quarter since."""


@dataclass(frozen=True)
class Mark:
    """A photo a person marked for a class: label 1 it is of the class, 0 it is not."""

    id: int | None  # None: the photo is not an indexed image of this library
    path: str
    label: int


@dataclass(frozen=True)
class Change:
    """One change to what class ``name`` was taught, applied whole by :meth:`Teaching.apply`:
    ``marks`` given now (a photo marked before is relabelled; a mark with an id takes its
    vector from the store, one without is embedded from its path when not indexed), the marks
    of the photos at ``undo`` (paths) taken back, or, with ``forget``, the class removed.
    ``seed`` makes the retraining repeatable."""

    name: str
    marks: tuple[Mark, ...] = ()
    undo: tuple[str, ...] = ()
    forget: bool = False
    seed: int = 0


class Teaching:
    """How the library in ``folder`` learns: ``learn`` from example photos and counter-examples
    (their vectors through ``embedder``), the classes, their marks, ``forget``; every change
    applied by ``apply``. Keeps the library's metric (``metric``) read from its file once."""

    def __init__(self, folder: Folder, embedder: Embedder) -> None:
        self.folder = folder
        self.embedder = embedder
        self._metric_memo: tuple[tuple[int, int], tuple[int, str, Metric] | None] | None = None

    # -- changes --------------------------------------------------------------------------
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
        self.folder.require_indexed()
        pos_paths = self._example_paths(examples, name)
        neg_paths = self._example_paths(negatives, name)
        if set(pos_paths) & set(neg_paths):
            both = sorted(set(pos_paths) & set(neg_paths))[0]
            raise UsageError(f"{both} is given both as an example and with ", Arg("negatives"))
        marks = [Mark(None, p, 1) for p in pos_paths] + [Mark(None, p, 0) for p in neg_paths]
        record = self.apply(Change(name, tuple(marks), seed=seed))
        assert record is not None
        return record

    def forget(self, name: str) -> str:
        """Remove class ``name``; returns its name as stored."""
        stored = self.class_record(name)["name"]
        self.apply(Change(stored, forget=True))
        return stored

    def apply(self, change: Change) -> dict | None:
        """Apply one teaching change to the catalog, whole or not at all: the class trained
        again from its marks as they will be (those it had, less ``undo``, with ``marks``), then
        the marks and the new head written in one transaction; or the class forgotten. Returns
        the class record (None once forgotten). Every change to a class passes here."""
        catalog = self.folder.open_catalog_for_writing()
        if change.forget:
            with catalog.transaction():  # the journal keeps the class's state: restorable
                self.folder.journal.forgetting(catalog, change.name)
                catalog.forget_class(change.name)
            return None
        info = self.folder.require_indexed()
        name, undone = change.name, set(change.undo)
        existing = [e for e in catalog.examples(name) if e.path not in undone]
        if not any(m.label == 1 for m in change.marks) and not any(e.label == 1 for e in existing):
            raise UsageError(f"learning {name!r} needs at least one example photo")
        vectors = self._mark_vectors(change.marks)
        labels = [m.label for m in change.marks]
        rows = [
            (m.path, m.label, vectors[k].astype(np.float32).tobytes())
            for k, m in enumerate(change.marks)
        ]
        record = catalog.get_class(name)
        previous = (
            Head.from_dict(record["head"])
            if record is not None and record["backbone"] == _backbone_key(info)
            else None
        )
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
        background = self._background(list(merged), change.seed)
        head = train_head(
            pos,
            neg,
            background,
            seed=change.seed,
            previous=previous,  # teaching again: the new marks move the previous estimate
            marked=(vectors, np.asarray(labels)),
            metric=self.metric(),
        )
        if previous is not None and labels and all(labels):  # only ✓: the answer never shrinks
            store = self.folder.open_vectors()
            kept = len(
                store.search_linear(previous.w, previous.b, min_score=previous.logit_threshold)[0]
            )
            _, top = store.search_linear(head.w, head.b, k=kept) if kept else (None, np.zeros(0))
            head = keep_answer(head, top, kept)
        with catalog.transaction():  # one commit: marks taken back and given, the new head
            if change.undo:
                catalog.remove_examples(name, change.undo)
            catalog.add_examples(name, rows)
            catalog.save_class(name, head.to_dict(), _backbone_key(info), len(pos), len(neg))
            self.folder.journal.learned(catalog, name, [r[0] for r in rows])  # before the commit
        return catalog.get_class(name)

    def _mark_vectors(self, marks: Sequence[Mark]) -> np.ndarray:
        """The unit vectors of ``marks``: by id from the store, by path (``vectors_for``) for
        those without one."""
        dim = int(self.folder.require_indexed()["dim"])
        out = np.zeros((len(marks), dim), dtype=np.float32)
        by_id = [k for k, m in enumerate(marks) if m.id is not None]
        by_path = [k for k, m in enumerate(marks) if m.id is None]
        if by_id:
            ids = np.asarray([marks[k].id for k in by_id], dtype=np.int64)
            out[by_id] = self.folder.open_vectors().get(ids)
        if by_path:
            out[by_path] = self.embedder.vectors_for([marks[k].path for k in by_path])[0]
        return out

    def _example_paths(self, examples: Sequence[str], name: str) -> list[str]:
        """The photos ``examples`` name: a file as given, a folder's photos (in its sub-folders
        too) those that can be read; each skipped one is named in ``folder.messages``. A folder
        with no photo that can be read is refused unless class ``name`` has examples already."""
        out: list[str] = []
        for ex in examples:
            path = os.path.abspath(os.path.expanduser(os.fspath(ex)))
            if os.path.isdir(path):
                found = [f.path for f in crawl.walk([path]) if not f.is_dir]
                if not found:
                    raise UsageError(f"no photos in the folder {ex}")
                readable, skipped = self._readable(found)
                if not readable and not self._has_examples(name):
                    more = f", and {len(skipped) - 1} more" if len(skipped) > 1 else ""
                    raise UsageError(
                        f"no photo in the folder {ex} can be read ({skipped[0]}{more}): "
                        f"learning {name!r} needs at least one example photo"
                    )
                self.folder.messages.extend(f"skipped {why}" for why in skipped)
                out.extend(readable)
            elif os.path.exists(path):
                out.append(path)
            else:
                raise UsageError(f"no such file: {ex}")
        return list(dict.fromkeys(out))

    def _readable(self, paths: Sequence[str]) -> tuple[list[str], list[str]]:
        """``paths`` less the photos that cannot be read, and for each of those its path and
        why: an indexed photo is read from the store; another is decoded (small: it is cheap)."""
        catalog = self.folder.open_catalog()
        readable, skipped = [], []
        for path in paths:
            row = catalog.image_by_path(path)
            if row is None or row.status != OK:
                try:
                    decode.load_rgb(path, (32, 32))
                except DecodeError as e:
                    shown = os.fsencode(path).decode("utf-8", "backslashreplace")
                    skipped.append(f"{shown}: {e}")
                    continue
            readable.append(path)
        return readable, skipped

    def _has_examples(self, name: str) -> bool:
        return any(e.label == 1 for e in self.folder.open_catalog().examples(name))

    def _background(self, example_paths: Sequence[str], seed: int) -> np.ndarray:
        store = self.folder.open_vectors()
        catalog = self.folder.open_catalog()
        all_ids = np.sort(store.ids())
        example_ids = [
            row.id for p in example_paths if (row := catalog.image_by_path(p)) is not None
        ]
        exclude = np.flatnonzero(np.isin(all_ids, np.asarray(example_ids, dtype=np.int64)))
        rng = np.random.default_rng(seed)
        picked = background_indices(len(all_ids), exclude, rng)
        if len(picked) == 0:
            return np.zeros((0, store.dim), dtype=np.float32)
        return store.get(all_ids[np.sort(picked)])

    # -- the metric -----------------------------------------------------------------------
    def metric(self) -> Metric | None:
        """The library's metric (:mod:`finder.learn.metric`), from the cache file when it is
        still the library's; None below ``MIN_PHOTOS`` photos."""
        info = self.folder.require_indexed()
        store = self.folder.open_vectors()
        n, key = len(store), _backbone_key(info)
        if n < MIN_PHOTOS:
            return None
        path = self.folder.dir / METRIC_FILE
        kept = self._kept_metric(path)
        if kept is not None:
            count, stored_key, metric = kept
            fits = metric.U.shape == (store.dim, store.dim) and metric.s.shape == (store.dim,)
            fits = fits and bool(np.isfinite(metric.U).all() and (metric.s > 0).all())
            if fits and stored_key == key and 0.8 * n <= count <= 1.25 * n:
                return metric
        ids = np.sort(store.ids())
        metric = whitener(store.get(ids[sample_positions(n)]))
        buf = io.BytesIO()
        np.savez(buf, U=metric.U, s=metric.s, count=n, backbone=key)
        try:
            files.atomic_write(path, buf.getvalue())
        except OSError:
            pass  # a read-only folder: the metric is used, not kept
        return metric

    def _kept_metric(self, path) -> tuple[int, str, Metric] | None:
        """``(count, backbone, metric)`` from the metric file, None when missing or damaged
        (derived data: computed again). Read once per process while the file is unchanged."""
        try:
            st = os.stat(path)
            stamp = (st.st_mtime_ns, st.st_size)
            memo = self._metric_memo
            if memo is not None and memo[0] == stamp:
                return memo[1]
            with np.load(path) as cached:
                metric = Metric(cached["U"], cached["s"])
                kept = (int(cached["count"]), str(cached["backbone"]), metric)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            return None
        self._metric_memo = (stamp, kept)
        return kept

    # -- classes --------------------------------------------------------------------------
    def class_record(self, name: str) -> dict:
        """The record of class ``name`` (as ``learn`` returns it); ``UnknownClass`` if none."""
        try:
            key: str | None = class_name(name)
        except UsageError:
            key = None  # refused for a new class, but one stored by an older finder is found
        exists = self.folder.exists
        catalog = self.folder.open_catalog() if exists else None
        record = None
        if catalog is not None:
            record = (key and catalog.get_class(key)) or catalog.get_class(name)
        if record is None:
            if key is None:
                class_name(name)  # raises the reason
            known = ", ".join(catalog.class_names()) if catalog is not None else ""
            hint = f" (known: {known})" if known else " (none learned yet: see `finder learn`)"
            raise UnknownClass(f"no class named {name!r}{hint}")
        return record

    def head(self, name: str) -> Head:
        """The head of class ``name``, checked against the library's backbone."""
        record = self.class_record(name)
        info = self.folder.require_indexed()
        if record["backbone"] != _backbone_key(info):
            raise BackboneMismatch(
                f"class {name!r} was learned with another backbone than this library's; "
                f"learn it again"
            )
        return Head.from_dict(record["head"])

    def classes(self) -> list[dict]:
        if not self.folder.exists:
            return []
        return self.folder.open_catalog().classes()

    def examples(self, name: str) -> list[tuple[str, int]]:
        record = self.class_record(name)
        return [(e.path, e.label) for e in self.folder.open_catalog().examples(record["name"])]

    def marks(self, name: str) -> list[Mark]:
        """The examples (label 1) and counter-examples (label 0) of class ``name``, with the id
        of each that is an indexed image (None for a photo outside the library)."""
        catalog = self.folder.open_catalog()
        out = []
        for path, label in self.examples(name):
            row = catalog.image_by_path(path)
            out.append(Mark(row.id if row is not None and row.status == OK else None, path, label))
        return out
