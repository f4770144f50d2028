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
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlite_utils

from finder.errors import FinderError, LibraryError
from finder.ingest.crawl import FileFact, is_video_name
from finder.store import facts as stored_facts
from finder.store import keywords as stored_keywords
from finder.store.classes import ClassTables
from finder.store.filing import FilingTables
from finder.store.frames import PHOTO, VIDEO, FrameTables, StoredVideo
from finder.store.keywords import KeywordTables
from finder.store.rows import ExampleRow, ImageRow, Scan, decode_path, encode_path, path_range
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

if TYPE_CHECKING:
    from finder.ingest.facts import PhotoFacts


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


class Catalog(ClassTables, FrameTables, KeywordTables, FilingTables, StripTables):
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

    def ok_by_fingerprint(self, fingerprints: Iterable[str]) -> dict[str, ImageRow]:
        """The indexed (ok) image of each of ``fingerprints`` that one has (the first by id
        when several share it)."""
        wanted = sorted({f for f in fingerprints if f})
        out: dict[str, ImageRow] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            for row in self.db.execute(
                "SELECT id, path, size, mtime_ns, fingerprint, status, error FROM images "
                f"WHERE status = 'ok' AND fingerprint IN ({','.join('?' * len(chunk))}) "
                "ORDER BY id",
                chunk,
            ):
                out.setdefault(row[4], _image_row(row))
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
            " is_dir INTEGER, xmp_path BLOB, xmp_stamp TEXT NOT NULL)"
        )
        with self.transaction() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO temp.walk VALUES (?, ?, ?, ?, ?, ?)",
                (
                    (
                        encode_path(f.path),
                        f.size,
                        f.mtime_ns,
                        int(f.is_dir),
                        None if f.sidecar is None else encode_path(f.sidecar.path),
                        "" if f.sidecar is None else f.sidecar.stamp,
                    )
                    for f in facts
                ),
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
        """A photo moved: its new path (its vector, and ``updated``, stay: nothing about the
        photo changed; see ``updated_since``)."""
        self.db.execute(
            "UPDATE images SET path = ?, size = ?, mtime_ns = ? WHERE id = ?",
            [encode_path(fact.path), fact.size, fact.mtime_ns, image_id],
        )

    def delete_images(self, ids: Sequence[int]) -> None:
        """Delete these images, and the frames of those that are videos."""
        with self.transaction() as conn:
            conn.executemany("DELETE FROM images WHERE id = ?", [(int(i),) for i in ids])
            conn.executemany("DELETE FROM frames WHERE video_id = ?", [(int(i),) for i in ids])
            stored_keywords.delete(conn, ids)

    def insert_pending(self, facts: Sequence[FileFact]) -> list[int]:
        """Insert new files as pending; returns their ids in order."""
        ids = []
        now = time.time()
        with self.transaction() as conn:
            next_id = self.next_id()
            for f in facts:
                kind = VIDEO if is_video_name(f.path) else PHOTO
                conn.execute(
                    "INSERT INTO images(id, path, size, mtime_ns, status, updated, kind) "
                    "VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                    [next_id, encode_path(f.path), f.size, f.mtime_ns, now, kind],
                )
                ids.append(next_id)
                next_id += 1
            if ids:
                self._set_meta("next_id", next_id)
        return ids

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
        videos: Sequence[StoredVideo] = (),
    ) -> None:
        """Mark images embedded (id, fingerprint) and failed (id, reason), and store the facts
        of the embedded ones (id, facts) and the frames of the videos among them (which
        replace their old ones; a failed video loses its frames), in one commit."""
        now = time.time()
        with self.transaction() as conn:
            stored_facts.write(conn, facts)
            self._record_videos(conn, videos)
            conn.executemany(
                "DELETE FROM frames WHERE video_id = ?", [(int(i),) for i, _ in failed]
            )
            stored_keywords.write_embedded(conn, [(i, f.keywords) for i, f in facts])
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
            stored_keywords.write_embedded(conn, [(i, f.keywords) for i, f in rows])

    def missing_facts_under(self, root: str) -> list[tuple[int, str]]:
        """Ok images under ``root`` whose facts were never read, or read before finder kept
        the keywords embedded in photos (indexed by an older finder)."""
        lo, hi = path_range(root)
        found: dict[int, str] = {}
        for index, column in (
            ("idx_images_no_facts", "date_source"),
            ("idx_images_no_keywords", "keywords_read"),
        ):
            for i, p in self.db.execute(
                f"SELECT id, path FROM images INDEXED BY {index} "
                f"WHERE status = 'ok' AND {column} IS NULL "
                "AND ((path >= ? AND path < ?) OR path = ?)",
                [lo, hi, encode_path(root)],
            ):
                found[i] = decode_path(p)
        return sorted(found.items(), key=lambda item: encode_path(item[1]))

    def fact_counts(self) -> dict[str, int]:
        """Among ok images: ``with_date``, ``with_file_date``, ``with_position``,
        ``with_keywords`` and ``keywords`` (distinct)."""
        return {**stored_facts.counts(self.db.conn), **stored_keywords.counts(self.db.conn)}

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


def _fact(p: bytes, size: int, mtime_ns: int, is_dir: int) -> FileFact:
    return FileFact(decode_path(p), size, mtime_ns, bool(is_dir))


def _image_row(row: Sequence[Any]) -> ImageRow:
    i, p, size, mtime_ns, fp, status, err = row
    return ImageRow(i, decode_path(p), size, mtime_ns, fp, status, err)
