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

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from finder.errors import LibraryDamaged
from finder.store.catalog import Catalog
from finder.store.journal import (
    JOURNAL,
    ClassState,
    Example,
    Journal,
    Root,
    State,
    class_fields,
    class_to_json,
    example_entry,
    example_to_json,
    root_to_json,
)
from finder.store.taught import (
    apply_classes,
    apply_state,
    catalog_state,
    class_state,
    fingerprint_of,
    forgotten_state,
    from_record,
    put_forgotten,
    same_class,
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
        for path, label, vector, when, _ in rows:
            if path in added_set:
                fp, size = fingerprint_of(catalog, path, None)
                vectors.append(example_to_json(Example(path, label, vector, fp, size, when)))
        cls = {k: v for k, v in class_fields(from_record(record)).items() if k != "name"}
        self._record(
            catalog,
            {
                "op": "learn",
                "class": name,
                **cls,
                "examples": [example_entry(p, label, o) for p, label, _, _, o in rows],
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
                    if catalog.class_names() or catalog.forgotten_classes():
                        writer.rewrite(_whole_state(catalog))  # a library from before the journal
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


def _whole_state(catalog: Catalog) -> State:
    """What the catalog holds as the journal would: its classes and its forgotten classes."""
    state = catalog_state(catalog)
    state.forgotten = forgotten_state(catalog)
    return state


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
    if counts:
        report.examples_lost += _settle_forgotten(catalog, js, leads)
    after = catalog_state(catalog, known=js)
    after.forgotten = forgotten_state(catalog, known=js.forgotten)
    after.retired = {k: v for k, v in js.retired.items() if k not in after.classes}
    after.roots = js.roots
    after.backbone = after.backbone or js.backbone
    if after.memory_budget is None:
        after.memory_budget = js.memory_budget
    after.seq = max(js.seq, have)
    journal.compact(after)
    catalog.set_meta("journal_seq", after.seq)
    return report


def _settle_forgotten(catalog: Catalog, js: State, leads: bool) -> int:
    """Put the journal's forgotten classes into the catalog (restorable again after the
    catalog was lost): when the journal ``leads``, exactly its; else its with the catalog's
    that it does not know. A class live again (restored since) is no forgotten one. Returns
    how many of their examples were lost (no vector anywhere)."""
    ours = forgotten_state(catalog, known=js.forgotten, read_files=False)
    live = catalog_state(catalog, read_files=False).classes.values()
    kept = list(js.forgotten)
    if not leads:
        theirs = {same_class(f.cls) for f in kept}
        kept += [f for f in ours if same_class(f.cls) not in theirs]
    alive = {same_class(c) for c in live}
    kept = sorted((f for f in kept if same_class(f.cls) not in alive), key=lambda f: f.at)
    return put_forgotten(catalog, kept, lend=[*(f.cls for f in ours), *live])


def _with_vectors(jc: ClassState, cc: ClassState | None) -> tuple[ClassState, int]:
    """``jc`` with the vectors it lacks taken from ``cc``; examples with none dropped."""
    examples = {}
    lost = 0
    for path, e in jc.examples.items():
        if e.vector is None and cc is not None and path in cc.examples:
            other = cc.examples[path]
            e = Example(
                path, e.label, other.vector, other.fingerprint, other.size, other.added, e.origin
            )
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
        [(e.path, e.label, e.vector, e.origin) for e in c.examples.values()],
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
