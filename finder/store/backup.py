"""Backups of the catalog, and bringing a damaged catalog back from them.

    make_backup(catalog, folder)          # after each successful index run: the last KEEP kept
    report = repair_catalog(path, folder) # None when the catalog is healthy

A backup is a copy made with SQLite's online backup API (a consistent snapshot, taken while
readers go on), checked (``quick_check`` and meta) before it is kept: a damaged catalog never
pushes out a good backup.

:func:`repair_catalog` brings a damaged catalog back: it restores the newest backup that passes
SQLite's ``integrity_check`` and holds valid meta, then merges in every row it can still read
from the damaged file (images, videos' frames, classes and their examples changed since the
backup), reading around the damaged pages range by range. The damaged file is kept beside it
(``catalog.db.damaged-TIME``). Keywords are facts read from the photos and their sidecars:
the keyword rows of an image whose salvaged row does not match the backup's are forgotten and
read again by the next index run. The result is marked dirty: the library then reconciles it with
the vectors (``finder.library.Library.repair``), and the next index run with the disk. Image ids
are never given twice (``Catalog.next_id``), so an id restored from a backup still names the
photo whose vector the store holds under it.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from finder.errors import FinderError, LibraryDamaged, LibraryError
from finder.store import keywords as stored_keywords
from finder.store.catalog import PENDING, SCHEMA_VERSION, Catalog
from finder.store.check import bad_vectors, meta_problems, sqlite_problems
from finder.store.sqlite import connect, meta_problem

if TYPE_CHECKING:
    from finder.store.vectors import VectorStore

#: Backups kept in the library's ``backups/`` folder.
KEEP = 3
BACKUP_DIR = "backups"
_PREFIX, _SUFFIX = "catalog-", ".db"

# The tables read back from a damaged catalog (with the columns the repaired catalog has).
_TABLES = ("images", "frames", "classes", "examples", "meta")


@dataclass
class Salvage:
    """What could be read from a damaged catalog: rows by table (keyed by rowid), and whether
    each table was read whole."""

    rows: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)
    complete: dict[str, bool] = field(default_factory=dict)

    def meta(self) -> dict[str, Any]:
        """The meta values that are valid JSON of their type."""
        out = {}
        for row in self.rows.get("meta", {}).values():
            key = row.get("key")
            try:
                decoded = json.loads(row.get("value"))
            except (TypeError, ValueError):
                continue
            if meta_problem(key, decoded) is None:
                out[key] = decoded
        return out


@dataclass
class RepairReport:
    """What a repair did: to the catalog (``repair_catalog``), then to the vectors."""

    problems: list[str] = field(default_factory=list)  # what was wrong with the catalog
    restored: str | None = None  # the backup restored, None when none was (needed or good)
    salvaged: dict[str, int] = field(default_factory=dict)  # rows read back, by table
    unreadable: list[str] = field(default_factory=list)  # tables not read whole
    damaged_copy: str | None = None  # where the damaged catalog was kept
    vectors_reset: str | None = None  # the vector store was unreadable: kept here, started anew
    vectors_dropped: int = 0  # garbage vectors, vectors failing their checksum, of no image
    vector_problems: list[str] = field(default_factory=list)  # what was wrong with the vectors
    images_restored: int = 0  # images put back from the image map (images.npz)
    images_found: int = 0  # files found by walking the recorded roots, put back as pending
    roots: list[str] = field(default_factory=list)  # the roots the journal records
    teaching: dict[str, Any] = field(default_factory=dict)  # teaching.TeachingReport
    started_anew: str | None = None  # nothing said which backbone made the vectors: why
    to_embed: int = 0  # images pending after the repair: what the next index embeds
    thumbnails_dropped: int = 0  # thumbnails (thumbs/, frames/) of no image or frame now

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------------ backups
def backups(folder: Path) -> list[Path]:
    """The backups in ``folder``, newest first."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.name.startswith(_PREFIX) and p.suffix == _SUFFIX]
    return sorted(found, key=lambda p: p.name, reverse=True)


