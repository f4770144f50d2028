"""The teaching a catalog holds, as the teaching journal's states
(:mod:`finder.store.journal_state`), and those states put into a catalog: the catalog's side of
:mod:`finder.store.teaching`.

    state = catalog_state(catalog)                 # its classes, with their examples
    kept = forgotten_state(catalog)                # its forgotten classes
    apply_classes(catalog, classes, remove=names)  # classes put in exactly
    lost = put_forgotten(catalog, kept)            # the forgotten classes made exactly these
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from typing import Any

from finder.errors import FinderError
from finder.ingest import crawl
from finder.store.catalog import Catalog
from finder.store.journal import (
    KEEP_FORGOTTEN,
    ClassState,
    Example,
    Forgotten,
    State,
    class_fields,
)


def _file_fingerprint(path: str) -> tuple[str | None, int | None]:
    try:
        size = os.stat(path).st_size
        return crawl.fingerprint(path, size), size
    except (OSError, FinderError):
        return None, None


def fingerprint_of(
    catalog: Catalog, path: str, known: Example | None, read_files: bool = True
) -> tuple[str | None, int | None]:
    """A photo's content fingerprint and size: the catalog's, else what the journal recorded,
    else read from the file."""
    row = catalog.image_by_path(path)
    if row is not None and row.fingerprint:
        return row.fingerprint, row.size
    if known is not None and known.fingerprint:
        return known.fingerprint, known.size
    return _file_fingerprint(path) if read_files else (None, None)


def class_state(
    catalog: Catalog, name: str, known: ClassState | None = None, read_files: bool = True
) -> ClassState | None:
    """Class ``name`` as the catalog holds it (fingerprints from the catalog's images, else
    ``known``'s, else the files)."""
    record = catalog.get_class(name)
    if record is None:
        return None
    cls = from_record(record)
    for path, label, vector, added, origin in catalog.example_rows(name):
        old = known.examples.get(path) if known is not None else None
        fp, size = fingerprint_of(catalog, path, old, read_files)
        cls.examples[path] = Example(path, label, vector, fp, size, added, origin)
    return cls


def from_record(record: dict[str, Any]) -> ClassState:
    """A catalog class record (``get_class``) as a class state, without its examples."""
    return ClassState(
        name=record["name"],
        head=record["head"],
        backbone=record["backbone"],
        n_pos=int(record["n_pos"] or 0),
        n_neg=int(record["n_neg"] or 0),
        created=float(record["created"] or 0.0),
        updated=float(record["updated"] or 0.0),
    )


def catalog_state(catalog: Catalog, known: State | None = None, read_files: bool = True) -> State:
    """The teaching the catalog holds, as a journal :class:`State` (its classes; the library
    record from its meta). ``known`` lends fingerprints of photos the catalog lacks."""
    state = State(seq=int(catalog.get_meta("journal_seq", 0) or 0))
    for name in catalog.class_names():
        cls = class_state(
            catalog, name, known.classes.get(name) if known else None, read_files=read_files
        )
        if cls is not None:
            state.classes[name] = cls
    state.backbone = catalog.get_meta("backbone")
    state.memory_budget = catalog.get_meta("memory_budget")
    return state


def apply_classes(
    catalog: Catalog, classes: Iterable[ClassState], remove: Iterable[str] = ()
) -> int:
    """Put ``classes`` into the catalog exactly (heads, counts, examples with their vectors),
    and remove the classes named in ``remove``. An example whose photo is not in the catalog
    by its path is matched back to an image by its content fingerprint (a moved photo), its
    path then the image's. Returns how many examples were matched so."""
    classes = list(classes)
    by_fp = _images_by_fingerprint(catalog, classes)
    matched = 0
    with catalog.transaction():
        for name in remove:
            catalog.forget_class(name)
        for cls in classes:
            rows: dict[str, tuple[str, int, bytes, float, str | None]] = {}
            for e in cls.examples.values():
                if e.vector is None:
                    continue
                path = e.path
                if catalog.image_by_path(path) is None and e.fingerprint in by_fp:
                    path = by_fp[e.fingerprint]
                    matched += 1
                rows.setdefault(path, (path, e.label, e.vector, e.added, e.origin))
            catalog.put_class(class_fields(cls), rows.values())
    return matched


def apply_state(catalog: Catalog, state: State) -> int:
    """Make the catalog's classes exactly ``state``'s (a replayed journal): its classes put in
    (see :func:`apply_classes`), the catalog's others removed, ``meta.journal_seq`` its change
    number. Returns how many examples were matched back by fingerprint."""
    gone = [n for n in catalog.class_names() if n not in state.classes]
    matched = apply_classes(catalog, state.classes.values(), gone)
    catalog.set_meta("journal_seq", state.seq)
    return matched


def _images_by_fingerprint(catalog: Catalog, classes: Sequence[ClassState]) -> dict[str, str]:
    """Paths of catalog images by the fingerprints of examples whose path is no image; for
    an image whose fingerprint is not known yet (pending), of the same size, read now."""
    lost = [
        e
        for cls in classes
        for e in cls.examples.values()
        if e.fingerprint and catalog.image_by_path(e.path) is None
    ]
    if not lost:
        return {}
    wanted = {e.fingerprint for e in lost}
    out: dict[str, str] = {}
    db = catalog.db
    fps = sorted(wanted)  # type: ignore[arg-type]
    for start in range(0, len(fps), 500):
        chunk = fps[start : start + 500]
        sql = (
            "SELECT fingerprint, path FROM images WHERE fingerprint IN "  # noqa: S608
            f"({','.join('?' * len(chunk))}) AND status != 'failed' ORDER BY id"
        )
        for fp, path in db.execute(sql, chunk):
            out.setdefault(fp, os.fsdecode(path))
    sizes = {e.size for e in lost if e.fingerprint not in out and e.size is not None}
    for size in sorted(sizes):
        for (path,) in db.execute(
            "SELECT path FROM images WHERE size = ? AND fingerprint IS NULL "
            "AND status != 'failed' ORDER BY id",
            [size],
        ).fetchall():
            fp, _ = _file_fingerprint(os.fsdecode(path))
            if fp in wanted:
                out.setdefault(fp, os.fsdecode(path))
    return out


# ------------------------------------------------------------------------------ forgotten classes
def forgotten_state(
    catalog: Catalog, known: Sequence[Forgotten] = (), read_files: bool = True
) -> list[Forgotten]:
    """The catalog's forgotten classes, oldest first, as journal states (fingerprints as for
    :func:`class_state`, ``known``'s forgotten class of the same name and creation lending
    theirs)."""
    lent = {same_class(f.cls): f.cls for f in known}
    out = []
    for record, rows in catalog.forgotten_entries():
        cls = from_record(record)
        other = lent.get(same_class(cls))
        for path, label, vector, added, origin in rows:
            old = other.examples.get(path) if other is not None else None
            fp, size = fingerprint_of(catalog, path, old, read_files)
            cls.examples[path] = Example(path, label, vector, fp, size, added, origin)
        out.append(Forgotten(float(record["forgotten_at"]), cls))
    return out


def same_class(cls: ClassState) -> tuple[str, float]:
    """What tells one class from another of the same name (learned anew after a forget): its
    name and when it was first learned (kept through relearning, renames aside)."""
    return cls.name, cls.created


def put_forgotten(
    catalog: Catalog, kept: Iterable[Forgotten], lend: Iterable[ClassState] = ()
) -> int:
    """Make the catalog's forgotten classes exactly ``kept`` (those forgotten within
    ``KEEP_FORGOTTEN``). An example without a vector takes the one the same class's example
    holds in ``lend`` (the catalog's forgotten classes, its live ones), else it is left out
    (a forgotten example needs its vector). Returns how many were left out so."""
    vectors: dict[tuple[tuple[str, float], str], bytes] = {}
    for cls in lend:
        for e in cls.examples.values():
            if e.vector is not None:
                vectors.setdefault((same_class(cls), e.path), e.vector)
    since = time.time() - KEEP_FORGOTTEN
    entries, lost = [], 0
    for f in kept:
        if f.at < since:
            continue
        rows = []
        for e in f.cls.examples.values():
            vector = e.vector or vectors.get((same_class(f.cls), e.path))
            if vector is None:
                lost += 1
                continue
            rows.append((e.path, e.label, vector, e.added, e.origin))
        entries.append(({**class_fields(f.cls), "forgotten_at": f.at}, rows))
    catalog.put_forgotten(entries)
    return lost
