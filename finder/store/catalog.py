"""The SQLite catalog, through sqlite-utils: images (photos and videos), videos' frames,
classes, their examples, and meta.

Paths are stored as BLOBs of ``os.fsencode(path)`` so that names which are not valid UTF-8
round-trip exactly; the Python side always sees ``str`` (``os.fsdecode``).

Image status: ``pending`` (known, no vector yet), ``ok`` (a photo: exactly one vector in the
store; a video: all its frames', see ``finder.store.frames``), ``failed`` (could not be
decoded; ``error`` says why; retried only when the file changes).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlite_utils

from finder.errors import FinderError, LibraryError
from finder.store import facts as stored_facts
from finder.store import keywords as stored_keywords
from finder.store.classes import ClassTables
from finder.store.filing import FilingTables
from finder.store.frames import FrameTables, StoredVideo
from finder.store.keywords import KeywordTables
from finder.store.rows import (
    IMAGE_COLUMNS,
    ExampleRow,
    ImageRow,
    Scan,
    decode_path,
    encode_path,
    image_row,
    path_range,
)
from finder.store.scans import ScanTables
from finder.store.schema import (
    FAILED,
    META_TYPES,
    MIGRATIONS,
    OK,
    PENDING,
    SCHEMA_VERSION,
)
from finder.store.sqlite import (
    CatalogTooOld,
    _Transaction,
    connect,
    damaged,
    meta_problem,
)
from finder.store.strips import StripTables

# What the rest of finder takes from the catalog (its parts live in rows, schema, sqlite).
__all__ = [
    "FAILED",
    "META_TYPES",
    "MIGRATIONS",
    "OK",
    "PENDING",
    "SCHEMA_VERSION",
    "Catalog",
    "CatalogTooOld",
    "ExampleRow",
    "ImageRow",
    "Scan",
    "StoredVideo",
    "connect",
    "decode_path",
    "encode_path",
    "meta_problem",
    "path_range",
]


class Catalog(ScanTables, ClassTables, FrameTables, KeywordTables, FilingTables, StripTables):
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
            if read_only:  # a reader meets a hand-edited meta here, not halfway through
                for key in META_TYPES:
                    self.get_meta(key)
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
        if not self.read_only:
            try:  # keeps the planner's statistics fresh (filters pick their index by them)
                self.db.execute("PRAGMA busy_timeout = 0")  # never wait for a writer to close
                self.db.execute("PRAGMA analysis_limit = 1000")
                self.db.execute("PRAGMA optimize")
            except (sqlite3.Error, FinderError):  # busy, read-only, damaged: statistics can wait
                pass
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

    def has_status(self, status: str) -> bool:
        """Whether any image has ``status`` (one index probe; ``counts`` scans the index)."""
        sql = "SELECT EXISTS(SELECT 1 FROM images WHERE status = ?)"
        return bool(self.db.execute(sql, [status]).fetchone()[0])

    def ok_ids(self) -> list[int]:
        return self.ids_with_status(OK)

    def ids_with_status(self, status: str) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT id FROM images WHERE status = ?", [status])]

    def image_by_path(self, path: str) -> ImageRow | None:
        row = self.db.execute(
            f"SELECT {IMAGE_COLUMNS} FROM images WHERE path = ?",
            [encode_path(path)],
        ).fetchone()
        return None if row is None else image_row(row)

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

    def ok_by_fingerprint(self, fingerprints: Iterable[str]) -> dict[str, ImageRow]:
        """The indexed (ok) image of each of ``fingerprints`` that one has (the first by id
        when several share it)."""
        wanted = sorted({f for f in fingerprints if f})
        out: dict[str, ImageRow] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            for row in self.db.execute(
                f"SELECT {IMAGE_COLUMNS} FROM images "
                f"WHERE status = 'ok' AND fingerprint IN ({','.join('?' * len(chunk))}) "
                "ORDER BY id",
                chunk,
            ):
                out.setdefault(row[4], image_row(row))
        return out

    def rows_by_id(self, ids: Sequence[int]) -> dict[int, ImageRow]:
        out: dict[int, ImageRow] = {}
        ids = [int(i) for i in ids]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for row in self.db.execute(
                f"SELECT {IMAGE_COLUMNS} FROM images WHERE id IN ({','.join('?' * len(chunk))})",
                chunk,
            ):
                out[row[0]] = image_row(row)
        return out

    def failed(self) -> list[tuple[str, str]]:
        return [
            (decode_path(p), e or "")
            for p, e in self.db.execute(
                "SELECT path, error FROM images WHERE status = 'failed' ORDER BY path"
            )
        ]

    @staticmethod
    def _under(root: str, status: str | None) -> tuple[str, list[Any]]:
        """The WHERE clause (and its parameters) of the images at ``root`` or below it, with
        ``status`` when given: an index range, however large the library."""
        lo, hi = path_range(root)
        where = "((path >= ? AND path < ?) OR path = ?)"
        params: list[Any] = [lo, hi, encode_path(root)]
        if status:
            where += " AND status = ?"
            params.append(status)
        return where, params

    def ids_under(self, root: str, status: str | None = None) -> list[int]:
        where, params = self._under(root, status)
        return [r[0] for r in self.db.execute(f"SELECT id FROM images WHERE {where}", params)]

    def has_under(self, root: str) -> bool:
        """Whether any image is at ``root`` or below it (one index probe)."""
        lo, hi = path_range(root)
        sql = "SELECT EXISTS(SELECT 1 FROM images WHERE (path >= ? AND path < ?) OR path = ?)"
        return bool(self.db.execute(sql, [lo, hi, encode_path(root)]).fetchone()[0])

    def count_under(self, root: str, status: str | None = None) -> int:
        """How many images are at ``root`` or below it (with ``status``, when given)."""
        where, params = self._under(root, status)
        return int(
            self.db.execute(f"SELECT count(*) FROM images WHERE {where}", params).fetchone()[0]
        )

    def rows_under(self, root: str) -> Iterator[ImageRow]:
        lo, hi = path_range(root)
        for row in self.db.execute(
            f"SELECT {IMAGE_COLUMNS} FROM images WHERE (path >= ? AND path < ?) OR path = ?",
            [lo, hi, encode_path(root)],
        ):
            yield image_row(row)

    def next_id(self) -> int:
        """The id the next new image (or video frame) gets. Ids are never given twice
        (``meta.next_id`` only grows, where SQLite would reuse the largest id once its row is
        deleted): so an id in a backup names the same photo as in any later catalog, and its
        vector stays its own."""
        top = self.db.execute(
            "SELECT max((SELECT coalesce(max(id), 0) FROM images), "
            "(SELECT coalesce(max(id), 0) FROM frames))"
        ).fetchone()[0]
        return max(int(self.get_meta("next_id", 1)), int(top) + 1)

    def set_pending(self, ids: Iterable[int]) -> None:
        with self.transaction():
            self.db.conn.executemany(
                "UPDATE images SET status = 'pending', error = NULL WHERE id = ?",
                [(int(i),) for i in ids],
            )

    # -- photo facts ----------------------------------------------------------------------
    def fact_counts(self) -> dict[str, int]:
        """Among ok images: ``with_date``, ``with_file_date``, ``with_position``,
        ``with_keywords`` and ``keywords`` (distinct)."""
        return {**stored_facts.counts(self.db.conn), **stored_keywords.counts(self.db.conn)}

    # -- by id (finder serve: the page names images by id, never by path) -----------------
    def image(self, image_id: int) -> ImageRow | None:
        row = self.db.execute(
            f"SELECT {IMAGE_COLUMNS} FROM images WHERE id = ?",
            [int(image_id)],
        ).fetchone()
        return None if row is None else image_row(row)

    def ok_rows(self, lo: int, hi: int) -> list[ImageRow]:
        """Rows of the images with status ok and ``lo <= id < hi``, by id."""
        return [
            image_row(row)
            for row in self.db.execute(
                f"SELECT {IMAGE_COLUMNS} FROM images "
                "WHERE id >= ? AND id < ? AND status = 'ok' ORDER BY id",
                [int(lo), int(hi)],
            )
        ]

    # -- what changed lately (the page's live updates) -------------------------------------
    def last_ok_update(self) -> float:
        """When an indexed image last changed (embedded, new or again; 0.0: none): one probe
        of ``idx_images_status_updated``."""
        row = self.db.execute("SELECT max(updated) FROM images WHERE status = 'ok'").fetchone()
        return float(row[0] or 0.0)

    def ok_since(self, since: float, limit: int) -> list[tuple[int, float]]:
        """(id, updated) of the indexed images embedded (new or again) after ``since``, oldest
        first, at most ``limit`` (a move is not a change of the photo): an index range,
        however large the library."""
        return [
            (int(i), float(t))
            for i, t in self.db.execute(
                "SELECT id, updated FROM images WHERE status = 'ok' AND updated > ? "
                "ORDER BY updated LIMIT ?",
                [float(since), int(limit)],
            )
        ]

    def ok_at(self, when: float) -> list[tuple[int, float]]:
        """(id, updated) of the indexed images embedded at the moment ``when`` (one commit)."""
        return [
            (int(i), float(t))
            for i, t in self.db.execute(
                "SELECT id, updated FROM images WHERE status = 'ok' AND updated = ?",
                [float(when)],
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
