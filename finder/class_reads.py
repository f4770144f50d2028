"""What a library was taught, read: its classes, their heads, marks and what they find now.

:class:`ClassReads` is a part of :class:`finder.teach.Teaching` (which changes what was taught
and inherits these reads): the class records and heads (checked against the library's
backbone), the marks of a class with the ids of their photos (:class:`Mark`), and which classes
find given photos now (``hits``: every head at once, no search)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from finder.embed.identity import identity_key as _backbone_key
from finder.errors import BackboneMismatch, UnknownClass, UsageError
from finder.folder import Folder
from finder.learn.head import Head
from finder.learn.names import class_name
from finder.moments import group
from finder.store.catalog import OK
from finder.teach_inputs import ExamplePaths

#: ``(class name, head, vector ids, their logits)`` → the logits as ``find`` ranks them.
Rerank = Callable[[str, Head, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Mark:
    """A photo a person marked for a class: label 1 it is of the class, 0 it is not."""

    id: int | None  # None: the photo is not an indexed image of this library
    path: str
    label: int
    # a vector carried with a mark of a photo not indexed here (an import from a library of
    # the same backbone): used as it is instead of embedding the photo
    vector: np.ndarray | None = field(default=None, compare=False, repr=False)
    # where the mark comes from (finder.learn.origin): an example the person gave, a photo
    # finder showed ranked (``TOP``: made ``STRIP`` or ``RANDOM`` when a strip of the class
    # offered it), ...; None: not known (an import)
    origin: str | None = None


class ClassReads:
    """The reads of what the library in ``folder`` was taught (``inputs``: what example paths
    name, for a video's moments)."""

    folder: Folder
    inputs: ExamplePaths

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
        return [(path, label) for path, label, _ in self.example_origins(name)]

    def example_origins(self, name: str) -> list[tuple[str, int, str | None]]:
        """(path, label, origin) of each mark of class ``name``: where it comes from
        (:mod:`finder.learn.origin`; None: not known, a mark from before origins were kept)."""
        record = self.class_record(name)
        rows = self.folder.open_catalog().examples(record["name"])
        return [(e.path, e.label, e.origin) for e in rows]

    def marks(self, name: str) -> list[Mark]:
        """The examples (label 1) and counter-examples (label 0) of class ``name``, with the id
        of each that is an indexed image (None for a photo outside the library)."""
        catalog = self.folder.open_catalog()
        out = []
        for path, label in self.examples(name):
            row = catalog.image_by_path(path)
            if row is not None:
                out.append(Mark(row.id if row.status == OK else None, path, label))
            else:  # a video's frame (``moment_key``), or a photo outside the library
                out.append(Mark(self.inputs.moment(path) if "@" in path else None, path, label))
        return out

    def hits(self, ids: Sequence[int], rerank: Rerank | None = None) -> dict[str, list[int]]:
        """For each class learned on this library's backbone, which of ``ids`` it finds now (at
        or above its cut-off): every class scores them at once, one product of their stored
        vectors with the stacked heads, without a search of the library. A video is scored by
        its frames, as ``find`` scores it: found when one of its moments is, and named by the
        best of them (the id its card on a class page has). In the order of ``ids``; ids
        without a stored vector (not indexed, or not yet seen by read-only vectors) are left
        out. ``rerank(name, head, vector ids, logits)``: the logits as ``find`` ranks them
        (``finder.neighbours``: re-ranked near the cut)."""
        info = self.folder.recorded_backbone()
        if not len(ids) or not info:
            return {}
        key = _backbone_key(info)
        catalog = self.folder.open_catalog()
        heads = [
            (c["name"], Head.from_dict(c["head"]))
            for c in catalog.classes()
            if c["backbone"] == key
        ]
        if not heads:
            return {}
        store = self.folder.open_vectors()
        asked = [int(i) for i in ids]
        wanted = np.asarray(asked + catalog.frame_ids_of(asked), dtype=np.int64)
        wanted = wanted[store.has(wanted)]
        if not len(wanted):
            return {}
        x = store.get(wanted)
        w = np.stack([h.w for _, h in heads], axis=1)
        b = np.asarray([h.b for _, h in heads], dtype=np.float32)
        cut = np.asarray([h.logit_threshold for _, h in heads], dtype=np.float32)
        z = x @ w + b
        place = {i: k for k, i in enumerate(asked)}
        out = {}
        for k, (name, head) in enumerate(heads):
            if rerank is not None:
                z[:, k] = rerank(name, head, wanted, z[:, k])
            hit = np.flatnonzero(z[:, k] >= cut[k])
            if not len(hit):
                continue
            best = hit[np.argsort(-z[hit, k], kind="stable")]
            items = group(catalog, wanted[best], z[best, k])  # a video once, at its best frame
            order = np.argsort([place.get(int(i), len(place)) for i in items.ids], kind="stable")
            out[name] = items.keys[order].tolist()
        return out
