"""Teaching a library: classes learned from example photos, ✓ and ✗ marks kept as labels.

Every change to what a class was taught is a :class:`Change` (marks given, marks taken back,
the class renamed, forgotten or restored) and passes through one method,
:meth:`Teaching.apply`, which retrains the class when its marks change and writes the change to
the catalog in one transaction: ``learn`` (paths, ``drop``), ``learn_ids`` (the page's ✓, ✗ and
undo, by image id), ``rename``, ``forget``, ``restore`` and an import of classes
(:mod:`finder.carry`) all end there.

A forgotten class is kept ``KEEP_FORGOTTEN`` (30 days) apart from the live classes (the
catalog's ``forgotten`` tables: no command, answer or page sees it) and ``restore`` brings it
back whole; after that it is dropped for good. Learning a forgotten name again starts a new
class; ``restore`` then refuses, saying to rename the new one first.

Inside each change's transaction the change is also appended to the teaching journal
(``folder.journal``, fsynced before the commit: see :mod:`finder.store.teaching`), so it is
durable the moment ``apply`` returns and survives the loss of the catalog.

What the example paths name (files, folders, a video's moments, the marks ``drop`` names) and
what a filed class's filing gives are read by :mod:`finder.teach_inputs`."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from finder.backgrounds import Backgrounds
from finder.class_reads import ClassReads, Mark
from finder.embed.identity import identity_key as _backbone_key
from finder.embedder import Embedder
from finder.errors import (
    Arg,
    ClassExists,
    UnknownClass,
    UsageError,
)
from finder.folder import Folder
from finder.learn.background import Prepared
from finder.learn.filed import train_filed_head
from finder.learn.head import Head
from finder.learn.metric import Metric
from finder.learn.names import class_name
from finder.learn.origin import EXAMPLE, RANDOM, STRIP, TOP, sample_mask, strips_of
from finder.learn.train import BACKGROUND_SIZE, DEFAULT_CONFIG, train_head
from finder.metric_file import MetricFile
from finder.store.catalog import Catalog
from finder.store.filing import FiledDraw, FilingRecord
from finder.teach_inputs import FILED_HEAD, ExamplePaths, filed_ids
from finder.training import Training, train_all

KEEP_FORGOTTEN = 30 * 24 * 3600.0
"""How long a forgotten class is kept, restorable (seconds); then it is dropped for good."""


@dataclass(frozen=True)
class Change:
    """One change to what class ``name`` was taught, applied whole by :meth:`Teaching.apply`,
    one of:

    * ``marks`` given now (a photo marked before is relabelled; a mark with an id takes its
      vector from the store, one without uses the vector it carries, else is embedded from its
      path) and the marks of the photos at ``undo`` (paths) taken back (``finder learn
      --drop``, the page's undo): the class retrained once;
    * ``forget``: the class removed from the live classes, kept ``KEEP_FORGOTTEN``;
    * ``restore``: the newest forgotten class ``name`` back, as it was;
    * ``rename_to``: the class renamed, nothing else changed.

    ``seed`` makes the retraining repeatable. ``filing``: the class is (re)made from what the
    person filed (a keyword or a folder, :mod:`finder.store.filing`): trained anew from its
    filed photos, its siblings' as counter-examples, and the person's marks, which win;
    ``drawn``: those filed photos as one run read them for all its classes (``FiledDraw``),
    rather than read again from the catalog."""

    name: str
    marks: tuple[Mark, ...] = ()
    undo: tuple[str, ...] = ()
    forget: bool = False
    seed: int = 0
    rename_to: str | None = None
    restore: bool = False
    filing: FilingRecord | None = None
    drawn: FiledDraw | None = field(default=None, compare=False, repr=False)


class Teaching(ClassReads):
    """How the library in ``folder`` learns: ``learn`` from example photos and counter-examples
    (their vectors through ``embedder``), the classes, their marks, ``forget``; every change
    applied by ``apply``. Keeps the library's metric (``metric_file``) and background pools."""

    def __init__(self, folder: Folder, embedder: Embedder) -> None:
        self.folder = folder
        self.embedder = embedder
        self.metric_file = MetricFile(folder)  # the metric, read from its file once
        self.inputs = ExamplePaths(folder)  # what example paths name (teach_inputs)
        self.backgrounds = Backgrounds(BACKGROUND_SIZE)  # kept while the library is unchanged

    # -- changes --------------------------------------------------------------------------
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
        """Learn (or refine) class ``name`` from example photos or folders of them.

        Examples accumulate: learning a class again adds to what it was taught before.
        ``negatives`` are photos that are *not* of the class; ``drop`` takes marks back: the
        examples and counter-examples at these paths, or under these folders (the photos need
        not exist any more). ``origins``: where the marks of some of the photos (or folders)
        given come from, by the path as given (:mod:`finder.learn.origin`; ``TOP`` for a photo
        finder showed, as ``learn --add`` and ``--not`` give them); the others are examples the
        person gave (``EXAMPLE``). One retraining for all of it. Returns the class record.
        """
        name = class_name(name)
        self.folder.require_indexed()
        undo = self.marked_paths(name, drop) if drop else []
        whence: dict[str, str] = {}
        pos_paths = self._paths(examples, name, origins or {}, whence)
        neg_paths = self._paths(negatives, name, origins or {}, whence)
        if set(pos_paths) & set(neg_paths):
            both = sorted(set(pos_paths) & set(neg_paths))[0]
            raise UsageError(f"{both} is given both as an example and with ", Arg("negatives"))
        if set(undo) & set([*pos_paths, *neg_paths]):
            both = sorted(set(undo) & set([*pos_paths, *neg_paths]))[0]
            raise UsageError(f"{both} is given both to mark and with ", Arg("drop"))
        if undo and not pos_paths:
            kept = [p for p, label in self.examples(name) if label == 1 and p not in set(undo)]
            if not kept:
                raise UsageError(
                    f"that takes back every example of {name!r}: a class needs one "
                    f"(`finder forget {name}` removes the class)"
                )
        marks = [Mark(f, p, 1, origin=whence[p]) for p, f in pos_paths.items()]
        marks += [Mark(f, p, 0, origin=whence[p]) for p, f in neg_paths.items()]
        record = self.apply(Change(name, tuple(marks), tuple(undo), seed=seed))
        assert record is not None
        return record

    def _paths(
        self, given: Sequence[str], name: str, origins: Mapping[str, str], whence: dict[str, str]
    ) -> dict[str, int | None]:
        """``inputs.example_paths`` of ``given``, the origin of each photo into ``whence``
        (that of the path given that names it)."""
        out: dict[str, int | None] = {}
        groups: dict[str, list[str]] = {}
        for g in given:
            groups.setdefault(origins.get(os.fspath(g), EXAMPLE), []).append(g)
        for origin, items in groups.items():
            found = self.inputs.example_paths(items, name)
            out.update(found)
            whence.update(dict.fromkeys(found, origin))
        return out

    def marked_paths(self, name: str, photos: Sequence[str]) -> list[str]:
        """The paths of class ``name``'s marks that ``photos`` name (see
        :meth:`ExamplePaths.marked_paths`)."""
        return self.inputs.marked_paths(name, [p for p, _ in self.examples(name)], photos)

    def moment_of(self, video: str, when: str | float) -> str:
        """The example key of ``video``'s indexed frame nearest ``when`` (see
        :meth:`ExamplePaths.moment_of`)."""
        return self.inputs.moment_of(video, when)

    def forget(self, name: str) -> str:
        """Forget class ``name`` (kept ``KEEP_FORGOTTEN``, see ``restore``); returns its name
        as stored."""
        stored = self.class_record(name)["name"]
        self.apply(Change(stored, forget=True))
        return stored

    def rename(self, name: str, new: str) -> dict:
        """Rename class ``name`` to ``new``; returns the class record."""
        stored = self.class_record(name)["name"]
        record = self.apply(Change(stored, rename_to=new))
        assert record is not None
        return record

    def restore(self, name: str) -> dict:
        """Bring back the newest forgotten class ``name`` as it was; returns its record.
        ``ClassExists`` when a class of that name was learned since (rename it first)."""
        record = self.apply(Change(class_name(name), restore=True))
        assert record is not None
        return record

    def forgotten(self) -> list[dict]:
        """The forgotten classes still kept, newest first: ``name``, ``n_pos``, ``n_neg``,
        ``forgotten_at`` and ``kept_until`` (seconds since the epoch), ..."""
        if not self.folder.exists:
            return []
        kept = self.folder.open_catalog().forgotten_classes(since=time.time() - KEEP_FORGOTTEN)
        return [{**r, "kept_until": r["forgotten_at"] + KEEP_FORGOTTEN} for r in kept]

    def apply(self, change: Change) -> dict | None:
        """Apply one teaching change to the catalog, whole or not at all: the class trained
        again from its marks as they will be (those it had, less ``undo``, with ``marks``), then
        the marks and the new head written in one transaction; or the class forgotten. Returns
        the class record (None once forgotten). Every change to a class passes here."""
        kinds = (change.marks or change.undo, change.forget, change.restore, change.rename_to)
        if sum(1 for k in kinds if k not in ((), False, None)) > 1:
            raise UsageError("a change either teaches, forgets, restores or renames a class")
        catalog = self.folder.open_catalog_for_writing()
        if change.forget:
            with catalog.transaction():  # kept KEEP_FORGOTTEN, restorable (the journal too)
                catalog.purge_forgotten(time.time() - KEEP_FORGOTTEN)
                self.folder.journal.forgetting(catalog, change.name)
                catalog.forget_class(change.name)
            return None
        if change.restore:
            return self._restore(change.name)
        if change.rename_to is not None:
            return self._rename(change.name, change.rename_to)
        return train_all([change], self._training, workers=1)[0]

    def apply_all(self, changes: Sequence[Change], workers: int | None = None) -> list[dict]:
        """Teaching changes of distinct classes (marks or a filing) applied in order, as
        ``apply`` applies each, their heads trained ``workers`` at a time (all the cores by
        default; :mod:`finder.training`). Returns their class records."""
        if any(c.forget or c.restore or c.rename_to is not None for c in changes):
            raise UsageError("apply_all teaches classes; forget, restore or rename one by one")
        return train_all(changes, self._training, workers)  # type: ignore[return-value]

    def _training(self, change: Change) -> Training:
        """A teaching change read and checked (its marks' vectors, the filed photos, the
        background), ready to train; its ``finish`` writes it in one transaction."""
        catalog = self.folder.open_catalog_for_writing()
        info = self.folder.require_indexed()
        name, undone = change.name, set(change.undo)
        existing = [e for e in catalog.examples(name) if e.path not in undone]
        filing = change.filing or catalog.get_filing(name)
        filed_pos, filed_neg = filed_ids(
            catalog, filing, existing, change.marks, change.seed, change.drawn
        )
        if (
            not any(m.label == 1 for m in change.marks)
            and not any(e.label == 1 for e in existing)
            and not len(filed_pos)
        ):
            raise UsageError(f"learning {name!r} needs at least one example photo")
        vectors = self._mark_vectors(change.marks)
        offered = _offered(catalog, name, change.marks)
        rows = [
            (m.path, m.label, vectors[k].astype(np.float32).tobytes(), offered.get(k, m.origin))
            for k, m in enumerate(change.marks)
        ]
        merged = {e.path: (e.label, e.vector, e.origin) for e in existing}
        for p, label, vec, origin in rows:
            merged[p] = (label, vec, origin)
        merged = dict(sorted(merged.items()))  # by path: the head is the same whatever the order
        dim = int(info["dim"])
        filed_vectors = self.folder.open_vectors().get(np.concatenate([filed_pos, filed_neg]))
        pos = np.concatenate(
            [
                np.array(
                    [np.frombuffer(v, np.float32) for lab, v, _ in merged.values() if lab == 1],
                    dtype=np.float32,
                ).reshape(-1, dim),
                filed_vectors[: len(filed_pos)],
            ]
        )
        neg = np.concatenate(
            [
                np.array(
                    [np.frombuffer(v, np.float32) for lab, v, _ in merged.values() if lab == 0],
                    dtype=np.float32,
                ).reshape(-1, dim),
                filed_vectors[len(filed_pos) :],
            ]
        )
        sample = sample_mask([o for lab, _, o in merged.values() if lab == 1])
        if sample is not None:  # filed photos are a sample of the class
            sample = np.concatenate([sample, np.ones(len(filed_pos), dtype=bool)])
        metric = self.metric()
        background, fresh, prepared, pool = self._background(
            list(merged), change.seed, np.concatenate([filed_pos, filed_neg]), metric, filed_neg
        )
        inputs = dict(
            positives=pos,
            negatives=neg,
            background=background,
            seed=change.seed,  # from the marks that remain and the seed only (issue 24, item 4)
            metric=metric,
            fresh=fresh,  # photos out of the training: calibration and cut are measured on them
            prepared=prepared,  # what the library's pool computed of the background once
            config=FILED_HEAD if filing is not None else DEFAULT_CONFIG,
            sample=sample,  # which ✓ may size the class (not those finder showed ranked high)
            pool=pool,
            strips=_from_strips(list(merged.values())),
        )
        sizes = (len(pos), len(neg))

        def finish(head: Head) -> dict | None:
            return self._save(change, head, rows, merged, filed_pos, filed_neg, filing, sizes)

        return Training(inputs, finish, train_filed_head if filing is not None else train_head)

    def _save(self, change, head, rows, merged, filed_pos, filed_neg, filing, sizes) -> dict:
        """A change's marks and its new ``head`` written in one transaction (``apply``)."""
        catalog, info = self.folder.open_catalog_for_writing(), self.folder.require_indexed()
        name = change.name
        held = head.params.pop("held_out_logits", None)
        if held:  # the marks' cross-validated logits, by path (finder.learn.estimate.Mark.held)
            filed_paths = catalog.paths_for(np.concatenate([filed_pos, filed_neg]).tolist())
            order = [p for p, (lab, _, _) in merged.items() if lab == 1]
            order += [filed_paths.get(int(i), f"#{int(i)}") for i in filed_pos]
            order += [p for p, (lab, _, _) in merged.items() if lab == 0]
            order += [filed_paths.get(int(i), f"#{int(i)}") for i in filed_neg]
            every = dict(zip(order, held, strict=True))  # the marks' only: filed ones are many
            head.params["held_out"] = {p: every[p] for p in merged}
        with catalog.transaction():  # one commit: marks taken back and given, the new head
            if change.undo:
                catalog.remove_examples(name, change.undo)
            catalog.add_examples(name, rows)
            catalog.save_class(name, head.to_dict(), _backbone_key(info), *sizes)
            self.folder.journal.learned(catalog, name, [r[0] for r in rows])  # before the commit
            if filing is not None:  # what it was trained from: digest and sketch
                trained = filing.trained_on(
                    name, filed_pos, filed_neg, _backbone_key(info), change.seed
                )
                catalog.save_filing(trained)
        record = catalog.get_class(name)
        assert record is not None
        return record

    def _restore(self, name: str) -> dict:
        """``Change(name, restore=True)``: the newest forgotten class ``name`` back."""
        catalog = self.folder.open_catalog_for_writing()
        with catalog.transaction():
            since = time.time() - KEEP_FORGOTTEN
            catalog.purge_forgotten(since)
            if catalog.get_class(name) is not None:
                kept = any(r["name"] == name for r in catalog.forgotten_classes(since))
                if not kept:
                    raise ClassExists(f"class {name!r} is not forgotten")
                raise ClassExists(
                    f"class {name!r} was learned anew since it was forgotten: rename the new "
                    "one first, then restore"
                )
            if not catalog.restore_class(name, since=since):
                names = sorted({r["name"] for r in catalog.forgotten_classes(since)})
                hint = f" (forgotten: {', '.join(names)})" if names else ""
                raise UnknownClass(f"no forgotten class named {name!r}{hint}")
            self.folder.journal.restored(catalog, name)  # the newest forgotten, as here
        record = catalog.get_class(name)
        assert record is not None
        return record

    def _rename(self, name: str, new: str) -> dict:
        """``Change(name, rename_to=new)``: the class renamed, marks and head unchanged."""
        new = class_name(new)
        catalog = self.folder.open_catalog_for_writing()
        with catalog.transaction():
            if catalog.get_class(name) is None:
                raise UnknownClass(f"no class named {name!r}")
            if new != name:
                if catalog.get_class(new) is not None:
                    raise ClassExists(f"a class named {new!r} exists already: pick another name")
                catalog.rename_class(name, new)
                self.folder.journal.renamed(catalog, name, new)
        record = catalog.get_class(new)
        assert record is not None
        return record

    def _mark_vectors(self, marks: Sequence[Mark]) -> np.ndarray:
        """The unit vectors of ``marks``: by id from the store, the vector a mark carries, else
        by path (``vectors_for``)."""
        dim = int(self.folder.require_indexed()["dim"])
        out = np.zeros((len(marks), dim), dtype=np.float32)
        by_id = [k for k, m in enumerate(marks) if m.id is not None]
        carried = [k for k, m in enumerate(marks) if m.id is None and m.vector is not None]
        by_path = [k for k, m in enumerate(marks) if m.id is None and m.vector is None]
        for k in carried:
            vector = np.asarray(marks[k].vector, dtype=np.float32).reshape(-1)
            if vector.shape != (dim,) or not np.isfinite(vector).all():
                raise UsageError(f"the vector given for {marks[k].path} is not one of {dim} values")
            out[k] = vector
        if by_id:
            ids = np.asarray([marks[k].id for k in by_id], dtype=np.int64)
            out[by_id] = self.folder.open_vectors().get(ids)
        if by_path:
            out[by_path] = self.embedder.vectors_for([marks[k].path for k in by_path])[0]
        return out

    def _background(
        self,
        example_paths: Sequence[str],
        seed: int,
        example_ids: np.ndarray | None = None,
        metric: Metric | None = None,
        counter_ids: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, Prepared, int]:
        """The background sample (random photos of the library, the marked and filed ones
        excepted) and a second sample of the photos left (``fresh``: out of the training), as
        ``finder.learn.feedback.ArrayTeacher`` draws them (``finder.learn.background.draw``),
        from the library's pool for ``seed`` (``finder.backgrounds``), with what it prepared
        of them in ``metric`` (and of ``counter_ids``, the filed counter-examples: the last rows
        of the negatives), and how many photos the background was drawn from."""
        store = self.folder.open_vectors()
        catalog = self.folder.open_catalog()
        all_ids = np.sort(store.ids())
        by_path = [row.id for p in example_paths if (row := catalog.image_by_path(p)) is not None]
        ids = np.asarray(by_path, dtype=np.int64)
        if example_ids is not None:
            ids = np.concatenate([ids, np.asarray(example_ids, dtype=np.int64)])
        exclude = np.flatnonzero(np.isin(all_ids, ids))
        counter = None
        if counter_ids is not None and len(counter_ids):
            at = np.minimum(np.searchsorted(all_ids, counter_ids), len(all_ids) - 1)
            counter = at if (all_ids[at] == counter_ids).all() else None
        background, fresh, prepared = self.backgrounds.draw(
            store, all_ids, exclude, seed, metric, counter
        )
        return background, fresh, prepared, len(all_ids) - len(exclude)

    # -- the metric -----------------------------------------------------------------------
    def metric(self) -> Metric | None:
        """The library's metric (:mod:`finder.learn.metric`), kept in its folder
        (:mod:`finder.metric_file`); None below ``MIN_PHOTOS`` photos."""
        return self.metric_file.metric()


def _offered(catalog: Catalog, name: str, marks: Sequence[Mark]) -> dict[int, str]:
    """For the marks (by position) of photos finder showed (``TOP``) that a strip of class
    ``name`` offered: ``RANDOM`` when its latest offer drew the photo at random, else
    ``STRIP``."""
    shown = {}
    for k, m in enumerate(marks):
        if m.origin != TOP:
            continue
        if m.id is None:  # a photo given by its path (``learn --add``)
            row = catalog.image_by_path(m.path)
            if row is None:
                continue
        shown[k] = m.id if m.id is not None else row.id
    if not shown:
        return {}
    last = {o.image_id: o for o in catalog.strip_offers(name)}  # by strip: the latest wins
    return {k: RANDOM if last[i].random else STRIP for k, i in shown.items() if i in last}


def _from_strips(marks: Sequence[tuple[int, bytes, str | None]]) -> bool | None:
    """Whether any of these marks (label, vector, origin) was given on a strip's photo: True;
    False when none was and some ✓ was given on a photo finder showed ranked (``TOP``); else
    None (not known: examples and counter-examples the person gave, marks from before)."""
    return strips_of([o for _, _, o in marks], [o for lab, _, o in marks if lab == 1])