def file_problems(path: Path) -> list[str]:
    """Why the catalog file at ``path`` cannot be trusted (empty when it can): SQLite's
    ``integrity_check``, the meta values, the schema version, a backbone record."""
    if not path.exists():
        return [f"{path.name} is missing"]
    try:
        conn = connect(path, read_only=True)
    except FinderError as e:
        return [getattr(e, "detail", str(e))]
    try:
        problems = sqlite_problems(conn) + meta_problems(conn)
        if problems:
            return problems
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        if json.loads(meta.get("schema_version", "0")) != SCHEMA_VERSION:
            return [f"schema version {meta.get('schema_version')} is not {SCHEMA_VERSION}"]
        if "backbone" not in meta:
            return ["no backbone record"]
        return []
    except (FinderError, sqlite3.Error) as e:
        return [getattr(e, "detail", str(e))]
    finally:
        conn.close()


def make_backup(catalog: Catalog, folder: Path, keep: int = KEEP) -> Path:
    """Copy ``catalog`` into ``folder`` with SQLite's online backup API; keep the newest
    ``keep`` backups. A copy that fails its check is not kept (``LibraryDamaged``)."""
    folder.mkdir(exist_ok=True)
    now = time.time_ns()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now // 10**9))
    final = folder / f"{_PREFIX}{stamp}-{now % 10**9:09d}{_SUFFIX}"
    tmp = final.with_name(final.name + ".tmp")
    dst = sqlite3.connect(str(tmp), isolation_level=None)
    try:
        catalog.db.conn.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")
        problems = sqlite_problems(dst, quick=True) + meta_problems(dst)
    finally:
        dst.close()
    if problems:
        tmp.unlink(missing_ok=True)
        raise LibraryDamaged(
            f"the catalog {catalog.path} is damaged ({problems[0]}); run `finder repair`"
        )
    _fsync(tmp)
    os.replace(tmp, final)
    _fsync(folder)
    for old in backups(folder)[keep:]:
        old.unlink(missing_ok=True)
    for stale in folder.glob(f"{_PREFIX}*{_SUFFIX}.tmp"):
        if stale != tmp:
            stale.unlink(missing_ok=True)
    return final


def newest_good_backup(folder: Path) -> Path | None:
    return next((p for p in backups(folder) if not file_problems(p)), None)


# ------------------------------------------------------------------------------------ salvage
def salvage(path: Path, columns: dict[str, list[str]]) -> Salvage:
    """Every row of ``path``'s tables that can still be read, reading around damaged pages:
    of each table, the ``columns`` it has (rows as dicts, keyed by rowid)."""
    out = Salvage(complete={t: False for t in _TABLES})
    if not path.exists():
        return out
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error:
        return out
    try:
        for table in _TABLES:
            try:
                have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
            except sqlite3.Error:
                have = set(columns[table])
            cols = [c for c in columns[table] if c in have]
            rows, complete = _salvage_table(conn, table, cols) if cols else ({}, False)
            out.rows[table] = rows
            out.complete[table] = complete
    finally:
        conn.close()
    return out


def _salvage_table(
    conn: sqlite3.Connection, table: str, cols: list[str]
) -> tuple[dict[int, dict[str, Any]], bool]:
    """Rows in rowid order; at a damaged page, skip ahead to the first rowid from which reading
    works again (doubling steps, then bisection: a few dozen queries a damaged region)."""
    select = (
        f"SELECT rowid, {', '.join(cols)} FROM {table} "  # noqa: S608 - names from the schema
        "WHERE rowid > ? ORDER BY rowid"
    )
    rows: dict[int, dict[str, Any]] = {}
    last = -(1 << 63)
    complete = True
    while True:
        try:
            for r in conn.execute(select, [last]):
                rows[r[0]] = dict(zip(cols, r[1:], strict=True))
                last = r[0]
            return rows, complete
        except sqlite3.Error:
            complete = False
        resume = _past_damage(conn, select, last)
        if resume is None:
            return rows, complete
        last = resume


def _past_damage(conn: sqlite3.Connection, select: str, bad: int) -> int | None:
    """The smallest ``start`` after ``bad`` from which ``select`` (rows after ``start``) can be
    read, or None when nothing after ``bad`` can."""

    def readable(start: int) -> bool:
        try:
            conn.execute(select + " LIMIT 1", [start]).fetchall()
            return True
        except sqlite3.Error:
            return False

    step, good = 1, None
    while bad + step < (1 << 63) - 1:
        if readable(bad + step):
            good = bad + step
            break
        bad, step = bad + step, step * 2
    if good is None:
        return None
    while good - bad > 1:
        mid = (good + bad) // 2
        if readable(mid):
            good = mid
        else:
            bad = mid
    return good


