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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from finder.errors import LibraryError
from finder.ingest.crawl import FileFact

SCHEMA_VERSION = 1

PENDING, OK, FAILED = "pending", "ok", "failed"


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


# Step-by-step migrations: MIGRATIONS[v] brings a catalog from version v to v + 1.
MIGRATIONS = [_migrate_to_1]


class Catalog:
    """The library's SQLite file. Every public method commits before it returns."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
            self.db = sqlite_utils.Database(conn)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as e:
            raise LibraryError(f"the catalog {self.path} is not readable: {e}") from None

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
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return default if row is None else json.loads(row[0])

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
        return [r[0] for r in self.db.execute("SELECT id FROM images WHERE status = 'ok'")]

    def image_by_path(self, path: str) -> ImageRow | None:
        row = self.db.execute(
            "SELECT id, path, size, mtime_ns, fingerprint, status, error FROM images "
            "WHERE path = ?",
            [encode_path(path)],
        ).fetchone()
        return None if row is None else _image_row(row)

    def paths_for(self, ids: Sequence[int], ok_only: bool = False) -> dict[int, str]:
        """Paths of these image ids (only those with status ok, with ``ok_only``)."""
        out: dict[int, str] = {}
        ids = [int(i) for i in ids]
        where = " AND status = 'ok'" if ok_only else ""
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT id, path FROM images WHERE id IN ({marks}){where}"
            for i, p in self.db.execute(sql, chunk):
                out[i] = decode_path(p)
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
            for f in facts:
                cur = conn.execute(
                    "INSERT INTO images(path, size, mtime_ns, status, updated) "
                    "VALUES (?, ?, ?, 'pending', ?)",
                    [encode_path(f.path), f.size, f.mtime_ns, now],
                )
                ids.append(cur.lastrowid)
        return ids

    def mark_redo(self, rows: Sequence[tuple[int, FileFact]]) -> None:
        """Changed files: new size and mtime, back to pending until re-embedded."""
        now = time.time()
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE images SET size = ?, mtime_ns = ?, status = 'pending', error = NULL, "
                "fingerprint = NULL, updated = ? WHERE id = ?",
                [(f.size, f.mtime_ns, now, int(i)) for i, f in rows],
            )

    def record_results(
        self, ok: Sequence[tuple[int, str | None]], failed: Sequence[tuple[int, str]]
    ) -> None:
        """Mark images embedded (id, fingerprint) and failed (id, reason), in one commit."""
        now = time.time()
        with self.transaction() as conn:
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

    # -- classes --------------------------------------------------------------------------
    def class_names(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT name FROM classes ORDER BY name")]

    def get_class(self, name: str) -> dict | None:
        row = self.db.execute(
            "SELECT name, head, backbone, threshold, n_pos, n_neg, created, updated "
            "FROM classes WHERE name = ?",
            [name],
        ).fetchone()
        if row is None:
            return None
        keys = ["name", "head", "backbone", "threshold", "n_pos", "n_neg", "created", "updated"]
        out = dict(zip(keys, row, strict=True))
        out["head"] = json.loads(out["head"])
        return out

    def classes(self) -> list[dict]:
        return [c for name in self.class_names() if (c := self.get_class(name)) is not None]

    def save_class(
        self, name: str, head: dict, backbone: str, threshold: float, n_pos: int, n_neg: int
    ) -> None:
        now = time.time()
        self.db.execute(
            "INSERT INTO classes(name, head, backbone, threshold, n_pos, n_neg, created, updated) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET head = excluded.head,"
            " backbone = excluded.backbone, threshold = excluded.threshold, n_pos = excluded.n_pos,"
            " n_neg = excluded.n_neg, updated = excluded.updated",
            [name, json.dumps(head), backbone, threshold, n_pos, n_neg, now, now],
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
