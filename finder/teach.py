"""Teaching a library: classes learned from example photos, ✓ and ✗ marks kept as labels."""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Sequence

import numpy as np

from finder import sync
from finder.embed.registry import identity_key as _backbone_key
from finder.errors import (
    UnknownClass,
    UsageError,
)
from finder.ingest import crawl
from finder.learn.cutoff import keep_answer
from finder.learn.head import Head
from finder.learn.metric import MIN_PHOTOS, Metric, sample_positions, whitener
from finder.learn.names import class_name
from finder.learn.train import background_indices, train_head
from finder.store import files
from finder.store.catalog import FAILED, OK

METRIC_FILE = "metric.npz"
"""The library's metric (:mod:`finder.learn.metric`), derived from its vectors and kept in the
library's folder; recomputed when missing, unreadable, of another backbone, or when the library
has grown or shrunk by a quarter since."""


class Teaching:
    """How a :class:`~finder.library.Library` learns (a part of it: uses its catalog, store
    and backbone): ``learn`` from example photos and counter-examples, the classes and their
    examples, ``forget``."""

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
        record = self.catalog.get_class(name)
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
        background = self._background(list(merged), seed)
        head = train_head(
            pos,
            neg,
            background,
            seed=seed,
            previous=previous,  # teaching again: the new marks move the previous estimate
            marked=(vectors, np.asarray(labels)),
            metric=self.metric(),
        )
        if previous is not None and labels and all(labels):  # only ✓: the answer never shrinks
            store = self.read_store
            kept = len(
                store.search_linear(previous.w, previous.b, min_score=previous.logit_threshold)[0]
            )
            _, top = store.search_linear(head.w, head.b, k=kept) if kept else (None, np.zeros(0))
            head = keep_answer(head, top, kept)
        with self.catalog.transaction():
            self.catalog.add_examples(name, rows)
            self.catalog.save_class(name, head.to_dict(), _backbone_key(info), len(pos), len(neg))
            self._journal.learned(self.catalog, name, [r[0] for r in rows])  # before the commit
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

    def metric(self) -> Metric | None:
        """The library's metric (:mod:`finder.learn.metric`), from the cache file when it is
        still the library's; None below ``MIN_PHOTOS`` photos."""
        info = self._require_indexed()
        store = self.read_store
        n, key = len(store), _backbone_key(info)
        if n < MIN_PHOTOS:
            return None
        path = self.dir / METRIC_FILE
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
            memo = getattr(self, "_metric_memo", None)
            if memo is not None and memo[0] == stamp:
                return memo[1]
            with np.load(path) as cached:
                metric = Metric(cached["U"], cached["s"])
                kept = (int(cached["count"]), str(cached["backbone"]), metric)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            return None
        self._metric_memo = (stamp, kept)
        return kept

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
        with self.catalog.transaction():
            self._journal.forgetting(self.catalog, record["name"])  # kept, restorable
            self.catalog.forget_class(record["name"])
        return record["name"]