# ------------------------------------------------------------------------------------ repair
def repair_catalog(
    path: Path, folder: Path, fallback: dict[str, Any] | None = None
) -> RepairReport:
    """Bring the damaged (or missing) catalog at ``path`` back from the newest good backup in
    ``folder`` and what can still be read from it (a healthy catalog is left as it is). Meta
    that neither holds (the backbone, the memory budget) is taken from ``fallback`` (what the
    teaching journal recorded); with none, the catalog has no backbone record (the library
    starts anew: see ``finder.store.repair``)."""
    problems = file_problems(path)
    if not problems:
        return RepairReport()
    source = newest_good_backup(folder)
    new = path.with_name(path.name + ".repair")
    for p in _with_journals(new):
        p.unlink(missing_ok=True)
    if source is not None:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        dst = sqlite3.connect(str(new))
        try:
            src.backup(dst)
        finally:
            src.close()
            dst.close()
    cat = Catalog(new)  # a fresh file is created with the current schema (a backup migrated)
    try:
        columns = {t: list(cat.db[t].columns_dict) for t in _TABLES}
        saved = salvage(path, columns)
        counts = _merge(cat, saved, restored=source is not None)
        for key, value in (fallback or {}).items():
            if value is not None and cat.get_meta(key) is None:
                cat.set_meta(key, value)
        cat.db.execute("PRAGMA journal_mode=DELETE")
        left = sqlite_problems(cat.db.conn)
    finally:
        cat.close()
    if left:  # pragma: no cover - a fresh file on a failing disk
        raise LibraryDamaged(f"the repaired catalog {new} fails its check too ({left[0]})")
    _fsync(new)
    kept = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    copied = path.exists()
    for src_path, suffix in zip(_with_journals(path)[:2], ("", "-wal"), strict=True):
        if src_path.exists():  # the damaged file and its journal, kept for a post-mortem
            shutil.copyfile(src_path, f"{kept}{suffix}")
    for journal in _with_journals(path)[1:]:
        journal.unlink(missing_ok=True)  # a journal must never be replayed onto another file
    os.replace(new, path)
    _fsync(path.parent)
    unreadable = [t for t, whole in saved.complete.items() if not whole]
    return RepairReport(
        problems,
        source.name if source else None,
        counts,
        unreadable,
        os.path.basename(kept) if copied else None,
    )


