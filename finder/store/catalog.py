"""The SQLite catalog, through sqlite-utils: images, classes, their examples, and meta.

Paths are stored as BLOBs of ``os.fsencode(path)`` so that names which are not valid UTF-8
round-trip exactly; the Python side always sees ``str`` (``os.fsdecode``).

Image status: ``pending`` (known, no vector yet), ``ok`` (exactly one vector in the store),
``failed`` (could not be decoded; ``error`` says why; retried only when the file changes).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlite_utils

from finder.errors import FinderError, LibraryDamaged, LibraryError, LibraryLocked
from finder.ingest.crawl import FileFact
from finder.store import facts as stored_facts

if TYPE_CHECKING:
    from finder.ingest.facts import PhotoFacts

SCHEMA_VERSION = 3

PENDING, OK, FAILED = "pending", "ok", "failed"

#: What each meta value must be; a value of another type is damage (a hand edit, a bad disk).
META_TYPES: dict[str, tuple[type, ...]] = {
    "schema_version": (int,),
    "dirty": (bool,),
    "backbone": (dict,),
    "index_name": (str, type(None)),
    "memory_budget": (int, type(None)),
    "next_id": (int,),
}
#: Keys a backbone record must hold, with their types.
BACKBONE_KEYS: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "dim": (int,),
    "fingerprint": (str,),
    "weights": (str,),
    "input_size": (list,),
}


class CatalogTooOld(LibraryError):
    """A catalog of an older schema, opened read-only: it cannot be migrated there."""


def damaged(path: os.PathLike | str, what: str) -> LibraryDamaged:
    """The one-line error for damage found in the catalog at ``path`` (``what``: its
    ``detail``)."""
    error = LibraryDamaged(f"the catalog {path} is damaged ({what}); run `finder repair`")
    error.detail = what  # type: ignore[attr-defined]
    return error


def meta_problem(key: str, value: Any) -> str | None:
    """Why a decoded meta value cannot be right, or None."""
    types = META_TYPES.get(key)
    if types is None:
        return None
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        return f"meta {key!r} holds {_short_repr(value)}"
    if key == "backbone":
        for name, kinds in BACKBONE_KEYS.items():
            v = value.get(name)
            if not isinstance(v, kinds) or isinstance(v, bool):
                return f"meta 'backbone' lacks a valid {name!r}"
        if value["dim"] <= 0 or int(value.get("views", 1) or 0) not in (1, 2, 4):
            return "meta 'backbone' holds impossible values"
    return None


def _short_repr(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def sqlite_error(e: sqlite3.Error, path: os.PathLike | str) -> FinderError | None:
    """Our one-line error for an SQLite error that is not a bug of ours, or None."""
    name = getattr(e, "sqlite_errorname", "") or ""
    text = str(e)
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in text:
        return damaged(path, text)
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return LibraryLocked(f"the catalog {path} is busy ({text}); try again")
    if name.startswith("SQLITE_READONLY"):
        return LibraryError(f"the catalog {path} is read-only ({text})")
    if name.startswith(("SQLITE_IOERR", "SQLITE_FULL", "SQLITE_CANTOPEN", "SQLITE_PERM")):
        return LibraryError(f"cannot use the catalog {path}: {text}")
    return None


class _Cursor(sqlite3.Cursor):
    """A cursor whose SQLite errors (at execute or while rows are read) become ours."""

    def _fail(self, e: sqlite3.Error) -> FinderError | sqlite3.Error:
        return sqlite_error(e, self.connection.catalog_path) or e  # type: ignore[attr-defined]

    def execute(self, *args: Any) -> _Cursor:  # type: ignore[override]
        try:
            return super().execute(*args)
        except sqlite3.Error as e:
            raise self._fail(e) from None

    def executemany(self, *args: Any) -> _Cursor:  # type: ignore[override]
        try:
            return super().executemany(*args)
        except sqlite3.Error as e:
            raise self._fail(e) from None

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except sqlite3.Error as e:
            raise self._fail(e) from None

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except sqlite3.Error as e:
            raise self._fail(e) from None

    def fetchmany(self, *args: Any) -> list[Any]:
        try:
            return super().fetchmany(*args)
        except sqlite3.Error as e:
            raise self._fail(e) from None


class _Connection(sqlite3.Connection):
    """A connection whose statements run on :class:`_Cursor`."""

    catalog_path: str = ""

    def execute(self, *args: Any) -> _Cursor:  # type: ignore[override]
        return self.cursor(_Cursor).execute(*args)

    def executemany(self, *args: Any) -> _Cursor:  # type: ignore[override]
        return self.cursor(_Cursor).executemany(*args)


def connect(path: os.PathLike | str, *, read_only: bool = False) -> sqlite3.Connection:
    """A connection to the catalog file at ``path`` whose errors are ours. ``read_only`` opens
    it without ever writing (falling back to ``immutable`` when its folder cannot be written,
    where SQLite could not create the WAL's shared-memory file)."""
    path = str(path)
    uri = "file:" + urllib.parse.quote(os.path.abspath(path))
    attempts = [(uri + "?mode=ro", True)] if read_only else [(path, False)]
    if read_only:
        attempts.append((uri + "?mode=ro&immutable=1", True))
    error: Exception | None = None
    for target, is_uri in attempts:
        conn = None
        try:
            conn = sqlite3.connect(
                target, timeout=30, isolation_level=None, uri=is_uri, factory=_Connection
            )
            conn.catalog_path = path  # type: ignore[attr-defined]
            if read_only:  # the WAL's shared memory must be reachable, else try immutable
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except (FinderError, sqlite3.Error) as e:
            if conn is not None:
                conn.close()
            error = e
    if isinstance(error, FinderError):
        raise error
    assert isinstance(error, sqlite3.Error)
    raise sqlite_error(error, path) or LibraryError(f"cannot open the catalog {path}: {error}")


def encode_path(path: str) -> bytes:
    return os.fsencode(path)


def decode_path(blob: bytes) -> str:
    return os.fsdecode(bytes(blob))


def path_range(root: str) -> tuple[bytes, bytes]:
    """The half-open BLOB range [lo, hi) of every path strictly below directory ``root``."""
    prefix = encode_path(root.rstrip(os.sep) or os.sep)
    if not prefix.endswith(os.fsencode(os.sep)):
        prefix += os.fsencode(os.sep)
    return prefix, prefix[:-1] + bytes([prefix[-1] + 1])


@dataclass(frozen=True)
class ImageRow:
    id: int
    path: str
    size: int
    mtime_ns: int
    fingerprint: str | None
    status: str
    error: str | None


@dataclass
class Scan:
    """One root's walk against the catalog."""

    unchanged: int
    redo: list[tuple[int, FileFact, str]]  # (id, fact, old status): changed or still pending
    new: list[FileFact]
    gone: list[ImageRow]


@dataclass(frozen=True)
class ExampleRow:
    class_name: str
    path: str
    label: int  # 1 positive, 0 negative
    vector: bytes  # float32 unit vector


def _migrate_to_1(db: sqlite_utils.Database) -> None:
    db["images"].create(
        {
            "id": int,
            "path": bytes,
            "size": int,
            "mtime_ns": int,
            "fingerprint": str,
            "status": str,
            "error": str,
            "updated": float,
        },
        pk="id",
        not_null={"path", "size", "mtime_ns", "status"},
        if_not_exists=True,
    )
    db["images"].create_index(["path"], unique=True, if_not_exists=True)
    db["images"].create_index(["status"], if_not_exists=True)
    db["classes"].create(
        {
            "name": str,
            "head": str,
            "backbone": str,
            "threshold": float,
            "n_pos": int,
            "n_neg": int,
            "created": float,
            "updated": float,
        },
        pk="name",
        if_not_exists=True,
    )
    db["examples"].create(
        {
            "id": int,
            "class_name": str,
            "path": bytes,
            "label": int,
            "vector": bytes,
            "added": float,
        },
        pk="id",
        not_null={"class_name", "path", "label", "vector"},
        if_not_exists=True,
    )
    db["examples"].create_index(["class_name", "path"], unique=True, if_not_exists=True)


def _migrate_to_2(db: sqlite_utils.Database) -> None:
    """The class cut-off is stored once, in the head's JSON: the ``threshold`` column goes
    (a head that lacks one takes the column's value first)."""
    for name, head, threshold in db.execute("SELECT name, head, threshold FROM classes").fetchall():
        data = json.loads(head)
        if "threshold" not in data and threshold is not None:
            data["threshold"] = threshold
            db.execute("UPDATE classes SET head = ? WHERE name = ?", [json.dumps(data), name])
    if "threshold" in db["classes"].columns_dict:
        db.execute("ALTER TABLE classes DROP COLUMN threshold")


def _migrate_to_3(db: sqlite_utils.Database) -> None:
    """Photo facts: date taken, camera, lens, position, size (see ``finder.store.facts``)."""
    stored_facts.migrate(db)


# Step-by-step migrations: MIGRATIONS[v] brings a catalog from version v to v + 1.
MIGRATIONS = [_migrate_to_1, _migrate_to_2, _migrate_to_3]


class Catalog:
    """The library's SQLite file. Every public method commits before it returns.

    SQLite errors that mean damage (a malformed page, not a database) become
    :class:`~finder.errors.LibraryDamaged`, whichever statement meets them; so does a meta value
    of the wrong type. ``read_only`` opens the file without writing anything (readers)."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        conn = connect(self.path, read_only=read_only)
        try:
            self.db = sqlite_utils.Database(conn)
            if not read_only:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except FinderError:
            conn.close()
            raise
        except sqlite3.DatabaseError as e:
            conn.close()
            raise damaged(self.path, str(e)) from None

    # -- schema ---------------------------------------------------------------------------
    def _migrate(self) -> None:
        """Bring the schema up to date; a current catalog is only read (so that readers never
        wait for a writer)."""
        try:
            version = self.get_meta("schema_version", 0)
        except sqlite3.OperationalError:  # a new file: no meta table yet
            version = 0
        if version > SCHEMA_VERSION:
            raise LibraryError(
                f"this library was written by a newer finder (schema {version}); upgrade finder"
            )
        if version == SCHEMA_VERSION:
            return
        if self.read_only:
            raise CatalogTooOld(
                f"the catalog {self.path} needs an upgrade (schema {version} to "
                f"{SCHEMA_VERSION}) that a read-only library cannot take"
            )
        with self.transaction():
            self.db["meta"].create({"key": str, "value": str}, pk="key", if_not_exists=True)
            version = self.get_meta("schema_version", 0)  # another process may have migrated
            while version < SCHEMA_VERSION:
                MIGRATIONS[version](self.db)
                version += 1
                self._set_meta("schema_version", version)

    def transaction(self):
        """A context manager: BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error)."""
        return _Transaction(self.db.conn)

    def close(self) -> None:
        self.db.conn.close()

    # -- meta -----------------------------------------------------------------------------
    def get_meta(self, key: str, default: Any = None) -> Any:
        """The meta value of ``key`` (``default`` when absent); a value that is not JSON, or
        not of the type ``META_TYPES`` says, is damage."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        if row is None:
            return default
        try:
            value = json.loads(row[0])
        except (TypeError, ValueError):
            raise damaged(self.path, f"meta {key!r} is not JSON") from None
        problem = meta_problem(key, value)
        if problem:
            raise damaged(self.path, problem)
        return value

    def _set_meta(self, key: str, value: Any) -> None:
        self.db.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [key, json.dumps(value)],
        )

    def set_meta(self, key: str, value: Any) -> None:
        with self.transaction():
            self._set_meta(key, value)

    # -- images ---------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        out = {PENDING: 0, OK: 0, FAILED: 0}
        for status, n in self.db.execute("SELECT status, count(*) FROM images GROUP BY status"):
            out[status] = n
        return out

    def ok_ids(self) -> list[int]:
        return self.ids_with_status(OK)

    def ids_with_status(self, status: str) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT id FROM images WHERE status = ?", [status])]

    def image_by_path(self, path: str) -> ImageRow | None:
        row = self.db.execute(
            "SELECT id, path, size, mtime_ns, fingerprint, status, error FROM images "
            "WHERE path = ?",
            [encode_path(path)],
        ).fetchone()
        return None if row is None else _image_row(row)

    def paths_for(
        self, ids: Sequence[int], ok_only: bool = False, searchable: bool = False
    ) -> dict[int, str]:
        """Paths of these image ids (only those with status ok, with ``ok_only``; those that
        may hold a vector, ok or pending, with ``searchable``)."""
        out: dict[int, str] = {}
        ids = [int(i) for i in ids]
        where = " AND status = 'ok'" if ok_only else ""
        if searchable:
            where = " AND status IN ('ok', 'pending')"
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT id, path FROM images WHERE id IN ({marks}){where}"
            for i, p in self.db.execute(sql, chunk):
                out[i] = decode_path(p)
        return out

    def rows_by_id(self, ids: Sequence[int]) -> dict[int, ImageRow]:
        out: dict[int, ImageRow] = {}
        ids = [int(i) for i in ids]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for row in self.db.execute(
                "SELECT id, path, size, mtime_ns, fingerprint, status, error FROM images "
                f"WHERE id IN ({','.join('?' * len(chunk))})",
                chunk,
            ):
                out[row[0]] = _image_row(row)
        return out

    def failed(self) -> list[tuple[str, str]]:
        return [
            (decode_path(p), e or "")
            for p, e in self.db.execute(
                "SELECT path, error FROM images WHERE status = 'failed' ORDER BY path"
            )
        ]

    def ids_under(self, root: str, status: str | None = None) -> list[int]:
        lo, hi = path_range(root)
        sql = "SELECT id FROM images WHERE ((path >= ? AND path < ?) OR path = ?)"
        params: list[Any] = [lo, hi, encode_path(root)]
        if status:
            sql += " AND status = ?"
            params.append(status)
        return [r[0] for r in self.db.execute(sql, params)]

    def rows_under(self, root: str) -> Iterator[ImageRow]:
        lo, hi = path_range(root)
        for row in self.db.execute(
            "SELECT id, path, size, mtime_ns, fingerprint, status, error FROM images "
            "WHERE (path >= ? AND path < ?) OR path = ?",
            [lo, hi, encode_path(root)],
        ):
            yield _image_row(row)

    def set_pending(self, ids: Iterable[int]) -> None:
        with self.transaction():
            self.db.conn.executemany(
                "UPDATE images SET status = 'pending', error = NULL WHERE id = ?",
                [(int(i),) for i in ids],
            )

    # -- incremental scans (mark and sweep, set-based) -----------------------------------
    def load_walk(self, facts: Iterable[FileFact]) -> int:
        """Fill the temporary table ``walk`` with the facts of one root's walk."""
        self.db.execute("DROP TABLE IF EXISTS temp.walk")
        self.db.execute(
            "CREATE TEMP TABLE walk(path BLOB PRIMARY KEY, size INTEGER, mtime_ns INTEGER,"
            " is_dir INTEGER)"
        )
        with self.transaction() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO temp.walk VALUES (?, ?, ?, ?)",
                ((encode_path(f.path), f.size, f.mtime_ns, int(f.is_dir)) for f in facts),
            )
        return self.db.execute("SELECT count(*) FROM temp.walk").fetchone()[0]

    def scan(self, root: str) -> Scan:
        """Compare the loaded walk with what the catalog holds under ``root``."""
        lo, hi = path_range(root)
        same = "i.size = w.size AND i.mtime_ns = w.mtime_ns"
        unchanged = self.db.execute(
            f"SELECT count(*) FROM temp.walk w JOIN images i ON i.path = w.path "
            f"WHERE {same} AND i.status != 'pending'"
        ).fetchone()[0]
        redo = [
            (i, _fact(p, size, mtime, is_dir), status)
            for i, p, size, mtime, is_dir, status in self.db.execute(
                f"SELECT i.id, w.path, w.size, w.mtime_ns, w.is_dir, i.status "
                f"FROM temp.walk w JOIN images i ON i.path = w.path "
                f"WHERE NOT ({same} AND i.status != 'pending')"
            )
        ]
        new = [
            _fact(p, size, mtime, is_dir)
            for p, size, mtime, is_dir in self.db.execute(
                "SELECT w.path, w.size, w.mtime_ns, w.is_dir FROM temp.walk w "
                "WHERE NOT EXISTS (SELECT 1 FROM images i WHERE i.path = w.path) ORDER BY w.path"
            )
        ]
        gone = [
            _image_row(row)
            for row in self.db.execute(
                "SELECT id, path, size, mtime_ns, fingerprint, status, error FROM images i "
                "WHERE ((i.path >= ? AND i.path < ?) OR i.path = ?) "
                "AND NOT EXISTS (SELECT 1 FROM temp.walk w WHERE w.path = i.path)",
                [lo, hi, encode_path(root)],
            )
        ]
        return Scan(unchanged=unchanged, redo=redo, new=new, gone=gone)

    def move(self, image_id: int, fact: FileFact) -> None:
        self.db.execute(
            "UPDATE images SET path = ?, size = ?, mtime_ns = ?, updated = ? WHERE id = ?",
            [encode_path(fact.path), fact.size, fact.mtime_ns, time.time(), image_id],
        )

    def delete_images(self, ids: Sequence[int]) -> None:
        with self.transaction() as conn:
            conn.executemany("DELETE FROM images WHERE id = ?", [(int(i),) for i in ids])

    def insert_pending(self, facts: Sequence[FileFact]) -> list[int]:
        """Insert new files as pending; returns their ids in order."""
        ids = []
        now = time.time()
        with self.transaction() as conn:
            next_id = self.next_id()
            for f in facts:
                conn.execute(
                    "INSERT INTO images(id, path, size, mtime_ns, status, updated) "
                    "VALUES (?, ?, ?, ?, 'pending', ?)",
                    [next_id, encode_path(f.path), f.size, f.mtime_ns, now],
                )
                ids.append(next_id)
                next_id += 1
            if ids:
                self._set_meta("next_id", next_id)
        return ids

    def next_id(self) -> int:
        """The id the next new image gets. Ids are never given twice (``meta.next_id`` only
        grows, where SQLite would reuse the largest id once its row is deleted): so an id in
        a backup names the same photo as in any later catalog, and its vector stays its own."""
        top = self.db.execute("SELECT coalesce(max(id), 0) FROM images").fetchone()[0]
        return max(int(self.get_meta("next_id", 1)), int(top) + 1)

    def touch(self, rows: Sequence[tuple[int, FileFact]]) -> None:
        """Files whose modification time changed but not their content: the new time only."""
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE images SET mtime_ns = ? WHERE id = ?",
                [(f.mtime_ns, int(i)) for i, f in rows],
            )

    def mark_redo(self, rows: Sequence[tuple[int, FileFact]]) -> None:
        """Changed files: new size and mtime, back to pending until re-embedded (a vector the
        store holds for them stays, and keeps them in answers, until the new one replaces it)."""
        now = time.time()
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE images SET size = ?, mtime_ns = ?, status = 'pending', error = NULL, "
                "fingerprint = NULL, updated = ? WHERE id = ?",
                [(f.size, f.mtime_ns, now, int(i)) for i, f in rows],
            )

    def record_results(
        self,
        ok: Sequence[tuple[int, str | None]],
        failed: Sequence[tuple[int, str]],
        facts: Sequence[tuple[int, PhotoFacts]] = (),
    ) -> None:
        """Mark images embedded (id, fingerprint) and failed (id, reason), and store the facts
        of the embedded ones (id, facts), in one commit."""
        now = time.time()
        with self.transaction() as conn:
            stored_facts.write(conn, facts)
            conn.executemany(
                "UPDATE images SET status = 'ok', error = NULL, fingerprint = ?, updated = ? "
                "WHERE id = ?",
                [(fp, now, int(i)) for i, fp in ok],
            )
            conn.executemany(
                "UPDATE images SET status = 'failed', error = ?, updated = ? WHERE id = ?",
                [(reason, now, int(i)) for i, reason in failed],
            )

    def pending_under(self, root: str) -> list[tuple[int, str]]:
        lo, hi = path_range(root)
        return [
            (i, decode_path(p))
            for i, p in self.db.execute(
                "SELECT id, path FROM images WHERE status = 'pending' "
                "AND ((path >= ? AND path < ?) OR path = ?) ORDER BY path",
                [lo, hi, encode_path(root)],
            )
        ]

    # -- photo facts ----------------------------------------------------------------------
    def record_facts(self, rows: Sequence[tuple[int, PhotoFacts]]) -> None:
        with self.transaction() as conn:
            stored_facts.write(conn, rows)

    def missing_facts_under(self, root: str) -> list[tuple[int, str]]:
        """Ok images under ``root`` whose facts were never read (indexed before finder kept
        them)."""
        lo, hi = path_range(root)
        return [
            (i, decode_path(p))
            for i, p in self.db.execute(
                "SELECT id, path FROM images WHERE status = 'ok' AND date_source IS NULL "
                "AND ((path >= ? AND path < ?) OR path = ?) ORDER BY path",
                [lo, hi, encode_path(root)],
            )
        ]

    def fact_counts(self) -> dict[str, int]:
        return stored_facts.counts(self.db.conn)

    # -- classes --------------------------------------------------------------------------
    def class_names(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT name FROM classes ORDER BY name")]

    def get_class(self, name: str) -> dict | None:
        """The class record; ``threshold`` (the cut-off) is read from the head's JSON, where
        it is stored."""
        row = self.db.execute(
            "SELECT name, head, backbone, n_pos, n_neg, created, updated "
            "FROM classes WHERE name = ?",
            [name],
        ).fetchone()
        if row is None:
            return None
        keys = ["name", "head", "backbone", "n_pos", "n_neg", "created", "updated"]
        out = dict(zip(keys, row, strict=True))
        try:
            out["head"] = json.loads(out["head"])
            out["threshold"] = float(out["head"].get("threshold", 0.5))
        except (TypeError, ValueError, AttributeError):
            raise damaged(self.path, f"the head of class {name!r} is unreadable") from None
        return out

    def classes(self) -> list[dict]:
        return [c for name in self.class_names() if (c := self.get_class(name)) is not None]

    def save_class(self, name: str, head: dict, backbone: str, n_pos: int, n_neg: int) -> None:
        """Insert or replace class ``name``; ``head`` (JSON-able) carries its cut-off."""
        now = time.time()
        self.db.execute(
            "INSERT INTO classes(name, head, backbone, n_pos, n_neg, created, updated) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET head = excluded.head,"
            " backbone = excluded.backbone, n_pos = excluded.n_pos,"
            " n_neg = excluded.n_neg, updated = excluded.updated",
            [name, json.dumps(head), backbone, n_pos, n_neg, now, now],
        )

    def add_examples(self, name: str, rows: Iterable[tuple[str, int, bytes]]) -> None:
        """Add or relabel examples (path, label, vector bytes) of class ``name``."""
        now = time.time()
        self.db.conn.executemany(
            "INSERT INTO examples(class_name, path, label, vector, added) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(class_name, path) DO UPDATE SET label = excluded.label, "
            "vector = excluded.vector, added = excluded.added",
            [(name, encode_path(p), int(label), vec, now) for p, label, vec in rows],
        )

    def examples(self, name: str) -> list[ExampleRow]:
        return [
            ExampleRow(name, decode_path(p), label, vec)
            for p, label, vec in self.db.execute(
                "SELECT path, label, vector FROM examples WHERE class_name = ? "
                "ORDER BY label DESC, path",
                [name],
            )
        ]

    def forget_class(self, name: str) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM examples WHERE class_name = ?", [name])
            self.db.execute("DELETE FROM classes WHERE name = ?", [name])

    # -- by id (finder serve: the page names images by id, never by path) -----------------
    def image(self, image_id: int) -> ImageRow | None:
        row = self.db.execute(
            "SELECT id, path, size, mtime_ns, fingerprint, status, error FROM images WHERE id = ?",
            [int(image_id)],
        ).fetchone()
        return None if row is None else _image_row(row)

    def ok_rows(self, lo: int, hi: int) -> list[ImageRow]:
        """Rows of the images with status ok and ``lo <= id < hi``, by id."""
        return [
            _image_row(row)
            for row in self.db.execute(
                "SELECT id, path, size, mtime_ns, fingerprint, status, error FROM images "
                "WHERE id >= ? AND id < ? AND status = 'ok' ORDER BY id",
                [int(lo), int(hi)],
            )
        ]

    def ok_page(self, offset: int, limit: int) -> tuple[int, list[tuple[int, str]]]:
        """(number of ok images, ``limit`` of their (id, path) from ``offset``, by id)."""
        total = self.db.execute("SELECT count(*) FROM images WHERE status = 'ok'").fetchone()[0]
        rows = self.db.execute(
            "SELECT id, path FROM images WHERE status = 'ok' ORDER BY id LIMIT ? OFFSET ?",
            [int(limit), int(offset)],
        )
        return total, [(i, decode_path(p)) for i, p in rows]

    def example_label(self, name: str, path: str) -> int | None:
        """The label of ``path`` among the examples of class ``name`` (None: not one)."""
        row = self.db.execute(
            "SELECT label FROM examples WHERE class_name = ? AND path = ?",
            [name, encode_path(path)],
        ).fetchone()
        return None if row is None else int(row[0])

    def remove_examples(self, name: str, paths: Iterable[str]) -> None:
        """Drop examples of class ``name`` (a ✓ or ✗ taken back); commits with the caller's
        transaction when there is one."""
        self.db.conn.executemany(
            "DELETE FROM examples WHERE class_name = ? AND path = ?",
            [(name, encode_path(p)) for p in paths],
        )


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.outer = False

    def __enter__(self) -> sqlite3.Connection:
        self.outer = not self.conn.in_transaction
        if self.outer:
            self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.outer:
            return
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")


def _fact(p: bytes, size: int, mtime_ns: int, is_dir: int) -> FileFact:
    return FileFact(decode_path(p), size, mtime_ns, bool(is_dir))


def _image_row(row: Sequence[Any]) -> ImageRow:
    i, p, size, mtime_ns, fp, status, err = row
    return ImageRow(i, decode_path(p), size, mtime_ns, fp, status, err)
