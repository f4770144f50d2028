"""The catalog and the teaching journal together: every teaching change recorded, and the
journal's state put back onto a catalog.

    recorder = Recorder(library / JOURNAL)
    with catalog.transaction():
        ...                                        # the change, in the catalog
        recorder.learned(catalog, "cat", added)    # its record, fsynced before the commit
    report = restore_teaching(catalog, journal)    # finder repair
    problems = journal_problems(catalog, journal)  # finder check

The record of a change is appended inside the catalog transaction that makes it, and the
catalog keeps the number of the last change it holds (``meta.journal_seq``): a kill between the
two leaves the journal one change ahead, and that change is void (see
:mod:`finder.store.journal`). A teaching command finding the journal damaged, missing or behind
the catalog, or the catalog more than one change behind the journal, stops with one line
naming ``finder repair`` (a catalog restored by hand from an old copy would otherwise void
changes that were made).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from finder.errors import FinderError, LibraryDamaged
from finder.ingest import crawl
from finder.store.catalog import Catalog
from finder.store.journal import (
    JOURNAL,
    ClassState,
    Example,
    Journal,
    Root,
    State,
    class_to_json,
    encode_path,
    example_to_json,
    root_to_json,
)

__all__ = [
    "JOURNAL",
    "Recorder",
    "TeachingReport",
    "apply_classes",
    "apply_state",
    "catalog_state",
    "journal_problems",
    "restore_teaching",
]


# ------------------------------------------------------------------------------ the catalog's side
def _file_fingerprint(path: str) -> tuple[str | None, int | None]:
    try:
        size = os.stat(path).st_size
        return crawl.fingerprint(path, size), size
    except (OSError, FinderError):
        return None, None


def _fingerprint(
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
    cls = _from_record(record)
    for path, label, vector, added in catalog.example_rows(name):
        old = known.examples.get(path) if known is not None else None
        fp, size = _fingerprint(catalog, path, old, read_files)
        cls.examples[path] = Example(path, label, vector, fp, size, added)
    return cls


def _from_record(record: dict[str, Any]) -> ClassState:
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


def class_fields(cls: ClassState) -> dict[str, Any]:
    """The fields of a class record (``Catalog.put_class``), without its examples."""
    return {
        "name": cls.name,
        "head": cls.head,
        "backbone": cls.backbone,
        "n_pos": cls.n_pos,
        "n_neg": cls.n_neg,
        "created": cls.created,
        "updated": cls.updated,
    }


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
            rows: dict[str, tuple[str, int, bytes, float]] = {}
            for e in cls.examples.values():
                if e.vector is None:
                    continue
                path = e.path
                if catalog.image_by_path(path) is None and e.fingerprint in by_fp:
                    path = by_fp[e.fingerprint]
                    matched += 1
                rows.setdefault(path, (path, e.label, e.vector, e.added))
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


# ------------------------------------------------------------------------------ recording
class Recorder:
    """Records each teaching change into the journal at ``path``, inside the catalog
    transaction that makes it (the façade's hooks: one call where each change is made)."""

    def __init__(self, path: Path | str) -> None:
        self.journal = Journal(path)

    def learned(self, catalog: Catalog, name: str, added: Sequence[str]) -> None:
        """Class ``name`` was learned or taught again (examples ``added`` or relabelled; any
        taken back are simply no longer among its examples). Call after the catalog change,
        inside its transaction."""
        added_set = set(added)
        record = catalog.get_class(name)
        if record is None:  # pragma: no cover - called after the class is saved
            return
        rows = catalog.example_rows(name)
        vectors = []
        for path, label, vector, when in rows:
            if path in added_set:
                fp, size = _fingerprint(catalog, path, None)
                vectors.append(example_to_json(Example(path, label, vector, fp, size, when)))
        cls = {k: v for k, v in class_fields(_from_record(record)).items() if k != "name"}
        self._record(
            catalog,
            {
                "op": "learn",
                "class": name,
                **cls,
                "examples": [[encode_path(p), label] for p, label, _, _ in rows],
                "vectors": vectors,
            },
        )

    def forgetting(self, catalog: Catalog, name: str) -> None:
        """Class ``name`` is about to be forgotten: call inside the transaction, before the
        catalog forgets it. The record keeps the class's whole state (restorable)."""
        cls = class_state(catalog, name)
        state = class_to_json(cls) if cls is not None else None
        self._record(catalog, {"op": "forget", "class": name, "state": state})

    def renamed(self, catalog: Catalog, old: str, new: str) -> None:
        """Class ``old`` is now named ``new`` (inside the transaction that renames it)."""
        self._record(catalog, {"op": "rename", "class": old, "to": new})

    def restored(self, catalog: Catalog, name: str, at: float | None = None) -> None:
        """Forgotten class ``name`` (forgotten at ``at``; None: the newest) is back."""
        self._record(catalog, {"op": "restore", "class": name, "at": at})

    def indexed(
        self, catalog: Catalog, roots: Sequence[str], hidden: bool, exclude: Sequence[str]
    ) -> None:
        """An index run of ``roots`` starts (the catalog's backbone already recorded): the
        roots with their options, the backbone and the memory budget, when the journal does
        not hold them yet."""
        replay = self.journal.replay()
        if replay.problem:
            raise _damaged(self.journal, replay.problem)
        state = replay.state
        wanted = [Root(r, bool(hidden), list(exclude)) for r in roots]
        backbone = catalog.get_meta("backbone")
        budget = catalog.get_meta("memory_budget")
        if (
            replay.exists
            and all(state.roots.get(r.path) == r for r in wanted)
            and state.backbone == backbone
            and state.memory_budget == budget
        ):
            return
        self._record(
            catalog,
            {
                "op": "index",
                "roots": [root_to_json(r) for r in wanted],
                "backbone": backbone,
                "memory_budget": budget,
            },
        )

    def _record(self, catalog: Catalog, record: dict[str, Any]) -> None:
        journal = self.journal
        with catalog.transaction():
            have = int(catalog.get_meta("journal_seq", 0) or 0)
            with journal.locked() as writer:
                tail = writer.tail
                if tail.problem:
                    raise _damaged(journal, tail.problem)
                if not tail.existed or (tail.last_seq == 0 and tail.last_op is None):
                    if have > 0:
                        raise _damaged(journal, f"it lacks the last {have} changes")
                    if catalog.class_names():  # a library from before the journal
                        writer.rewrite(catalog_state(catalog))
                elif tail.last_seq < have:
                    raise _damaged(journal, f"it lacks the last {have - tail.last_seq} changes")
                elif tail.last_seq > have + 1 or (
                    tail.last_seq == have + 1 and tail.last_op == "snapshot"
                ):
                    raise LibraryDamaged(
                        f"the catalog {catalog.path} is older than the teaching journal "
                        f"{journal.path} (it lacks {tail.last_seq - have} changes); "
                        "run `finder repair`"
                    )
                elif tail.last_seq == have and writer.wants_compaction():
                    replay = journal.replay()
                    if replay.complete:
                        writer.rewrite(replay.state)
                seq = have + 1
                writer.append({"seq": seq, "t": time.time(), **record})
            catalog.set_meta("journal_seq", seq)


def _damaged(journal: Journal, what: str) -> LibraryDamaged:
    error = LibraryDamaged(
        f"the teaching journal {journal.path} is damaged ({what}); run `finder repair`"
    )
    error.detail = what  # type: ignore[attr-defined]
    return error


# ------------------------------------------------------------------------------ repair
@dataclass
class TeachingReport:
    """What ``restore_teaching`` did."""

    journal_problem: str | None = None  # damage found in the journal (read up to it)
    from_journal: list[str] = field(default_factory=list)  # classes put back from the journal
    removed: list[str] = field(default_factory=list)  # classes the journal says were forgotten
    examples_lost: int = 0  # examples whose vector neither the journal nor the catalog held
    examples_matched: int = 0  # examples matched back to a photo by its content fingerprint

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def restore_teaching(
    catalog: Catalog, journal: Journal, *, catalog_trusted: bool = False
) -> TeachingReport:
    """Bring the catalog's classes and the journal into agreement, and rewrite the journal as
    the minimal record of the result (``finder repair``).

    The journal is the truth for the classes it knows when it reads to its end and holds every
    change the catalog holds (``meta.journal_seq``): then its state replaces theirs (a catalog
    restored from a backup gets back what was taught since; classes it forgot or renamed are
    removed). Otherwise (damaged, missing, behind) a sound catalog (``catalog_trusted``) is the
    truth, and a restored one takes each class from the side that changed it last. Classes the
    journal never knew are kept as the catalog has them. Example vectors the journal lacks are
    taken from the catalog. With a sound catalog, a last change it does not hold is void (a
    kill before its commit)."""
    have = int(catalog.get_meta("journal_seq", 0) or 0)
    replay = journal.replay()
    if catalog_trusted and replay.last_seq == have + 1:
        replay = journal.replay(upto=have)
    report = TeachingReport(journal_problem=replay.problem)
    js = replay.state
    ours = catalog_state(catalog, known=js)
    leads = replay.complete and js.seq >= have
    final: dict[str, ClassState] = dict(ours.classes)
    changed: list[ClassState] = []
    counts = leads or not catalog_trusted  # else the sound catalog knows more than the journal
    for name, jc in (js.classes if counts else {}).items():
        cc = ours.classes.get(name)
        if leads or cc is None or jc.updated >= cc.updated:
            cls, lost = _with_vectors(jc, cc)
            report.examples_lost += lost
            final[name] = cls
            if cc is None or _differs(cls, cc):
                changed.append(cls)
                report.from_journal.append(name)
    for name, at in (js.retired if counts else {}).items():
        if name in js.classes or name not in final:
            continue
        if leads or at >= final[name].updated:
            del final[name]
            report.removed.append(name)
    report.examples_matched = apply_classes(catalog, changed, report.removed)
    after = catalog_state(catalog, known=js)
    after.forgotten = js.forgotten
    after.retired = {k: v for k, v in js.retired.items() if k not in after.classes}
    after.roots = js.roots
    after.backbone = after.backbone or js.backbone
    if after.memory_budget is None:
        after.memory_budget = js.memory_budget
    after.seq = max(js.seq, have)
    journal.compact(after)
    catalog.set_meta("journal_seq", after.seq)
    return report


def _with_vectors(jc: ClassState, cc: ClassState | None) -> tuple[ClassState, int]:
    """``jc`` with the vectors it lacks taken from ``cc``; examples with none dropped."""
    examples = {}
    lost = 0
    for path, e in jc.examples.items():
        if e.vector is None and cc is not None and path in cc.examples:
            other = cc.examples[path]
            e = Example(path, e.label, other.vector, other.fingerprint, other.size, other.added)
        if e.vector is None:
            lost += 1
            continue
        examples[path] = e
    out = ClassState(**{**class_fields(jc), "examples": examples})
    return out, lost


def _differs(a: ClassState, b: ClassState) -> bool:
    """Whether two states of a class teach differently (head, counts, examples)."""
    return _key(a) != _key(b)


def _key(c: ClassState) -> tuple:
    return (
        c.head,
        c.backbone,
        c.n_pos,
        c.n_neg,
        [(e.path, e.label, e.vector) for e in c.examples.values()],
    )


# ------------------------------------------------------------------------------ check
def journal_problems(catalog: Catalog, journal: Journal) -> list[str]:
    """What is wrong between the catalog's classes and the teaching journal, one line each:
    the journal missing, damaged, behind the catalog; the catalog behind the journal; the two
    disagreeing about a class."""
    have = int(catalog.get_meta("journal_seq", 0) or 0)
    name = journal.path.name
    if not journal.exists():
        return [f"the teaching journal {name} is missing"] if have > 0 else []
    replay = journal.replay(upto=have)
    if have == 0 and replay.records == 0 and replay.problem is None:
        return []  # nothing recorded yet (a library from before the journal, a kill making it)
    out = []
    if replay.problem:
        out.append(f"the teaching journal {name} is damaged: {replay.problem}")
    elif replay.last_seq < have:
        out.append(
            f"the teaching journal {name} ends at change {replay.last_seq}, "
            f"the catalog holds change {have}"
        )
    elif replay.last_seq > have + 1:
        out.append(
            f"the catalog lacks {replay.last_seq - have} changes of the teaching journal {name}"
        )
    if out:
        return out
    ours = catalog_state(catalog, read_files=False)
    theirs = replay.state.classes
    differ = sorted(
        n
        for n in set(ours.classes) | set(theirs)
        if n not in ours.classes or n not in theirs or _differs(ours.classes[n], theirs[n])
    )
    if differ:
        shown = ", ".join(repr(n) for n in differ[:3]) + (" ..." if len(differ) > 3 else "")
        out.append(f"the teaching journal {name} and the catalog disagree about {shown}")
    return out


def journal_of(directory: Path) -> Journal:
    """The teaching journal of the library in ``directory``."""
    return Journal(Path(directory) / JOURNAL)
