"""An index run's mark and sweep in the catalog (a part of
:class:`~finder.store.catalog.Catalog`): one root's walk loaded into a temporary table and
compared with the images under the root in a few set-based statements (``scan``: unchanged,
changed or still pending, new, gone), and what the run then writes: new files as pending,
moves, new modification times, changed files back to pending, deleted images, the results of
embedding (ok with a fingerprint, failed with a reason, the photos' facts and keywords, the
videos' frames) and the facts of photos indexed before finder read them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from finder.ingest.crawl import FileFact, is_video_name
from finder.store import facts as stored_facts
from finder.store import keywords as stored_keywords
from finder.store.frames import PHOTO, VIDEO, StoredVideo
from finder.store.rows import IMAGE_COLUMNS, Scan, decode_path, encode_path, image_row, path_range

if TYPE_CHECKING:
    from finder.ingest.facts import PhotoFacts


class ScanTables:
    """The index run's writes to ``images`` (see the module docstring)."""

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
            image_row(row)
            for row in self.db.execute(
                f"SELECT {IMAGE_COLUMNS} FROM images i "
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

    # -- photo facts read after the index run that embedded them ---------------------------
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


def _fact(p: bytes, size: int, mtime_ns: int, is_dir: int) -> FileFact:
    return FileFact(decode_path(p), size, mtime_ns, bool(is_dir))