def open_store(
    opener: Callable[[], VectorStore], directory: Path, report: RepairReport
) -> VectorStore:
    """The vector store, opened for writing; one that cannot be opened at all is kept aside
    (``vectors.damaged-TIME``) and started anew, its images to be embedded again."""
    try:
        return opener()
    except LibraryDamaged:
        raise
    except LibraryError:
        kept = directory.with_name(f"{directory.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(directory, kept)
        report.vectors_reset = kept.name
        return opener()


def drop_bad_vectors(catalog: Catalog, store: VectorStore, report: RepairReport) -> int:
    """Remove from ``store`` the vectors that fail their checksum (every vector of an append
    whose checksum fails: a vector changed in place, still a unit vector, is found so) and
    garbage (vectors that are not finite unit vectors); their images go back to pending, and
    the raw files are rewritten without them (fresh checksums). Returns the largest id the
    store has held a vector for."""
    ids = np.unique(np.asarray(store.ids(), dtype=np.int64))
    raw = store.raw
    report.vector_problems = store.check()
    failing = raw.failing_rows()
    failing_ids = raw.ids_of(failing[raw.alive()[failing]])
    bad = np.union1d(bad_vectors(store, ids), failing_ids)
    if len(bad):
        store.remove(bad)
        catalog.set_pending([int(i) for i in bad])
        report.vectors_dropped += len(bad)
    if len(failing) or raw.damage:
        store.compact()
    store.commit()
    return int(ids.max()) if len(ids) else 0


def finish_report(catalog: Catalog, report: RepairReport, dropped: int) -> RepairReport:
    report.vectors_dropped += dropped
    report.to_embed = catalog.counts()[PENDING]
    return report


def _merge(cat: Catalog, saved: Salvage, restored: bool) -> dict[str, int]:
    """Rows read from the damaged catalog win over the backup's; a table read whole also
    removes the backup's rows it no longer has. Meta: the backup's, except the memory budget
    and the id high-water mark; marked dirty."""
    db = cat.db.conn
    good = {
        "images": _good_image,
        "frames": _good_frame,
        "classes": _good_class,
        "examples": _good_example,
    }
    rows = {t: [r for r in saved.rows.get(t, {}).values() if ok(r)] for t, ok in good.items()}
    stale: list[int] = []  # images whose keywords must be read again
    with cat.transaction():
        for r in rows["images"]:
            db.execute("DELETE FROM images WHERE path = ? AND id != ?", [r["path"], r["id"]])
            before = db.execute(
                "SELECT keywords_read, xmp_stamp FROM images WHERE id = ?", [r["id"]]
            ).fetchone()
            if before is None or tuple(before) != (r.get("keywords_read"), r.get("xmp_stamp")):
                stale.append(r["id"])  # the keyword rows (from the backup) are not this row's
            _upsert(db, "images", r)
        for r in rows["frames"]:
            _upsert(db, "frames", r)
        for r in rows["classes"]:
            _upsert(db, "classes", r)
        for r in rows["examples"]:
            db.execute(
                "DELETE FROM examples WHERE class_name = ? AND path = ? AND id != ?",
                [r["class_name"], r["path"], r["id"]],
            )
            _upsert(db, "examples", r)
        for table, key in (
            ("images", "id"),
            ("frames", "id"),
            ("classes", "name"),
            ("examples", "id"),
        ):
            if saved.complete.get(table):
                _keep_only(db, table, key, [r[key] for r in rows[table]])
        # frames of a video that is no longer one stand for nothing (a video whose frames do
        # not all come back goes back to pending when the library reconciles)
        db.execute(
            "DELETE FROM frames WHERE video_id NOT IN "
            "(SELECT id FROM images WHERE kind = 'video' AND status != 'failed')"
        )
        # examples of a class whose record is lost teach nothing on their own
        db.execute("DELETE FROM examples WHERE class_name NOT IN (SELECT name FROM classes)")
        stored_keywords.forget(db, stale)  # keywords are facts on disk: read again next index
        meta = saved.meta()
        keys = ["memory_budget"] if restored else [k for k in meta if k != "schema_version"]
        for key in keys:
            if key in meta:
                cat.set_meta(key, meta[key])
        cat.set_meta("next_id", max(cat.next_id(), int(meta.get("next_id", 1))))
        cat.set_meta("dirty", True)
    return {table: len(found) for table, found in rows.items()}


def _upsert(db: sqlite3.Connection, table: str, row: dict[str, Any]) -> None:
    names = ", ".join(row)
    marks = ", ".join("?" * len(row))
    db.execute(f"INSERT OR REPLACE INTO {table}({names}) VALUES ({marks})", list(row.values()))  # noqa: S608


def _keep_only(db: sqlite3.Connection, table: str, key: str, keep: list[Any]) -> None:
    db.execute("CREATE TEMP TABLE IF NOT EXISTS keep_keys(k PRIMARY KEY)")
    db.execute("DELETE FROM temp.keep_keys")
    db.executemany("INSERT OR IGNORE INTO temp.keep_keys VALUES (?)", [(k,) for k in keep])
    db.execute(f"DELETE FROM {table} WHERE {key} NOT IN (SELECT k FROM temp.keep_keys)")  # noqa: S608


def _good_image(r: dict[str, Any]) -> bool:
    return (
        isinstance(r.get("id"), int)
        and isinstance(r.get("path"), bytes)
        and bool(r["path"])
        and isinstance(r.get("size"), int)
        and isinstance(r.get("mtime_ns"), int)
        and r.get("status") in ("pending", "ok", "failed")
        and r.get("kind", "photo") in ("photo", "video")
        and (r.get("fingerprint") is None or isinstance(r["fingerprint"], str))
    )


def _good_frame(r: dict[str, Any]) -> bool:
    return (
        isinstance(r.get("id"), int)
        and isinstance(r.get("video_id"), int)
        and isinstance(r.get("time"), (int, float))
    )


def _good_class(r: dict[str, Any]) -> bool:
    try:
        return isinstance(r.get("name"), str) and isinstance(json.loads(r["head"]), dict)
    except (KeyError, TypeError, ValueError):
        return False


def _good_example(r: dict[str, Any]) -> bool:
    vector = r.get("vector")
    return (
        isinstance(r.get("id"), int)
        and isinstance(r.get("class_name"), str)
        and isinstance(r.get("path"), bytes)
        and r.get("label") in (0, 1)
        and isinstance(vector, bytes)
        and len(vector) % 4 == 0
    )


def _with_journals(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - some file systems refuse opening folders
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
