"""Plan a batch of settled changes against the catalog, without walking the roots.

    ready = settler.take()                         # finder.ingest.watch: files, folders, renames
    plan = plan_changes(catalog, ready, roots, rules, offline=..., unsettled=...)
    sync.apply_plan(catalog, store, plan, summary)  # the same Plan as sync.plan_root's

Only the paths that changed are looked at: each file is stat-ed, each folder (one that was
renamed, moved away or deleted) walked, and compared with the catalog rows at those paths,
with the rules of :func:`finder.sync.plan_root`: same size and mtime is unchanged; a new
mtime with the recorded content fingerprint only touched; otherwise changed (embedded again).

Moves keep their ids, and so their vectors. A rename the operating system reported
(``ready.renames``, a file or a whole folder) moves the rows at once when the file at the new
path has the size and modification time the row recorded (a rename changes neither): a folder
of 800 photos renamed costs 800 stats and no read. Other vanished photos are matched to new
files by size and content fingerprint, as a walk does (a move across roots, a copy then a
deletion).

Nothing is planned for paths still settling (``unsettled``: they come in a later batch), and
a vanished photo whose size matches a file still settling waits too (it may be that file's
source). Paths under an offline part (``finder.roots``) are not looked at: their photos stay.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence

from finder import sync
from finder.errors import DecodeError, UsageError
from finder.ingest import crawl
from finder.ingest.crawl import FileFact
from finder.ingest.watch import PathRules, Ready, under
from finder.roots import Offline
from finder.store.catalog import OK, PENDING, Catalog, ImageRow

RENAME_CHAIN = 8  # renames followed one after another (a → b → c) within one batch


def _root_of(path: str, roots: Sequence[str]) -> str | None:
    best = None
    for r in roots:
        if under(path, r) and (best is None or len(r) > len(best)):
            best = r
    return best


def _stat_fact(path: str) -> FileFact | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    if stat.S_ISREG(st.st_mode):
        return FileFact(path, st.st_size, st.st_mtime_ns)
    if stat.S_ISDIR(st.st_mode):
        return FileFact(path, st.st_size, st.st_mtime_ns, is_dir=True)
    return None


def look_at(
    catalog: Catalog,
    ready: Ready,
    roots: Sequence[str],
    rules: PathRules,
    offline: Sequence[Offline] = (),
) -> tuple[dict[str, FileFact], dict[str, ImageRow]]:
    """What is on disk now at the changed paths (photo files, by path) and what the catalog
    holds there (rows, by path), for paths under ``roots`` and not under an ``offline`` part."""

    def in_scope(path: str) -> str | None:
        root = _root_of(path, roots)
        if root is None or any(under(path, p.path) for p in offline):
            return None
        return root

    facts: dict[str, FileFact] = {}
    rows: dict[str, ImageRow] = {}
    folders = set(ready.folders)
    for path in ready.files:
        root = in_scope(path)
        if root is None:
            continue
        fact = _stat_fact(path)
        if fact is not None and fact.is_dir:
            folders.add(path)  # a folder now where a photo was: compare its content
        if fact is not None and rules.wanted(path, root):
            facts[path] = fact
        row = catalog.image_by_path(path)
        if row is not None:
            rows[path] = row
    for folder in sorted(folders):
        root = in_scope(folder)
        if root is None:
            continue
        for row in catalog.rows_under(folder):
            if not any(under(row.path, p.path) for p in offline):
                rows[row.path] = row
        if not (rules.wanted(folder, root, folder=True) and os.path.isdir(folder)):
            continue
        try:
            found = crawl.walk([folder], hidden=rules.hidden, exclude=rules.exclude, videos=True)
            for fact in found:
                if in_scope(fact.path) and not any(under(fact.path, ig) for ig in rules.ignore):
                    facts[fact.path] = fact
        except UsageError:  # vanished since
            continue
    return facts, rows


def plan_changes(
    catalog: Catalog,
    ready: Ready,
    roots: Sequence[str],
    rules: PathRules,
    *,
    offline: Sequence[Offline] = (),
    unsettled: tuple[set[str], dict[int, list[str]]] = (set(), {}),
) -> tuple[sync.Plan, dict[str, list[str]]]:
    """The plan for ``ready`` (see the module docstring; nothing is changed yet), and the
    vanished photos held back, each with the files of its size still settling (note it again,
    linked to them: it may be the source of one of them)."""
    facts, rows = look_at(catalog, ready, roots, rules, offline)
    waiting, waiting_sizes = unsettled
    new: list[FileFact] = []
    redo: list[tuple[int, FileFact, str]] = []
    gone: list[ImageRow] = []
    held: dict[str, list[str]] = {}
    unchanged = 0
    for path in sorted(set(facts) | set(rows)):
        if path in waiting:
            continue
        fact, row = facts.get(path), rows.get(path)
        if row is None and fact is not None:
            new.append(fact)
        elif row is not None and fact is None:
            gone.append(row)
        elif row is not None and fact is not None:
            same = row.size == fact.size and row.mtime_ns == fact.mtime_ns
            if same and row.status != PENDING:
                unchanged += 1
            else:
                redo.append((row.id, fact, row.status))
    moved, new, gone = _moves(new, gone, ready.renames)
    for row in gone:
        if row.status == OK and row.size in waiting_sizes:
            held[row.path] = waiting_sizes[row.size]  # perhaps their source: wait for them
    gone = [r for r in gone if r.path not in held]
    redo, touched = sync._split_touched(catalog, redo)
    return sync.Plan("", unchanged + len(touched), new, redo, moved, gone, touched), held


def _renamed(path: str, renames: dict[str, str]) -> str | None:
    """Where a reported rename (of the file or of a folder above it) took ``path``."""
    out = path
    for _ in range(RENAME_CHAIN):
        dst = renames.get(out)
        if dst is None:
            parent = out
            while True:
                up = os.path.dirname(parent)
                if up == parent:
                    break
                parent = up
                if parent in renames:
                    dst = renames[parent] + out[len(parent) :]
                    break
        if dst is None:
            break
        out = dst
    return None if out == path else out


def _moves(
    new: list[FileFact], gone: list[ImageRow], renames: dict[str, str]
) -> tuple[list[tuple[ImageRow, FileFact]], list[FileFact], list[ImageRow]]:
    """Pair vanished rows with new files: reported renames first (same size and mtime, no
    read), then by size and content fingerprint (ok rows only, as ``sync.plan_root``)."""
    by_path = {f.path: f for f in new if not f.is_dir}
    moved: list[tuple[ImageRow, FileFact]] = []
    left: list[ImageRow] = []
    for row in gone:
        dst = _renamed(row.path, renames) if renames else None
        fact = by_path.get(dst) if dst is not None else None
        if fact is not None and fact.size == row.size and fact.mtime_ns == row.mtime_ns:
            moved.append((row, fact))
            del by_path[fact.path]
        else:
            left.append(row)
    gone_by_size: dict[int, list[ImageRow]] = {}
    for row in left:
        if row.status == OK and row.fingerprint:
            gone_by_size.setdefault(row.size, []).append(row)
    taken = {fact.path for _, fact in moved}
    for fact in sorted(by_path.values(), key=lambda f: f.path):
        candidates = gone_by_size.get(fact.size)
        if not candidates:
            continue
        try:
            fp = crawl.fingerprint(fact.path, fact.size)
        except DecodeError:
            continue
        match = next((r for r in candidates if r.fingerprint == fp), None)
        if match is not None:
            candidates.remove(match)
            moved.append((match, fact))
            taken.add(fact.path)
    moved_ids = {row.id for row, _ in moved}
    return (
        moved,
        [f for f in new if f.path not in taken],
        [r for r in gone if r.id not in moved_ids],
    )
